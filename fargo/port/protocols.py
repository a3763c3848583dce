"""What control may ask of a host's data plane. Three Protocols, each implemented by one
agent class (and by tests/fakeplane.py without root); arguments and results are port data."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from ..model.vpc import Subnet
from .data import (
    ContainerExit,
    ContainerSpec,
    Image,
    LogChunk,
    NetworkAttachment,
    SandboxSpec,
    TaskStats,
    VolumeFile,
)
from .firewall import FirewallSpec, PolicySpec
from .services import ServicesSpec


class Images(Protocol):
    def pull(self, ref: str, credentials: tuple[str, str] | None) -> Image:
        """Resolve and fetch an image (PullError when it cannot)."""
        ...


class ExecSession(Protocol):
    """A process started by Runtime.exec_session in a running container. Its ends are
    non-blocking file descriptors of this host (like the listeners' sockets, they need the
    control process on the same host): `stdin` to write (None: the process reads nothing),
    `stdout` and `stderr` to read until EOF (None: not asked for). With a terminal, stdin and
    stdout are one descriptor, the terminal's, and stderr is None. `ended` turns readable once
    the process has ended; then `code()` answers without blocking."""

    stdin: int | None
    stdout: int | None
    stderr: int | None
    ended: int

    def code(self) -> int | None:
        """The exit code once the process has ended (128+N when signal N killed it); None
        while it runs."""
        ...

    def resize(self, width: int, height: int) -> None:
        """The terminal's new size in columns and rows (nothing without a terminal)."""
        ...

    def close_stdin(self) -> None:
        """The process reads EOF (with a terminal: the terminal's end-of-file character)."""
        ...

    def kill(self) -> None:
        """SIGKILL the process if it has not ended (its client went away)."""
        ...

    def close(self) -> None:
        """Release the descriptors (after the process has ended, or been killed)."""
        ...


class Runtime(Protocol):
    """Sandboxes and their containers, named by task id and container name."""

    def prepare(self) -> list[Path]:
        """Once at start-up, before tasks are adopted: runtime dirs in memory; returns the
        tmpfs mounts it made."""
        ...

    def warm(self, count: int) -> None:
        """Once tasks are adopted: keep `count` task filesystems ready ahead of new tasks."""
        ...

    def close(self) -> None: ...

    def create_sandbox(self, tid: str, spec: SandboxSpec) -> None: ...

    def prepare_rootfs(self, tid: str, name: str, image: Image) -> None:
        """Mount a container's rootfs ahead of its creation; already mounted: nothing."""
        ...

    def create_container(self, tid: str, spec: ContainerSpec, image: Image,
                         spawned: Callable[[], None] | None = None) -> None:
        """Create (not start) the container; spawned, if given, is called from this thread
        once the container's monitor is under way (its runtime then works on its own)."""
        ...

    def write_volume(self, tid: str, name: str, files: list[VolumeFile]) -> bool:
        """Make a `files` volume of the sandbox hold exactly these files, in one atomic swap
        (as kubelet does: readers see the old set or the new one, never a mix); nothing when
        it holds them already. Whether anything changed."""
        ...

    def volume_usage(self, tid: str, name: str) -> int:
        """Bytes a `scratch` volume of the sandbox takes on its storage (as du counts them;
        0 when it is gone)."""
        ...

    def start_container(self, tid: str, name: str) -> None: ...

    def remove_container(self, tid: str, name: str) -> None:
        """Delete an ended container and its writable layer (its log stays)."""
        ...

    def exited(self, tid: str, name: str) -> bool:
        """Cheap: asked every few tens of milliseconds."""
        ...

    def exit_fd(self, tid: str, name: str) -> int | None:
        """A descriptor, the caller's to close, that turns readable once the running
        container's monitor has ended (its exit recorded, or lost with it); None when there
        is none to give: then `exited` is asked as before."""
        ...

    def result(self, tid: str, name: str) -> ContainerExit: ...

    def started(self, tid: str, name: str) -> bool:
        """Whether the container's process may have run (it is not merely created): a start
        the server did not live to record must not be run twice."""
        ...

    def signal(self, tid: str, name: str, sig: str | None) -> None:
        """sig None: the container's own stop signal."""
        ...

    def exec_check(self, tid: str, name: str, argv: list[str], timeout: float) -> int | None:
        """Run argv inside the running container, as its own process runs (user, env, cwd),
        and return its exit code; None when it did not end within timeout seconds (it is
        killed). ContainerGone when the container is not running. A health check's probe:
        its output is not kept."""
        ...

    def exec_session(self, tid: str, name: str, argv: list[str], *, tty: bool,
                     stdin: bool) -> ExecSession:
        """Start argv in the running container as its own process runs (user, env, cwd,
        cgroup, namespaces), with a terminal or with pipes (kubectl exec). ContainerGone when
        the container is not running; SandboxError when it could not be started."""
        ...

    def stats(self, tid: str) -> TaskStats: ...

    def read_log(self, tid: str, name: str, offset: int, limit: int) -> LogChunk: ...

    def destroy(self, tid: str) -> None:
        """The task's containers, cgroups and storage go; its logs stay."""
        ...

    def forget(self, tid: str) -> None:
        """Drop a long-stopped task's remaining files (its logs)."""
        ...


class Network(Protocol):
    """Bridges per subnet, one interface per task, and the security groups' rules."""

    def start(self) -> None:
        """Once at start-up: the host settings bridged filtering needs."""
        ...

    def ensure_bridge(self, subnet: Subnet) -> None: ...

    def remove_bridge(self, subnet_id: str) -> None: ...

    def pin(self, tid: str) -> None:
        """The task's network namespace, still empty, so its containers can be made while
        attach fills it (optional: attach makes it when pin did not); leftovers go."""
        ...

    def attach(self, tid: str, subnet: Subnet, ip: str, endpoint: str = "") -> NetworkAttachment:
        """endpoint: the task's VPC endpoint address for fargo's API, so the attach opens its
        listener (api_listener) while it is making the netns anyway; "" none."""
        ...

    def detach(self, tid: str) -> None:
        """The task's interface and netns go (after its containers)."""
        ...

    def forget_flows(self, ip: str) -> None:
        """Before a stopped task's address is handed out again: the host forgets its flows."""
        ...

    def metadata_listener(self, tid: str) -> socket.socket:
        """A listening socket on 169.254.170.2:80 inside the task's netns. The one object
        that crosses the port: it needs the control process on the same host (noted in
        docs/ARCHITECTURE.md)."""
        ...

    def api_listener(self, tid: str, address: str) -> socket.socket:
        """A listening socket on address:80 inside the task's netns, where its programs reach
        fargo's API (its VPC's endpoint address, on nothing but the task's own loopback).
        Crosses the port like metadata_listener's."""
        ...

    def dns_listeners(self, tid: str, address: str, aliases: Sequence[str] = ()
                      ) -> tuple[socket.socket, socket.socket]:
        """(udp, tcp): the VPC resolver's sockets inside the task's netns, reached at
        address:53 (its VPC's base + 2), bound and non-blocking; port 53 of each alias (a
        pod's cluster DNS address) is sent to them too, inside the netns. Cross the port like
        metadata_listener's."""
        ...

    def probe_socket(self, tid: str) -> socket.socket:
        """A TCP socket made inside the task's netns, unconnected and non-blocking: a pod's
        httpGet and tcpSocket probes connect from it to the task's own address, as kubelet
        beside its pod does, with no security group between (NetworkError when the netns is
        gone). Crosses the port like metadata_listener's."""
        ...

    def apply_firewall(self, spec: FirewallSpec) -> None:
        """Replace every rule at once (FirewallError when the kernel refuses)."""
        ...

    def join_groups(self, tid: str, ip: str, groups: list[str]) -> None:
        """Before the task's interface exists: it is born inside its groups."""
        ...

    def leave_groups(self, tid: str, ip: str, groups: list[str]) -> None: ...

    def apply_policies(self, spec: PolicySpec) -> None:
        """Replace every NetworkPolicy rule at once (FirewallError when the kernel refuses);
        they judge pods' traffic beside the security groups, never instead of them."""
        ...

    def apply_services(self, spec: ServicesSpec) -> None:
        """Replace every ClusterIP at once (kube-proxy's table; FirewallError when the kernel
        refuses). Quick when nothing changed: control may call it on every pass."""
        ...
