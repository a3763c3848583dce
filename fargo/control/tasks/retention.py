"""How long stopped tasks are remembered: AWS shows a stopped task for about an hour, then it
is MISSING; its logs and files go with it. RunTask's clientTokens are kept for 12 hours."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ...model.taskrecord import Task
from ...port.protocols import Runtime
from ...store.sqlite import Store

log = logging.getLogger("fargo.tasks")
TOKEN_LIFETIME = 12 * 3600.0


class Retention:
    def __init__(self, store: Store, runtime: Runtime, retention: float):
        self.store = store
        self.runtime = runtime
        self.retention = retention
        # Writes the usage of stopped tasks not yet metered (control/cost.py): called before
        # any is forgotten, and raising keeps them, so no task leaves the bill.
        self.meter: Callable[[list[Task]], None] | None = None
        # Kept while their logs are still being shipped (control/logship.py), and told of
        # each one forgotten.
        self.hold: Callable[[str], bool] = lambda tid: False
        self.gone: Callable[[Task], None] = lambda task: None

    def sweep(self, now: float | None = None) -> int:
        """Forget tasks stopped longer ago than the retention; returns how many."""
        now = now or time.time()
        self.store.drop_tokens(now - TOKEN_LIFETIME)
        ids = [i for i in self.store.stopped_before(now - self.retention) if not self.hold(i)]
        if ids:
            tasks = self.store.get_tasks(ids)
            if self.meter is not None:
                self.meter(list(tasks.values()))
            # Files first: once DescribeTasks says MISSING, the task's logs are gone too.
            for tid in ids:
                try:
                    self.runtime.forget(tid)
                except Exception:  # noqa: BLE001 - the others are still forgotten
                    log.exception("forgetting task %s", tid)
            self.store.delete_tasks(ids, [t.arn for t in tasks.values()])
            for task in tasks.values():
                self.gone(task)
        return len(ids)

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(min(60.0, max(self.retention / 4, 1.0)))
            try:
                await asyncio.to_thread(self.sweep)
            except Exception:  # noqa: BLE001 - try again next round
                log.exception("sweeping stopped tasks")
