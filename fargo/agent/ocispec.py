"""The OCI runtime config (runtime-spec 1.0.2) of one container: what runc is asked to make.

Everything a container is allowed lives here: Docker's default capabilities (and Fargate's one
addable), the mounts every container gets, masked and read-only paths, the rlimits, its cgroup
resources, its user namespace mapping and its seccomp profile.
"""

from __future__ import annotations

import contextlib
import resource
from pathlib import Path
from typing import Any

from ..port.data import DEFAULT_PATH, ContainerSpec
from ..port.errors import SandboxError
from . import seccomp, userns
from .cgroups import CGROUP_PARENT
from .imageuser import resolve_user

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
CAP_SYS_RESOURCE = 24
NEUTRAL_HOSTNAME = "localhost"  # a container's name when its spec gives none


# ---------------------------------------------------------------- capabilities


def _cap_name(cap: str) -> str:
    name = cap.upper()
    return name if name.startswith("CAP_") else "CAP_" + name


def capabilities(extra: list[str], dropped: list[str] | None = None) -> list[str]:
    """Docker's rule: the default set, less what is dropped ("ALL": everything), plus adds."""
    gone = {_cap_name(c) for c in dropped or []}
    caps = [] if "CAP_ALL" in gone else [c for c in DEFAULT_CAPS if c not in gone]
    for cap in extra:
        name = _cap_name(cap)
        if name not in ADDABLE_CAPS and name not in DEFAULT_CAPS:
            raise SandboxError(f"capability {cap!r} cannot be added; only SYS_PTRACE can")
        if name not in caps:
            caps.append(name)
    return caps


# ---------------------------------------------------------------- nofile


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


# ---------------------------------------------------------------- mounts


# sysfs belongs to the network namespace: mounting it needs CAP_SYS_ADMIN over the netns's
# owner, the host's user namespace, when a container joins the task's netns from its own user
# namespace. Such containers get the host's /sys bound read-only instead (as podman does),
# with the network device directories hidden so the host's interfaces stay unseen.
# The source is best a *flat* copy of /sys (runtimefs.flat_sysfs: sysfs alone, bound once
# from the host): the host's mounts below /sys (cgroup hierarchies, securityfs, debugfs...)
# then stay out, and runc has a dozen fewer mounts to copy per container (a fifth of its CPU).
# A container cannot make that copy itself: from its user namespace, binding /sys without
# what is mounted under it is refused (it would uncover what those mounts hide).
def sysfs_bind(source: str = "/sys") -> dict[str, Any]:
    return {"destination": "/sys", "type": "bind", "source": source,
            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}


SYSFS_NET_MASKS = ["/sys/class/net", "/sys/devices/virtual/net"]


def default_mounts(joined_netns: bool, sysfs: str = "/sys",
                   cgroup_views: list[tuple[str, Path]] | None = None) -> list[dict[str, Any]]:
    return [
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
        *cgroup_mounts(cgroup_views or []),
    ]


CGROUP_FLAGS = ["nosuid", "noexec", "nodev", "relatime", "ro"]


def cgroup_mounts(views: list[tuple[str, Path]]) -> list[dict[str, Any]]:
    """/sys/fs/cgroup: the container's own directory of each hierarchy, bound read-only into
    a tmpfs, as (name, directory) in `views`; without views, runc's cgroup mount.

    That mount is what a container of a cgroup namespace otherwise gets: runc mounts each v1
    hierarchy afresh, and for each such mount the kernel walks every cgroup of the v2
    hierarchy for dying ones to wait for; runc makes two there per task. Nine walks per
    container cost 4 ms of its start with 500 tasks running; bind mounts make none. What the
    container sees is the same: its cgroup namespace shows each bound directory as the root,
    in /proc/self/mountinfo as in /proc/self/cgroup."""
    if not views:
        return [{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                 "options": CGROUP_FLAGS}]
    return [{"destination": "/sys/fs/cgroup", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "noexec", "nodev", "mode=755", "size=64k"]},
            *({"destination": f"/sys/fs/cgroup/{name}", "type": "bind", "source": str(own),
               "options": ["bind", *CGROUP_FLAGS]} for name, own in views)]


# ---------------------------------------------------------------- the config


def resources(spec: ContainerSpec) -> dict[str, Any]:
    """The container's own cgroup limits, inside the task's."""
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


def build_config(task_id: str, spec: ContainerSpec, id_base: int, rootfs: Path,
                 netns_path: str | None = None, sysfs: str = "/sys",
                 cgroup_views: list[tuple[str, Path]] | None = None) -> dict[str, Any]:
    """The OCI runtime config (1.0.2) for one container of a task, whose root filesystem is
    mounted at `rootfs` and which joins the network namespace at `netns_path` (None: one of
    its own), seeing its cgroups as `cgroup_views` (cgroup_mounts).

    The container runs in a user namespace of its own mapping ids 0..65535 to the task's host
    range from id_base (runc creates it after joining the task's netns by path, while still
    privileged); the rootfs must already show files owned by those ids (idmapped layers).
    """
    uid, gid, extra_gids, home = resolve_user(rootfs, spec.user)
    env = dict(spec.env)
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOME", home)
    if spec.hostname:
        env.setdefault("HOSTNAME", spec.hostname)
    caps = capabilities(spec.extra_caps, spec.dropped_caps)
    nofile = effective_nofile(spec.nofile)
    network: dict[str, str] = {"type": "network"}
    if netns_path:
        network["path"] = netns_path
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
        "root": {"path": str(rootfs if rootfs.is_absolute() else rootfs.resolve()),
                 "readonly": spec.readonly_rootfs},
        "mounts": default_mounts(bool(netns_path), sysfs, cgroup_views) + list(spec.extra_mounts),
        "linux": {
            "cgroupsPath": f"{CGROUP_PARENT}/{task_id}/{spec.name}",
            "resources": resources(spec),
            # A cgroup namespace of its own: /proc/self/cgroup and the cgroup mounts show
            # the container's cgroup as the root, not the host's hierarchy above it.
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                           {"type": "mount"}, {"type": "user"}, {"type": "cgroup"}, network],
            "uidMappings": userns.mappings(id_base),
            "gidMappings": userns.mappings(id_base),
            "maskedPaths": MASKED_PATHS + (SYSFS_NET_MASKS if netns_path else []),
            "readonlyPaths": READONLY_PATHS,
            "seccomp": seccomp.profile(caps),
        },
    }
    # A new UTS namespace starts with the host's name: never let that show through.
    config["hostname"] = spec.hostname or NEUTRAL_HOSTNAME
    return config
