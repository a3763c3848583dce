"""The log shipper: one loop for the whole server copies containers' k8s-file logs (conmon
keeps writing them while the server is down) into CloudWatch Logs along their tasks' routes.

Each route reads from the offset its sink has committed, turns whole lines into events
(model/logconfig.py) and ships them with the offset just after the last line they hold, in
one transaction of the sink: after a SIGKILL the next pass resumes at exactly that byte, so no
line is lost or shipped twice; the lines of an event still held (a multiline event waiting for
its next start line, a line without its end) are simply read again. A stopped task's logs are
read to their end and then left alone; retention keeps its files until then."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..model.errors import ApiError, ResourceNotFoundException
from ..model.logconfig import Cut, Grouper, LogRoute, Router, batches
from ..model.taskrecord import Task
from ..port.protocols import Runtime
from ..store.sqlite import Store
from .logsink import Event, LogSink
from .waits import wait_set

log = logging.getLogger("fargo.logs")
PERIOD = 0.25  # seconds between passes
READ_CAP = 8 << 20  # bytes one route reads in a pass; more waits for the next, at once
CHUNK = 1 << 20  # bytes one read_log asks for
RETRY = 5.0  # seconds before a route whose group or stream is gone is tried again


@dataclass
class _Route:
    tid: str
    route: LogRoute
    reader: Grouper | Router
    offset: int | None = None  # the sink's committed offset, once read
    done: bool = False  # its task stopped and every line is shipped
    blocked: bool = False  # its group or stream is gone: tried again after RETRY
    retry_at: float = 0.0


@dataclass
class _Watch:
    routes: list[_Route]
    stopped: bool = False
    key: list[str] = field(default_factory=list)  # the routes' sources, to see them change


def _reader(route: LogRoute) -> Grouper | Router:
    return Router(route) if route.router else Grouper(route.start_pattern)


class LogShipper:
    def __init__(self, sink: LogSink, runtime: Runtime, store: Store,
                 clock: Callable[[], float] = time.time):
        self.sink = sink
        self.runtime = runtime
        self.store = store
        self.clock = clock
        self._watch: dict[str, _Watch] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._inflight: asyncio.Future[bool] | None = None  # a pass's worker thread
        self.shipped_events = 0  # since this start, for measurements

    # ---- what to look at
    def task_changed(self, task: Task) -> None:
        """The task book's listener: every task written."""
        if not task.log_routes:
            return
        key = [r.source for r in task.log_routes]
        w = self._watch.get(task.id)
        if w is None or w.key != key:
            w = self._watch[task.id] = _Watch(
                [_Route(task.id, r, _reader(r)) for r in task.log_routes], key=key)
        stopped = task.last_status == "STOPPED"
        if stopped and not w.stopped:
            self._wake.set()  # its last lines go now
        w.stopped = stopped

    def load(self) -> None:
        """Every task the store knows with routes: the running ones, and the stopped ones
        whose logs may not all be shipped yet (a look at each finds out)."""
        for task in self.store.active_tasks():
            self.task_changed(task)
        stopped = self.store.stopped_before(float("inf"))
        for task in self.store.get_tasks(stopped).values():
            self.task_changed(task)

    def pending(self, tid: str) -> bool:
        """Whether some of the task's logs still wait to be shipped (retention keeps it)."""
        w = self._watch.get(tid)
        return w is not None and any(not r.done and not r.blocked for r in w.routes)

    def forgotten(self, task: Task) -> None:
        """The task is forgotten (retention; may be called off the loop)."""
        for r in task.log_routes:
            self.sink.forget_source(r.source)
        if self._event_loop is not None:
            self._event_loop.call_soon_threadsafe(self._watch.pop, task.id, None)

    # ---- the loop
    def start(self) -> None:
        self.load()
        self._event_loop = asyncio.get_running_loop()
        self._loop = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._loop:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        if self._inflight is not None:  # its thread ends its pass before the store closes
            await asyncio.gather(self._inflight, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            began = time.monotonic()
            more = False
            try:
                more = await self.pass_once()
            except Exception:  # noqa: BLE001 - the loop outlives any one bad pass
                log.exception("shipping containers' logs")
            if more:
                await asyncio.sleep(0)
                continue
            self._wake.clear()
            await wait_set(self._wake, max(0.0, PERIOD - (time.monotonic() - began)))

    async def pass_once(self) -> bool:
        """One look at every route that may have lines to ship; True if some had more than
        one pass reads."""
        now = time.monotonic()
        work = [(r, w.stopped) for w in self._watch.values() for r in w.routes
                if not r.done and (not r.blocked or r.retry_at <= now)]
        for tid in [t for t, w in self._watch.items()
                    if w.stopped and all(r.done for r in w.routes)]:
            self._watch.pop(tid, None)  # fully shipped: nothing more will come
        if not work:
            return False
        self._inflight = asyncio.ensure_future(asyncio.to_thread(self._ship_all, work))
        return await asyncio.shield(self._inflight)

    def _ship_all(self, work: list[tuple[_Route, bool]]) -> bool:
        more = False
        for r, stopped in work:
            try:
                more |= self._ship(r, stopped)
            except Exception:  # noqa: BLE001 - one route's trouble is not the others'
                log.exception("task %s: shipping the log of container %s", r.tid,
                              r.route.container)
                r.blocked, r.retry_at = True, time.monotonic() + RETRY
        return more

    def _read(self, r: _Route) -> tuple[bytes, bool]:
        """Bytes from the route's offset (at most READ_CAP) and whether they reach the end."""
        assert r.offset is not None
        parts: list[bytes] = []
        got, at = 0, r.offset
        while got < READ_CAP:
            ask = min(CHUNK, READ_CAP - got)
            chunk = self.runtime.read_log(r.tid, r.route.container, at, ask)
            parts.append(chunk.data)
            got += len(chunk.data)
            at = chunk.next_offset
            if len(chunk.data) < ask:
                return b"".join(parts), True
        return b"".join(parts), False

    def _ship(self, r: _Route, stopped: bool) -> bool:
        if r.offset is None:
            r.offset = self.sink.shipped(r.route.source)
        data, at_end = self._read(r)
        if not data:
            r.done = stopped  # read to the end after the writer ended: nothing more comes
            return False
        final = stopped and at_end
        cut = r.reader.cut(data, r.offset, int(self.clock() * 1000), final)
        for first, last, offset in batches(cut):
            if first == last and offset == r.offset:
                continue
            if not self._put(r, _events(cut, first, last), offset):
                return False
            r.offset = offset
            self.shipped_events += last - first
        r.blocked = False
        r.done = final and r.offset == cut.done
        return not at_end

    def _put(self, r: _Route, events: list[Event], offset: int) -> bool:
        route = r.route
        assert r.offset is not None
        try:
            self.sink.ship(route.region, route.group, route.stream, events, route.source,
                           offset)
            return True
        except ResourceNotFoundException:
            pass
        # Deleted since the start: made again where the route may make it, else it waits.
        try:
            if route.create_group:
                self.sink.ensure_group(route.region, route.group)
            self.sink.ensure_stream(route.region, route.group, route.stream)
            self.sink.ship(route.region, route.group, route.stream, events, route.source,
                           offset)
            return True
        except ApiError as err:
            if not r.blocked:
                log.warning("task %s: the log of container %s waits: %s (%s)", r.tid,
                            route.container, err.message, route.group)
            r.blocked, r.retry_at = True, time.monotonic() + RETRY
            return False


def _events(cut: Cut, first: int, last: int) -> list[Event]:
    """A batch's events in time order (PutLogEvents wants them so; file order is nearly)."""
    stamps, messages = cut.stamps[first:last], cut.messages[first:last]
    if stamps != sorted(stamps):
        order = sorted(range(len(stamps)), key=stamps.__getitem__)
        stamps, messages = [stamps[i] for i in order], [messages[i] for i in order]
    return [Event(t, m) for t, m in zip(stamps, messages, strict=True)]
