"""The task lifecycle of FARGATE.md section 3: states, their order, and what each stamps."""

from __future__ import annotations

from typing import Any

ORDER = (
    "PROVISIONING", "PENDING", "ACTIVATING", "RUNNING",
    "DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED",
)
RANK = {s: i for i, s in enumerate(ORDER)}
# Timestamps set on entering a state.
# executionStoppedAt marks the containers having stopped, so it comes after STOPPING's work.
_STAMPS = {"RUNNING": "startedAt", "DEPROVISIONING": "executionStoppedAt", "STOPPED": "stoppedAt"}


def advance(task: dict[str, Any], status: str, now: float) -> bool:
    """Move lastStatus forward to `status`; never backwards. Returns whether it moved."""
    if RANK[status] <= RANK[task["lastStatus"]]:
        return False
    task["lastStatus"] = status
    task["version"] = task.get("version", 1) + 1
    stamp = _STAMPS.get(status)
    if stamp and stamp not in task:
        task[stamp] = now
    if status == "STOPPED":
        task["desiredStatus"] = "STOPPED"
        task.setdefault("executionStoppedAt", now)
        task.setdefault("stoppingAt", now)
    return True


def request_stop(task: dict[str, Any], code: str, reason: str, now: float) -> bool:
    """Record the wish to stop (first cause wins, as on AWS). Returns whether it is new."""
    if task["desiredStatus"] == "STOPPED":
        return False
    task["desiredStatus"] = "STOPPED"
    task["stopCode"] = code
    task["stoppedReason"] = reason
    task["stoppingAt"] = now
    task["version"] = task.get("version", 1) + 1
    return True
