"""The controllers of every EKS cluster's Kubernetes objects (Deployments, ReplicaSets, Jobs,
the garbage collector...), run as kube-controller-manager runs them: each one a
level-triggered pass per cluster from the store, at least every EVERY seconds (timed work,
such as a CronJob's schedule or a deadline, is found by those passes) and soon after a
write it cares about.

A pass is synchronous, with no `await` between what it reads and what it writes, so no API
call interleaves with it; after a SIGKILL the next pass decides from the same store."""

from __future__ import annotations

import logging

from ..store.kube import KubeTables
from .kubestate import Change, KubeState
from .passloop import PassLoop

log = logging.getLogger("fargo.kubecontrol")
EVERY = 2.0  # seconds between passes when nothing pokes
SETTLE = 0.05  # a burst of writes is one pass


class Controller:
    """One controller: a pass over one cluster, and which writes should wake it."""
    name = "controller"

    def reconcile(self, cluster: str) -> None:
        raise NotImplementedError

    def interested(self, change: Change) -> bool:
        return True


class KubeControllers:
    def __init__(self, state: KubeState, tables: KubeTables, controllers: list[Controller],
                 every: float = EVERY):
        self.state = state
        self.tables = tables
        self.controllers = controllers
        self.loops = [self._loop(c, every) for c in controllers]
        state.listeners.append(self._told)

    def _loop(self, c: Controller, every: float) -> PassLoop:
        async def run_pass() -> None:
            self.run(c)
        return PassLoop(run_pass, every, SETTLE, log, c.name)

    def run(self, c: Controller) -> None:
        for cluster in self.tables.list_clusters():
            try:
                c.reconcile(cluster["name"])
            except Exception:  # noqa: BLE001 - one cluster's trouble must not stop the others
                log.exception("%s: cluster %s", c.name, cluster["name"])

    def run_all(self) -> None:
        """Every controller once (tests, and a start's first pass)."""
        for c in self.controllers:
            self.run(c)

    def _told(self, cluster: str, change: Change) -> None:
        for c, loop in zip(self.controllers, self.loops, strict=True):
            if c.interested(change):
                loop.poke()

    def start(self) -> None:
        for loop in self.loops:
            loop.start()

    async def close(self) -> None:
        for loop in self.loops:
            await loop.close()

