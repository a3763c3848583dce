"""Small reads and writes of the runtime's state files (pid files, exit codes, timestamps),
and whether a recorded process still runs: all tolerant of a file that is not there."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


def read_int(path: Path) -> int | None:
    """The first number in a file (a pid file, an exit code, a cgroup counter); None if the
    file is absent or holds no number."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_float(path: Path) -> float | None:
    try:
        return float(path.read_text())
    except (OSError, ValueError):
        return None


def mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write_new(tmp, text, 0o644)
    os.replace(tmp, path)


def private_write(path: Path, text: str | bytes) -> None:
    """A file only root may read: a container's bundle holds its environment, secrets too."""
    write_new(path, text, 0o600)


def write_new(path: Path | str, text: str | bytes, mode: int) -> None:
    """path truncated (made with mode if missing) to hold text: by plain system calls, as a
    start writes several such files and a Python file object costs four calls more each."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        data = memoryview(text.encode() if isinstance(text, str) else text)
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


def unlink(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def alive(pid: int) -> bool:
    """Running and not a zombie: a daemonized conmon is reaped by whatever init the host has,
    and some reap lazily (seconds here), so kill(pid, 0) is not enough."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def pidfd(pid: int) -> int | None:
    """A pidfd of pid, which the kernel makes readable the moment the process exits and
    which names that process alone; None when there is no such process (or no pidfd on this
    kernel)."""
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _until_readable(fd: int, timeout: float) -> bool:
    poller = select.poll()  # not select: a server with hundreds of tasks has fds past 1024
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000))


def wait_gone(pid: int, timeout: float) -> None:
    """Return once pid has exited (a zombie counts) or timeout seconds have passed, woken by
    the kernel rather than by polling."""
    fd = pidfd(pid)
    if fd is None:
        return
    try:
        _until_readable(fd, timeout)
    finally:
        os.close(fd)


def wait_child(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """proc's exit code, or None if it still runs after timeout seconds. Popen.wait(timeout)
    polls with sleeps that double up to 50 ms, so it sees an exit up to that late (a 32 ms
    `runc run` reads as 64 ms); a pidfd wakes us as the process exits."""
    fd = pidfd(proc.pid)
    if fd is None:  # reaped already
        return proc.wait()
    try:
        if not _until_readable(fd, timeout):
            return None
    finally:
        os.close(fd)
    return proc.wait()


class Pidfds(Generic[K]):
    """Whether recorded processes have ended, each by a pidfd made at its first look and
    kept: one poll a look, not a pid file and a /proc read. Thread-safe (fds are closed by
    one thread while another polls)."""

    def __init__(self, lift: Callable[[int], int] = lambda fd: fd) -> None:
        self._lift = lift  # where a long-held descriptor goes (libc.lift_fd)
        self._fds: dict[K, int] = {}
        self._lock = threading.Lock()

    def ended(self, key: K, pid_of: Callable[[], int | None]) -> bool | None:
        """True once the process has ended (a zombie counts), False while it runs; None when
        there is no pidfd to be had (no pid recorded, or no such process any more)."""
        with self._lock:
            fd = self._fds.get(key)
            if fd is None:
                pid = pid_of()
                fd = pidfd(pid) if pid is not None else None
                if fd is None:
                    return None
                fd = self._fds[key] = self._lift(fd)
            return _until_readable(fd, 0)

    def forget(self, keys: list[K]) -> None:
        with self._lock:
            for key in keys:
                fd = self._fds.pop(key, None)
                if fd is not None:
                    os.close(fd)

    def keys(self) -> list[K]:
        with self._lock:
            return list(self._fds)
