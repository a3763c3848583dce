"""The runc sandbox backend: one task = one cgroup subtree, one container = one runc container.

Each container is monitored by its own conmon process, so containers outlive fargo itself: conmon
runs `runc create`, streams the container's stdout/stderr into a k8s-file log, records the exit
code in an exit file, and then exits. Everything the backend needs later (bundles, pid files,
exit files, the task's cgroup paths) lives under `run_dir`, and the logs under `root`, so a
fresh `Sandbox` object after a restart sees exactly what the old one left. The server keeps
run_dir on a tmpfs (/run, as podman keeps its runroot): a dozen small files are made and
removed per container, which on a disk filesystem costs more with every task that came before
(ext4 without a journal scans the inodes it freed lately on every file it makes), and none of
them need to outlive a reboot, which ends every task anyway.

Cgroups: like runc, a task's cgroup `fargo/<task_id>` is placed relative to this process's
own cgroup in every hierarchy (runc, our grandchild, resolves the relative cgroupsPath
`fargo/<task_id>/<name>` the same way). The resolved directories are recorded in task.json,
so a restarted process can still read and remove them.

Layout under run_dir/<task_id>/ (run_dir is root unless given):
    task.json                 sizes and the cgroup directory of the task in every hierarchy
    exits/<task_id>.<name>    conmon's exit file (the exit code as text)
    sock/                     conmon's attach-socket symlinks (unused, but conmon insists)
    <name>/config.json        the OCI bundle (rootfs is the caller's, referenced by path)
    <name>/spec.json, pid, conmon.pid, started_at, oom_killed, persist/
and under root/<task_id>/:
    <name>/container.log      k8s-file log; kept when the container or task is deleted
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import resource
import select
import shutil
import signal as signal_mod
import stat
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import seccomp, userns

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
TASK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
CGROUP_PARENT = "fargo"
CPU_PERIOD_US = 100_000
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CREATE_TIMEOUT_S = 60.0
LEGACY_ROOTFS_DIR = "/run/fargo-rootfs"  # shared by the servers of every prefix, before
RUNTIME_TMPFS_MIB = 256  # runtime files of a few hundred tasks take a few MiB
# Hierarchies whose task-level directory fargo creates itself (limits and stats live there);
# runc creates the container-level directories in every hierarchy it knows.
TASK_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")

# Docker's default capability set; Fargate lets a task add SYS_PTRACE and nothing else.
ADDABLE_CAPS = {"CAP_SYS_PTRACE"}
DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]
MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# Process (thread) limit of a task: 1024 per GiB of task memory, within [1024, 32768]. A
# thread costs the kernel ~20 KiB beyond its user memory, so this bounds a fork bomb's
# kernel memory at well under the task's own size, and no real workload of that size is near.
PIDS_PER_GIB = 1024
PIDS_MIN, PIDS_MAX = 1024, 32768


def pids_limit(memory_mib: int) -> int:
    return max(PIDS_MIN, min(PIDS_MAX, memory_mib * PIDS_PER_GIB // 1024))


class SandboxError(RuntimeError):
    """A runtime operation failed; the message carries runc's or conmon's own words."""


@dataclass
class ContainerSpec:
    name: str
    rootfs: Path
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/"
    user: str = ""
    netns_path: str | None = None
    cpu_shares: int | None = None
    memory_mib: int | None = None
    memory_reservation_mib: int | None = None
    stop_signal: str = "SIGTERM"
    hostname: str | None = None
    nofile: int = 65535
    readonly_rootfs: bool = False
    extra_caps: list[str] = field(default_factory=list)
    dropped_caps: list[str] = field(default_factory=list)  # "ALL" drops the default set
    # Raw OCI mount objects appended after the defaults (volumes, /etc/hosts binds, ...).
    extra_mounts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ContainerState:
    status: str  # "created" | "running" | "stopped" | "unknown"
    pid: int | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


# ---------------------------------------------------------------- k8s-file logs


def parse_log_line(line: str) -> tuple[str, str, str, bool]:
    """Split one k8s-file line: `<rfc3339> <stdout|stderr> <P|F>[:tags] <message>`.

    Returns (timestamp, stream, message, partial); partial means the message continues on the
    next line of the same stream (conmon splits long lines and lines without a newline).
    """
    line = line.rstrip("\n")
    parts = line.split(" ", 3)
    if len(parts) < 3:
        raise ValueError(f"not a k8s-file log line: {line!r}")
    timestamp, stream, tags = parts[0], parts[1], parts[2]
    message = parts[3] if len(parts) == 4 else ""
    return timestamp, stream, message, tags.split(":")[0] == "P"


# ---------------------------------------------------------------- cgroups


@dataclass(frozen=True)
class _Hierarchy:
    key: str  # the controller field of /proc/self/cgroup: "memory", "name=systemd", "" (v2)
    mount: Path
    own: str  # this process's cgroup relative to the mount


_hierarchy_cache: dict[str, list[_Hierarchy]] = {}


def _hierarchies() -> list[_Hierarchy]:
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


def _read_hierarchies(text: str) -> list[_Hierarchy]:
    own: dict[str, str] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        own[controllers] = path
    found: list[_Hierarchy] = []
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
        found.append(_Hierarchy(key, Path(mount_point), rel.lstrip("/")))
    return found


def _match_key(options: list[str], own: dict[str, str]) -> str | None:
    for key in own:
        if key and set(key.split(",")) <= set(options):
            return key
    return None


def _write(path: Path, value: str | int) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _oom_kills(memory_dir: Path) -> int:
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


# ---------------------------------------------------------------- users inside the rootfs


def _resolve_in_root(root: Path, path: str) -> Path:
    """Resolve `path` as if `root` were `/`: symlinks in an image cannot escape its rootfs."""
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise SandboxError(f"too many symlinks resolving {path} in {root}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def _read_db(rootfs: Path, name: str) -> list[list[str]]:
    """/etc/passwd or /etc/group of an image, read as host root: only a regular file, and only
    its first MiB (an image may ship a FIFO or a device node there)."""
    try:
        fd = os.open(_resolve_in_root(rootfs, f"/etc/{name}"),
                     os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return []
            text = f.read(1 << 20).decode(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(rootfs: Path, user: str) -> tuple[int, int, list[int], str]:
    """Docker's rules for `user`: returns (uid, gid, additional gids, home directory)."""
    user_part, _, group_part = user.partition(":")
    passwd = _read_db(rootfs, "passwd")
    entry = None
    if user_part == "":
        user_part = "0"
    if user_part.isdigit():
        uid = int(user_part)
        entry = next((e for e in passwd if len(e) >= 6 and e[2] == user_part), None)
    else:
        entry = next((e for e in passwd if len(e) >= 6 and e[0] == user_part), None)
        if entry is None:
            raise SandboxError(f"unable to find user {user_part}: no matching entries in passwd")
        uid = int(entry[2])
    gid = int(entry[3]) if entry else 0
    home = entry[5] if entry else "/"
    groups = _read_db(rootfs, "group")
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            g = next((e for e in groups if len(e) >= 3 and e[0] == group_part), None)
            if g is None:
                raise SandboxError(f"unable to find group {group_part}")
            gid = int(g[2])
    extra: list[int] = []
    if entry is not None:
        for g in groups:
            if len(g) >= 4 and entry[0] in g[3].split(",") and g[2].isdigit():
                if int(g[2]) != gid and int(g[2]) not in extra:
                    extra.append(int(g[2]))
    return uid, gid, extra, home


# ---------------------------------------------------------------- OCI config


def _signal_number(sig: str | int) -> int:
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


CAP_SYS_RESOURCE = 24


def _has_cap(bit: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


def effective_nofile(wanted: int) -> int:
    """The nofile limit a container can really get from here.

    runc sets rlimits inside the container from limits inherited through conmon; raising a
    hard limit needs CAP_SYS_RESOURCE, which some hosts (this one) withhold even from root.
    Without it, clamp to our own hard limit rather than fail every container.
    """
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or wanted <= hard or _has_cap(CAP_SYS_RESOURCE):
        return wanted
    return hard


def raise_nofile_limit(wanted: int = 65535) -> int:
    """Lift this process's own nofile limits to `wanted` if it may (containers inherit the
    hard limit through conmon and runc); returns the nofile containers will really get."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        with contextlib.suppress(OSError, ValueError):  # needs CAP_SYS_RESOURCE
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), wanted))
    return effective_nofile(wanted)


def _cap_name(cap: str) -> str:
    name = cap.upper()
    return name if name.startswith("CAP_") else "CAP_" + name


def _caps(extra: list[str], dropped: list[str] | None = None) -> list[str]:
    """Docker's rule: the default set, less what is dropped ("ALL": everything), plus adds."""
    gone = {_cap_name(c) for c in dropped or []}
    caps = [] if "CAP_ALL" in gone else [c for c in DEFAULT_CAPS if c not in gone]
    for cap in extra:
        name = cap.upper()
        name = name if name.startswith("CAP_") else "CAP_" + name
        if name not in ADDABLE_CAPS and name not in DEFAULT_CAPS:
            raise SandboxError(f"capability {cap!r} cannot be added; only SYS_PTRACE can")
        if name not in caps:
            caps.append(name)
    return caps


# sysfs belongs to the network namespace: mounting it needs CAP_SYS_ADMIN over the netns's
# owner, the host's user namespace, when a container joins the task's netns from its own user
# namespace. Such containers get the host's /sys bound read-only instead (as podman does),
# with the network device directories hidden so the host's interfaces stay unseen.
# The source is best a *flat* copy of /sys (Sandbox.flat_sysfs: sysfs alone, bound once from
# the host): the host's mounts below /sys (cgroup hierarchies, securityfs, debugfs...) then
# stay out, and runc has a dozen fewer mounts to copy per container (a fifth of its CPU). A
# container cannot make that copy itself: from its user namespace, binding /sys without what
# is mounted under it is refused (it would uncover what those mounts hide).
def sysfs_bind(source: str = "/sys") -> dict[str, Any]:
    return {"destination": "/sys", "type": "bind", "source": source,
            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
SYSFS_NET_MASKS = ["/sys/class/net", "/sys/devices/virtual/net"]


def _default_mounts(joined_netns: bool, sysfs: str = "/sys") -> list[dict[str, Any]]:
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        sysfs_bind(sysfs) if joined_netns else
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]
    return mounts


def _resources(spec: ContainerSpec) -> dict[str, Any]:
    res: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if spec.cpu_shares is not None:
        res["cpu"] = {"shares": max(2, spec.cpu_shares)}
    memory: dict[str, int] = {}
    if spec.memory_mib is not None:
        # swap = limit: no swap beyond the memory limit, like an ECS hard limit.
        memory["limit"] = memory["swap"] = spec.memory_mib << 20
    if spec.memory_reservation_mib is not None:
        memory["reservation"] = spec.memory_reservation_mib << 20
    if memory:
        res["memory"] = memory
    return res


def build_config(task_id: str, spec: ContainerSpec, id_base: int,
                 root_path: Path | None = None, sysfs: str = "/sys") -> dict[str, Any]:
    """The OCI runtime config (1.0.2) for one container of a task.

    The container runs in a user namespace of its own mapping ids 0..65535 to the task's host
    range from id_base (runc creates it after joining the task's netns by path, while still
    privileged); the rootfs must already show files owned by those ids (idmapped layers).
    """
    uid, gid, extra_gids, home = resolve_user(spec.rootfs, spec.user)
    env = dict(spec.env)
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOME", home)
    if spec.hostname:
        env.setdefault("HOSTNAME", spec.hostname)
    caps = _caps(spec.extra_caps, spec.dropped_caps)
    nofile = effective_nofile(spec.nofile)
    network: dict[str, str] = {"type": "network"}
    if spec.netns_path:
        network["path"] = spec.netns_path
    user: dict[str, Any] = {"uid": uid, "gid": gid}
    if extra_gids:
        user["additionalGids"] = extra_gids
    config: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": user,
            "args": list(spec.args),
            "env": [f"{k}={v}" for k, v in env.items()],
            "cwd": spec.cwd or "/",
            # Like Docker: no inheritable/ambient set, so a non-root user keeps no caps.
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
            "noNewPrivileges": True,
        },
        "root": {"path": str(root_path or Path(spec.rootfs).resolve()),
                 "readonly": spec.readonly_rootfs},
        "mounts": _default_mounts(bool(spec.netns_path), sysfs) + list(spec.extra_mounts),
        "linux": {
            "cgroupsPath": f"{CGROUP_PARENT}/{task_id}/{spec.name}",
            "resources": _resources(spec),
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                           {"type": "mount"}, {"type": "user"}, network],
            "uidMappings": userns.mappings(id_base),
            "gidMappings": userns.mappings(id_base),
            "maskedPaths": MASKED_PATHS + (SYSFS_NET_MASKS if spec.netns_path else []),
            "readonlyPaths": READONLY_PATHS,
            "seccomp": seccomp.profile(caps),
        },
    }
    if spec.hostname:
        config["hostname"] = spec.hostname
    return config


# ---------------------------------------------------------------- the backend


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
        self._metas: dict[str, dict[str, Any]] = {}  # task.json of the tasks made here
        self._rootfs_dir_ready = False

    # -- paths

    @staticmethod
    def _checked(task_id: str, name: str | None = None) -> None:
        if not TASK_ID_RE.match(task_id):
            raise SandboxError(f"bad task id {task_id!r}")
        if name is not None and not NAME_RE.match(name):
            raise SandboxError(f"bad container name {name!r}")

    def _task_dir(self, task_id: str) -> Path:
        self._checked(task_id)
        run = self.run_dir / task_id
        if self.run_dir != self.root and not run.exists():
            legacy = self.root / task_id
            if (legacy / "task.json").exists() or (legacy / "exits").is_dir():
                return legacy  # made by a server from before run_dir: it stays where it is
        return run

    def _ctr_dir(self, task_id: str, name: str) -> Path:
        self._checked(task_id, name)
        return self._task_dir(task_id) / name

    @staticmethod
    def container_id(task_id: str, name: str) -> str:
        """runc's id: '.' cannot occur in either part, so the split is unambiguous."""
        return f"{task_id}.{name}"

    def wait_exit_paths(self, task_id: str) -> Path:
        return self._task_dir(task_id) / "exits"

    def exit_file(self, task_id: str, name: str) -> Path:
        return self.wait_exit_paths(task_id) / self.container_id(task_id, name)

    def _log_dir(self, task_id: str, name: str) -> Path:
        self._checked(task_id, name)
        return self.root / task_id / name

    def log_path(self, task_id: str, name: str) -> Path:
        return self._log_dir(task_id, name) / "container.log"

    # -- tasks

    def create_task(self, task_id: str, cpu_units: int, memory_mib: int) -> None:
        task_dir = self._task_dir(task_id)
        (task_dir / "exits").mkdir(parents=True, exist_ok=True)
        (task_dir / "sock").mkdir(exist_ok=True)
        cgroups = self._task_cgroups(task_id) or {
            h.key: str(h.mount / h.own / CGROUP_PARENT / task_id) for h in _hierarchies()
        }
        # Limits are written through cgroup v1 files: on a host without the v1 cpu, memory and
        # pids hierarchies (cgroup v2 only), refuse rather than run a task unlimited.
        have = {c for key in cgroups for c in key.split(",")}
        if not {"cpu", "memory", "pids"} <= have:
            raise SandboxError("this host has no cgroup v1 cpu, memory and pids hierarchies: "
                               "task limits cannot be enforced (cgroup v2 is not supported yet)")
        for key, path in cgroups.items():
            if set(key.split(",")) & set(TASK_CONTROLLERS):
                self._init_cgroup(key, Path(path), cpu_units, memory_mib)
        meta = {"task_id": task_id, "cpu_units": cpu_units, "memory_mib": memory_mib,
                "cgroups": cgroups, "created_at": time.time()}
        slot = self._task_meta(task_id).get("id_slot")
        if slot is None:
            # The slot file names task_dir, which counts as alive once task.json exists:
            # write a provisional one first so the slot is never seen as stale.
            _atomic_write(task_dir / "task.json", json.dumps(meta))
            slot = userns.claim_slot(self.slots_dir, task_dir)
        meta |= {"id_slot": slot, "id_base": userns.base_of(slot)}
        _atomic_write(task_dir / "task.json", json.dumps(meta))
        self._metas[task_id] = meta  # what this process wrote, it need not read back

    def id_base(self, task_id: str) -> int:
        """First host uid/gid of the task's range: container id N is host id base+N."""
        base = self._task_meta(task_id).get("id_base")
        if not isinstance(base, int):
            raise SandboxError(f"task {task_id} does not exist")
        return base

    def _init_cgroup(self, key: str, path: Path, cpu_units: int, memory_mib: int) -> None:
        created = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        controllers = key.split(",")  # co-mounted hierarchies look like "cpu,cpuacct"
        if "cpu" in controllers:
            _write(path / "cpu.cfs_period_us", CPU_PERIOD_US)
            _write(path / "cpu.cfs_quota_us", cpu_units * CPU_PERIOD_US // 1024)
            _write(path / "cpu.shares", max(2, cpu_units))
        if "memory" in controllers:
            if created:
                # Children must count against the task limit (v1 default may be flat).
                with contextlib.suppress(OSError):
                    _write(path / "memory.use_hierarchy", 1)
            _set_memory_limit(path, memory_mib << 20)
        if "pids" in controllers:
            _write(path / "pids.max", pids_limit(memory_mib))

    def _task_meta(self, task_id: str) -> dict[str, Any]:
        known = self._metas.get(task_id)
        if known is not None:
            return dict(known)
        try:
            return dict(json.loads((self._task_dir(task_id) / "task.json").read_text()))
        except (OSError, ValueError):
            return {}

    def _task_cgroups(self, task_id: str) -> dict[str, str]:
        return dict(self._task_meta(task_id).get("cgroups", {}))

    def _cgroup(self, task_id: str, controller: str, name: str | None = None) -> Path | None:
        for key, path in self._task_cgroups(task_id).items():
            if controller in key.split(","):
                return Path(path) / name if name else Path(path)
        return None

    def _check_cgroup_base(self, task_id: str) -> None:
        """runc places a container relative to its own cgroup, inherited from this process.
        If this process now sits elsewhere (restarted in another cgroup), the container would
        land outside the task's limits: refuse rather than run it unconstrained."""
        recorded = self._task_cgroups(task_id)
        for h in _hierarchies():
            expected = str(h.mount / h.own / CGROUP_PARENT / task_id)
            if h.key in recorded and recorded[h.key] != expected:
                raise SandboxError(
                    f"task {task_id} cgroup is {recorded[h.key]} but a container created from"
                    f" this process would go under {expected}")

    def list_tasks(self) -> list[str]:
        found: set[str] = set()
        for base in {self.run_dir, self.root}:  # root: tasks of servers from before run_dir
            if base.is_dir():
                found.update(p.name for p in base.iterdir() if (p / "task.json").exists())
        if self.runtime_root.is_dir():
            found.update(p.name.split(".", 1)[0] for p in self.runtime_root.iterdir()
                         if "." in p.name)
        return sorted(found)

    def list_containers(self, task_id: str) -> list[str]:
        names: set[str] = set()
        task_dir = self._task_dir(task_id)
        if task_dir.is_dir():
            names.update(p.name for p in task_dir.iterdir() if (p / "config.json").exists())
        prefix = task_id + "."
        if self.runtime_root.is_dir():
            names.update(p.name[len(prefix):] for p in self.runtime_root.iterdir()
                         if p.name.startswith(prefix))
        return sorted(names)

    def destroy_task(self, task_id: str) -> None:
        task_dir = self._task_dir(task_id)
        for name in self.list_containers(task_id):
            self.delete_container(task_id, name)
        paths = {Path(p) for p in self._task_cgroups(task_id).values()}
        paths.update(h.mount / h.own / CGROUP_PARENT / task_id for h in _hierarchies())
        for path in paths:
            _rmdir_tree(path)
        for rootfs_dir in self._rootfs_dirs:  # containers that never got a runc state
            if rootfs_dir.is_dir():
                for bound in rootfs_dir.glob(f"{task_id}.*"):
                    _unbind(bound)
        shutil.rmtree(task_dir / "sock", ignore_errors=True)
        slot = self._task_meta(task_id).get("id_slot")
        self._metas.pop(task_id, None)
        with contextlib.suppress(FileNotFoundError):
            (task_dir / "task.json").unlink()
        if isinstance(slot, int):
            userns.release_slot(self.slots_dir, slot, task_dir)

    # -- containers

    def create_container(self, task_id: str, spec: ContainerSpec) -> None:
        if not (self._task_dir(task_id) / "task.json").exists():
            raise SandboxError(f"task {task_id} does not exist")
        ctr_dir = self._ctr_dir(task_id, spec.name)
        cid = self.container_id(task_id, spec.name)
        if (self.runtime_root / cid).exists():
            raise SandboxError(f"container {spec.name} of task {task_id} already exists")
        self._check_cgroup_base(task_id)
        root, target = Path(spec.rootfs), self.rootfs_target(task_id, spec.name)
        if root != target:  # mounted elsewhere: bound where runc can reach it
            root = self._bind_rootfs(target, root)
        try:
            config = build_config(task_id, spec, self.id_base(task_id), root,
                                  sysfs=self.flat_sysfs() if spec.netns_path else "/sys")
        except BaseException:
            _unbind(root)
            raise
        ctr_dir.mkdir(parents=True, exist_ok=True)
        self._log_dir(task_id, spec.name).mkdir(parents=True, exist_ok=True)
        # A re-created container (same name) must not inherit its predecessor's leftovers.
        shutil.rmtree(ctr_dir / "persist", ignore_errors=True)
        (ctr_dir / "persist").mkdir()
        _unlink(self.exit_file(task_id, spec.name), *(ctr_dir / f for f in _RUN_FILES),
                ctr_dir / "started_at", ctr_dir / "oom_killed")
        (ctr_dir / "config.json").write_text(json.dumps(config))
        spec_meta = asdict(spec) | {"rootfs": str(spec.rootfs)}
        (ctr_dir / "spec.json").write_text(json.dumps(spec_meta))
        self._run_conmon(task_id, spec.name, cid, ctr_dir)

    def forget_task(self, task_id: str) -> None:
        """Remove what destroy_task kept (logs, exit codes) once nobody will ask for them."""
        self.destroy_task(task_id)
        shutil.rmtree(self._task_dir(task_id), ignore_errors=True)
        shutil.rmtree(self.root / task_id, ignore_errors=True)

    @property
    def flat_sysfs_path(self) -> Path:
        return self.runtime_root.with_name(self.runtime_root.name + "-sys")

    def rootfs_target(self, task_id: str, name: str) -> Path:
        """Where a container's rootfs is mounted for runc (prepare_rootfs mounts it there)."""
        if not self._rootfs_dir_ready:
            self.rootfs_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
            self.rootfs_dir.chmod(0o711)  # traversable by the tasks' unprivileged uids
            self._rootfs_dir_ready = True
        return self.rootfs_dir / self.container_id(task_id, name)

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
            path.mkdir(mode=0o711, parents=True, exist_ok=True)
            if _on_tmpfs(path) or any(path.iterdir()):
                continue
            options = f"mode=0711,size={RUNTIME_TMPFS_MIB}m".encode()
            if _libc.mount(b"fargo-run", os.fsencode(path), b"tmpfs",
                           _MS_NOSUID | _MS_NODEV, options) != 0:
                err = ctypes.get_errno()
                raise SandboxError(f"mounting a tmpfs at {path}: {os.strerror(err)}")
            mounted.append(path)
        return mounted

    def flat_sysfs(self) -> str:
        """A bind of sysfs alone (none of the mounts below /sys), for containers to bind."""
        path = self.flat_sysfs_path
        with _FLAT_SYSFS_LOCK:
            if not os.path.ismount(path):
                path.mkdir(mode=0o755, parents=True, exist_ok=True)
                if _libc.mount(b"/sys", os.fsencode(path), None, _MS_BIND, None) != 0:
                    err = ctypes.get_errno()
                    raise SandboxError(f"binding /sys at {path}: {os.strerror(err)}")
                # Private: nothing mounted here later spreads to other namespaces, or back.
                # (Where /run is a shared mount, its peers got a copy of the bind as it was
                # made: one per server start, as with the netns and rootfs binds there.)
                if _libc.mount(None, os.fsencode(path), None, _MS_PRIVATE, None) != 0:
                    err = ctypes.get_errno()
                    _libc.umount2(os.fsencode(path), _MNT_DETACH)
                    raise SandboxError(f"making {path} private: {os.strerror(err)}")
        return str(path)

    def cleanup(self) -> None:
        """After every task is destroyed: drop the flat /sys, destroyed tasks' runtime files
        (exit codes; their logs stay), the empty runc root and the shared cgroup parents."""
        flat = self.flat_sysfs_path
        if os.path.ismount(flat):
            _libc.umount2(os.fsencode(flat), _MNT_DETACH)
        with contextlib.suppress(OSError):
            flat.rmdir()
        spare = []
        if self.run_dir != self.root:
            spare = [self.run_dir]
            for task_dir in self.run_dir.glob("*"):
                if TASK_ID_RE.match(task_dir.name) and not (task_dir / "task.json").exists():
                    shutil.rmtree(task_dir, ignore_errors=True)
        for path in [self.runtime_root, *spare, self.rootfs_dir] + [
                h.mount / h.own / CGROUP_PARENT for h in _hierarchies()]:
            with contextlib.suppress(OSError):
                if os.path.ismount(path) and not any(path.iterdir()):
                    _libc.umount2(os.fsencode(path), _MNT_DETACH)  # prepare_runtime's tmpfs
                path.rmdir()  # only succeeds when empty: another server's tasks stay

    def monitor_gone(self, task_id: str, name: str) -> bool:
        """True when the container's conmon has died without writing an exit file (killed,
        or the host rebooted): then nobody will ever report this container's end."""
        if self.exit_file(task_id, name).exists():
            return False
        ctr_dir = self._ctr_dir(task_id, name)
        pid = _read_int(ctr_dir / "conmon.pid")
        if pid is None:
            # Nothing left of the container at all (its runtime files were in a tmpfs that a
            # reboot emptied): nothing can still be watching it.
            return not ctr_dir.exists() and not self.exit_file(task_id, name).exists()
        if _alive(pid):
            return False
        return not self.exit_file(task_id, name).exists()  # it may have just written it

    def stop_signal(self, task_id: str, name: str) -> str:
        """The signal that asks this container to stop, as it was created (survives restarts)."""
        try:
            meta = json.loads((self._ctr_dir(task_id, name) / "spec.json").read_text())
            return meta.get("stop_signal") or "SIGTERM"
        except (OSError, ValueError):
            return "SIGTERM"

    def _conmon_args(self, task_id: str, name: str, cid: str, ctr_dir: Path) -> list[str]:
        task_dir = self._task_dir(task_id)
        return [
            self.conmon,
            "--cid", cid,
            # cuuid only names the attach-socket symlink; keep it short for sun_path.
            "--cuuid", hashlib.sha1(cid.encode()).hexdigest()[:12],
            "--name", cid,
            "--runtime", self.runc,
            "--runtime-arg", f"--root={self.runtime_root}",
            "--bundle", str(ctr_dir),
            "--container-pidfile", str(ctr_dir / "pid"),
            "--conmon-pidfile", str(ctr_dir / "conmon.pid"),
            "--log-path", f"k8s-file:{self.log_path(task_id, name)}",
            "--exit-dir", str(task_dir / "exits"),
            "--persist-dir", str(ctr_dir / "persist"),
            "--socket-dir-path", str(task_dir / "sock"),
            "--log-level", "error",
        ]

    def _run_conmon(self, task_id: str, name: str, cid: str, ctr_dir: Path) -> None:
        """Start conmon and return once `runc create` is done.

        conmon forks a daemon and its first process exits at once; the daemon reports the
        container pid (or runc's error) as JSON on the _OCI_SYNCPIPE fd after `runc create`.
        """
        read_fd, write_fd = os.pipe()
        try:
            env = {"PATH": os.environ.get("PATH", DEFAULT_PATH), "_OCI_SYNCPIPE": str(write_fd)}
            proc = subprocess.Popen(
                self._conmon_args(task_id, name, cid, ctr_dir), env=env, pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True, cwd=ctr_dir,
            )
            os.close(write_fd)
            write_fd = -1
            _, err = proc.communicate(timeout=CREATE_TIMEOUT_S)
            reply = _read_sync(read_fd, CREATE_TIMEOUT_S)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        pid = reply.get("pid", reply.get("data", -1)) if reply else -1
        if not isinstance(pid, int) or pid <= 0:
            message = (reply or {}).get("message") or err.decode(errors="replace")
            self._force_delete(cid)
            # Nothing ran, so no exit is to be reported for it.
            _unlink(self.exit_file(task_id, name), *(ctr_dir / f for f in _RUN_FILES))
            message = _runc_message(message)
            _unbind(self.rootfs_dir / cid)
            raise SandboxError(f"creating container {name}: {message or 'conmon failed'}")

    @staticmethod
    def _bind_rootfs(target: Path, rootfs: Path) -> Path:
        _unbind(target)
        target.mkdir(mode=0o700)
        if _libc.mount(os.fsencode(rootfs.resolve()), os.fsencode(target), None,
                       _MS_BIND | _MS_REC, None) != 0:
            err = ctypes.get_errno()
            target.rmdir()
            raise SandboxError(f"bind-mounting rootfs {rootfs}: {os.strerror(err)}")
        return target

    def start_container(self, task_id: str, name: str) -> None:
        ctr_dir = self._ctr_dir(task_id, name)
        started_at = time.time()  # before: a quick process may exit before runc returns
        cid = self.container_id(task_id, name)
        if not self._release_init(cid, ctr_dir):
            self._runc("start", cid)
        _atomic_write(ctr_dir / "started_at", repr(started_at))

    def _release_init(self, cid: str, ctr_dir: Path) -> bool:
        """Do what `runc start` does, without the cost of starting it (a Go binary, ~5 ms
        and as much CPU): after `runc create`, the container's init waits to open runc's
        exec.fifo for writing; whoever opens it for reading and reads the "0" it writes lets
        it exec the process, and removing the fifo marks the container running. False when
        runc's state does not look like that (another runc layout): then `runc start` does it."""
        fifo = self.runtime_root / cid / "exec.fifo"
        try:
            if not stat.S_ISFIFO(os.lstat(fifo).st_mode):
                return False
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            pid = _read_int(ctr_dir / "pid")
            deadline = time.monotonic() + CREATE_TIMEOUT_S
            while True:
                try:
                    data = os.read(fd, 16)
                except BlockingIOError:  # init holds it open and has not written yet
                    select.select([fd], [], [], 0.1)
                    data = None
                if data:
                    if data != b"0":
                        raise SandboxError(f"starting container {cid}: unexpected {data!r}")
                    break
                if data == b"":  # init has not opened it yet (or is gone)
                    if pid is None or not _alive(pid):
                        raise SandboxError(f"starting container {cid}: its init is gone")
                    time.sleep(0.0005)
                if time.monotonic() > deadline:
                    raise SandboxError(f"starting container {cid}: init did not respond")
        finally:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            fifo.unlink()
        return True

    def create_and_start(self, task_id: str, spec: ContainerSpec) -> None:
        self.create_container(task_id, spec)
        self.start_container(task_id, spec.name)

    def signal(self, task_id: str, name: str, sig: str | int) -> None:
        self._ctr_dir(task_id, name)
        cid = self.container_id(task_id, name)
        try:
            self._runc("kill", cid, str(_signal_number(sig)))
        except SandboxError as e:
            # Already gone (ended, or lost with a reboot): nothing is left to signal.
            if "not running" not in str(e) and "does not exist" not in str(e):
                raise

    def delete_container(self, task_id: str, name: str) -> None:
        ctr_dir = self._ctr_dir(task_id, name)
        cid = self.container_id(task_id, name)
        # Its memory cgroup (and the OOM counter in it) disappears with the container.
        if self._container_oom(task_id, name):
            _atomic_write(ctr_dir / "oom_killed", "1")
        conmon_pid = _read_int(ctr_dir / "conmon.pid")
        if conmon_pid is not None and _alive(conmon_pid):
            # Kill first and let conmon record the exit code, so state() is final afterwards;
            # this is also much quicker than `delete --force` on a live container (~100 ms).
            with contextlib.suppress(SandboxError):
                self._runc("kill", cid, "KILL")
            _wait_gone(conmon_pid, 2.0)
        self._force_delete(cid)
        for rootfs_dir in self._rootfs_dirs:
            _unbind(rootfs_dir / cid)
        _unlink(*(ctr_dir / f for f in _RUN_FILES))

    def _force_delete(self, cid: str) -> None:
        try:
            self._runc("delete", "--force", cid)
        except SandboxError as e:
            if "does not exist" not in str(e):
                raise

    def state(self, task_id: str, name: str) -> ContainerState:
        ctr_dir = self._ctr_dir(task_id, name)
        runc_state = self._runc_state(self.container_id(task_id, name))
        status = _STATUS.get(runc_state.get("status", ""), "unknown") if runc_state else "unknown"
        exit_file = self.exit_file(task_id, name)
        if status == "stopped" and not exit_file.exists():
            self._await_exit_file(ctr_dir, exit_file)
        exit_code = _read_int(exit_file)
        if exit_code is not None and status in ("unknown", "running"):
            status = "stopped"  # deleted already, or runc has not noticed the exit yet
        pid = runc_state.get("pid") if runc_state else None
        return ContainerState(
            status=status,
            pid=pid if status in ("created", "running") and pid else None,
            exit_code=exit_code,
            oom_killed=(ctr_dir / "oom_killed").exists() or self._container_oom(task_id, name),
            created_at=_parse_rfc3339(runc_state.get("created")) if runc_state else None,
            started_at=_read_float(ctr_dir / "started_at"),
            finished_at=_mtime(exit_file) if exit_code is not None else None,
        )

    def _container_oom(self, task_id: str, name: str) -> bool:
        memory_dir = self._cgroup(task_id, "memory", name)
        return memory_dir is not None and _oom_kills(memory_dir) > 0

    def _await_exit_file(self, ctr_dir: Path, exit_file: Path) -> None:
        """runc reports 'stopped' a moment before conmon has written the exit code."""
        conmon_pid = _read_int(ctr_dir / "conmon.pid")
        deadline = time.monotonic() + 2.0
        while not exit_file.exists() and time.monotonic() < deadline:
            if conmon_pid is None or not _alive(conmon_pid):
                return
            time.sleep(0.002)

    def stats(self, task_id: str) -> dict[str, Any]:
        memory = self._cgroup(task_id, "memory")
        cpuacct = self._cgroup(task_id, "cpuacct")
        pids = self._cgroup(task_id, "pids")
        cpu = self._cgroup(task_id, "cpu")
        result: dict[str, Any] = {}
        if memory is not None:
            result["memory_usage_bytes"] = _read_int(memory / "memory.usage_in_bytes")
            result["memory_max_usage_bytes"] = _read_int(memory / "memory.max_usage_in_bytes")
            result["memory_limit_bytes"] = _read_int(memory / "memory.limit_in_bytes")
            result["memory_failcnt"] = _read_int(memory / "memory.failcnt")
            result["oom_kills"] = _oom_kills(memory)
        if cpuacct is not None:
            result["cpu_usage_ns"] = _read_int(cpuacct / "cpuacct.usage")
        if cpu is not None:
            result["cpu_quota_us"] = _read_int(cpu / "cpu.cfs_quota_us")
            result["cpu_period_us"] = _read_int(cpu / "cpu.cfs_period_us")
        if pids is not None:
            result["pids_current"] = _read_int(pids / "pids.current")
        result["containers"] = {
            name: {
                "memory_usage_bytes": _read_int(memory / name / "memory.usage_in_bytes")
                if memory is not None else None,
                "cpu_usage_ns": _read_int(cpuacct / name / "cpuacct.usage")
                if cpuacct is not None else None,
            }
            for name in self.list_containers(task_id)
        }
        return result

    # -- runc

    def _runc(self, *args: str) -> str:
        proc = subprocess.run([self.runc, "--root", str(self.runtime_root), *args],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SandboxError(f"runc {args[0]}: {_runc_message(proc.stderr)}")
        return proc.stdout

    def _runc_state(self, cid: str) -> dict[str, Any] | None:
        if not (self.runtime_root / cid).exists():
            return None
        try:
            return json.loads(self._runc("state", cid))
        except (SandboxError, ValueError):
            return None


# Per-run files in a container dir: ours plus conmon's control fifos and attach socket.
_RUN_FILES = ("config.json", "pid", "conmon.pid", "ctl", "winsz", "attach")

_STATUS = {"created": "created", "running": "running", "pausing": "running",
           "paused": "running", "stopped": "stopped"}


def _set_memory_limit(path: Path, limit: int) -> None:
    """Set memory and memory+swap to the same value, in whichever order the kernel accepts
    (memsw may never be below the memory limit)."""
    memsw = path / "memory.memsw.limit_in_bytes"
    files = [path / "memory.limit_in_bytes"] + ([memsw] if memsw.exists() else [])
    try:
        for f in files:
            _write(f, limit)
    except OSError:
        for f in reversed(files):
            _write(f, limit)


def _read_sync(fd: int, timeout: float) -> dict[str, Any] | None:
    """One JSON line from conmon's sync pipe; None if conmon died without a word."""
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    try:
        return json.loads(data.split(b"\n", 1)[0])
    except ValueError:
        return None


def _runc_message(stderr: str) -> str:
    """runc logs `time=... level=error msg="..."`; keep just the messages."""
    messages = re.findall(r'msg="((?:[^"\\]|\\.)*)"', stderr)
    return "; ".join(m.replace('\\"', '"') for m in messages) or stderr.strip()


_libc = ctypes.CDLL(None, use_errno=True)
_TMPFS_MAGIC = 0x01021994


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 112)]


def _on_tmpfs(path: Path) -> bool:
    buf = _Statfs()
    return (_libc.statfs(os.fsencode(path), ctypes.byref(buf)) == 0
            and buf.f_type == _TMPFS_MAGIC)


_MS_BIND, _MS_REC, _MS_PRIVATE, _MNT_DETACH = 0x1000, 0x4000, 0x40000, 2
_MS_NOSUID, _MS_NODEV = 0x2, 0x4
_FLAT_SYSFS_LOCK = threading.Lock()


def _unbind(target: Path) -> None:
    """Detach whatever is mounted at target (nothing is fine), then drop the directory.
    rmdir, never rmtree: if the unmount failed we must not recurse into a rootfs."""
    _libc.umount2(os.fsencode(target), _MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        target.rmdir()


def _unlink(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    """Running and not a zombie: a daemonized conmon is reaped by whatever init the host has,
    and some reap lazily (seconds here), so kill(pid, 0) is not enough."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.002)


def _read_float(path: Path) -> float | None:
    try:
        return float(path.read_text())
    except (OSError, ValueError):
        return None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _parse_rfc3339(value: str | None) -> float | None:
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
