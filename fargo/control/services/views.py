"""A service's tasks as the scheduler and DescribeServices see them (model/rollout.py's
TaskView), made from the task records."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ...model import rollout
from ...model.healthcheck import task_health
from ...model.taskrecord import Task
from ..tasks.engine import INTERNAL_ERROR, REDO_REFUSED

# Stops that say nothing of the deployment's health.
_NOT_FAILURES = ("ServiceSchedulerInitiated", "UserInitiated", "SpotInterruption",
                 "TerminationNotice")
# Starts the server's own crash or fault ended: nothing of the task definition's doing.
_SERVER_FAULTS = (REDO_REFUSED, INTERNAL_ERROR)
_HEALTH_STOPS = (rollout.UNHEALTHY_REASON, rollout.ELB_UNHEALTHY.split("{")[0])


def has_checks(task: Task) -> bool:
    return any(c.get("healthCheck") and c.get("essential", True) for c in task.plan)


def view(task: Task, now: float, grace: int | None = None,
         targets: list[tuple[str, str | None]] | None = None) -> rollout.TaskView:
    """grace: the service's healthCheckGracePeriodSeconds, counted from the task's start;
    targets: (target group ARN, the task's target state there or None) per load balancer."""
    if task.last_status == "STOPPED":
        state = rollout.STOPPED
    elif task.stopping:
        state = rollout.STOPPING
    elif task.last_status == "RUNNING":
        state = rollout.RUNNING
    else:
        state = rollout.PENDING
    health = task_health(task) if state == rollout.RUNNING else "UNKNOWN"
    failed = state in (rollout.STOPPING, rollout.STOPPED) and (
        task.stopped_reason not in _SERVER_FAULTS and task.stop_code not in _NOT_FAILURES
        or (task.stop_code == "ServiceSchedulerInitiated"
            and (task.stopped_reason or "").startswith(_HEALTH_STOPS)))
    checked = has_checks(task)
    healthy = state == rollout.RUNNING and (health == "HEALTHY" or not checked)
    why = rollout.UNHEALTHY_REASON
    unhealthy = health == "UNHEALTHY"
    if targets and state == rollout.RUNNING:  # its load balancers judge it too
        healthy = healthy and all(s == "healthy" for _, s in targets)
        bad = [arn for arn, s in targets if s == "unhealthy"]
        if bad and not unhealthy:
            unhealthy, why = True, rollout.ELB_UNHEALTHY.format(bad[0])
    return rollout.TaskView(
        id=task.id, deployment=task.started_by or "", zone=task.availability_zone,
        state=state, created_at=task.created_at, healthy=healthy,
        young=healthy and not checked and not targets and
        (task.started_at or now) > now - rollout.SETTLE,
        in_grace=bool(grace) and (task.started_at or now) > now - (grace or 0),
        unhealthy=unhealthy, why_unhealthy=why, failed=failed, ran=task.started_at is not None,
        stopped_at=task.stopping_at or task.stopped_at)


@dataclass(frozen=True)
class Counts:
    running: int = 0
    pending: int = 0


def counts(views: list[rollout.TaskView]) -> tuple[Counts, dict[str, Counts]]:
    """(the service's, each deployment's) running and pending counts, as ECS shows them:
    running is lastStatus RUNNING, pending is on its way there."""
    running = Counter(v.deployment for v in views if v.state == rollout.RUNNING)
    pending = Counter(v.deployment for v in views if v.state == rollout.PENDING)
    per = {d: Counts(running[d], pending[d]) for d in set(running) | set(pending)}
    return Counts(sum(running.values()), sum(pending.values())), per
