"""A bridge per subnet, holding the subnet's gateway address, and the host settings that
bridged filtering needs.

The host never forwards or NATs for tasks (ip_forward stays as it is), so the default route in
a task ends at its bridge: tasks reach each other and the host, nothing off the machine."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import subprocess
import threading

from pyroute2 import IPRoute
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP

from ..model.ipam import Ipam
from ..port.errors import InvalidSpec, NetworkError
from .netnames import Names
from .netsys import (
    delete_link,
    ignore_exists,
    index,
    quiet_ipv6,
    read_sysctl,
    run_in_thread,
    with_ipr,
    write_sysctl,
)

_BR_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"


def ensure_bridge_netfilter() -> None:
    """Security groups between tasks of one subnet need bridged IPv4 to pass nftables, which
    takes br_netfilter: load it if it is a module, and refuse to go on without it."""
    if not os.path.exists(_BR_NF):
        with contextlib.suppress(OSError):
            subprocess.run(["modprobe", "br_netfilter"], capture_output=True, check=False,
                           timeout=30)
    if not os.path.exists(_BR_NF):
        raise NetworkError("br_netfilter is not available: security groups could not filter "
                           "traffic between tasks of one subnet")


def bridge_netfilter() -> dict[str, str | None]:
    """Global br_netfilter switches of the host netns (None: br_netfilter not loaded).

    When bridge-nf-call-iptables is 1, frames between two ports of a bridge also traverse the
    IPv4 forward hooks (iptables FORWARD, nftables ip/inet forward). A per-bridge option can
    only switch this on, not off, and the global switch belongs to the host owner, so fargo
    leaves it alone and switches the option on for its own bridges only (the security groups
    need it); with an accepting forward path (the default) bridged traffic flows. A host
    whose FORWARD policy drops needs an accept rule for the fargo bridges (as Docker adds one).
    """
    base = "/proc/sys/net/bridge/bridge-nf-call-"
    return {name: read_sysctl(base + name) for name in ("iptables", "ip6tables", "arptables")}


def subnet_network(cidr: str) -> ipaddress.IPv4Network:
    try:
        return Ipam.network(cidr)
    except ValueError as err:
        raise InvalidSpec(str(err)) from None


class Bridges:
    """The subnet bridges of one prefix, and which of them this process has converged."""

    def __init__(self, names: Names) -> None:
        self.names = names
        self._lock = threading.Lock()  # one creator per bridge name at a time
        # Bridges this process has converged (name -> ifindex): a task's attach only checks
        # that the bridge is still the same device instead of converging it again.
        self._converged: dict[str, int] = {}

    def ensure(self, key: str, cidr: str) -> str:
        """Create or converge the subnet's bridge: up, holding exactly the gateway address."""
        run_in_thread(lambda: with_ipr(lambda ipr: self.converge(ipr, key, cidr)))
        return self.names.bridge_name(key)

    def converge(self, ipr: IPRoute, key: str, cidr: str) -> int:
        """ensure() on the calling (netlink) thread; returns the bridge's ifindex."""
        name = self.names.bridge_name(key)
        net = subnet_network(cidr)
        gateway = Ipam.gateway(cidr)
        with self._lock:
            idx = index(ipr, name)
            if idx is None:
                _check_no_overlap(ipr, net)
                idx = self._create(ipr, name, key)
            current = {
                (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                for a in ipr.get_addr(index=idx, family=socket.AF_INET)
            }
            for address, plen in current - {(gateway, net.prefixlen)}:
                ipr.addr("del", index=idx, address=address, prefixlen=plen)
            if (gateway, net.prefixlen) not in current:
                _check_no_overlap(ipr, net, skip=idx)
                ipr.addr("add", index=idx, address=gateway, prefixlen=net.prefixlen)
            ipr.link("set", index=idx, state="up")
            # Security groups (agent/firewall.py) filter bridged IPv4 in the inet forward hook:
            # force that on for our bridges, whatever the host's global switch says.
            write_sysctl(f"/sys/class/net/{name}/bridge/nf_call_iptables", "1")
            self._converged[name] = idx
        return idx

    def _create(self, ipr: IPRoute, name: str, key: str) -> int:
        # A fixed MAC stops the bridge from adopting its lowest port's MAC, which would change
        # the gateway MAC under the tasks' ARP caches whenever a port comes or goes.
        mac = self.names.bridge_mac(key)
        ignore_exists(lambda: ipr.link(
            "add", ifname=name, kind="bridge", address=mac,
            br_stp_state=0, br_forward_delay=0,
        ))
        quiet_ipv6(name)
        idx = index(ipr, name)
        if idx is None:
            raise NetworkError(f"bridge {name} vanished right after creation")
        return idx

    def converged(self, key: str) -> int | None:
        """The subnet bridge's ifindex if this process converged it and it is still that
        device, up, and filtering bridged traffic (three small sysfs reads: a netlink
        lookup decodes the whole bridge, ~1 ms of Python); None when it must be converged
        again. (sysfs shows the links of the netns it was mounted in: the host's, where the
        bridges are.)"""
        name = self.names.bridge_name(key)
        idx = self._converged.get(name)
        if idx is None:
            return None
        base = f"/sys/class/net/{name}"
        if read_sysctl(f"{base}/ifindex") != str(idx):
            return None  # gone, or made anew (a new device gets a new index)
        if not int(read_sysctl(f"{base}/flags") or "0", 16) & IFF_UP:
            return None
        if read_sysctl(f"{base}/bridge/nf_call_iptables") != "1":
            return None
        return idx

    def remove(self, key: str) -> None:
        name = self.names.bridge_name(key)
        self._converged.pop(name, None)
        run_in_thread(lambda: with_ipr(lambda ipr: delete_link(ipr, name)))

    def forget(self) -> None:
        """Clean-up removed every bridge: none is converged any more."""
        self._converged.clear()


def _check_no_overlap(ipr: IPRoute, net: ipaddress.IPv4Network, skip: int = -1) -> None:
    """Refuse a subnet that overlaps one already on another interface (e.g. eth0): its
    connected route would hijack host traffic into our bridge."""
    for addr in ipr.get_addr(family=socket.AF_INET):
        if addr["index"] == skip:
            continue
        other = ipaddress.ip_network(
            f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}", strict=False)
        if other.overlaps(net) and not other.network_address.is_loopback:
            raise NetworkError(f"subnet {net} overlaps {other} on ifindex {addr['index']}")
