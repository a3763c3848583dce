"""metrics.k8s.io/v1beta1, the Metrics API `kubectl top` finds through discovery: PodMetrics
and NodeMetrics, get and list only (as metrics-server serves them), read from
control/podmetrics.py when asked. Their rows in resources.py name these readers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...model import podmetrics
from ...model.kubeerrors import KubeError
from . import tables

if TYPE_CHECKING:
    from .resources import Scope

Obj = dict[str, Any]


def _usage(s: Scope) -> Any:
    usage = s.pods.usage
    if usage is None:  # a server without a sampler (none is built that way)
        raise KubeError(503, "ServiceUnavailable", "the metrics API is not available")
    return usage


async def read_pods(s: Scope, ns: str | None, name: str | None) -> list[Obj]:
    return list(await _usage(s).pods(s.cluster, ns, name))


async def read_nodes(s: Scope, ns: str | None, name: str | None) -> list[Obj]:
    return list(await _usage(s).nodes(s.cluster, name))


def _pod_row(m: Obj) -> list[Any]:
    cpu = sum(int(c["usage"]["cpu"].rstrip("n")) for c in m.get("containers") or [])
    mem = sum(int(c["usage"]["memory"].removesuffix("Ki")) for c in m.get("containers") or [])
    return [m["metadata"]["name"], f"{cpu // 1_000_000}m", f"{mem // 1024}Mi", m["window"]]


def _node_row(m: Obj) -> list[Any]:
    cpu = int(m["usage"]["cpu"].rstrip("n"))
    mem = int(m["usage"]["memory"].removesuffix("Ki"))
    return [m["metadata"]["name"], f"{cpu // 1_000_000}m", f"{mem // 1024}Mi", m["window"]]


_COLUMNS = [("Name", "string", 0, "name"), ("CPU", "string", 0, "CPU usage"),
            ("Memory", "string", 0, "memory usage"), ("Window", "string", 0, "window")]
PODS = tables.Printer(_COLUMNS, _pod_row)
NODES = tables.Printer(_COLUMNS, _node_row)
POD_KEY, NODE_KEY = podmetrics.POD_KEY, podmetrics.NODE_KEY
