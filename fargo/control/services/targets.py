"""A service's tasks in its load balancers' target groups: registered once RUNNING, judged by
their targets' health, deregistered (draining for the group's deregistration delay) before
the scheduler stops them, and taken out when they stop on their own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ...model.errors import ApiError, InvalidParameterException
from ...model.service import LoadBalancerBinding, Service
from ...model.taskrecord import Task
from ..elbv2.base import TargetGroupInfo, TargetState

Key = tuple[str, int]  # (ip, port)


class TargetGroups(Protocol):
    """What the services need of ELBv2 (control/elbv2's Elbv2)."""

    def register(self, target_group_arn: str, ip: str, port: int) -> None: ...

    def deregister(self, target_group_arn: str, ip: str, port: int) -> None: ...

    def health(self, target_group_arn: str) -> list[TargetState]: ...

    def drained(self, target_group_arn: str, ip: str, port: int) -> bool: ...

    def target_group(self, arn: str) -> TargetGroupInfo | None: ...


@dataclass
class Snapshot:
    """The service's target groups as one pass sees them."""

    states: dict[str, dict[Key, TargetState]] = field(default_factory=dict)

    def of(self, svc: Service, task: Task) -> list[str | None]:
        """The task's target state in each group (None: not registered)."""
        out: list[str | None] = []
        for b in svc.load_balancers:
            state = self.states.get(b.target_group_arn, {}).get((task.ip, b.container_port))
            out.append(state.state if state else None)
        return out


class ServiceTargets:
    def __init__(self, groups: TargetGroups):
        self.groups = groups

    def snapshot(self, svc: Service) -> Snapshot:
        return Snapshot({b.target_group_arn: {(t.ip, t.port): t
                                              for t in self.groups.health(b.target_group_arn)}
                         for b in svc.load_balancers})

    def sync(self, svc: Service, tasks: list[Task], snap: Snapshot,
             leaving: set[str]) -> tuple[int, int]:
        """Running tasks the pass keeps are registered; tasks on their way out (stopping,
        stopped, or in `leaving`: the pass stops them) are deregistered. Returns how many
        targets were registered and deregistered."""
        keep = {t.ip for t in tasks
                if t.last_status == "RUNNING" and not t.stopping and t.id not in leaving}
        ours = {t.ip for t in tasks}  # a user's own targets in the group are left alone
        added = removed = 0
        for b in svc.load_balancers:
            seen = snap.states.get(b.target_group_arn, {})
            for ip in sorted(keep):
                if (ip, b.container_port) not in seen:
                    added += _done(self.groups.register, b.target_group_arn, ip,
                                   b.container_port)
            for (ip, port), state in seen.items():
                if port == b.container_port and ip in ours and ip not in keep and \
                        state.state != "draining":
                    removed += _done(self.groups.deregister, b.target_group_arn, ip, port)
        return added, removed

    def check(self, items: list[LoadBalancerBinding], vpcs: set[str]) -> None:
        """Each target group exists, is of the tasks' VPC and has a load balancer."""
        for b in items:
            info = self.groups.target_group(b.target_group_arn)
            if info is None:
                raise InvalidParameterException(
                    f"loadBalancers: the target group {b.target_group_arn[:300]} does not exist.")
            if not info.load_balancers:
                raise InvalidParameterException(
                    f"loadBalancers: the target group with targetGroupArn {info.arn} does not have an "
                    "associated load balancer.")
            if info.vpc_id not in vpcs:
                raise InvalidParameterException(
                    f"loadBalancers: the target group {info.arn} is in VPC {info.vpc_id}, not the VPC of "
                    "the service's subnets.")

    def drained(self, svc: Service, task: Task) -> bool:
        """Whether every group has let the task go (its deregistration delay is over)."""
        return all(self.groups.drained(b.target_group_arn, task.ip, b.container_port)
                   for b in svc.load_balancers)


def _done(call: Callable[[str, str, int], None], arn: str, ip: str, port: int) -> int:
    """1 if the call went through; a group changed under the pass is looked at next pass."""
    try:
        call(arn, ip, port)
    except ApiError:
        return 0
    return 1
