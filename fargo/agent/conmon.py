"""conmon, the monitor each container gets: it runs `runc create`, streams the container's
stdout and stderr into a k8s-file log, records the exit code in an exit file, then exits.

It is a daemon of its own, so a container outlives the fargo process that made it."""

from __future__ import annotations

import hashlib
import json
import os
import select
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..port.data import DEFAULT_PATH
from ..port.errors import SandboxError
from .runc import Runc, runc_message
from .spawner import SPAWNER, Child


@dataclass(frozen=True)
class Monitor:
    """Where one container's conmon finds its bundle and puts what it records."""

    cid: str
    bundle: Path  # holds config.json; conmon also makes its fifos and attach socket here
    log_path: Path
    exit_dir: Path  # conmon writes <exit_dir>/<cid>, the exit code as text
    socket_dir: Path

    @property
    def pid_file(self) -> Path:  # the container's init
        return self.bundle / "pid"

    @property
    def conmon_pid_file(self) -> Path:
        return self.bundle / "conmon.pid"

    @property
    def persist_dir(self) -> Path:
        return self.bundle / "persist"


def _args(conmon: str, runc: Runc, m: Monitor) -> list[str]:
    runtime, runtime_args = runc.conmon_runtime()
    return [
        conmon,
        "--cid", m.cid,
        # cuuid only names the attach-socket symlink; keep it short for sun_path.
        "--cuuid", hashlib.sha1(m.cid.encode()).hexdigest()[:12],
        "--name", m.cid,
        "--runtime", runtime,
        *[part for arg in runtime_args for part in ("--runtime-arg", arg)],
        "--bundle", str(m.bundle),
        "--container-pidfile", str(m.pid_file),
        "--conmon-pidfile", str(m.conmon_pid_file),
        "--log-path", f"k8s-file:{m.log_path}",
        "--exit-dir", str(m.exit_dir),
        "--persist-dir", str(m.persist_dir),
        "--socket-dir-path", str(m.socket_dir),
        "--log-level", "error",
    ]


def create(conmon: str, runc: Runc, monitor: Monitor, timeout: float,
           spawned: Callable[[], None] | None = None) -> int:
    """Start conmon and return the container's pid once `runc create` is done; spawned is
    called as soon as conmon's daemon is on its own (it then runs `runc create`).

    conmon forks a daemon and its first process exits at once; the daemon reports the
    container pid (or runc's error) as JSON on the _OCI_SYNCPIPE fd after `runc create`.
    A refusal is a SandboxError in runc's (or conmon's) own words.
    """
    read_fd, write_fd = os.pipe()
    try:
        err = _start(_args(conmon, runc, monitor), monitor.bundle, write_fd, timeout)
        write_fd = -1  # closed by _start once conmon holds it
        if spawned is not None:
            spawned()
        reply = _read_sync(read_fd, timeout)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    pid = reply.get("pid", reply.get("data", -1)) if reply else -1
    if not isinstance(pid, int) or pid <= 0:
        message = (reply or {}).get("message") or err.decode(errors="replace")
        raise SandboxError(runc_message(message) or "conmon failed")
    return pid


def _start(argv: list[str], cwd: Path, sync_fd: int, timeout: float) -> bytes:
    """Start conmon's first process (by the spawn helper when there is one) and wait for it
    to have forked its daemon and ended: what it wrote on stderr. sync_fd is closed here."""
    path = os.environ.get("PATH", DEFAULT_PATH)
    err_r, err_w = os.pipe()
    try:
        with open(os.devnull, "rb+", buffering=0) as null:
            child = Child(argv=argv, env={"PATH": path}, fd_env={"_OCI_SYNCPIPE": 0},
                          cwd=str(cwd), stdin=null.fileno(), stdout=null.fileno(),
                          stderr=err_w, pass_fds=(sync_fd,))
            proc = None
            try:
                if SPAWNER.spawn(child) is None:  # no helper: from here
                    proc = subprocess.Popen(
                        argv, env={"PATH": path, "_OCI_SYNCPIPE": str(sync_fd)},
                        pass_fds=(sync_fd,), stdin=null, stdout=null, stderr=err_w,
                        start_new_session=True, cwd=cwd)
            except OSError as exc:  # no conmon binary, no bundle dir, no helper mid-way
                raise SandboxError(f"starting conmon: {exc}") from None
        os.close(err_w)
        err_w = -1
        os.close(sync_fd)
        sync_fd = -1
        err = _read_to_end(err_r, timeout)
        if proc is not None:
            proc.wait(timeout)  # ended: its stderr is closed
        return err
    finally:
        os.close(err_r)
        for fd in (err_w, sync_fd):
            if fd >= 0:
                os.close(fd)


def _read_to_end(fd: int, timeout: float) -> bytes:
    """All a pipe carries until its writers are gone (conmon's first process: its daemon
    writes nowhere near it). A first process that never ends is conmon failing."""
    data = _read_pipe(fd, timeout, lambda _: False)
    if data is None:
        raise SandboxError("conmon did not start its container in time")
    return data


def _read_pipe(fd: int, timeout: float, enough: Callable[[bytes], bool]) -> bytes | None:
    """What the pipe carries until enough says so or its writers are gone; None if neither
    within timeout. poll, not select: a server with hundreds of tasks holds fds past
    select's 1024."""
    data = b""
    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while not enough(data):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data


def _read_sync(fd: int, timeout: float) -> dict[str, Any] | None:
    """One JSON line from conmon's sync pipe; None if conmon died without a word."""
    data = _read_pipe(fd, timeout, lambda got: b"\n" in got)
    if data is None:
        return None
    try:
        reply = json.loads(data.split(b"\n", 1)[0])
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None
