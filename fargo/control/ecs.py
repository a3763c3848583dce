"""ECS operations over the catalog and the task engine, with named, typed arguments; the
rules live in model/, the wire shapes in api/ecs.py."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..model.capacity import check_associated, strategy_from_wire
from ..model.errors import (
    ClientException,
    InvalidParameterException,
    ResourceNotFoundException,
    ServiceNotFoundException,
)
from ..model.names import cluster_name_from, task_id_from
from ..model.service import service_name_in
from ..model.tags import check_tags
from ..model.task import RunTaskRequest
from ..model.taskrecord import Task
from ..store.sqlite import Store
from .catalog import Catalog
from .tasks import TaskEngine
from .tasks.admission import Failure

Tags = list[dict[str, str]]


@dataclass
class Described:
    tasks: list[tuple[Task, Tags | None]]  # with its tags when they were asked for
    failures: list[Failure]


class Ecs:
    def __init__(self, catalog: Catalog, engine: TaskEngine):
        self.catalog = catalog
        self.engine = engine
        self.store: Store = catalog.store

    def tags_of(self, arn: str) -> Tags:
        return self.store.get_tags(arn)

    def list_families(self, prefix: str | None, status: str | None) -> list[str]:
        live = self.catalog.live_families()  # not those DeleteTaskDefinitions removed whole
        return [f for f in self.store.list_families(
            prefix, None if status == "ALL" else status or "ACTIVE") if f in live]

    # ---- tasks
    def run_task(self, req: RunTaskRequest, region: str) -> tuple[list[Task], list[Failure]]:
        cluster = self.catalog.cluster(req.cluster, region)
        if req.capacity_strategy is None and not req.launch_type:
            # Neither given: the cluster's default strategy, else launch type FARGATE.
            default = strategy_from_wire(cluster.get("defaultCapacityProviderStrategy"))
            if default:
                req = replace(req, capacity_strategy=default)
        if req.capacity_strategy and not req.launch_type:
            check_associated(req.capacity_strategy, cluster.get("capacityProviders") or ())
        td = self.catalog.taskdef(req.task_definition)
        tags = list(req.tags)
        check_tags(tags)
        out = self.engine.run_task(td=td, cluster_arn=cluster["clusterArn"], region=region,
                                   req=req)
        for task in out.tasks:
            if tags and not self.store.get_tags(task.arn):
                self.catalog.tag(task.arn, tags)
        return out.tasks, out.failures

    def stop_task(self, cluster_ref: str | None, task_ref: str, reason: str | None,
                  region: str) -> Task:
        cluster = self.catalog.cluster(cluster_ref, region)
        tid = task_id_from(task_ref)
        task = self.engine.get(tid)
        if task is None or task.cluster_arn != cluster["clusterArn"]:
            raise InvalidParameterException("The referenced task was not found.")
        return self.engine.stop_task(tid, reason)

    def describe_tasks(self, cluster_ref: str | None, refs: list[str], include_tags: bool,
                       region: str) -> Described:
        cluster = self.catalog.cluster(cluster_ref, region)
        if not refs:
            raise InvalidParameterException("Tasks cannot be empty.")
        if len(refs) > 100:
            raise InvalidParameterException("At most 100 tasks can be described at once.")
        ids: dict[str, str] = {}
        failures = []
        for ref in refs:
            try:
                ids[task_id_from(ref)] = ref
            except InvalidParameterException:
                failures.append(Failure(ref[:1600], "MISSING", ""))
        found = self.store.get_tasks(list(ids))
        tasks: list[tuple[Task, Tags | None]] = []
        for tid, ref in ids.items():
            task = found.get(tid)
            # By name, as ListTasks finds them: a task outlives its cluster's re-creation.
            if task is None or task.cluster_arn.rsplit("/", 1)[-1] != cluster["clusterName"]:
                failures.append(Failure(ref, "MISSING", ""))
            else:
                tasks.append((task, self.store.get_tags(task.arn) if include_tags else None))
        return Described(tasks, failures)

    def list_tasks(self, cluster_ref: str | None, *, family: str | None,
                   started_by: str | None, desired: str, launch_type: str | None,
                   region: str, service: str | None = None) -> list[str]:
        cluster = self.catalog.cluster(cluster_ref, region)
        if family:
            family = family.split(":")[0]
        group = None
        if service is not None:
            name = service_name_in(service, cluster["clusterName"])
            svc = self.catalog.services.get(cluster["clusterName"], name) if name else None
            if svc is None:
                raise ServiceNotFoundException("Service not found.")
            group = svc.group
        ids = self.store.list_task_ids(cluster["clusterName"], family=family,
                                       started_by=started_by, desired=desired,
                                       launch_type=launch_type,
                                       group=group)
        prefix = cluster["clusterArn"].replace(":cluster/", ":task/")
        return [f"{prefix}/{i}" for i in ids]

    # ---- tags
    def resource(self, resource: str) -> str:
        """The stored ARN of what `resource` names (tags live under it), or the AWS error."""
        kind = resource.split(":", 5)[-1].split("/", 1)[0] if resource.startswith("arn:") else ""
        canonical = None
        try:
            if kind == "cluster":
                doc = self.store.get_cluster(cluster_name_from(resource))
                canonical = doc["clusterArn"] if doc and doc["status"] == "ACTIVE" else None
            elif kind == "task-definition":
                canonical = self.catalog.taskdef(resource)["taskDefinitionArn"]
            elif kind == "task":
                task = self.engine.get(task_id_from(resource))
                canonical = task.arn if task else None
            elif kind == "service":
                svc = self.catalog.services.get(*resource.split("/")[-2:]) \
                    if resource.count("/") == 2 else None
                canonical = svc.arn if svc and svc.status != "INACTIVE" else None
            else:
                raise InvalidParameterException("The ARN provided is invalid.")
        except ClientException:
            canonical = None
        if canonical is None:
            raise ResourceNotFoundException("The specified resource is not found.")
        return canonical

    def tag_resource(self, resource: str, tags: Tags) -> None:
        self.catalog.tag(self.resource(resource), tags)

    def untag_resource(self, resource: str, keys: list[str]) -> None:
        self.catalog.untag(self.resource(resource), keys)

    def list_tags(self, resource: str) -> Tags:
        return self.store.get_tags(self.resource(resource))
