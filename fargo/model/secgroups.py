"""Security groups as EC2 defines them: names, rules, duplicates, and the IpPermission shape.

Pure rules, no I/O. A rule is one (direction, protocol, port range, peer) fact; EC2's
IpPermission bundles several peers under one protocol and range, so requests are split into
rules on the way in and grouped back on the way out. New ids come from the caller's
`new_id(kind)` (kind "sgr" for rules)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from .errors import ApiError
from .names import ACCOUNT

MAX_RULES = 60  # per group and direction (AWS's default quota)
_TEXT = re.compile(r"^[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*$")  # what a VPC group name allows
_PROTOCOLS = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "icmp": "icmp", "1": "icmp",
              "-1": "-1", "all": "-1"}
WITH_PORTS = ("tcp", "udp")


def invalid(message: str) -> ApiError:
    return ApiError(message, code="InvalidParameterValue")


def missing(name: str) -> ApiError:
    return ApiError(f"The request must contain the parameter {name}", code="MissingParameter")


NewId = Callable[[str], str]  # "sgr" -> "sgr-0123..."


@dataclass(frozen=True)
class Rule:
    egress: bool
    protocol: str  # "tcp", "udp", "icmp", "-1" (all) or another IP protocol number
    from_port: int | None  # tcp/udp: port range; icmp: type and code (-1 = any)
    to_port: int | None
    cidr: str | None = None  # exactly one of cidr and group is set
    group: str | None = None
    description: str = ""
    rule_id: str = ""

    def key(self) -> tuple[Any, ...]:
        """What makes two rules the same rule (the description and id do not)."""
        return (self.egress, self.protocol, self.from_port, self.to_port, self.cidr, self.group)

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_doc(doc: dict[str, Any]) -> Rule:
        return Rule(**doc)

    def describe(self) -> str:
        peer = self.cidr or self.group
        proto = "ALL" if self.protocol == "-1" else self.protocol.upper()
        return (f'"peer: {peer}, {proto}, from port: {self.from_port}, to port: {self.to_port}, '
                'ALLOW"')


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    name: str
    description: str
    vpc_id: str
    rules: tuple[Rule, ...]

    @property
    def admits_host(self) -> bool:
        """A VPC's default group lets the host in."""
        return self.name == "default"

    def to_doc(self) -> dict[str, Any]:
        return {"GroupId": self.id, "GroupName": self.name, "Description": self.description,
                "VpcId": self.vpc_id, "rules": [r.to_doc() for r in self.rules]}

    @staticmethod
    def from_doc(doc: dict[str, Any]) -> SecurityGroup:
        return SecurityGroup(doc["GroupId"], doc["GroupName"], doc["Description"],
                             doc["VpcId"], tuple(Rule.from_doc(r) for r in doc["rules"]))


# ---------------------------------------------------------------- names


def check_text(value: str | None, what: str, wire: str) -> str:
    if value is None or value == "":
        raise missing(wire)
    if len(value) > 255:
        raise invalid(f"{what} can be at most 255 characters long.")
    if not _TEXT.match(value):
        raise invalid(f"Invalid {what}: only a-z, A-Z, 0-9, spaces and ._-:/()#,@[]+=&;{{}}!$* "
                      "are allowed.")
    return value


def check_group_name(name: str | None) -> str:
    name = check_text(name, "security group name", "GroupName")
    if name.lower().startswith("sg-"):
        raise invalid("Group names may not be in the format sg-*.")
    if name == "default":
        raise ApiError("The security group name 'default' is reserved.",
                       code="InvalidGroup.Reserved")
    return name


# ---------------------------------------------------------------- rules in


def _port(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid value '{str(value)[:40]}' for {what}.") from None


def protocol(value: Any) -> str:
    if value is None or value == "":
        raise missing("IpProtocol")
    text = str(value).lower()
    if text in _PROTOCOLS:
        return _PROTOCOLS[text]
    if text.isdigit() and len(text) <= 3 and int(text) <= 255:
        return str(int(text))
    raise invalid(f"Invalid value '{str(value)[:40]}' for IP protocol. Unknown protocol.")


def ports(proto: str, from_port: Any, to_port: Any) -> tuple[int | None, int | None]:
    low, high = _port(from_port, "fromPort"), _port(to_port, "toPort")
    if proto in WITH_PORTS:
        if low is None or high is None:
            raise invalid(f"Invalid value for portRange. Must specify both from and to ports "
                          f"with {proto.upper()}.")
        if not 0 <= low <= high <= 65535:
            raise invalid(f"Invalid {proto.upper()} port range {low}-{high}: ports must be "
                          "0-65535 and fromPort <= toPort.")
        return low, high
    if proto == "icmp":
        low, high = -1 if low is None else low, -1 if high is None else high
        if not (-1 <= low <= 255 and -1 <= high <= 255):
            raise invalid(f"Invalid ICMP type or code: {low}, {high}.")
        if low == -1 and high != -1:
            raise invalid("An ICMP code needs an ICMP type.")
        return low, high
    return None, None  # all protocols, or one without ports: any given range is ignored


def cidr(value: Any) -> str:
    text = str(value)
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError:
        raise invalid(f"Value ({text[:60]}) for parameter cidrIp is invalid. This is not a valid "
                      "CIDR block.") from None
    if "/" not in text:
        raise invalid(f"CIDR block {text[:60]} is malformed: a prefix length is needed.")
    return str(net)


def parse_permissions(perms: list[dict[str, Any]], egress: bool,
                      resolve: Callable[[dict[str, Any]], str]) -> list[Rule]:
    """IpPermission dicts (IpProtocol, FromPort, ToPort, IpRanges, UserIdGroupPairs) to rules.

    `resolve` turns a UserIdGroupPair into a group id of the same VPC, or raises."""
    if not perms:
        raise missing("IpPermissions")
    rules: list[Rule] = []
    for perm in perms:
        if perm.get("Ipv6Ranges") or perm.get("PrefixListIds"):
            raise invalid("IPv6 ranges and prefix lists are not supported by fargo.")
        proto = protocol(perm.get("IpProtocol"))
        low, high = ports(proto, perm.get("FromPort"), perm.get("ToPort"))
        peers = 0
        for rng in perm.get("IpRanges") or []:
            desc = check_text(rng.get("Description"), "description", "Description") \
                if rng.get("Description") else ""
            rules.append(Rule(egress, proto, low, high, cidr=cidr(rng.get("CidrIp")),
                              description=desc))
            peers += 1
        for pair in perm.get("UserIdGroupPairs") or []:
            desc = check_text(pair.get("Description"), "description", "Description") \
                if pair.get("Description") else ""
            rules.append(Rule(egress, proto, low, high, group=resolve(pair), description=desc))
            peers += 1
        if not peers:
            raise missing("IpPermissions.N.IpRanges or IpPermissions.N.Groups")
    return rules


def add_rules(current: list[Rule], new: list[Rule], new_id: NewId
              ) -> tuple[list[Rule], list[Rule]]:
    """All or nothing: any rule already there (or given twice) refuses the whole request."""
    seen = {r.key() for r in current}
    added = []
    for rule in new:
        if rule.key() in seen:
            raise ApiError(f"the specified rule {rule.describe()} already exists",
                           code="InvalidPermission.Duplicate")
        seen.add(rule.key())
        added.append(replace(rule, rule_id=new_id("sgr")))
    result = current + added
    for egress in (False, True):
        if sum(1 for r in result if r.egress == egress) > MAX_RULES:
            raise ApiError(f"The maximum number of rules per security group ({MAX_RULES}) has "
                           "been reached.", code="RulesPerSecurityGroupLimitExceeded")
    return result, added


def remove_rules(current: list[Rule], gone: list[Rule]) -> tuple[list[Rule], list[Rule]]:
    """All or nothing: a rule that is not there refuses the whole request."""
    by_key = {r.key(): r for r in current}
    removed = []
    for rule in gone:
        if rule.key() not in by_key:
            raise ApiError("The specified rule does not exist in this security group.",
                           code="InvalidPermission.NotFound")
        removed.append(by_key.pop(rule.key()))
    keep = [r for r in current if r.key() in by_key]
    return keep, removed


def default_rules(group_id: str, is_default: bool, new_id: NewId) -> list[Rule]:
    """Every group starts with all egress; a VPC's default group also admits its own members."""
    rules = [Rule(True, "-1", None, None, cidr="0.0.0.0/0", rule_id=new_id("sgr"))]
    if is_default:
        rules.insert(0, Rule(False, "-1", None, None, group=group_id, rule_id=new_id("sgr")))
    return rules


# ---------------------------------------------------------------- rules out


def to_permissions(rules: list[Rule]) -> list[dict[str, Any]]:
    """Rules grouped back into IpPermissions, one per (protocol, range), in first-seen order."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rules:
        perm = out.get((r.protocol, r.from_port, r.to_port))
        if perm is None:
            perm = {"IpProtocol": r.protocol, "IpRanges": [], "UserIdGroupPairs": [],
                    "Ipv6Ranges": [], "PrefixListIds": []}
            if r.from_port is not None:
                perm["FromPort"], perm["ToPort"] = r.from_port, r.to_port
            out[(r.protocol, r.from_port, r.to_port)] = perm
        extra = {"Description": r.description} if r.description else {}
        if r.cidr:
            perm["IpRanges"].append({"CidrIp": r.cidr, **extra})
        else:
            perm["UserIdGroupPairs"].append({"GroupId": r.group, "UserId": ACCOUNT, **extra})
    return list(out.values())


def to_rule_shape(r: Rule, group_id: str) -> dict[str, Any]:
    """One rule as EC2's SecurityGroupRule."""
    doc: dict[str, Any] = {"SecurityGroupRuleId": r.rule_id, "GroupId": group_id,
                           "GroupOwnerId": ACCOUNT, "IsEgress": r.egress,
                           "IpProtocol": r.protocol,
                           "FromPort": -1 if r.from_port is None else r.from_port,
                           "ToPort": -1 if r.to_port is None else r.to_port}
    if r.cidr:
        doc["CidrIpv4"] = r.cidr
    else:
        doc["ReferencedGroupInfo"] = {"GroupId": r.group, "UserId": ACCOUNT}
    if r.description:
        doc["Description"] = r.description
    return doc
