"""control/tasks/running.py: the running containers count their changes, and only changes."""

from __future__ import annotations

import pytest

from fargo.control.tasks.running import Running

pytestmark = pytest.mark.pure


def test_each_change_counts_once_and_reads_stay_a_dict() -> None:
    running = Running()
    running.add("t1", "app")
    running.add("t1", "app")  # already there: no change
    running.add("t1", "side")
    assert running.version == 2 and running == {"t1": {"app", "side"}}
    pairs = running.pairs()
    assert pairs == {("t1", "app"), ("t1", "side")} and running.pairs() is pairs  # kept
    running.discard("t1", "app")
    running.discard("t1", "app")
    running.discard("t2", "app")  # nothing of t2
    assert running.version == 3 and running.get("t1") == {"side"}
    assert running.pairs() == {("t1", "side")}  # made again after the change
    running.forget("t1")
    running.forget("t1")
    assert running.version == 4 and not running
