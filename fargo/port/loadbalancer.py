"""What control tells a host's load balancer data plane (one HAProxy per load balancer, in a
network namespace of its own), and what that data plane reports back. Plain data: nothing of
ELBv2's wire names or AWS's health reason codes (control maps them, model/ holds the rules)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..model.vpc import Subnet


@dataclass(frozen=True)
class Target:
    ip: str
    port: int
    draining: bool = False  # deregistering: no new connections, established ones finish


@dataclass(frozen=True)
class HealthCheck:
    protocol: str = "HTTP"  # HTTP | TCP
    port: int | None = None  # None: each target's own port
    path: str = "/"
    interval: int = 30  # seconds
    timeout: int = 5  # seconds
    healthy_threshold: int = 5
    unhealthy_threshold: int = 2
    codes: str = "200"  # HTTP: "200", "200-299", "200,202" (ELBv2 Matcher.HttpCode)


@dataclass(frozen=True)
class Pool:
    """A target group as the data plane sees it."""

    id: str  # short and unique on the host: names HAProxy backends and servers
    protocol: str  # HTTP | TCP
    targets: tuple[Target, ...] = ()
    health: HealthCheck = field(default_factory=HealthCheck)
    sticky_seconds: int | None = None  # lb_cookie stickiness duration; None: off


@dataclass(frozen=True)
class Condition:
    """One rule condition; every one of a rule's must match (values within one: any)."""

    kind: str  # path-pattern | host-header | http-header | query-string | http-request-method | source-ip
    values: tuple[str, ...] = ()  # patterns may hold * and ? wildcards, as ELBv2's do
    header: str | None = None  # http-header: the header's name
    pairs: tuple[tuple[str | None, str], ...] = ()  # query-string: (key or None, value)


@dataclass(frozen=True)
class Redirect:
    """ELBv2's redirect; each part may hold #{protocol}, #{host}, #{port}, #{path}, #{query}."""

    status: int  # 301 | 302
    protocol: str = "#{protocol}"
    host: str = "#{host}"
    port: str = "#{port}"
    path: str = "/#{path}"
    query: str = "#{query}"


@dataclass(frozen=True)
class Action:
    kind: str  # forward | fixed-response | redirect
    pools: tuple[tuple[str, int], ...] = ()  # forward: (pool id, weight)
    status: int | None = None  # fixed-response's status code
    content_type: str | None = None
    body: str | None = None
    redirect: Redirect | None = None


@dataclass(frozen=True)
class Rule:
    priority: int  # lower first
    conditions: tuple[Condition, ...]
    action: Action


@dataclass(frozen=True)
class Listener:
    port: int
    protocol: str  # HTTP (application) | TCP (network)
    default: Action
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class LoadBalancerSpec:
    id: str  # short and unique on the host (netns, HAProxy's files and sockets are named by it)
    kind: str  # application | network
    addresses: tuple[tuple[Subnet, str], ...]  # each subnet and the load balancer's IP in it
    groups: tuple[str, ...] = ()  # security groups (application load balancers)
    listeners: tuple[Listener, ...] = ()
    pools: tuple[Pool, ...] = ()
    idle_timeout: int = 60  # seconds (idle_timeout.timeout_seconds)


@dataclass(frozen=True)
class TargetCheck:
    """HAProxy's view of one target: control turns it into ELBv2's state and reason."""

    pool: str
    ip: str
    port: int
    status: str  # UP | DOWN | INIT (no check result yet) | DRAIN | MAINT
    check: str | None = None  # HAProxy's last check status: L7OK, L7STS, L4TOUT, L4CON, ...
    code: int | None = None  # the HTTP status of the last check, if it got one


def interface_id(lb_id: str, subnet_id: str) -> str:
    """What the host's network calls a load balancer's interface in a subnet, as it calls a
    task's by the task's id: control names it, with the load balancer's address in that
    subnet, in FirewallSpec.tasks and in Network.join_groups/leave_groups, so the firewall
    holds that interface to that address and its security groups as it does a task's."""
    return f"lb-{lb_id}-{subnet_id}"


class LoadBalancerError(Exception):
    """The data plane could not make a load balancer as asked (HAProxy refused its
    configuration, or would not start); the message says why."""


class LoadBalancers(Protocol):
    def apply(self, spec: LoadBalancerSpec) -> None:
        """Make the load balancer so, or change it to be so (idempotent). Changes of targets
        and their draining apply without dropping established connections."""
        ...

    def remove(self, lb_id: str) -> None:
        """HAProxy, its namespace and addresses go (idempotent)."""
        ...

    def checks(self, lb_id: str) -> list[TargetCheck]:
        """Every target's last health check, as HAProxy's runtime API reports it."""
        ...

    def running(self) -> list[str]:
        """The ids of the load balancers this host serves now (re-adopted after a restart)."""
        ...
