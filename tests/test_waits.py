"""control/waits.py: a wait on an event that is set in the same turn as the waiter is
cancelled must end cancelled (Python 3.11's wait_for returned normally there)."""

from __future__ import annotations

import asyncio

import pytest

from fargo.control.waits import wait_set

pytestmark = pytest.mark.pure


async def _set_and_cancel_together() -> asyncio.Task[bool]:
    event = asyncio.Event()
    waiter = asyncio.ensure_future(wait_set(event, 10))
    await asyncio.sleep(0)  # the waiter is now waiting on the event
    event.set()
    waiter.cancel()  # in the same turn: the event's wake-up is already on its way
    await asyncio.gather(waiter, return_exceptions=True)
    return waiter


def test_a_cancel_that_meets_the_event_is_not_lost() -> None:
    waiter = asyncio.run(_set_and_cancel_together())
    assert waiter.cancelled()


def test_set_within_the_timeout_or_not() -> None:
    async def body() -> tuple[bool, bool, bool]:
        event = asyncio.Event()
        missed = await wait_set(event, 0.01)
        asyncio.get_running_loop().call_later(0.01, event.set)
        seen = await wait_set(event, 5)
        return missed, seen, event.is_set()

    assert asyncio.run(body()) == (False, True, True)
