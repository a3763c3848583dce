"""Starts take turns: a few at a time, each to its end. Unbounded, a burst of n tasks queued
every task's first steps (network, storage) before any task's next ones on the shared thread
pool: no container was created until all n were half-made, and the server's work and runc's
did not overlap. A start holds its turn until its containers are created, gives it up while
it waits on a slow pull or a container dependency, and StopTask ends any of its waits."""

from __future__ import annotations

import asyncio
import time
from typing import TypeVar

from .book import TaskBook, done_or_set

SLOW_PULL_S = 2.0  # a start waiting longer than this on its pulls lets another start go
T = TypeVar("T")


class StartTurns:
    def __init__(self, book: TaskBook, concurrency: int):
        self.book = book
        self._sem = asyncio.Semaphore(concurrency)
        self._held: set[str] = set()

    def holds(self, tid: str) -> bool:
        return tid in self._held

    async def take(self, tid: str) -> bool:
        """Wait for a turn; False if the task is stopped meanwhile."""
        acquire = asyncio.ensure_future(self._sem.acquire())
        try:
            await self.until_stopped(tid, acquire)
        except asyncio.CancelledError:
            if acquire.done() and not acquire.cancelled():
                self._sem.release()  # got it just as we were cancelled
            else:
                acquire.cancel()
            raise
        if not acquire.done():
            acquire.cancel()  # stopped: the semaphore passes on a turn it was about to give
            return False
        self._held.add(tid)
        return True

    def end(self, tid: str) -> None:
        if tid in self._held:
            self._held.discard(tid)
            self._sem.release()

    async def off_turn(self, tid: str, pending: asyncio.Future[T]) -> T | None:
        """pending's result, or None when the task is stopped first. The turn is given up if
        that takes long: a slow registry must not keep other tasks from starting (a quick one
        keeps its place in the queue)."""
        gave_up = False
        if self.holds(tid) and not await self.until_stopped(tid, pending, SLOW_PULL_S):
            self.end(tid)
            gave_up = True
        if not await self.until_stopped(tid, pending):
            return None
        if gave_up and not await self.take(tid):
            return None
        return pending.result()

    async def until_stopped(self, tid: str, pending: asyncio.Future,
                            timeout: float | None = None) -> bool:
        """Wait until pending is done, the task is stopped, or timeout: True if it is done."""
        ev = self.book.event(tid)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not pending.done() and not self.book.stopping(tid):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            if ev is None:
                await asyncio.wait({pending}, timeout=left)
            else:
                ev.clear()
                await done_or_set(pending, ev, left)
        return pending.done()
