"""The deployment controller, as kube-controller-manager's: a Deployment owns ReplicaSets
(it adopts matching orphans and releases those that stop matching), one per pod template,
named NAME-HASH; it rolls from the old ones to the new one (RollingUpdate within maxSurge and
maxUnavailable, or Recreate: all old pods gone first), scales them in proportion when its
replicas change mid-rollout, stands still while paused (but scales), keeps
revisionHistoryLimit old ReplicaSets, and writes its status: counts, Available, Progressing
(with progressDeadlineSeconds) and ReplicaFailure, and events as upstream words them.

The rules are model/deployment.py's; this reads the store, asks them and writes, one step
per write as upstream does. Every pass starts again from the store, and the new ReplicaSet's
name is the template's hash, so a SIGKILL between two writes leaves nothing to duplicate."""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

from ..model import deployment as dm
from ..model import objmeta
from ..model import replicaset as rsm
from ..model.kubeerrors import KubeError
from ..model.selectors import selector_matcher
from .kubecontrol import Controller
from .kubestate import Change, KubeState, now_rfc3339
from .objects import DeleteOptions, Objects

log = logging.getLogger("fargo.deployments")
Obj = dict[str, Any]
COMPONENT = "deployment-controller"


class _Stop(Exception):
    """This Deployment's pass ends here (upstream returns the error and requeues)."""


class Deployments(Controller):
    name = "deployment controller"

    def __init__(self, state: KubeState, objects: Objects):
        self.state = state
        self.objects = objects
        self.now = 0.0
        self.stamp = ""

    def interested(self, change: Change) -> bool:
        if change.resource in ("deployments", "replicasets"):
            return True
        # Recreate waits for the old pods to be gone, not merely scaled away.
        phase = (change.obj.get("status") or {}).get("phase")
        return change.resource == "pods" and (change.type == "DELETED"
                                              or phase in ("Succeeded", "Failed"))

    def reconcile(self, cluster: str) -> None:
        for d in self.state.list(cluster, "deployments"):
            self.now = time.time()
            self.stamp = now_rfc3339(self.now)
            try:
                self.sync(cluster, d)
            except _Stop:
                pass
            except KubeError as err:  # one refused write; the next pass tries again
                log.info("deployment %s/%s: %s", d["metadata"]["namespace"],
                         d["metadata"]["name"], err.message)

    # ---- one Deployment
    def sync(self, cluster: str, d: Obj) -> None:
        d = copy.deepcopy(d)
        d.setdefault("status", {})
        rss = self._claim(cluster, d)
        if objmeta.deleting(d):
            new, olds, d = self._sync_revision(cluster, d, rss, create=False)
            self._sync_status(cluster, d, self._fresh(cluster, olds, new), new)
            return
        if dm.paused_condition(d, self.stamp):
            d = self._write(cluster, d)
        if d["spec"].get("paused") or dm.scaling_event(d, rss):
            self._scale_sync(cluster, d, rss)
        elif dm.rolling(d):
            self._rolling(cluster, d, rss)
        else:
            self._recreate(cluster, d, rss)

    def _claim(self, cluster: str, d: Obj) -> list[Obj]:
        """The Deployment's ReplicaSets, after adopting orphans that match its selector and
        releasing those it controls that no longer do."""
        ns = d["metadata"]["namespace"]
        owned, adopt, release = rsm.claim(d, d["spec"]["selector"],
                                          self.state.list(cluster, "replicasets", ns))
        ref = objmeta.owner_reference(d)
        for rs in adopt:
            owned.append(self.objects.update(cluster, "replicasets", ns, rs["metadata"]["name"],
                                             rsm.adopted(rs, ref)))
        for rs in release:
            self.objects.update(cluster, "replicasets", ns, rs["metadata"]["name"],
                                rsm.released(rs, d["metadata"]["uid"]))
        return owned

    def _fresh(self, cluster: str, olds: list[Obj], new: Obj | None) -> list[Obj]:
        """The ReplicaSets as stored now (this pass may have written them)."""
        out = []
        for rs in [*olds, *([new] if new is not None else [])]:
            got = self.state.find(cluster, "replicasets", rs["metadata"]["namespace"],
                                  rs["metadata"]["name"])
            if got is not None:
                out.append(got)
        return out

    def _find(self, cluster: str, rs: Obj | None) -> Obj | None:
        if rs is None:
            return None
        return self.state.find(cluster, "replicasets", rs["metadata"]["namespace"],
                               rs["metadata"]["name"])

    def _write(self, cluster: str, d: Obj) -> Obj:
        """The Deployment's status (and its revision annotation, which upstream's status
        writes also carry)."""
        d["status"] = dm.compact(d.get("status") or {})
        stored = self.state.get(cluster, "deployments", d["metadata"]["namespace"],
                                d["metadata"]["name"])
        if stored.get("status") == d["status"] and \
                stored["metadata"].get("annotations") == d["metadata"].get("annotations"):
            return d
        out = copy.deepcopy(stored)
        out["status"] = copy.deepcopy(d["status"])
        if d["metadata"].get("annotations"):
            out["metadata"]["annotations"] = copy.deepcopy(d["metadata"]["annotations"])
        return copy.deepcopy(self.state.update(cluster, "deployments",
                                               d["metadata"]["namespace"], out))

    def _event(self, cluster: str, d: Obj, kind: str, reason: str, message: str) -> None:
        self.state.record_event(cluster, d, kind, reason, message, COMPONENT)

    # ---- the new ReplicaSet and revisions
    def _sync_revision(self, cluster: str, d: Obj, rss: list[Obj],
                       create: bool) -> tuple[Obj | None, list[Obj], Obj]:
        """(new ReplicaSet, old ones, the Deployment): the new one's annotations and
        minReadySeconds synced and the Deployment's revision set from it; with `create`,
        the new one made when there is none."""
        new = dm.find_new(d, rss)
        olds = [rs for rs in rss if rs is not new]
        revision = dm.max_revision(olds) + 1
        ns = d["metadata"]["namespace"]
        if new is not None:
            rs = copy.deepcopy(new)
            changed = dm.set_new_rs_annotations(d, rs, revision, exists=True)
            min_ready = d["spec"].get("minReadySeconds") or 0
            if changed or (rs["spec"].get("minReadySeconds") or 0) != min_ready:
                if min_ready:
                    rs["spec"]["minReadySeconds"] = min_ready
                else:
                    rs["spec"].pop("minReadySeconds", None)
                return self.objects.update(cluster, "replicasets", ns, rs["metadata"]["name"],
                                           rs), olds, d
            dirty = dm.set_deployment_revision(d, dm.annots(rs).get(dm.REVISION, ""))
            if dm.has_deadline(d) and dm.get_condition(d["status"], dm.PROGRESSING) is None:
                dm.set_condition(d["status"], dm.new_condition(
                    dm.PROGRESSING, "True", dm.FOUND_NEW_RS,
                    f'Found new replica set "{rs["metadata"]["name"]}"', self.stamp))
                dirty = True
            if dirty:
                d = self._write(cluster, d)
            return rs, olds, d
        if not create:
            return None, olds, d
        return self._create_new(cluster, d, olds, revision)

    def _create_new(self, cluster: str, d: Obj, olds: list[Obj],
                    revision: int) -> tuple[Obj | None, list[Obj], Obj]:
        ns = d["metadata"]["namespace"]
        collisions = (d.get("status") or {}).get("collisionCount")
        body = dm.new_rs_body(d, dm.template_hash(d["spec"]["template"], collisions), 0)
        body["metadata"]["ownerReferences"] = [objmeta.owner_reference(d)]
        count = dm.new_rs_replicas(d, [*olds, body], body)
        body["spec"]["replicas"] = count
        dm.set_new_rs_annotations(d, body, revision, exists=False)
        name = body["metadata"]["name"]
        existed = False
        try:
            created = self.objects.create(cluster, "replicasets", ns, body)
        except KubeError as err:
            if err.reason == "AlreadyExists":
                found = self.state.find(cluster, "replicasets", ns, name)
                ref = objmeta.controller_of(found) if found else None
                if found is not None and ref is not None and \
                        ref.get("uid") == d["metadata"]["uid"] and \
                        dm.equal_ignore_hash(d["spec"]["template"], found["spec"]["template"]):
                    created, existed = found, True
                else:
                    # Another template's ReplicaSet holds the name: the next pass hashes
                    # with one more collision.
                    d["status"]["collisionCount"] = (collisions or 0) + 1
                    self._write(cluster, d)
                    raise _Stop from None
            elif err.code == 403 and "being terminated" in err.message:
                raise _Stop from None
            else:
                msg = f'Failed to create new replica set "{name}": {err.message}'
                if dm.has_deadline(d):
                    dm.set_condition(d["status"], dm.new_condition(
                        dm.PROGRESSING, "False", dm.RS_CREATE_ERROR, msg, self.stamp))
                    self._write(cluster, d)
                self._event(cluster, d, "Warning", dm.RS_CREATE_ERROR, msg)
                raise _Stop from None
        if not existed and count > 0:
            self._event(cluster, d, "Normal", "ScalingReplicaSet",
                        f"Scaled up replica set {name} from 0 to {count}")
        dirty = dm.set_deployment_revision(d, str(revision))
        if not existed and dm.has_deadline(d):
            dm.set_condition(d["status"], dm.new_condition(
                dm.PROGRESSING, "True", dm.NEW_RS_CREATED, f'Created new replica set "{name}"',
                self.stamp))
            dirty = True
        if dirty:
            d = self._write(cluster, d)
        return created, olds, d

    # ---- scaling one ReplicaSet
    def _scale(self, cluster: str, rs: Obj, size: int, d: Obj) -> tuple[bool, Obj]:
        """spec.replicas and the desired/max annotations of one ReplicaSet (read afresh:
        this pass may have written it); True if its size changed."""
        current = self._find(cluster, rs) or rs
        desired, most = dm.replicas(d), dm.replicas(d) + dm.max_surge(d)
        old = dm.replicas(current)
        if old == size and not dm.replicas_annotations_stale(current, desired, most):
            return False, current
        out = copy.deepcopy(current)
        out["spec"]["replicas"] = size
        dm.set_replicas_annotations(out, desired, most)
        stored = self.objects.update(cluster, "replicasets", out["metadata"]["namespace"],
                                     out["metadata"]["name"], out)
        if old == size:
            return False, stored
        way = "up" if old < size else "down"
        self._event(cluster, d, "Normal", "ScalingReplicaSet",
                    f"Scaled {way} replica set {out['metadata']['name']} from {old} to {size}")
        return True, stored

    def _scale_to(self, cluster: str, rs: Obj, size: int, d: Obj) -> tuple[bool, Obj]:
        if dm.replicas(rs) == size:
            return False, rs
        return self._scale(cluster, rs, size, d)

    # ---- status
    def _sync_status(self, cluster: str, d: Obj, all_rss: list[Obj], new: Obj | None) -> None:
        status = dm.compact(dm.calculate_status(all_rss, self._find(cluster, new), d,
                                                self.stamp))
        if status != d.get("status"):
            d["status"] = status
            self._write(cluster, d)

    def _rollout_status(self, cluster: str, d: Obj, olds: list[Obj], new: Obj | None) -> None:
        new = self._find(cluster, new)
        all_rss = self._fresh(cluster, olds, new)
        status = dm.compact(dm.rollout_status(all_rss, new, d, self.now, self.stamp))
        if status != d.get("status"):
            d["status"] = status
            self._write(cluster, d)

    # ---- paused, or its replicas changed: scale, do not roll
    def _scale_sync(self, cluster: str, d: Obj, rss: list[Obj]) -> None:
        new, olds, d = self._sync_revision(cluster, d, rss, create=False)
        one = dm.active_or_latest(new, olds)
        if one is not None:
            if dm.replicas(one) != dm.replicas(d):
                self._scale_to(cluster, one, dm.replicas(d), d)
        elif dm.saturated(d, new):
            for old in dm.active(olds):
                self._scale_to(cluster, old, 0, d)
        elif dm.rolling(d):
            live = dm.active([*olds, *([new] if new is not None else [])])
            sizes = dm.proportional(d, live)
            for rs in live:
                self._scale(cluster, rs, sizes[rs["metadata"]["name"]], d)
        if d["spec"].get("paused"):
            self._cleanup(cluster, d, self._fresh(cluster, olds, None))
        self._sync_status(cluster, d, self._fresh(cluster, olds, new), new)

    # ---- RollingUpdate
    def _rolling(self, cluster: str, d: Obj, rss: list[Obj]) -> None:
        new, olds, d = self._sync_revision(cluster, d, rss, create=True)
        if new is None:
            return
        new = self._find(cluster, new) or new
        olds = self._fresh(cluster, olds, None)
        if self._unobserved([*olds, new]):
            # A ReplicaSet's status is not yet of its latest spec (the replicaset
            # controller's pass is still to come): counting on it could take more pods away
            # than maxUnavailable allows.
            self._rollout_status(cluster, d, olds, new)
            return
        all_rss = [*olds, new]
        if self._reconcile_new(cluster, d, all_rss, new):
            self._rollout_status(cluster, d, olds, new)
            return
        if self._reconcile_old(cluster, d, all_rss, dm.active(olds), new):
            self._rollout_status(cluster, d, olds, new)
            return
        if dm.complete(d, d.get("status") or {}):
            self._cleanup(cluster, d, olds)
        self._rollout_status(cluster, d, olds, new)

    @staticmethod
    def _unobserved(rss: list[Obj]) -> bool:
        return any(rs["metadata"].get("generation", 1) > dm.status_count(rs, "observedGeneration")
                   for rs in rss)

    def _reconcile_new(self, cluster: str, d: Obj, all_rss: list[Obj], new: Obj) -> bool:
        want = dm.replicas(d)
        if dm.replicas(new) == want:
            return False
        if dm.replicas(new) > want:
            return self._scale_to(cluster, new, want, d)[0]
        return self._scale_to(cluster, new, dm.new_rs_replicas(d, all_rss, new), d)[0]

    def _reconcile_old(self, cluster: str, d: Obj, all_rss: list[Obj], olds: list[Obj],
                       new: Obj) -> bool:
        if sum(dm.replicas(rs) for rs in olds) == 0:
            return False
        total = sum(dm.replicas(rs) for rs in all_rss)
        min_available = dm.replicas(d) - dm.max_unavailable(d)
        new_unavailable = dm.replicas(new) - dm.status_count(new, "availableReplicas")
        most = total - min_available - new_unavailable
        if most <= 0:
            return False
        olds, cleaned = self._cleanup_unhealthy(cluster, d, olds, most)
        scaled = self._scale_down_old(cluster, d, [*olds, new], olds)
        return cleaned + scaled > 0

    def _cleanup_unhealthy(self, cluster: str, d: Obj, olds: list[Obj],
                           most: int) -> tuple[list[Obj], int]:
        """Old ReplicaSets' unavailable pods go first (they would block the rollout)."""
        olds = dm.by_creation(olds)
        done = 0
        for i, rs in enumerate(olds):
            if done >= most:
                break
            size, available = dm.replicas(rs), dm.status_count(rs, "availableReplicas")
            if size == 0 or size == available:
                continue
            down = min(most - done, size - available)
            _, olds[i] = self._scale_to(cluster, rs, size - down, d)
            done += down
        return olds, done

    def _scale_down_old(self, cluster: str, d: Obj, all_rss: list[Obj],
                        olds: list[Obj]) -> int:
        min_available = dm.replicas(d) - dm.max_unavailable(d)
        available = sum(dm.status_count(rs, "availableReplicas") for rs in all_rss)
        if available <= min_available:
            return 0
        goal, done = available - min_available, 0
        for rs in dm.by_creation(olds):
            if done >= goal:
                break
            if dm.replicas(rs) == 0:
                continue
            down = min(dm.replicas(rs), goal - done)
            self._scale_to(cluster, rs, dm.replicas(rs) - down, d)
            done += down
        return done

    # ---- Recreate
    def _recreate(self, cluster: str, d: Obj, rss: list[Obj]) -> None:
        new, olds, d = self._sync_revision(cluster, d, rss, create=False)
        scaled = False
        for rs in dm.active(olds):
            scaled = self._scale_to(cluster, rs, 0, d)[0] or scaled
        if scaled or self._old_pods_running(cluster, d, new, olds):
            self._rollout_status(cluster, d, olds, new)
            return
        if new is None:
            new, olds, d = self._sync_revision(cluster, d, rss, create=True)
        if new is not None:
            self._scale_to(cluster, self._find(cluster, new) or new, dm.replicas(d), d)
        if dm.complete(d, d.get("status") or {}):
            self._cleanup(cluster, d, self._fresh(cluster, olds, None))
        self._rollout_status(cluster, d, olds, new)

    def _old_pods_running(self, cluster: str, d: Obj, new: Obj | None,
                          olds: list[Obj]) -> bool:
        fresh = self._fresh(cluster, olds, None)
        if sum(dm.status_count(rs, "replicas") for rs in fresh) > 0:
            return True
        uids = {rs["metadata"]["uid"] for rs in fresh}
        match = selector_matcher(d["spec"]["selector"])
        for pod in self.state.list(cluster, "pods", d["metadata"]["namespace"]):
            ref = objmeta.controller_of(pod)
            if ref is None or ref.get("uid") not in uids or not match(rsm.labels_of(pod)):
                continue
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                return True
        return False

    # ---- history
    def _cleanup(self, cluster: str, d: Obj, olds: list[Obj]) -> None:
        for rs in dm.prunable(d, olds):
            try:
                self.objects.delete(cluster, "replicasets", rs["metadata"]["namespace"],
                                    rs["metadata"]["name"], DeleteOptions())
            except KubeError as err:
                if err.code != 404:
                    raise
