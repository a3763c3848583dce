"""The service scheduler: a level-triggered reconciler that keeps each service's tasks as its
record says. Each pass reads the service and its tasks from the store, asks model/rollout.py
what to do, and does it; starts and stops go through the task engine, which writes every task
before it acts. One pass is synchronous (no await between reading and writing), so an API
call never interleaves with it, and a pass after a SIGKILL decides from the same store."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ...model import rollout
from ...model.capacity import StrategyItem, choose_provider
from ...model.errors import ApiError
from ...model.service import DRAINING, INACTIVE, Deployment, Service
from ...model.task import RunTaskRequest
from ...model.taskrecord import Task
from ...store.services import ServiceTable
from ..catalog import Catalog
from ..passloop import PassLoop
from ..tasks import TaskEngine
from . import views
from .operations import event_id, new_deployment_id
from .registries import ServiceRegistries
from .targets import ServiceTargets

log = logging.getLogger("fargo.services")
PASS_EVERY = 2.0  # seconds: every service is looked at at least this often
# After a poke, wait this long so a burst of task changes is one pass: an end, a stop or a
# change of health (a replacement's start waits on it, ~6 ms after the exit it follows) ...
SETTLE = 0.005
# ... and this long after a task only came RUNNING (or was made): a pass then only notes
# progress, and each reads every task of the service (~5-10 ms at 100), so a scale-up whose
# tasks come RUNNING one by one made a pass per SETTLE, ~18 ms of CPU per task started.
PROGRESS_SETTLE = 0.25
BREAKER_REASON = "tasks failed to start."


class ServiceScheduler:
    def __init__(self, table: ServiceTable, catalog: Catalog, engine: TaskEngine,
                 clock: Callable[[], float] = time.time, targets: ServiceTargets | None = None,
                 registries: ServiceRegistries | None = None):
        self.table = table
        self.catalog = catalog
        self.engine = engine
        self.clock = clock
        self.targets = targets  # the load balancers' target groups (ELBv2)
        self.registries = registries  # Cloud Map services (serviceRegistries)
        self._seen: dict[str, tuple[str, str, tuple[str, ...]]] = {}  # task id -> as last seen
        self._loop = PassLoop(self._pass, PASS_EVERY, SETTLE, log, "service scheduler pass")

    def poke(self) -> None:
        self._loop.poke()

    def task_changed(self, task: Task) -> None:
        """The engine wrote a service's task: look again if what a pass reads of it changed
        (its state as a pass sees it, its desired status, its health), not for every step
        or timestamp of its start; soon for an end, a stop or a change of health, less soon
        for a task that only came RUNNING."""
        if not task.group.startswith("service:"):
            return
        state = task.last_status if task.last_status in ("RUNNING", "STOPPED") else "PENDING"
        seen = (state, task.desired_status, tuple(c.health_status for c in task.containers))
        before = self._seen.get(task.id)
        if before != seen:
            progress = before is None or (before[1:] == seen[1:] and state == "RUNNING")
            self._loop.poke(PROGRESS_SETTLE if progress else None)
        if task.last_status == "STOPPED":
            self._seen.pop(task.id, None)
        else:
            self._seen[task.id] = seen

    async def start(self) -> None:
        self._loop.start()

    async def close(self) -> None:
        await self._loop.close()

    async def _pass(self) -> None:
        self.pass_all()

    def pass_all(self) -> None:
        for svc in self.table.live():
            try:
                self.reconcile(svc)
            except Exception:  # noqa: BLE001 - one service's fault leaves the rest running
                log.exception("service %s", svc.arn)

    # ---- one service
    def reconcile(self, svc: Service) -> None:
        now = self.clock()
        prim = svc.primary
        # Stopped tasks matter only as the PRIMARY's failures: all of them while it rolls
        # out unproven, the recent ones (the start back-off) after.
        since = prim.created_at if not prim.proven else now - rollout.BACKOFF_WINDOW
        tasks = self.engine.store.group_tasks(svc.cluster_name, svc.group, prim.id, since)
        targets = self.targets if svc.load_balancers else None
        snap = targets.snapshot(svc) if targets else None
        seen = [views.view(t, now, svc.grace_seconds,
                           list(zip([b.target_group_arn for b in svc.load_balancers],
                                    snap.of(svc, t), strict=True)) if snap else None)
                for t in tasks]
        plan = rollout.plan(svc, seen, now)
        before = (svc.version, len(svc.events))
        if (plan.failed_tasks, plan.proven) != (prim.failed_tasks, prim.proven):
            prim.failed_tasks, prim.proven = plan.failed_tasks, plan.proven
            svc.version += 1
        stops = plan.stop
        if targets and snap:
            # Out of the load balancers first; stopped once the deregistration delay is over.
            by_id = {t.id: t for t in tasks}
            added, removed = targets.sync(svc, tasks, snap, {tid for tid, _ in stops})
            for count, verb in ((added, "registered"), (removed, "deregistered")):
                if count:
                    groups = " ".join(f"(target-group {b.target_group_arn})"
                                      for b in svc.load_balancers)
                    svc.add_event(event_id(), now, f"{verb} {count} targets in {groups}")
            stops = [(tid, why) for tid, why in stops if targets.drained(svc, by_id[tid])]
        if self.registries and svc.registries:
            # Out of service discovery as soon as a task is on its way out.
            added, removed = self.registries.sync(svc, tasks, {tid for tid, _ in plan.stop})
            if added or removed:
                svc.version += 1
        stopped = self._stop(svc, stops)
        if stopped:
            svc.add_event(event_id(), now, f"has stopped {len(stopped)} running tasks: "
                          + " ".join(f"(task {t})" for t in stopped) + ".")
            for tid, reason in stops:
                if reason == rollout.UNHEALTHY_REASON:
                    svc.add_event(event_id(), now, f"(task {tid}) failed container health "
                                  "checks.")
        if plan.failed:
            self._trip(svc, now)
        elif plan.start and now >= plan.start_at:
            started = self._start(svc, prim, plan.start, tasks, seen, now)
            if started:
                svc.add_event(event_id(), now, f"has started {len(started)} tasks: "
                              + " ".join(f"(task {t})" for t in started) + ".")
        if plan.completed:
            prim.rollout_state = "COMPLETED"
            prim.rollout_state_reason = f"ECS deployment {prim.id} completed."
            prim.updated_at = now
            svc.last_good = replace(prim, status="ACTIVE")
            svc.add_event(event_id(), now, f"(deployment {prim.id}) deployment completed.")
        if plan.drop:
            svc.deployments = [d for d in svc.deployments if d.id not in plan.drop]
        if svc.status == DRAINING and not [v for v in seen if v.state != rollout.STOPPED]:
            svc.status = INACTIVE
            svc.deployments = [d for d in svc.deployments if d.status == "PRIMARY"]
        if plan.steady and not svc.steady and svc.status != INACTIVE:
            svc.add_event(event_id(), now, "has reached a steady state.")
        if plan.steady != svc.steady:
            svc.steady = plan.steady
            svc.version += 1
        if (svc.version, len(svc.events)) != before or plan.completed or plan.drop or \
                svc.status == INACTIVE:
            self.table.put(svc)

    def _stop(self, svc: Service, stops: list[tuple[str, str]]) -> list[str]:
        done = []
        for tid, reason in stops:
            try:
                self.engine.stop_task(tid, reason, code="ServiceSchedulerInitiated")
                done.append(tid)
            except ApiError:
                log.warning("service %s: task %s could not be stopped", svc.name, tid)
        if done:
            svc.version += 1
        return done

    def _trip(self, svc: Service, now: float) -> None:
        """The circuit breaker: the PRIMARY rollout FAILED; with rollback, the last
        completed deployment's configuration becomes PRIMARY again."""
        prim = svc.primary
        prim.rollout_state = "FAILED"
        prim.rollout_state_reason = f"ECS deployment circuit breaker: {BREAKER_REASON}"
        prim.updated_at = now
        svc.version += 1
        svc.add_event(event_id(), now,
                      f"(deployment {prim.id}) deployment failed: {BREAKER_REASON}")
        good = svc.last_good
        if svc.config.rollback and good is not None and good.task_definition:
            dep = self._redeploy(svc, good, now)
            svc.add_event(event_id(), now, f"rolling back to deployment {dep.id}.")

    def _redeploy(self, svc: Service, good: Deployment, now: float) -> Deployment:
        for d in svc.deployments:
            if d.status == "PRIMARY":
                d.status = "ACTIVE"
        dep_id = new_deployment_id()
        dep = Deployment(id=dep_id, task_definition=good.task_definition,
                         network=good.network, created_at=now, updated_at=now,
                         desired_count=svc.desired_count, launch_type=good.launch_type,
                         strategy=good.strategy, platform_version=good.platform_version,
                         rollout_state_reason=f"ECS deployment {dep_id} in progress.")
        svc.deployments.insert(0, dep)
        # The service is again what that deployment ran, its platform version too.
        svc.platform_version = good.platform_version
        svc.task_definition, svc.network = good.task_definition, good.network
        svc.launch_type, svc.strategy = good.launch_type, good.strategy
        return dep

    def _start(self, svc: Service, dep: Deployment, count: int, tasks: list[Task],
               seen: list[rollout.TaskView], now: float) -> list[str]:
        """count new tasks of the deployment, each in the least-filled zone of its subnets."""
        try:
            cluster = self.catalog.cluster(svc.cluster_arn, svc.region)
            td = self.catalog.taskdef(dep.task_definition)
        except ApiError as err:
            svc.add_event(event_id(), now, f"was unable to place a task. Reason: {err}")
            return []
        subnets = self.engine.placement.subnets
        zones = Counter(v.zone for v in seen if v.state in (rollout.PENDING, rollout.RUNNING))
        tags = self._task_tags(svc, td)
        providers = Counter(t.capacity_provider or "FARGATE" for t in tasks
                            if not t.stopping)
        started: list[str] = []
        for _ in range(count):
            one = None
            if dep.strategy:  # each task's provider, by base and weight
                one = (StrategyItem(choose_provider(dep.strategy, providers), 0, 1),)
            order = sorted(dep.network.subnets,
                           key=lambda s: zones[subnets[s].zone] if s in subnets else 1 << 30)
            req = RunTaskRequest(
                task_definition=dep.task_definition, cluster=svc.cluster_arn, count=1,
                launch_type=dep.launch_type, capacity_strategy=one,
                network_given=True, subnets=tuple(order),
                security_groups=tuple(dep.network.security_groups), group=svc.group,
                started_by=dep.id, by_service=True, platform_version=dep.platform_version)
            try:
                out = self.engine.run_task(td=td, cluster_arn=cluster["clusterArn"],
                                           region=svc.region, req=req)
            except ApiError as err:
                svc.add_event(event_id(), now, f"was unable to place a task. Reason: {err}")
                break
            for failure in out.failures:
                svc.add_event(event_id(), now, "was unable to place a task. Reason: "
                              f"{failure.reason}: {failure.detail}".rstrip(": "))
            for task in out.tasks:
                zones[task.availability_zone] += 1
                providers[task.capacity_provider or "FARGATE"] += 1
                started.append(task.id)
                if tags:
                    self.catalog.store.put_tags(task.arn, tags)
            if out.failures:
                break
        if started:
            svc.version += 1
        return started

    def _task_tags(self, svc: Service, td: dict[str, Any]) -> list[dict[str, str]]:
        tags: list[dict[str, str]] = []
        if svc.propagate_tags == "SERVICE":
            tags = self.catalog.store.get_tags(svc.arn)
        elif svc.propagate_tags == "TASK_DEFINITION":
            tags = self.catalog.store.get_tags(td["taskDefinitionArn"])
        if svc.managed_tags:
            tags = [*tags, {"key": "aws:ecs:serviceName", "value": svc.name},
                    {"key": "aws:ecs:clusterName", "value": svc.cluster_name}]
        return tags
