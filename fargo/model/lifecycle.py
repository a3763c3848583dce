"""The task lifecycle of FARGATE.md section 3: states, their order, and what each stamps."""

from __future__ import annotations

from .taskrecord import Task

ORDER = (
    "PROVISIONING", "PENDING", "ACTIVATING", "RUNNING",
    "DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED",
)
RANK = {s: i for i, s in enumerate(ORDER)}


def advance(task: Task, status: str, now: float) -> bool:
    """Move last_status forward to `status`; never backwards. Returns whether it moved."""
    if RANK[status] <= RANK[task.last_status]:
        return False
    task.last_status = status
    task.bump()
    # executionStoppedAt marks the containers having stopped, so it comes after STOPPING's work.
    if status == "RUNNING" and task.started_at is None:
        task.started_at = now
    if status == "DEPROVISIONING" and task.execution_stopped_at is None:
        task.execution_stopped_at = now
    if status == "STOPPED":
        if task.stopped_at is None:
            task.stopped_at = now
        task.desired_status = "STOPPED"
        if task.execution_stopped_at is None:
            task.execution_stopped_at = now
        if task.stopping_at is None:
            task.stopping_at = now
    return True


def request_stop(task: Task, code: str, reason: str, now: float) -> bool:
    """Record the wish to stop (first cause wins, as on AWS). Returns whether it is new."""
    if task.desired_status == "STOPPED":
        return False
    task.desired_status = "STOPPED"
    task.stop_code = code
    task.stopped_reason = reason
    task.stopping_at = now
    task.bump()
    return True


def running_or_later(task: Task) -> bool:
    return RANK[task.last_status] >= RANK["RUNNING"]
