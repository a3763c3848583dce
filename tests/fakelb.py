"""An in-memory load balancer data plane: port/loadbalancer.py's LoadBalancers without root,
netns or HAProxy, so control/elbv2 can be tested in milliseconds.

It holds the last spec applied per load balancer; each target's health check is what a test
says (`plane.set_check(pool, ip, port, "UP")`), INIT until then (DRAIN while draining).
Every call is recorded (`plane.calls`) and `plane.refuse = "why"` makes apply fail with
LoadBalancerError. Thread-safe: control calls the plane from worker threads."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from fargo.port.loadbalancer import LoadBalancerError, LoadBalancerSpec, TargetCheck


@dataclass(frozen=True)
class Check:
    status: str
    check: str | None = None
    code: int | None = None


class FakeLoadBalancers:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.specs: dict[str, LoadBalancerSpec] = {}
        self.calls: list[tuple[str, str]] = []  # (method, load balancer id)
        self.health: dict[tuple[str, str, int], Check] = {}
        self.refuse: str | None = None  # apply fails with this, while set

    def apply(self, spec: LoadBalancerSpec) -> None:
        with self._lock:
            self.calls.append(("apply", spec.id))
            if self.refuse is not None:
                raise LoadBalancerError(self.refuse)
            self.specs[spec.id] = spec

    def remove(self, lb_id: str) -> None:
        with self._lock:
            self.calls.append(("remove", lb_id))
            self.specs.pop(lb_id, None)

    def checks(self, lb_id: str) -> list[TargetCheck]:
        with self._lock:
            spec = self.specs.get(lb_id)
            out = []
            for pool in spec.pools if spec else ():
                for t in pool.targets:
                    seen = self.health.get((pool.id, t.ip, t.port), Check("INIT"))
                    status = "DRAIN" if t.draining and seen.status == "UP" else seen.status
                    out.append(TargetCheck(pool.id, t.ip, t.port, status, seen.check,
                                           seen.code))
            return out

    def running(self) -> list[str]:
        with self._lock:
            return list(self.specs)

    # ---- for tests
    def set_check(self, pool: str, ip: str, port: int, status: str, check: str | None = None,
                  code: int | None = None) -> None:
        with self._lock:
            self.health[(pool, ip, port)] = Check(status, check, code)

    def applied(self, lb_id: str) -> int:
        with self._lock:
            return sum(1 for c in self.calls if c == ("apply", lb_id))
