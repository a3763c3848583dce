"""Security groups as the data plane takes them: the whole rule set, built by control from the
store, and applied by the host in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model.netpolicy import Allow
from ..model.secgroups import Rule


@dataclass
class GroupRules:
    id: str
    rules: list[Rule]
    admits_host: bool = False  # a VPC's default group lets the host in


@dataclass
class FirewallSpec:
    """Everything the tables hold. Tasks are named by id: which interface carries a task is
    the host's business."""

    nets: list[str] = field(default_factory=list)  # every subnet block
    subnets: list[str] = field(default_factory=list)  # ids of the subnets this host serves
    gateways: list[str] = field(default_factory=list)
    groups: list[GroupRules] = field(default_factory=list)
    members: dict[str, set[str]] = field(default_factory=dict)  # group id -> task IPs
    tasks: dict[str, str] = field(default_factory=dict)  # task id -> its IP


@dataclass
class PolicySpec:
    """NetworkPolicies as the kernel holds them, beside the security groups (a packet must
    pass both): per isolated pod address, what it may receive (ingress) and send (egress);
    addresses in neither map are not restricted. subnets: ids of the subnets whose bridges
    carry pods (the only traffic judged)."""

    subnets: list[str] = field(default_factory=list)
    ingress: dict[str, list[Allow]] = field(default_factory=dict)
    egress: dict[str, list[Allow]] = field(default_factory=dict)
