"""Addresses in a subnet as AWS hands them out: pure rules, no I/O."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator


class Ipam:
    """Address rules of an AWS subnet: the first four and the last address are reserved."""

    RESERVED_HEAD = 4  # network, router (.1), DNS (.2), future use (.3)

    @staticmethod
    def network(cidr: str) -> ipaddress.IPv4Network:
        net = ipaddress.ip_network(cidr, strict=True)
        if not isinstance(net, ipaddress.IPv4Network):
            raise ValueError(f"only IPv4 subnets are supported: {cidr}")
        if net.prefixlen > 28:
            raise ValueError(f"subnet too small (AWS allows /16 to /28): {cidr}")
        return net

    @staticmethod
    def gateway(cidr: str) -> str:
        return str(Ipam.network(cidr).network_address + 1)

    @staticmethod
    def endpoint(vpc_cidr: str) -> str:
        """Where a VPC's tasks reach fargo's API: the VPC's base address + 2, which AWS keeps
        for its own services (its DNS resolver). No task ever gets it: a subnet holding it
        starts at the VPC's base, so it is that subnet's reserved .2."""
        return str(Ipam.network(vpc_cidr).network_address + 2)

    @staticmethod
    def hosts(cidr: str, start: int = 0) -> Iterator[str]:
        """Usable task addresses, lowest first, from the start'th (lazy: a /16 has 65k)."""
        net = Ipam.network(cidr)
        first = int(net.network_address) + Ipam.RESERVED_HEAD
        last = int(net.broadcast_address) - 1
        for value in range(first + start, last + 1):
            # inet_ntoa, not str(IPv4Address): ~5x cheaper, and a pick walks every used one.
            yield socket.inet_ntoa(value.to_bytes(4, "big"))

    @staticmethod
    def index(cidr: str, ip: str) -> int | None:
        """ip's place in hosts(cidr), or None when it is not one of them (no walk)."""
        net = Ipam.network(cidr)
        try:
            value = int(ipaddress.IPv4Address(ip))
        except ValueError:
            return None
        first = int(net.network_address) + Ipam.RESERVED_HEAD
        return value - first if first <= value < int(net.broadcast_address) else None

    @staticmethod
    def usable(cidr: str, ip: str) -> bool:
        """True if ip is one of hosts(cidr), without walking the range."""
        return Ipam.index(cidr, ip) is not None

    @staticmethod
    def count(cidr: str) -> int:
        """How many task addresses the subnet has in all."""
        return Ipam.network(cidr).num_addresses - Ipam.RESERVED_HEAD - 1

    @staticmethod
    def pick(cidr: str, used: set[str]) -> str | None:
        """Lowest free task address, or None when the subnet is exhausted."""
        found = Ipam.first_free(cidr, used)
        return found[1] if found else None

    @staticmethod
    def first_free(cidr: str, used: set[str], start: int = 0) -> tuple[int, str] | None:
        """Lowest free task address from the start'th on, with its place in hosts(cidr)."""
        for index, ip in enumerate(Ipam.hosts(cidr, start), start):
            if ip not in used:
                return index, ip
        return None


class AddressBook:
    """The task addresses in use across subnets, picking the lowest free one of a subnet
    without walking those in use below it: with 1,000 tasks running, that walk was a ms of
    each start's server time. Everything below a subnet's `low` mark is in use."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self._low: dict[str, int] = {}  # per subnet CIDR

    def pick(self, cidr: str) -> str | None:
        """The subnet's lowest free address, now in use; None when it is full."""
        found = Ipam.first_free(cidr, self.used, self._low.get(cidr, 0))
        if found is None:
            return None
        index, ip = found
        self._low[cidr] = index + 1
        self.used.add(ip)
        return ip

    def hold(self, ip: str) -> None:
        self.used.add(ip)

    def free(self, ip: str) -> None:
        self.used.discard(ip)
        for cidr, low in self._low.items():
            index = Ipam.index(cidr, ip)
            if index is not None and index < low:
                self._low[cidr] = index
