"""User namespace ranges: the one the next claim takes is made ahead when asked, in the
background, and a claim that finds it made takes it without making another."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from fargo.agent import userns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for user namespaces")


def _owner(path: Path) -> Path:
    path.mkdir()
    (path / "task.json").write_text("{}")
    return path


def test_the_next_range_is_made_ahead_once_asked(tmp_path: Path) -> None:
    slots = tmp_path / "slots"
    slots.mkdir()
    # Slots below a random one held by a live owner: the ranges this test makes are ones no
    # other test of this process has made.
    low = random.randrange(1000, userns.MAX_SLOTS - 10)
    alive = _owner(tmp_path / "other")
    for slot in range(low):
        (slots / str(slot)).write_text(str(alive))
    slot = userns.claim_slot(slots, _owner(tmp_path / "task"))
    assert slot == low
    ahead = userns.base_of(low + 1)
    assert not userns.made(userns.base_of(low)) and not userns.made(ahead)
    userns.warm_next(slots)
    deadline = time.monotonic() + 10
    while not userns.made(ahead):
        assert time.monotonic() < deadline, "the next range was not made ahead"
        time.sleep(0.01)
    assert not userns.made(userns.base_of(low))  # the claimed one is not guessed at
    fd = userns.userns_fd(ahead)  # the next claim's take: the one made ahead, not another
    assert userns.userns_fd(ahead) == fd
    assert os.readlink(f"/proc/self/fd/{fd}").startswith("user:[")
    userns.release_slot(slots, slot, tmp_path / "task")
