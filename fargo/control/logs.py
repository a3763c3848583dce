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
BATCH = 1 << 20  # bytes one look reads at most: a long log streams in batches


class LogCursor:
    """A position in one container's log; keeps the partial line at the end. Lines end as a
    file opened in text mode ends them: at \n, \r\n or a lone \r."""

    def __init__(self, runtime: Runtime, tid: str, name: str):
        self.runtime = runtime
        self.tid = tid
        self.name = name
        self.offset = 0
        self._partial = b""
        self.exists = False
        self.more = False  # the last look stopped at BATCH with more to read

    def lines(self) -> list[str]:
        """Whole lines written since the last call (each ends with a newline), up to BATCH
        bytes of them. Reads files: call it off the event loop."""
        parts = [self._partial]
        got = 0
        self.more = False
        while got < BATCH:
            chunk = self.runtime.read_log(self.tid, self.name, self.offset, CHUNK)
            self.exists = chunk.exists
            if not chunk.data:
                break
            self.offset = chunk.next_offset
            parts.append(chunk.data)
            got += len(chunk.data)
        else:
            self.more = True
        data = b"".join(parts)
        # A \r at the very end may be the first half of \r\n: it waits for the next look.
        held = b"\r" if data.endswith(b"\r") else b""
        data = data[:-1] if held else data
        *whole, last = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self._partial = last + held
        return [line.decode("utf-8", "replace") + "\n" for line in whole]

    def all_lines(self) -> list[str]:
        """Every whole line there is now (kubectl's --tail needs the last of them)."""
        out = self.lines()
        while self.more:
            out += self.lines()
        return out

    def rest(self) -> list[str]:
        """Every line left, the unfinished last one too: for when the writer has ended."""
        out = self.all_lines()
        tail, self._partial = self._partial, b""
        if tail.endswith(b"\r"):  # it was a line's end after all
            out.append(tail[:-1].decode("utf-8", "replace") + "\n")
        elif tail:
            out.append(tail.decode("utf-8", "replace"))
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
        """Lines from the cursor on, a batch at a time. Without follow: what is there now,
        whole lines only. Following: until the task has stopped and all is read, or gone()
        (the reader left)."""
        while True:
            for line in await asyncio.to_thread(cursor.lines):
                yield line
            if cursor.more:
                continue
            if not follow:
                return
            if await asyncio.to_thread(self.stopped, cursor.tid):
                for line in await asyncio.to_thread(cursor.rest):  # what came after the look
                    yield line
                return
            if gone():
                return
            await asyncio.sleep(POLL)
