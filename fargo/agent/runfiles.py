"""Small reads and writes of the runtime's state files (pid files, exit codes, timestamps),
and whether a recorded process still runs: all tolerant of a file that is not there."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path


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
    tmp.write_text(text)
    os.replace(tmp, path)


def private_write(path: Path, text: str) -> None:
    """A file only root may read: a container's bundle holds its environment, secrets too."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


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


def wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.002)
