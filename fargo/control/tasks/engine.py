"""The task reconciler: drives each task from PROVISIONING to STOPPED against the data plane.

Every transition is written to the store before the next step acts, so a restarted server
re-adopts tasks from the store plus what the runtime still holds."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable
from typing import Any

from ...model import lifecycle
from ...model.errors import InvalidParameterException
from ...model.task import RunTaskRequest, check_lengths
from ...model.taskrecord import PodRef, RestartPolicy, Task
from ...model.vpc import Vpc
from ...port.protocols import Images, Network, Runtime
from ...store.sqlite import Store
from ..capacity import Capacity
from ..network import Networks
from .admission import Admission, Admitted, PlanAt
from .book import TaskBook
from .containers import Containers
from .health import HealthChecks
from .placement import Placement
from .pulls import SharedPulls
from .restarts import RestartClock
from .retention import Retention
from .starter import Credentials, NetworkHooks, Starter, registry_auth
from .turns import StartTurns

log = logging.getLogger("fargo.tasks")
POLL = 0.05  # seconds between looks at the containers' exit files
SWEEP_S = 5.0  # ... at those whose end the kernel wakes us for (a safety net), a slice a POLL
# A running task's driver looks again at least this often. Whatever ends or stops a task pokes
# its driver (an exit through its pidfd or the sweep, StopTask, an eviction), so this is a
# last resort; each look reads the task back from the store.
IDLE = 10.0
REDO_REFUSED = ("ResourceInitializationError: the server restarted after the task's "
                "containers had begun to start; a start is not run twice")
INTERNAL_ERROR = "ResourceInitializationError: internal error in fargo"


class TaskEngine:
    def __init__(self, store: Store, *, runtime: Runtime, images: Images, network: Network,
                 vpc: Vpc, capacity: Capacity, retention: float = 3600.0,
                 credentials: Credentials | None = None, hooks: NetworkHooks | None = None,
                 networks: Networks | None = None, start_concurrency: int = 6,
                 api_in_tasks: bool = True, isolation: str = "runc"):
        self.store = store
        self.isolation = isolation  # the server's default tier
        self.runtime = runtime
        self.network = network
        self.networks = networks
        self.hooks = hooks
        self.book = TaskBook(store)
        self.placement = Placement(vpc, capacity, networks, api_in_tasks)
        self.admission = Admission(self.book, self.placement, isolation=isolation)
        self.pulls = SharedPulls(images)
        self.restarts = RestartClock()
        self.turns = StartTurns(self.book, start_concurrency)
        self.containers = Containers(self.book, runtime, self.pulls, self.restarts,
                                     lambda cdef: registry_auth(credentials, cdef))
        self.starter = Starter(self.book, self.turns, self.pulls, runtime, network, networks,
                               self.placement.subnets, self.containers, hooks, credentials)
        self.retention = Retention(store, runtime, retention)
        self.health = HealthChecks(self.book, runtime, self.containers.watch)
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._loops: list[asyncio.Task[None]] = []

    # ---- start and stop of the engine itself
    async def start(self) -> None:
        for task in self.store.active_tasks():
            self.placement.adopt(task)
            self._spawn(task.id, adopt=True)
        self._loops = [asyncio.create_task(self._watch_exits()),
                       asyncio.create_task(self.retention.loop()),
                       asyncio.create_task(self.health.loop())]

    async def close(self) -> None:
        """Leave tasks running (they outlive the server); stop only our coroutines."""
        for t in [*self._loops, *self._drivers.values()]:
            t.cancel()
        self.health.close()
        self.containers.wakers.close()
        await asyncio.gather(*self._drivers.values(), return_exceptions=True)

    # ---- operations
    def run_task(self, *, td: dict[str, Any], cluster_arn: str, region: str,
                 req: RunTaskRequest) -> Admitted:
        admitted = self.admission.run_task(td=td, cluster_arn=cluster_arn, region=region,
                                           req=req)
        if admitted.fresh:
            self.pulls.share_call([t.id for t in admitted.tasks])
            for task in admitted.tasks:
                self._spawn(task.id)
        return admitted

    def run_sized(self, *, td: dict[str, Any], cluster_arn: str, region: str, cpu: int,
                  memory: int, subnet_ids: list[str], restart: RestartPolicy | None,
                  pod: PodRef | None, started_by: str | None,
                  plan_at: PlanAt | None = None,
                  security_groups: list[str] | None = None,
                  isolation: str | None = None) -> tuple[Task | None, str | None]:
        task, why = self.admission.run_sized(
            td=td, cluster_arn=cluster_arn, region=region, cpu=cpu, memory=memory,
            subnet_ids=subnet_ids, restart=restart, pod=pod, started_by=started_by,
            plan_at=plan_at, security_groups=security_groups, isolation=isolation)
        if task is not None:
            self._spawn(task.id)
        return task, why

    def get(self, tid: str) -> Task | None:
        return self.store.get_task(tid)

    def stop_task(self, task_id: str, reason: str | None, code: str = "UserInitiated",
                  grace: float | None = None) -> Task:
        task = self.store.get_task(task_id)
        if task is None:
            raise InvalidParameterException("The referenced task was not found.")
        check_lengths({"reason": reason})
        if grace is not None and not task.stopping:
            # A pod's terminationGracePeriodSeconds: every container's stop timeout.
            task.stop_timeout = grace
            self.store.put_task(task)
        if lifecycle.request_stop(task, code, reason or "Task stopped by user", time.time()):
            self.store.put_task(task)
            self.book.poke(task_id)
        return task

    def sweep(self, now: float | None = None) -> int:
        return self.retention.sweep(now)

    # ---- the reconciler
    def _spawn(self, tid: str, adopt: bool = False) -> None:
        self.book.track(tid)
        self._drivers[tid] = asyncio.create_task(self._drive(tid, adopt))

    async def _drive(self, tid: str, adopt: bool) -> None:
        try:
            task = self.book.fresh(tid)
            if not lifecycle.running_or_later(task):
                began = await self._began(task) if adopt else []
                if adopt and (began or any(c.last_status != "PENDING" for c in task.containers)):
                    # Its containers may have begun: a start is never run twice. Stop what
                    # did start properly (with its stop signal, its exit code recorded).
                    for c in task.containers:
                        if c.name in began and c.last_status == "PENDING":
                            c.last_status, c.runtime_id = "RUNNING", f"{tid}-{c.name}"
                    lifecycle.request_stop(task, "TaskFailedToStart", REDO_REFUSED, time.time())
                    self.book.save(task)
                    self.containers.watch_started(task)
                elif adopt and task.stopping:
                    self.containers.watch_started(task)  # stopped while it started: tear down
                else:
                    if adopt:  # desired RUNNING is a promise: what the crash left is redone
                        await self._clear_half_start(tid)
                    task = await self.starter.start_in_turn(tid)
            if adopt and lifecycle.running_or_later(task):
                # Also when it was already stopping: its containers still need a proper stop.
                await self._adopt_running(task)
            if task.last_status == "RUNNING":
                await self._run(tid)
            await self._teardown(tid)
        except Exception:  # a bug must not leave the task half-way forever
            log.exception("task %s failed in the reconciler", tid)
            task = self.book.fresh(tid)
            lifecycle.request_stop(task, "TaskFailedToStart", INTERNAL_ERROR, time.time())
            self.book.save(task)
            await self._teardown(tid)
        finally:
            self.book.untrack(tid)
            self._drivers.pop(tid, None)
            self.pulls.done_with(tid)  # stopped before its start began

    async def _began(self, task: Task) -> list[str]:
        """The containers of a start cut short by a crash that the runtime says may have run,
        though the record did not live to say so."""
        return await asyncio.to_thread(
            lambda: [c.name for c in task.containers if self.runtime.started(task.id, c.name)])

    async def _clear_half_start(self, tid: str) -> None:
        """Whatever a start made before the crash goes (each step is idempotent), so the
        start runs again from the beginning on a clean host."""
        await asyncio.to_thread(self.runtime.destroy, tid)
        await asyncio.to_thread(self.network.detach, tid)
        task = self.book.fresh(tid)
        task.interface.status, task.interface.mac = "PRECREATED", None
        subnet = self.placement.subnets.get(task.interface.subnet_id)
        if subnet is not None:  # as this server offers the API (--no-auth may have changed)
            task.interface.endpoint = self.placement.endpoint(subnet)
        task.pull_started_at = task.pull_stopped_at = None
        for c in task.containers:
            c.image_digest = c.reason = None
        task.bump()
        self.book.save(task)

    async def _adopt_running(self, task: Task) -> None:
        if self.hooks:
            try:
                await self.hooks.network_ready(task.id)
            except Exception:  # noqa: BLE001 - the task runs on without its endpoint
                log.exception("task %s: reopening the metadata endpoint", task.id)
        self.containers.watch_started(task)
        self.restarts.resume(task)
        await self.containers.record_exits(task.id)

    async def _run(self, tid: str) -> None:
        while True:
            await self.containers.record_exits(tid)
            await self.containers.restart_due(tid)
            if self.book.stopping(tid):
                return
            await self.book.wait(tid, self.restarts.next_in(tid, IDLE))

    async def _teardown(self, tid: str) -> None:
        """Best effort at every step: whatever fails is logged, and the task still reaches
        STOPPED with its IP and capacity given back."""
        task = self.book.fresh(tid)
        self.book.advance(task, "DEACTIVATING")
        self.book.advance(task, "STOPPING")
        await _attempt(tid, "stopping containers", self.containers.stop_all(tid))
        task = self.book.fresh(tid)
        self.book.advance(task, "DEPROVISIONING")
        if self.hooks:
            await _attempt(tid, "closing the metadata endpoint", self.hooks.network_gone(tid))
        # The sandbox and the interface do not wait on each other (and the interface goes
        # even if the sandbox would not): both at once, each ~20 ms of kernel work.
        await asyncio.gather(
            _attempt(tid, "removing the sandbox", asyncio.to_thread(self.runtime.destroy, tid)),
            _attempt(tid, "removing the interface", asyncio.to_thread(self.network.detach, tid)))
        task = self.book.fresh(tid)
        task.interface.status = "DELETED"
        for c in task.containers:
            c.last_status = "STOPPED"
        self.book.advance(task, "STOPPED")
        # Before its address can be handed out again, and after STOPPED: a stop's latency
        # does not wait on them. Its groups go after its interface, so the address is never
        # unfiltered while it lives; a restart before this applies the groups of the active
        # tasks alone, which drops this one's too.
        if self.networks:
            await _attempt(tid, "leaving its security groups",
                           asyncio.to_thread(self.networks.task_down, tid))
        await _attempt(tid, "forgetting its flows",
                       asyncio.to_thread(self.network.forget_flows, task.ip))
        self.placement.release(task)
        self.containers.forget(tid)

    async def _watch_exits(self) -> None:
        """One loop for the whole host: notice exits and wake the tasks they belong to. The
        containers the kernel wakes us for (control/tasks/exitwake.py) are each looked at once
        a sweep, a slice of them every POLL (a host of a thousand containers would otherwise
        hold the loop tens of ms at once); the others every POLL."""
        sweep: list[tuple[str, str]] = []
        per_poll = 1
        watch, wakers = self.containers.watch, self.containers.wakers
        while True:
            await asyncio.sleep(POLL)
            try:
                if not sweep:
                    sweep = list(watch.pairs())
                    per_poll = max(1, math.ceil(len(sweep) * POLL / SWEEP_S))
                # The slice was listed up to SWEEP_S ago: containers written down since are
                # not looked at (a look would cache paths of a task the runtime forgot).
                looks = [(tid, n) for tid, n in sweep[-per_poll:] if n in watch.get(tid, ())]
                looks += wakers.unarmed
                del sweep[-per_poll:]
                for tid in {tid for tid, n in looks if self.runtime.exited(tid, n)}:
                    self.book.poke(tid)
            except Exception:  # noqa: BLE001 - this loop must outlive any one bad reading
                log.exception("watching container exits")


async def _attempt(tid: str, what: str, step: Awaitable[object]) -> None:
    try:
        await step
    except Exception:  # noqa: BLE001 - teardown goes on; the log says what was left
        log.exception("task %s: %s failed", tid, what)
