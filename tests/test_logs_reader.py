"""Reading container logs through the port (control/logs.py), against the in-memory plane."""

from __future__ import annotations

import asyncio

import pytest

from fargo.control import logs as logmod
from fargo.control.logs import LogCursor
from fargo.port.data import SandboxSpec
from tests.fakeplane import FakePlane

pytestmark = pytest.mark.pure


def test_lines_end_as_in_text_mode_and_wait_for_their_end() -> None:
    plane = FakePlane()
    plane.runtime.create_sandbox("t", SandboxSpec(256, 512))
    cursor = LogCursor(plane.runtime, "t", "app")
    assert cursor.lines() == [] and not cursor.exists
    plane.runtime.write_log("t", "app", b"a\r\nb\rc\nhalf")
    assert cursor.lines() == ["a\n", "b\n", "c\n"] and cursor.exists
    plane.runtime.write_log("t", "app", b" done\r")
    assert cursor.lines() == []  # a \r at the end may be half of \r\n
    plane.runtime.write_log("t", "app", b"\nlast")
    assert cursor.lines() == ["half done\n"]
    assert cursor.rest() == ["last"]
    plane.close()


def test_a_long_log_comes_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logmod, "BATCH", 1000)
    monkeypatch.setattr(logmod, "CHUNK", 100)
    plane = FakePlane()
    line = b"x" * 49 + b"\n"
    plane.runtime.write_log("t", "app", line * 100)  # 5,000 bytes: five batches
    cursor = LogCursor(plane.runtime, "t", "app")
    first = cursor.lines()
    assert len(first) == 20 and cursor.more
    assert len(first) + len(cursor.all_lines()) == 100 and not cursor.more

    async def follow_all() -> list[str]:
        fresh = LogCursor(plane.runtime, "t", "app")
        reader = logmod.ContainerLogs(store=None, runtime=plane.runtime)  # type: ignore[arg-type]
        return [line async for line in reader.follow(fresh, follow=False)]

    assert len(asyncio.run(follow_all())) == 100
    plane.close()
