"""Pods of every EKS cluster: creation through admission, graceful deletion, and the loop
that keeps each pod's status in step with its task (plus the scheduler and profiles)."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from typing import Any

from ..model import (
    admission,
    downward,
    kubekinds,
    kubeobj,
    objmeta,
    podtask,
    podvolumes,
    probes,
)
from ..model.kubeerrors import KubeError, invalid
from ..model.profiles import PIN_LABEL
from ..store.kube import KubeTables
from . import runtimeclasses, serviceaccounts
from .eks import Eks
from .kubestate import KubeState, now_rfc3339
from .objects import DeleteOptions, check_preconditions, open_namespace
from .podmetrics import PodUsage
from .probes import Prober
from .scheduler import FargateScheduler
from .tasks import TaskEngine
from .waits import wait_set

log = logging.getLogger("fargo.pods")
TICK = 0.25  # seconds between passes when nothing wakes the loop


class Pods:
    def __init__(self, tables: KubeTables, state: KubeState, engine: TaskEngine, eks: Eks,
                 region: str):
        self.tables = tables
        self.state = state
        self.engine = engine
        self.eks = eks
        self.scheduler = FargateScheduler(state, engine, region)
        # Containers' probes: their views of each container run go into the pods' status.
        self.prober = Prober(engine.book, engine.runtime, engine.network, state,
                             engine.containers.watch)
        engine.book.listeners.append(self.prober.task_changed)
        self.usage: PodUsage | None = None  # what kubectl top reads (the server sets it)
        # (cluster, pod) before a running pod's task is stopped while the pod lives on (its
        # deletionTimestamp already stored): each hook takes the pod out of its data path
        # (Services' VIPs, load balancers' targets), quickly and synchronously, never raising.
        self.before_stop: list[Callable[[str, dict[str, Any]], None]] = []
        # Mutating admission webhooks' part: (cluster, namespace, pod) may change a new pod
        # in place before it is stored (the AWS LB controller's readiness gates).
        self.mutators: list[Callable[[str, str, dict[str, Any]], None]] = []
        self._loop: asyncio.Task | None = None

    # ---- API operations
    def create(self, cluster: str, ns: str, body: dict[str, Any],
               dry_run: bool = False) -> dict[str, Any]:
        pod = copy.deepcopy(kubeobj.check_kind(body, "Pod"))
        pod.pop("_fargo", None)
        meta = pod.get("metadata")
        if isinstance(meta, dict) and meta.get("namespace") not in (None, ns):
            raise KubeError(400, "BadRequest", "the namespace of the provided object does not "
                            "match the namespace sent on the request")
        kubeobj.check_pod(pod)
        errors = probes.spec_errors(pod["spec"]) + downward.env_errors(pod["spec"])
        errors += podvolumes.spec_errors(pod["spec"])
        if errors:
            raise invalid("Pod", pod["metadata"]["name"], errors)
        objmeta.check_metadata(pod, "Pod")
        open_namespace(self.state, cluster, ns, "pods", pod["metadata"]["name"])
        pod = serviceaccounts.admit(self.state, cluster, ns, pod)  # 403 if its account is not
        runtimeclasses.admit(self.state, cluster, pod)  # 403 if its RuntimeClass is not
        pod["status"] = {}
        profiles = self.tables.list_profiles(cluster)
        refusal = admission.verdict(pod, profiles, ns)
        if refusal:
            raise KubeError(400, "BadRequest", 'admission webhook "0500-amazon-eks-fargate-'
                            f'mutation.amazonaws.com" denied the request: {refusal}')
        _, patch = admission.mutation(pod, profiles, ns)
        pod = admission.apply_json_patch(pod, patch)
        for mutate in self.mutators:
            mutate(cluster, ns, pod)
        kubeobj.default_pod(pod)
        probes.default_probes(pod["spec"])
        downward.default_env(pod["spec"])
        pod["status"] = {"phase": "Pending", "qosClass": podtask.qos_class(pod["spec"])}
        return self.state.create(cluster, "pods", ns, pod, dry_run)

    def replace(self, cluster: str, ns: str, name: str, new: dict[str, Any],
                dry_run: bool = False) -> dict[str, Any]:
        """PUT or PATCH result: only metadata (labels, annotations, owners, finalizers) may
        change."""
        old = self.state.get(cluster, "pods", ns, name)
        kubeobj.check_kind(new, "Pod")
        new = copy.deepcopy(new)
        if not isinstance(new.get("metadata"), dict):  # left out, or null
            new["metadata"] = {}
        new_meta = new["metadata"]
        new_meta.setdefault("name", name)
        new_meta.setdefault("namespace", ns)
        new_meta.setdefault("uid", old["metadata"]["uid"])
        meta = objmeta.updated_metadata(old["metadata"], new_meta, "pods")
        errors = kubeobj.pod_update_errors(old, new)
        if errors:
            raise invalid("Pod", name, errors)
        merged = copy.deepcopy(old)
        merged["metadata"] = meta
        objmeta.check_metadata(merged, "Pod")
        if merged == old:
            return old
        return self.state.update(cluster, "pods", ns, merged, dry_run)

    def delete(self, cluster: str, ns: str, name: str, grace: int | None,
               opts: DeleteOptions | None = None) -> dict[str, Any]:
        pod = self.state.get(cluster, "pods", ns, name)
        if opts is not None:
            check_preconditions(pod, "pods", opts)
            if opts.dry_run:
                return pod
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        tid = (pod.get("_fargo") or {}).get("task")
        task = self.engine.get(tid) if tid else None
        if task is None or task.last_status == "STOPPED" or grace == 0:
            if task is not None and task.last_status != "STOPPED":
                self._before_stop(cluster, pod)
                self.engine.stop_task(task.id, "Pod deleted", grace=0)
            return self.state.delete(cluster, "pods", ns, name) or pod
        if not pod["metadata"].get("deletionTimestamp"):
            pod["metadata"]["deletionTimestamp"] = now_rfc3339(time.time() + grace)
            pod["metadata"]["deletionGracePeriodSeconds"] = grace
            pod = self.state.update(cluster, "pods", ns, pod)
            self._before_stop(cluster, pod)
            self.engine.stop_task(task.id, "Pod deleted", grace=grace)
            self.state.record_event(cluster, pod, "Normal", "Killing",
                                    "Stopping containers", "kubelet")
        return pod

    def _before_stop(self, cluster: str, pod: dict[str, Any]) -> None:
        for hook in self.before_stop:
            try:
                hook(cluster, pod)
            except Exception:  # noqa: BLE001 - a hook's trouble must not keep the pod running
                log.exception("before stopping pod %s", pod["metadata"].get("name"))

    def delete_namespace(self, cluster: str, name: str,
                         opts: DeleteOptions | None = None) -> dict[str, Any]:
        ns = self.state.get(cluster, "namespaces", "", name)
        if opts is not None:
            check_preconditions(ns, "namespaces", opts)
            if opts.dry_run:
                return ns
        if name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            raise KubeError(403, "Forbidden", f'namespaces "{name}" is forbidden: this '
                            "namespace may not be deleted")
        if (ns.get("status") or {}).get("phase") != "Terminating":
            ns["metadata"]["deletionTimestamp"] = now_rfc3339()
            ns["status"] = {"phase": "Terminating"}
            ns = self.state.update(cluster, "namespaces", "", ns)
        return ns

    def drop_cluster(self, cluster: str) -> None:
        for pod in self.state.list(cluster, "pods"):
            tid = (pod.get("_fargo") or {}).get("task")
            task = self.engine.get(tid) if tid else None
            if task and task.desired_status != "STOPPED":
                self.engine.stop_task(task.id, "EKS cluster deleted", grace=0)

    # ---- the loop
    def start(self) -> None:
        self._loop = asyncio.create_task(self._run())
        self.prober.start()

    async def close(self) -> None:
        self.state.close_watches()
        await self.prober.close()
        if self._loop:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                self.state.changed.clear()
                self.reconcile()
            except Exception:  # noqa: BLE001 - the loop outlives any one bad object
                log.exception("reconciling pods")
            await wait_set(self.state.changed, TICK)
            await asyncio.sleep(0.02)  # let a burst of writes settle

    def reconcile(self) -> None:
        for cluster in self.tables.list_clusters():
            name = cluster["name"]
            try:
                busy = self._sync_pods(name)
                self._sync_nodes(name)
                self._sync_namespaces(name)
                self.eks.settle(name, busy)
                profiles = self.tables.list_profiles(name)
                self.scheduler.schedule(cluster, profiles)
            except Exception:  # noqa: BLE001 - one cluster's trouble must not stop the others
                log.exception("reconciling EKS cluster %s", name)

    def _sync_pods(self, cluster: str) -> set[str]:
        """Status from tasks; returns the profiles that still hold a live pod."""
        busy: set[str] = set()
        profiles = {p["fargateProfileName"]: p for p in self.tables.list_profiles(cluster)}
        for pod in self.state.list(cluster, "pods"):
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            priv = pod.get("_fargo") or {}
            tid = priv.get("task")
            task = self.engine.get(tid) if tid else None
            if task is None:
                if pod["metadata"].get("deletionTimestamp"):
                    self.state.delete(cluster, "pods", ns, name)
                continue
            profile = profiles.get(priv.get("profile", ""))
            dirty = False
            if task.last_status != "STOPPED":
                busy.add(priv.get("profile", ""))
                gone = profile is None or profile["status"] == "DELETING"
                if gone and not priv.get("requeue"):
                    # Its profile is going: stop it; once stopped it waits Pending again.
                    self._before_stop(cluster, pod)
                    self.engine.stop_task(task.id, "Fargate profile deleted", grace=pod["spec"].get(
                        "terminationGracePeriodSeconds", 30))
                    priv["requeue"] = dirty = True
            elif pod["metadata"].get("deletionTimestamp"):
                self.state.delete(cluster, "pods", ns, name)
                continue
            elif priv.get("requeue"):
                self._requeue(cluster, pod)
                continue
            status = podtask.pod_status(pod, task, time.time(), self.prober.view(task.id))
            status["qosClass"] = (pod.get("status") or {}).get("qosClass", "BestEffort")
            if dirty or status != pod.get("status"):
                self._events(cluster, pod, status)
                pod["status"] = status
                self.state.update(cluster, "pods", ns, pod)
        return busy

    def _events(self, cluster: str, pod: dict[str, Any], new: dict[str, Any]) -> None:
        """kubelet-style events for containers that started or failed since the last look."""
        old = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}
        old |= {s["name"]: s for s in (pod.get("status") or {}).get("initContainerStatuses")
                or []}
        for s in (new.get("initContainerStatuses") or []) + (new.get("containerStatuses") or []):
            before = old.get(s["name"]) or {}
            state = s.get("state") or {}
            was = before.get("state") or {}
            if "running" in state and ("running" not in was or before.get("restartCount")
                                       != s["restartCount"]):
                self.state.record_event(cluster, pod, "Normal", "Started",
                                        f"Started container {s['name']}", "kubelet")
            if "waiting" in state and state["waiting"].get("reason") == "CrashLoopBackOff" \
                    and "waiting" not in was:
                self.state.record_event(cluster, pod, "Warning", "BackOff",
                                        f"Back-off restarting failed container {s['name']}",
                                        "kubelet")

    def _requeue(self, cluster: str, pod: dict[str, Any]) -> None:
        """Its profile went away: the pod waits, Pending, for another to select it."""
        meta = pod["metadata"]
        (meta.get("annotations") or {}).pop("CapacityProvisioned", None)
        (meta.get("labels") or {}).pop(PIN_LABEL, None)
        pod["spec"].pop("nodeName", None)
        pod["_fargo"] = {}
        pod["status"] = {"phase": "Pending", "qosClass": (pod.get("status") or {}).get(
            "qosClass", "BestEffort"), "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "lastProbeTime": None, "lastTransitionTime": now_rfc3339(),
                "message": "its Fargate profile was deleted"}]}
        self.state.update(cluster, "pods", meta["namespace"], pod)
        self.state.record_event(cluster, pod, "Warning", "FargateProfileDeleted",
                                "The Fargate profile running this pod was deleted; the pod "
                                "is Pending again", "fargate-scheduler")

    def _sync_nodes(self, cluster: str) -> None:
        """A node lives as long as its pod's task."""
        for node in self.state.list(cluster, "nodes"):
            tid = (node.get("_fargo") or {}).get("task")
            task = self.engine.get(tid) if tid else None
            if task is None or task.last_status == "STOPPED":
                self.state.delete(cluster, "nodes", "", node["metadata"]["name"])

    def _sync_namespaces(self, cluster: str) -> None:
        for ns in self.state.list(cluster, "namespaces"):
            if (ns.get("status") or {}).get("phase") != "Terminating":
                continue
            name = ns["metadata"]["name"]
            # What the namespace holds goes first (its controllers' objects before their
            # pods, so no new pod is made), then the pods, gracefully; the namespace goes
            # once nothing is left (finalizers may hold an object a while).
            left = False
            for rule in kubekinds.all_rules():
                if rule.namespaced and rule.plural != "pods":
                    for obj in self.state.list(cluster, rule.plural, name):
                        gone = self.state.delete(cluster, rule.plural, name,
                                                 obj["metadata"]["name"])
                        left = left or bool(gone and gone["metadata"].get("finalizers"))
            pods = self.state.list(cluster, "pods", name)
            for pod in pods:
                if not pod["metadata"].get("deletionTimestamp"):
                    self.delete(cluster, name, pod["metadata"]["name"], None)
            if not pods and not left:
                self.state.delete(cluster, "namespaces", "", name)
