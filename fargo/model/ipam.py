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
    def hosts(cidr: str) -> Iterator[str]:
        """Usable task addresses, lowest first (lazy: a /16 has 65k of them)."""
        net = Ipam.network(cidr)
        first = int(net.network_address) + Ipam.RESERVED_HEAD
        last = int(net.broadcast_address) - 1
        for value in range(first, last + 1):
            # inet_ntoa, not str(IPv4Address): ~5x cheaper, and a pick walks every used one.
            yield socket.inet_ntoa(value.to_bytes(4, "big"))

    @staticmethod
    def usable(cidr: str, ip: str) -> bool:
        """True if ip is one of hosts(cidr), without walking the range."""
        net = Ipam.network(cidr)
        try:
            value = int(ipaddress.IPv4Address(ip))
        except ValueError:
            return False
        first = int(net.network_address) + Ipam.RESERVED_HEAD
        return first <= value < int(net.broadcast_address)

    @staticmethod
    def count(cidr: str) -> int:
        """How many task addresses the subnet has in all."""
        return Ipam.network(cidr).num_addresses - Ipam.RESERVED_HEAD - 1

    @staticmethod
    def pick(cidr: str, used: set[str]) -> str | None:
        """Lowest free task address, or None when the subnet is exhausted."""
        for ip in Ipam.hosts(cidr):
            if ip not in used:
                return ip
        return None
