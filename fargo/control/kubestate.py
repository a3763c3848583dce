"""Kubernetes objects of every EKS cluster: writes stamp metadata and a resourceVersion, and
every change is told to the watchers of that cluster."""

from __future__ import annotations

import asyncio
import collections
import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..model import kubekinds, kubeobj, objmeta, serviceaccount
from ..model.kubeerrors import KubeError, already_exists, not_found
from ..store.kube import KubeTables

HISTORY = 2000  # change events kept per cluster for watches that resume from a version


def now_rfc3339(at: float | None = None) -> str:
    at = time.time() if at is None else min(max(at, 0.0), 253402300799.0)  # up to year 9999
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


@dataclass
class Change:
    rv: int
    resource: str
    ns: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]


Changes = list[Change]  # named out here: inside KubeState, `list` is a method


@dataclass
class Watcher:
    resource: str
    ns: str | None
    queue: asyncio.Queue[Change] = field(default_factory=asyncio.Queue)


class KubeState:
    def __init__(self, tables: KubeTables):
        self.tables = tables
        self._history: dict[str, collections.deque[Change]] = {}
        self._watchers: dict[str, list[Watcher]] = {}
        self.changed = asyncio.Event()  # wakes the pods' loop
        # (cluster, change) for each write: controllers' pokes (control/kubecontrol.py)
        self.listeners: list[Callable[[str, Change], None]] = []
        self._since_start = tables.current_rv  # changes before this start are not held

    # ---- reads
    def get(self, cluster: str, resource: str, ns: str, name: str) -> dict[str, Any]:
        obj = self.tables.get_object(cluster, resource, ns, name)
        if obj is None:
            raise not_found(resource, name)
        return obj

    def find(self, cluster: str, resource: str, ns: str, name: str) -> dict[str, Any] | None:
        return self.tables.get_object(cluster, resource, ns, name)

    def list(self, cluster: str, resource: str, ns: str | None = None) -> list[dict[str, Any]]:
        return self.tables.list_objects(cluster, resource, ns)

    @property
    def current_rv(self) -> int:
        """The resourceVersion of the latest write (a list's own version)."""
        return self.tables.current_rv

    # ---- writes
    def create(self, cluster: str, resource: str, ns: str, obj: dict[str, Any],
               dry_run: bool = False, uid: str | None = None) -> dict[str, Any]:
        """Stamp and store a new object (its kind's checks have run); with dry_run, the
        object as it would be stored, with nothing written. `uid`: one drawn before the
        kind's rules ran (they may need it)."""
        rule = kubekinds.rule(resource)
        meta = obj.setdefault("metadata", {})
        if self.tables.get_object(cluster, resource, ns, meta["name"]) is not None:
            raise already_exists(resource, meta["name"])
        obj["kind"] = rule.kind
        obj["apiVersion"] = rule.api_version
        obj["metadata"] = meta = objmeta.new_metadata(meta, ns, uid or str(uuid.uuid4()),
                                                      now_rfc3339())
        if rule.generation or resource == "pods":
            meta["generation"] = 1
        if dry_run:
            return obj
        return self._write(cluster, resource, ns, obj, "ADDED")

    def update(self, cluster: str, resource: str, ns: str, obj: dict[str, Any],
               dry_run: bool = False) -> dict[str, Any]:
        """Store a changed object. One being deleted whose last finalizer this update takes
        away (and whose grace is over) goes, as the apiserver's update does."""
        meta = obj["metadata"]
        if dry_run:
            return obj
        # A namespace is held by its spec.finalizers until what it holds is gone
        # (control/pods.py removes it then): marking it Terminating must not remove it.
        held = resource == "namespaces" and (obj.get("spec") or {}).get("finalizers")
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not held and \
                meta.get("deletionGracePeriodSeconds", 0) == 0:
            return self._remove(cluster, resource, ns, obj)
        return self._write(cluster, resource, ns, obj, "MODIFIED")

    def delete(self, cluster: str, resource: str, ns: str, name: str,
               dry_run: bool = False) -> dict[str, Any] | None:
        """Remove an object, unless finalizers hold it: then it is marked deleted (and
        stays until they are gone). None if there is no such object."""
        obj = self.tables.get_object(cluster, resource, ns, name)
        if obj is None or dry_run:
            return obj
        if obj["metadata"].get("finalizers"):
            if obj["metadata"].get("deletionTimestamp") and \
                    obj["metadata"].get("deletionGracePeriodSeconds", 0) == 0:
                return obj
            obj["metadata"].setdefault("deletionTimestamp", now_rfc3339())
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._write(cluster, resource, ns, obj, "MODIFIED")
        return self._remove(cluster, resource, ns, obj)

    def _remove(self, cluster: str, resource: str, ns: str,
                obj: dict[str, Any]) -> dict[str, Any]:
        self.tables.delete_object(cluster, resource, ns, obj["metadata"]["name"])
        obj["metadata"]["resourceVersion"] = str(self.tables.next_rv())
        self._tell(cluster, Change(int(obj["metadata"]["resourceVersion"]), resource, ns,
                                   "DELETED", obj))
        return obj

    def _write(self, cluster: str, resource: str, ns: str, obj: dict[str, Any],
               kind: str) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(self.tables.next_rv())
        self.tables.put_object(cluster, resource, ns, obj)
        self._tell(cluster, Change(int(obj["metadata"]["resourceVersion"]), resource, ns, kind,
                                   copy.deepcopy(obj)))
        return obj

    # ---- namespaces (their deletion, which takes their pods along, is control/pods.py's)
    def create_namespace(self, cluster: str, body: Any, dry_run: bool = False) -> dict[str, Any]:
        return self.add_namespace(cluster, kubeobj.new_namespace(body), dry_run)

    def add_namespace(self, cluster: str, obj: dict[str, Any],
                      dry_run: bool = False) -> dict[str, Any]:
        """A new namespace, with what it holds from the start (its default ServiceAccount:
        a pod made right after must find it)."""
        made = self.create(cluster, "namespaces", "", obj, dry_run)
        if not dry_run:
            ns = made["metadata"]["name"]
            if self.find(cluster, "serviceaccounts", ns, serviceaccount.DEFAULT) is None:
                self.create(cluster, "serviceaccounts", ns, serviceaccount.default_account())
        return made

    def replace_namespace(self, cluster: str, name: str, new: dict[str, Any],
                          dry_run: bool = False) -> dict[str, Any]:
        old = self.get(cluster, "namespaces", "", name)
        merged = kubeobj.replaced_namespace(old, new, name)
        # A stale resourceVersion is a 409 and the server's stamps stay, as for every kind.
        objmeta.updated_metadata(old["metadata"], new["metadata"], "namespaces")
        return self.update(cluster, "namespaces", "", merged, dry_run) if merged != old else old

    def drop_cluster(self, cluster: str) -> None:
        self._history.pop(cluster, None)
        for w in self._watchers.pop(cluster, []):
            w.queue.put_nowait(Change(0, w.resource, "", "CLOSE", {}))

    # ---- events (the Kubernetes kind)
    def record_event(self, cluster: str, obj: dict[str, Any], type_: str, reason: str,
                     message: str, component: str) -> None:
        """One Event per (object, reason, message); repeats raise its count."""
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        key = uuid.uuid5(uuid.NAMESPACE_OID, f"{meta.get('uid')}/{reason}/{message}").hex[:16]
        name = f"{meta['name']}.{key}"[:253]
        stamp = now_rfc3339()
        existing = self.tables.get_object(cluster, "events", ns, name)
        if existing:
            existing["count"] = existing.get("count", 1) + 1
            existing["lastTimestamp"] = stamp
            self.update(cluster, "events", ns, existing)
        else:
            self.create(cluster, "events", ns, {
                "metadata": {"name": name},
                "involvedObject": {"kind": obj.get("kind"), "namespace": meta.get("namespace"),
                                   "name": meta["name"], "uid": meta.get("uid"),
                                   "apiVersion": obj.get("apiVersion", "v1"),
                                   "resourceVersion": meta.get("resourceVersion")},
                "reason": reason, "message": message, "type": type_,
                "source": {"component": component}, "reportingComponent": component,
                "reportingInstance": "", "firstTimestamp": stamp, "lastTimestamp": stamp,
                "count": 1})

    # ---- watches
    def _tell(self, cluster: str, change: Change) -> None:
        hist = self._history.setdefault(cluster, collections.deque(maxlen=HISTORY))
        hist.append(change)
        for w in self._watchers.get(cluster, []):
            if w.resource == change.resource and (w.ns is None or w.ns == change.ns):
                w.queue.put_nowait(change)
        self.changed.set()
        for listener in self.listeners:
            listener(cluster, change)

    def watch(self, cluster: str, resource: str, ns: str | None,
              since: int | None) -> tuple[Watcher, Changes]:
        """A new watcher plus the changes after `since` it has to see first (410 Gone when
        those are no longer held)."""
        w = Watcher(resource, ns)
        backlog: Changes = []
        if since is not None and since < self.tables.current_rv:
            hist = self._history.get(cluster) or collections.deque()
            lost = since < self._since_start or (
                len(hist) == HISTORY and hist[0].rv > since + 1)
            if lost:
                raise KubeError(410, "Expired", f"too old resource version: {since} "
                                f"({self.tables.current_rv})")
            backlog = [c for c in hist if c.rv > since and c.resource == resource
                       and (ns is None or c.ns == ns)]
        self._watchers.setdefault(cluster, []).append(w)
        return w, backlog

    def close_watches(self) -> None:
        """End every open watch (the server is stopping)."""
        for cluster in list(self._watchers):
            for w in self._watchers.get(cluster, []):
                w.queue.put_nowait(Change(0, w.resource, "", "CLOSE", {}))

    def unwatch(self, cluster: str, w: Watcher) -> None:
        lst = self._watchers.get(cluster, [])
        if w in lst:
            lst.remove(w)
