"""The log shipper (control/logship.py) over the in-memory data plane and an in-memory
CloudWatch Logs: offsets committed with the events, a shipper that dies mid-way and a new one
that resumes ship every line exactly once, stopped tasks read to their end, retention held."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from fargo.control.logship import LogShipper
from fargo.control.logsink import Event
from fargo.control.tasks.retention import Retention
from fargo.model.errors import ResourceNotFoundException
from fargo.model.logconfig import LogRoute
from fargo.model.taskrecord import Interface, Task
from fargo.store.sqlite import Store
from tests.fakeplane import FakePlane
from tests.test_logconfig_model import T0, line


class MemorySink:
    """CloudWatch Logs in a dict: events and the source's offset change together."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, list[Event]]] = {}
        self.offsets: dict[str, int] = {}
        self.fail_after: int | None = None  # ships that succeed before the next raises

    def group_exists(self, region: str, group: str) -> bool:
        return group in self.groups

    def ensure_group(self, region: str, group: str) -> None:
        self.groups.setdefault(group, {})

    def ensure_stream(self, region: str, group: str, stream: str) -> None:
        if group not in self.groups:
            raise ResourceNotFoundException("The specified log group does not exist.")
        self.groups[group].setdefault(stream, [])

    def shipped(self, source: str) -> int:
        return self.offsets.get(source, 0)

    def ship(self, region: str, group: str, stream: str, events: Sequence[Event],
             source: str, offset: int) -> None:
        if self.fail_after is not None:
            if self.fail_after == 0:
                raise RuntimeError("killed")
            self.fail_after -= 1
        if stream not in self.groups.get(group, {}):
            raise ResourceNotFoundException("The specified log stream does not exist.")
        self.groups[group][stream].extend(events)
        self.offsets[source] = offset

    def forget_source(self, source: str) -> None:
        self.offsets.pop(source, None)


def task(tid: str, routes: list[LogRoute], status: str = "RUNNING") -> Task:
    return Task(id=tid, arn=f"arn:task/{tid}", cluster_arn="arn:cluster/default",
                task_definition_arn="arn:td", family="f", region="us-east-1", cpu=256,
                memory=512, created_at=0.0, availability_zone="us-east-1a",
                interface=Interface("a", "eni-1", "subnet-1", "10.0.0.5", "ip"),
                containers=[], plan=[], last_status=status,
                stopped_at=1.0 if status == "STOPPED" else None, log_routes=routes)


def route(tid: str, start: str | None = None) -> LogRoute:
    return LogRoute(container="app", source=f"{tid}/app", region="us-east-1", group="g",
                    stream=f"ecs/app/{tid}", start_pattern=start)


@pytest.fixture
def world(tmp_path: Path):
    plane = FakePlane()
    store = Store(tmp_path / "state.db")
    sink = MemorySink()
    sink.ensure_group("us-east-1", "g")
    yield plane, store, sink
    store.close()
    plane.close()


def shipper(world, clock: float = T0 + 100.0) -> LogShipper:
    plane, store, sink = world
    return LogShipper(sink, plane.runtime, store, clock=lambda: clock)


def messages(sink: MemorySink, tid: str) -> list[str]:
    return [e.message for e in sink.groups["g"].get(f"ecs/app/{tid}", [])]


def run(coro):
    return asyncio.run(coro)


def test_lines_ship_with_their_offset(world):
    plane, store, sink = world
    sink.ensure_stream("us-east-1", "g", "ecs/app/t1")
    data = b"".join(line(f"n{i}", nanos=i * 1_000_000) for i in range(50))
    plane.runtime.write_log("t1", "app", data)
    s = shipper(world)
    s.task_changed(task("t1", [route("t1")]))
    run(s.pass_once())
    assert messages(sink, "t1") == [f"n{i}" for i in range(50)]
    assert [e.timestamp for e in sink.groups["g"]["ecs/app/t1"][:2]] == [T0 * 1000, T0 * 1000 + 1]
    assert sink.offsets["t1/app"] == len(data)
    assert s.pending("t1")  # running: more may come
    plane.runtime.write_log("t1", "app", line("later"))
    run(s.pass_once())
    assert messages(sink, "t1")[-1] == "later"


def test_a_shipper_killed_mid_way_and_a_new_one_ship_each_line_once(world):
    plane, store, sink = world
    sink.ensure_stream("us-east-1", "g", "ecs/app/t2")
    lines = [line(f"INFO {i}") if i % 3 == 0 else line(f"  more {i}") for i in range(45_000)]
    plane.runtime.write_log("t2", "app", b"".join(lines))
    first = shipper(world)
    first.task_changed(task("t2", [route("t2", "^INFO")]))
    sink.fail_after = 1  # one batch goes in, then the server dies
    run(first.pass_once())
    assert 0 < sink.offsets["t2/app"] < sum(map(len, lines))
    sink.fail_after = None
    second = shipper(world)  # a new server: the offset from the sink
    second.task_changed(task("t2", [route("t2", "^INFO")], status="STOPPED"))
    while second.pending("t2"):
        run(second.pass_once())
    got = messages(sink, "t2")
    assert got == [f"INFO {i}\n  more {i + 1}\n  more {i + 2}\n" for i in range(0, 45_000, 3)]


def test_stopped_tasks_are_read_to_their_end_and_held_until_then(world):
    plane, store, sink = world
    sink.ensure_stream("us-east-1", "g", "ecs/app/t3")
    plane.runtime.write_log("t3", "app", line("whole") + line("no end", tag="P"))
    stopped = task("t3", [route("t3")], status="STOPPED")
    store.put_task(stopped)
    s = shipper(world, clock=T0)  # the partial line is not idle yet: only its task's end
    s.load()
    retention = Retention(store, plane.runtime, retention=0.0)
    retention.hold, retention.gone = s.pending, s.forgotten
    assert s.pending("t3") and retention.sweep(now=10.0) == 0  # not forgotten yet
    run(s.pass_once())
    assert messages(sink, "t3") == ["whole", "no end"]
    run(s.pass_once())
    assert not s.pending("t3")
    assert retention.sweep(now=10.0) == 1
    assert "t3/app" not in sink.offsets  # its offset forgotten with it


def test_a_deleted_stream_is_made_again_a_missing_group_waits(world):
    plane, store, sink = world
    sink.ensure_stream("us-east-1", "g", "ecs/app/t4")
    s = shipper(world)
    s.task_changed(task("t4", [route("t4")]))
    plane.runtime.write_log("t4", "app", line("one"))
    run(s.pass_once())
    del sink.groups["g"]["ecs/app/t4"]
    plane.runtime.write_log("t4", "app", line("two"))
    run(s.pass_once())
    assert messages(sink, "t4") == ["two"]  # a new stream, as the user deleted the old one
    del sink.groups["g"]
    plane.runtime.write_log("t4", "app", line("three"))
    run(s.pass_once())
    assert not s.pending("t4")  # blocked: retention does not wait for a group that is gone
    assert sink.offsets["t4/app"] < len(line("one") + line("two") + line("three"))
