"""What a VPC's resolver answers: names, records and the answer rules, without the wire format
(api/dns.py) or where the names come from (control/dns.py). Pure: no I/O, no clock, no random.

Names are kept as lower-case text, labels joined by dots, without the final dot. The wire side
refuses to look up any name whose labels hold a dot, a backslash or a byte outside printable
ASCII: none of fargo's names does, so such a query can only be answered NXDOMAIN."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

MAX_NAME = 253  # text form, without the final dot (255 octets on the wire)
MAX_LABEL = 63
MAX_CHASE = 8  # CNAME links followed inside fargo's own data
_LABEL = re.compile(r"^[!-~]{1,63}$")  # printable ASCII, no space; dots split labels
DEFAULT_TTL = 60
NEGATIVE_TTL = 60  # the SOA minimum of zones that set none: how long a "no" may be cached


class Rcode(Enum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5


@dataclass(frozen=True)
class A:
    address: str


@dataclass(frozen=True)
class AAAA:
    address: str


@dataclass(frozen=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True)
class Cname:
    target: str


@dataclass(frozen=True)
class Ptr:
    target: str


@dataclass(frozen=True)
class Soa:
    """A zone's start of authority (served at its apex, and with every negative answer)."""

    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


Rdata = A | AAAA | Srv | Cname | Ptr | Soa
_TYPES: dict[type, str] = {A: "A", AAAA: "AAAA", Srv: "SRV", Cname: "CNAME", Ptr: "PTR",
                           Soa: "SOA"}
TYPES = frozenset(_TYPES.values())


@dataclass(frozen=True)
class Record:
    name: str
    ttl: int
    data: Rdata

    @property
    def type(self) -> str:
        return _TYPES[type(self.data)]


@dataclass(frozen=True)
class Zone:
    """A name fargo answers for with authority: below it, what fargo does not know does not
    exist. negative_ttl is its SOA's minimum (Cloud Map's namespaces set it)."""

    apex: str
    negative_ttl: int = NEGATIVE_TTL

    def holds(self, name: str) -> bool:
        return name == self.apex or name.endswith("." + self.apex)

    def soa(self) -> Record:
        return Record(self.apex, self.negative_ttl,
                      Soa(f"ns.{self.apex}" if self.apex else "ns", "hostmaster.fargo.internal",
                          1, 7200, 900, 1209600, self.negative_ttl))


@dataclass(frozen=True)
class View:
    """Whose question it is: a VPC's tasks (vpc_id), or the host (None), which sees every
    VPC's names; cluster: the EKS cluster of the pod whose netns asks (its cluster.local)."""

    vpc_id: str | None = None
    cluster: str | None = None

    def sees(self, vpc_id: str | None) -> bool:
        """vpc_id None: a name for every VPC (a load balancer's public-style DNSName)."""
        return self.vpc_id is None or vpc_id is None or vpc_id == self.vpc_id


HOST = View(None)


@dataclass(frozen=True)
class Answer:
    rcode: Rcode
    records: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()  # the zone's SOA with a negative answer
    authoritative: bool = False


# ---- names


def name_key(text: str) -> str | None:
    """A name as fargo keys it (lower case, no final dot), or None when it is no name fargo
    could hold: empty labels, labels over 63 characters, over 253 in all, or characters
    outside printable ASCII."""
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > MAX_NAME:
        return None
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) and "\\" not in label for label in labels):
        return None
    return name.lower()


def is_hostname(text: str) -> bool:
    """A DNS name of letters, digits, hyphens and underscores, as Route 53 zones take them."""
    key = name_key(text)
    return key is not None and all(re.fullmatch(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?", label)
                                   for label in key.split("."))


def internal_domain(region: str) -> str:
    """The domain of EC2's private DNS names: ec2.internal in us-east-1, else
    REGION.compute.internal."""
    return "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"


def private_name(ip: str, region: str) -> str:
    return f"ip-{ip.replace('.', '-')}.{internal_domain(region)}"


def ip_of_private_name(name: str, region: str) -> str | None:
    """ip-10-89-0-4.ec2.internal -> 10.89.0.4 (None: not such a name)."""
    host, _, domain = name.partition(".")
    if domain != internal_domain(region) or not host.startswith("ip-"):
        return None
    text = host[3:].replace("-", ".")
    try:
        ip = ipaddress.IPv4Address(text)
    except ValueError:
        return None
    return str(ip) if str(ip) == text else None  # no leading zeros or other spellings


def reverse_name(ip: str) -> str:
    return ipaddress.IPv4Address(ip).reverse_pointer


def ip_of_reverse(name: str) -> str | None:
    """4.0.89.10.in-addr.arpa -> 10.89.0.4 (None: not a full IPv4 reverse name)."""
    if not name.endswith(".in-addr.arpa"):
        return None
    parts = name.removesuffix(".in-addr.arpa").split(".")
    if len(parts) != 4 or not all(p.isdigit() and str(int(p)) == p and int(p) < 256
                                  for p in parts):
        return None
    return ".".join(reversed(parts))


def reverse_zone(cidr: str) -> str:
    """The in-addr.arpa zone that holds a block's reverse names: its prefix rounded down to
    whole octets (10.89.0.0/16 -> 89.10.in-addr.arpa; 10.89.16.0/20 -> the same)."""
    net = ipaddress.IPv4Network(cidr, strict=False)
    octets = net.prefixlen // 8
    parts = str(net.network_address).split(".")[:octets]
    return ".".join([*reversed(parts), "in-addr", "arpa"])


def resolver_address(vpc_cidr: str) -> str:
    """AWS's resolver of a VPC: its block's base address + 2."""
    return str(ipaddress.IPv4Network(vpc_cidr, strict=False).network_address + 2)


def resolv_conf(nameserver: str, region: str) -> str:
    """A task's /etc/resolv.conf, as Fargate writes it."""
    return f"nameserver {nameserver}\nsearch {internal_domain(region)}\n"


def hosts_file(ip: str, name: str) -> str:
    """A task's /etc/hosts: loopback, and its own address under its private DNS name."""
    short = name.split(".", 1)[0]
    return ("127.0.0.1 localhost localhost.localdomain\n"
            "::1 localhost ip6-localhost ip6-loopback\n"
            f"{ip} {name} {short}\n")


# ---- answers


# The records at a name in a view: a list (maybe empty: the name exists without records of
# its own), or None when no such name exists.
Lookup = Callable[[str], Sequence[Record] | None]


def answer(qname: str, qtype: str, zones: Sequence[Zone], lookup: Lookup) -> Answer:
    """The answer to one question (qtype a type's mnemonic, "ANY" for all) from fargo's data:
    the records of that type at the name, following CNAMEs fargo itself holds; the SOA at a
    zone's apex; NOERROR with no records when the name exists without that type; NXDOMAIN
    when it does not exist. Nothing is ever asked of anyone else."""
    key = name_key(qname)
    if key is None:
        return Answer(Rcode.NXDOMAIN)
    records: list[Record] = []
    seen: set[str] = set()
    name, rcode = key, Rcode.NOERROR
    for _ in range(MAX_CHASE + 1):
        seen.add(name)
        zone = _zone_of(name, zones)
        at = lookup(name)
        apex = zone is not None and zone.apex == name
        if at is None and not apex:
            rcode = Rcode.NXDOMAIN
            break
        found = [*(at or ()), *([zone.soa()] if zone is not None and apex else [])]
        wanted = [r for r in found if qtype in ("ANY", r.type)]
        cname = next((r for r in found if isinstance(r.data, Cname)), None)
        if wanted or cname is None or not isinstance(cname.data, Cname):
            records += wanted
            break
        records.append(cname)
        target = name_key(cname.data.target)
        if target is None or target in seen:  # a loop in fargo's own data ends here
            break
        name = target
    zone = _zone_of(name, zones)
    negative = not _answers(records, name, qtype)
    authority = (zone.soa(),) if zone is not None and negative else ()
    return Answer(rcode, tuple(records), authority, authoritative=zone is not None)


def _answers(records: list[Record], name: str, qtype: str) -> bool:
    return any(r.name == name and qtype in ("ANY", r.type) for r in records)


def _zone_of(name: str, zones: Sequence[Zone]) -> Zone | None:
    """The most specific zone holding name."""
    best: Zone | None = None
    for zone in zones:
        if zone.holds(name) and (best is None or len(zone.apex) > len(best.apex)):
            best = zone
    return best
