"""The one sampler of the server: every interval (60 s by default, on the interval's wall
clock boundaries) it reads each RUNNING task's counters through the port (`Runtime.stats`),
turns two readings into figures (model/metrics.py) and records what ECS publishes: AWS/ECS
for every cluster and service, ECS/ContainerInsights where the cluster's containerInsights
says so. No process or thread per task: one pass, in one worker thread, reads them all.

The readings a pass counts from are stored with its data (one transaction), so after a
SIGKILL the next pass goes on from them. The latest readings stay in memory for /metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..model.cluster import CONTAINER_INSIGHTS
from ..model.metrics import (
    SamplerState,
    ServiceCounts,
    TaskFigures,
    TaskReading,
    ecs_data,
    insights_data,
    memory_in_use,
    minute_of,
)
from ..model.taskrecord import Task
from ..port.data import TaskStats
from ..port.errors import AgentError
from ..port.protocols import Runtime
from ..store.services import ServiceTable
from ..store.sqlite import Store
from .metrics import Metrics
from .waits import wait_set

log = logging.getLogger("fargo.metrics")
SWEEP_EVERY_S = 600.0
_PENDING = ("PROVISIONING", "PENDING", "ACTIVATING")


@dataclass(frozen=True)
class TaskSample:
    """One task at the latest pass: what it is, its counters, its figures."""

    task: Task
    stats: TaskStats
    figures: TaskFigures


@dataclass
class PassReport:
    """The latest pass, for /metrics and for measuring what sampling costs."""

    at: float = 0.0
    tasks: int = 0
    seconds: float = 0.0  # wall clock of the pass
    cpu_seconds: float = 0.0  # CPU time of the pass's thread
    read_cpu_seconds: float = 0.0  # ... of it, reading the tasks (the rest: figures, store)
    samples: list[TaskSample] = field(default_factory=list)
    statuses: dict[tuple[str, str], int] = field(default_factory=dict)  # (cluster, status)


def cluster_name(task: Task) -> str:
    return task.cluster_arn.rsplit("/", 1)[-1]


def service_name(task: Task) -> str | None:
    return task.group.removeprefix("service:") if task.group.startswith("service:") else None


def reading_of(task: Task, stats: TaskStats, at: float) -> TaskReading:
    net = stats.network
    return TaskReading(
        task_id=task.id, cluster=cluster_name(task), family=task.family,
        service=service_name(task), cpu_reserved=task.cpu, memory_reserved=task.memory,
        at=at, started_at=task.started_at, cpu_ns=stats.cpu_usage_ns,
        memory_bytes=memory_in_use(stats.memory_usage_bytes, stats.memory_inactive_file_bytes),
        rx_bytes=net.rx_bytes if net else None, tx_bytes=net.tx_bytes if net else None,
        read_bytes=stats.storage_read_bytes, write_bytes=stats.storage_write_bytes)


class MetricSampler:
    def __init__(self, store: Store, runtime: Runtime, metrics: Metrics,
                 services: ServiceTable, interval: float = 60.0,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.runtime = runtime
        self.metrics = metrics
        self.services = services
        self.interval = interval
        self.clock = clock
        self.state = SamplerState({r.task_id: r for r in metrics.tables.readings()})
        self.latest = PassReport()
        self.cpu_seconds_total = 0.0  # every pass's, since start
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._swept = time.monotonic()

    # ---- one pass
    def sample(self) -> PassReport:
        """Read every running task, record the figures; returns what the pass saw."""
        wall, cpu = time.monotonic(), time.thread_time()
        now = self.clock()
        tasks = self.store.active_tasks()
        statuses = Counter((cluster_name(t), t.last_status) for t in tasks)
        samples: list[tuple[Task, TaskStats, TaskReading]] = []
        for t in tasks:
            if t.last_status != "RUNNING":
                continue
            try:
                stats = self.runtime.stats(t.id)
            except (AgentError, OSError) as err:  # gone between the listing and the read
                log.debug("no stats for task %s: %s", t.id, err)
                continue
            samples.append((t, stats, reading_of(t, stats, now)))
        read_cpu = time.thread_time() - cpu
        figs = self.state.advance(r for _, _, r in samples)
        minute = minute_of(now - min(self.interval, 60.0) / 2)  # the interval's middle
        data = ecs_data(figs, minute) + insights_data(
            figs, self._service_counts(tasks), self._insights_modes(), minute)
        self.metrics.record(data, [r for _, _, r in samples])
        report = PassReport(
            at=now, tasks=len(samples), seconds=time.monotonic() - wall,
            cpu_seconds=time.thread_time() - cpu, read_cpu_seconds=read_cpu,
            samples=[TaskSample(t, s, f) for (t, s, _), f in zip(samples, figs, strict=True)],
            statuses=dict(statuses))
        self.latest = report
        self.cpu_seconds_total += report.cpu_seconds
        if time.monotonic() - self._swept > SWEEP_EVERY_S:
            self._swept = time.monotonic()
            self.metrics.sweep()
        return report

    def _insights_modes(self) -> dict[str, str]:
        modes = {}
        for doc in self.store.list_clusters():
            for s in doc.get("settings") or []:
                if s.get("name") == CONTAINER_INSIGHTS:
                    modes[doc["clusterName"]] = str(s.get("value"))
        return modes

    def _service_counts(self, tasks: list[Task]) -> list[ServiceCounts]:
        running: Counter[tuple[str, str]] = Counter()
        pending: Counter[tuple[str, str]] = Counter()
        for t in tasks:
            name = service_name(t)
            if name is None or t.desired_status != "RUNNING":
                continue
            if t.last_status == "RUNNING":
                running[(cluster_name(t), name)] += 1
            elif t.last_status in _PENDING:
                pending[(cluster_name(t), name)] += 1
        return [ServiceCounts(s.cluster_name, s.name, running[(s.cluster_name, s.name)],
                              pending[(s.cluster_name, s.name)], s.desired_count)
                for s in self.services.live()]

    # ---- the loop
    async def start(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="metric-sampler")

    async def close(self) -> None:
        """After the pass under way, if any: its thread writes to the store until it ends."""
        if self._task is not None:
            self._stop.set()
            await self._task
            self._task = None

    async def _loop(self) -> None:
        while not self._stop.is_set():
            now = self.clock()
            if await wait_set(self._stop, (now // self.interval + 1) * self.interval - now):
                return
            try:
                await asyncio.to_thread(self.sample)
            except Exception:  # noqa: BLE001 - a bad pass must not end sampling
                log.exception("metrics sampling pass failed")
