"""The job controller of each cluster, as kube-controller-manager's (and its
ttl-after-finished controller): a level-triggered pass over every Job and the pods it
controls, deciding by model/batchjobs.py's plan and acting in the order that keeps results
safe across a SIGKILL: new results stored as uncounted, then the pods' tracking finalizers
released, then pods deleted and made, then the counts and conditions.

Pods are made through Pods.create (Fargate admission and the fargate-scheduler run them);
their names carry a random suffix, which is safe because every pass counts the pods from the
store, where each create is written before it returns."""

from __future__ import annotations

import copy
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from ..model import batchjobs, objmeta
from ..model.kubeerrors import KubeError
from .kubecontrol import Controller
from .kubestate import Change, KubeState
from .objects import DeleteOptions, Objects
from .pods import Pods

log = logging.getLogger("fargo.jobs")
Obj = dict[str, Any]
COMPONENT = "job-controller"


def _suffix() -> str:
    return "".join(secrets.choice(objmeta.NAME_ALPHABET) for _ in range(objmeta.SUFFIX_LEN))


def _owner(obj: Obj, kind: str) -> str | None:
    ref = objmeta.controller_of(obj)
    return ref.get("uid") if ref and ref.get("kind") == kind else None


class JobController(Controller):
    name = "job controller"

    def __init__(self, state: KubeState, objects: Objects, pods: Pods,
                 clock: Callable[[], float] = time.time, backoff: float = batchjobs.BACKOFF):
        self.state = state
        self.objects = objects
        self.pods = pods
        self.clock = clock
        self.backoff = backoff

    def interested(self, change: Change) -> bool:
        if change.resource == "jobs":
            return True
        return change.resource == "pods" and (
            _owner(change.obj, "Job") is not None or batchjobs.TRACKING in (
                (change.obj.get("metadata") or {}).get("finalizers") or []))

    def reconcile(self, cluster: str) -> None:
        now = self.clock()
        jobs = self.state.list(cluster, "jobs")
        uids = {j["metadata"]["uid"] for j in jobs}
        owned: dict[str, list[Obj]] = {}
        for pod in self.state.list(cluster, "pods"):
            owner = _owner(pod, "Job")
            if owner in uids:
                owned.setdefault(owner or "", []).append(pod)
            elif batchjobs.tracked(pod):
                self._release(cluster, pod)  # its Job is gone: nothing left to count
        for job in jobs:
            try:
                self._sync(cluster, job, owned.get(job["metadata"]["uid"], []), now)
            except KubeError as err:  # one Job's trouble must not hold up the others
                log.warning("job %s/%s: %s", job["metadata"].get("namespace"),
                            job["metadata"]["name"], err.message)

    def _release(self, cluster: str, pod: Obj) -> None:
        pod = copy.deepcopy(pod)
        fins = [f for f in objmeta.finalizers(pod) if f != batchjobs.TRACKING]
        if fins:
            pod["metadata"]["finalizers"] = fins
        else:
            pod["metadata"].pop("finalizers", None)
        self.state.update(cluster, "pods", pod["metadata"]["namespace"], pod)

    def _sync(self, cluster: str, job: Obj, pods: list[Obj], now: float) -> None:
        meta = job["metadata"]
        ns, name = meta["namespace"], meta["name"]
        if batchjobs.managed_elsewhere(job):
            return
        if batchjobs.ttl_expired(job, now) and not objmeta.deleting(job):
            # ttl-after-finished: the Job goes, its pods before it (foreground).
            self.objects.delete(cluster, "jobs", ns, name, DeleteOptions(
                propagation="Foreground", uid=meta["uid"]))
            return
        plan = batchjobs.plan(job, pods, now, self.backoff)
        if plan.interim is not None:
            job = self.objects.write_status(cluster, "jobs", ns, job, plan.interim)
        by_name = {p["metadata"]["name"]: p for p in pods}
        for pod_name in plan.release:
            self._release(cluster, by_name[pod_name])
        for pod_name in plan.delete:
            try:
                self.pods.delete(cluster, ns, pod_name, None)
            except KubeError as err:
                if err.code != 404:
                    raise
            self.state.record_event(cluster, job, "Normal", "SuccessfulDelete",
                                    f"Deleted pod: {pod_name}", COMPONENT)
        status = plan.status
        failed = 0
        for i, index in enumerate(plan.create):
            body = batchjobs.pod_for(job, index, _suffix())
            try:
                self.pods.create(cluster, ns, body)
            except KubeError as err:
                failed = len(plan.create) - i
                self.state.record_event(cluster, job, "Warning", "FailedCreate",
                                        f"Error creating: {err.message}", COMPONENT)
                break
            self.state.record_event(cluster, job, "Normal", "SuccessfulCreate",
                                    f"Created pod: {body['metadata']['name']}", COMPONENT)
        if failed:
            status = copy.deepcopy(status)
            active = int(status.get("active") or 0) - failed
            if active > 0:
                status["active"] = active
            else:
                status.pop("active", None)
        if objmeta.deleting(job) or batchjobs.finished(job):
            return  # nothing of its status moves any more
        job = self.objects.write_status(cluster, "jobs", ns, job, status)
        for type_, reason, message in plan.events:
            self.state.record_event(cluster, job, type_, reason, message, COMPONENT)
