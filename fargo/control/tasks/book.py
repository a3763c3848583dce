"""The engine's shared ledger of tasks: records read from and written to the store, and the
wake-up events by which StopTask and container exits reach a task's driver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ...model import lifecycle
from ...model.taskrecord import Task
from ...store.sqlite import Store
from ..waits import wait_set


class TaskBook:
    def __init__(self, store: Store):
        self.store = store
        self._wake: dict[str, asyncio.Event] = {}
        # Told of every task written (the service scheduler looks again when one changes).
        self.listeners: list[Callable[[Task], None]] = []

    def fresh(self, tid: str) -> Task:
        """Re-read the record: StopTask may have changed desired_status meanwhile."""
        task = self.store.get_task(tid)
        assert task is not None, tid
        return task

    def save(self, task: Task) -> None:
        self.store.put_task(task)
        for listener in self.listeners:
            listener(task)

    def advance(self, task: Task, status: str) -> None:
        if lifecycle.advance(task, status, time.time()):
            self.save(task)

    def stopping(self, tid: str) -> bool:
        return self.fresh(tid).stopping

    def fail_start(self, tid: str, reason: str) -> Task:
        task = self.fresh(tid)
        lifecycle.request_stop(task, "TaskFailedToStart", reason, time.time())
        self.save(task)
        return task

    # ---- wake-ups
    def track(self, tid: str) -> None:
        self._wake[tid] = asyncio.Event()

    def untrack(self, tid: str) -> None:
        self._wake.pop(tid, None)

    def event(self, tid: str) -> asyncio.Event | None:
        return self._wake.get(tid)

    def poke(self, tid: str) -> None:
        ev = self._wake.get(tid)
        if ev:
            ev.set()

    async def wait(self, tid: str, timeout: float) -> None:
        """Until poked or timeout."""
        ev = self._wake.get(tid)
        if ev is None:
            await asyncio.sleep(timeout)
            return
        await wait_set(ev, timeout)
        ev.clear()


async def done_or_set(pending: asyncio.Future, event: asyncio.Event,
                      timeout: float | None = None) -> None:
    """Wait until pending is done or event is set (or timeout), cancelling neither."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({pending, waiter}, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
