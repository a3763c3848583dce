"""The data plane of one host as the port's Runtime and Images: sandboxes (cgroups, user
namespace, ephemeral storage), containers under conmon and runc, and the image store. The
network side is agent/netplane.py; this needs it only for where a task's netns is."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..port.data import (
    ContainerExit,
    ContainerSpec,
    ContainerStats,
    Image,
    LogChunk,
    SandboxSpec,
    TaskStats,
    VolumeFile,
)
from ..port.errors import AgentError, SandboxError
from ..port.protocols import ExecSession
from . import holder, userns
from .execsession import start_session
from .gvisor import GvisorSandbox
from .images import ImageStore
from .libc import lift_fd
from .netplane import HostNetworkPlane
from .netstats import NetCounters
from .runfiles import Pidfds, pidfd
from .sandbox import Sandbox
from .spawner import SPAWNER
from .storage import TaskStorage
from .volumes import TaskVolumes

log = logging.getLogger("fargo.agent")
_LOG_READ_MAX = 1 << 20  # bytes of log one read_log hands back at most
MONITOR_CHECK_S = 1.0  # how often a container with no exit file has its conmon looked at


class HostRuntime:
    def __init__(self, state_dir: Path, network: HostNetworkPlane, prefix: str = "fg"):
        self.root = state_dir
        self.network = network
        self.images = ImageStore(state_dir / "images")
        run_dir, rootfs_dir = Path(f"/run/{prefix}-tasks"), Path(f"/run/{prefix}-rootfs")
        self.sandbox = Sandbox(state_dir / "tasks", runtime_root=Path(f"/run/{prefix}-runc"),
                               run_dir=run_dir, rootfs_dir=rootfs_dir)
        # The gVisor tier shares the runc tier's layout (logs, exit files, rootfs mounts):
        # only how a container is made and run differs, so a task is routed by its record.
        self.gvisor = GvisorSandbox(state_dir / "tasks", Path(f"/run/{prefix}-runsc"),
                                    run_dir=run_dir, rootfs_dir=rootfs_dir)
        self._tiers: dict[str, Sandbox] = {}
        self.storage = TaskStorage(state_dir / "storage")
        self._stop_signals: dict[tuple[str, str], str] = {}
        self._checked: dict[tuple[str, str], float] = {}
        self._exit_paths: dict[tuple[str, str], bytes] = {}
        # A pidfd of each watched container's conmon, made at its first look: whether it
        # still runs is then one poll, not a pid file and /proc read (every running
        # container is looked at every few seconds: 0.3 ms each, 1.6 ms a start with 500
        # running).
        self._monitors: Pidfds[tuple[str, str]] = Pidfds(lift_fd)
        self._io_uncounted: set[str] = set()  # sandboxes made whose I/O counting is not set
        self._lock = threading.Lock()
        self.net_counters = NetCounters()  # every task's veth from one read of the host's
        # Task volumes: mounted in each task's runtime dir, scratch ones on its storage.
        self.volumes = TaskVolumes(lambda tid: self.sandbox.wait_exit_paths(tid).parent,
                                   self.storage_dir, self._storage_mount)

    def _storage_rel(self, tid: str) -> str:
        """Where the task's filesystem is mounted in the holder (agent/holder.py)."""
        return holder.storage_rel(self.root, tid)

    def _in_holder(self, step: Callable[[], int]) -> int:
        """A storage step run inside the holder, where this server's key is noted as its."""
        def noted() -> int:
            holder.own_storage(self.root)
            return step()

        return holder.inside(noted)

    def _legacy_storage(self, tid: str) -> Path | None:
        """Where a server from before the holder mounted the task's filesystem, if it did."""
        path = self.root / "rootfs" / tid
        return path if path.exists() else None

    def storage_dir(self, tid: str) -> Path:
        """The task's filesystem, as a path of this process (reached into the holder)."""
        return self._legacy_storage(tid) or Path(holder.outside(self._storage_rel(tid)))

    def _storage_mount(self, tid: str, sub: str) -> Callable[[], int] | None:
        """What hands back a detached mount of the directory sub of the task's filesystem,
        which mounts on the host take their source from (None: one on the host, by path)."""
        if self._legacy_storage(tid) is not None:
            return None
        rel = f"{self._storage_rel(tid)}/{sub}"
        return lambda: holder.clone(rel)

    def _rootfs_dir(self, tid: str, name: str) -> Path:
        return self.storage_dir(tid) / name

    def _box(self, tid: str) -> Sandbox:
        """The backend that made the task: its record says (read once, then kept)."""
        box = self._tiers.get(tid)
        if box is None:
            record = self.sandbox._layout.read_record(tid)
            box = self.gvisor if record is not None and record.isolation == "gvisor" \
                else self.sandbox
            if record is not None:
                self._tiers[tid] = box
        return box

    def _id_base(self, tid: str) -> int | None:
        """The task's host id range (None: the gVisor tier, which keeps ids in its kernel)."""
        box = self._box(tid)
        return None if box is self.gvisor else box.id_base(tid)

    # ---- the host as a whole
    def prepare(self) -> list[Path]:
        try:
            return self.sandbox.prepare_runtime() + self.gvisor.prepare_runtime()
        except SandboxError as err:  # e.g. mounts refused here: the files stay on disk
            log.warning("runtime files stay where they are: %s", err)
            return []

    def warm(self, count: int) -> None:
        self.storage.warm(count)
        SPAWNER.warm()  # the helper every conmon and user namespace holder starts from

    def close(self) -> None:
        self.storage.close()  # the unused warm filesystems detach themselves

    # ---- Images
    def pull(self, ref: str, credentials: tuple[str, str] | None) -> Image:
        return self.images.pull(ref, credentials)

    # ---- Runtime
    def create_sandbox(self, tid: str, spec: SandboxSpec) -> None:
        """The task's cgroups and user-namespace range, and its ephemeral storage: a
        filesystem of its own in the holder, where its containers' writable layers go."""
        if spec.isolation not in ("runc", "gvisor"):
            raise SandboxError(f"unknown sandbox isolation {spec.isolation!r}")
        box = self._tiers[tid] = self.gvisor if spec.isolation == "gvisor" else self.sandbox
        if box is self.gvisor:
            self.gvisor.create_task(tid, spec.cpu_units, spec.memory_mib,
                                    lone=spec.containers == 1)
        else:
            box.create_task(tid, spec.cpu_units, spec.memory_mib)
        id_base = self._id_base(tid)
        if id_base is not None:
            # The range's user namespace, which every idmapped layer mount of the task needs:
            # made now, while the network is being made, rather than in the first mount.
            userns.userns_fd(id_base)
        legacy = self._legacy_storage(tid)
        if legacy is not None:  # a start an older server began: finished as it began
            self.storage.mount(tid, spec.storage_gib, legacy)
        else:
            self.storage.mount(tid, spec.storage_gib, Path(holder.inner(self._storage_rel(tid))),
                               there=self._in_holder)
        self.volumes.make(tid, spec.volumes, id_base or 0)
        # Its storage I/O counters are set while runc creates the first container (this
        # worker thread only waits then), off the start's path; before any start at latest.
        self._io_uncounted.add(tid)

    def _count_io_once(self, tid: str) -> None:
        try:
            self._io_uncounted.remove(tid)  # one caller wins, whichever thread
        except KeyError:
            return
        self._count_io(tid)

    def _count_io(self, tid: str) -> None:
        """Storage counters for the task: its own filesystem's (loop) device, and the one its
        image layers are read from unless that also holds the loop devices' backing files:
        the loop driver charges its writes to the backing file to the task's cgroup too, so
        a rule there would count every byte written twice."""
        def device(path: Path) -> str | None:
            try:
                dev = os.stat(path).st_dev
            except OSError:
                return None
            name = f"{os.major(dev)}:{os.minor(dev)}"
            return name if os.path.exists(f"/sys/dev/block/{name}") else None

        own, images = device(self.storage_dir(tid)), device(self.images.root)
        devices = [own] if own else []
        if images and images not in (own, device(self.storage.root)):
            devices.append(images)
        try:
            self.sandbox.count_io(tid, devices)
        except OSError as err:  # no blkio here, or it refuses the rule: no storage figures
            log.debug("task %s: storage I/O not counted: %s", tid, err)

    def prepare_rootfs(self, tid: str, name: str, image: Image) -> None:
        self._mount_rootfs(tid, name, image)

    def _mount_rootfs(self, tid: str, name: str, image: Image) -> Path:
        # Mounted where runc takes it from, not in the task's storage and bound there: one
        # mount less per container, and every mount makes each runc read of mountinfo longer.
        target = self.sandbox.rootfs_target(tid, name)
        if os.path.ismount(target):
            return target
        return self.images.mount_rootfs(image, self._rootfs_dir(tid, name),
                                        id_base=self._id_base(tid), target=target,
                                        workdir_mount=self._storage_mount(tid, name))

    def create_container(self, tid: str, spec: ContainerSpec, image: Image,
                         spawned: Callable[[], None] | None = None) -> None:
        rootfs = self._mount_rootfs(tid, spec.name, image)
        self._stop_signals[(tid, spec.name)] = spec.stop_signal
        if spec.volume_mounts:
            mounts = self.volumes.oci_mounts(tid, spec, rootfs, self._id_base(tid) or 0)
            spec = dataclasses.replace(spec, extra_mounts=[*spec.extra_mounts, *mounts])
        def monitor_running() -> None:
            if spawned is not None:
                spawned()
            self._count_io_once(tid)

        self._box(tid).create_container(tid, spec, rootfs=rootfs,
                                        netns_path=self.network.netns_path(tid),
                                        spawned=monitor_running)

    def start_container(self, tid: str, name: str) -> None:
        self._count_io_once(tid)  # (a create that failed before its monitor ran)
        self._box(tid).start_container(tid, name)
        # What the next start takes is made now, between starts: not beside this one's
        # runc, nor (the user namespace holder) ahead of its conmon at the spawn helper.
        self.storage.refill()
        self.sandbox.make_ahead()

    def remove_container(self, tid: str, name: str) -> None:
        self._box(tid).delete_container(tid, name)
        self.images.unmount_rootfs(self._rootfs_dir(tid, name))
        self._checked.pop((tid, name), None)
        self._monitors.forget([(tid, name)])

    def exited(self, tid: str, name: str) -> bool:
        """A stat, and only when that finds nothing and a while has passed, a look at
        whether its conmon still lives."""
        path = self._exit_paths.get((tid, name))
        if path is None:  # the path is fixed for the container's life: build it once
            path = self._exit_paths[(tid, name)] = os.fsencode(self.sandbox.exit_file(tid, name))
        if os.path.exists(path):
            return True
        now = time.monotonic()
        last = self._checked.get((tid, name), 0.0)
        if last == float("inf"):
            return True  # found gone before: stays gone
        if now - last < MONITOR_CHECK_S:
            return False
        if self._monitors.ended((tid, name),
                                lambda: self._box(tid).monitor_pid(tid, name)) is False:
            self._checked[(tid, name)] = now
            return False
        gone = self.sandbox.monitor_gone(tid, name)  # ended, or no pidfd: the whole look
        self._checked[(tid, name)] = float("inf") if gone else now
        return gone

    def exit_fd(self, tid: str, name: str) -> int | None:
        """A pidfd of the container's conmon, which writes the exit file and then ends."""
        pid = self._box(tid).monitor_pid(tid, name)
        fd = pidfd(pid) if pid is not None else None
        # None: ended already, and exited() sees to it. Held while the task runs: above the
        # short-lived descriptors.
        return lift_fd(fd) if fd is not None else None

    def result(self, tid: str, name: str) -> ContainerExit:
        return ContainerExit(*self._box(tid).result(tid, name))

    def started(self, tid: str, name: str) -> bool:
        box = self._box(tid)
        if name not in box.list_containers(tid):
            return False
        st = box.state(tid, name)
        # runc may have lost it (a reboot, a lost root) while its start or exit was written.
        return (st.status in ("running", "stopped") or st.started_at is not None
                or st.exit_code is not None)

    def signal(self, tid: str, name: str, sig: str | None) -> None:
        if sig is None:
            sig = self._stop_signals.get((tid, name)) or self.sandbox.stop_signal(tid, name)
        self._box(tid).signal(tid, name, sig)

    def write_volume(self, tid: str, name: str, files: list[VolumeFile]) -> bool:
        return self.volumes.write(tid, name, files, self._id_base(tid) or 0)

    def volume_usage(self, tid: str, name: str) -> int:
        return self.volumes.usage(tid, name)

    def exec_check(self, tid: str, name: str, argv: list[str], timeout: float) -> int | None:
        return self._box(tid).exec_process(tid, name, argv, timeout)

    def exec_session(self, tid: str, name: str, argv: list[str], *, tty: bool,
                     stdin: bool) -> ExecSession:
        return start_session(self._box(tid), tid, name, argv, tty_=tty, stdin=stdin)

    def stats(self, tid: str) -> TaskStats:
        raw = self._box(tid).stats(tid)
        parts = {name: ContainerStats(c.get("memory_usage_bytes"), c.get("cpu_usage_ns"))
                 for name, c in (raw.get("containers") or {}).items()}
        return TaskStats(
            memory_inactive_file_bytes=raw.get("memory_inactive_file_bytes"),
            network=self.net_counters.of(self.network.network.veth_name(tid)),
            storage_read_bytes=raw.get("storage_read_bytes"),
            storage_write_bytes=raw.get("storage_write_bytes"),
            memory_usage_bytes=raw.get("memory_usage_bytes"),
            memory_max_usage_bytes=raw.get("memory_max_usage_bytes"),
            memory_limit_bytes=raw.get("memory_limit_bytes"),
            memory_failcnt=raw.get("memory_failcnt"), oom_kills=raw.get("oom_kills"),
            cpu_usage_ns=raw.get("cpu_usage_ns"), cpu_quota_us=raw.get("cpu_quota_us"),
            cpu_period_us=raw.get("cpu_period_us"), pids_current=raw.get("pids_current"),
            containers=parts)

    def read_log(self, tid: str, name: str, offset: int, limit: int) -> LogChunk:
        path = self.sandbox.log_path(tid, name)
        try:
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read(max(0, min(limit, _LOG_READ_MAX)))
        except FileNotFoundError:
            return LogChunk(b"", offset, False)
        return LogChunk(data, offset + len(data), True)

    def destroy(self, tid: str) -> None:
        for key in [k for k in list(self._stop_signals) if k[0] == tid]:
            self._stop_signals.pop(key, None)
        for cache in (self._checked, self._exit_paths):
            # list(): one copy in C, while the loop thread may be adding keys
            for key in [k for k in list(cache) if k[0] == tid]:
                cache.pop(key, None)
        self._io_uncounted.discard(tid)
        self._monitors.forget([k for k in self._monitors.keys() if k[0] == tid])
        try:
            self._box(tid).destroy_task(tid)
        finally:
            self.volumes.remove(tid)  # before the storage the scratch ones live on
            legacy = self._legacy_storage(tid)
            reached = holder.reach(self._storage_rel(tid))  # no holder made to look in
            base = legacy or (Path(reached) if reached is not None else None)
            if base is not None and base.exists():
                for d in base.iterdir():
                    if d.name not in ("lost+found", ".volumes"):  # the filesystem's own
                        # Also when destroy_task failed half-way: an overlay left mounted
                        # would pin the task's filesystem and its loop device.
                        with contextlib.suppress(AgentError):
                            self.images.unmount_rootfs(
                                d, target=self.sandbox.rootfs_target(tid, d.name))
                        self.images.unmount_rootfs(d)  # where older servers mounted it
                if legacy is not None:
                    self.storage.unmount(base)
                else:
                    self.storage.unmount(Path(holder.inner(self._storage_rel(tid))),
                                         there=holder.inside)
                shutil.rmtree(base, ignore_errors=True)

    def forget(self, tid: str) -> None:
        self._box(tid).forget_task(tid)
        self._tiers.pop(tid, None)

    # ---- fargo purge
    def purge(self) -> None:
        """Remove every task sandbox this host holds, then the networks: a clean slate."""
        tids = set(self.sandbox.list_tasks()) | set(self.gvisor.list_tasks())
        rootfs = self.root / "rootfs"
        if rootfs.exists():  # older servers' task filesystems
            tids |= {d.name for d in rootfs.iterdir()}
        tids |= set(holder.listing(os.path.dirname(self._storage_rel("x"))))
        for tid in sorted(tids):
            try:
                try:
                    self.destroy(tid)
                finally:
                    self.network.detach(tid)
            except Exception:  # noqa: BLE001 - purge goes on with the rest
                log.exception("purging task %s", tid)
        self.network.cleanup()  # bridges and this prefix's nftables tables
        self.gvisor.cleanup()
        self.sandbox.cleanup()
