"""The runc sandbox backend: one task = one cgroup subtree, one container = one runc container.

Each container is monitored by its own conmon process (conmon.py), so containers outlive fargo
itself. Everything the backend needs later (bundles, pid files, exit files, the task record
with its cgroup paths: layout.py) lives under `run_dir`, and the logs under `root`, so a fresh
`Sandbox` object after a restart sees exactly what the old one left. The server keeps run_dir
on a tmpfs (/run, as podman keeps its runroot): a dozen small files are made and removed per
container, which on a disk filesystem costs more with every task that came before (ext4
without a journal scans the inodes it freed lately on every file it makes), and none of them
need to outlive a reboot, which ends every task anyway.

This class only sequences the parts: cgroups.py (a task's limits and counters), ocispec.py
(what runc is asked to make), runc.py and conmon.py (the container's life), runtimefs.py (the
host mounts the runtime needs) and userns.py (the task's id range).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from ..port.data import ContainerSpec
from ..port.errors import ContainerGone, SandboxError
from . import conmon, runtimefs, userns
from .cgroups import TaskCgroups, container_views, pids_limit, remove_parents
from .imageuser import resolve_user
from .layout import (
    RUN_FILES,
    TASK_ID_RE,
    Layout,
    TaskRecord,
    checked,
    container_id,
    joined_netns,
)
from .libc import MNT_DETACH, umount2
from .ocispec import DEFAULT_CAPS, build_config, effective_nofile, raise_nofile_limit
from .runc import Runc
from .runfiles import (
    alive,
    atomic_write,
    mtime,
    private_write,
    read_float,
    read_int,
    unlink,
    wait_gone,
)

CREATE_TIMEOUT_S = 60.0
LEGACY_ROOTFS_DIR = "/run/fargo-rootfs"  # shared by the servers of every prefix, before


@dataclass
class ContainerState:
    status: str  # "created" | "running" | "stopped" | "unknown"
    pid: int | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


class Sandbox:
    def __init__(self, root: Path, runtime_root: Path | None = None, *,
                 runc: str | None = None, conmon: str | None = None,
                 slots_dir: Path | None = None, rootfs_dir: Path | None = None,
                 run_dir: Path | None = None) -> None:
        self.root = Path(root)
        self.run_dir = Path(run_dir) if run_dir else self.root
        self.runtime_root = Path(runtime_root or "/run/fargo-runc")
        # Host-wide, shared by every server: user-namespace ranges must never overlap.
        self.slots_dir = Path(slots_dir or "/run/fargo-idmap")
        # runc mounts the rootfs from inside the user namespace, as an unprivileged host uid
        # that cannot walk through 0700 directories (/root, pytest's tmp): each rootfs is
        # mounted (or else bound) at <rootfs_dir>/<container id>, a path anyone may traverse.
        self.rootfs_dir = Path(rootfs_dir or LEGACY_ROOTFS_DIR)
        # Where servers before the per-prefix rootfs_dir bound their tasks' rootfs.
        self._rootfs_dirs = [self.rootfs_dir, *(
            [Path(LEGACY_ROOTFS_DIR)] if self.rootfs_dir != Path(LEGACY_ROOTFS_DIR) else [])]
        self.runc = runc or shutil.which("runc") or "/usr/sbin/runc"
        self.conmon = conmon or shutil.which("conmon") or "/usr/bin/conmon"
        self._runtime = Runc(self.runc, self.runtime_root)
        self._layout = Layout(self.root, self.run_dir)
        self._records: dict[str, TaskRecord] = {}  # task.json of the tasks made here
        self._capped: set[str] = set()  # tasks whose CPU quota is written (cap_cpu)
        self._rootfs_dir_ready = False

    # -- paths

    container_id = staticmethod(container_id)

    def wait_exit_paths(self, task_id: str) -> Path:
        return self._layout.exit_dir(task_id)

    def exit_file(self, task_id: str, name: str) -> Path:
        return self._layout.exit_file(task_id, name)

    def log_path(self, task_id: str, name: str) -> Path:
        return self._layout.log_path(task_id, name)

    @property
    def flat_sysfs_path(self) -> Path:
        return self.runtime_root.with_name(self.runtime_root.name + "-sys")

    def rootfs_target(self, task_id: str, name: str) -> Path:
        """Where a container's rootfs is mounted for runc (prepare_rootfs mounts it there)."""
        if not self._rootfs_dir_ready:
            self.rootfs_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
            self.rootfs_dir.chmod(0o711)  # traversable by the tasks' unprivileged uids
            self._rootfs_dir_ready = True
        return self.rootfs_dir / container_id(task_id, name)

    # -- tasks

    def create_task(self, task_id: str, cpu_units: int, memory_mib: int) -> None:
        task_dir = self._layout.task_dir(task_id)
        (task_dir / "exits").mkdir(parents=True, exist_ok=True)
        (task_dir / "sock").mkdir(exist_ok=True)
        known = self._record(task_id)
        cgroups = self._cgroups(task_id)
        if not cgroups.dirs:
            cgroups = TaskCgroups.here(task_id)
        cgroups.limit(cpu_units, memory_mib, cap_now=False)  # capped at the first start
        record = TaskRecord(task_id=task_id, cpu_units=cpu_units, memory_mib=memory_mib,
                            cgroups=cgroups.dirs, created_at=time.time())
        slot = known.id_slot if known else None
        if slot is None:
            # The slot file names task_dir, which counts as alive once task.json exists:
            # write a provisional one first so the slot is never seen as stale.
            self._layout.write_record(record)
            slot = userns.claim_slot(self.slots_dir, task_dir)
            if not userns.made(userns.base_of(slot)):
                # The one made ahead was not there in time (starts come faster than it is
                # made): the next is made now. Otherwise make_ahead() asks for it, after
                # the start.
                self.make_ahead()
        record.id_slot, record.id_base = slot, userns.base_of(slot)
        self._layout.write_record(record)
        self._records[task_id] = record  # what this process wrote, it need not read back

    def make_ahead(self) -> None:
        """Have the user namespace the next claim will take made in the background. Asked
        once a start is done rather than as it claims its slot: made during the start, its
        holder's spawn queued the start's conmon behind it at the spawn helper (6 ms)."""
        userns.warm_next(self.slots_dir)

    def id_base(self, task_id: str) -> int:
        """First host uid/gid of the task's range: container id N is host id base+N."""
        record = self._record(task_id)
        if record is None or record.id_base is None:
            raise SandboxError(f"task {task_id} does not exist")
        return record.id_base

    def _record(self, task_id: str) -> TaskRecord | None:
        record = self._records.get(task_id)
        if record is None:  # a task an earlier process made: read once, then kept
            record = self._layout.read_record(task_id)
            if record is not None:
                self._records[task_id] = record
        return record

    def _cgroups(self, task_id: str) -> TaskCgroups:
        record = self._record(task_id)
        return TaskCgroups(dict(record.cgroups) if record else {})

    def list_tasks(self) -> list[str]:
        found = self._layout.task_ids()
        if self.runtime_root.is_dir():
            found.update(p.name.split(".", 1)[0] for p in self.runtime_root.iterdir()
                         if "." in p.name)
        return sorted(found)

    def list_containers(self, task_id: str) -> list[str]:
        names = self._layout.bundles(task_id)
        prefix = task_id + "."
        names.update(n[len(prefix):] for n in _named(self.runtime_root, prefix))
        return sorted(names)

    def destroy_task(self, task_id: str) -> None:
        task_dir = self._layout.task_dir(task_id)
        for name in self.list_containers(task_id):
            self.delete_container(task_id, name)
        self._cgroups(task_id).remove(task_id)
        for rootfs_dir in self._rootfs_dirs:  # containers that never got a runc state
            for bound in _named(rootfs_dir, task_id + "."):
                runtimefs.unbind(rootfs_dir / bound)
        shutil.rmtree(task_dir / "sock", ignore_errors=True)
        record = self._record(task_id)
        self._records.pop(task_id, None)
        self._capped.discard(task_id)
        with contextlib.suppress(FileNotFoundError):
            (task_dir / "task.json").unlink()
        if record is not None and record.id_slot is not None:
            userns.release_slot(self.slots_dir, record.id_slot, task_dir)

    def forget_task(self, task_id: str) -> None:
        """Remove what destroy_task kept (logs, exit codes) once nobody will ask for them."""
        self.destroy_task(task_id)
        shutil.rmtree(self._layout.task_dir(task_id), ignore_errors=True)
        shutil.rmtree(self.root / task_id, ignore_errors=True)

    def stats(self, task_id: str) -> dict[str, Any]:
        # The containers with a bundle: a running one has one, and listing the task's own
        # directory is cheap where list_containers scans every task's runc state.
        return self._cgroups(task_id).stats(sorted(self._layout.bundles(task_id)))

    def count_io(self, task_id: str, devices: list[str]) -> None:
        self._cgroups(task_id).count_io(devices)

    # -- containers

    def create_container(self, task_id: str, spec: ContainerSpec, rootfs: Path,
                         netns_path: str | None = None,
                         spawned: Callable[[], None] | None = None) -> None:
        """Create (not start) container spec.name of the task on the root filesystem mounted
        at rootfs, joining the network namespace at netns_path (None: one of its own);
        spawned is called once its conmon runs on its own, before runc's create is done."""
        if not self._layout.has_record(task_id):
            raise SandboxError(f"task {task_id} does not exist")
        ctr_dir = self._layout.ctr_dir(task_id, spec.name)
        cid = container_id(task_id, spec.name)
        if self._runtime.exists(cid):
            raise SandboxError(f"container {spec.name} of task {task_id} already exists")
        self._cgroups(task_id).check_base(task_id)
        root, target = Path(rootfs), self.rootfs_target(task_id, spec.name)
        if root != target:  # mounted elsewhere: bound where runc can reach it
            root = runtimefs.bind_rootfs(target, root)
        try:
            ctr_dir.mkdir(parents=True, exist_ok=True)
            binds = _etc_binds(ctr_dir, spec)
            config = self._config(task_id, spec, root, netns_path)
            config["mounts"] += binds
        except BaseException:
            runtimefs.unbind(root)
            raise
        self._layout.log_dir(task_id, spec.name).mkdir(parents=True, exist_ok=True)
        # A re-created container (same name) must not inherit its predecessor's leftovers.
        shutil.rmtree(ctr_dir / "persist", ignore_errors=True)
        (ctr_dir / "persist").mkdir()
        unlink(self.exit_file(task_id, spec.name), *(ctr_dir / f for f in RUN_FILES),
               ctr_dir / "started_at", ctr_dir / "oom_killed")
        private_write(ctr_dir / "config.json", orjson.dumps(config))  # a tenth of json's time
        spec_meta = asdict(spec) | {"rootfs": str(rootfs), "netns_path": netns_path}
        private_write(ctr_dir / "spec.json", json.dumps(spec_meta))
        monitor = conmon.Monitor(cid=cid, bundle=ctr_dir,
                                 log_path=self.log_path(task_id, spec.name),
                                 exit_dir=self.wait_exit_paths(task_id),
                                 socket_dir=self._layout.task_dir(task_id) / "sock")
        try:
            conmon.create(self.conmon, self._creator(task_id), monitor, CREATE_TIMEOUT_S,
                          spawned)
        except SandboxError as e:
            self._runtime.delete(cid)
            # Nothing ran, so no exit is to be reported for it.
            unlink(self.exit_file(task_id, spec.name), *(ctr_dir / f for f in RUN_FILES))
            runtimefs.unbind(self.rootfs_dir / cid)
            raise SandboxError(f"creating container {spec.name}: {e}") from None
        self._created(root)

    def _created(self, root: Path) -> None:
        """runc has mounted the rootfs in the container's own mount namespace, where it
        stays for the container's life, so the host's mount at root is needed no more (a
        container made again mounts it again): one mount less on the host per running
        container, where every later runc reads the whole mount table, several times."""
        umount2(root, MNT_DETACH)

    def _config(self, task_id: str, spec: ContainerSpec, root: Path,
                netns_path: str | None) -> dict[str, Any]:
        """The OCI config runc is given for the container."""
        return build_config(task_id, spec, self.id_base(task_id), root, netns_path,
                            sysfs=self.flat_sysfs() if netns_path else "/sys",
                            cgroup_views=self._cgroup_views(task_id, spec.name))

    def _cgroup_views(self, task_id: str, name: str) -> list[tuple[str, Path]]:
        """The container's cgroup directories it sees under /sys/fs/cgroup."""
        return container_views(task_id, name)

    def _creator(self, task_id: str) -> Runc:
        """What conmon runs to create the task's containers."""
        return self._runtime

    def container_exists(self, task_id: str, name: str) -> bool:
        return self._runtime.exists(container_id(task_id, name))

    def exec_command(self, cid: str, netns: str | None, process: Path,
                     pid_file: Path) -> tuple[list[str], Path | None]:
        """The command that runs the OCI process object in `process` in the running
        container (runc's log aside, so a failed start leaves just its message on stderr),
        and a scratch dir to remove afterwards (runc.py's exec explains the netns case)."""
        runc, root, prefix, scratch = self._runtime, self.runtime_root, [], None
        if netns:
            scratch = runc._private_root(cid)
            root, prefix = scratch, [shutil.which("nsenter") or "nsenter", f"--net={netns}"]
        return prefix + [runc.binary, "--root", str(root), "--log", os.devnull, "exec",
                         "--process", str(process), "--pid-file", str(pid_file), cid], scratch

    def kill_exec(self, cid: str, pid_file: Path) -> bool:
        """SIGKILL an exec'd process: runc waits on the process it started, so while runc
        lives the pid it wrote names it. False when no pid is written (yet)."""
        pid = read_int(pid_file)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return True

    def _container_oom(self, task_id: str, name: str) -> bool:
        return self._cgroups(task_id).container_oom(name)

    def _oom_killed(self, task_id: str, name: str) -> bool:
        """Noted when the container was deleted (its cgroup went with it), or counted now."""
        return ((self._layout.ctr_dir(task_id, name) / "oom_killed").exists()
                or self._container_oom(task_id, name))

    def start_container(self, task_id: str, name: str) -> None:
        ctr_dir = self._layout.ctr_dir(task_id, name)
        if task_id not in self._capped:  # the workload never runs uncapped
            record = self._record(task_id)
            if record is None:
                raise SandboxError(f"task {task_id} has no sandbox")
            self._cgroups(task_id).cap_cpu(record.cpu_units)
            self._capped.add(task_id)
        started_at = time.time()  # before: a quick process may exit before runc returns
        self._runtime.start(container_id(task_id, name), read_int(ctr_dir / "pid"),
                            CREATE_TIMEOUT_S)
        atomic_write(ctr_dir / "started_at", repr(started_at))

    def create_and_start(self, task_id: str, spec: ContainerSpec, rootfs: Path,
                         netns_path: str | None = None) -> None:
        self.create_container(task_id, spec, rootfs, netns_path)
        self.start_container(task_id, spec.name)

    def signal(self, task_id: str, name: str, sig: str | int) -> None:
        checked(task_id, name)
        # Already gone (ended, or lost with a reboot): nothing is left to signal.
        with contextlib.suppress(ContainerGone):
            self._runtime.kill(container_id(task_id, name), sig)

    def exec_process(self, task_id: str, name: str, argv: list[str],
                     timeout: float) -> int | None:
        """Run argv in the running container as its own process runs: the process object of
        its config (user, env, cwd, capabilities, rlimits) with argv as args. Its exit code,
        or None when it was killed at timeout; ContainerGone when the container has ended."""
        checked(task_id, name)
        cid = container_id(task_id, name)
        ctr_dir = self._layout.ctr_dir(task_id, name)
        if self.exit_file(task_id, name).exists() or not self._runtime.exists(cid):
            raise ContainerGone(f"container {name} of task {task_id} is not running")
        try:
            config = json.loads((ctr_dir / "config.json").read_text())
            process = dict(config["process"], args=list(argv), terminal=False)
            netns = joined_netns(config, ctr_dir)
        except (OSError, ValueError, KeyError, TypeError):
            raise ContainerGone(f"container {name} of task {task_id} has no bundle") from None
        # 0600 and on the runtime's tmpfs: the environment may carry the task's secrets.
        fd, spec_path = tempfile.mkstemp(prefix="exec-", suffix=".json", dir=ctr_dir)
        pid_file = Path(spec_path).with_suffix(".pid")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(process, f)
            code = self._runtime.exec(cid, Path(spec_path), pid_file, timeout, netns=netns)
        finally:
            unlink(Path(spec_path), pid_file)
        if code not in (0, None) and self.exit_file(task_id, name).exists():
            raise ContainerGone(f"container {name} of task {task_id} ended")
        return code

    def delete_container(self, task_id: str, name: str) -> None:
        ctr_dir = self._layout.ctr_dir(task_id, name)
        cid = container_id(task_id, name)
        # Its memory cgroup (and the OOM counter in it) disappears with the container.
        if self._container_oom(task_id, name):
            atomic_write(ctr_dir / "oom_killed", "1")
        conmon_pid = read_int(ctr_dir / "conmon.pid")
        if conmon_pid is not None and alive(conmon_pid):
            # Kill first and let conmon record the exit code, so state() is final afterwards;
            # this is also much quicker than `delete --force` on a live container (~100 ms).
            with contextlib.suppress(SandboxError):
                self._runtime.kill(cid, "KILL")
            wait_gone(conmon_pid, 2.0)
        self._runtime.delete(cid)
        for rootfs_dir in self._rootfs_dirs:
            runtimefs.unbind(rootfs_dir / cid)
        unlink(*(ctr_dir / f for f in RUN_FILES))

    def result(self, task_id: str, name: str) -> tuple[int | None, bool]:
        """An ended container's exit code and whether it was OOM-killed, from conmon's exit
        file without asking runc (`runc state` costs a Go start, ~10 ms); state() when that
        file has no code yet."""
        exit_code = read_int(self.exit_file(task_id, name))
        if exit_code is None:
            st = self.state(task_id, name)
            return st.exit_code, st.oom_killed
        return exit_code, self._oom_killed(task_id, name)

    def state(self, task_id: str, name: str) -> ContainerState:
        ctr_dir = self._layout.ctr_dir(task_id, name)
        runc_state = self._runtime.state(container_id(task_id, name))
        status = runc_state.status if runc_state else "unknown"
        exit_file = self.exit_file(task_id, name)
        if status == "stopped" and not exit_file.exists():
            self._await_exit_file(ctr_dir, exit_file)
        exit_code = read_int(exit_file)
        if exit_code is not None and status in ("unknown", "running"):
            status = "stopped"  # deleted already, or runc has not noticed the exit yet
        pid = runc_state.pid if runc_state else None
        started_at = read_float(ctr_dir / "started_at")
        finished_at = mtime(exit_file) if exit_code is not None else None
        if finished_at is not None and started_at is not None:
            # The exit file's mtime comes from the kernel's coarse clock, up to a tick behind
            # the one that stamped the start: a quick process may seem to end before it began.
            finished_at = max(finished_at, started_at)
        return ContainerState(
            status=status,
            pid=pid if status in ("created", "running") else None,
            exit_code=exit_code,
            oom_killed=self._oom_killed(task_id, name),
            created_at=runc_state.created_at if runc_state else None,
            started_at=started_at,
            finished_at=finished_at,
        )

    @staticmethod
    def _await_exit_file(ctr_dir: Path, exit_file: Path) -> None:
        """runc reports 'stopped' a moment before conmon has written the exit code."""
        conmon_pid = read_int(ctr_dir / "conmon.pid")
        deadline = time.monotonic() + 2.0
        while not exit_file.exists() and time.monotonic() < deadline:
            if conmon_pid is None or not alive(conmon_pid):
                return
            time.sleep(0.002)

    def monitor_pid(self, task_id: str, name: str) -> int | None:
        """The pid of the container's conmon, as it recorded it."""
        return read_int(self._layout.ctr_dir(task_id, name) / "conmon.pid")

    def monitor_gone(self, task_id: str, name: str) -> bool:
        """True when the container's conmon has died without writing an exit file (killed,
        or the host rebooted): then nobody will ever report this container's end."""
        if self.exit_file(task_id, name).exists():
            return False
        ctr_dir = self._layout.ctr_dir(task_id, name)
        pid = self.monitor_pid(task_id, name)
        if pid is None:
            # Nothing left of the container at all (its runtime files were in a tmpfs that a
            # reboot emptied): nothing can still be watching it.
            return not ctr_dir.exists() and not self.exit_file(task_id, name).exists()
        if alive(pid):
            return False
        return not self.exit_file(task_id, name).exists()  # it may have just written it

    def stop_signal(self, task_id: str, name: str) -> str:
        """The signal that asks this container to stop, as it was created (survives restarts)."""
        try:
            meta = json.loads((self._layout.ctr_dir(task_id, name) / "spec.json").read_text())
            return meta.get("stop_signal") or "SIGTERM"
        except (OSError, ValueError):
            return "SIGTERM"

    # -- the runtime's own host mounts

    def prepare_runtime(self) -> list[Path]:
        """Keep runtime files in memory: a tmpfs of its own on the runc root, the tasks'
        runtime dir and the rootfs dir, unless one is on a tmpfs already (/run is one on
        most hosts) or holds files of a server that ran before (left on disk, as they were).
        Runtime files are small, many and short-lived (runc state, fifos, bundles, mount
        points); on a disk filesystem each creation costs an inode allocation, which on a
        journal-less ext4 scans the inodes freed in the last minute. Returns what it mounted."""
        mounted = []
        for path in dict.fromkeys([self.runtime_root, self.run_dir, self.rootfs_dir]):
            if path == self.root:
                continue  # logs and runtime files together (tests): they stay on disk
            if runtimefs.mount_tmpfs(path):
                mounted.append(path)
        return mounted

    def flat_sysfs(self) -> str:
        """A bind of sysfs alone (none of the mounts below /sys), for containers to bind."""
        return runtimefs.flat_sysfs(self.flat_sysfs_path)

    def cleanup(self) -> None:
        """After every task is destroyed: drop the flat /sys, destroyed tasks' runtime files
        (exit codes; their logs stay), the empty runc root and the shared cgroup parents."""
        runtimefs.drop_flat_sysfs(self.flat_sysfs_path)
        shutil.rmtree(self._runtime.exec_roots, ignore_errors=True)  # a crash's leftovers
        spare = []
        if self.run_dir != self.root:
            spare = [self.run_dir]
            for task_dir in self.run_dir.glob("*"):
                if TASK_ID_RE.match(task_dir.name) and not (task_dir / "task.json").exists():
                    shutil.rmtree(task_dir, ignore_errors=True)
        for path in [self.runtime_root, *spare, self.rootfs_dir]:
            runtimefs.remove_if_empty(path)
        remove_parents()


# Names other modules import from here (the backend's public face).
__all__ = ["DEFAULT_CAPS", "ContainerGone", "ContainerSpec", "ContainerState", "Sandbox",
           "SandboxError", "build_config", "effective_nofile", "pids_limit",
           "raise_nofile_limit", "resolve_user"]


def _etc_binds(ctr_dir: Path, spec: ContainerSpec) -> list[dict[str, Any]]:
    """The container's /etc/resolv.conf and /etc/hosts, written under its dir (readable by
    the task's ids, which mount them from inside the user namespace) and bound read-only."""
    files = {"resolv.conf": spec.resolv_conf, "hosts": spec.hosts}
    wanted = {name: text for name, text in files.items() if text is not None}
    if not wanted:
        return []
    etc = ctr_dir / "etc"
    etc.mkdir(exist_ok=True)
    for path in (ctr_dir.parent, ctr_dir, etc):
        path.chmod(path.stat().st_mode | 0o111)  # traversable, never listable by the task
    binds = []
    for name, text in wanted.items():
        atomic_write(etc / name, text)
        (etc / name).chmod(0o644)
        binds.append({"destination": f"/etc/{name}", "type": "bind", "source": str(etc / name),
                      "options": ["bind", "ro", "nosuid", "nodev", "noexec"]})
    return binds


def _named(directory: Path, prefix: str) -> list[str]:
    """The names in directory that start with prefix (none if it is not there). A listdir:
    these directories hold an entry per container of every task, and Path.iterdir or glob
    made an object of each (~0.5 ms a look beside 500 tasks)."""
    try:
        return [n for n in os.listdir(directory) if n.startswith(prefix)]
    except (FileNotFoundError, NotADirectoryError):
        return []
