"""A host without a load balancer data plane: it serves no load balancer and refuses to make
one, so ELBv2's records say why (State failed) instead of pretending. The server uses it
until the HAProxy data plane is there."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..port.loadbalancer import LoadBalancerError, LoadBalancers, LoadBalancerSpec, TargetCheck


class NoLoadBalancers:
    def apply(self, spec: LoadBalancerSpec) -> None:
        raise LoadBalancerError("this host has no load balancer data plane (HAProxy) yet")

    def remove(self, lb_id: str) -> None:
        return None

    def checks(self, lb_id: str) -> list[TargetCheck]:
        return []

    def running(self) -> list[str]:
        return []


if TYPE_CHECKING:  # mypy checks that it is the port's LoadBalancers
    def _is_plane(plane: NoLoadBalancers) -> LoadBalancers:
        return plane
