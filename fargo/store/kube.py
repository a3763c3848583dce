"""EKS clusters, Fargate profiles and each cluster's Kubernetes objects, in the same SQLite
file as the rest of the state (own tables, own schema, the Store's connection and lock).

Kubernetes objects are JSON documents keyed by (cluster, resource, namespace, name); every
write takes the next value of one global counter as its resourceVersion."""

from __future__ import annotations

import json
from typing import Any

from .sqlite import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS eks_clusters (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS eks_profiles (
    cluster TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (cluster, name));
CREATE TABLE IF NOT EXISTS kube_objects (
    cluster TEXT NOT NULL, resource TEXT NOT NULL, ns TEXT NOT NULL, name TEXT NOT NULL,
    rv INTEGER NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (cluster, resource, ns, name));
"""


class KubeTables:
    def __init__(self, store: Store):
        self.store = store
        with store.locked() as db:
            db.executescript(_SCHEMA)
        rows = store.rows("SELECT MAX(rv) FROM kube_objects")
        saved = int(store.get_meta("kube_rv") or 0)
        self._rv = max(saved, rows[0][0] or 0)

    # EKS clusters and profiles
    def put_cluster(self, doc: dict[str, Any]) -> None:
        self.store.execute("INSERT OR REPLACE INTO eks_clusters VALUES (?,?)",
                           (doc["name"], json.dumps(doc)))

    def get_cluster(self, name: str) -> dict[str, Any] | None:
        rows = self.store.rows("SELECT doc FROM eks_clusters WHERE name=?", (name,))
        return json.loads(rows[0][0]) if rows else None

    def list_clusters(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in
                self.store.rows("SELECT doc FROM eks_clusters ORDER BY name")]

    def delete_cluster(self, name: str) -> None:
        with self.store.locked() as db:
            for table in ("eks_profiles", "kube_objects"):
                db.execute(f"DELETE FROM {table} WHERE cluster=?", (name,))
            db.execute("DELETE FROM eks_clusters WHERE name=?", (name,))

    def put_profile(self, cluster: str, doc: dict[str, Any]) -> None:
        self.store.execute("INSERT OR REPLACE INTO eks_profiles VALUES (?,?,?)",
                           (cluster, doc["fargateProfileName"], json.dumps(doc)))

    def get_profile(self, cluster: str, name: str) -> dict[str, Any] | None:
        rows = self.store.rows("SELECT doc FROM eks_profiles WHERE cluster=? AND name=?",
                               (cluster, name))
        return json.loads(rows[0][0]) if rows else None

    def list_profiles(self, cluster: str) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self.store.rows(
            "SELECT doc FROM eks_profiles WHERE cluster=? ORDER BY name", (cluster,))]

    def delete_profile(self, cluster: str, name: str) -> None:
        self.store.execute("DELETE FROM eks_profiles WHERE cluster=? AND name=?", (cluster, name))

    # Kubernetes objects
    def next_rv(self) -> int:
        self._rv += 1
        self.store.put_meta("kube_rv", str(self._rv))
        return self._rv

    @property
    def current_rv(self) -> int:
        return self._rv

    def put_object(self, cluster: str, resource: str, ns: str, doc: dict[str, Any]) -> None:
        rv = int(doc["metadata"]["resourceVersion"])
        self.store.execute("INSERT OR REPLACE INTO kube_objects VALUES (?,?,?,?,?,?)",
                           (cluster, resource, ns, doc["metadata"]["name"], rv, json.dumps(doc)))

    def get_object(self, cluster: str, resource: str, ns: str,
                   name: str) -> dict[str, Any] | None:
        rows = self.store.rows("SELECT doc FROM kube_objects WHERE cluster=? AND resource=? "
                               "AND ns=? AND name=?", (cluster, resource, ns, name))
        return json.loads(rows[0][0]) if rows else None

    def list_objects(self, cluster: str | None, resource: str,
                     ns: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT doc FROM kube_objects WHERE resource=?", [resource]
        if cluster is not None:
            sql += " AND cluster=?"
            args.append(cluster)
        if ns is not None:
            sql += " AND ns=?"
            args.append(ns)
        sql += " ORDER BY ns, name"
        return [json.loads(r[0]) for r in self.store.rows(sql, tuple(args))]

    def owned_objects(self, cluster: str) -> list[tuple[str, dict[str, Any]]]:
        """(resource, object) of every object of the cluster that names an owner or holds a
        finalizer: what the garbage collector looks at."""
        rows = self.store.rows(
            "SELECT resource, doc FROM kube_objects WHERE cluster=? AND (doc LIKE "
            "'%\"ownerReferences\"%' OR doc LIKE '%\"finalizers\"%') ORDER BY resource, ns, "
            "name", (cluster,))
        return [(r[0], json.loads(r[1])) for r in rows]

    def uids(self, cluster: str) -> set[str]:
        """The uid of every object of the cluster."""
        rows = self.store.rows("SELECT json_extract(doc, '$.metadata.uid') FROM kube_objects "
                               "WHERE cluster=?", (cluster,))
        return {r[0] for r in rows if r[0]}

    def delete_object(self, cluster: str, resource: str, ns: str, name: str) -> None:
        self.store.execute("DELETE FROM kube_objects WHERE cluster=? AND resource=? AND ns=? "
                           "AND name=?", (cluster, resource, ns, name))
