"""The default network: one VPC cut into one private subnet per availability zone."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any

from .errors import ApiError
from .ipam import Ipam

ZONES = ("a", "b", "c")


def _rid(kind: str, seed: str) -> str:
    return f"{kind}-{hashlib.sha256(seed.encode()).hexdigest()[:17]}"


@dataclass(frozen=True)
class Subnet:
    id: str
    vpc_id: str
    cidr: str
    zone: str
    zone_id: str

    @property
    def gateway(self) -> str:
        return Ipam.gateway(self.cidr)


@dataclass(frozen=True)
class Vpc:
    id: str
    cidr: str
    region: str
    subnets: tuple[Subnet, ...]
    default_sg: str

    def record(self) -> VpcRecord:
        return VpcRecord(self.id, self.cidr, True, self.default_sg)


@dataclass(frozen=True)
class VpcRecord:
    """A VPC as EC2 lists it: the default one (from the settings) or one a user made."""

    id: str
    cidr: str
    is_default: bool
    default_sg: str

    def to_doc(self) -> dict[str, Any]:
        return {"VpcId": self.id, "CidrBlock": self.cidr, "IsDefault": self.is_default,
                "DefaultSg": self.default_sg}

    @staticmethod
    def from_doc(doc: dict[str, Any]) -> VpcRecord:
        return VpcRecord(doc["VpcId"], doc["CidrBlock"], bool(doc["IsDefault"]),
                         doc["DefaultSg"])


def subnet_to_doc(s: Subnet) -> dict[str, Any]:
    return {"SubnetId": s.id, "VpcId": s.vpc_id, "CidrBlock": s.cidr, "AvailabilityZone": s.zone,
            "AvailabilityZoneId": s.zone_id}


def subnet_from_doc(doc: dict[str, Any]) -> Subnet:
    return Subnet(doc["SubnetId"], doc["VpcId"], doc["CidrBlock"], doc["AvailabilityZone"],
                  doc["AvailabilityZoneId"])


def default_vpc(region: str, cidr: str) -> Vpc:
    """Deterministic ids, so they are the same after every restart with the same settings."""
    net = ipaddress.ip_network(cidr, strict=False)
    if net.prefixlen > 24:
        raise ValueError(f"VPC CIDR {cidr} is too small: use /24 or larger")
    vpc_id = _rid("vpc", f"{region}/{net}")
    # Four equal parts; the first three become the zones' subnets, the last stays free.
    parts = list(net.subnets(prefixlen_diff=2))[: len(ZONES)]
    subnets = tuple(
        Subnet(_rid("subnet", f"{vpc_id}/{p}"), vpc_id, str(p), f"{region}{z}",
               f"{region}-az{i + 1}")
        for i, (p, z) in enumerate(zip(parts, ZONES, strict=False))
    )
    return Vpc(vpc_id, str(net), region, subnets, _rid("sg", f"{vpc_id}/default"))


def block(text: object, what: str) -> ipaddress.IPv4Network:
    """A VPC or subnet CIDR block as AWS allows it: IPv4, /16 to /28, no host bits."""
    try:
        net = ipaddress.IPv4Network(str(text), strict=True)
    except ValueError:
        raise ApiError(f"Value ({str(text)[:60]}) for parameter cidrBlock is invalid. This is "
                       "not a valid CIDR block.", code="InvalidParameterValue") from None
    code = "InvalidVpc.Range" if what == "vpc" else "InvalidSubnet.Range"
    if not 16 <= net.prefixlen <= 28:
        raise ApiError(f"The CIDR '{net}' is invalid: a {what} needs /16 to /28.", code=code)
    # A bridge's connected route would capture these for the whole host (loopback, link-local
    # with the instance metadata address, multicast, reserved, "this network").
    if any(net.overlaps(ipaddress.IPv4Network(r)) for r in _RESERVED):
        raise ApiError(f"The CIDR '{net}' is invalid: it overlaps a reserved range.", code=code)
    return net


_RESERVED = ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3")


def subnet_block(text: object, vpc_cidr: str, others: list[str]) -> str:
    """A new subnet's block: inside its VPC, overlapping no other subnet on this host (all
    subnets share the host's routing table, so even other VPCs' subnets must not overlap)."""
    net = block(text, "subnet")
    if not net.subnet_of(ipaddress.IPv4Network(vpc_cidr)):
        raise ApiError(f"The CIDR '{net}' is invalid.", code="InvalidSubnet.Range")
    for other in others:
        if net.overlaps(ipaddress.IPv4Network(other)):
            raise ApiError(f"The CIDR '{net}' conflicts with another subnet",
                           code="InvalidSubnet.Conflict")
    return str(net)
