"""An interactive process in a running container (kubectl exec): the port's ExecSession.

An exec session is `runc exec` of the container's own process object (user, env, cwd,
capabilities, rlimits; in its cgroup and namespaces) with other args, waited for by runc,
whose exit code is the process's. Without a terminal, the process's stdio are pipes whose
other ends are handed out. With one, runc is given a host pty (raw mode) as its stdio: runc
makes the container's terminal, receives its master over its own console socket and copies
between the two, resizing the container's to the host one's size at start and on SIGWINCH
(which it is sent here after each resize, as it holds no controlling terminal). runc (1.1)
can hand the master to a caller only when it detaches, and then nobody can learn the exit code.

The netns case is the health checks' (runc.py's exec): runc runs from a private root without
the netns in the container's state, launched inside the netns already. A gVisor task's
container is exec'd the same way through `runsc exec` (Sandbox.exec_command picks the command).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import termios
import time
import tty
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..port.errors import ContainerGone, SandboxError
from .layout import Layout, checked, container_id, joined_netns
from .runfiles import unlink

if TYPE_CHECKING:
    from ..port.protocols import ExecSession
    from .sandbox import Sandbox

PID_WAIT_S = 10.0  # for runc to say which process it started
_EOF_CHAR = b"\x04"  # ^D: a terminal's end of file (canonical mode, as shells read)


def _nonblocking(fd: int) -> int:
    os.set_blocking(fd, False)
    return fd


class RuncExecSession:
    """One exec'd process (port.protocols.ExecSession); made by start_session."""

    def __init__(self, proc: subprocess.Popen[bytes], *, stdin: int | None,
                 stdout: int | None, stderr: int | None, terminal: bool,
                 pid_file: Path, files: list[Path], scratch: Path | None,
                 kill_process: Callable[[Path], bool]) -> None:
        self._proc = proc
        self._kill_process = kill_process
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self._terminal = terminal
        self._pid_file = pid_file
        self._files = files
        self._scratch = scratch
        self.ended = os.pidfd_open(proc.pid)
        self._closed = False

    def code(self) -> int | None:
        rc = self._proc.poll()
        if rc is None:
            return None
        return 128 - rc if rc < 0 else rc  # runc itself killed by a signal

    def resize(self, width: int, height: int) -> None:
        if not self._terminal or self.stdout is None or self._proc.poll() is not None:
            return
        width, height = max(0, min(width, 0xFFFF)), max(0, min(height, 0xFFFF))
        with contextlib.suppress(OSError):
            fcntl.ioctl(self.stdout, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
            os.kill(self._proc.pid, signal.SIGWINCH)  # runc copies the size inside

    def close_stdin(self) -> None:
        if self._terminal:
            if self.stdout is not None:
                with contextlib.suppress(OSError):
                    os.write(self.stdout, _EOF_CHAR)
            return
        if self.stdin is not None:
            os.close(self.stdin)
            self.stdin = None

    def kill(self) -> None:
        if self._proc.poll() is not None:
            return
        # A session ended at once may come before the runtime has written which process it
        # started: wait for that, as killing the runtime alone would leave the process to
        # the container.
        deadline = time.monotonic() + PID_WAIT_S
        while (not self._kill_process(self._pid_file) and self._proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.005)
        try:
            self._proc.wait(2.0)
        except subprocess.TimeoutExpired:  # still setting up: runc (its own group) goes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in {fd for fd in (self.stdin, self.stdout, self.stderr) if fd is not None}:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.stdin = self.stdout = self.stderr = None
        if self._proc.poll() is None:
            self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(5.0)
        os.close(self.ended)
        unlink(self._pid_file, *self._files)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def _process(config: dict[str, Any], argv: list[str], terminal: bool) -> dict[str, Any]:
    """The container's process object running argv; a terminal gets TERM as containerd's
    exec gives it, unless the container sets its own."""
    process = dict(config["process"], args=list(argv), terminal=terminal)
    process.pop("consoleSize", None)
    env = list(process.get("env") or [])
    if terminal and not any(e.startswith("TERM=") for e in env):
        process["env"] = env + ["TERM=xterm"]
    return process


def start_session(sandbox: Sandbox, task_id: str, name: str, argv: list[str], *,
                  tty_: bool, stdin: bool) -> ExecSession:
    """Start argv in the running container `name` of the task (see the module docstring).
    Blocking (a fork and file writes): call it off the event loop."""
    checked(task_id, name)
    if not argv:
        raise SandboxError("no command given")
    layout = Layout(sandbox.root, sandbox.run_dir)
    cid = container_id(task_id, name)
    ctr_dir = layout.ctr_dir(task_id, name)
    if layout.exit_file(task_id, name).exists() or not sandbox.container_exists(task_id, name):
        raise ContainerGone(f"container {name} of task {task_id} is not running")
    try:
        config = json.loads((ctr_dir / "config.json").read_text())
        process = _process(config, argv, tty_)
        netns = joined_netns(config, ctr_dir)
    except (OSError, ValueError, KeyError, TypeError):
        raise ContainerGone(f"container {name} of task {task_id} has no bundle") from None
    # 0600 and on the runtime's tmpfs: the environment may carry the task's secrets.
    fd, spec_name = tempfile.mkstemp(prefix="exec-", suffix=".json", dir=ctr_dir)
    spec_path = Path(spec_name)
    pid_file = spec_path.with_suffix(".pid")
    with os.fdopen(fd, "w") as f:
        json.dump(process, f)
    scratch: Path | None = None
    ours: list[int] = []  # what the session keeps
    theirs: list[int] = []  # the child's ends, closed here once it has them
    try:
        cmd, scratch = sandbox.exec_command(cid, netns, spec_path, pid_file)
        if tty_:
            master, slave = os.openpty()
            ours.append(master)
            theirs.append(slave)
            tty.setraw(slave)  # bytes pass as they are; the container's terminal has the modes
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
            proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave,
                                    start_new_session=True)
            session = RuncExecSession(proc, stdin=_nonblocking(master),
                                      stdout=master, stderr=None, terminal=True,
                                      pid_file=pid_file, files=[spec_path], scratch=scratch,
                                      kill_process=partial(sandbox.kill_exec, cid))
        else:
            ends: dict[str, tuple[int, int] | None] = {}
            for stream, wanted in (("stdin", stdin), ("stdout", True), ("stderr", True)):
                if wanted:
                    r, w = os.pipe2(os.O_CLOEXEC)
                    mine, child = (w, r) if stream == "stdin" else (r, w)
                    ours.append(mine)
                    theirs.append(child)
                    ends[stream] = (mine, child)
                else:
                    ends[stream] = None

            def child_end(stream: str) -> int:
                pair = ends[stream]
                return pair[1] if pair else subprocess.DEVNULL

            def my_end(stream: str) -> int | None:
                pair = ends[stream]
                return _nonblocking(pair[0]) if pair else None

            proc = subprocess.Popen(cmd, stdin=child_end("stdin"), stdout=child_end("stdout"),
                                    stderr=child_end("stderr"), start_new_session=True)
            session = RuncExecSession(proc, stdin=my_end("stdin"), stdout=my_end("stdout"),
                                      stderr=my_end("stderr"), terminal=False,
                                      pid_file=pid_file, files=[spec_path], scratch=scratch,
                                      kill_process=partial(sandbox.kill_exec, cid))
    except OSError as err:
        for end in ours:
            with contextlib.suppress(OSError):
                os.close(end)
        unlink(spec_path, pid_file)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise SandboxError(f"starting {argv[0]!r} in container {name}: {err}") from None
    finally:
        for end in theirs:
            with contextlib.suppress(OSError):
                os.close(end)
    return session

