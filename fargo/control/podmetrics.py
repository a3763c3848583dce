"""What `kubectl top` reads (metrics.k8s.io): each running pod's containers and each
Fargate node (one per pod) as metrics-server would report them. The counters are read when
asked (Runtime.stats) and the rate is over the window since the metric sampler's latest pass
read the same counters (control/metricsampler.py), or since the container started when that
pass did not see it (or was under a second ago)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..model import podmetrics as rules
from ..model.metrics import memory_in_use
from ..model.podmetrics import Reading, Usage
from ..model.taskrecord import Task
from ..port.data import TaskStats
from ..port.errors import AgentError
from ..port.protocols import Runtime
from ..store.sqlite import Store
from .kubestate import KubeState, now_rfc3339
from .metricsampler import MetricSampler

Obj = dict[str, Any]


class PodUsage:
    def __init__(self, state: KubeState, store: Store, runtime: Runtime,
                 sampler: MetricSampler):
        self.state = state
        self.store = store
        self.runtime = runtime
        self.sampler = sampler

    def _running(self, objs: list[Obj]) -> list[tuple[Obj, Task]]:
        out = []
        for obj in objs:
            tid = (obj.get("_fargo") or {}).get("task")
            task = self.store.get_task(tid) if tid else None
            if task is not None and task.last_status == "RUNNING":
                out.append((obj, task))
        return out

    async def _read(self, found: list[tuple[Obj, Task]]) -> list[tuple[Obj, Task, TaskStats,
                                                                     float]]:
        """Each task's counters now (off the loop: they are cgroup files), with when."""
        def work() -> list[tuple[Obj, Task, TaskStats, float]]:
            out = []
            for obj, task in found:
                try:
                    stats = self.runtime.stats(task.id)
                except (AgentError, OSError):  # it ended meanwhile
                    continue
                out.append((obj, task, stats, time.time()))
            return out
        return await asyncio.to_thread(work)

    def _base(self) -> tuple[float, dict[str, TaskStats]]:
        latest = self.sampler.latest
        return latest.at, {s.task.id: s.stats for s in latest.samples}

    async def pods(self, cluster: str, ns: str | None, name: str | None) -> list[Obj]:
        """PodMetrics of the running pods of a namespace (None: all), or of one pod."""
        if name is not None:
            one = self.state.find(cluster, "pods", ns or "", name)
            objs = [one] if one is not None else []
        else:
            objs = self.state.list(cluster, "pods", ns)
        base_at, base = self._base()
        out = []
        for pod, task, stats, at in await self._read(self._running(objs)):
            apps = {c["name"] for c in pod["spec"]["containers"]}
            running = [c for c in task.containers if c.name in apps and c.last_status == "RUNNING"
                       and c.name in stats.containers]
            sets = rules.working_sets({c.name: stats.containers[c.name].memory_usage_bytes
                                       for c in running}, stats.memory_inactive_file_bytes)
            before = base.get(task.id)
            usages: dict[str, Usage] = {}
            for c in running:
                prev = before.containers.get(c.name) if before is not None else None
                # A reading of an earlier run of the container says nothing of this one.
                was = Reading(base_at, prev.cpu_usage_ns, None) if (
                    prev is not None and c.started_at is not None
                    and base_at >= c.started_at) else None
                u = rules.usage(was, c.started_at, Reading(
                    at, stats.containers[c.name].cpu_usage_ns, sets[c.name]))
                if u is not None:
                    usages[c.name] = u
            if usages:
                out.append(rules.pod_metrics(pod, usages, now_rfc3339(at), now_rfc3339()))
        return out

    async def nodes(self, cluster: str, name: str | None) -> list[Obj]:
        """NodeMetrics: a Fargate node is its pod's task, all of it."""
        if name is not None:
            one = self.state.find(cluster, "nodes", "", name)
            objs = [one] if one is not None else []
        else:
            objs = self.state.list(cluster, "nodes")
        base_at, base = self._base()
        out = []
        for node, task, stats, at in await self._read(self._running(objs)):
            before = base.get(task.id)
            was = Reading(base_at, before.cpu_usage_ns, None) if before is not None else None
            u = rules.usage(was, task.started_at, Reading(
                at, stats.cpu_usage_ns,
                memory_in_use(stats.memory_usage_bytes, stats.memory_inactive_file_bytes)))
            if u is not None:
                out.append(rules.node_metrics(node, u, now_rfc3339(at), now_rfc3339()))
        return out
