"""Plain data that crosses the port: what control asks of a host and what it hears back.
Nothing here holds a handle to anything: each value could be sent to another process."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Image:
    """A pulled image: what the reference resolved to and what the container needs of it."""

    ref: str  # as the user wrote it
    digest: str  # the manifest (or index) digest the reference resolved to
    config: dict[str, Any]  # the image config's "config" object (Entrypoint, Cmd, Env, ...)
    layers: list[Path] = field(default_factory=list)  # on the host that pulled it, bottom first


@dataclass(frozen=True)
class VolumeSpec:
    """One of a task's volumes, shared by the containers that mount it: `scratch` a directory
    on the task's ephemeral storage (an ECS bind mount, a pod's emptyDir) with that mode,
    `memory` a tmpfs of size_bytes whose pages count as the task's memory (emptyDir of medium
    Memory), `files` a tmpfs whose content control writes (Runtime.write_volume: ConfigMaps,
    Secrets, tokens, the downward API). Owned by the task's root."""

    name: str
    kind: str  # "scratch" | "memory" | "files"
    size_bytes: int | None = None  # memory: the tmpfs's size
    mode: int = 0o777


@dataclass(frozen=True)
class VolumeFile:
    """A file of a `files` volume: its path under the volume, its bytes and mode."""

    path: str
    data: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class VolumeMount:
    """A volume (or a path in it, sub_path) mounted into a container at path. seed: before the
    first mount, an empty volume gets what the image holds at path (Docker's VOLUME rule,
    which ECS bind mounts keep)."""

    volume: str
    path: str
    readonly: bool = False
    sub_path: str = ""
    seed: bool = False


@dataclass(frozen=True)
class SandboxSpec:
    """A task's sandbox: its cgroup size, its ephemeral storage, its volumes and its tier
    (model/isolation.py: "runc", or "gvisor": one gVisor kernel for all its containers)."""

    cpu_units: int
    memory_mib: int
    storage_gib: int = 20
    volumes: tuple[VolumeSpec, ...] = ()
    isolation: str = "runc"
    containers: int = 0  # how many containers the task will ever run (0: not known)


@dataclass
class ContainerSpec:
    """One container, resolved: every ECS or Kubernetes rule has been applied (model/spec.py);
    the data plane only adds where its rootfs and network namespace are."""

    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/"
    user: str = ""
    cpu_shares: int | None = None
    memory_mib: int | None = None
    memory_reservation_mib: int | None = None
    stop_signal: str = "SIGTERM"
    hostname: str | None = None
    nofile: int = 65535
    readonly_rootfs: bool = False
    extra_caps: list[str] = field(default_factory=list)
    dropped_caps: list[str] = field(default_factory=list)  # "ALL" drops the default set
    # Raw OCI mount objects appended after the defaults.
    extra_mounts: list[dict[str, Any]] = field(default_factory=list)
    # The task's volumes (SandboxSpec.volumes) this container mounts, where and how.
    volume_mounts: list[VolumeMount] = field(default_factory=list)
    # The files the sandbox writes and binds read-only over the image's (None: the image's
    # own stays): the task's resolver and search domain, its own name and address.
    resolv_conf: str | None = None
    hosts: str | None = None


@dataclass(frozen=True)
class ContainerExit:
    exit_code: int | None  # None: the monitor ended without recording one
    oom_killed: bool = False


@dataclass(frozen=True)
class NetworkAttachment:
    """A task's interface, as made: what the task record reports of it."""

    mac: str
    gateway: str
    prefixlen: int


@dataclass(frozen=True)
class ContainerStats:
    memory_usage_bytes: int | None = None
    cpu_usage_ns: int | None = None


@dataclass(frozen=True)
class NetworkStats:
    """A task's interface counters since it was made, as the task sees them (received: what
    came in to the task)."""

    rx_bytes: int = 0
    rx_packets: int = 0
    rx_errors: int = 0
    rx_dropped: int = 0
    tx_bytes: int = 0
    tx_packets: int = 0
    tx_errors: int = 0
    tx_dropped: int = 0


@dataclass(frozen=True)
class TaskStats:
    """A task's cgroup counters at one moment; None where the host has no such counter."""

    memory_usage_bytes: int | None = None
    memory_max_usage_bytes: int | None = None
    memory_limit_bytes: int | None = None
    memory_failcnt: int | None = None
    oom_kills: int | None = None
    cpu_usage_ns: int | None = None
    cpu_quota_us: int | None = None
    cpu_period_us: int | None = None
    pids_current: int | None = None
    containers: dict[str, ContainerStats] = field(default_factory=dict)
    # Page cache the kernel may take back first: not counted as the task's memory in use.
    memory_inactive_file_bytes: int | None = None
    network: NetworkStats | None = None  # None: the task has no interface (yet)
    storage_read_bytes: int | None = None  # block I/O of the task's processes, all devices
    storage_write_bytes: int | None = None


@dataclass(frozen=True)
class LogChunk:
    """Bytes of a container's log (k8s-file lines) from an offset on."""

    data: bytes
    next_offset: int
    exists: bool  # False: the container has written no log file (yet)
