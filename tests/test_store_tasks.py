"""Task records in the store: a reader gets what was last written, and the listings find a
task by the columns of its last write."""

from __future__ import annotations

from pathlib import Path

import pytest

from fargo.model.task import TaskIds, new_task
from fargo.model.taskrecord import Task
from fargo.model.vpc import default_vpc
from fargo.store.sqlite import Store

pytestmark = pytest.mark.pure
REGION = "us-east-1"
SUBNET = default_vpc(REGION, "10.89.0.0/16").subnets[0]
CLUSTER = f"arn:aws:ecs:{REGION}:000000000000:cluster/default"


def record(tid: str) -> Task:
    td = {"taskDefinitionArn": f"arn:aws:ecs:{REGION}:000000000000:task-definition/f:1",
          "family": "f", "cpu": "256", "memory": "512",
          "containerDefinitions": [{"name": "app", "image": "busybox"}]}
    return new_task(td=td, cluster_arn=CLUSTER, region=REGION, cpu=256, memory=512,
                    overrides={}, subnet=SUBNET, ip="10.89.0.9", groups=[], group=None,
                    started_by=None, now=1.0, capacity_provider=None,
                    ids=TaskIds(tid, "att", "eni-1", "cred", ("c0",)))


def test_a_task_reads_back_as_last_written_and_never_as_a_shared_object(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    task = record("t1")
    store.put_task(task)
    first = store.get_task("t1")
    assert first == task and first is not task
    first.desired_status = "STOPPED"  # a reader's change is not the store's
    assert store.get_task("t1").desired_status == "RUNNING"
    task.desired_status = "STOPPED"
    store.put_task(task)
    assert store.get_task("t1").desired_status == "STOPPED"
    assert store.get_tasks(["t1", "nope"])["t1"].desired_status == "STOPPED"
    store.delete_tasks(["t1"], [task.arn])
    assert store.get_task("t1") is None and store.get_tasks(["t1"]) == {}
    store.close()


def test_a_rewritten_task_is_found_by_its_new_columns_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    task = record("t1")
    store.put_task(task)
    assert store.list_task_ids("default", desired="RUNNING") == ["t1"]
    task.desired_status, task.last_status, task.stopped_at = "STOPPED", "STOPPED", 5.0
    store.put_task(task)  # the same row, updated in place
    assert store.list_task_ids("default", desired="RUNNING") == []
    assert store.list_task_ids("default", desired="STOPPED") == ["t1"]
    assert store.stopped_before(6.0) == ["t1"] and store.stopped_before(4.0) == []
    reopened = Store(tmp_path / "state.db")
    assert reopened.get_task("t1") == task
    reopened.close()
    store.close()
