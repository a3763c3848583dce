"""A task's containers on the data plane: created and started in dependsOn order, their exits
written down (an essential one ending stops the task), stopped with their stop signal and
killed after their stopTimeout, and pods' containers re-created when their back-off ends."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ...model import lifecycle
from ...model.healthcheck import HEALTHY
from ...model.spec import container_spec
from ...model.taskrecord import Container, ContainerDef, Task
from ...port.data import ContainerSpec, Image
from ...port.protocols import Runtime
from .book import TaskBook
from .exitwake import ExitWakers
from .pulls import SharedPulls
from .restarts import RestartClock, note_start, pod_finished
from .running import Running

log = logging.getLogger("fargo.tasks")
POLL = 0.05  # seconds between looks at the containers' exits while stopping
STOP_POLL_FIRST = 0.002  # the first look after a stop signal; doubled up to POLL
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
DEFAULT_STOP_TIMEOUT = 30.0
Auth = Callable[[ContainerDef], Any]


class Containers:
    def __init__(self, book: TaskBook, runtime: Runtime, pulls: SharedPulls,
                 restarts: RestartClock, auth: Auth):
        self.book = book
        self.runtime = runtime
        self.pulls = pulls
        self.restarts = restarts
        self.auth = auth
        self.watch = Running()  # task id -> names of containers running
        self.wakers = ExitWakers(runtime, book.poke)  # what wakes a task as one ends
        self._images: dict[str, dict[str, Image]] = {}  # what each task's containers run
        # task id -> container -> its `secrets` as environment variables: the starter's,
        # held in memory only while the task starts (never in the store or a log).
        self.secret_env: dict[str, dict[str, dict[str, str]]] = {}
        # The address of a task's VPC resolver, named in its containers' resolv.conf (set by
        # the server; None: the images' own files stay).
        self.resolver: Callable[[Task], str | None] | None = None
        # The container's mounts and a pod's variables from its objects (control/volumes.py,
        # set by the server): (task, definition, image config, spec) -> the spec to run.
        self.extras: Callable[[Task, ContainerDef, dict[str, Any], ContainerSpec],
                              ContainerSpec] | None = None
        self._made: dict[str, set[str]] = {}  # task id -> containers created ahead, not started

    def watch_started(self, task: Task) -> None:
        for c in task.containers:
            if c.last_status == "RUNNING":
                self.watch.add(task.id, c.name)
                self.wakers.arm(task.id, c.name)

    def forget(self, tid: str) -> None:
        self.watch.forget(tid)
        self.wakers.disarm_task(tid)
        self._images.pop(tid, None)
        self._made.pop(tid, None)
        self.restarts.drop(tid)

    async def _create(self, task: Task, cdef: ContainerDef, image: Image,
                      spawned: Callable[[], None] | None = None) -> None:
        secrets = self.secret_env.get(task.id, {}).get(cdef["name"])
        nameserver = self.resolver(task) if self.resolver else None
        spec = container_spec(task, cdef, image.config or {}, secrets, nameserver)
        if self.extras is not None:
            spec = self.extras(task, cdef, image.config or {}, spec)
        await asyncio.to_thread(self.runtime.create_container, task.id, spec, image, spawned)

    async def _create_and_start(self, task: Task, cdef: ContainerDef, image: Image) -> None:
        made = self._made.get(task.id, set())
        if cdef["name"] in made:
            made.discard(cdef["name"])  # created ahead (create_first): only its start is left
        else:
            await self._create(task, cdef, image)
        await asyncio.to_thread(self.runtime.start_container, task.id, cdef["name"])

    async def create_first(self, tid: str, images: dict[str, Image],
                           spawned: Callable[[], None] | None = None) -> None:
        """Create (not start) the containers that depend on nothing, ahead of the start:
        runc makes them while the task's interface is being made, and start_all then only
        starts them. Until then their first process waits in runc's init, before exec.
        spawned: called (from a worker thread) as each one's monitor is under way."""
        task = self.book.fresh(tid)
        for cdef in created_first(task.plan):
            if self.book.fresh(tid).stopping:
                continue
            await self._create(task, cdef, images[cdef["name"]], spawned)
            self._made.setdefault(tid, set()).add(cdef["name"])

    def _mark_running(self, tid: str, name: str) -> None:
        task = self.book.fresh(tid)
        c = task.container(name)
        c.last_status = "RUNNING"
        c.runtime_id = f"{tid}-{name}"
        c.started_at = time.time()  # a health check's start period counts from here
        note_start(task, name, c.started_at)
        task.bump()
        self.book.save(task)
        self.watch.add(tid, name)
        self.wakers.arm(tid, name)

    async def start_all(self, tid: str, images: dict[str, Image],
                        on_wait: Callable[[], None]) -> bool:
        """Start containers in dependsOn order. False if the start was abandoned (stopped,
        or a dependency that never holds). on_wait: called before waiting on a dependency
        (the start gives its turn up)."""
        self._images[tid] = images
        plan = self.book.fresh(tid).plan
        pending = [c["name"] for c in plan]
        by_name = {c["name"]: c for c in plan}
        while pending:
            task = self.book.fresh(tid)
            if task.stopping:
                return False
            states = {c.name: c for c in task.containers}
            ready, failed = [], None
            for name in pending:
                verdict = _deps_met(by_name[name], states)
                if verdict is True:
                    ready.append(name)
                elif verdict is None:
                    failed = name
            if failed:
                self.book.fail_start(tid, "CannotStartContainerError: a dependency of container "
                                          f"'{failed}' did not succeed")
                return False
            for name in ready:
                await self._create_and_start(task, by_name[name], images[name])
                self._mark_running(tid, name)
                pending.remove(name)
            if pending and not ready:
                # Waiting on COMPLETE/SUCCESS dependencies (maybe for long): another task
                # may have this one's turn. Let exits be recorded meanwhile.
                on_wait()
                await self.book.wait(tid, POLL * 4)
                await self.record_exits(tid)
                await self.restart_due(tid)
        return True

    async def record_exits(self, tid: str) -> None:
        """Write down containers that ended; an essential one ending stops the task."""
        done = [n for n in self.watch.get(tid) or () if self.runtime.exited(tid, n)]
        if not done:
            return
        # Reading results may run runc and read cgroups: off the loop, then one update.
        results = await asyncio.to_thread(lambda: {n: self.runtime.result(tid, n) for n in done})
        task = self.book.fresh(tid)
        now = time.time()
        for name in done:
            self.watch.discard(tid, name)
            self.wakers.disarm(tid, name)
            res = results[name]
            if self.restarts.note_exit(task, name, res.exit_code, res.oom_killed, now):
                continue
            c = task.container(name)
            c.last_status = "STOPPED"
            if res.exit_code is not None:
                c.exit_code = res.exit_code
            else:
                c.reason = ("CannotInspectContainerError: the container's monitor ended "
                            "without recording an exit code")
            if res.oom_killed:
                c.reason = OOM_REASON
            task.bump()
            if task.container_def(name).get("essential", True) and not task.stopping:
                lifecycle.request_stop(task, "EssentialContainerExited",
                                       "Essential container in task exited", now)
        if pod_finished(task):
            lifecycle.request_stop(task, "EssentialContainerExited",
                                   "All containers of the pod exited", now)
        self.book.save(task)

    async def restart_due(self, tid: str) -> None:
        """Re-create the containers whose back-off is over: delete, create, start."""
        for name in self.restarts.take_due(tid):
            task = self.book.fresh(tid)
            if task.stopping:
                return
            cdef = task.container_def(name)
            try:
                image = (self._images.get(tid) or {}).get(name)
                if image is None:  # the server restarted since the pull
                    # Shielded: the pull may be shared with other tasks' starts.
                    image = await asyncio.shield(
                        self.pulls.pull(tid, cdef["image"], self.auth(cdef)))
                    self._images.setdefault(tid, {})[name] = image
                await asyncio.to_thread(self.runtime.remove_container, tid, name)
                await self._create_and_start(task, cdef, image)
            except Exception as err:  # noqa: BLE001 - the pod fails, the engine goes on
                log.exception("task %s: restarting container %s", tid, name)
                task = self.book.fresh(tid)
                c = task.container(name)
                c.last_status = "STOPPED"
                c.reason = f"CannotStartContainerError: {err}"[:1024]
                lifecycle.request_stop(task, "EssentialContainerExited",
                                       f"CannotStartContainerError: {err}"[:255], time.time())
                self.book.save(task)
                return
            self._mark_running(tid, name)

    async def stop_all(self, tid: str) -> None:
        """Stop signal to each running container, SIGKILL after its stopTimeout."""
        self.restarts.drop(tid)  # a stopping pod brings nothing back
        await self.record_exits(tid)
        names = set(self.watch.get(tid) or set())
        if not names:
            return
        task = self.book.fresh(tid)
        deadline: dict[str, float] = {}
        now = time.monotonic()
        for name in names:
            await asyncio.to_thread(self.runtime.signal, tid, name, None)
            timeout = task.stop_timeout
            if timeout is None:
                timeout = task.container_def(name).get("stopTimeout")
            deadline[name] = now + (DEFAULT_STOP_TIMEOUT if timeout is None else timeout)
        pause = STOP_POLL_FIRST
        while True:
            await self.record_exits(tid)
            left = self.watch.get(tid) or set()
            if not left:
                return
            now = time.monotonic()
            for name in list(left):
                if now >= deadline[name]:
                    await asyncio.to_thread(self.runtime.signal, tid, name, "SIGKILL")
                    deadline[name] = now + 3600
            # Most containers end within milliseconds of their stop signal: look again soon,
            # then less often (a look is a stat per container); an exit's wake-up comes sooner.
            await self.book.wait(tid, pause)
            pause = min(pause * 2, POLL)


def created_first(plan: list[ContainerDef]) -> list[ContainerDef]:
    """The containers create_first makes ahead of the start: those that depend on nothing."""
    return [c for c in plan if not c.get("dependsOn")]


def _deps_met(cdef: ContainerDef, states: dict[str, Container]) -> bool | None:
    """True when every dependency holds, False to keep waiting, None when one never will."""
    for dep in cdef.get("dependsOn") or []:
        other = states[dep["containerName"]]
        cond = dep["condition"]
        if cond == "HEALTHY":
            if other.last_status == "STOPPED":
                return None  # it can never pass a check now
            if other.last_status != "RUNNING" or other.health_status != HEALTHY:
                return False  # control/tasks/health.py pokes the task when it changes
        elif cond == "START":
            if other.last_status == "PENDING":
                return False
        elif other.last_status != "STOPPED":
            return False
        elif cond == "SUCCESS" and other.exit_code != 0:
            return None
    return True

