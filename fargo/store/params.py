"""SSM Parameter Store's parameters in the same SQLite file as the rest of the state (own
tables, the Store's connection and lock): one row per parameter (its current version and
its tags), one per kept version (a JSON document control/ssm.py reads). Values, SecureString
ones too, are kept as given: the file is the owner's alone (0600), as for Secrets Manager."""

from __future__ import annotations

import json
from typing import Any

from .sqlite import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ssm_parameters (
    name TEXT PRIMARY KEY, version INTEGER NOT NULL, tags TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ssm_parameter_versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (name, version));
"""

Doc = dict[str, Any]
Tags = list[dict[str, str]]


class ParamTables:
    def __init__(self, store: Store):
        self.store = store
        with store.locked() as db:
            db.executescript(_SCHEMA)

    def current(self, name: str) -> tuple[Doc, Tags] | None:
        """The parameter's current version and its tags."""
        rows = self.store.rows(
            "SELECT v.doc, p.tags FROM ssm_parameters p JOIN ssm_parameter_versions v "
            "ON v.name = p.name AND v.version = p.version WHERE p.name=?", (name,))
        return (json.loads(rows[0][0]), json.loads(rows[0][1])) if rows else None

    def version(self, name: str, version: int) -> Doc | None:
        rows = self.store.rows("SELECT doc FROM ssm_parameter_versions WHERE name=? AND "
                               "version=?", (name, version))
        return json.loads(rows[0][0]) if rows else None

    def write(self, name: str, version: int, doc: Doc, tags: Tags, keep: int) -> None:
        """A new current version (and the tags), in one transaction; versions older than
        the last `keep` go."""
        with self.store.locked() as db:
            db.execute("BEGIN")
            try:
                db.execute("INSERT OR REPLACE INTO ssm_parameter_versions VALUES (?,?,?)",
                           (name, version, json.dumps(doc)))
                db.execute("INSERT OR REPLACE INTO ssm_parameters VALUES (?,?,?)",
                           (name, version, json.dumps(tags)))
                db.execute("DELETE FROM ssm_parameter_versions WHERE name=? AND version<=?",
                           (name, version - keep))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def delete(self, name: str) -> bool:
        """Whether there was such a parameter."""
        with self.store.locked() as db:
            gone = db.execute("DELETE FROM ssm_parameters WHERE name=?", (name,)).rowcount
            db.execute("DELETE FROM ssm_parameter_versions WHERE name=?", (name,))
        return gone > 0

    def listing(self, prefix: str = "", after: str | None = None) -> list[tuple[Doc, Tags]]:
        """Current versions by name, of the names beginning with prefix (and after `after`)."""
        sql = ("SELECT v.doc, p.tags FROM ssm_parameters p JOIN ssm_parameter_versions v "
               "ON v.name = p.name AND v.version = p.version WHERE p.name >= ?")
        args: list[Any] = [max(prefix, after or "")]
        if after is not None:
            sql += " AND p.name > ?"
            args.append(after)
        if prefix:  # names below prefix sort before prefix with its last character bumped
            sql += " AND p.name < ?"
            args.append(prefix[:-1] + chr(ord(prefix[-1]) + 1))
        rows = self.store.rows(sql + " ORDER BY p.name", tuple(args))
        return [(json.loads(d), json.loads(t)) for d, t in rows]

    def count(self) -> int:
        return int(self.store.rows("SELECT COUNT(*) FROM ssm_parameters")[0][0])
