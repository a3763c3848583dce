"""The task engine (control/tasks/) against the in-memory data plane: no root, no server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fargo.control.capacity import Capacity
from fargo.control.catalog import Catalog
from fargo.control.tasks import TaskEngine
from fargo.model.task import RunTaskRequest
from fargo.model.taskrecord import PodRef, RestartPolicy, Task
from fargo.model.vpc import default_vpc
from fargo.port.data import ContainerSpec
from fargo.port.errors import SandboxError
from fargo.store.sqlite import Store
from tests.fakeplane import FakePlane

pytestmark = pytest.mark.pure
REGION = "us-east-1"
VPC = default_vpc(REGION, "10.89.0.0/16")
SUBNET = VPC.subnets[0].id
CLUSTER = f"arn:aws:ecs:{REGION}:000000000000:cluster/default"


@pytest.fixture
def plane() -> Iterator[FakePlane]:
    p = FakePlane()
    p.images.add("busybox", {"Cmd": ["sh"], "Env": ["FROM_IMAGE=1"], "StopSignal": "SIGTERM"})
    yield p
    p.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


def taskdef(store: Store, **container: Any) -> dict[str, Any]:
    cdefs = container.pop("containers", None) or [{"name": "app", "image": "busybox",
                                                   **container}]
    role = {"executionRoleArn": "arn:aws:iam::000000000000:role/exec"} \
        if any(c.get("secrets") for c in cdefs) else {}
    return Catalog(store).register({
        "family": "web", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
        "cpu": "256", "memory": "512", "containerDefinitions": cdefs, **role},
        REGION)["taskDefinition"]


def engine(store: Store, plane: FakePlane, **kw: Any) -> TaskEngine:
    return TaskEngine(store, runtime=plane.runtime, images=plane.images,
                      network=plane.network, vpc=VPC, capacity=Capacity(4096, 8192), **kw)


def request(count: int = 1, **kw: Any) -> RunTaskRequest:
    return RunTaskRequest(task_definition="web", count=count, network_given=True,
                          subnets=(SUBNET,), **kw)


async def until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("timed out waiting")


async def status(eng: TaskEngine, tid: str, wanted: str) -> Task:
    def seen() -> Task | None:
        task = eng.get(tid)
        return task if task and task.last_status == wanted else None
    return await until(seen)


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 30))


def test_a_task_runs_and_stops_through_the_port(store: Store, plane: FakePlane) -> None:
    td = taskdef(store, environment=[{"name": "MINE", "value": "2"}])

    async def body() -> None:
        eng = engine(store, plane)
        await eng.start()
        [task] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        task = await status(eng, task.id, "RUNNING")
        assert task.interface.status == "ATTACHED" and task.interface.mac
        assert task.containers[0].image_digest and task.pull_started_at
        spec = plane.runtime.container(task.id, "app").spec
        assert spec.args == ["sh"]  # the image's Cmd
        assert spec.env["FROM_IMAGE"] == "1" and spec.env["MINE"] == "2"
        assert spec.env["ECS_CONTAINER_METADATA_URI_V4"].endswith(f"/v4/{task.id}-app")
        eng.stop_task(task.id, "bye")
        task = await status(eng, task.id, "STOPPED")
        assert task.stop_code == "UserInitiated" and task.stopped_reason == "bye"
        assert task.containers[0].exit_code == 143  # SIGTERM's default exit
        assert task.interface.status == "DELETED"
        assert ("destroy", (task.id,)) in [(c.method, c.args) for c in plane.calls]
        assert plane.calls_to("detach") == [(task.id,)]
        assert eng.placement.capacity.used == (0, 0)  # its share of the host went back
        await eng.close()

    run(body)


def test_an_essential_exit_stops_the_task(store: Store, plane: FakePlane) -> None:
    td = taskdef(store, containers=[
        {"name": "app", "image": "busybox"},
        {"name": "side", "image": "busybox", "essential": False}])

    async def body() -> None:
        eng = engine(store, plane)
        await eng.start()
        [task] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        await status(eng, task.id, "RUNNING")
        plane.runtime.exit(task.id, "side", 0)
        await until(lambda: eng.get(task.id).container("side").last_status == "STOPPED")
        assert eng.get(task.id).last_status == "RUNNING"  # a non-essential one may end
        plane.runtime.exit(task.id, "app", 3, oom=True)
        task = await status(eng, task.id, "STOPPED")
        assert task.stop_code == "EssentialContainerExited"
        assert task.container("app").exit_code == 3
        assert task.container("app").reason.startswith("OutOfMemoryError")
        await eng.close()

    run(body)


def test_a_container_that_ignores_its_stop_signal_is_killed(store: Store,
                                                           plane: FakePlane) -> None:
    td = taskdef(store, stopTimeout=1)

    async def body() -> None:
        eng = engine(store, plane)
        await eng.start()
        [task] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        await status(eng, task.id, "RUNNING")
        container = plane.runtime.container(task.id, "app")
        container.ignored.add("SIGTERM")
        began = time.monotonic()
        eng.stop_task(task.id, None)
        task = await status(eng, task.id, "STOPPED")
        assert 0.9 <= time.monotonic() - began < 4
        assert container.signals == ["SIGTERM", "SIGKILL"]
        assert task.containers[0].exit_code == 137
        await eng.close()

    run(body)


def test_the_tasks_of_one_call_pull_once_even_one_at_a_time(store: Store,
                                                           plane: FakePlane) -> None:
    """With one start at a time the pulls never overlap: only the call's sharing merges them."""
    td = taskdef(store)

    async def body() -> None:
        eng = engine(store, plane, start_concurrency=1)
        await eng.start()
        tasks = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION,
                             req=request(count=3)).tasks
        for t in tasks:
            await status(eng, t.id, "RUNNING")
        assert len(plane.calls_to("pull")) == 1
        [other] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        await status(eng, other.id, "RUNNING")
        assert len(plane.calls_to("pull")) == 2  # another call resolves the tag anew
        await eng.close()

    run(body)


def test_failed_pull_and_failed_dependency_fail_the_start(store: Store,
                                                         plane: FakePlane) -> None:
    missing = taskdef(store, image="nope")
    deps = taskdef(store, containers=[
        {"name": "init", "image": "busybox", "essential": False},
        {"name": "app", "image": "busybox",
         "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}]}])

    async def body() -> None:
        eng = engine(store, plane)
        await eng.start()
        [t1] = eng.run_task(td=missing, cluster_arn=CLUSTER, region=REGION,
                            req=request()).tasks
        t1 = await status(eng, t1.id, "STOPPED")
        assert t1.stop_code == "TaskFailedToStart"
        assert t1.stopped_reason.startswith("CannotPullContainerError")
        assert t1.containers[0].reason.startswith("CannotPullContainerError")
        [t2] = eng.run_task(td=deps, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        await until(lambda: plane.runtime.running(t2.id) == ["init"])
        plane.runtime.exit(t2.id, "init", 1)
        t2 = await status(eng, t2.id, "STOPPED")
        assert "a dependency of container 'app' did not succeed" in t2.stopped_reason
        await eng.close()

    run(body)


def test_a_data_plane_failure_fails_the_start_with_its_message(store: Store,
                                                              plane: FakePlane) -> None:
    td = taskdef(store)

    async def body() -> None:
        eng = engine(store, plane)
        await eng.start()
        plane.fail("start_container", SandboxError("runc start: no such thing"))
        [task] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        task = await status(eng, task.id, "STOPPED")
        assert task.stopped_reason == "CannotStartContainerError: runc start: no such thing"
        assert eng.placement.capacity.used == (0, 0)
        await eng.close()

    run(body)


def test_a_restarted_engine_adopts_running_tasks_and_redoes_half_made_starts(
        store: Store, plane: FakePlane) -> None:
    td = taskdef(store)

    async def body() -> None:
        first = engine(store, plane)
        await first.start()
        [running] = first.run_task(td=td, cluster_arn=CLUSTER, region=REGION,
                                   req=request()).tasks
        await status(first, running.id, "RUNNING")
        plane.images.hold("busybox")  # the next start hangs in its pull...
        [half] = first.run_task(td=td, cluster_arn=CLUSTER, region=REGION,
                                req=request()).tasks
        await status(first, half.id, "ACTIVATING")
        await first.close()  # ...when the server goes away
        plane.images.release("busybox")
        second = engine(store, plane)
        await second.start()
        redone = await status(second, half.id, "RUNNING")  # its start was made again
        assert redone.desired_status == "RUNNING" and redone.interface.status == "ATTACHED"
        assert (half.id,) in plane.calls_to("destroy")  # what the first try left went first
        assert second.get(running.id).last_status == "RUNNING"  # adopted, not restarted
        assert [a[0] for a in plane.calls_to("create_container")] == [running.id, half.id]
        plane.runtime.exit(running.id, "app", 0)  # its exit is still noticed
        done = await status(second, running.id, "STOPPED")
        assert done.stop_code == "EssentialContainerExited"
        await second.close()

    run(body)


def test_a_pods_container_comes_back_by_its_restart_policy(store: Store,
                                                          plane: FakePlane) -> None:
    td = {"family": "eks-demo", "taskDefinitionArn": "arn:aws:eks:pod/demo/ns/p",
          "containerDefinitions": [{"name": "app", "image": "busybox", "essential": False}]}

    async def body() -> None:
        eng = engine(store, plane)
        await eng.start()
        task, why = eng.run_sized(td=td, cluster_arn=CLUSTER, region=REGION, cpu=256,
                                  memory=512, subnet_ids=[SUBNET],
                                  restart=RestartPolicy("Always", []),
                                  pod=PodRef("demo", "ns", "p", "uid-1"), started_by="eks")
        assert task is not None and why is None
        await status(eng, task.id, "RUNNING")
        plane.runtime.exit(task.id, "app", 1)
        again = await until(lambda: (t := eng.get(task.id)) and t.containers[0].run
                            and t.containers[0].run.restart_count == 1
                            and t.containers[0].last_status == "RUNNING" and t)
        assert again.containers[0].run.last.exit_code == 1
        assert len(plane.calls_to("create_container")) == 2
        eng.stop_task(task.id, "Pod deleted", grace=0)
        await status(eng, task.id, "STOPPED")
        await eng.close()

    run(body)


def test_a_start_whose_containers_began_is_not_run_twice(store: Store,
                                                        plane: FakePlane) -> None:
    td = taskdef(store, containers=[
        {"name": "init", "image": "busybox", "essential": False},
        {"name": "app", "image": "busybox",
         "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}]}])

    async def body() -> None:
        first = engine(store, plane)
        await first.start()
        [task] = first.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        await until(lambda: plane.runtime.running(task.id) == ["init"])  # app waits on it
        await first.close()  # the server dies while the task is ACTIVATING
        assert first.get(task.id).last_status == "ACTIVATING"
        second = engine(store, plane)
        await second.start()
        done = await status(second, task.id, "STOPPED")
        assert done.stop_code == "TaskFailedToStart"
        assert "a start is not run twice" in done.stopped_reason
        assert len(plane.calls_to("create_container")) == 1  # init ran once, app never
        await second.close()

    run(body)


def test_a_container_the_record_missed_is_stopped_properly(store: Store,
                                                          plane: FakePlane) -> None:
    """The server died between starting a container and writing it down: the runtime says it
    may have run, so the start is not redone, and the container gets its stop signal."""
    td = taskdef(store)

    async def body() -> None:
        first = engine(store, plane)
        await first.start()
        plane.images.hold("busybox")
        [task] = first.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        await status(first, task.id, "ACTIVATING")
        await first.close()
        plane.images.release("busybox")
        image = plane.images.pull("busybox", None)
        plane.runtime.create_container(task.id, ContainerSpec(name="app", args=["sh"]), image)
        plane.runtime.start_container(task.id, "app")  # ...and then the crash
        container = plane.runtime.container(task.id, "app")
        second = engine(store, plane)
        await second.start()
        done = await status(second, task.id, "STOPPED")
        assert "a start is not run twice" in done.stopped_reason
        assert container.signals == ["SIGTERM"] and done.containers[0].exit_code == 143
        await second.close()

    run(body)


def test_first_containers_are_created_ahead_but_start_only_once_the_interface_is_up(
        store: Store, plane: FakePlane) -> None:
    td = taskdef(store, containers=[
        {"name": "app", "image": "busybox"},
        {"name": "late", "image": "busybox",
         "dependsOn": [{"containerName": "app", "condition": "START"}]}])

    async def body() -> None:
        eng = engine(store, plane)
        await eng.start()
        [task] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        await status(eng, task.id, "RUNNING")
        order = [(c.method, c.args[1].name if c.method == "create_container" else
                  c.args[1] if c.method == "start_container" else None)
                 for c in plane.calls if c.method in (
                     "pin", "attach", "create_container", "start_container")]
        assert order.index(("pin", None)) < order.index(("create_container", "app"))
        # The interface is made once the first container's monitor is under way.
        assert order.index(("create_container", "app")) < order.index(("attach", None))
        assert order.index(("attach", None)) < order.index(("start_container", "app"))
        # A container with a dependency is made only once it holds, as before.
        assert order.index(("start_container", "app")) < order.index(("create_container", "late"))
        assert [c[0] for c in order].count("create_container") == 2  # none made twice
        await eng.close()

    run(body)


def test_a_create_ahead_that_fails_before_its_monitor_runs_still_ends_the_start(
        store: Store, plane: FakePlane) -> None:
    # The interface waits for the first container's monitor; a create that fails before
    # one ever ran must not leave the start waiting.
    td = taskdef(store)

    async def body() -> None:
        eng = engine(store, plane)
        await eng.start()
        plane.fail("create_container", SandboxError("creating container app: runc said no"))
        [task] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        task = await status(eng, task.id, "STOPPED")
        assert task.stopped_reason == ("CannotStartContainerError: creating container app: "
                                       "runc said no")
        assert plane.calls_to("start_container") == []
        assert (task.id,) in plane.calls_to("destroy")
        assert eng.placement.capacity.used == (0, 0)
        await eng.close()

    run(body)


def test_a_failed_attach_removes_the_containers_made_ahead_unstarted(
        store: Store, plane: FakePlane) -> None:
    td = taskdef(store)
    plane.fail("attach", SandboxError("no veth for you"))

    async def body() -> None:
        eng = engine(store, plane)
        await eng.start()
        [task] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        task = await status(eng, task.id, "STOPPED")
        assert task.stop_code == "TaskFailedToStart"
        assert task.stopped_reason.startswith("ResourceInitializationError: ")
        assert plane.calls_to("start_container") == []  # nothing ran without its network
        assert (task.id,) in plane.calls_to("destroy")
        assert plane.calls_to("detach") == [(task.id,)]  # the pinned netns goes too
        await eng.close()

    run(body)
