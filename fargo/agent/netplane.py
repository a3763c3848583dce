"""The host's network as control sees it (port/protocols.py's Network): bridges per subnet,
an interface per task, its endpoints' listeners, and the security groups' tables.

What only the host needs to know stays here: veth and bridge names, netns paths, and the
listening sockets an attach opened inside the task's netns until control asks for them."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from pyroute2.netlink.exceptions import NetlinkError

from ..model.vpc import Subnet
from ..port.data import NetworkAttachment
from ..port.errors import NetworkError
from ..port.firewall import FirewallSpec, PolicySpec
from ..port.services import ServicesSpec
from . import conntrack
from .bridges import ensure_bridge_netfilter
from .firewall import Firewall
from .metadata import (
    Listeners,
    listen_inside,
    open_api_listener,
    open_dns_listeners,
    open_listener,
)
from .netpolicy import PolicyTable
from .netsys import enter_netns, run_in_thread
from .network import HostNetwork
from .rtnl import Rtnl
from .serviceproxy import ServiceProxy

if TYPE_CHECKING:
    from ..port.protocols import Network

T = TypeVar("T")


def _kernel(fn: Callable[[], T]) -> T:
    """The port's errors for what netlink or the filesystem refused (same message)."""
    try:
        return fn()
    except (NetlinkError, OSError) as err:
        raise NetworkError(str(err)) from err


def _socket_inside(netns_path: str) -> socket.socket:
    """A TCP socket born in the netns at netns_path (a socket keeps the netns it was made in,
    whichever thread later connects it)."""

    def work() -> socket.socket:
        enter_netns(netns_path)  # this throwaway thread now lives in the task's netns
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        return sock

    return run_in_thread(work)


class HostNetworkPlane:
    def __init__(self, prefix: str = "fg") -> None:
        self.network = HostNetwork(prefix)
        self.firewall = Firewall(prefix)
        self.policies = PolicyTable(prefix)  # NetworkPolicies, beside the groups
        self.services = ServiceProxy(prefix)  # ClusterIPs (kube-proxy)
        self._lock = threading.Lock()
        self._listeners: dict[str, socket.socket] = {}  # opened at attach, not yet taken
        self._api: dict[str, socket.socket] = {}  # likewise, the API endpoint's

    def start(self) -> None:
        ensure_bridge_netfilter()

    # bridges
    def ensure_bridge(self, subnet: Subnet) -> None:
        _kernel(lambda: self.network.ensure_bridge(subnet.id, subnet.cidr))

    def remove_bridge(self, subnet_id: str) -> None:
        _kernel(lambda: self.network.remove_bridge(subnet_id))

    # task interfaces
    def pin(self, tid: str) -> None:
        _kernel(lambda: self.network.pin(tid))

    def attach(self, tid: str, subnet: Subnet, ip: str, endpoint: str = "") -> NetworkAttachment:
        # The attach converges the subnet's bridge when this process has not yet (or it has
        # changed since); the endpoints' sockets are opened while it is in the netns.
        def inside(rtnl: Rtnl) -> Listeners:
            return listen_inside(rtnl, endpoint)

        att = _kernel(lambda: self.network.attach(tid, subnet.id, subnet.cidr, ip,
                                                  inside=inside))
        made: Listeners = att.made_inside
        _kernel(lambda: self.services.attached(self.network.bridge_name(subnet.id),
                                               att.host_veth))
        self._drop(tid)
        with self._lock:
            self._listeners[tid] = made.metadata
            if made.api is not None:
                self._api[tid] = made.api
        return NetworkAttachment(mac=att.mac, gateway=att.gateway, prefixlen=att.prefixlen)

    def metadata_listener(self, tid: str) -> socket.socket:
        """The socket the attach opened, or (a re-adopted task) a new one."""
        with self._lock:
            sock = self._listeners.pop(tid, None)
        return sock or _kernel(lambda: open_listener(self.network.netns_path(tid)))

    def api_listener(self, tid: str, address: str) -> socket.socket:
        """The socket the attach opened on address:80, or (re-adopted, or attached without
        the address) a new one."""
        with self._lock:
            sock = self._api.pop(tid, None)
        if sock is not None and sock.getsockname()[0] == address:
            return sock
        if sock is not None:
            sock.close()
        return _kernel(lambda: open_api_listener(self.network.netns_path(tid), address))

    def dns_listeners(self, tid: str, address: str, aliases: Sequence[str] = ()
                      ) -> tuple[socket.socket, socket.socket]:
        return _kernel(lambda: open_dns_listeners(self.network.netns_path(tid), address,
                                                  aliases))

    def probe_socket(self, tid: str) -> socket.socket:
        return _kernel(lambda: _socket_inside(self.network.netns_path(tid)))

    def detach(self, tid: str) -> None:
        self._drop(tid)
        _kernel(lambda: self.network.detach(tid))

    def forget_flows(self, ip: str) -> None:
        """Conntrack's entries to or from an address a task held go: the next task given the
        address must not inherit its flows (accepted as established, past its own groups)."""
        try:
            for side in (conntrack.Match(saddr=ip), conntrack.Match(daddr=ip)):
                conntrack.forget(side)
        except (NetlinkError, OSError) as err:
            raise NetworkError(f"forgetting the flows of {ip}: {err}") from None

    def _drop(self, tid: str) -> None:
        """Close what an attach opened for tid that control has not taken."""
        with self._lock:
            unused = [self._listeners.pop(tid, None), self._api.pop(tid, None)]
        for sock in unused:
            if sock is not None:
                sock.close()

    def netns_path(self, tid: str) -> str:
        """Where the task's netns is pinned: its containers join it (same host only)."""
        return self.network.netns_path(tid)

    # security groups
    def apply_firewall(self, spec: FirewallSpec) -> None:
        self.firewall.apply(spec)

    def join_groups(self, tid: str, ip: str, groups: list[str]) -> None:
        self.firewall.member(tid, ip, groups, add=True)

    def leave_groups(self, tid: str, ip: str, groups: list[str]) -> None:
        self.firewall.member(tid, ip, groups, add=False)

    def apply_policies(self, spec: PolicySpec) -> None:
        self.policies.apply(spec)

    def apply_services(self, spec: ServicesSpec) -> None:
        self.services.apply(spec)

    # housekeeping
    def cleanup(self) -> None:
        """Every veth, netns and bridge of this prefix, then its nftables tables (purge)."""
        with self._lock:
            unused = list(self._listeners.values()) + list(self._api.values())
            self._listeners.clear()
            self._api.clear()
        for sock in unused:
            sock.close()
        _kernel(self.network.cleanup)
        self.firewall.remove()
        self.policies.remove()
        self.services.remove()


if TYPE_CHECKING:  # mypy checks that the plane is the port's Network
    def _is_network(plane: HostNetworkPlane) -> Network:
        return plane
