"""Pods' restartPolicy: which exits bring a container back and when its back-off ends. ECS
tasks have no policy (task.restart is None) and none of this applies to them."""

from __future__ import annotations

import time

from ...model import restarts as rules
from ...model.taskrecord import ContainerRun, LastRun, Task


class RestartClock:
    def __init__(self) -> None:
        self._due: dict[str, dict[str, float]] = {}  # task id -> name -> monotonic due time

    def note_exit(self, task: Task, name: str, code: int | None, oom: bool,
                  now: float) -> bool:
        """Note a pod container's exit; True when its policy brings it back (after a
        back-off), False when it stays stopped."""
        if task.restart is None:
            return False
        c = task.container(name)
        run = c.run = c.run or ContainerRun()
        run.finished_at, run.exit_code, run.oom = now, code, oom
        if task.stopping or not rules.restart_wanted(task.restart, name, code):
            return False
        run.restart_count += 1
        delay = rules.backoff(run.restart_count)
        run.restart_at = now + delay
        run.last = LastRun(exit_code=code, oom=oom, started_at=run.started_at, finished_at=now)
        c.last_status = "PENDING"
        task.bump()
        self._due.setdefault(task.id, {})[name] = time.monotonic() + delay
        return True

    def resume(self, task: Task) -> None:
        """After a server restart: containers that were waiting to come back, come back."""
        if task.restart is None or task.stopping:
            return
        for c in task.containers:
            if c.run and c.run.restart_count and c.last_status == "PENDING":
                self._due.setdefault(task.id, {})[c.name] = time.monotonic()

    def next_in(self, tid: str, longest: float) -> float:
        """Seconds until the next container of the task is due (at most longest)."""
        due = (self._due.get(tid) or {}).values()
        return min([longest, *[max(at - time.monotonic(), 0.0) for at in due]])

    def take_due(self, tid: str) -> list[str]:
        due = self._due.get(tid) or {}
        now = time.monotonic()
        names = [n for n, at in list(due.items()) if at <= now]
        for name in names:
            due.pop(name, None)
        return names

    def drop(self, tid: str) -> None:
        self._due.pop(tid, None)


def note_start(task: Task, name: str, now: float) -> None:
    """Pods report when each container (re)started."""
    if task.restart is not None:
        c = task.container(name)
        run = c.run = c.run or ContainerRun()
        run.started_at = now
        run.restart_at = None


def pod_finished(task: Task) -> bool:
    """A pod ends when every app container has stopped for good (its policy brings none
    back); ECS tasks end by their essential containers instead."""
    if task.restart is None or task.stopping:
        return False
    apps = [c for c in task.containers if c.name not in task.restart.init]
    return bool(apps) and all(c.last_status == "STOPPED" for c in apps)
