"""metrics.k8s.io/v1beta1 as metrics-server serves it (pure): PodMetrics and NodeMetrics from
two readings of cgroup counters, CPU as nanocores over the window between them, memory as the
working set (usage less inactive page cache) at the later one.

Nothing of this kind is stored: the rows below only say what the kinds are. Their plurals
(pods, nodes) are the core kinds', so their rows are keyed apart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .kubekinds import KindRule, register

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
POD_KEY, NODE_KEY = "pods.metrics.k8s.io", "nodes.metrics.k8s.io"
MIN_WINDOW = 1.0  # seconds: a shorter window between readings says too little of a rate


@dataclass(frozen=True)
class Reading:
    """Counters of a container (or a whole task) at one moment, wall clock."""

    at: float
    cpu_ns: int | None
    memory_bytes: int | None  # the working set


@dataclass(frozen=True)
class Usage:
    nanocores: int
    memory_bytes: int
    window: float  # seconds the CPU figure is over


def usage(before: Reading | None, started_at: float | None, now: Reading) -> Usage | None:
    """CPU since the reading before (if it is at least MIN_WINDOW old), else since the start
    (its counter began at 0 then); None when neither gives a window."""
    if now.cpu_ns is None:
        return None
    base_at, base_ns = (before.at, before.cpu_ns) if (
        before is not None and before.cpu_ns is not None and before.cpu_ns <= now.cpu_ns
        and now.at - before.at >= MIN_WINDOW) else (started_at, 0)
    if base_at is None or now.at - base_at <= 0:
        return None
    window = now.at - base_at
    cores = (now.cpu_ns - (base_ns or 0)) / window  # ns of CPU per second: nanocores
    return Usage(max(0, round(cores)), max(0, now.memory_bytes or 0), window)


def working_sets(usages: dict[str, int | None], inactive: int | None) -> dict[str, int]:
    """Each container's working set: its usage less its share (by usage) of the task's
    inactive page cache (the kernel counts that per task here, not per container)."""
    total = sum(u or 0 for u in usages.values())
    spare = min(inactive or 0, total)
    return {name: max(0, (u or 0) - (spare * (u or 0) // total if total else 0))
            for name, u in usages.items()}


def cpu_quantity(nanocores: int) -> str:
    return f"{nanocores}n"


def memory_quantity(nbytes: int) -> str:
    return f"{nbytes // 1024}Ki"


def go_duration(seconds: float) -> str:
    """A window as Go's time.Duration prints it: 20.064s, 1m0.5s, 0s."""
    if seconds <= 0:
        return "0s"
    ms = round(seconds * 1000)
    minutes, ms = divmod(ms, 60_000)
    hours, minutes = divmod(minutes, 60)
    secs = f"{ms // 1000}.{ms % 1000:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


def pod_metrics(pod: dict[str, Any], containers: dict[str, Usage], at: str,
                created: str) -> dict[str, Any]:
    """at: the reading's time (RFC 3339); created: now (metrics-server stamps each answer)."""
    meta = pod["metadata"]
    window = max((u.window for u in containers.values()), default=0.0)
    return {"kind": "PodMetrics", "apiVersion": API_VERSION,
            "metadata": {"name": meta["name"], "namespace": meta.get("namespace"),
                         "creationTimestamp": created,
                         **({"labels": dict(meta["labels"])} if meta.get("labels") else {})},
            "timestamp": at, "window": go_duration(window),
            "containers": [{"name": name, "usage": {"cpu": cpu_quantity(u.nanocores),
                                                    "memory": memory_quantity(u.memory_bytes)}}
                           for name, u in containers.items()]}


def node_metrics(node: dict[str, Any], use: Usage, at: str, created: str) -> dict[str, Any]:
    meta = node["metadata"]
    return {"kind": "NodeMetrics", "apiVersion": API_VERSION,
            "metadata": {"name": meta["name"], "creationTimestamp": created,
                         **({"labels": dict(meta["labels"])} if meta.get("labels") else {})},
            "timestamp": at, "window": go_duration(use.window),
            "usage": {"cpu": cpu_quantity(use.nanocores),
                      "memory": memory_quantity(use.memory_bytes)}}


register(
    KindRule(POD_KEY, "PodMetrics", group=GROUP, version=VERSION),
    KindRule(NODE_KEY, "NodeMetrics", group=GROUP, version=VERSION, namespaced=False),
)
