"""The service scheduler's decision, as a pure function of the service record and what its
tasks are doing: how many tasks to start, which to stop and why, and what its deployments
become. control/services/scheduler.py reads the store, calls `plan`, and acts on it; asked
again with the same store it decides the same, so a restart neither doubles nor loses tasks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .service import Deployment, Service, bounds, breaker_threshold

PENDING, RUNNING, STOPPING, STOPPED = "pending", "running", "stopping", "stopped"
UNHEALTHY_REASON = "Task failed container health checks"
ELB_UNHEALTHY = "Task failed ELB health checks in (target-group {})"
BACKOFF_WINDOW = 300.0  # seconds: failures closer together than this slow the next start
BACKOFF_MAX = 60.0
# A task without health checks has to stay RUNNING this long (seconds) before a rollout
# counts on it: one that exits at once must not complete a deployment nor retire old tasks.
SETTLE = 3.0


@dataclass(frozen=True)
class TaskView:
    """One task of the service, as the scheduler needs to see it."""

    id: str
    deployment: str  # its startedBy
    zone: str
    state: str  # PENDING | RUNNING | STOPPING | STOPPED
    created_at: float
    healthy: bool = False  # running, and its health checks (if any) say HEALTHY
    young: bool = False  # healthy, with no check of any kind, running for less than SETTLE
    in_grace: bool = False  # within healthCheckGracePeriodSeconds of its start: not replaced
    why_unhealthy: str = "Task failed container health checks"  # its stoppedReason if replaced
    unhealthy: bool = False  # running, an essential container's checks say UNHEALTHY
    failed: bool = False  # stopped, and not by the scheduler, a user or Spot
    ran: bool = False  # it reached RUNNING (its failure does not slow the next start)
    stopped_at: float | None = None


@dataclass
class Plan:
    start: int = 0
    stop: list[tuple[str, str]] = field(default_factory=list)  # (task id, stoppedReason)
    completed: bool = False  # the PRIMARY deployment's rollout is COMPLETED now
    failed: bool = False  # the circuit breaker trips now
    drop: list[str] = field(default_factory=list)  # deployments drained: gone INACTIVE
    failed_tasks: int = 0  # the PRIMARY's count of failed tasks, as it stands now
    proven: bool = False  # the PRIMARY has a task running healthily (now or before)
    steady: bool = False
    start_at: float = 0.0  # no start before this (a back-off after failures)


def scaling_reason(deployment: Deployment) -> str:
    return f"Scaling activity initiated by (deployment {deployment.id})"


def plan(svc: Service, tasks: list[TaskView], now: float) -> Plan:
    """What the scheduler does next."""
    out = Plan()
    prim = svc.primary
    desired = svc.desired_count
    low, high = bounds(desired, svc.config)
    live = [t for t in tasks if t.state in (PENDING, RUNNING)]
    stopping = [t for t in tasks if t.state == STOPPING]
    stopped_ids: set[str] = set()

    def stop(t: TaskView, reason: str) -> None:
        out.stop.append((t.id, reason))
        stopped_ids.add(t.id)

    # A task an essential container's checks call UNHEALTHY is replaced.
    for t in live:
        if t.unhealthy and not t.in_grace:
            stop(t, t.why_unhealthy)
    live = [t for t in live if t.id not in stopped_ids]

    # Scale in: the surplus of the PRIMARY goes, pending ones first, then from the zone with
    # the most, newest first.
    mine = [t for t in live if t.deployment == prim.id]
    if len(mine) > desired:
        zones = Counter(t.zone for t in mine)
        mine.sort(key=lambda t: (t.state != PENDING, -zones[t.zone], -t.created_at))
        for t in mine[:len(mine) - desired]:
            stop(t, scaling_reason(prim))
            zones[t.zone] -= 1
        mine = mine[len(mine) - desired:]
    live = [t for t in live if t.id not in stopped_ids]

    # The circuit breaker counts the PRIMARY's tasks that failed while it rolls out, until
    # one of its tasks runs healthily: then the count is 0 and no longer kept (as ECS's
    # failedTasks, "consecutively failed tasks").
    failures = [t for t in tasks if t.deployment == prim.id and t.failed]
    out.proven = prim.proven or any(proven(t) for t in mine)
    if out.proven:
        out.failed_tasks = 0
    elif prim.rollout_state == "IN_PROGRESS":
        out.failed_tasks = max(prim.failed_tasks, len(failures))
    else:
        out.failed_tasks = prim.failed_tasks
    if prim.rollout_state == "IN_PROGRESS" and not out.proven and svc.config.breaker and \
            out.failed_tasks >= breaker_threshold(desired):
        out.failed = True
    halted = prim.rollout_state == "FAILED" or out.failed

    # Start what the PRIMARY lacks, within maximumPercent of all tasks (those stopping are
    # still RUNNING or on their way down: they count).
    if not halted:
        # Those stopped in this pass still run too: a replacement waits for room.
        room = high - len(live) - len(stopping) - len(stopped_ids)
        out.start = max(0, min(desired - len(mine), room))
        recent = sorted(t.stopped_at or 0.0 for t in failures
                        if not t.ran and (t.stopped_at or 0.0) > now - BACKOFF_WINDOW)
        if len(recent) >= 3:  # tasks that keep failing to start: ECS's throttle, in short
            out.start_at = recent[-1] + min(BACKOFF_MAX, 5.0 * 2 ** (len(recent) - 3))

    # Older deployments' tasks go while the healthy stay at minimumHealthyPercent or more;
    # a FAILED rollout without rollback keeps what still serves.
    old = [t for t in live if t.deployment != prim.id]
    healthy = sum(1 for t in live if proven(t))
    for t in sorted(old, key=lambda t: (t.healthy, t.state == RUNNING, t.created_at)):
        if not t.healthy:
            stop(t, scaling_reason(prim))
        elif (not halted or desired == 0) and healthy - 1 >= low:
            stop(t, scaling_reason(prim))
            healthy -= 1

    # Deployments with no task left are drained.
    holding = {t.deployment for t in tasks if t.state != STOPPED and t.id not in stopped_ids}
    out.drop = [d.id for d in svc.deployments if d.status != "PRIMARY" and d.id not in holding]
    settled = (out.start == 0 and not out.stop and not stopping
               and len(mine) == desired and all(t.healthy for t in mine)
               and not [t for t in live if t.deployment != prim.id])
    if prim.rollout_state == "IN_PROGRESS" and not out.failed and settled and \
            all(proven(t) for t in mine):
        out.completed = True
    out.steady = settled and len(svc.deployments) - len(out.drop) == 1 and \
        (prim.rollout_state == "COMPLETED" or out.completed)
    return out


def proven(t: TaskView) -> bool:
    """Healthy long enough for a rollout to count on it."""
    return t.healthy and not t.young
