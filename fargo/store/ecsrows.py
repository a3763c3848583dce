"""ECS rows beside store/sqlite.py's tables, in the same file (own table, the Store's
connection and lock): account settings, and the task definition revisions
DeleteTaskDefinitions removes.

A deleted revision stays as a row with the status DELETED, which no ECS call shows: its
number is never handed out again (a family's revisions only grow, as on ECS)."""

from __future__ import annotations

import json
from typing import Any

from .sqlite import Store

DELETED = "DELETED"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS account_settings (
    principal TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (principal, name));
"""


class EcsRows:
    def __init__(self, store: Store):
        self.store = store
        with store.locked() as db:
            db.executescript(_SCHEMA)

    # account settings: (principal, name) -> value
    def settings(self) -> dict[tuple[str, str], str]:
        rows = self.store.rows("SELECT principal, name, value FROM account_settings")
        return {(r[0], r[1]): r[2] for r in rows}

    def put_setting(self, principal: str, name: str, value: str) -> None:
        self.store.execute("INSERT OR REPLACE INTO account_settings VALUES (?,?,?)",
                           (principal, name, value))

    def delete_setting(self, principal: str, name: str) -> None:
        self.store.execute("DELETE FROM account_settings WHERE principal=? AND name=?",
                           (principal, name))

    # task definitions by status
    def taskdefs(self, status: str) -> list[dict[str, Any]]:
        rows = self.store.rows("SELECT doc FROM taskdefs WHERE status=? ORDER BY family, "
                               "revision", (status,))
        return [json.loads(r[0]) for r in rows]

    def live_families(self) -> set[str]:
        """Families with a revision ECS still shows (any but DELETED)."""
        rows = self.store.rows("SELECT DISTINCT family FROM taskdefs WHERE status != ?",
                               (DELETED,))
        return {r[0] for r in rows}
