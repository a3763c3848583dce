"""A reconciler's pass loop: a pass soon after a poke, later for a poke that asks for a longer
wait, at once for an earlier one that comes meanwhile, and one pass for a burst."""

from __future__ import annotations

import asyncio
import logging

import pytest

from fargo.control.passloop import PassLoop

pytestmark = pytest.mark.pure


def test_pokes_and_their_waits() -> None:
    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        ran: list[float] = []

        async def run_pass() -> None:
            ran.append(loop.time())

        passes = PassLoop(run_pass, every=30.0, settle=0.02, log=logging.getLogger("t"),
                          what="test pass")
        passes.start()
        await asyncio.sleep(0.01)
        t0 = loop.time()
        for _ in range(5):  # a burst: one pass, a settle after the first
            passes.poke()
        await asyncio.sleep(0.1)
        passes.poke(1.5)  # only progress: not before 1.5 s...
        await asyncio.sleep(0.1)
        assert len(ran) == 1
        passes.poke()  # ... unless something that matters comes meanwhile
        await asyncio.sleep(0.3)
        passes.poke(0.5)
        await asyncio.sleep(1.0)
        await passes.close()
        return [t - t0 for t in ran]

    ran = asyncio.run(scenario())
    assert len(ran) == 3, ran
    assert 0.015 <= ran[0] < 0.1  # the burst
    assert 0.2 <= ran[1] < 0.45  # the urgent poke at 0.2 s, not the slow one's 1.6 s
    assert 1.0 <= ran[2] < 1.45  # the slow poke at 0.5 s + 0.5
