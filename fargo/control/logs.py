"""Reading containers' logs through the data plane, for the faces that show them (`fargo logs`,
`kubectl logs`): whole k8s-file lines, and following them until the task has stopped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from ..model.taskrecord import Task
from ..port.protocols import Runtime
from ..store.sqlite import Store

POLL = 0.1  # seconds between looks for more output while following
CHUNK = 1 << 16


class LogCursor:
    """A position in one container's log; keeps the partial line at the end."""

    def __init__(self, runtime: Runtime, tid: str, name: str):
        self.runtime = runtime
        self.tid = tid
        self.name = name
        self.offset = 0
        self._partial = b""
        self.exists = False

    def lines(self) -> list[str]:
        """The whole lines written since the last call (each ends with a newline)."""
        data = self._partial
        while True:
            chunk = self.runtime.read_log(self.tid, self.name, self.offset, CHUNK)
            self.exists = chunk.exists
            if not chunk.data:
                break
            self.offset = chunk.next_offset
            data += chunk.data
        *whole, self._partial = data.split(b"\n")
        return [line.decode("utf-8", "replace") + "\n" for line in whole]

    def rest(self) -> list[str]:
        """Every line left, the unfinished last one too: for when the writer has ended."""
        out = self.lines()
        if self._partial:
            out.append(self._partial.decode("utf-8", "replace"))
            self._partial = b""
        return out


class ContainerLogs:
    def __init__(self, store: Store, runtime: Runtime):
        self.store = store
        self.runtime = runtime

    def task(self, tid: str) -> Task | None:
        return self.store.get_task(tid)

    def stopped(self, tid: str) -> bool:
        task = self.store.get_task(tid)
        return task is None or task.last_status == "STOPPED"

    def cursor(self, tid: str, name: str) -> LogCursor:
        return LogCursor(self.runtime, tid, name)

    async def follow(self, cursor: LogCursor, *, follow: bool,
                     gone: Callable[[], bool] = lambda: False) -> AsyncIterator[str]:
        """Lines from the cursor on. Without follow: what is there now, whole lines only.
        Following: until the task has stopped and all is read, or gone() (the reader left)."""
        while True:
            for line in cursor.lines():
                yield line
            if not follow:
                return
            if self.stopped(cursor.tid):
                for line in cursor.rest():  # what came after the last look
                    yield line
                return
            if gone():
                return
            await asyncio.sleep(POLL)
