"""What every figure stands on: a cleanup stack, the host's readings, the registry and images,
and the fargo server under test."""

from __future__ import annotations

import contextlib
import gzip
import io
import ipaddress
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import requests

from fargo.agent import holder

ROOT = Path(__file__).resolve().parent.parent
# A command that idles, and exits 0 on SIGTERM at once (sh as PID 1 ignores an untrapped TERM).
IDLE = ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"]


def await_term_trap(pid: int | None, timeout: float = 5.0) -> None:
    """Until pid (IDLE's shell) catches SIGTERM and sits in its `wait`. A stop sent before
    then could be dropped (a pid namespace's init ignores what it has no handler for; busybox
    ash lost some that came between its trap and its wait), and the stop would last until its
    SIGKILL: every system waits for this, untimed, before a timed stop."""
    deadline = time.monotonic() + timeout
    while pid and time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as f:
                caught = next(line for line in f if line.startswith("SigCgt:"))
        except (OSError, StopIteration):
            return  # gone: nothing to wait for
        if int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)) and _in_wait(pid):
            return
        time.sleep(0.001)


def _in_wait(pid: int) -> bool:
    """IDLE's shell sits in its `wait` (busybox ash waits in rt_sigsuspend, x86-64's 130)."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split()[0] == "130"
    except (OSError, IndexError):
        return True  # cannot tell: do not wait on it


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(*args: str, check: bool = True, timeout: float = 120, **kw: Any) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])}...: exit {proc.returncode}: "
                           f"{proc.stderr.strip()[-500:]}")
    return proc.stdout


# ---------------------------------------------------------------- cleanup


class Cleanup:
    """LIFO undo steps that all run, whatever fails, and that Ctrl-C cannot cut short."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], None]]] = []

    def push(self, what: str, fn: Callable[[], None]) -> None:
        self._steps.append((what, fn))

    def run(self) -> None:
        def patience(signum: int, frame: FrameType | None) -> None:
            log("cleaning up, please wait (a second signal will not interrupt this)")

        old_int = signal.signal(signal.SIGINT, patience)
        old_term = signal.signal(signal.SIGTERM, patience)
        try:
            while self._steps:
                what, fn = self._steps.pop()
                try:
                    fn()
                except Exception as err:  # noqa: BLE001 - the other steps must still run
                    log(f"cleanup: {what} failed: {err}")
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)


def term_as_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C, so the same finally blocks clean up."""

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, raise_interrupt)


def mounts_under(path: Path) -> list[str]:
    """The mounts of a state dir left on the host, and its task filesystems left in the
    holder (agent/holder.py)."""
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split(" ")[4] for line in f]
    held = holder.listing(os.path.dirname(holder.storage_rel(path, "x")))
    return [p for p in points if p.startswith(prefix)] + [f"holder: {t}" for t in held]


def remove_tree(path: Path) -> None:
    """rm -r, but never through a mount that a failed teardown left behind."""
    left = mounts_under(path)
    if left:
        log(f"leaving {path}: still mounted: {left[:3]}")
        return
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- host readings


def meminfo() -> dict[str, int]:
    """/proc/meminfo in KiB."""
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            out[key] = int(rest.split()[0])
    return out


def busy_cpu_seconds() -> float:
    """CPU time the whole machine spent busy since boot (all cores; idle and iowait left
    out), from /proc/stat. Its growth over a figure is the figure's CPU cost, whoever spent it
    (server, runtime, monitors, kernel threads): steadier than wall time on a shared host."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid: int, key: str = "VmRSS") -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_pss_kib(pid: int) -> int:
    """Proportional set size: shared library pages split among the processes mapping them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Proc:
    pid: int
    ppid: int
    comm: str
    cmdline: list[str]
    memory_cgroup: str


def processes() -> Iterator[Proc]:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1: stat.rindex(")")]
        ppid = int(stat.rpartition(")")[2].split()[1])
        mem = next((line.split(":", 2)[2] for line in cgroups.splitlines()
                    if "memory" in line.split(":", 2)[1].split(",")), "")
        yield Proc(pid, ppid, comm, [c.decode(errors="replace") for c in cmd if c], mem)


def memory_cgroup_of(pid: int) -> Path | None:
    try:
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                return Path("/sys/fs/cgroup/memory" + path)
    except OSError:
        pass
    return None


def cgroup_usage_bytes(path: Path | None) -> int:
    if path is None:
        return 0
    try:
        return int((path / "memory.usage_in_bytes").read_text())
    except (OSError, ValueError):
        return 0


def free_port() -> int:
    from fargo.agent.registry import free_port as pick

    return pick()


def free_cidr16(lo: int = 200, hi: int = 249) -> str:
    """A 10.X.0.0/16 that no host interface uses (the test suite draws from 10.100-199)."""
    used = sh("ip", "-4", "-o", "addr", "show", check=False)
    nets = [ipaddress.ip_interface(w).network for line in used.splitlines()
            for w in line.split()[3:4]]
    choices = list(range(lo, hi + 1))
    random.shuffle(choices)
    for x in choices:
        cand = ipaddress.ip_network(f"10.{x}.0.0/16")
        if not any(cand.overlaps(n) for n in nets):
            return str(cand)
    raise RuntimeError("no free 10.X.0.0/16 for the benchmark")


def tool_version(*cmd: str) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    return (out.strip().splitlines() or ["?"])[0]


# ---------------------------------------------------------------- images


def busybox_rootfs(dest: Path) -> Path:
    """The busybox image's files as a plain directory (the runc peer's prepared rootfs)."""
    from tests.imagebuild import busybox_entries, make_tar

    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(make_tar(busybox_entries())), mode="r:") as tar:
        tar.extractall(dest, filter="tar")
    return dest


def build_big_image(dest: Path, total_mb: float, layers: int = 3) -> Path:
    """An OCI layout of `layers` gzip layers of random (incompressible) bytes, total_mb in all;
    the bottom layer also holds busybox so a task can run from it."""
    from tests.imagebuild import (
        MEDIA_LAYER_GZIP,
        busybox_entries,
        dir_entry,
        file_entry,
        make_tar,
        write_oci_layout,
    )

    per_layer = int(total_mb * (1 << 20) / layers)
    blobs = []
    for i in range(layers):
        entries = busybox_entries() if i == 0 else []
        entries += [dir_entry(f"data{i}"), file_entry(f"data{i}/blob", os.urandom(per_layer))]
        # Level 1: random bytes do not shrink anyway, and the build stays quick.
        blobs.append((gzip.compress(make_tar(entries), compresslevel=1, mtime=0),
                      MEDIA_LAYER_GZIP))
    return write_oci_layout(dest, blobs)


def layout_size(layout: Path) -> int:
    return sum(p.stat().st_size for p in (layout / "blobs").rglob("*") if p.is_file())


# ---------------------------------------------------------------- the fargo server


class FargoServer:
    """`fargo server` in a child process of its own session (Ctrl-C reaches only the bench,
    which then stops the tasks through the API before stopping the server)."""

    def __init__(self, state_dir: Path, overcommit: float, extra: list[str] | None = None):
        self.state_dir = state_dir
        self.port = free_port()
        self.kube_port = free_port()  # not port + 1: that one may be taken
        self.prefix = "b" + uuid.uuid4().hex[:4]
        self.cidr = free_cidr16()
        self.overcommit = overcommit
        self.extra = extra or []
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.key_id = self.secret = ""
        # FGB_SERVER_LOG keeps the log outside the workdir, which the cleanup removes.
        self.log_path = Path(os.environ.get("FGB_SERVER_LOG")
                             or state_dir.parent / "fargo-server.log")

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "fargo", "server", "--port", str(self.port),
                "--kube-port", str(self.kube_port), "--state-dir", str(self.state_dir),
                "--no-registry", "--prefix", self.prefix,
                "--vpc-cidr", self.cidr, "--overcommit", f"{self.overcommit:g}", *self.extra]

    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=ROOT,
                                         start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("fargo server exited:\n" + self.log_path.read_text()[-3000:])
            try:
                if requests.get(self.endpoint + "/fargo/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            raise RuntimeError("fargo server did not come up:\n" + self.log_path.read_text())
        out = sh(sys.executable, "-m", "fargo", "credentials", "--state-dir", str(self.state_dir),
                 cwd=ROOT)
        values = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
        self.key_id, self.secret = values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def client(self, service: str = "ecs") -> Any:
        import boto3
        from botocore.config import Config

        # No retries: a slow or failed call should show in the numbers, not be hidden.
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret,
                            config=Config(retries={"total_max_attempts": 1},
                                          max_pool_connections=20))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def purge(self) -> None:
        self.stop()
        subprocess.run([sys.executable, "-m", "fargo", "purge", "--state-dir",
                        str(self.state_dir), "--prefix", self.prefix], cwd=ROOT, check=False,
                       capture_output=True, timeout=300)


@contextlib.contextmanager
def timer() -> Iterator[list[float]]:
    """`with timer() as t: ...` then t[0] is the elapsed seconds."""
    box: list[float] = []
    t0 = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - t0)
