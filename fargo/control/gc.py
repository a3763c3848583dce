"""The garbage collector of each cluster's objects, as kube-controller-manager's: a dependent
whose owners are all gone is deleted; an owner deleted in the foreground (its
foregroundDeletion finalizer) has its dependents deleted first and goes once none that
blocks it is left; one deleted with orphan has its dependents' references to it removed.

Level-triggered: every pass reads the owner references and finalizers from the store."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..model import objmeta
from .kubecontrol import Controller
from .kubestate import Change, KubeState
from .objects import DeleteOptions, Objects

Obj = dict[str, Any]
# (cluster, plural, namespace, name): delete one object as its kind does (pods gracefully)
Deleter = Callable[[str, str, str, str], object]


class GarbageCollector(Controller):
    name = "garbage collector"

    def __init__(self, state: KubeState, objects: Objects,
                 deleters: dict[str, Deleter] | None = None):
        self.state = state
        self.objects = objects
        self.deleters = deleters or {}

    def interested(self, change: Change) -> bool:
        meta = change.obj.get("metadata") or {}
        return change.type == "DELETED" or bool(meta.get("finalizers")) or bool(
            meta.get("deletionTimestamp"))

    def delete(self, cluster: str, plural: str, ns: str, name: str) -> None:
        deleter = self.deleters.get(plural)
        if deleter is not None:
            deleter(cluster, plural, ns, name)
        else:
            self.objects.delete(cluster, plural, ns, name, DeleteOptions())

    def reconcile(self, cluster: str) -> None:
        items = self.state.tables.owned_objects(cluster)
        uids = self.state.tables.uids(cluster)
        owners = {obj["metadata"].get("uid"): obj for _, obj in items}
        referenced: dict[str, int] = {}  # owner uid -> dependents still naming it
        blocking: dict[str, int] = {}  # owner uid -> those with blockOwnerDeletion
        for plural, obj in items:
            refs = [r for r in obj["metadata"].get("ownerReferences") or []
                    if isinstance(r, dict)]
            if not refs:
                continue
            meta = obj["metadata"]
            live = [r for r in refs if r.get("uid") in uids]
            orphaned = [r for r in live if self._finalizing(owners.get(r["uid"]),
                                                            objmeta.ORPHAN)]
            if orphaned:
                kept = [r for r in refs if r not in orphaned]
                obj = copy.deepcopy(obj)
                obj["metadata"]["ownerReferences"] = kept
                if not kept:
                    obj["metadata"].pop("ownerReferences")
                self.state.update(cluster, plural, meta.get("namespace", ""), obj)
                if not kept:
                    continue  # released: it owes nothing to anyone now
                live = [r for r in live if r not in orphaned]
            doomed = not live or all(self._finalizing(owners.get(r["uid"]),
                                                      objmeta.FOREGROUND) for r in live)
            if doomed and not objmeta.deleting(obj):
                self.delete(cluster, plural, meta.get("namespace", ""), meta["name"])
            for r in live:
                referenced[r["uid"]] = referenced.get(r["uid"], 0) + 1
                if r.get("blockOwnerDeletion"):
                    blocking[r["uid"]] = blocking.get(r["uid"], 0) + 1
        for plural, obj in items:
            meta = obj["metadata"]
            if not objmeta.deleting(obj):
                continue
            fins = objmeta.finalizers(obj)
            done = [f for f in fins if (f == objmeta.ORPHAN and not referenced.get(meta["uid"]))
                    or (f == objmeta.FOREGROUND and not blocking.get(meta["uid"]))]
            if done:
                obj = copy.deepcopy(obj)
                obj["metadata"]["finalizers"] = [f for f in fins if f not in done]
                self.state.update(cluster, plural, meta.get("namespace", ""), obj)

    @staticmethod
    def _finalizing(owner: Obj | None, finalizer: str) -> bool:
        return owner is not None and objmeta.deleting(owner) and finalizer in \
            objmeta.finalizers(owner)
