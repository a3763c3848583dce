"""What the ELBv2 operations share: their collaborators, the lookups with ELBv2's not-found
errors, and the views the faces and the ECS services integration read."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from ...model import elbv2 as m
from ...model.errors import ApiError
from ...model.vpc import Subnet
from ...store.elbv2 import Elbv2Tables
from ..network import Networks
from ..tasks.placement import Placement
from .reconciler import Reconciler

# The ECS services hook: the service using a target group (its ARN), or None.
InUseBy = Callable[[str], str | None]


class TargetState(NamedTuple):
    """One registered target's health, as DescribeTargetHealth gives it."""

    ip: str
    port: int
    state: str
    reason: str | None


@dataclass(frozen=True)
class TargetHealthView:
    target: m.Target | None  # None: a target asked about that is not registered
    ip: str
    port: int
    zone: str | None
    health_port: str
    state: str
    reason: str | None
    description: str | None


@dataclass(frozen=True)
class TargetGroupInfo:
    """What the ECS services integration needs of a target group."""

    arn: str
    name: str
    port: int
    protocol: str
    vpc_id: str
    load_balancers: tuple[str, ...]  # ARNs of those forwarding to it (at most one on AWS)
    deregistration_delay: int


@dataclass(frozen=True)
class TargetRequest:
    """A TargetDescription as RegisterTargets, DeregisterTargets and DescribeTargetHealth
    take it."""

    id: str
    port: int | None = None
    zone: str | None = None
    quic_server_id: str | None = None


@dataclass(frozen=True)
class RuleView:
    """A rule as DescribeRules gives it: a listener's own rule or its default one."""

    arn: str
    listener_arn: str
    priority: str  # "1".."50000", or "default"
    conditions: list[m.Condition]
    actions: list[m.Action]
    is_default: bool


def page(items: list, marker: str | None, size: int | None) -> tuple[list, str | None]:
    """items from the marker (the index of the page's first item, as an opaque string), up
    to size of them (400 at most, and when not given), and the next page's marker."""
    start = 0
    if marker is not None:
        if not re.fullmatch(r"[0-9]{1,9}", marker) or int(marker) > len(items):
            raise m.invalid(f"The marker '{marker[:100]}' is not valid")
        start = int(marker)
    if size is None:
        size = m.MAX_PAGE
    if not 1 <= size <= m.MAX_PAGE:
        raise m.invalid(f"PageSize must be between 1 and {m.MAX_PAGE}, not {size}")
    chunk = items[start:start + size]
    return chunk, str(start + size) if start + size < len(items) else None


def new_hex_id() -> str:
    return secrets.token_hex(8)


def not_found(code: str, what: str, arn: str) -> ApiError:
    return m.error(code, f"{what} '{arn[:200]}' not found")


class Base:
    def __init__(self, tables: Elbv2Tables, networks: Networks, placement: Placement,
                 reconciler: Reconciler, region: str, clock: Callable[[], float],
                 new_id: Callable[[], str] = new_hex_id):
        self.tables = tables
        self.networks = networks
        self.placement = placement
        self.reconciler = reconciler
        self.region = region
        self.clock = clock
        self.new_id = new_id
        self.in_use_by: InUseBy = lambda arn: None  # set by the ECS services integration

    def _fresh_id(self) -> str:
        value = self.new_id()
        assert m.new_id_ok(value), value
        return value

    # ---- lookups
    def _lb(self, arn: str) -> m.LoadBalancer:
        m.check_arn(arn, "loadbalancer")
        lb = self.tables.get_lb(arn)
        if lb is None:
            raise not_found("LoadBalancerNotFound", "Load balancer", arn)
        return lb

    def _tg(self, arn: str) -> m.TargetGroup:
        m.check_arn(arn, "targetgroup")
        tg = self.tables.get_tg(arn)
        if tg is None:
            raise not_found("TargetGroupNotFound", "Target group", arn)
        return tg

    def _listener(self, arn: str) -> m.Listener:
        m.check_arn(arn, "listener")
        listener = self.tables.get_listener(arn)
        if listener is None:
            raise not_found("ListenerNotFound", "Listener", arn)
        return listener

    def _rule(self, arn: str) -> m.Rule | m.Listener:
        """A rule, or, for a default rule's ARN, its listener."""
        m.check_arn(arn, "listener-rule")
        rule = self.tables.get_rule(arn)
        if rule is not None:
            return rule
        head, _, tail = arn.partition(":listener-rule/")
        listener = self.tables.get_listener(f"{head}:listener/{tail.rsplit('/', 1)[0]}")
        if listener is None or listener.rule_arn != arn:
            raise not_found("RuleNotFound", "Rule", arn)
        return listener

    def _vpc_cidr(self, vpc_id: str) -> str | None:
        return next((v.cidr for v in self.networks.vpc_items() if v.id == vpc_id), None)

    def _vpc_subnets(self, vpc_id: str) -> list[Subnet]:
        return [s for s in self.networks.all_subnets() if s.vpc_id == vpc_id]

    def _users(self, tg_arn: str) -> list[str]:
        """ARNs of the load balancers whose listeners or rules forward to the group."""
        lbs: list[str] = []
        for listener in self.tables.listeners():
            acts = list(listener.actions)
            for rule in self.tables.rules(listener.arn):
                acts += rule.actions
            if any(tg_arn in a.target_groups() for a in acts) and listener.lb_arn not in lbs:
                lbs.append(listener.lb_arn)
        return lbs

    def _in_use(self, tg_arn: str) -> bool:
        return bool(self._users(tg_arn))
