"""A load balancer's network namespace: one veth into each of its subnets' bridges, its
address in each, a default route as a task has.

    host netns                                LB netns (/var/run/netns/<prefix>-lb-<id>)
    <subnet A's bridge>
      └── <prefix>v<hash> ══ veth ══ s<hash of A> (10.89.0.9/20, default via 10.89.0.1)
    <subnet B's bridge>
      └── <prefix>v<hash> ══ veth ══ s<hash of B> (10.89.16.7/20)

Names follow the tasks' (agent/netnames.py), so purge and clean-up find them by prefix: the
netns is the "task" ``lb-<id>``'s, each host veth the "task" ``interface_id(id, subnet)``'s.
That is also how the firewall knows them: control gives it that id with the address in the
subnet (FirewallSpec.tasks, Network.join_groups), and the bridge table's anti-spoofing then
holds the load balancer's port to its own address, as a task's.

The namespace forwards nothing (ip_forward 0, whatever the host's default): a load balancer
on two subnets must not become a router between them."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import ipaddress
import os
import socket
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ...model.vpc import Subnet
from ...port.loadbalancer import interface_id
from ..netnames import address_mac
from ..netsys import (
    delete_link,
    enter_netns,
    enter_new_netns,
    index,
    quiet_ipv6,
    remove_netns,
    run_in_thread,
    setns,
    write_sysctl,
)
from ..network import HostNetwork
from ..rtnl import LOOPBACK_INDEX, Rtnl


@dataclass(frozen=True)
class Address:
    subnet_id: str
    cidr: str
    ip: str

    @staticmethod
    def of(subnet: Subnet, ip: str) -> Address:
        return Address(subnet.id, subnet.cidr, ip)


def netns_key(lb_id: str) -> str:
    return f"lb-{lb_id}"


def inner_name(subnet_id: str) -> str:
    """The interface's name inside the namespace (the host side is named like a task's)."""
    return "s" + hashlib.sha256(("lbif:" + subnet_id).encode()).hexdigest()[:12]


class LbNetns:
    def __init__(self, network: HostNetwork) -> None:
        self.network = network
        self.names = network.names

    def netns_path(self, lb_id: str) -> str:
        return self.names.netns_path(netns_key(lb_id))

    def host_veth(self, lb_id: str, subnet_id: str) -> str:
        return self.names.veth_name(interface_id(lb_id, subnet_id))

    def converge(self, lb_id: str, addresses: list[Address], gone: list[str]) -> None:
        """Make the namespace (if missing) hold exactly these addresses; gone: subnet ids of
        interfaces to remove. The first address's gateway is the default route."""
        run_in_thread(lambda: self._converge(lb_id, addresses, gone))

    def _converge(self, lb_id: str, addresses: list[Address], gone: list[str]) -> None:
        path = self.netns_path(lb_id)
        host_ns = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            with Rtnl() as host, IPRoute() as hipr:
                bridges = {a.subnet_id: self.network.bridges.converge(hipr, a.subnet_id, a.cidr)
                           for a in addresses}
                for subnet_id in gone:
                    delete_link(hipr, self.host_veth(lb_id, subnet_id))
                if os.path.ismount(path):
                    enter_netns(path)
                else:
                    if os.path.lexists(path):
                        os.unlink(path)  # a pin file without its mount: nothing holds it
                    enter_new_netns(path)
                ns_fd = os.open(path, os.O_RDONLY)
                try:
                    self._inside(host, host_ns, ns_fd, lb_id, addresses, bridges)
                finally:
                    os.close(ns_fd)
                    setns(host_ns)
        finally:
            os.close(host_ns)

    def _inside(self, host: Rtnl, host_ns: int, ns_fd: int, lb_id: str,
                addresses: list[Address], bridges: dict[str, int]) -> None:
        # The thread is in the LB netns: sysctls and `ns` are its; `host` stays the host's.
        write_sysctl("/proc/sys/net/ipv4/ip_forward", "0")
        write_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1")
        with IPRoute() as ns:
            ns.link("set", index=LOOPBACK_INDEX, state="up")
            for a in addresses:
                self._interface(host, ns, host_ns, ns_fd, lb_id, a, bridges[a.subnet_id])
            if addresses:
                first = addresses[0]
                idx = index(ns, inner_name(first.subnet_id))
                gateway = str(_network(first.cidr).network_address + 1)
                ns.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=idx)

    def _interface(self, host: Rtnl, ns: IPRoute, host_ns: int, ns_fd: int, lb_id: str,
                   a: Address, bridge: int) -> None:
        inner = inner_name(a.subnet_id)
        veth = self.host_veth(lb_id, a.subnet_id)
        plen = _network(a.cidr).prefixlen
        idx = index(ns, inner)
        if idx is not None:
            have = {(m.get_attr("IFA_ADDRESS"), m["prefixlen"])
                    for m in ns.get_addr(index=idx, family=socket.AF_INET)}
            if have == {(a.ip, plen)}:
                return  # as it should be
            for address, prefixlen in have:
                ns.addr("del", index=idx, address=address, prefixlen=prefixlen)
            ns.addr("add", index=idx, address=a.ip, prefixlen=plen)
            return
        mac = address_mac(a.ip)
        try:
            host.add_veth(veth, bridge, inner, mac, ns_fd)
        except NetlinkError as err:
            if err.code != errno.EEXIST:
                raise
            with contextlib.suppress(NetlinkError):
                host.delete_link(veth)  # a stray host end whose peer is gone
            host.add_veth(veth, bridge, inner, mac, ns_fd)
        quiet_ipv6(inner)
        write_sysctl(f"/proc/sys/net/ipv4/conf/{inner}/arp_notify", "1")
        write_sysctl(f"/proc/sys/net/ipv4/conf/{inner}/arp_ignore", "1")
        idx = index(ns, inner)
        setns(host_ns)
        try:
            quiet_ipv6(veth)
            host.link_up(name=veth)
            with contextlib.suppress(NetlinkError):
                host.delete_neighbour(a.ip, bridge)  # the address may have had another MAC
        finally:
            setns(ns_fd)
        ns.addr("add", index=idx, address=a.ip, prefixlen=plen)
        ns.link("set", index=idx, state="up")

    def remove(self, lb_id: str, subnet_ids: list[str]) -> None:
        """Its veths (those named, and any still inside) and the namespace's pin."""
        run_in_thread(lambda: self._remove(lb_id, subnet_ids))

    def _remove(self, lb_id: str, subnet_ids: list[str]) -> None:
        path = self.netns_path(lb_id)
        with IPRoute() as hipr:
            for subnet_id in subnet_ids:
                delete_link(hipr, self.host_veth(lb_id, subnet_id))
        if os.path.ismount(path):
            host_ns = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            try:
                enter_netns(path)
                with IPRoute() as ns:  # an interface a lost record did not name
                    for msg in ns.get_links():
                        if msg["index"] != LOOPBACK_INDEX:
                            with contextlib.suppress(NetlinkError):
                                ns.link("del", index=msg["index"])
            finally:
                setns(host_ns)
                os.close(host_ns)
        remove_netns(path)

    def exists(self, lb_id: str) -> bool:
        return os.path.lexists(self.netns_path(lb_id))

    def inode(self, lb_id: str) -> int | None:
        try:
            return os.stat(self.netns_path(lb_id)).st_ino
        except OSError:
            return None


def _network(cidr: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(cidr)
