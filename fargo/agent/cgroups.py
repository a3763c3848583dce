"""A task's cgroups (v1): where they go, the limits written to them, and the counters read back.

Like runc, a task's cgroup `fargo/<task_id>` is placed relative to this process's own cgroup
in every hierarchy (runc, our grandchild, resolves the relative cgroupsPath
`fargo/<task_id>/<name>` the same way). The directories are resolved once, when the task is
made, and kept by the caller (the sandbox records them in task.json) as a `TaskCgroups`: a
restarted process still reads and removes the right ones.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..port.errors import SandboxError

CGROUP_PARENT = "fargo"
CPU_PERIOD_US = 100_000
# Hierarchies whose task-level directory fargo creates itself (limits and stats live there);
# runc creates the container-level directories in every hierarchy it knows.
TASK_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")
# Process (thread) limit of a task: 1024 per GiB of task memory, within [1024, 32768]. A
# thread costs the kernel ~20 KiB beyond its user memory, so this bounds a fork bomb's
# kernel memory at well under the task's own size, and no real workload of that size is near.
PIDS_PER_GIB = 1024
PIDS_MIN, PIDS_MAX = 1024, 32768


# cgroup v1 counts a cgroup's block I/O (blkio.throttle.io_service_bytes) only on devices it
# has a throttle rule for: the task gets a rule far above any device's speed (1 PiB/s), which
# limits nothing and turns the counters on. (U64_MAX would mean "no rule" and count nothing.)
IO_COUNTING_BPS = 1 << 50


def pids_limit(memory_mib: int) -> int:
    return max(PIDS_MIN, min(PIDS_MAX, memory_mib * PIDS_PER_GIB // 1024))


# ---------------------------------------------------------------- hierarchies


@dataclass(frozen=True)
class Hierarchy:
    key: str  # the controller field of /proc/self/cgroup: "memory", "name=systemd", "" (v2)
    mount: Path
    own: str  # this process's cgroup relative to the mount

    def task_dir(self, task_id: str) -> Path:
        return self.mount / self.own / CGROUP_PARENT / task_id

    @property
    def parent_dir(self) -> Path:
        return self.mount / self.own / CGROUP_PARENT


_hierarchy_cache: dict[str, list[Hierarchy]] = {}


def hierarchies() -> list[Hierarchy]:
    """Every mounted cgroup hierarchy with this process's position in it.

    runc resolves a relative cgroupsPath against its own cgroup in each hierarchy, and runc is
    our grandchild, so we resolve the same way to find the directories runc will use. Kept
    per position of this process: mountinfo grows with every task's mounts, and the cgroup
    hierarchies among them do not change while fargo runs.
    """
    text = Path("/proc/self/cgroup").read_text()
    cached = _hierarchy_cache.get(text)
    if cached is None:
        cached = _hierarchy_cache[text] = _read_hierarchies(text)
    return list(cached)


def _read_hierarchies(text: str) -> list[Hierarchy]:
    own: dict[str, str] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        own[controllers] = path
    found: list[Hierarchy] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fstype, _, options = post.split(" ")[:3]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        fields = pre.split(" ")
        mount_root, mount_point = fields[3], fields[4]
        key = "" if fstype == "cgroup2" else _match_key(options.split(","), own)
        if key is None or key not in own:
            continue
        rel = own[key]
        if mount_root != "/" and rel.startswith(mount_root):
            rel = rel[len(mount_root):]
        found.append(Hierarchy(key, Path(mount_point), rel.lstrip("/")))
    return found


def container_views(task_id: str, name: str) -> list[tuple[str, Path]]:
    """What container `name` of the task is to see under /sys/fs/cgroup: (name there, its own
    directory, which runc makes) for every v1 hierarchy, one of several controllers under
    each of their names too (where runc would link them). Empty on a host without v1."""
    views: list[tuple[str, Path]] = []
    for h in hierarchies():
        if not h.key:  # hybrid's v2 hierarchy: runc's cgroup mount shows none of it either
            continue
        own = h.task_dir(task_id) / name
        names = [h.mount.name] + [c for c in h.key.split(",") if "," in h.key]
        views += [(n, own) for n in dict.fromkeys(names)]
    return views


def _match_key(options: list[str], own: dict[str, str]) -> str | None:
    for key in own:
        if key and set(key.split(",")) <= set(options):
            return key
    return None


# ---------------------------------------------------------------- a task's cgroups


@dataclass(frozen=True)
class TaskCgroups:
    """The task's directory in every hierarchy, by the hierarchy's key ("cpu,cpuacct", ...)."""

    dirs: dict[str, str]

    @classmethod
    def here(cls, task_id: str) -> TaskCgroups:
        """Where a task's cgroups go when made from this process."""
        return cls({h.key: str(h.task_dir(task_id)) for h in hierarchies()})

    def dir(self, controller: str, name: str | None = None) -> Path | None:
        """The task's (or its container `name`'s) directory of one controller, if any."""
        for key, path in self.dirs.items():
            if controller in key.split(","):
                return Path(path) / name if name else Path(path)
        return None

    def limit(self, cpu_units: int, memory_mib: int, *, cap_now: bool = True) -> None:
        """Make the task-level directories and write the task's limits into them.

        cap_now=False leaves a new task's CPU quota for cap_cpu() (before its first
        container starts): until then only runc's own init runs in it, whose CPU on a busy
        host (it reads the host's mount table, mounts the container's tree) can pass a small
        task's 25 ms per 100 ms period and be throttled for the rest of the period."""
        # Limits are written through cgroup v1 files: on a host without the v1 cpu, memory and
        # pids hierarchies (cgroup v2 only), refuse rather than run a task unlimited.
        have = {c for key in self.dirs for c in key.split(",")}
        if not {"cpu", "memory", "pids"} <= have:
            raise SandboxError("this host has no cgroup v1 cpu, memory and pids hierarchies: "
                               "task limits cannot be enforced (cgroup v2 is not supported yet)")
        for key, path in self.dirs.items():
            if set(key.split(",")) & set(TASK_CONTROLLERS):
                _init_cgroup(key.split(","), Path(path), cpu_units, memory_mib, cap_now)

    def cap_cpu(self, cpu_units: int) -> None:
        """The task's CPU quota in place (idempotent)."""
        cpu = self.dir("cpu")
        if cpu is not None:
            _write(cpu / "cpu.cfs_quota_us", cpu_quota_us(cpu_units))

    def check_base(self, task_id: str) -> None:
        """runc places a container relative to its own cgroup, inherited from this process.
        If this process now sits elsewhere (restarted in another cgroup), the container would
        land outside the task's limits: refuse rather than run it unconstrained."""
        for h in hierarchies():
            expected = str(h.task_dir(task_id))
            if h.key in self.dirs and self.dirs[h.key] != expected:
                raise SandboxError(
                    f"task {task_id} cgroup is {self.dirs[h.key]} but a container created from"
                    f" this process would go under {expected}")

    def remove(self, task_id: str) -> None:
        """Remove the recorded directories and those this process would use (with children)."""
        paths = {Path(p) for p in self.dirs.values()}
        paths.update(h.task_dir(task_id) for h in hierarchies())
        for path in paths:
            _rmdir_tree(path)

    def count_io(self, devices: Iterable[str]) -> None:
        """Have the kernel count the task's reads and writes on these devices ("major:minor"):
        a throttle rule for each in the task's blkio cgroup (made here; runc puts the
        containers' below it)."""
        blkio = self.dir("blkio")
        if blkio is None:
            return
        blkio.mkdir(parents=True, exist_ok=True)
        for device in devices:
            for name in ("blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device"):
                _write(blkio / name, f"{device} {IO_COUNTING_BPS}")

    def container_oom(self, name: str) -> bool:
        memory_dir = self.dir("memory", name)
        return memory_dir is not None and oom_kills(memory_dir) > 0

    def _dirs_of(self) -> dict[str, str]:
        """controller -> the task's directory (as text: the sampler reads a dozen files of
        every task each pass, and pathlib's joins cost more than the reads)."""
        out: dict[str, str] = {}
        for key, path in self.dirs.items():
            for controller in key.split(","):
                out.setdefault(controller, path)
        return out

    def stats(self, containers: Iterable[str]) -> dict[str, Any]:
        """The task's counters, and each container's memory and CPU use (None: no counter)."""
        dirs = self._dirs_of()
        memory, cpuacct = dirs.get("memory"), dirs.get("cpuacct")
        pids, cpu, blkio = dirs.get("pids"), dirs.get("cpu"), dirs.get("blkio")
        result: dict[str, Any] = {}
        if memory is not None:
            result["memory_usage_bytes"] = _int_at(f"{memory}/memory.usage_in_bytes")
            result["memory_max_usage_bytes"] = _int_at(f"{memory}/memory.max_usage_in_bytes")
            result["memory_limit_bytes"] = _int_at(f"{memory}/memory.limit_in_bytes")
            result["memory_failcnt"] = _int_at(f"{memory}/memory.failcnt")
            result["oom_kills"] = oom_kills(Path(memory))
            result["memory_inactive_file_bytes"] = _stat_field(f"{memory}/memory.stat",
                                                               b"total_inactive_file")
        if cpuacct is not None:
            result["cpu_usage_ns"] = _int_at(f"{cpuacct}/cpuacct.usage")
        if cpu is not None:
            result["cpu_quota_us"] = _int_at(f"{cpu}/cpu.cfs_quota_us")
            result["cpu_period_us"] = _int_at(f"{cpu}/cpu.cfs_period_us")
        if pids is not None:
            result["pids_current"] = _int_at(f"{pids}/pids.current")
        if blkio is not None:
            # Only the devices the task has a counting rule on: the loop driver charges its
            # writes to the backing file's disk to the task as well (the same bytes again).
            ruled = _rule_devices(f"{blkio}/blkio.throttle.write_bps_device")
            io = io_bytes(f"{blkio}/blkio.throttle.io_service_bytes_recursive", ruled)
            if io is not None and ruled:
                result["storage_read_bytes"], result["storage_write_bytes"] = io
        result["containers"] = {
            name: {
                "memory_usage_bytes": _int_at(f"{memory}/{name}/memory.usage_in_bytes")
                if memory is not None else None,
                "cpu_usage_ns": _int_at(f"{cpuacct}/{name}/cpuacct.usage")
                if cpuacct is not None else None,
            }
            for name in containers
        }
        return result


def remove_parents() -> None:
    """Drop the shared `fargo` parents once empty (another server's tasks keep them)."""
    for h in hierarchies():
        with contextlib.suppress(OSError):
            h.parent_dir.rmdir()


def cpu_quota_us(cpu_units: int) -> int:
    return cpu_units * CPU_PERIOD_US // 1024


def _init_cgroup(controllers: list[str], path: Path, cpu_units: int, memory_mib: int,
                 cap_now: bool = True) -> None:
    # By mkdir's answer, not a look first: on cgroupfs a name that is not there yet (a new
    # task's) takes the slow lookup, once per hierarchy.
    try:
        path.mkdir()
        created = True
    except FileExistsError:
        created = False
    except FileNotFoundError:  # the parent too (fargo/ in this hierarchy)
        path.mkdir(parents=True, exist_ok=True)
        created = True
    if "cpu" in controllers:  # co-mounted hierarchies look like "cpu,cpuacct"
        # A new directory starts at the kernel's 100 ms period. Each write of the period or
        # the quota makes the kernel check every cgroup of the host's bandwidth (0.3 ms of
        # CPU with 500 tasks running), so it is written only where it may differ.
        if not created:
            _write(path / "cpu.cfs_period_us", CPU_PERIOD_US)
        # A new directory has no quota (-1); one made before (a start redone after a
        # restart, whose containers may run already) keeps the task's.
        if cap_now or not created:
            _write(path / "cpu.cfs_quota_us", cpu_quota_us(cpu_units))
        _write(path / "cpu.shares", max(2, cpu_units))
    if "memory" in controllers:
        if created:
            # Children must count against the task limit (v1 default may be flat).
            with contextlib.suppress(OSError):
                _write(path / "memory.use_hierarchy", 1)
        _set_memory_limit(path, memory_mib << 20)
    if "pids" in controllers:
        _write(path / "pids.max", pids_limit(memory_mib))


def _set_memory_limit(path: Path, limit: int) -> None:
    """Set memory and memory+swap to the same value, in whichever order the kernel accepts
    (memsw may never be below the memory limit)."""
    memsw = path / "memory.memsw.limit_in_bytes"
    files = [path / "memory.limit_in_bytes"] + ([memsw] if _has_memsw(path) else [])
    try:
        for f in files:
            _write(f, limit)
    except OSError:
        for f in reversed(files):
            _write(f, limit)


_memsw: dict[Path, bool] = {}


def _has_memsw(path: Path) -> bool:
    """Whether the memory hierarchy that path is in accounts for swap (the kernel's
    swapaccount), asked once per hierarchy: a missing name on cgroupfs is a slow lookup at
    every start."""
    root = path.parent
    known = _memsw.get(root)
    if known is None:
        known = _memsw[root] = (path / "memory.memsw.limit_in_bytes").exists()
    return known


def _write(path: Path, value: str | int) -> None:
    # One open, write and close: a Python file object adds a stat, an ioctl and two seeks,
    # and a start writes a dozen of these.
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _read_bytes(path: str | Path, limit: int = 1 << 16) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def _int_at(path: str) -> int | None:
    """The number a cgroup counter file holds (None: no such file, or no number)."""
    data = _read_bytes(path, 64)
    try:
        return int(data.split(None, 1)[0]) if data else None
    except ValueError:
        return None


def _stat_field(path: str | Path, name: bytes) -> int | None:
    """The value of one `name value` line of a flat-keyed cgroup file (memory.stat)."""
    data = _read_bytes(path)
    if data is None:
        return None
    key = name + b" "
    if data.startswith(key):
        start = len(key)
    else:
        at = data.find(b"\n" + key)
        if at == -1:
            return None
        start = at + 1 + len(key)
    end = data.find(b"\n", start)
    try:
        return int(data[start:end if end != -1 else len(data)])
    except ValueError:
        return None


def _rule_devices(path: str) -> set[bytes]:
    """The devices ("major:minor") a blkio throttle file has a rule for."""
    data = _read_bytes(path)
    return {line.split(b" ", 1)[0] for line in (data or b"").split(b"\n") if line.strip()}


def io_bytes(path: str | Path, devices: set[bytes] | None = None) -> tuple[int, int] | None:
    """(read, written) bytes summed over the devices (all, or these) of a blkio
    io_service_bytes file (lines `major:minor Read N`); None: no such file."""
    data = _read_bytes(path)
    if data is None:
        return None
    read = written = 0
    for line in data.split(b"\n"):
        parts = line.split(b" ")
        if len(parts) == 3 and parts[2].isdigit() and \
                (devices is None or parts[0] in devices):
            if parts[1] == b"Read":
                read += int(parts[2])
            elif parts[1] == b"Write":
                written += int(parts[2])
    return read, written


def oom_kills(memory_dir: Path) -> int:
    try:
        for line in (memory_dir / "memory.oom_control").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _rmdir_tree(path: Path) -> None:
    """Remove a cgroup directory and its child cgroups (cgroupfs only allows rmdir)."""
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir():
            _rmdir_tree(child)
    for attempt in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            # Just-exited processes keep a cgroup busy for a moment.
            if e.errno != errno.EBUSY or attempt == 49:
                raise
            time.sleep(0.01)
