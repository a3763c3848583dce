"""The replicaset controller, as kube-controller-manager's: each ReplicaSet keeps
spec.replicas active pods that match its selector and that it controls; it adopts matching
orphans, releases pods whose labels stopped matching, makes the missing pods from its
template (generateName RSNAME-, in slow-start batches that stop at a refusal) and deletes
the surplus (not-ready, pending and newest first), then writes its status.

Level-triggered and crash-safe: every pass counts the pods in the store, and a pod is
written (with its owner reference) before the next is made, so a pass cut short by a
SIGKILL is finished by the next one with nothing made twice."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any, Protocol

from ..model import objmeta
from ..model import replicaset as rsm
from ..model.kubeerrors import KubeError
from .kubecontrol import Controller
from .kubestate import Change, KubeState, now_rfc3339
from .objects import Objects

log = logging.getLogger("fargo.replicasets")
Obj = dict[str, Any]
BURST = 500  # pods made or deleted per ReplicaSet per pass, as upstream's burstReplicas
COMPONENT = "replicaset-controller"


class PodWriter(Protocol):
    """What the controller needs of control/pods.py's Pods."""

    def create(self, cluster: str, ns: str, body: Obj, dry_run: bool = False) -> Obj: ...
    def replace(self, cluster: str, ns: str, name: str, new: Obj,
                dry_run: bool = False) -> Obj: ...
    def delete(self, cluster: str, ns: str, name: str, grace: int | None) -> Obj: ...


def _terminating(err: KubeError) -> bool:
    """A create refused because the namespace is going: no failure to report."""
    return err.code == 403 and "because it is being terminated" in err.message


def _suffix() -> str:
    return "".join(secrets.choice(objmeta.NAME_ALPHABET) for _ in range(objmeta.SUFFIX_LEN))


class ReplicaSets(Controller):
    name = "replicaset controller"

    def __init__(self, state: KubeState, objects: Objects, pods: PodWriter):
        self.state = state
        self.objects = objects
        self.pods = pods

    def interested(self, change: Change) -> bool:
        return change.resource in ("replicasets", "pods")

    def reconcile(self, cluster: str) -> None:
        by_ns: dict[str, list[Obj]] = {}
        for rs in self.state.list(cluster, "replicasets"):
            by_ns.setdefault(rs["metadata"]["namespace"], []).append(rs)
        for ns, rss in by_ns.items():
            pods = {p["metadata"]["name"]: p for p in self.state.list(cluster, "pods", ns)}
            for rs in rss:
                try:
                    self.sync(cluster, rs, pods, rss)
                except KubeError as err:  # a refusal of one write; the next pass retries
                    log.info("replicaset %s/%s: %s", ns, rs["metadata"]["name"], err.message)

    def sync(self, cluster: str, rs: Obj, pods: dict[str, Obj], rss: list[Obj]) -> None:
        """One ReplicaSet's pass; `pods` (the namespace's, by name) is kept current as this
        pass writes, so the next ReplicaSet of the namespace sees the adoptions."""
        ns = rs["metadata"]["namespace"]
        now = time.time()
        uid = rs["metadata"]["uid"]
        ref = objmeta.owner_reference(rs)
        live = [p for p in pods.values() if rsm.is_active(p)]
        owned, adopt, release = rsm.claim(rs, rs["spec"]["selector"], live)
        for pod in adopt:
            pods[pod["metadata"]["name"]] = got = self.pods.replace(
                cluster, ns, pod["metadata"]["name"], rsm.adopted(pod, ref))
            owned.append(got)
        for pod in release:
            pods[pod["metadata"]["name"]] = self.pods.replace(
                cluster, ns, pod["metadata"]["name"], rsm.released(pod, uid))
        failure: tuple[str, str] | None = None
        if not objmeta.deleting(rs):
            failure = self._manage(cluster, rs, owned, pods, rss, now)
        names = [p["metadata"]["name"] for p in owned]
        owned = [pods[n] for n in names if n in pods and rsm.is_active(pods[n])]
        status = rsm.rs_status(rs, owned, failure, now, now_rfc3339(now))
        if status != rs.get("status"):
            self.objects.write_status(cluster, "replicasets", ns, rs, status)

    def _manage(self, cluster: str, rs: Obj, owned: list[Obj], pods: dict[str, Obj],
                rss: list[Obj], now: float) -> tuple[str, str] | None:
        """Make or delete pods toward spec.replicas; the refusal (reason, message) if one
        stopped it."""
        want = int(rs["spec"].get("replicas", 1))
        diff = len(owned) - want
        if diff < 0:
            return self._create(cluster, rs, owned, pods, min(-diff, BURST))
        if diff > 0:
            return self._delete(cluster, rs, owned, pods, rss, min(diff, BURST), now)
        return None

    def _create(self, cluster: str, rs: Obj, owned: list[Obj], pods: dict[str, Obj],
                count: int) -> tuple[str, str] | None:
        ns = rs["metadata"]["namespace"]
        ref = objmeta.owner_reference(rs)
        batch, left = 1, count
        while left > 0:
            # Slow start, as upstream's: batches of 1, 2, 4...; a batch with a refusal is
            # the last (a template admission refuses is tried once a pass, not N times).
            size, refused = min(batch, left), None
            for _ in range(size):
                body = rsm.pod_from_template(rs, ref)
                objmeta.assign_name(body, _suffix())
                try:
                    pod = self.pods.create(cluster, ns, body)
                except KubeError as err:
                    if _terminating(err):
                        return None
                    refused = err
                    self.state.record_event(cluster, rs, "Warning", "FailedCreate",
                                            f"Error creating: {err.message}", COMPONENT)
                    continue
                pods[pod["metadata"]["name"]] = pod
                owned.append(pod)
                self.state.record_event(cluster, rs, "Normal", "SuccessfulCreate",
                                        f"Created pod: {pod['metadata']['name']}", COMPONENT)
            if refused is not None:
                return "FailedCreate", refused.message
            left -= size
            batch *= 2
        return None

    def _delete(self, cluster: str, rs: Obj, owned: list[Obj], pods: dict[str, Obj],
                rss: list[Obj], count: int, now: float) -> tuple[str, str] | None:
        ns = rs["metadata"]["namespace"]
        if count < len(owned):
            doomed = rsm.deletion_order(owned, self._related(rs, rss, pods), now)[:count]
        else:
            doomed = list(owned)
        refused: KubeError | None = None
        for pod in doomed:
            name = pod["metadata"]["name"]
            try:
                gone = self.pods.delete(cluster, ns, name, None)
            except KubeError as err:
                if err.code == 404:
                    pods.pop(name, None)
                    continue
                refused = err
                self.state.record_event(cluster, rs, "Warning", "FailedDelete",
                                        f"Error deleting: {err.message}", COMPONENT)
                continue
            if self.state.find(cluster, "pods", ns, name) is None:
                pods.pop(name, None)
            else:
                pods[name] = gone
            self.state.record_event(cluster, rs, "Normal", "SuccessfulDelete",
                                    f"Deleted pod: {name}", COMPONENT)
        return ("FailedDelete", refused.message) if refused is not None else None

    @staticmethod
    def _related(rs: Obj, rss: list[Obj], pods: dict[str, Obj]) -> list[Obj]:
        """The pods of every ReplicaSet with the same controller as this one (a Deployment's
        old and new ones): how many share a node ranks which goes first."""
        owner = objmeta.controller_of(rs)
        if owner is None:
            uids = {rs["metadata"]["uid"]}
        else:
            uids = {r["metadata"]["uid"] for r in rss
                    if (objmeta.controller_of(r) or {}).get("uid") == owner.get("uid")}
        return [p for p in pods.values()
                if (objmeta.controller_of(p) or {}).get("uid") in uids]
