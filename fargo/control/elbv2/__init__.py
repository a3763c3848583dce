"""Elastic Load Balancing (v2): the operations (loadbalancers.py, targetgroups.py,
listeners.py) over the store (store/elbv2.py), and the reconciler (reconciler.py) that makes
the host's data plane (port/loadbalancer.py's LoadBalancers) serve what the store says."""

from __future__ import annotations

import time
from collections.abc import Callable

from ...port.loadbalancer import LoadBalancers
from ...store.elbv2 import Elbv2Tables
from ...store.sqlite import Store
from ..network import Networks
from ..tasks.placement import Placement
from .base import RuleView, TargetGroupInfo, TargetHealthView, TargetRequest, TargetState, new_hex_id
from .listeners import ListenerOps
from .loadbalancers import LoadBalancerOps
from .reconciler import Reconciler
from .targetgroups import TargetGroupOps

__all__ = ["Elbv2", "RuleView", "TargetGroupInfo", "TargetHealthView", "TargetRequest",
           "TargetState"]


class Elbv2(LoadBalancerOps, TargetGroupOps, ListenerOps):
    """Every ELBv2 operation, the ECS services integration's calls (register, deregister,
    health, drained, target_group, and the in_use_by hook), and the reconciler's lifecycle
    (start before the API opens, close on the way out: the load balancers keep running)."""

    def __init__(self, store: Store, networks: Networks, placement: Placement,
                 plane: LoadBalancers, region: str, clock: Callable[[], float] = time.time,
                 new_id: Callable[[], str] = new_hex_id):
        tables = Elbv2Tables(store)
        reconciler = Reconciler(tables, plane, networks, placement, networks.subnets, clock)
        super().__init__(tables, networks, placement, reconciler, region, clock, new_id)
        self.adopt_addresses()  # before any task can be placed on one of them

    async def start(self) -> None:
        await self.reconciler.start()

    async def close(self) -> None:
        await self.reconciler.close()
