"""runc, as the sandbox drives it: state, start, kill and delete of containers under one root.

Whether a container is there, and in which state, is read from runc's root directory and
`runc state`, never from the words of a failed command: those are kept only to tell a user
what went wrong.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal as signal_mod
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..port.errors import ContainerGone, SandboxError
from .runfiles import alive, pidfd, read_int, wait_child

# runc's statuses as the sandbox reports them (paused containers still hold their processes).
STATUS = {"created": "created", "running": "running", "pausing": "running",
          "paused": "running", "stopped": "stopped"}


@dataclass(frozen=True)
class RuncState:
    status: str  # "created" | "running" | "stopped" | "unknown"
    pid: int | None
    created_at: float | None


class Runc:
    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root

    @property
    def global_args(self) -> list[str]:
        """What every call of the binary carries before its command."""
        return ["--root", str(self.root)]

    def conmon_runtime(self) -> tuple[str, list[str]]:
        """What conmon runs as the container's runtime: a binary and its leading args."""
        return self.binary, [f"--root={self.root}"]

    def run(self, *args: str) -> str:
        proc = subprocess.run([self.binary, *self.global_args, *args],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SandboxError(f"runc {args[0]}: {runc_message(proc.stderr)}")
        return proc.stdout

    def exists(self, cid: str) -> bool:
        """runc keeps a directory per container under its root from create to delete."""
        return (self.root / cid).exists()

    def state(self, cid: str) -> RuncState | None:
        """The container as runc sees it; None when runc knows no such container."""
        if not self.exists(cid):
            return None
        try:
            raw = json.loads(self.run("state", cid))
        except (SandboxError, ValueError):
            return None
        pid = raw.get("pid")
        return RuncState(status=STATUS.get(raw.get("status", ""), "unknown"),
                         pid=pid if isinstance(pid, int) and pid > 0 else None,
                         created_at=parse_rfc3339(raw.get("created")))

    def kill(self, cid: str, sig: str | int) -> None:
        """Signal the container's init. ContainerGone when there is nothing left to signal:
        runc knows no such container, or it has stopped (perhaps while we asked)."""
        number = signal_number(sig)
        if not self.exists(cid):
            raise ContainerGone(f"container {cid} does not exist")
        if self._kill_init(cid, number):
            return
        try:
            self.run("kill", cid, str(number))
        except SandboxError as e:
            state = self.state(cid)
            if state is None or state.status == "stopped":
                raise ContainerGone(str(e)) from None
            raise

    def _kill_init(self, cid: str, number: int) -> bool:
        """What `runc kill` does, without starting it (a Go binary: ~15 ms here): signal the
        init recorded in runc's state, if the process with that pid is still the one runc
        started (the same start time, as runc checks), through a pidfd so the pid cannot be
        reused between the check and the signal. False: let `runc kill` decide."""
        try:
            state = json.loads((self.root / cid / "state.json").read_bytes())
            pid, started = int(state["init_process_pid"]), int(state["init_process_start"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        fd = pidfd(pid)
        if fd is None:
            return False
        try:
            if process_start(pid) != started:
                return False
            signal_mod.pidfd_send_signal(fd, number)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def delete(self, cid: str) -> None:
        """`runc delete --force`; a container runc does not know is deleted already."""
        if not self.exists(cid):
            return
        try:
            self.run("delete", "--force", cid)
        except SandboxError:
            if self.state(cid) is not None:
                raise

    @property
    def exec_roots(self) -> Path:
        """Where exec's private runc roots go (see exec), beside the runc root."""
        return self.root.with_name(self.root.name + "-exec")

    def exec(self, cid: str, process: Path, pid_file: Path, timeout: float,
             netns: str | None = None) -> int | None:
        """`runc exec` of the OCI process object in the file `process` in a running
        container, waited for: its exit code (runc's own, 255, when it could not run it), or
        None when it outlived timeout seconds and was killed.

        netns: the network namespace the container joined by path, owned by the host's user
        namespace. runc (1.1) joins a container's user namespace before the others, and from
        inside it may no longer join such a netns (EPERM). Then runc runs from a private
        root holding a copy of the container's state without that namespace, launched
        inside the netns already (nsenter): it joins every other namespace of the container
        as for any exec, with the container's seccomp, capabilities and cgroup, and the
        process stays in the netns it was born in."""
        root, scratch, prefix = self.root, None, []
        if netns:
            scratch = self._private_root(cid)
            root, prefix = scratch, [shutil.which("nsenter") or "nsenter", f"--net={netns}"]
        try:
            return self._exec(prefix + [self.binary, "--root", str(root), "exec", "--process",
                                        str(process), "--pid-file", str(pid_file), cid],
                              pid_file, timeout)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)

    def _private_root(self, cid: str) -> Path:
        try:
            state = json.loads((self.root / cid / "state.json").read_text())
            state["config"]["namespaces"] = [ns for ns in state["config"]["namespaces"]
                                             if ns.get("type") != "NEWNET"]
        except (OSError, ValueError, KeyError, TypeError):
            raise ContainerGone(f"container {cid} has no runc state") from None
        self.exec_roots.mkdir(mode=0o700, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=self.exec_roots))
        (scratch / cid).mkdir(mode=0o700)
        (scratch / cid / "state.json").write_text(json.dumps(state))
        return scratch

    @staticmethod
    def _exec(argv: list[str], pid_file: Path, timeout: float) -> int | None:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        code = wait_child(proc, timeout)
        if code is not None:
            return code
        # runc waits on the process it started (its child, in the container's namespaces),
        # so while runc lives that pid cannot name anything else: SIGKILL it, and runc ends.
        pid = read_int(pid_file)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal_mod.SIGKILL)
        if wait_child(proc, 2.0) is None:  # still setting up: runc (its own group) goes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal_mod.SIGKILL)
            proc.wait()
        return None

    def start(self, cid: str, init_pid: int | None, timeout: float) -> None:
        if not release_fifo(self.root / cid / "exec.fifo", cid, init_pid, timeout):
            self.run("start", cid)


def release_fifo(fifo: Path, cid: str, pid: int | None, timeout: float) -> bool:
    """Do what `runc start` does, without the cost of starting it (a Go binary, ~5 ms
    and as much CPU): after `runc create`, the container's init waits to open runc's
    exec.fifo for writing; whoever opens it for reading and reads the "0" it writes lets
    it exec the process, and removing the fifo marks the container running. False when
    runc's state does not look like that (another runc layout): then `runc start` does it.
    (The gVisor shim's proxy keeps the same bargain on a fifo of its own.)"""
    try:
        if not stat.S_ISFIFO(os.lstat(fifo).st_mode):
            return False
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                data = os.read(fd, 16)
            except BlockingIOError:  # init holds it open and has not written yet
                poller = select.poll()  # not select: fds past 1024 with many tasks
                poller.register(fd, select.POLLIN)
                poller.poll(100)
                data = None
            if data:
                if data != b"0":
                    raise SandboxError(f"starting container {cid}: unexpected {data!r}")
                break
            if data == b"":  # init has not opened it yet (or is gone)
                if pid is None or not alive(pid):
                    raise SandboxError(f"starting container {cid}: its init is gone")
                time.sleep(0.0005)
            if time.monotonic() > deadline:
                raise SandboxError(f"starting container {cid}: init did not respond")
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        fifo.unlink()
    return True


def process_start(pid: int) -> int | None:
    """The start time of pid in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        return int(stat_line.rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def signal_number(sig: str | int) -> int:
    if isinstance(sig, int):
        return sig
    name = sig.upper()
    if name.isdigit():
        return int(name)
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal_mod.Signals[name])
    except KeyError:
        raise SandboxError(f"unknown signal {sig}") from None


def runc_message(stderr: str) -> str:
    """runc logs `time=... level=error msg="..."`; keep just the messages (for the user)."""
    messages = re.findall(r'msg="((?:[^"\\]|\\.)*)"', stderr)
    return "; ".join(m.replace('\\"', '"') for m in messages) or stderr.strip()


def parse_rfc3339(value: str | None) -> float | None:
    """runc's timestamps carry nanoseconds, which datetime cannot parse; trim to micros."""
    if not value:
        return None
    m = re.match(r"^(.*?T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        return None
    base, frac, tz = m.groups()
    tz = "+00:00" if tz == "Z" else tz
    stamp = datetime.fromisoformat(f"{base}.{(frac or '0')[:6].ljust(6, '0')}{tz}")
    return stamp.timestamp()
