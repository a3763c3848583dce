"""Container health checks in the task engine (control/tasks/health.py) against the in-memory
data plane: the fake decides each check's outcome, and a check's second is shrunk to 10 ms."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fargo.control.tasks import TaskEngine
from fargo.model.healthcheck import task_health
from fargo.model.taskrecord import Task
from fargo.store.sqlite import Store
from tests.fakeplane import FakePlane
from tests.test_engine import CLUSTER, REGION, engine, request, run, status, taskdef, until

pytestmark = pytest.mark.pure
SECOND = 0.01  # one of a check's seconds, in these tests


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


def checked(command: str = "test -e /ok", **hc: Any) -> dict[str, Any]:
    return {"healthCheck": {"command": ["CMD-SHELL", command], "interval": 5, "timeout": 2,
                            "retries": 3, **hc}}


async def fast_engine(store: Store, plane: FakePlane, **kw: Any) -> TaskEngine:
    eng = engine(store, plane, **kw)
    eng.health.second = SECOND
    await eng.start()
    return eng


def writes(eng: TaskEngine, plane: FakePlane, name: str = "app") -> list[tuple[str, int]]:
    """Each change of the container's health as written: (health, checks run by then)."""
    seen: list[tuple[str, int]] = []
    save = eng.book.save

    def saving(task: Task) -> None:
        now = task.container(name).health_status
        if now != (seen[-1][0] if seen else "UNKNOWN"):
            seen.append((now, len(plane.calls_to("exec_check"))))
        save(task)

    eng.book.save = saving  # type: ignore[method-assign]
    return seen


def health(eng: TaskEngine, tid: str, name: str = "app") -> str:
    task = eng.get(tid)
    assert task is not None
    return task.container(name).health_status


def test_a_passing_check_makes_the_container_and_task_healthy(store: Store,
                                                              plane: FakePlane) -> None:
    td = taskdef(store, **checked("curl -f localhost || exit 1"))

    async def body() -> None:
        eng = await fast_engine(store, plane)
        [task] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        running = await status(eng, task.id, "RUNNING")
        assert running.container("app").health_status == "UNKNOWN"  # until the first result
        assert task_health(running) == "UNKNOWN"
        await until(lambda: health(eng, task.id) == "HEALTHY")
        healthy = eng.get(task.id)
        assert healthy is not None and task_health(healthy) == "HEALTHY"
        [call] = plane.calls_to("exec_check")[:1]
        assert call == (task.id, "app", ["/bin/sh", "-c", "curl -f localhost || exit 1"],
                        2 * SECOND)
        await until(lambda: len(plane.calls_to("exec_check")) >= 4)
        after = eng.get(task.id)
        assert after is not None and after.version == healthy.version  # written on change only
        eng.stop_task(task.id, None)
        stopped = await status(eng, task.id, "STOPPED")
        assert stopped.container("app").health_status == "HEALTHY"  # it keeps its last
        await eng.close()

    run(body)


def test_retries_failures_in_a_row_make_it_unhealthy_and_a_pass_heals(
        store: Store, plane: FakePlane) -> None:
    td = taskdef(store, **checked(retries=3))

    async def body() -> None:
        eng = await fast_engine(store, plane)
        seen = writes(eng, plane)
        [task] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        # Two failures and a pass; then retries failures (None: timed out), and a pass.
        plane.runtime.set_check(task.id, "app", 1, None, 0, 1, 7, None, 0)
        await status(eng, task.id, "RUNNING")
        await until(lambda: len(seen) == 3)
        assert seen == [("HEALTHY", 3), ("UNHEALTHY", 6), ("HEALTHY", 7)]
        await until(lambda: len(plane.calls_to("exec_check")) >= 9)
        assert len(seen) == 3  # passing on: nothing more is written
        plane.runtime.set_check(task.id, "app", 1)
        await until(lambda: health(eng, task.id) == "UNHEALTHY")
        unhealthy = eng.get(task.id)
        assert unhealthy is not None and task_health(unhealthy) == "UNHEALTHY"
        # A task run on its own keeps running, unhealthy (a service would replace it).
        await until(lambda: len(plane.calls_to("exec_check")) >= len(seen) + 12)
        unhealthy = eng.get(task.id)
        assert unhealthy is not None and unhealthy.last_status == "RUNNING"
        assert not unhealthy.stopping
        await eng.close()

    run(body)


def test_failures_within_the_start_period_do_not_count(store: Store,
                                                       plane: FakePlane) -> None:
    td = taskdef(store, **checked(retries=1, startPeriod=300))  # 3 s here: room on a busy host

    async def body() -> None:
        eng = await fast_engine(store, plane)
        [task] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        plane.runtime.set_check(task.id, "app", 1)
        await status(eng, task.id, "RUNNING")
        await until(lambda: len(plane.calls_to("exec_check")) >= 2)
        began = time.monotonic()
        assert health(eng, task.id) == "UNKNOWN"  # failing, but starting still
        await until(lambda: health(eng, task.id) == "UNHEALTHY")
        assert time.monotonic() - began < 300 * SECOND + 1
        await eng.close()

    run(body)


def test_depends_on_healthy_starts_the_dependent_once_its_target_passes(
        store: Store, plane: FakePlane) -> None:
    td = taskdef(store, containers=[
        {"name": "db", "image": "busybox", **checked(retries=1)},
        {"name": "app", "image": "busybox",
         "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}]}])

    async def body() -> None:
        eng = await fast_engine(store, plane)
        [task] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        plane.runtime.set_check(task.id, "db", 1, 1, 0)
        await until(lambda: health(eng, task.id, "db") == "UNHEALTHY")
        assert plane.runtime.running(task.id) == ["db"]  # app waits on it
        assert eng.get(task.id).last_status == "ACTIVATING"
        await status(eng, task.id, "RUNNING")
        assert health(eng, task.id, "db") == "HEALTHY"
        assert [a[1].name for a in plane.calls_to("create_container")] == ["db", "app"]
        await eng.close()

    run(body)


def test_depends_on_healthy_fails_the_start_when_its_target_ends(store: Store,
                                                                 plane: FakePlane) -> None:
    td = taskdef(store, containers=[
        {"name": "db", "image": "busybox", "essential": False, **checked()},
        {"name": "app", "image": "busybox",
         "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}]}])

    async def body() -> None:
        eng = await fast_engine(store, plane)
        [task] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        plane.runtime.set_check(task.id, "db", 1)
        await until(lambda: plane.runtime.running(task.id) == ["db"])
        plane.runtime.exit(task.id, "db", 0)
        stopped = await status(eng, task.id, "STOPPED")
        assert stopped.stop_code == "TaskFailedToStart"
        assert "a dependency of container 'app' did not succeed" in stopped.stopped_reason
        await eng.close()

    run(body)


def test_checks_go_on_after_a_restart_from_the_recorded_health(store: Store,
                                                               plane: FakePlane) -> None:
    td = taskdef(store, **checked(retries=2))

    async def body() -> None:
        first = await fast_engine(store, plane)
        [task] = first.run_task(td=td, cluster_arn=CLUSTER, region=REGION,
                                req=request()).tasks
        await until(lambda: health(first, task.id) == "HEALTHY")
        await first.close()
        await asyncio.sleep(0.05)  # a check the close cut short may still be returning
        plane.runtime.set_check(task.id, "app", 1)
        second = engine(store, plane)
        second.health.second = SECOND
        seen = writes(second, plane)
        calls = len(plane.calls_to("exec_check"))
        await second.start()
        assert health(second, task.id) == "HEALTHY"  # as recorded, until a verdict
        await until(lambda: seen)
        # Checked from the restart on: `retries` failures in a row make it UNHEALTHY.
        # (A check the first engine's close cut short may still land: at least two here.)
        [(status, at)] = seen
        assert status == "UNHEALTHY" and at >= calls + 2
        await second.close()

    run(body)


def test_containers_without_checks_are_never_probed(store: Store, plane: FakePlane) -> None:
    td = taskdef(store, containers=[
        {"name": "app", "image": "busybox", **checked()},
        {"name": "side", "image": "busybox", "essential": False}])

    async def body() -> None:
        eng = await fast_engine(store, plane)
        [task] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        await until(lambda: len(plane.calls_to("exec_check")) >= 3)
        assert {a[1] for a in plane.calls_to("exec_check")} == {"app"}
        assert health(eng, task.id, "side") == "UNKNOWN"
        await eng.close()

    run(body)


def test_checks_run_with_bounded_concurrency_and_a_gone_container_is_no_failure(
        store: Store, plane: FakePlane) -> None:
    td = taskdef(store, **checked(retries=1))
    inner = plane.runtime.exec_check
    lock = threading.Lock()
    now = {"running": 0, "most": 0}

    def slow_check(tid: str, name: str, argv: list[str], timeout: float) -> int | None:
        with lock:
            now["running"] += 1
            now["most"] = max(now["most"], now["running"])
        try:
            time.sleep(0.03)
            return inner(tid, name, argv, timeout)
        finally:
            with lock:
                now["running"] -= 1

    plane.runtime.exec_check = slow_check  # type: ignore[method-assign]

    async def body() -> None:
        eng = engine(store, plane)
        eng.health.second = SECOND
        eng.health.concurrency = 2
        await eng.start()
        tasks = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION,
                             req=request(count=6)).tasks
        for t in tasks:
            await until(lambda t=t: health(eng, t.id) == "HEALTHY")
        assert now["most"] == 2
        # A container that ended is not there to check: no failure is counted for it.
        plane.runtime.exit(tasks[0].id, "app", 0)
        await status(eng, tasks[0].id, "STOPPED")
        assert health(eng, tasks[0].id) == "HEALTHY"
        await eng.close()

    run(body)
