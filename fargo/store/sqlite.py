"""The state: one SQLite file (WAL) under the state dir. Every change is committed before it is
acted on, so reconcilers can pick up from here after any restart."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from ..model.taskrecord import Task
from .legacy import task_from_row

log = logging.getLogger("fargo.store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clusters (
    name TEXT PRIMARY KEY, region TEXT NOT NULL, status TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS taskdefs (
    family TEXT NOT NULL, revision INTEGER NOT NULL, status TEXT NOT NULL,
    registered REAL NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (family, revision));
CREATE TABLE IF NOT EXISTS task_records (
    id TEXT PRIMARY KEY, cluster TEXT NOT NULL, family TEXT NOT NULL, started_by TEXT,
    desired TEXT NOT NULL, last TEXT NOT NULL, launch_type TEXT NOT NULL,
    created REAL NOT NULL, stopped REAL, record BLOB NOT NULL, grp TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS task_records_by_cluster ON task_records (cluster, desired);
CREATE INDEX IF NOT EXISTS task_records_active ON task_records (last);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, request TEXT NOT NULL, arns TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tags (arn TEXT PRIMARY KEY, tags TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS access_keys (
    id TEXT PRIMARY KEY, secret TEXT NOT NULL, principal TEXT NOT NULL, token TEXT,
    expires REAL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vpcs (id TEXT PRIMARY KEY, vpc TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subnets (id TEXT PRIMARY KEY, vpc TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS security_groups (
    id TEXT PRIMARY KEY, vpc TEXT NOT NULL, doc TEXT NOT NULL);
"""
_NET_TABLES = ("vpcs", "subnets", "security_groups")


class Store:
    """Thin typed access to the tables; callers own the documents' meaning."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)  # it holds secrets: owner only
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._upgrade_tasks()
        self._add_group_column()

    def _upgrade_tasks(self) -> None:
        """Rows of the `tasks` table older servers wrote become task records, once."""
        if not self.rows("SELECT name FROM sqlite_master WHERE type='table' AND name='tasks'"):
            return
        unread: list[str] = []
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for tid, doc, private in self._db.execute(
                        "SELECT id, doc, private FROM tasks").fetchall():
                    try:
                        self.put_task(task_from_row(doc, private))
                    except Exception:  # noqa: BLE001 - one bad row must not stop the rest
                        unread.append(tid)
                # Kept under another name when some could not be read: nothing is lost.
                self._db.execute("ALTER TABLE tasks RENAME TO tasks_unread" if unread
                                 else "DROP TABLE tasks")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        if unread:
            log.warning("task rows of an older server that could not be read are kept in the "
                        "table tasks_unread (fargo purge removes what they left running): %s",
                        ", ".join(unread))

    def _add_group_column(self) -> None:
        """Task records of servers before services had no `grp` column: add and fill it."""
        columns = [r[1] for r in self.rows("PRAGMA table_info(task_records)")]
        if "grp" not in columns:
            with self._lock:
                self._db.execute("ALTER TABLE task_records ADD COLUMN grp TEXT NOT NULL "
                                 "DEFAULT ''")
                for tid, record in self._db.execute(
                        "SELECT id, record FROM task_records").fetchall():
                    self._db.execute("UPDATE task_records SET grp=? WHERE id=?",
                                     (_decode(record).group, tid))
        self.execute("CREATE INDEX IF NOT EXISTS task_records_by_group ON task_records "
                     "(cluster, grp)")

    def close(self) -> None:
        self._db.close()

    def rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        """One statement's rows (also for the store's other tables: store/kube.py)."""
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def execute(self, sql: str, args: tuple = ()) -> None:
        with self._lock:
            self._db.execute(sql, args)

    @contextlib.contextmanager
    def locked(self) -> Iterator[sqlite3.Connection]:
        """The connection, held for several statements that must not interleave."""
        with self._lock:
            yield self._db

    @staticmethod
    def _where(sql: str, *conditions: tuple[str, Any]) -> tuple[str, tuple]:
        """sql plus ` AND <condition>` for each condition whose value is not None; a
        condition is written with `?` for its value, e.g. ("family=?", family)."""
        args = []
        for clause, value in conditions:
            if value is not None:
                sql += f" AND {clause}"
                args.append(value)
        return sql, tuple(args)

    # clusters
    def put_cluster(self, name: str, region: str, doc: dict[str, Any]) -> None:
        self.execute("INSERT OR REPLACE INTO clusters VALUES (?,?,?,?)",
                   (name, region, doc["status"], json.dumps(doc)))

    def get_cluster(self, name: str) -> dict[str, Any] | None:
        rows = self.rows("SELECT doc FROM clusters WHERE name=?", (name,))
        return json.loads(rows[0][0]) if rows else None

    def list_clusters(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self.rows("SELECT doc FROM clusters ORDER BY name")]

    # task definitions
    def next_revision(self, family: str) -> int:
        rows = self.rows("SELECT MAX(revision) FROM taskdefs WHERE family=?", (family,))
        return (rows[0][0] or 0) + 1

    def put_taskdef(self, doc: dict[str, Any]) -> None:
        self.execute("INSERT OR REPLACE INTO taskdefs VALUES (?,?,?,?,?)",
                   (doc["family"], doc["revision"], doc["status"], doc["registeredAt"],
                    json.dumps(doc)))

    def get_taskdef(self, family: str, revision: int | None) -> dict[str, Any] | None:
        if revision is None:
            rows = self.rows("SELECT doc FROM taskdefs WHERE family=? AND status='ACTIVE' "
                              "ORDER BY revision DESC LIMIT 1", (family,))
        else:
            rows = self.rows("SELECT doc FROM taskdefs WHERE family=? AND revision=?",
                              (family, revision))
        return json.loads(rows[0][0]) if rows else None

    def list_taskdefs(self, family: str | None, status: str | None,
                      descending: bool) -> list[tuple[str, int]]:
        sql, args = self._where("SELECT family, revision FROM taskdefs WHERE 1=1",
                                ("family=?", family or None), ("status=?", status or None))
        order = "DESC" if descending else "ASC"
        sql += f" ORDER BY family {order}, revision {order}"
        return [(r[0], r[1]) for r in self.rows(sql, args)]

    def list_families(self, prefix: str | None, status: str | None) -> list[str]:
        rows = self.rows("SELECT family, MAX(status='ACTIVE') FROM taskdefs GROUP BY family "
                          "ORDER BY family")
        out = []
        for family, any_active in rows:
            if prefix and not family.startswith(prefix):
                continue
            if status == "ACTIVE" and not any_active:
                continue
            if status == "INACTIVE" and any_active:
                continue
            out.append(family)
        return out

    # tasks: the record as it is, plus the columns the listings filter on
    def put_task(self, task: Task) -> None:
        # An upsert, not INSERT OR REPLACE: that deletes and re-inserts the row, updating
        # every index twice (measured: 115 vs 51 us a write; a start writes its task ~6 times).
        self.execute(
            "INSERT INTO task_records (id, cluster, family, started_by, desired, last, "
            "launch_type, created, stopped, record, grp) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT(id) DO UPDATE SET cluster=excluded.cluster, family=excluded.family, "
            "started_by=excluded.started_by, desired=excluded.desired, last=excluded.last, "
            "launch_type=excluded.launch_type, created=excluded.created, "
            "stopped=excluded.stopped, record=excluded.record, grp=excluded.grp",
            (task.id, task.cluster_arn.rsplit("/", 1)[-1], task.family, task.started_by,
             task.desired_status, task.last_status, task.launch_type, task.created_at,
             task.stopped_at, _encode(task), task.group))

    def get_task(self, task_id: str) -> Task | None:
        rows = self.rows("SELECT record FROM task_records WHERE id=?", (task_id,))
        return _decode(rows[0][0]) if rows else None

    def get_tasks(self, ids: list[str]) -> dict[str, Task]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.rows(f"SELECT id, record FROM task_records WHERE id IN ({marks})",
                          tuple(ids))
        return {r[0]: _decode(r[1]) for r in rows}

    def list_task_ids(self, cluster: str, *, family: str | None = None,
                      started_by: str | None = None, desired: str | None = None,
                      launch_type: str | None = None, group: str | None = None) -> list[str]:
        sql, args = self._where("SELECT id FROM task_records WHERE 1=1",
                                ("cluster=?", cluster), ("family=?", family),
                                ("started_by=?", started_by), ("desired=?", desired),
                                ("launch_type=?", launch_type), ("grp=?", group))
        return [r[0] for r in self.rows(sql + " ORDER BY created, id", args)]

    def group_tasks(self, cluster: str, group: str, stopped_of: str | None = None,
                    stopped_since: float = 0.0) -> list[Task]:
        """The tasks of a group (a service's: "service:NAME") not yet STOPPED, and the
        STOPPED ones started by `stopped_of` (a deployment) since `stopped_since`."""
        rows = self.rows("SELECT record FROM task_records WHERE cluster=? AND grp=? AND "
                         "(last != 'STOPPED' OR (started_by=? AND stopped >= ?)) "
                         "ORDER BY created, id", (cluster, group, stopped_of, stopped_since))
        return [_decode(r[0]) for r in rows]

    def active_tasks(self) -> list[Task]:
        rows = self.rows("SELECT record FROM task_records WHERE last != 'STOPPED' "
                          "ORDER BY created")
        return [_decode(r[0]) for r in rows]

    def active_pod_tasks(self) -> list[Task]:
        """The active tasks the scheduler started for pods (startedBy eks:<cluster>), and any
        other a user so named: the caller checks task.pod. Skips decoding ECS tasks."""
        rows = self.rows("SELECT record FROM task_records WHERE last != 'STOPPED' "
                          "AND started_by LIKE 'eks:%' ORDER BY created")
        return [_decode(r[0]) for r in rows]

    def count_tasks(self, cluster: str, last: str | None = None,
                    not_last: str | None = None) -> int:
        sql, args = self._where("SELECT COUNT(*) FROM task_records WHERE 1=1",
                                ("cluster=?", cluster), ("last=?", last or None),
                                ("last!=?", not_last or None))
        return int(self.rows(sql, args)[0][0])

    def stopped_before(self, before: float) -> list[str]:
        """Ids of tasks that reached STOPPED before `before` (epoch seconds)."""
        rows = self.rows("SELECT id FROM task_records WHERE last='STOPPED' AND stopped < ?",
                          (before,))
        return [r[0] for r in rows]

    def delete_tasks(self, ids: list[str], arns: list[str]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM task_records WHERE id=?", [(i,) for i in ids])
            self._db.executemany("DELETE FROM tags WHERE arn=?", [(a,) for a in arns])

    # idempotency tokens
    def get_token(self, token: str) -> tuple[str, dict[str, Any]] | None:
        rows = self.rows("SELECT request, arns FROM tokens WHERE token=?", (token,))
        return (rows[0][0], json.loads(rows[0][1])) if rows else None

    def put_token(self, token: str, request: str, outcome: dict[str, Any], now: float) -> None:
        self.execute("INSERT OR REPLACE INTO tokens VALUES (?,?,?,?)",
                   (token, request, json.dumps(outcome), now))

    def drop_tokens(self, before: float) -> None:
        self.execute("DELETE FROM tokens WHERE created < ?", (before,))

    # tags
    def get_tags(self, arn: str) -> list[dict[str, str]]:
        rows = self.rows("SELECT tags FROM tags WHERE arn=?", (arn,))
        return json.loads(rows[0][0]) if rows else []

    def put_tags(self, arn: str, tags: list[dict[str, str]]) -> None:
        self.execute("INSERT OR REPLACE INTO tags VALUES (?,?)", (arn, json.dumps(tags)))

    # secrets (Secrets Manager face)
    def get_secret(self, name: str) -> dict[str, Any] | None:
        rows = self.rows("SELECT doc FROM secrets WHERE name=?", (name,))
        return json.loads(rows[0][0]) if rows else None

    def put_secret(self, doc: dict[str, Any]) -> None:
        self.execute("INSERT OR REPLACE INTO secrets VALUES (?,?)", (doc["Name"], json.dumps(doc)))

    def delete_secret(self, name: str) -> None:
        self.execute("DELETE FROM secrets WHERE name=?", (name,))

    def list_secrets(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self.rows("SELECT doc FROM secrets ORDER BY name")]

    # access keys (long-lived for users, short-lived for task roles)
    def put_key(self, key_id: str, secret: str, principal: str, token: str | None,
                expires: float | None, now: float) -> None:
        self.execute("INSERT OR REPLACE INTO access_keys VALUES (?,?,?,?,?,?)",
                   (key_id, secret, principal, token, expires, now))

    def get_key(self, key_id: str) -> dict[str, Any] | None:
        rows = self.rows("SELECT secret, principal, token, expires FROM access_keys WHERE id=?",
                          (key_id,))
        if not rows:
            return None
        secret, principal, token, expires = rows[0]
        return {"id": key_id, "secret": secret, "principal": principal, "token": token,
                "expires": expires}

    def long_lived_keys(self) -> list[dict[str, Any]]:
        rows = self.rows("SELECT id FROM access_keys WHERE token IS NULL ORDER BY created")
        return [k for (kid,) in rows if (k := self.get_key(kid))]

    def drop_expired_keys(self, now: float) -> None:
        self.execute("DELETE FROM access_keys WHERE expires IS NOT NULL AND expires < ?", (now,))

    # small settings
    def get_meta(self, key: str) -> str | None:
        rows = self.rows("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def put_meta(self, key: str, value: str) -> None:
        self.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, value))

    # user-made networks and security groups (rowid keeps creation order)
    def put_net(self, table: str, obj_id: str, vpc: str, doc: dict[str, Any]) -> None:
        assert table in _NET_TABLES
        # An UPSERT, not REPLACE: a replaced row would get a new rowid and move in listings.
        self.execute(f"INSERT INTO {table} VALUES (?,?,?) ON CONFLICT(id) DO UPDATE SET "
                   "vpc=excluded.vpc, doc=excluded.doc", (obj_id, vpc, json.dumps(doc)))

    def get_net(self, table: str, obj_id: str) -> dict[str, Any] | None:
        assert table in _NET_TABLES
        rows = self.rows(f"SELECT doc FROM {table} WHERE id=?", (obj_id,))
        return json.loads(rows[0][0]) if rows else None

    def list_net(self, table: str, vpc: str | None = None) -> list[dict[str, Any]]:
        assert table in _NET_TABLES
        if vpc is None:
            rows = self.rows(f"SELECT doc FROM {table} ORDER BY rowid")
        else:
            rows = self.rows(f"SELECT doc FROM {table} WHERE vpc=? ORDER BY rowid", (vpc,))
        return [json.loads(r[0]) for r in rows]

    def delete_net(self, table: str, obj_id: str) -> None:
        assert table in _NET_TABLES
        self.execute(f"DELETE FROM {table} WHERE id=?", (obj_id,))


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Task)


def _encode(task: Task) -> bytes:
    return _encoder.encode(task)


def _decode(data: bytes | str) -> Task:
    return _decoder.decode(data)
