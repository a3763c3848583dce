"""ECS operations over the catalog and the task engine. Requests arrive already checked
against the service model's shapes; the rules live in model/."""

from __future__ import annotations

import re
from typing import Any

import orjson

from ..model.errors import ClientException, InvalidParameterException, ResourceNotFoundException
from ..model.names import cluster_name_from, task_id_from
from ..model.tags import check_tags
from .catalog import Catalog
from .tasks import TaskEngine


class Ecs:
    def __init__(self, catalog: Catalog, engine: TaskEngine):
        self.catalog = catalog
        self.engine = engine
        self.store = catalog.store

    def create_cluster(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        return {"cluster": self.catalog.create_cluster(p.get("clusterName"), region,
                                                       p.get("tags"))}

    def describe_clusters(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        out = self.catalog.describe_clusters(p.get("clusters"), region)
        if "TAGS" not in (p.get("include") or []):
            for c in out["clusters"]:
                c.pop("tags", None)
        return out

    def list_clusters(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        return _page(self.catalog.list_clusters(), p, "clusterArns")

    def delete_cluster(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        return {"cluster": self.catalog.delete_cluster(p["cluster"], region)}

    def register_task_definition(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        return self.catalog.register(p, region)

    def describe_task_definition(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        td = self.catalog.taskdef(p["taskDefinition"])
        out: dict[str, Any] = {"taskDefinition": td}
        if "TAGS" in (p.get("include") or []):
            out["tags"] = self.store.get_tags(td["taskDefinitionArn"])
        return out

    def deregister_task_definition(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        return {"taskDefinition": self.catalog.deregister(p["taskDefinition"])}

    def list_task_definitions(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        arns = self.catalog.list_taskdefs(p.get("familyPrefix"), p.get("status"),
                                          p.get("sort"), region)
        return _page(arns, p, "taskDefinitionArns")

    def list_task_definition_families(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        status = p.get("status")
        fams = self.store.list_families(p.get("familyPrefix"),
                                        None if status == "ALL" else status or "ACTIVE")
        return _page(fams, p, "families")

    def run_task(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        cluster = self.catalog.cluster(p.get("cluster"), region)
        td = self.catalog.taskdef(p["taskDefinition"])
        tags = p.get("tags") or []
        check_tags(tags)
        out = self.engine.run_task(td=td, cluster=cluster, region=region, req=p)
        for task in out["tasks"]:
            if tags and not self.store.get_tags(task["taskArn"]):
                self.catalog.tag(task["taskArn"], tags)
            task["tags"] = tags
        return out

    def stop_task(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        cluster = self.catalog.cluster(p.get("cluster"), region)
        tid = task_id_from(p["task"])
        task = self.store.get_task(tid)
        if task is None or task["clusterArn"] != cluster["clusterArn"]:
            raise InvalidParameterException("The referenced task was not found.")
        return {"task": self.engine.stop_task(tid, p.get("reason"))}

    def describe_tasks(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        cluster = self.catalog.cluster(p.get("cluster"), region)
        refs = p["tasks"]
        if not refs:
            raise InvalidParameterException("Tasks cannot be empty.")
        if len(refs) > 100:
            raise InvalidParameterException("At most 100 tasks can be described at once.")
        ids, failures = {}, []
        for ref in refs:
            try:
                ids[task_id_from(ref)] = ref
            except InvalidParameterException:
                failures.append({"arn": ref[:1600], "reason": "MISSING"})
        include_tags = "TAGS" in (p.get("include") or [])
        found = self.store.public_tasks(list(ids))
        tasks: list[Any] = []
        for tid, ref in ids.items():
            row = found.get(tid)
            if row is None or row[0] != cluster["clusterName"]:
                failures.append({"arn": ref, "reason": "MISSING"})
            elif include_tags:
                view = orjson.loads(row[1])
                view["tags"] = self.store.get_tags(view["taskArn"])
                tasks.append(view)
            else:
                tasks.append(orjson.Fragment(row[1]))  # stored JSON, passed on unparsed
        return {"tasks": tasks, "failures": failures}

    def list_tasks(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        cluster = self.catalog.cluster(p.get("cluster"), region)
        family = p.get("family")
        if family:
            family = family.split(":")[0]
        ids = self.store.list_task_ids(
            cluster["clusterName"], family=family, started_by=p.get("startedBy"),
            desired=p.get("desiredStatus", "RUNNING"), launch_type=p.get("launchType"))
        prefix = cluster["clusterArn"].replace(":cluster/", ":task/")
        return _page([f"{prefix}/{i}" for i in ids], p, "taskArns")

    # tags
    def _resource(self, resource: str) -> str:
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
                task = self.store.get_task(task_id_from(resource))
                canonical = task["taskArn"] if task else None
            else:
                raise InvalidParameterException("The ARN provided is invalid.")
        except ClientException:
            canonical = None
        if canonical is None:
            raise ResourceNotFoundException("The specified resource is not found.")
        return canonical

    def tag_resource(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        self.catalog.tag(self._resource(p["resourceArn"]), p["tags"])
        return {}

    def untag_resource(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        self.catalog.untag(self._resource(p["resourceArn"]), p["tagKeys"])
        return {}

    def list_tags_for_resource(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        return {"tags": self.store.get_tags(self._resource(p["resourceArn"]))}


def _page(items: list[str], p: dict[str, Any], key: str) -> dict[str, Any]:
    """nextToken is the index of the next item, as an opaque string."""
    start = 0
    token = p.get("nextToken")
    if token:
        if not re.fullmatch(r"[0-9]{1,9}", token) or int(token) > len(items):
            raise InvalidParameterException("Invalid nextToken.")
        start = int(token)
    size = p.get("maxResults", 100)
    if not 1 <= size <= 100:
        raise InvalidParameterException("maxResults must be between 1 and 100.")
    out: dict[str, Any] = {key: items[start:start + size]}
    if start + size < len(items):
        out["nextToken"] = str(start + size)
    return out
