"""The cronjob controller of each cluster, as kube-controller-manager's: a pass over every
CronJob and the Jobs it controls (at least every couple of seconds, which is how due
schedules are found), deciding by model/cronjobs.py's plan: history trimmed, Replace's jobs
deleted, the due Job made from the jobTemplate, the status written.

The Job's name comes from its scheduled time, and carries the scheduled-timestamp
annotation, so a pass after a crash between the create and the status write finds it
(AlreadyExists, or among the Jobs) and makes no second one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..model import cronjobs, objmeta
from ..model.kubeerrors import KubeError
from .kubecontrol import Controller
from .kubestate import Change, KubeState
from .objects import DeleteOptions, Objects

log = logging.getLogger("fargo.cronjobs")
Obj = dict[str, Any]
COMPONENT = "cronjob-controller"


class CronJobController(Controller):
    name = "cronjob controller"

    def __init__(self, state: KubeState, objects: Objects,
                 clock: Callable[[], float] = time.time):
        self.state = state
        self.objects = objects
        self.clock = clock
        # (cronjob uid, reason, key) of the events told since this start: a repeat is the
        # same observation again (upstream tells it once per look, and looks less often)
        self._told: set[tuple[str, str, str]] = set()

    def interested(self, change: Change) -> bool:
        if change.resource == "cronjobs":
            return True
        if change.resource != "jobs" or not isinstance(change.obj.get("metadata"), dict):
            return False
        ref = objmeta.controller_of(change.obj)
        return ref is not None and ref.get("kind") == "CronJob"

    def reconcile(self, cluster: str) -> None:
        now = self.clock()
        crons = self.state.list(cluster, "cronjobs")
        if not crons:
            return
        uids = {c["metadata"]["uid"] for c in crons}
        owned: dict[str, list[Obj]] = {}
        for job in self.state.list(cluster, "jobs"):
            ref = objmeta.controller_of(job)
            if ref and ref.get("kind") == "CronJob" and ref.get("uid") in uids:
                owned.setdefault(ref["uid"], []).append(job)
        for cron in crons:
            try:
                self._sync(cluster, cron, owned.get(cron["metadata"]["uid"], []), now)
            except KubeError as err:
                log.warning("cronjob %s/%s: %s", cron["metadata"].get("namespace"),
                            cron["metadata"]["name"], err.message)

    def _event(self, cluster: str, cron: Obj, type_: str, reason: str, message: str,
               key: str) -> None:
        seen = (cron["metadata"]["uid"], reason, key)
        if seen not in self._told:
            self._told.add(seen)
            self.state.record_event(cluster, cron, type_, reason, message, COMPONENT)

    def _sync(self, cluster: str, cron: Obj, jobs: list[Obj], now: float) -> None:
        ns = cron["metadata"]["namespace"]
        plan = cronjobs.plan(cron, jobs, now)
        for name in plan.delete:
            try:
                self.objects.delete(cluster, "jobs", ns, name,
                                    DeleteOptions(propagation="Background"))
            except KubeError as err:
                if err.code != 404:
                    raise
        status = plan.status
        if plan.create is not None:
            made = self._create(cluster, cron, plan.create)
            if made is None:  # the schedule is still owed: the next pass tries again
                before = (cron.get("status") or {}).get("lastScheduleTime")
                status.pop("lastScheduleTime", None)
                if before:
                    status["lastScheduleTime"] = before
            elif not any(r.get("uid") == made["metadata"]["uid"]
                         for r in status.get("active") or []):
                status["active"] = [*(status.get("active") or []), cronjobs.job_ref(made)]
        cron = self.objects.write_status(cluster, "cronjobs", ns, cron, status)
        for type_, reason, message, key in plan.events:
            self._event(cluster, cron, type_, reason, message, key)

    def _create(self, cluster: str, cron: Obj, at: float) -> Obj | None:
        """The Job of scheduled time `at` (one already made for it counts); None if it
        could not be made."""
        ns = cron["metadata"]["namespace"]
        body = cronjobs.job_for(cron, at)
        name = body["metadata"]["name"]
        try:
            job = self.objects.create(cluster, "jobs", ns, body)
        except KubeError as err:
            existing = self.state.find(cluster, "jobs", ns, name) \
                if err.reason == "AlreadyExists" else None
            if existing is not None and objmeta.owned_by(existing, cron["metadata"]["uid"]):
                return existing
            self._event(cluster, cron, "Warning", "FailedCreate",
                        f"Error creating job: {err.message}", str(at))
            return None
        self.state.record_event(cluster, cron, "Normal", "SuccessfulCreate",
                                f"Created job {name}", COMPONENT)
        return job
