"""Per-second cost: the meter that writes each stopped task's usage into the usage table
(level-triggered: every STOPPED record without a row gets one, so a SIGKILL between a task's
stop and its row loses nothing and a second pass adds nothing), and Cost Explorer's queries
over those rows and the tasks still running (counted up to now)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..model import costexplorer as ce
from ..model.billing import Metered, Prices, TaskCharge, billed_span, charge_within
from ..model.names import ACCOUNT
from ..model.taskrecord import Task
from ..store.sqlite import Store
from ..store.usage import UsageTable
from .passloop import PassLoop

log = logging.getLogger("fargo.cost")
HORIZON = 40 * 31 * 86400.0  # usage rows are kept past Cost Explorer's 13 months


@dataclass(frozen=True)
class CostAndUsage:
    results: list[ce.TimeResult]
    groups: list[ce.GroupDef]
    next_token: str | None
    accounts: list[str]  # LINKED_ACCOUNT values, when grouped by it


@dataclass(frozen=True)
class Values:
    values: list[str]
    total: int
    next_token: str | None


class CostExplorer:
    def __init__(self, store: Store, usage: UsageTable, prices: Prices,
                 account: str = ACCOUNT, clock: Callable[[], float] = time.time):
        self.store = store
        self.usage = usage
        self.prices = prices
        self.account = account
        self.clock = clock
        self.loop = PassLoop(self._pass, every=10.0, settle=0.2, log=log,
                             what="metering stopped tasks")

    # -- the meter ------------------------------------------------------------------------

    def start(self) -> None:
        self.loop.start()
        self.loop.poke()  # at once: tasks may have stopped while no server ran

    async def close(self) -> None:
        await self.loop.close()

    def task_changed(self, task: Task) -> None:
        """The task book's listener: a task that just stopped is metered soon."""
        if task.last_status == "STOPPED":
            self.loop.poke()

    async def _pass(self) -> None:
        await asyncio.to_thread(self.meter)

    def meter(self) -> int:
        """Write the usage of every STOPPED task not yet metered; returns how many."""
        done = 0
        while ids := self.usage.unmetered_stopped():
            tasks = self.store.get_tasks(ids)
            self.usage.put([self._row(tasks[i]) for i in ids if i in tasks])
            done += len(ids)
            if len(ids) < 500:
                break
        if done:
            self.usage.drop_before(self.clock() - HORIZON)
        return done

    def meter_tasks(self, tasks: list[Task]) -> None:
        """Retention's hook: these stopped tasks are about to be forgotten."""
        missing = [t for t in tasks if t.id not in self.usage.metered([t.id for t in tasks])]
        if missing:
            self.usage.put([self._row(t) for t in missing])

    def _row(self, task: Task) -> tuple[str, Metered | None, float]:
        m = self.metered(task)
        end = task.stopped_at or task.execution_stopped_at or self.clock()
        return task.id, m, billed_span(m.start, end)[1] if m else end

    def metered(self, task: Task) -> Metered | None:
        """The task's billable life: from its pull's start to its stop (None while it runs).
        A task that never began to pull (it failed, or was stopped, before) is not billed,
        as on Fargate."""
        if task.pull_started_at is None:
            return None
        end = None
        if task.last_status == "STOPPED":
            end = task.stopped_at or task.execution_stopped_at or self.clock()
        cluster = task.cluster_arn.rsplit("/", 1)[-1]
        pod = None
        if task.pod is not None:
            cluster, pod = task.pod.cluster, f"{task.pod.namespace}/{task.pod.name}"
        tags = tuple(sorted((t["key"], t.get("value", ""))
                            for t in self.store.get_tags(task.arn)))
        return Metered(
            task_id=task.id, region=task.region, cluster=cluster, group=task.group,
            family=task.family, cpu=task.cpu, memory=task.memory,
            storage_gib=task.storage_gib, spot=task.capacity_provider == "FARGATE_SPOT",
            arm=pod is None and self._arm(task), start=task.pull_started_at, end=end,
            zone=task.availability_zone, pod=pod, tags=tags)

    def _arm(self, task: Task) -> bool:
        """By the task definition's runtimePlatform (X86_64 when it names none, as on AWS)."""
        family, _, revision = task.task_definition_arn.rpartition("/")[2].partition(":")
        if not revision.isdigit():
            return False
        td = self.store.get_taskdef(family, int(revision)) or {}
        return (td.get("runtimePlatform") or {}).get("cpuArchitecture") == "ARM64"

    def usages(self, start: float, end: float) -> list[Metered]:
        """Every billed task whose billed time may overlap [start, end): the running ones
        read first, so one that stops meanwhile is in the usage table when it is read."""
        running = [m for t in self.store.active_tasks() if (m := self.metered(t))]
        self.meter()
        rows = {m.task_id: m for m in self.usage.between(start, end)}
        for m in running:
            rows.setdefault(m.task_id, m)
        return list(rows.values())

    # -- Cost Explorer --------------------------------------------------------------------

    def _rows(self, period: ce.Period, now: float) -> list[ce.Row]:
        return [row for m in self.usages(period.start, period.end)
                for row in ce.rows_of(m, self.prices, now, self.account)]

    def get_cost_and_usage(self, *, time_period: Mapping[str, Any], granularity: str,
                           metrics: list[str], group_by: list[Mapping[str, Any]],
                           filter: Mapping[str, Any] | None, token: str | None,
                           request_print: str) -> CostAndUsage:
        now = self.clock()
        period = ce.parse_period(time_period, granularity, now)
        wanted = ce.parse_metrics(metrics)
        groups = ce.parse_group_by(group_by)
        where = ce.compile_filter(filter)
        offset = ce.read_token(token, request_print)
        results = ce.cost_and_usage(self._rows(period, now), period, granularity, wanted,
                                    groups, where, now)
        page, nxt = ce.page_results(results, offset)
        accounts = [self.account] if any(g.key == "LINKED_ACCOUNT" for g in groups) else []
        return CostAndUsage(page, groups, ce.make_token(nxt, request_print)
                            if nxt is not None else None, accounts)

    def _values(self, *, time_period: Mapping[str, Any],
                values_of: Callable[[ce.Row], Iterable[str]], search: str | None,
                filter: Mapping[str, Any] | None, sort_by: list[Mapping[str, Any]] | None,
                max_results: int | None, token: str | None, request_print: str) -> Values:
        now = self.clock()
        period = ce.parse_period(time_period, "DAILY", now)
        where = ce.compile_filter(filter)
        sort = ce.parse_sort(sort_by)
        offset = ce.read_token(token, request_print)
        rows = [r for r in self._rows(period, now) if where(r)]
        values = ce.distinct_values(rows, period, values_of, search, sort)
        if offset > len(values):
            raise ce.InvalidNextTokenException("The NextPageToken is not valid.")
        size = min(max_results or ce.PAGE_VALUES, ce.PAGE_VALUES)
        more = offset + size < len(values)
        return Values(values[offset:offset + size], len(values),
                      ce.make_token(offset + size, request_print) if more else None)

    def get_dimension_values(self, *, time_period: Mapping[str, Any], dimension: str,
                             context: str | None, search: str | None,
                             filter: Mapping[str, Any] | None,
                             sort_by: list[Mapping[str, Any]] | None, max_results: int | None,
                             token: str | None, request_print: str) -> Values:
        if context not in (None, "COST_AND_USAGE"):
            raise ce.ValidationException(f"fargo has no reservations or Savings Plans: "
                                         f"Context {context} is not supported.")
        dim = ce.parse_group_by([{"Type": "DIMENSION", "Key": dimension}])[0].key
        return self._values(time_period=time_period, values_of=lambda r: [r.dims[dim]],
                            search=search, filter=filter, sort_by=sort_by,
                            max_results=max_results, token=token, request_print=request_print)

    def get_tags(self, *, time_period: Mapping[str, Any], tag_key: str | None,
                 search: str | None, filter: Mapping[str, Any] | None,
                 sort_by: list[Mapping[str, Any]] | None, max_results: int | None,
                 token: str | None, request_print: str) -> Values:
        """The tag keys used in the period, or with TagKey that key's values."""
        def values_of(row: ce.Row) -> Iterable[str]:
            if tag_key is None:
                return list(row.tags)
            return [row.tags[tag_key]] if tag_key in row.tags else []

        return self._values(time_period=time_period, values_of=values_of, search=search,
                            filter=filter, sort_by=sort_by, max_results=max_results,
                            token=token, request_print=request_print)

    # -- fargo's own per-task view ----------------------------------------------------------

    def task_charges(self, start: float, end: float) -> list[TaskCharge]:
        """Each task's bill within [start, end), for `fargo cost`."""
        now = self.clock()
        charges = [charge_within(m, self.prices, (start, end), now)
                   for m in self.usages(start, end)]
        return sorted((c for c in charges if c.seconds > 0),
                      key=lambda c: (c.usage.cluster, c.usage.group, c.usage.start,
                                     c.usage.task_id))
