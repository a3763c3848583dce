"""The sandbox tier on the ECS side, without root or a server: which platform versions are
taken, how RunTask and a service's deployments resolve them against the server's default,
that the record keeps the tier, and what the starter hands the data plane or refuses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fargo.api.ecs import run_task_request
from fargo.api.ecs_render import task_json
from fargo.model import service as svcrules
from fargo.model.errors import InvalidParameterException
from fargo.model.task import (
    RunTaskRequest,
    TaskIds,
    check_platform_version,
    check_run_task_params,
    new_task,
    sandbox_memory_mib,
    start_refusal,
)
from fargo.model.taskrecord import Task
from fargo.store.sqlite import Store
from tests.fakeplane import FakePlane
from tests.test_engine import CLUSTER, REGION, VPC, engine, status, taskdef

SUBNET = VPC.subnets[0]


def td(containers: list[dict[str, Any]], memory: str = "512") -> dict[str, Any]:
    return {"taskDefinitionArn": "arn:aws:ecs:us-east-1:000000000000:task-definition/f:1",
            "family": "f", "cpu": "256", "memory": memory, "containerDefinitions": containers}


def record(containers: list[dict[str, Any]], isolation: str, memory: int = 512) -> Task:
    ids = TaskIds("t1", "att", "eni-1", "cred", tuple(f"c{i}" for i in range(len(containers))))
    return new_task(td=td(containers), cluster_arn=CLUSTER, region=REGION, cpu=256,
                    memory=memory, overrides={}, subnet=SUBNET, ip="10.89.0.9", groups=[],
                    group=None, started_by=None, now=1.0, capacity_provider=None, ids=ids,
                    isolation=isolation)


@pytest.mark.parametrize("version", [None, "LATEST", "1.4.0", "1.4.0-gvisor"])
def test_the_platform_versions_fargo_runs_are_taken(version: str | None) -> None:
    check_platform_version(version)
    p = {"taskDefinition": "f"} if version is None else \
        {"taskDefinition": "f", "platformVersion": version}
    check_run_task_params(p)
    assert run_task_request(p).platform_version == version
    svcrules.check_params({"serviceName": "s", **p}, create=True)


@pytest.mark.parametrize("version", ["1.3.0", "", "gvisor", "1.4.0-GVISOR", "latest",
                                     "1.4.0-gvisor\x00"])
def test_other_platform_versions_are_refused_by_name(version: str) -> None:
    for call in (lambda: check_run_task_params({"taskDefinition": "f",
                                                "platformVersion": version}),
                 lambda: svcrules.check_params({"service": "s", "platformVersion": version},
                                               create=False)):
        with pytest.raises(InvalidParameterException, match="Platform version") as err:
            call()
        assert "1.4.0-gvisor" in err.value.message  # says what is taken


@pytest.mark.parametrize(("given", "default", "resolved"), [
    (None, "runc", "1.4.0"), ("LATEST", "runc", "1.4.0"), ("LATEST", "gvisor", "1.4.0-gvisor"),
    (None, "gvisor", "1.4.0-gvisor"), ("1.4.0", "gvisor", "1.4.0"),
    ("1.4.0-gvisor", "runc", "1.4.0-gvisor")])
def test_a_deployment_runs_the_resolved_version(given: str | None, default: str,
                                               resolved: str) -> None:
    assert svcrules.deployment_platform(given, default) == resolved


def test_describe_tasks_shows_the_tasks_tier() -> None:
    app = [{"name": "app", "image": "busybox"}]
    assert task_json(record(app, "gvisor"))["platformVersion"] == "1.4.0-gvisor"
    assert task_json(record(app, "runc"))["platformVersion"] == "1.4.0"


def test_the_tier_is_kept_by_the_store_and_old_records_read_as_runc(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    try:
        store.put_task(record([{"name": "app", "image": "busybox"}], "gvisor"))
        store.close()
        store = Store(tmp_path / "state.db")  # as after a restart
        assert store.get_task("t1").isolation == "gvisor"
        # A record an older server wrote has no isolation member.
        [(raw,)] = store.rows("SELECT record FROM task_records WHERE id='t1'")
        doc = json.loads(raw)
        del doc["isolation"]
        store.execute("UPDATE task_records SET record=? WHERE id='t1'", (json.dumps(doc),))
        assert store.get_task("t1").isolation == "runc"
    finally:
        store.close()


def test_gvisor_refuses_a_container_limit_below_the_tasks_among_several() -> None:
    two = [{"name": "app", "image": "busybox"},
           {"name": "side", "image": "busybox", "memory": 128}]
    why = start_refusal(record(two, "gvisor"))
    assert why is not None and len(why) <= 255
    assert why.startswith("ResourceInitializationError: the gvisor sandbox")
    assert "container side" in why
    assert start_refusal(record(two, "runc")) is None  # runc limits each container
    assert sandbox_memory_mib(record(two, "runc")) == 512
    # A limit equal to the task's, and soft reservations, are the sandbox's as a whole.
    even = [{"name": "app", "image": "busybox", "memory": 512},
            {"name": "side", "image": "busybox", "memoryReservation": 64}]
    assert start_refusal(record(even, "gvisor")) is None
    assert sandbox_memory_mib(record(even, "gvisor")) == 512


def test_a_lone_containers_limit_becomes_the_sandboxs() -> None:
    one = [{"name": "app", "image": "busybox", "memory": 300}]
    assert start_refusal(record(one, "gvisor")) is None
    assert sandbox_memory_mib(record(one, "gvisor")) == 300
    assert sandbox_memory_mib(record(one, "runc")) == 512  # runc: the container's own cgroup


# ---- through the engine, against the in-memory data plane

@pytest.fixture
def plane() -> Iterator[FakePlane]:
    p = FakePlane()
    p.images.add("busybox", {"Cmd": ["sh"]})
    yield p
    p.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


def request(version: str | None) -> RunTaskRequest:
    return RunTaskRequest(task_definition="web", network_given=True, subnets=(SUBNET.id,),
                          platform_version=version)


def test_run_task_resolves_the_tier_and_the_sandbox_gets_it(store: Store,
                                                            plane: FakePlane) -> None:
    tdef = taskdef(store, memory=300)

    async def body() -> None:
        eng = engine(store, plane, isolation="gvisor")
        await eng.start()
        seen = {}
        for version in (None, "LATEST", "1.4.0", "1.4.0-gvisor"):
            [task] = eng.run_task(td=tdef, cluster_arn=CLUSTER, region=REGION,
                                  req=request(version)).tasks
            seen[version] = await status(eng, task.id, "RUNNING")
        tiers = {v: t.isolation for v, t in seen.items()}
        assert tiers == {None: "gvisor", "LATEST": "gvisor", "1.4.0": "runc",
                         "1.4.0-gvisor": "gvisor"}
        specs = {v: plane.runtime.sandboxes[t.id].spec for v, t in seen.items()}
        assert {v: s.isolation for v, s in specs.items()} == tiers
        # Its only container's 300 MiB is the gVisor sandbox's limit; runc keeps the task's.
        assert specs["1.4.0-gvisor"].memory_mib == 300 and specs["1.4.0"].memory_mib == 512
        await eng.close()

    asyncio.run(asyncio.wait_for(body(), 30))


def test_a_refused_task_stops_before_anything_is_made(store: Store, plane: FakePlane) -> None:
    tdef = taskdef(store, containers=[{"name": "app", "image": "busybox"},
                                      {"name": "side", "image": "busybox", "memory": 128}])

    async def body() -> None:
        eng = engine(store, plane)
        await eng.start()
        [task] = eng.run_task(td=tdef, cluster_arn=CLUSTER, region=REGION,
                              req=request("1.4.0-gvisor")).tasks
        task = await status(eng, task.id, "STOPPED")
        assert task.stop_code == "TaskFailedToStart"
        assert task.stopped_reason.startswith("ResourceInitializationError: the gvisor sandbox")
        assert task.id not in plane.runtime.sandboxes and not plane.calls_to("create_sandbox")
        assert not plane.calls_to("attach") and not plane.calls_to("pull")
        assert eng.placement.capacity.used == (0, 0)
        # The same definition on runc runs.
        [task] = eng.run_task(td=tdef, cluster_arn=CLUSTER, region=REGION,
                              req=request("1.4.0")).tasks
        await status(eng, task.id, "RUNNING")
        await eng.close()

    asyncio.run(asyncio.wait_for(body(), 30))
