"""Fargate Spot interruptions on purpose (`fargo spot interrupt`): as on Fargate, the task is
told at once (desiredStatus STOPPED, stopCode SpotInterruption, AWS's stoppedReason) and its
containers get their stop signal, then SIGKILL after their stopTimeout, which Fargate caps at
120 seconds: the two minutes' warning. A service replaces the task as it would any other."""

from __future__ import annotations

from ..model.capacity import FARGATE_SPOT, SPOT_INTERRUPTION, SPOT_REASON
from ..model.errors import InvalidParameterException
from ..model.names import task_id_from
from ..model.taskrecord import Task
from .tasks import TaskEngine


def interrupt(engine: TaskEngine, ref: str) -> Task:
    """Interrupt one FARGATE_SPOT task (by id or ARN); others are refused."""
    tid = task_id_from(ref)
    task = engine.get(tid)
    if task is None:
        raise InvalidParameterException("The referenced task was not found.")
    if task.capacity_provider != FARGATE_SPOT:
        runs_on = (f"capacity provider {task.capacity_provider}" if task.capacity_provider
                   else f"launch type {task.launch_type}")
        raise InvalidParameterException(
            f"Task {tid} runs on {runs_on}: only FARGATE_SPOT tasks can be interrupted.")
    if task.stopping:
        raise InvalidParameterException(
            f"Task {tid} is already stopping ({task.stop_code}): it cannot be interrupted.")
    # No grace override: each container's own stopTimeout (at most 120 s) applies.
    return engine.stop_task(tid, SPOT_REASON, SPOT_INTERRUPTION)
