"""A level-triggered reconciler's loop: a pass at least every `every` seconds, and soon after a
poke (after `settle`, so a burst of changes is one pass); a failing pass is logged and the
loop goes on."""

from __future__ import annotations

import asyncio
import logging
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
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            if await wait_set(self._wake, self.every):
                await asyncio.sleep(self.settle)
            self._wake.clear()
            try:
                await self.run_pass()
            except Exception:  # noqa: BLE001 - the loop outlives any one bad pass
                self.log.exception(self.what)
