"""Waiting on an event with a timeout, without losing a cancellation.

On Python 3.11, `asyncio.wait_for` returns the inner result when the inner wait completes in
the same turn of the loop as a cancellation of the waiter, and the cancellation is lost: a
loop that is being closed then waits on as if nothing happened (seen as an engine close that
hung under load, its task driver poked just as it was cancelled). `asyncio.timeout` has no
inner task, so the cancellation is raised where it belongs.
"""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, timeout: float) -> bool:
    """Whether event is set within timeout seconds (then it is left set)."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
