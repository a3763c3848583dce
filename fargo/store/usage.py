"""What tasks were billed for, kept after their records are forgotten (an hour after STOPPED):
one row per task, keyed by its id, in the same SQLite file as the rest of the state (own
table, the Store's connection and lock). A row is written once, when the task is STOPPED;
writing it again changes nothing, so a sweep cut short by a SIGKILL is simply redone.

A task that never began pulling its images is billed nothing; its row has no start, so the
sweep does not look at it again."""

from __future__ import annotations

import msgspec

from ..model.billing import Metered
from .sqlite import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage_records (
    task_id TEXT PRIMARY KEY, started REAL, billed_until REAL NOT NULL, doc BLOB);
CREATE INDEX IF NOT EXISTS usage_records_by_time ON usage_records (billed_until, started);
"""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Metered)


class UsageTable:
    def __init__(self, store: Store):
        self.store = store
        with store.locked() as db:
            db.executescript(_SCHEMA)

    def unmetered_stopped(self, limit: int = 500) -> list[str]:
        """Ids of STOPPED task records with no usage row yet (the oldest first)."""
        rows = self.store.rows(
            "SELECT t.id FROM task_records t LEFT JOIN usage_records u ON u.task_id = t.id "
            "WHERE t.last = 'STOPPED' AND u.task_id IS NULL ORDER BY t.stopped LIMIT ?",
            (limit,))
        return [r[0] for r in rows]

    def put(self, rows: list[tuple[str, Metered | None, float]]) -> None:
        """(task id, its usage or None when it is billed nothing, billed until) each, in one
        transaction; a task already metered keeps its row."""
        with self.store.locked() as db:
            db.execute("BEGIN")
            try:
                db.executemany(
                    "INSERT OR IGNORE INTO usage_records VALUES (?,?,?,?)",
                    [(tid, m.start if m else None, until, _encoder.encode(m) if m else None)
                     for tid, m, until in rows])
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def metered(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = self.store.rows(f"SELECT task_id FROM usage_records WHERE task_id IN ({marks})",
                               tuple(ids))
        return {r[0] for r in rows}

    def between(self, start: float, end: float) -> list[Metered]:
        """The billed tasks whose billed time overlaps [start, end)."""
        rows = self.store.rows(
            "SELECT doc FROM usage_records WHERE billed_until > ? AND started IS NOT NULL "
            "AND started < ? ORDER BY started, task_id", (start, end))
        return [_decoder.decode(r[0]) for r in rows]

    def drop_before(self, before: float) -> int:
        """Forget usage billed entirely before `before` (past Cost Explorer's horizon)."""
        with self.store.locked() as db:
            return db.execute("DELETE FROM usage_records WHERE billed_until < ?",
                              (before,)).rowcount
