"""RunTask's admission: the rules checked, idempotency by clientToken, and for each task a
place (capacity, subnet, address) and a record written before anything is started."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ...model import task as taskmodel
from ...model.capacity import check_strategy, choose_provider
from ...model.errors import ConflictException
from ...model.isolation import RUNC, tier_of_platform
from ...model.task import RunTaskRequest, TaskIds
from ...model.taskrecord import PodRef, RestartPolicy, Task
from ...model.vpc import Subnet
from .book import TaskBook
from .placement import CAPACITY_REASON, Placement

PlanAt = Callable[[str], list[dict[str, Any]]]  # a task's address -> its containers' plan


@dataclass(frozen=True)
class Failure:
    """One task RunTask could not place, in ECS's Failure terms."""

    arn: str
    reason: str
    detail: str


@dataclass
class Admitted:
    tasks: list[Task]
    failures: list[Failure]
    fresh: bool  # False: a repeated clientToken, nothing new was made


def fresh_ids(containers: int) -> TaskIds:
    return TaskIds(task_id=uuid.uuid4().hex, attachment_id=str(uuid.uuid4()),
                   eni_id="eni-" + uuid.uuid4().hex[:17], credentials_id=str(uuid.uuid4()),
                   container_ids=tuple(str(uuid.uuid4()) for _ in range(containers)))


class Admission:
    def __init__(self, book: TaskBook, placement: Placement,
                 ids: Callable[[int], TaskIds] = fresh_ids,
                 clock: Callable[[], float] = time.time, isolation: str = RUNC):
        self.book = book
        self.placement = placement
        self.isolation = isolation  # the server's default tier (--isolation)
        self.ids = ids
        self.clock = clock

    def run_task(self, *, td: dict[str, Any], cluster_arn: str, region: str,
                 req: RunTaskRequest) -> Admitted:
        taskmodel.check_launch(req.launch_type, req.capacity_strategy)
        strategy = check_strategy(req.capacity_strategy or ())  # also when built in code
        taskmodel.check_lengths({"startedBy": req.started_by, "group": req.group,
                                 "clientToken": req.client_token})
        taskmodel.require_fargate(td, req.by_service)
        count = taskmodel.check_count(req.count)
        cpu, mem = taskmodel.apply_overrides(td, req.overrides)
        tier = tier_of_platform(req.platform_version, self.isolation)
        conf = {"subnets": list(req.subnets), "securityGroups": list(req.security_groups)}
        subnets = self.placement.subnets_of(conf if req.network_given else None)
        groups = self.placement.groups_of(conf, subnets)
        store = self.book.store
        if req.client_token:
            seen = store.get_token(req.client_token)
            if seen:
                if seen[0] != req.fingerprint:
                    raise ConflictException(
                        "The clientToken was already used with different parameters.")
                arns, earlier = seen[1]["arns"], seen[1]["failures"]
                found = store.get_tasks([a.rsplit("/", 1)[-1] for a in arns])
                return Admitted(list(found.values()), [Failure(**f) for f in earlier], False)
        tasks: list[Task] = []
        failures: list[Failure] = []
        now = self.clock()
        placed: dict[str, int] = {}  # provider -> tasks of this call on it, for the spread
        for _ in range(count):
            provider = choose_provider(strategy, placed) if strategy else None
            if not self.placement.fits(cpu, mem):
                failures.append(Failure(td["taskDefinitionArn"], CAPACITY_REASON,
                                        self.placement.capacity.describe()))
                continue
            subnet, ip = self.placement.allocate(subnets)
            if ip is None:
                failures.append(Failure(td["taskDefinitionArn"], "RESOURCE:ENI",
                                        "No free private IP address in the given subnets"))
                continue
            tasks.append(self._record(
                td, subnet, ip, cluster_arn=cluster_arn, region=region, cpu=cpu, memory=mem,
                overrides=req.overrides, groups=groups, group=req.group,
                started_by=req.started_by, now=now, capacity_provider=provider,
                isolation=tier))
            if provider:
                placed[provider] = placed.get(provider, 0) + 1
        if req.client_token:
            store.put_token(req.client_token, req.fingerprint,
                            {"arns": [t.arn for t in tasks],
                             "failures": [asdict(f) for f in failures]}, now)
        return Admitted(tasks, failures, True)

    def run_sized(self, *, td: dict[str, Any], cluster_arn: str, region: str, cpu: int,
                  memory: int, subnet_ids: list[str], restart: RestartPolicy | None,
                  pod: PodRef | None, started_by: str | None,
                  plan_at: PlanAt | None = None,
                  security_groups: list[str] | None = None,
                  isolation: str | None = None) -> tuple[Task | None, str | None]:
        """A task of exactly this size from a ready plan (a pod's): the task, or why not.
        isolation: its tier (a pod's RuntimeClass); None: the server's default.
        plan_at: the containers' plan once the address is known (a pod's environment may
        name it), written in the task's first record. security_groups: its interface's
        (none: its VPC's default group); an unknown one is InvalidParameterException."""
        conf = {"subnets": subnet_ids, "securityGroups": security_groups or []}
        subnets = self.placement.subnets_of(conf)
        groups = self.placement.groups_of(conf, subnets)
        if not self.placement.fits(cpu, memory):
            return None, ("Capacity is unavailable at this time: "
                          + self.placement.capacity.describe())
        subnet, ip = self.placement.allocate(subnets)
        if ip is None:
            return None, "No free private IP address in the given subnets"
        if plan_at is not None:
            try:
                td = {**td, "containerDefinitions": plan_at(ip)}
            except BaseException:
                self.placement.give_back_ip(ip)
                raise
        task = self._record(td, subnet, ip, restart=restart, pod=pod, cluster_arn=cluster_arn,
                            region=region, cpu=cpu, memory=memory, overrides={},
                            groups=groups, group=None, started_by=started_by,
                            now=self.clock(), capacity_provider=None,
                            isolation=isolation or self.isolation)
        return task, None

    def _record(self, td: dict[str, Any], subnet: Subnet, ip: str, *,
                restart: RestartPolicy | None = None, pod: PodRef | None = None,
                **fields: Any) -> Task:
        """A new task's record at subnet and ip (fields: the rest of model.task.new_task's),
        holding its share of the host, written before anything starts."""
        try:
            task = taskmodel.new_task(td=td, subnet=subnet, ip=ip,
                                      ids=self.ids(len(td["containerDefinitions"])), **fields)
            task.interface.endpoint = self.placement.endpoint(subnet)
        except BaseException:
            self.placement.give_back_ip(ip)  # nothing holds it yet
            raise
        task.restart, task.pod = restart, pod
        self.placement.hold(task)
        self.book.store.put_task(task)
        return task
