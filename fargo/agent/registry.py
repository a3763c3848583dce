"""Run Debian's docker-registry (the CNCF distribution server) on a loopback address.

This is fargo's stand-in for ECR: a real OCI distribution server, started and stopped by us.
It runs in a session of its own, so it outlives a server that was killed: the next start (or
`fargo purge`) finds it by its command line, which names this root's config file, and ends
it before anything else may bind its port. Ready means *our* process holds the listening
socket: an answer on the port could come from anyone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import requests

from ..port.errors import AgentError
from .runfiles import alive, wait_gone

REGISTRY_BINARY = "/usr/bin/docker-registry"
END_TIMEOUT_S = 5.0
log = logging.getLogger("fargo.agent.registry")


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a currently unused TCP port (racy, but good enough on loopback)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _config_text(data_dir: Path, addr: str, secret: str) -> str:
    # Written by hand rather than with yaml.dump so the file reads like the Debian sample.
    return (
        "version: 0.1\n"
        "log:\n"
        "  level: warn\n"
        "  accesslog:\n"
        "    disabled: true\n"
        "storage:\n"
        "  filesystem:\n"
        f"    rootdirectory: {data_dir}\n"
        "  delete:\n"
        "    enabled: true\n"
        "http:\n"
        f"  addr: {addr}\n"
        f"  secret: {secret}\n"
        "  headers:\n"
        "    X-Content-Type-Options: [nosniff]\n"
    )


class LocalRegistry:
    """A docker-registry process serving plain HTTP without auth on host:port."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0,
                 extra_config: str = "") -> None:
        # Absolute: the config path in the process's command line is how it is found again.
        self.root = Path(root).absolute()
        # Appended YAML, e.g. an `auth:` section for a registry that demands tokens.
        self.extra_config = extra_config
        self.host = host
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_start = 0  # where this start's lines begin in registry.log

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def config_path(self) -> Path:
        return self.root / "config.yml"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 10) -> None:
        if self._proc is not None:
            return
        for pid in self.end_left_over():
            log.warning("ended docker-registry pid %d, left running by an earlier server "
                        "on %s", pid, self.root)
        if self.port == 0:
            self.port = free_port(self.host)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        # An explicit secret silences the "generated random secret" warning on every start.
        self.config_path.write_text(
            _config_text(self.root / "data", self.address, secrets.token_hex(16))
            + self.extra_config)
        self._log_start = self._log_size()
        with open(self.root / "registry.log", "ab") as out:
            self._proc = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,  # keep terminal signals meant for us away from it
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _log_size(self) -> int:
        try:
            return (self.root / "registry.log").stat().st_size
        except OSError:
            return 0

    def _failure(self, what: str) -> AgentError:
        """what went wrong, with the last line this start wrote to the log (the cause)."""
        try:
            with open(self.root / "registry.log", "rb") as f:
                f.seek(self._log_start)
                lines = f.read(64 << 10).decode(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        said = f": {lines[-1][:300]}" if lines else ""
        return AgentError(f"the registry on {self.address} did not start: {what}{said} "
                          f"(log: {self.root / 'registry.log'})")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self._proc is not None
        listening = False
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise self._failure(f"docker-registry exited with {self._proc.returncode}")
            listening = listening or holds_listener(self._proc.pid, self.port)
            if listening:
                try:
                    # 401 is ready too: a registry with auth answers the anonymous probe so.
                    if requests.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401):
                        return
                except requests.RequestException:
                    pass
            time.sleep(0.05)
        raise self._failure(f"not listening after {timeout:g}s")

    def end_left_over(self) -> list[int]:
        """End every docker-registry serving this root's config that is not our own child
        (a killed server's); returns their pids."""
        ended = []
        for pid in registry_pids(self.config_path):
            if pid != self.pid and _end(pid, self.config_path):
                ended.append(pid)
        return ended

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=END_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> LocalRegistry:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# ---- finding a registry by its command line, and its listening socket

def _serves(pid: int, config: Path) -> bool:
    """Whether process pid is docker-registry serving exactly this config file: its command
    line says so, and (a task's process may say anything) it runs the host's registry binary
    as this server's own user, outside any container's mount namespace."""
    try:
        exe, binary = os.stat(f"/proc/{pid}/exe"), os.stat(REGISTRY_BINARY)
        if (exe.st_dev, exe.st_ino) != (binary.st_dev, binary.st_ino):
            return False
        if os.stat(f"/proc/{pid}").st_uid != os.geteuid():
            return False
        if os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"):
            return False
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if argv[:2] != [os.fsencode(REGISTRY_BINARY), b"serve"] or len(argv) < 3:
            return False
        arg = Path(os.fsdecode(argv[2]))
        if not arg.is_absolute():  # started with a relative state dir: from its cwd
            arg = Path(os.readlink(f"/proc/{pid}/cwd")) / arg
    except OSError:
        return False
    return os.path.realpath(arg) == os.path.realpath(config)


def registry_pids(config: Path) -> list[int]:
    """The live docker-registry processes serving config."""
    return sorted(int(e) for e in os.listdir("/proc")
                  if e.isdigit() and _serves(int(e), config) and alive(int(e)))


def _end(pid: int, config: Path) -> bool:
    """SIGTERM, then SIGKILL, to pid if it still is that registry; True when it ended it."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False  # gone already
    try:
        # Checked again through the pidfd, which pins the process: a pid reused since the
        # scan is never signalled.
        if not _serves(pid, config):
            return False
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, sig)
            wait_gone(pid, END_TIMEOUT_S)
            if not alive(pid):
                return True
        raise AgentError(f"docker-registry pid {pid} of {config.parent} would not end")
    finally:
        os.close(fd)


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f, None)  # the header
            for line in f:
                fields = line.split()
                # local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; field 9 the inode.
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def holds_listener(pid: int, port: int) -> bool:
    """Whether process pid has a TCP socket listening on port (in our network namespace)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return True
    return False
