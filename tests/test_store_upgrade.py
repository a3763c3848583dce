"""A state dir written by an older server (tasks as ECS JSON plus a private part) opens as
task records, and each renders as the ECS JSON the older server showed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from fargo.api.ecs_render import task_json
from fargo.store.sqlite import Store

pytestmark = pytest.mark.pure
ROW = json.loads((Path(__file__).parent / "data" / "legacy_task_row.json").read_text())
OLD_SCHEMA = """CREATE TABLE tasks (
    id TEXT PRIMARY KEY, cluster TEXT NOT NULL, family TEXT NOT NULL, started_by TEXT,
    desired TEXT NOT NULL, last TEXT NOT NULL, launch_type TEXT NOT NULL,
    created REAL NOT NULL, doc TEXT NOT NULL, private TEXT NOT NULL DEFAULT '{}')"""


def _old_state(path: Path, rows: list[tuple[str, str, str]]) -> None:
    db = sqlite3.connect(path)
    db.execute(OLD_SCHEMA)
    for tid, doc, private in rows:
        db.execute("INSERT INTO tasks VALUES (?,?,?,?,?,?,?,?,?,?)",
                   (tid, "default", "web", None, "RUNNING", "RUNNING", "FARGATE", 1.0, doc,
                    private))
    db.commit()
    db.close()


def test_old_task_rows_become_records(tmp_path: Path) -> None:
    doc = ROW["doc"]
    tid = doc["taskArn"].rsplit("/", 1)[-1]
    _old_state(tmp_path / "state.db", [(tid, json.dumps(doc), json.dumps(ROW["private"]))])
    store = Store(tmp_path / "state.db")
    task = store.get_task(tid)
    assert task is not None
    shown = task_json(task)
    assert shown.pop("healthStatus") == "UNKNOWN"  # what the older server did not show yet
    assert shown == doc  # else the same ECS JSON as the older server showed
    assert task.ip == "10.89.0.9" and task.interface.groups == ["sg-123"]
    assert task.role == "arn:aws:iam::000000000000:role/app" and task.role_key == "ASIA1"
    assert task.plan[0]["command"] == ["sh"] and task.stop_timeout == 5
    assert task.restart is not None and task.restart.init == ["side"]
    run = task.container("app").run
    assert run is not None and run.restart_count == 2 and run.last and run.last.oom
    assert task.pod is not None and task.pod.name == "web"
    assert [t.id for t in store.active_tasks()] == [tid]
    store.close()
    tables = sqlite3.connect(tmp_path / "state.db").execute(
        "SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    assert ("tasks",) not in tables  # converted once


def test_unreadable_old_rows_are_kept_aside(tmp_path: Path) -> None:
    _old_state(tmp_path / "state.db", [("a" * 32, "{}", "{}")])
    store = Store(tmp_path / "state.db")
    assert store.active_tasks() == []
    store.close()
    rows = sqlite3.connect(tmp_path / "state.db").execute(
        "SELECT id FROM tasks_unread").fetchall()
    assert rows == [("a" * 32,)]
