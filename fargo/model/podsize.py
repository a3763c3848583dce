"""Sizing a pod for Fargate (FARGATE.md section 7) and naming what it got."""

from __future__ import annotations

from typing import Any

from . import quantity
from .sizes import smallest_fit

NODE_OVERHEAD_MIB = 256  # the node's own components (kubelet, kube-proxy, containerd)
DEFAULT_SIZE = (256, 512)  # 0.25 vCPU / 0.5 GB when nothing is requested


def _requests(container: dict[str, Any]) -> tuple[int, int]:
    """A container's ask: its requests, or its limits where requests are absent (k8s copies
    limits into missing requests)."""
    res = container.get("resources") or {}
    req = dict(res.get("limits") or {})
    req.update(res.get("requests") or {})
    cpu = quantity.cpu_units(req["cpu"]) if "cpu" in req else 0
    mem = quantity.mebibytes(req["memory"]) if "memory" in req else 0
    return cpu, mem


def pod_size(spec: dict[str, Any]) -> tuple[int, int]:
    """(cpu units, memory MiB) of the Fargate size that runs this pod."""
    inits = [_requests(c) for c in spec.get("initContainers") or []]
    apps = [_requests(c) for c in spec.get("containers") or []]
    cpu = max([c for c, _ in inits] + [sum(c for c, _ in apps)])
    mem = max([m for _, m in inits] + [sum(m for _, m in apps)])
    if cpu == 0 and mem == 0:
        return DEFAULT_SIZE
    return smallest_fit(cpu, mem + NODE_OVERHEAD_MIB)


def _number(value: float) -> str:
    return f"{value:g}"


def capacity_provisioned(cpu: int, memory: int) -> str:
    """'2vCPU 9GB', '0.25vCPU 0.5GB': the CapacityProvisioned annotation."""
    return f"{_number(cpu / 1024)}vCPU {_number(memory / 1024)}GB"
