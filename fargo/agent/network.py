"""Task networking on one host ("awsvpc" mode): a netns + veth per task on its subnet's bridge.

Layout for a task on subnet bridge ``fgbr1a2b3c4d5e``::

    host netns                               task netns (pinned as fg-<task_id>)
    fgbr1a2b3c4d5e (gateway 10.89.0.1/20)
      └── fgv<hash> (bridge port) ══ veth ══ eth0 (10.89.0.7/20, default via 10.89.0.1)

Names come from agent/netnames.py, bridges from agent/bridges.py, the kernel calls from
agent/netsys.py (which says why all of it runs on a thread of its own), the netns pins from
agent/holder.py (off the host's mount table), and the attach's hot path goes through
agent/rtnl.py's plain netlink socket. Pins older servers made under /var/run/netns are still
found, used and removed there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..model.ipam import Ipam
from ..port.errors import InvalidSpec, NetworkError
from . import holder, netclean
from .bridges import Bridges, subnet_network
from .netnames import Names, address_mac, check_task_id
from .netsys import (
    enter_netns,
    index,
    new_netns,
    remove_netns,
    run_in_thread,
    setns,
    task_netns_defaults,
    with_ipr,
)
from .rtnl import LOOPBACK_INDEX, Rtnl

TASK_IF = "eth0"
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass
class Attachment:
    task_id: str
    netns: str  # the name of its pin
    netns_path: str  # where the pin is reached (this process only); runc joins it by path
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    host_veth: str  # host-side veth name, <= 15 chars
    made_inside: Any = field(default=None, repr=False, compare=False)  # attach's `inside`


class HostNetwork:
    """Bridges, netns and veths of one name prefix on this host."""

    def __init__(self, prefix: str = "fg") -> None:
        self.names = Names(prefix)
        self.prefix = prefix
        self.bridges = Bridges(self.names)
        self._pinned: set[str] = set()  # tasks whose empty netns pin() made, not yet attached

    # names -------------------------------------------------------------------------------

    def bridge_name(self, key: str) -> str:
        return self.names.bridge_name(key)

    def veth_name(self, task_id: str) -> str:
        return self.names.veth_name(task_id)

    def netns_name(self, task_id: str) -> str:
        return self.names.netns_name(task_id)

    def netns_path(self, task_id: str) -> str:
        """Where the task's netns is reached: its pin in the holder, or an older server's
        under /var/run/netns while that is there."""
        legacy = self.names.netns_path(task_id)
        if holder.pinned(legacy):
            return legacy
        return holder.path(self.netns_name(task_id))

    def _has_pin(self, task_id: str) -> bool:
        """A pin (or a pin file without its netns) of the task, where either kind is."""
        pin = holder.found(self.netns_name(task_id))
        return (os.path.lexists(self.names.netns_path(task_id))
                or (pin is not None and os.path.lexists(pin)))

    # bridges -----------------------------------------------------------------------------

    def ensure_bridge(self, key: str, cidr: str) -> str:
        """Create or converge the subnet's bridge: up, holding exactly the gateway address."""
        return self.bridges.ensure(key, cidr)

    def remove_bridge(self, key: str) -> None:
        self.bridges.remove(key)

    # tasks -------------------------------------------------------------------------------

    def pin(self, task_id: str) -> None:
        """An empty netns for task_id at its path (a leftover's goes first): its containers
        can join it while attach makes the interface."""
        check_task_id(task_id)

        def make() -> None:
            if self._has_pin(task_id):
                self._detach(task_id)
            self._new_netns(task_id)  # the thread ends in it, and nothing else does

        run_in_thread(make)  # a leftover's _detach forgets an earlier pin of the task too
        self._pinned.add(task_id)

    def attach(self, task_id: str, key: str, cidr: str, ip: str,
               mac: str | None = None,
               inside: Callable[[Rtnl], object] | None = None) -> Attachment:
        """Give task_id a netns with eth0 = ip on the subnet bridge; replaces any leftover.
        inside, if given, runs in the new netns with a netlink socket of it (its result is
        the attachment's `made_inside`), saving a second trip into the namespace."""
        check_task_id(task_id)
        net = subnet_network(cidr)
        if not Ipam.usable(cidr, ip):
            raise InvalidSpec(f"{ip} is not a usable task address of {cidr}")
        mac = (mac or address_mac(ip)).lower()
        if not _MAC_RE.match(mac) or int(mac[:2], 16) & 1:
            raise InvalidSpec(f"not a unicast MAC: {mac}")
        att = Attachment(
            task_id=task_id, netns=self.netns_name(task_id), netns_path=self.netns_path(task_id),
            ip=ip, prefixlen=net.prefixlen, gateway=Ipam.gateway(cidr), mac=mac,
            host_veth=self.veth_name(task_id),
        )
        run_in_thread(lambda: self._attach(att, key, cidr, inside))
        return att

    def _attach(self, att: Attachment, key: str, cidr: str,
                inside: Callable[[Rtnl], object] | None = None) -> None:
        host_ns = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            bridge = self.bridges.converged(key)
            # Leftovers of an earlier run are replaced. No pin, no veth: the pin is made first
            # and removed last (and a stray veth is caught by the EEXIST in _plumb). A netns
            # pin() made for this start is the task's own.
            fresh = att.task_id in self._pinned and holder.pinned(att.netns_path)
            self._pinned.discard(att.task_id)
            if not fresh and self._has_pin(att.task_id):
                self._detach(att.task_id)
            att.netns_path = holder.path(att.netns)  # where the new pin goes, if not there
            if bridge is None:
                with IPRoute() as ipr:
                    bridge = self.bridges.converge(ipr, key, cidr)
            with Rtnl() as host:
                try:
                    self._plumb(host, host_ns, bridge, att, inside, fresh)
                except BaseException:
                    setns(host_ns)
                    if hasattr(att.made_inside, "close"):
                        att.made_inside.close()
                    self._detach(att.task_id)
                    raise
        finally:
            os.close(host_ns)

    def _plumb(self, host: Rtnl, host_ns: int, bridge: int, att: Attachment,
               inside: Callable[[Rtnl], object] | None = None, pinned: bool = False) -> None:
        # Until setns the thread lives in the task netns (so /proc/sys/net is the task's);
        # sockets keep the netns they were opened in: `host` talks to the host, `task` to the
        # task, whichever netns the thread is in.
        if pinned:
            enter_netns(att.netns_path)
        else:
            att.netns_path = self._new_netns(att.task_id)
        task_ns = os.open(att.netns_path, os.O_RDONLY)
        try:
            with Rtnl() as task:
                # One message: host side enslaved to the bridge, peer born in the task netns as
                # eth0 with its MAC (no rename, no move). Both stay down until their sysctls
                # are set, so no IPv6 link-local address ever appears.
                def add_veth() -> None:
                    host.add_veth(att.host_veth, bridge, TASK_IF, att.mac, task_ns)

                try:
                    add_veth()
                except NetlinkError as err:
                    if err.code != errno.EEXIST:
                        raise
                    with contextlib.suppress(NetlinkError):  # ENODEV: gone meanwhile
                        host.delete_link(att.host_veth)  # a stray one, left without its pin
                    add_veth()
                try:
                    eth0 = socket.if_nametoindex(TASK_IF)  # asked in the task netns
                except OSError as err:
                    raise NetworkError(f"{TASK_IF} missing in {att.netns}: {err}") from err
                # eth0 took its sysctls from the netns's defaults (task_netns_defaults).
                # No gratuitous ARP (arp_notify): the MAC is the address's (address_mac),
                # so no neighbour holds a stale one.
                if inside is not None:
                    att.made_inside = inside(task)
                setns(host_ns)
                veth = socket.if_nametoindex(att.host_veth)
                host.no_ipv6_addresses(veth)
                # The host end first: eth0 has a carrier as it comes up.
                host.link_up(index=veth)
                try:
                    host.delete_neighbour(att.ip, bridge)  # the IP may have had another MAC
                except NetlinkError:
                    pass
                _configure_task_side(task, att, eth0)
        finally:
            os.close(task_ns)

    def _new_netns(self, task_id: str) -> str:
        """Move the calling thread into a new netns, pinned as the task's; where the pin is."""
        new_netns()
        task_netns_defaults()
        return holder.pin_here(self.netns_name(task_id))

    def detach(self, task_id: str) -> None:
        check_task_id(task_id)
        run_in_thread(lambda: self._detach(task_id))

    def _detach(self, task_id: str) -> None:
        self._pinned.discard(task_id)
        # Deleting the host end destroys the peer too; the netns then only needs unpinning.
        # A process still inside keeps the netns alive, but without an interface. On the
        # plain socket, as attach: it is on a stop's path (IPRoute's set-up alone is ~5 ms).
        with Rtnl() as host:
            try:
                host.delete_link(self.veth_name(task_id))
            except NetlinkError as exc:
                if exc.code != errno.ENODEV:  # gone already
                    raise
        remove_netns(self.names.netns_path(task_id))  # an older server's pin
        holder.unpin(self.netns_name(task_id))

    def attached(self, task_id: str) -> bool:
        """True if the netns is pinned and the host veth is on a bridge (for re-adoption)."""
        if not holder.pinned(self.netns_path(task_id)):
            return False
        veth = self.veth_name(task_id)

        def probe(ipr: IPRoute) -> bool:
            links = ipr.get_links(ifname=veth) if index(ipr, veth) else []
            return bool(links) and bool(links[0].get_attr("IFLA_MASTER"))

        return run_in_thread(lambda: with_ipr(probe))

    # housekeeping ------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Remove every veth, netns and bridge carrying this prefix."""
        self.bridges.forget()
        netclean.cleanup(self.names)

    def owned(self) -> dict[str, list[str]]:
        """What exists for this prefix right now (tests and `fargo server --purge` report it)."""
        return netclean.owned(self.names)

    def netns_names(self) -> list[str]:
        return netclean.netns_names(self.names)


def _configure_task_side(task: Rtnl, att: Attachment, idx: int) -> None:
    task.link_up(index=LOOPBACK_INDEX)
    task.add_address(idx, att.ip, att.prefixlen)
    task.link_up(index=idx)
    task.add_default_route(att.gateway, idx)
