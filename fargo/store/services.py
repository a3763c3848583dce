"""ECS service records (model/service.py), as they are (msgspec JSON), in the same SQLite file
as the rest of the state: one row per (cluster, name), the latest service of that name."""

from __future__ import annotations

import msgspec

from ..model.service import Service
from .sqlite import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS services (
    cluster TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL, launch_type TEXT,
    created REAL NOT NULL, record BLOB NOT NULL, PRIMARY KEY (cluster, name));
"""
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Service)


class ServiceTable:
    def __init__(self, store: Store):
        self.store = store
        with store.locked() as db:
            db.executescript(_SCHEMA)

    def put(self, svc: Service) -> None:
        self.store.execute("INSERT OR REPLACE INTO services VALUES (?,?,?,?,?,?)",
                           (svc.cluster_name, svc.name, svc.status, svc.launch_type,
                            svc.created_at, _encoder.encode(svc)))

    def get(self, cluster: str, name: str) -> Service | None:
        rows = self.store.rows("SELECT record FROM services WHERE cluster=? AND name=?",
                               (cluster, name))
        return _decoder.decode(rows[0][0]) if rows else None

    def names(self, cluster: str, statuses: tuple[str, ...],
              launch_type: str | None = None) -> list[str]:
        marks = ",".join("?" * len(statuses))
        sql = f"SELECT name FROM services WHERE cluster=? AND status IN ({marks})"
        args: tuple = (cluster, *statuses)
        if launch_type is not None:
            sql += " AND launch_type=?"
            args += (launch_type,)
        return [r[0] for r in self.store.rows(sql + " ORDER BY created, name", args)]

    def live(self) -> list[Service]:
        """Every service the scheduler still has work for (ACTIVE or DRAINING)."""
        rows = self.store.rows("SELECT record FROM services WHERE status != 'INACTIVE' "
                               "ORDER BY created")
        return [_decoder.decode(r[0]) for r in rows]

    def count(self, cluster: str, status: str) -> int:
        return int(self.store.rows("SELECT COUNT(*) FROM services WHERE cluster=? AND "
                                   "status=?", (cluster, status))[0][0])

    def delete(self, cluster: str, name: str) -> None:
        self.store.execute("DELETE FROM services WHERE cluster=? AND name=?", (cluster, name))
