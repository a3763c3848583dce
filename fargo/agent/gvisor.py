"""The gVisor sandbox backend: a task's containers share one runsc sandbox, an application
kernel of the task's own, so nothing a container does reaches the host kernel directly.

The sandbox's root container is a pause process (a static busybox sleeping), made with the
task's first container and monitored by its own conmon; each real container joins it as a
subcontainer (runsc's CRI annotations). A subcontainer's stdio are those of its `runsc start`,
so conmon drives it through gvisor_shim.sh (read its header). Everything else is the runc
backend's (sandbox.py): the same run_dir layout, logs, exit files, cgroups and rootfs mounts,
so HostRuntime routes a task to one or the other by its record and nothing else differs.

The sandbox runs in the task's cgroup (its limits hold for the sentry and the gofer, which do
all the containers' work), in the task's netns (`--network=host`: the sentry uses the netns's
own stack, so the veth, security groups and metadata endpoint are the runc tier's), without a
user namespace of the task's (runsc makes its own; this build cannot take OCI id mappings).
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..port.data import ContainerSpec
from ..port.errors import SandboxError
from . import conmon
from .cgroups import CGROUP_PARENT, TaskCgroups, oom_kills
from .layout import TaskRecord, container_id
from .ocispec import NEUTRAL_HOSTNAME
from .runc import Runc, release_fifo
from .runfiles import alive, atomic_write, read_int, unlink, wait_child, wait_gone
from .sandbox import CREATE_TIMEOUT_S, Sandbox

SHIM = Path(__file__).with_name("gvisor_shim.sh")
PAUSE_ARGS = ["/busybox", "sleep", "2147483647"]
SANDBOX_DIR = ".sandbox"  # the pause container's bundle, under the task's dir (not a name)
PLATFORM_CACHE = Path("/run/fargo-gvisor-platform")  # one probe per boot, host-wide
KVM_PROBE_TIMEOUT_S = 5.0

# Run a real guest: four bytes of real-mode code ending in hlt. KVM that only opens (as on
# hosts whose guests hang) never reaches the hlt, and the parent's timeout ends the probe.
_KVM_PROBE = r"""
import ctypes, fcntl, mmap, os, struct, sys
kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
if fcntl.ioctl(kvm, 0xAE00) != 12:
    sys.exit(1)
vm = fcntl.ioctl(kvm, 0xAE01, 0)
mem = mmap.mmap(-1, 0x1000)
mem[:4] = b"\xb0\x2a\x90\xf4"  # mov al, 42; nop; hlt
addr = ctypes.addressof(ctypes.c_char.from_buffer(mem))
fcntl.ioctl(vm, 0x4020AE46, struct.pack("IIQQQ", 0, 0, 0x1000, 0x1000, addr))
vcpu = fcntl.ioctl(vm, 0xAE41, 0)
size = fcntl.ioctl(kvm, 0xAE04)
run = mmap.mmap(vcpu, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
sregs = bytearray(312)
fcntl.ioctl(vcpu, 0x8138AE83, sregs)
sregs[0:8] = struct.pack("Q", 0)
sregs[12:14] = struct.pack("H", 0)
fcntl.ioctl(vcpu, 0x4138AE84, bytes(sregs))
regs = [0] * 18
regs[16], regs[17] = 0x1000, 2
fcntl.ioctl(vcpu, 0x4090AE82, struct.pack("18Q", *regs))
fcntl.ioctl(vcpu, 0xAE80, 0)
sys.exit(0 if struct.unpack_from("I", run, 8)[0] == 5 else 1)
"""


def kvm_works(runsc: str) -> bool:
    """Whether runsc's KVM platform really runs here (detected, never assumed): /dev/kvm
    must run a guest to its hlt, and then `runsc --platform=kvm do true` must end. On these
    machines the first passes and the second hangs, so both are asked, each with a timeout."""
    if not os.path.exists("/dev/kvm"):
        return False
    if _ends([sys.executable, "-c", _KVM_PROBE]) != 0:
        return False
    with tempfile.TemporaryDirectory(prefix="fargo-kvm-") as root:
        return _ends([runsc, f"--root={root}", "--platform=kvm", "--network=none",
                      "do", "true"]) == 0


def _ends(argv: list[str]) -> int | None:
    """argv's exit code, or None when it did not end in time (its group is killed)."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        return None
    code = wait_child(proc, KVM_PROBE_TIMEOUT_S)
    if code is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait()
    return code


@functools.cache
def platform(runsc: str = "runsc") -> str:
    """runsc's platform on this host: kvm where KVM really runs guests, ptrace otherwise.
    Probed once per boot (the answer is kept on /run) and once per process."""
    with contextlib.suppress(OSError):
        cached = PLATFORM_CACHE.read_text().strip()
        if cached in ("kvm", "ptrace"):
            return cached
    found = "kvm" if kvm_works(runsc) else "ptrace"
    with contextlib.suppress(OSError):
        PLATFORM_CACHE.write_text(found + "\n")
    return found


class Runsc(Runc):
    """runsc driven as runc is: the same commands, with the flags every call must repeat."""

    def __init__(self, binary: str, root: Path, platform_name: str | None = None) -> None:
        super().__init__(binary, root)
        self._platform = platform_name

    @property
    def platform(self) -> str:
        if self._platform is None:
            self._platform = platform(self.binary)
        return self._platform

    @property
    def flags(self) -> list[str]:
        # No overlay in the sentry's memory: a container's writes go to its rootfs's upper
        # dir on the task's own filesystem, which holds them to its ephemeral storage.
        return [f"--root={self.root}", f"--platform={self.platform}", "--network=host",
                "--overlay2=none"]

    @property
    def global_args(self) -> list[str]:
        return self.flags

    def conmon_runtime(self) -> tuple[str, list[str]]:
        return self.binary, self.flags

    def exists(self, cid: str) -> bool:
        """runsc keeps <cid>_sandbox:<sandbox id>.state from create to delete."""
        return bool(glob.glob(f"{glob.escape(str(self.root / cid))}_sandbox:*.state"))

    def exec(self, cid: str, process: Path, pid_file: Path, timeout: float,
             netns: str | None = None) -> int | None:
        """`runsc exec`: the sandbox is in the netns already, so no way around is needed. On
        timeout the process is killed inside the sandbox (its host pid is runsc's own)."""
        inner = pid_file.with_suffix(".inner")
        argv = [self.binary, *self.flags, "exec", "--process", str(process),
                "--internal-pid-file", str(inner), cid]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        code = wait_child(proc, timeout)
        if code is not None:
            return code
        try:
            self.kill_inner(cid, inner)
            if wait_child(proc, 2.0) is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait()
        finally:
            unlink(inner)
        return None

    def kill_inner(self, cid: str, inner_pid_file: Path) -> bool:
        pid = read_int(inner_pid_file)
        if pid is None:
            return False
        with contextlib.suppress(SandboxError):
            self.run("kill", "--pid", str(pid), cid, "9")
        return True


class _JoiningRunsc(Runsc):
    """What conmon runs for a container that joins its task's sandbox: the shim."""

    def conmon_runtime(self) -> tuple[str, list[str]]:
        return "/bin/sh", [str(SHIM), self.binary, *self.flags]


class GvisorSandbox(Sandbox):
    def __init__(self, root: Path, runtime_root: Path, *, runsc: str | None = None,
                 **kw: Any) -> None:
        super().__init__(root, runtime_root, **kw)
        self.runsc = runsc or shutil.which("runsc") or "/usr/bin/runsc"
        self._runtime: Runsc = Runsc(self.runsc, self.runtime_root)
        self._joining = _JoiningRunsc(self.runsc, self.runtime_root)
        self._busybox = shutil.which("busybox") or "/bin/busybox"

    # -- tasks

    def create_task(self, task_id: str, cpu_units: int, memory_mib: int, *,
                    lone: bool = False) -> None:
        """The task's cgroup with its limits (where the sandbox goes); no id range: runsc
        keeps the task's ids inside its own kernel. lone: the task runs one container only,
        which then is the sandbox's root itself (a sandbox boot less than a pause and a
        subcontainer; when it ends, so does the sandbox, as the task does)."""
        if not os.path.exists(self.runsc):
            raise SandboxError("the gvisor sandbox needs runsc, which this host does not have")
        task_dir = self._layout.task_dir(task_id)
        (task_dir / "exits").mkdir(parents=True, exist_ok=True)
        (task_dir / "sock").mkdir(exist_ok=True)
        cgroups = self._cgroups(task_id)
        if not cgroups.dirs:
            cgroups = TaskCgroups.here(task_id)
        cgroups.limit(cpu_units, memory_mib)
        record = TaskRecord(task_id=task_id, cpu_units=cpu_units, memory_mib=memory_mib,
                            cgroups=cgroups.dirs, created_at=time.time(),
                            isolation="gvisor", platform=self._runtime.platform, lone=lone)
        self._layout.write_record(record)
        self._records[task_id] = record

    def id_base(self, task_id: str) -> int:
        if self._record(task_id) is None:
            raise SandboxError(f"task {task_id} does not exist")
        return 0

    def list_tasks(self) -> list[str]:
        found = self._layout.task_ids()
        for path in glob.glob(f"{glob.escape(str(self.runtime_root))}/*_sandbox:*.state"):
            # A pause root is named by the task, a lone container's root by the container.
            found.add(path.rsplit("_sandbox:", 1)[1].removesuffix(".state").split(".")[0])
        return sorted(found)

    def list_containers(self, task_id: str) -> list[str]:
        names = self._layout.bundles(task_id) - {SANDBOX_DIR}
        pattern = f"{glob.escape(str(self.runtime_root / task_id))}.*_sandbox:*.state"
        prefix = len(str(self.runtime_root / task_id)) + 1
        for path in glob.glob(pattern):
            name, sandbox = path[prefix:].removesuffix(".state").rsplit("_sandbox:", 1)
            if sandbox in (task_id, container_id(task_id, name)):
                names.add(name)
        return sorted(names)

    def _lone(self, task_id: str) -> bool:
        record = self._record(task_id)
        return record is not None and record.lone

    def stats(self, task_id: str) -> dict[str, Any]:
        # One kernel's usage: the task's cgroup counts it all, no container has its own.
        return self._cgroups(task_id).stats(sorted(self._layout.bundles(task_id) - {SANDBOX_DIR}))

    def destroy_task(self, task_id: str) -> None:
        for name in self.list_containers(task_id):
            self.delete_container(task_id, name)
        self._stop_sandbox(task_id)
        super().destroy_task(task_id)

    # -- the sandbox itself

    def _sandbox_dir(self, task_id: str) -> Path:
        return self._layout.task_dir(task_id) / SANDBOX_DIR

    def _pause_rootfs(self) -> Path:
        """A read-only root holding only a static busybox: all the pause process needs."""
        root = self.run_dir / ".gvisor-pause"
        if not (root / "busybox").exists():
            root.mkdir(parents=True, exist_ok=True)
            tmp = root / f".busybox.{os.getpid()}"
            shutil.copy2(self._busybox, tmp)
            os.replace(tmp, root / "busybox")
        return root

    def _ensure_sandbox(self, task_id: str, netns_path: str | None, hostname: str) -> None:
        if self._runtime.exists(task_id):
            return
        bundle = self._sandbox_dir(task_id)
        bundle.mkdir(parents=True, exist_ok=True)
        (bundle / "persist").mkdir(exist_ok=True)
        network: dict[str, str] = {"type": "network"}
        if netns_path:
            network["path"] = netns_path
        config = {
            "ociVersion": "1.0.2",
            "process": {"terminal": False, "user": {"uid": 0, "gid": 0},
                        "args": PAUSE_ARGS, "env": ["PATH=/"], "cwd": "/",
                        "capabilities": {"bounding": [], "effective": [], "permitted": []},
                        "noNewPrivileges": True},
            "root": {"path": str(self._pause_rootfs()), "readonly": True},
            "hostname": hostname,
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "annotations": {"io.kubernetes.cri.container-type": "sandbox"},
            "linux": {
                # The task's own cgroup: the sentry and gofers, which run every container's
                # work, are held to the task's limits (written there by create_task).
                "cgroupsPath": f"{CGROUP_PARENT}/{task_id}",
                "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                               {"type": "mount"}, network],
            },
        }
        (bundle / "config.json").write_text(json.dumps(config))
        monitor = conmon.Monitor(cid=task_id, bundle=bundle,
                                 log_path=bundle / "sandbox.log",
                                 exit_dir=self.wait_exit_paths(task_id),
                                 socket_dir=self._layout.task_dir(task_id) / "sock")
        try:
            conmon.create(self.conmon, self._runtime, monitor, CREATE_TIMEOUT_S)
            self._runtime.run("start", task_id)
        except SandboxError as e:
            self._stop_sandbox(task_id)
            raise SandboxError(f"starting the task's gvisor sandbox: {e}") from None

    def _stop_sandbox(self, task_id: str) -> None:
        bundle = self._sandbox_dir(task_id)
        if self._runtime.exists(task_id):
            with contextlib.suppress(SandboxError):
                self._runtime.kill(task_id, "KILL")
        pid = read_int(bundle / "conmon.pid")
        if pid is not None and alive(pid):
            wait_gone(pid, 2.0)
        self._runtime.delete(task_id)
        shutil.rmtree(bundle, ignore_errors=True)
        unlink(self.wait_exit_paths(task_id) / task_id)

    # -- containers (the rest is sandbox.py's)

    def create_container(self, task_id: str, spec: ContainerSpec, rootfs: Path,
                         netns_path: str | None = None,
                         spawned: Callable[[], None] | None = None) -> None:
        if not self._layout.has_record(task_id):
            raise SandboxError(f"task {task_id} does not exist")
        if not self._lone(task_id):
            self._ensure_sandbox(task_id, netns_path, spec.hostname or NEUTRAL_HOSTNAME)
        super().create_container(task_id, spec, rootfs, netns_path, spawned)

    def _created(self, root: Path) -> None:
        """Kept mounted: runsc's gofer serves the container's files from it."""

    def _cgroup_views(self, task_id: str, name: str) -> list[tuple[str, Path]]:
        """None: the sentry's own cgroupfs answers a cgroup mount, not the host's."""
        return []

    def _config(self, task_id: str, spec: ContainerSpec, root: Path,
                netns_path: str | None) -> dict[str, Any]:
        """runc's config, less what the sandbox as a whole provides or this runsc cannot
        take: its own kernel's /sys (never a bind of the host's), no user namespace or id
        mappings, no seccomp profile (the sentry answers every syscall), no cgroup of its
        own (control gave the sandbox the task's limits, and any lone container's lower
        one: model/isolation.py)."""
        config = super()._config(task_id, spec, root, None)
        linux = config["linux"]
        for key in ("uidMappings", "gidMappings", "seccomp", "cgroupsPath", "resources"):
            linux.pop(key, None)
        network: dict[str, str] = {"type": "network"}
        if netns_path:
            network["path"] = netns_path
        linux["namespaces"] = [ns for ns in linux["namespaces"]
                               if ns["type"] in ("pid", "ipc", "uts", "mount")] + [network]
        if self._lone(task_id):  # the sandbox's root, in the task's cgroup
            config["annotations"] = {"io.kubernetes.cri.container-type": "sandbox"}
            linux["cgroupsPath"] = f"{CGROUP_PARENT}/{task_id}"
        else:
            config["annotations"] = {"io.kubernetes.cri.container-type": "container",
                                     "io.kubernetes.cri.sandbox-id": task_id}
        return config

    def _creator(self, task_id: str) -> Runc:
        return self._runtime if self._lone(task_id) else self._joining

    def start_container(self, task_id: str, name: str) -> None:
        """The shim's proxy waits on start.fifo: reading it lets the proxy run `runsc
        start`, and what it then writes says how that went. A lone root is runc's case."""
        if self._lone(task_id):
            super().start_container(task_id, name)
            return
        ctr_dir = self._layout.ctr_dir(task_id, name)
        cid = container_id(task_id, name)
        started_at = time.time()
        try:
            released = release_fifo(ctr_dir / "start.fifo", cid, read_int(ctr_dir / "pid"),
                                    CREATE_TIMEOUT_S)
        except SandboxError as e:
            raise SandboxError(_start_error(ctr_dir) or str(e)) from None
        if not released:
            raise SandboxError(f"starting container {name}: it was not created")
        atomic_write(ctr_dir / "started_at", repr(started_at))

    def exec_command(self, cid: str, netns: str | None, process: Path,
                     pid_file: Path) -> tuple[list[str], Path | None]:
        return [self.runsc, *self._runtime.flags, "exec", "--process", str(process),
                "--internal-pid-file", str(pid_file), cid], None

    def kill_exec(self, cid: str, pid_file: Path) -> bool:
        return self._runtime.kill_inner(cid, pid_file)

    def cleanup(self) -> None:
        shutil.rmtree(self.run_dir / ".gvisor-pause", ignore_errors=True)
        super().cleanup()

    def _container_oom(self, task_id: str, name: str) -> bool:
        """One kernel for all the containers: when the host's OOM killer ends the sandbox,
        it ends every container of the task, and each of them was OOM-killed."""
        memory = self._cgroups(task_id).dir("memory")
        return memory is not None and oom_kills(memory) > 0


def _start_error(ctr_dir: Path) -> str | None:
    """runsc start's own last words, from the log the shim gave it."""
    with contextlib.suppress(OSError):
        lines = [line for line in (ctr_dir / "start.log").read_text().splitlines() if line]
        if lines:
            last = lines[-1]
            with contextlib.suppress(ValueError, AttributeError):
                last = str(json.loads(last).get("msg") or last)  # runsc logs JSON lines
            return f"runsc start: {last[-500:]}"
    return None
