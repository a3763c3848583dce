"""Metrics as CloudWatch keeps them, and the figures fargo publishes about its tasks.

A metric is (namespace, name, dimensions); its data are per-minute aggregates (SampleCount,
Sum, Minimum, Maximum) per unit, with, while they stay few, the distinct values and how often
each came (from which percentiles are answered; a statistic set carries none, as on
CloudWatch). The published figures follow ECS: `AWS/ECS` CPUUtilization and
MemoryUtilization (what the tasks use as a percent of what they reserved: Average is the
total used over the total reserved, Minimum and Maximum the least and most used task), and,
for clusters with Container Insights, `ECS/ContainerInsights` per task (one value a task and
pass in each dimension set the task belongs to) and per service (task counts).

Pure: readings, times and settings are passed in."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

ECS_NAMESPACE = "AWS/ECS"
INSIGHTS_NAMESPACE = "ECS/ContainerInsights"
MINUTE = 60
# Distinct values kept per minute point for percentiles; past this a point keeps only its
# aggregate (and percentiles over it are not answered).
MAX_DISTINCT = 200

Dims = tuple[tuple[str, str], ...]  # (name, value) pairs sorted by name: a metric's identity


def dims_of(pairs: Iterable[tuple[str, str]] | Mapping[str, str]) -> Dims:
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return tuple(sorted((str(k), str(v)) for k, v in items))


def minute_of(ts: float) -> int:
    """The start (epoch seconds) of the minute ts falls in."""
    return int(ts // MINUTE) * MINUTE


# ---------------------------------------------------------------- aggregates


@dataclass(frozen=True)
class Stats:
    """SampleCount, Sum, Minimum, Maximum of some values."""

    count: float
    sum: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, value: float, count: float = 1.0) -> Stats:
        return cls(count, value * count, value, value)

    def merge(self, other: Stats) -> Stats:
        return Stats(self.count + other.count, self.sum + other.sum,
                     min(self.minimum, other.minimum), max(self.maximum, other.maximum))

    @property
    def average(self) -> float:
        return self.sum / self.count if self.count else 0.0


Values = dict[float, float]  # distinct value -> how many times it came


def stats_of_values(values: Mapping[float, float]) -> Stats | None:
    counted = {v: c for v, c in values.items() if c > 0}
    if not counted:
        return None
    return Stats(sum(counted.values()), sum(v * c for v, c in counted.items()),
                 min(counted), max(counted))


def merge_values(a: Values | None, b: Values | None) -> Values | None:
    """Two points' distinct values together; None (unknown) if either is, or past the cap."""
    if a is None or b is None:
        return None
    out = dict(a)
    for v, c in b.items():
        out[v] = out.get(v, 0.0) + c
    return out if len(out) <= MAX_DISTINCT else None


def percentile(values: Mapping[float, float], p: float) -> float | None:
    """The nearest-rank p-th percentile (0..100) of counted values."""
    ordered = sorted((v, c) for v, c in values.items() if c > 0)
    total = sum(c for _, c in ordered)
    if not ordered:
        return None
    if p <= 0:
        return ordered[0][0]
    rank = math.ceil(p / 100.0 * total - 1e-9)
    seen = 0.0
    for v, c in ordered:
        seen += c
        if seen >= rank:
            return v
    return ordered[-1][0]


@dataclass(frozen=True)
class Datum:
    """One aggregate of one metric for one minute, in one unit."""

    namespace: str
    name: str
    dims: Dims
    unit: str
    minute: int
    stats: Stats
    values: Values | None = None  # None: not known (a statistic set, or too many)

    @property
    def key(self) -> tuple[str, str, Dims, str, int]:
        return (self.namespace, self.name, self.dims, self.unit, self.minute)


def combine(data: Iterable[Datum]) -> list[Datum]:
    """Data of the same metric, unit and minute merged into one each (first-seen order)."""
    merged: dict[tuple[str, str, Dims, str, int], Datum] = {}
    for d in data:
        had = merged.get(d.key)
        merged[d.key] = d if had is None else Datum(
            d.namespace, d.name, d.dims, d.unit, d.minute, had.stats.merge(d.stats),
            merge_values(had.values, d.values))
    return list(merged.values())


# ---------------------------------------------------------------- periods of stored points


@dataclass(frozen=True)
class Point:
    """A stored minute of one metric in one unit."""

    minute: int
    unit: str
    stats: Stats
    values: Values | None


@dataclass
class Bucket:
    start: int
    unit: str
    stats: Stats
    values: Values | None


def aligned_start(start: float) -> int:
    """CloudWatch rounds a start time of the last 15 days down to its minute."""
    return minute_of(start)


def buckets(points: Iterable[Point], start: float, end: float, period: int) -> list[Bucket]:
    """The points in [start, end) gathered into periods from the aligned start, per unit,
    in time order."""
    origin = aligned_start(start)
    out: dict[tuple[int, str], Bucket] = {}
    for p in points:
        if not (origin <= p.minute < end):
            continue
        at = origin + (p.minute - origin) // period * period
        had = out.get((at, p.unit))
        if had is None:
            out[(at, p.unit)] = Bucket(at, p.unit, p.stats, p.values)
        else:
            had.stats = had.stats.merge(p.stats)
            had.values = merge_values(had.values, p.values)
    return [out[k] for k in sorted(out)]


STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")


def statistic(bucket: Bucket, stat: str) -> float | None:
    """One statistic of a bucket: a standard one, or a percentile `pNN` / `pNN.N` (None when
    the values behind it are not known)."""
    s = bucket.stats
    if stat == "SampleCount":
        return s.count
    if stat == "Average":
        return s.average
    if stat == "Sum":
        return s.sum
    if stat == "Minimum":
        return s.minimum
    if stat == "Maximum":
        return s.maximum
    p = percentile_of(stat)
    if p is None or bucket.values is None:
        return None
    return percentile(bucket.values, p)


def percentile_of(stat: str) -> float | None:
    """NN of a `pNN` statistic (0..100, at most 10 decimals), else None."""
    if len(stat) < 2 or stat[0] != "p":
        return None
    text = stat[1:]
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > 10 or \
            (text.endswith(".")):
        return None
    value = float(text)
    return value if 0 <= value <= 100 else None


# ---------------------------------------------------------------- sampling tasks


@dataclass(frozen=True)
class TaskReading:
    """One read of a running task's counters, with what the figures about it are grouped by."""

    task_id: str
    cluster: str
    family: str
    service: str | None  # the service whose task it is (group "service:NAME")
    cpu_reserved: int  # CPU units of the task
    memory_reserved: int  # MiB of the task
    at: float  # wall clock of the read
    started_at: float | None  # when it became RUNNING: the first read's base
    cpu_ns: int | None = None
    memory_bytes: int | None = None  # in use: the cgroup's usage less inactive page cache
    rx_bytes: int | None = None
    tx_bytes: int | None = None
    read_bytes: int | None = None
    write_bytes: int | None = None


@dataclass(frozen=True)
class TaskFigures:
    """A task over one sampling interval."""

    reading: TaskReading
    cpu_used: float | None  # CPU units (1024 a vCPU), on average over the interval
    memory_used_mib: float | None
    rx_rate: float | None  # bytes/second received over the interval
    tx_rate: float | None
    read_bytes: int | None  # bytes read in the interval
    write_bytes: int | None


def _delta(now: int | None, before: int | None) -> int | None:
    """How much a counter grew; a counter that went back (reset) counts from 0."""
    if now is None:
        return None
    if before is None or now < before:
        return now
    return now - before


def task_figures(prev: TaskReading | None, now: TaskReading) -> TaskFigures:
    """Figures between two reads of a task; without an earlier read, since it started (its
    counters began about then)."""
    since = prev.at if prev is not None else now.started_at
    seconds = now.at - since if since is not None else 0.0

    def rate(value: int | None, before: int | None) -> float | None:
        d = _delta(value, before)
        return d / seconds if d is not None and seconds > 0 else None

    before = prev or TaskReading(now.task_id, now.cluster, now.family, now.service, 0, 0,
                                 0.0, None)  # no counters: each counts from 0
    cpu_ns = rate(now.cpu_ns, before.cpu_ns)
    memory = now.memory_bytes / (1 << 20) if now.memory_bytes is not None else None
    return TaskFigures(
        reading=now,
        cpu_used=cpu_ns * 1024 / 1e9 if cpu_ns is not None else None,
        memory_used_mib=memory,
        rx_rate=rate(now.rx_bytes, before.rx_bytes),
        tx_rate=rate(now.tx_bytes, before.tx_bytes),
        read_bytes=_delta(now.read_bytes, before.read_bytes),
        write_bytes=_delta(now.write_bytes, before.write_bytes))


def memory_in_use(usage: int | None, inactive_file: int | None) -> int | None:
    """What a task's memory figure counts: the cgroup's usage less the page cache the kernel
    would reclaim first (as `docker stats` shows it)."""
    if usage is None:
        return None
    return max(0, usage - (inactive_file or 0))


# ---------------------------------------------------------------- what is published


@dataclass(frozen=True)
class ServiceCounts:
    """A service's task counts at one moment (Container Insights' RunningTaskCount, ...)."""

    cluster: str
    service: str
    running: int
    pending: int
    desired: int


INSIGHTS_MODES = ("enabled", "enhanced")


def _utilization(figs: list[TaskFigures], used: str, reserved: str) -> Stats | None:
    """AWS/ECS's utilization of a group of tasks: Average = total used / total reserved,
    Minimum and Maximum of the tasks' own percentages, SampleCount the tasks."""
    pairs = []
    for f in figs:
        u = getattr(f, used)
        r = getattr(f.reading, reserved)
        if u is not None and r:
            pairs.append((u, r))
    if not pairs:
        return None
    each = [100.0 * u / r for u, r in pairs]
    overall = 100.0 * sum(u for u, _ in pairs) / sum(r for _, r in pairs)
    return Stats(len(pairs), overall * len(pairs), min(each), max(each))


def _groups(figs: Iterable[TaskFigures]) -> dict[Dims, list[TaskFigures]]:
    out: dict[Dims, list[TaskFigures]] = {}
    for f in figs:
        r = f.reading
        out.setdefault(dims_of({"ClusterName": r.cluster}), []).append(f)
        if r.service:
            out.setdefault(dims_of({"ClusterName": r.cluster, "ServiceName": r.service}),
                           []).append(f)
    return out


def ecs_data(figs: Iterable[TaskFigures], minute: int) -> list[Datum]:
    """AWS/ECS CPUUtilization and MemoryUtilization per cluster and per service."""
    out = []
    for dims, group in _groups(figs).items():
        for name, used, reserved in (("CPUUtilization", "cpu_used", "cpu_reserved"),
                                     ("MemoryUtilization", "memory_used_mib",
                                      "memory_reserved")):
            stats = _utilization(group, used, reserved)
            if stats is None:
                continue
            values: Values = {}
            for f in group:
                u, r = getattr(f, used), getattr(f.reading, reserved)
                if u is not None and r:
                    v = 100.0 * u / r
                    values[v] = values.get(v, 0.0) + 1
            out.append(Datum(ECS_NAMESPACE, name, dims, "Percent", minute, stats,
                             values if len(values) <= MAX_DISTINCT else None))
    return out


# Container Insights' per-task figures: (metric, unit, what of TaskFigures)
_INSIGHTS_TASK = (
    ("CpuUtilized", "None", "cpu_used"),
    ("CpuReserved", "None", "cpu_reserved"),
    ("MemoryUtilized", "Megabytes", "memory_used_mib"),
    ("MemoryReserved", "Megabytes", "memory_reserved"),
    ("NetworkRxBytes", "Bytes/Second", "rx_rate"),
    ("NetworkTxBytes", "Bytes/Second", "tx_rate"),
    ("StorageReadBytes", "Bytes", "read_bytes"),
    ("StorageWriteBytes", "Bytes", "write_bytes"),
)


def _insights_dims(r: TaskReading, mode: str) -> list[Dims]:
    sets = [{"ClusterName": r.cluster},
            {"ClusterName": r.cluster, "TaskDefinitionFamily": r.family}]
    if r.service:
        sets.append({"ClusterName": r.cluster, "ServiceName": r.service})
    if mode == "enhanced":
        sets.append({"ClusterName": r.cluster, "TaskDefinitionFamily": r.family,
                     "TaskId": r.task_id})
    return [dims_of(s) for s in sets]


def _figure(f: TaskFigures, attr: str) -> float | None:
    value = getattr(f, attr, None)
    if value is None:
        value = getattr(f.reading, attr, None)
    return float(value) if value is not None else None


class _Sum:
    """A running aggregate of one metric's values (cheaper than merging Datums)."""

    __slots__ = ("count", "total", "low", "high", "values")

    def __init__(self) -> None:
        self.count = 0.0
        self.total = 0.0
        self.low = math.inf
        self.high = -math.inf
        self.values: Values | None = {}

    def add(self, v: float) -> None:
        self.count += 1
        self.total += v
        self.low = min(self.low, v)
        self.high = max(self.high, v)
        if self.values is not None:
            self.values[v] = self.values.get(v, 0.0) + 1
            if len(self.values) > MAX_DISTINCT:
                self.values = None


def insights_data(figs: Iterable[TaskFigures], counts: Iterable[ServiceCounts],
                  modes: Mapping[str, str], minute: int) -> list[Datum]:
    """ECS/ContainerInsights for the clusters whose containerInsights is enabled or
    enhanced (`modes`: cluster name -> setting): each task's figure is one value in every
    dimension set it belongs to, each service's counts one value each."""
    sums: dict[tuple[str, Dims, str], _Sum] = {}

    def add(name: str, dims: Dims, unit: str, value: float) -> None:
        acc = sums.get((name, dims, unit))
        if acc is None:
            acc = sums[(name, dims, unit)] = _Sum()
        acc.add(value)

    for f in figs:
        mode = modes.get(f.reading.cluster, "disabled")
        if mode not in INSIGHTS_MODES:
            continue
        sets = _insights_dims(f.reading, mode)
        for name, unit, attr in _INSIGHTS_TASK:
            value = _figure(f, attr)
            if value is not None:
                for dims in sets:
                    add(name, dims, unit, value)
    for c in counts:
        if modes.get(c.cluster, "disabled") not in INSIGHTS_MODES:
            continue
        dims = dims_of({"ClusterName": c.cluster, "ServiceName": c.service})
        for name, value in (("RunningTaskCount", c.running), ("PendingTaskCount", c.pending),
                            ("DesiredTaskCount", c.desired)):
            add(name, dims, "Count", float(value))
    return [Datum(INSIGHTS_NAMESPACE, name, dims, unit, minute,
                  Stats(a.count, a.total, a.low, a.high), a.values)
            for (name, dims, unit), a in sums.items()]


@dataclass
class SamplerState:
    """What the sampler keeps between passes: each task's last reading."""

    last: dict[str, TaskReading] = field(default_factory=dict)

    def advance(self, readings: Iterable[TaskReading]) -> list[TaskFigures]:
        """Figures for this pass's readings; tasks not read this time are forgotten."""
        figs = []
        seen: dict[str, TaskReading] = {}
        for r in readings:
            figs.append(task_figures(self.last.get(r.task_id), r))
            seen[r.task_id] = r
        self.last = seen
        return figs
