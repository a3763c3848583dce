"""The ECS face (AWS JSON 1.1): each action's parameters, already checked against botocore's
shape, become named arguments of control/ecs.py; its results are rendered here."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..control.ecs import Ecs
from ..control.tasks.admission import Failure
from ..model.capacity import parse_strategy
from ..model.errors import InvalidParameterException
from ..model.task import RunTaskRequest, check_run_task_params
from ..model.taskrecord import Task
from . import ecs_clusters, paging
from .ecs_render import task_json

PREFIX = "AmazonEC2ContainerServiceV20141113"
Params = dict[str, Any]
Handler = Callable[[Params, str], Any]


def failure_json(f: Failure) -> dict[str, str]:
    out = {"arn": f.arn, "reason": f.reason}
    if f.detail:
        out["detail"] = f.detail
    return out


def _task_with_tags(task: Task, tags: list[dict[str, str]] | None) -> Any:
    view = task_json(task)
    if tags is not None:
        view["tags"] = tags
    return view


def run_task_request(p: Params) -> RunTaskRequest:
    check_run_task_params(p)  # nothing given is silently dropped below
    conf = (p.get("networkConfiguration") or {}).get("awsvpcConfiguration")
    strategy = p.get("capacityProviderStrategy")
    return RunTaskRequest(
        task_definition=p["taskDefinition"], cluster=p.get("cluster"), count=p.get("count"),
        launch_type=p.get("launchType"),
        capacity_strategy=parse_strategy(strategy) if strategy else None,
        overrides=p.get("overrides") or {}, network_given=bool(conf),
        subnets=tuple((conf or {}).get("subnets") or ()),
        security_groups=tuple((conf or {}).get("securityGroups") or ()),
        group=p.get("group"), started_by=p.get("startedBy"),
        client_token=p.get("clientToken"),
        fingerprint=json.dumps({k: v for k, v in p.items() if k != "clientToken"},
                               sort_keys=True),
        tags=tuple(p.get("tags") or ()), platform_version=p.get("platformVersion"))


def page(items: list[str], p: Params, key: str) -> dict[str, Any]:
    return paging.page(items, p.get("nextToken"), p.get("maxResults", 100), key,
                       invalid=InvalidParameterException, bad_token="Invalid nextToken.")


def handlers(ecs: Ecs) -> dict[str, Handler]:
    catalog = ecs.catalog

    def describe_task_definition(p: Params, region: str) -> Any:
        td = catalog.taskdef(p["taskDefinition"])
        out: dict[str, Any] = {"taskDefinition": td}
        if "TAGS" in (p.get("include") or []):
            out["tags"] = ecs.tags_of(td["taskDefinitionArn"])
        return out

    def run_task(p: Params, region: str) -> Any:
        req = run_task_request(p)
        tasks, failures = ecs.run_task(req, region)
        return {"tasks": [_task_with_tags(t, list(req.tags)) for t in tasks],
                "failures": [failure_json(f) for f in failures]}

    def describe_tasks(p: Params, region: str) -> Any:
        out = ecs.describe_tasks(p.get("cluster"), p["tasks"],
                                 "TAGS" in (p.get("include") or []), region)
        return {"tasks": [_task_with_tags(t, tags) for t, tags in out.tasks],
                "failures": [failure_json(f) for f in out.failures]}

    def list_tasks(p: Params, region: str) -> Any:
        arns = ecs.list_tasks(p.get("cluster"), family=p.get("family"),
                              started_by=p.get("startedBy"),
                              desired=p.get("desiredStatus", "RUNNING"),
                              launch_type=p.get("launchType"), region=region,
                              service=p.get("serviceName"))
        return page(arns, p, "taskArns")

    def tag_resource(p: Params, region: str) -> Any:
        ecs.tag_resource(p["resourceArn"], p["tags"])
        return {}

    def untag_resource(p: Params, region: str) -> Any:
        ecs.untag_resource(p["resourceArn"], p["tagKeys"])
        return {}

    return {
        **ecs_clusters.handlers(ecs),  # clusters, capacity providers, account settings
        "ListClusters": lambda p, region: page(catalog.list_clusters(), p, "clusterArns"),
        "DeleteCluster": lambda p, region: {"cluster": catalog.delete_cluster(
            p["cluster"], region)},
        "RegisterTaskDefinition": lambda p, region: catalog.register(p, region),
        "DescribeTaskDefinition": describe_task_definition,
        "DeregisterTaskDefinition": lambda p, region: {"taskDefinition": catalog.deregister(
            p["taskDefinition"])},
        "ListTaskDefinitions": lambda p, region: page(catalog.list_taskdefs(
            p.get("familyPrefix"), p.get("status"), p.get("sort"), region), p,
            "taskDefinitionArns"),
        "ListTaskDefinitionFamilies": lambda p, region: page(ecs.list_families(
            p.get("familyPrefix"), p.get("status")), p, "families"),
        "RunTask": run_task,
        "StopTask": lambda p, region: {"task": task_json(ecs.stop_task(
            p.get("cluster"), p["task"], p.get("reason"), region))},
        "DescribeTasks": describe_tasks,
        "ListTasks": list_tasks,
        "TagResource": tag_resource,
        "UntagResource": untag_resource,
        "ListTagsForResource": lambda p, region: {"tags": ecs.list_tags(p["resourceArn"])},
    }

