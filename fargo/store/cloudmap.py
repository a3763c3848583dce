"""Cloud Map's namespaces, services, instances and operations in the state file (tables of
their own, the Store's connection and lock): one JSON document per row, which
model/cloudmap.py's records read and write."""

from __future__ import annotations

import json
from typing import Any

from .sqlite import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cloudmap_namespaces (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cloudmap_services (
    id TEXT PRIMARY KEY, namespace_id TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS cloudmap_services_by_ns ON cloudmap_services (namespace_id);
CREATE TABLE IF NOT EXISTS cloudmap_instances (
    service_id TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (service_id, id));
CREATE TABLE IF NOT EXISTS cloudmap_operations (
    id TEXT PRIMARY KEY, created REAL NOT NULL, request_id TEXT, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS cloudmap_operations_by_request ON cloudmap_operations (request_id);
"""

Doc = dict[str, Any]


class CloudMapTables:
    def __init__(self, store: Store):
        self.store = store
        with store.locked() as db:
            db.executescript(_SCHEMA)

    # namespaces
    def put_namespace(self, doc: Doc) -> None:
        self.store.execute("INSERT OR REPLACE INTO cloudmap_namespaces VALUES (?,?)",
                           (doc["Id"], json.dumps(doc)))

    def namespace(self, ns_id: str) -> Doc | None:
        rows = self.store.rows("SELECT doc FROM cloudmap_namespaces WHERE id=?", (ns_id,))
        return json.loads(rows[0][0]) if rows else None

    def namespaces(self) -> list[Doc]:
        return [json.loads(d) for (d,) in
                self.store.rows("SELECT doc FROM cloudmap_namespaces ORDER BY id")]

    def delete_namespace(self, ns_id: str) -> None:
        self.store.execute("DELETE FROM cloudmap_namespaces WHERE id=?", (ns_id,))

    # services
    def put_service(self, doc: Doc) -> None:
        self.store.execute("INSERT OR REPLACE INTO cloudmap_services VALUES (?,?,?)",
                           (doc["Id"], doc["NamespaceId"], json.dumps(doc)))

    def service(self, service_id: str) -> Doc | None:
        rows = self.store.rows("SELECT doc FROM cloudmap_services WHERE id=?", (service_id,))
        return json.loads(rows[0][0]) if rows else None

    def services(self, namespace_id: str | None = None) -> list[Doc]:
        if namespace_id is None:
            rows = self.store.rows("SELECT doc FROM cloudmap_services ORDER BY id")
        else:
            rows = self.store.rows("SELECT doc FROM cloudmap_services WHERE namespace_id=? "
                                   "ORDER BY id", (namespace_id,))
        return [json.loads(d) for (d,) in rows]

    def delete_service(self, service_id: str) -> None:
        self.store.execute("DELETE FROM cloudmap_services WHERE id=?", (service_id,))

    # instances
    def put_instance(self, doc: Doc) -> None:
        self.store.execute("INSERT OR REPLACE INTO cloudmap_instances VALUES (?,?,?)",
                           (doc["ServiceId"], doc["Id"], json.dumps(doc)))

    def instance(self, service_id: str, instance_id: str) -> Doc | None:
        rows = self.store.rows("SELECT doc FROM cloudmap_instances WHERE service_id=? AND id=?",
                               (service_id, instance_id))
        return json.loads(rows[0][0]) if rows else None

    def instances(self, service_id: str | None = None) -> list[Doc]:
        if service_id is None:
            rows = self.store.rows("SELECT doc FROM cloudmap_instances ORDER BY service_id, id")
        else:
            rows = self.store.rows("SELECT doc FROM cloudmap_instances WHERE service_id=? "
                                   "ORDER BY id", (service_id,))
        return [json.loads(d) for (d,) in rows]

    def count_instances(self, service_id: str) -> int:
        return int(self.store.rows("SELECT COUNT(*) FROM cloudmap_instances WHERE "
                                   "service_id=?", (service_id,))[0][0])

    def delete_instance(self, service_id: str, instance_id: str) -> None:
        self.store.execute("DELETE FROM cloudmap_instances WHERE service_id=? AND id=?",
                           (service_id, instance_id))

    # operations
    def put_operation(self, doc: Doc, keep: int) -> None:
        """Written, and only the newest `keep` operations kept."""
        with self.store.locked() as db:
            db.execute("INSERT OR REPLACE INTO cloudmap_operations VALUES (?,?,?,?)",
                       (doc["Id"], doc["Created"], doc.get("RequestId"), json.dumps(doc)))
            db.execute("DELETE FROM cloudmap_operations WHERE id IN (SELECT id FROM "
                       "cloudmap_operations ORDER BY created DESC, id LIMIT -1 OFFSET ?)",
                       (keep,))

    def operation(self, op_id: str) -> Doc | None:
        rows = self.store.rows("SELECT doc FROM cloudmap_operations WHERE id=?", (op_id,))
        return json.loads(rows[0][0]) if rows else None

    def operations_for(self, request_id: str) -> list[Doc]:
        return [json.loads(d) for (d,) in self.store.rows(
            "SELECT doc FROM cloudmap_operations WHERE request_id=?", (request_id,))]

    def operations(self) -> list[Doc]:
        return [json.loads(d) for (d,) in self.store.rows(
            "SELECT doc FROM cloudmap_operations ORDER BY created, id")]
