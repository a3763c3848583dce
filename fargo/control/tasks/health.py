"""Container health checks: one loop for the whole host runs each running container's
`healthCheck` inside it when due (Runtime.exec_check, each in a thread of its own, a bounded
number at once) and writes the container's health to the store only when it changes, waking the task's driver
(a dependsOn HEALTHY may be waiting on it).

The containers checked are the engine's running ones (Containers.watch), so a restarted
server checks what it adopted. A container's health survives a restart in its record; its
failure streak does not (it starts again from none), and a start period counts from the
container's recorded start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ...model.healthcheck import UNKNOWN, HealthCheck, health_check_of, judge
from ...port.errors import AgentError, ContainerGone
from ...port.protocols import Runtime
from .book import TaskBook
from .running import Running

log = logging.getLogger("fargo.tasks")
TICK = 0.25  # seconds between looks for due checks (intervals are 5 s at least)
CONCURRENCY = 16  # checks running at once on the host


@dataclass
class _Probe:
    """One container's check as the loop runs it (in memory only)."""

    check: HealthCheck
    started_at: float  # wall clock: its start period counts from here
    due: float  # monotonic: when its next check runs
    status: str = UNKNOWN  # as last written
    failures: int = 0
    busy: bool = False


class HealthChecks:
    def __init__(self, book: TaskBook, runtime: Runtime, watch: Running,
                 concurrency: int = CONCURRENCY):
        self.book = book
        self.runtime = runtime
        self.watch = watch  # task id -> names of its running containers (Containers')
        self.concurrency = concurrency
        # The length of one of a check's seconds: tests shrink it to run checks quickly.
        self.second = 1.0
        self._probes: dict[tuple[str, str], _Probe] = {}
        self._unchecked: set[tuple[str, str]] = set()  # running, with no healthCheck
        self._running: set[asyncio.Task[None]] = set()
        self._followed = -1  # the watch's version _follow_watch last saw

    def close(self) -> None:
        # A check in progress ends by its own timeout, in its daemon thread: a server going
        # away does not wait for it.
        for t in self._running:
            t.cancel()

    async def loop(self) -> None:
        while True:
            try:
                self._follow_watch()
                self._launch_due()
            except Exception:  # noqa: BLE001 - this loop must outlive any one bad reading
                log.exception("running health checks")
            await asyncio.sleep(max(0.005, TICK * self.second))

    def _follow_watch(self) -> None:
        """Probes for containers that began running; none for those that ended."""
        if self.watch.version == self._followed:
            return
        self._followed = self.watch.version
        running = self.watch.pairs()
        for key in [k for k in self._probes if k not in running]:
            del self._probes[key]
        self._unchecked &= running
        fresh = running - self._probes.keys() - self._unchecked
        for tid in {tid for tid, _ in fresh}:
            task = self.book.store.get_task(tid)
            if task is None:  # forgotten meanwhile: nothing to check
                self._unchecked |= {k for k in fresh if k[0] == tid}
                continue
            defs = {d.get("name"): d for d in task.plan}
            for c in task.containers:
                key = (tid, c.name)
                if key not in fresh:
                    continue
                check = health_check_of(defs.get(c.name) or {})
                if check is None:
                    self._unchecked.add(key)
                    continue
                self._probes[key] = self._probe(check, c.started_at or task.started_at,
                                                c.health_status)
            self._unchecked |= {k for k in fresh if k[0] == tid} - self._probes.keys()

    def _probe(self, check: HealthCheck, started_at: float | None, status: str) -> _Probe:
        now = time.time()
        started = started_at if started_at is not None else now
        # The first check runs an interval after the start (at once if that has passed:
        # the server restarted meanwhile).
        first_in = max(0.0, started + check.interval * self.second - now)
        return _Probe(check=check, started_at=started, due=time.monotonic() + first_in,
                      status=status)

    def _launch_due(self) -> None:
        now = time.monotonic()
        for key, probe in list(self._probes.items()):
            if probe.busy or probe.due > now:
                continue
            if len(self._running) >= self.concurrency:
                return  # the rest wait for the next tick
            probe.busy = True
            t = asyncio.create_task(self._check(key, probe))
            self._running.add(t)
            t.add_done_callback(self._running.discard)

    async def _check(self, key: tuple[str, str], probe: _Probe) -> None:
        tid, name = key
        began = time.time()
        try:
            passed = await self._exec(tid, name, probe.check)
        finally:
            probe.busy = False
            probe.due = time.monotonic() + probe.check.interval * self.second
        if passed is None or self._probes.get(key) is not probe:
            return  # the container is gone (or ended and began again meanwhile)
        in_start = began - probe.started_at < probe.check.start_period * self.second
        status, probe.failures = judge(probe.status, probe.failures, passed, in_start,
                                       probe.check.retries)
        if status != probe.status:
            probe.status = status
            self._write(tid, name, status)

    async def _exec(self, tid: str, name: str, check: HealthCheck) -> bool | None:
        """Whether the check passed; None when the container was not there to check."""
        try:
            code = await _in_thread(lambda: self.runtime.exec_check(
                tid, name, list(check.argv), check.timeout * self.second))
        except ContainerGone:
            return None
        except AgentError as err:  # could not be run: a failed check, as Docker counts it
            log.info("task %s: health check of %s could not run: %s", tid, name, err)
            return False
        return code == 0

    def _write(self, tid: str, name: str, status: str) -> None:
        task = self.book.store.get_task(tid)
        if task is None or not any(c.name == name for c in task.containers):
            return
        c = task.container(name)
        # A container that has stopped keeps the health it last had.
        if c.last_status != "RUNNING" or c.health_status == status:
            return
        c.health_status = status
        task.bump()
        self.book.save(task)
        self.book.poke(tid)


async def _in_thread(call: Callable[[], int | None]) -> int | None:
    """call() in a daemon thread (the default executor's threads are joined at exit, and a
    check may take its whole timeout)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int | None] = loop.create_future()

    def settle(value: int | None, err: BaseException | None) -> None:
        if done.cancelled():
            return
        if err is not None:
            done.set_exception(err)
        else:
            done.set_result(value)

    def work() -> None:
        value, error = None, None
        try:
            value = call()
        except BaseException as err:  # noqa: BLE001 - handed to the awaiting coroutine
            error = err
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=work, name="fargo-health", daemon=True).start()
    return await done
