"""A level-triggered reconciler's loop: a pass at least every `every` seconds, and soon after a
poke (after `settle`, so a burst of changes is one pass; a poke may ask for a longer wait, and
the earliest asked for wins); a failing pass is logged and the loop goes on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from .waits import wait_set


class PassLoop:
    def __init__(self, run_pass: Callable[[], Awaitable[None]], every: float, settle: float,
                 log: logging.Logger, what: str):
        self.run_pass = run_pass
        self.every = every
        self.settle = settle
        self.log = log
        self.what = what
        self._wake = asyncio.Event()
        self._due: float | None = None  # when the poked pass runs (time.monotonic)
        self._task: asyncio.Task[None] | None = None

    def poke(self, settle: float | None = None) -> None:
        """A pass after settle seconds (the loop's own settle if None), or sooner if an
        earlier poke asked for that. Called on the event loop's thread, or before it runs."""
        due = time.monotonic() + (self.settle if settle is None else settle)
        if self._due is None or due < self._due:
            self._due = due
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await wait_set(self._wake, self.every)
            self._wake.clear()
            while self._due is not None and (left := self._due - time.monotonic()) > 0:
                if await wait_set(self._wake, left):  # a poke: maybe one due sooner
                    self._wake.clear()
            self._due = None
            try:
                await self.run_pass()
            except Exception:  # noqa: BLE001 - the loop outlives any one bad pass
                self.log.exception(self.what)
