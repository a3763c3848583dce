"""One HAProxy per load balancer: a master-worker daemon started inside the load balancer's
netns, which outlives the fargo process that started it (as conmon does for containers).

`haproxy -W -D` forks its master and the first process exits once the listeners are bound,
so its exit status says whether it came up. The master writes its pid to the pid file,
keeps its CLI on master.sock and re-executes itself on `reload` (the new worker takes the
listening sockets over from the master, so no connection is refused meanwhile; the old
worker finishes what it holds). A later fargo finds the master again by the pid file, checked
against the command line and the netns it runs in."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ...port.data import DEFAULT_PATH
from ...port.loadbalancer import LoadBalancerError
from ..runfiles import alive, read_int
from . import runtime
from .config import Paths

START_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 10.0
RELOAD_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


def _alerts(text: str) -> str:
    """HAProxy's own words for what it refused: its ALERT lines, else the last lines."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    alerts = [line.split(":", 1)[1].strip() if line.startswith("[ALERT]") and ":" in line
              else line for line in lines if line.startswith("[ALERT]")]
    chosen = alerts or [line for line in lines if not line.startswith("[NOTICE]")][-5:]
    return "; ".join(chosen)[:2000] or "no message"


class Haproxy:
    def __init__(self, binary: str = "haproxy") -> None:
        self.binary = binary

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", DEFAULT_PATH)}

    def check(self, config: str) -> None:
        """`haproxy -c`: the configuration parses and its files are there."""
        try:
            done = subprocess.run([self.binary, "-c", "-f", config], capture_output=True,
                                  text=True, timeout=60, env=self._env(), check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise LoadBalancerError(f"HAProxy could not check the configuration: {err}") from None
        if done.returncode != 0:
            raise LoadBalancerError("HAProxy refused the configuration: "
                                    + _alerts(done.stderr + done.stdout))

    def start(self, paths: Paths, netns_path: str) -> int:
        """Start the master in the netns; its pid once its worker answers on the stats
        socket. Whatever it left is the caller's to remove if this raises."""
        nsenter = shutil.which("nsenter") or "nsenter"
        argv = [nsenter, f"--net={netns_path}", self.binary, "-W", "-D", "-f", paths.config,
                "-p", paths.pid, "-S", f"{paths.master},mode,600"]
        with open(paths.log, "ab") as log:
            try:
                done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      start_new_session=True, env=self._env(), cwd=paths.dir,
                                      timeout=START_TIMEOUT_S, check=False)
            except (OSError, subprocess.TimeoutExpired) as err:
                raise LoadBalancerError(f"HAProxy did not start: {err}") from None
        if done.returncode != 0:
            raise LoadBalancerError("HAProxy did not start: " + _alerts(_read(paths.log)))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            pid = self.master(paths)
            if pid is not None:
                try:
                    info = runtime.command(paths.stats, "show info", timeout=2)
                    if runtime.worker_pid(info):
                        return pid
                except OSError:
                    pass
            if time.monotonic() >= deadline:
                raise LoadBalancerError("HAProxy did not come up: "
                                        + _alerts(_read(paths.log)))
            time.sleep(0.02)

    def master(self, paths: Paths) -> int | None:
        """The running master's pid, if the pid file names a live HAProxy of this config."""
        pid = read_int(Path(paths.pid))
        if pid is None or not alive(pid):
            return None
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if paths.config.encode() in argv else None

    def reload(self, paths: Paths) -> None:
        """The master re-reads the configuration and starts a new worker; done once that
        worker answers. A refused reload leaves the old worker serving: an error."""
        before = runtime.parse_procs(runtime.command(paths.master, "show proc"))
        try:
            runtime.command(paths.master, "reload")
        except OSError:
            pass  # the master closes the CLI as it re-executes
        deadline = time.monotonic() + RELOAD_TIMEOUT_S
        while True:
            try:
                now = runtime.parse_procs(runtime.command(paths.master, "show proc", timeout=5))
            except (OSError, LoadBalancerError):
                now = None
            if now is not None and now.failed > before.failed:
                raise LoadBalancerError("HAProxy refused the new configuration: "
                                        + _alerts(_read(paths.log)))
            if now is not None and now.reloads > before.reloads and now.workers and \
                    not set(now.workers) & set(before.workers):
                new = now.workers[0]
                try:
                    info = runtime.command(paths.stats, "show info", timeout=2)
                    if runtime.worker_pid(info) == new:
                        return
                except OSError:
                    pass
            if time.monotonic() >= deadline:
                raise LoadBalancerError("HAProxy did not finish reloading")
            time.sleep(0.02)

    def stop(self, paths: Paths, netns_inode: int | None) -> None:
        """The master (it takes its workers along), then anything else still running in
        the load balancer's netns."""
        pid = self.master(paths)
        if pid is not None:
            _signal(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.01)
        if netns_inode is not None:
            for _ in range(3):
                left = in_netns(netns_inode)
                if not left:
                    break
                for other in left:
                    _signal(other, signal.SIGKILL)
                time.sleep(0.05)


def in_netns(inode: int) -> list[int]:
    """Every live process whose network namespace is the one with this inode."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino == inode and alive(int(entry)):
                found.append(int(entry))
        except OSError:
            continue
    return found


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")[-20000:]
    except OSError:
        return ""
