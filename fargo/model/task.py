"""Building a task record from a task definition and RunTask's overrides, and RunTask's own
argument rules (no I/O: ids and the clock are passed in)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from . import isolation
from .capacity import Strategy
from .errors import ClientException, InvalidParameterException
from .isolation import ECS_PLATFORMS, RUNC, ContainerLimits
from .names import arn
from .sizes import check_task_size, parse_cpu, parse_memory
from .taskdef import (
    check_environment,
    check_implemented,
    check_mount_sources,
    present,
    unknown_given,
)
from .taskrecord import Container, Interface, Task
from .vpc import Subnet


def private_dns(ip: str, region: str) -> str:
    host = "ip-" + ip.replace(".", "-")
    return f"{host}.ec2.internal" if region == "us-east-1" else f"{host}.{region}.compute.internal"


def apply_overrides(td: dict[str, Any], overrides: dict[str, Any]) -> tuple[int, int]:
    """Check RunTask overrides against the definition; return the task's (cpu, memory)."""
    names = {c["name"] for c in td["containerDefinitions"]}
    for co in overrides.get("containerOverrides") or []:
        if co.get("name") not in names:
            raise InvalidParameterException(
                f"Override for container named {str(co.get('name'))[:255]} is not a container "
                "in the TaskDefinition.")
        check_environment(co.get("environment"), co["name"])
    cpu = parse_cpu(overrides["cpu"]) if overrides.get("cpu") else int(td["cpu"])
    mem = parse_memory(overrides["memory"]) if overrides.get("memory") else int(td["memory"])
    check_task_size(cpu, mem)
    plan = container_plan(td, overrides)
    if sum(int(c.get("cpu") or 0) for c in plan) > cpu:
        raise ClientException("Invalid 'cpu' setting: the containers ask for more CPU units "
                              "than the task has.")
    if sum(int(c.get("memory") or c.get("memoryReservation") or 0) for c in plan) > mem:
        raise ClientException("Invalid 'memory' setting: the containers ask for more memory "
                              "than the task has.")
    return cpu, mem


def container_plan(td: dict[str, Any], overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """Each container definition with its overrides merged in: what the agent will run."""
    by_name = {co["name"]: co for co in overrides.get("containerOverrides") or []}
    plan = []
    for cdef in td["containerDefinitions"]:
        c = copy.deepcopy(cdef)
        co = by_name.get(c["name"], {})
        if co.get("command") is not None:
            c["command"] = co["command"]
        if co.get("environment"):
            env = {e["name"]: e.get("value", "") for e in c.get("environment") or []}
            env.update({e["name"]: e.get("value", "") for e in co["environment"]})
            c["environment"] = [{"name": k, "value": v} for k, v in env.items()]
        for key in ("cpu", "memory", "memoryReservation"):
            if co.get(key) is not None:
                c[key] = co[key]
        plan.append(c)
    return plan


@dataclass(frozen=True)
class TaskIds:
    """The fresh identifiers a new task needs; made by the caller, so these rules stay pure."""

    task_id: str
    attachment_id: str
    eni_id: str
    credentials_id: str
    container_ids: tuple[str, ...]


def new_task(*, td: dict[str, Any], cluster_arn: str, region: str, cpu: int, memory: int,
             overrides: dict[str, Any], subnet: Subnet, ip: str, groups: list[str],
             group: str | None, started_by: str | None, now: float,
             capacity_provider: str | None, ids: TaskIds, isolation: str = RUNC) -> Task:
    """A task record in PROVISIONING, in the sandbox tier `isolation` (already resolved)."""
    cluster_name = cluster_arn.rsplit("/", 1)[-1]
    path = f"{cluster_name}/{ids.task_id}"
    plan = container_plan(td, overrides)
    containers = [
        Container(name=c["name"], arn=arn(region, "container", f"{path}/{cid}"),
                  image=c["image"], cpu=int(c.get("cpu") or 0),
                  memory=c.get("memory") or None,
                  memory_reservation=c.get("memoryReservation") or None)
        for c, cid in zip(plan, ids.container_ids, strict=True)]
    return Task(
        id=ids.task_id, arn=arn(region, "task", path), cluster_arn=cluster_arn,
        task_definition_arn=td["taskDefinitionArn"], family=td["family"], region=region,
        cpu=cpu, memory=memory, created_at=now, availability_zone=subnet.zone,
        interface=Interface(attachment_id=ids.attachment_id, eni_id=ids.eni_id,
                            subnet_id=subnet.id, ip=ip, private_dns=private_dns(ip, region),
                            groups=list(groups)),
        containers=containers, plan=plan, overrides=overrides,
        storage_gib=(td.get("ephemeralStorage") or {}).get("sizeInGiB", 20),
        group=group or f"family:{td['family']}", started_by=started_by,
        capacity_provider=capacity_provider,
        role=overrides.get("taskRoleArn") or td.get("taskRoleArn"),
        credentials_id=ids.credentials_id, isolation=isolation)


def container_limits(plan: list[dict[str, Any]]) -> list[ContainerLimits]:
    """Each container's hard memory limit as its plan holds it (ECS `memory`, or a pod
    container's limits.memory in that shape)."""
    return [ContainerLimits(str(c["name"]), int(c["memory"]) if c.get("memory") else None)
            for c in plan]


def start_refusal(task: Task) -> str | None:
    """The stoppedReason of a task its tier cannot run (isolation.refusal), or None."""
    why = isolation.refusal(task.isolation, task.memory, container_limits(task.plan))
    return f"ResourceInitializationError: {why}"[:255] if why else None


def sandbox_memory_mib(task: Task) -> int:
    """The memory limit of the task's sandbox: the task's; under gvisor, its only
    container's hard limit if lower (gVisor has one limit for the sandbox as a whole)."""
    if task.isolation != isolation.GVISOR:
        return task.memory
    return isolation.sandbox_memory_mib(task.memory, container_limits(task.plan))


@dataclass(frozen=True)
class RunTaskRequest:
    """RunTask's arguments as fargo honours them (checked against botocore's shape first)."""

    task_definition: str
    cluster: str | None = None
    count: int | None = None
    launch_type: str | None = None
    capacity_strategy: Strategy | None = None  # checked (model/capacity.py); None: not given
    overrides: dict[str, Any] = field(default_factory=dict)  # ECS JSON, checked by the rules
    network_given: bool = False  # an awsvpcConfiguration was sent
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    group: str | None = None
    started_by: str | None = None
    client_token: str | None = None
    fingerprint: str = ""  # the whole request but its token: a reused token must match it
    tags: tuple[dict[str, str], ...] = ()
    by_service: bool = False  # the service scheduler's own start (require_fargate)
    # The platform version named (checked: check_platform_version); None or LATEST: the
    # server's default tier.
    platform_version: str | None = None


def check_launch(launch_type: str | None, strategy: Strategy | None) -> None:
    """RunTask's launchType / capacityProviderStrategy: one or the other; each task's
    provider is then chosen by model.capacity.choose_provider."""
    if strategy and launch_type:
        raise InvalidParameterException(
            "Specifying both a launch type and capacity provider strategy is not supported. "
            "Remove one and try again.")
    if not strategy and (launch_type or "FARGATE") != "FARGATE":
        raise InvalidParameterException(
            f"Launch type {str(launch_type)[:32]} is not supported: fargo runs FARGATE tasks.")


# Limits AWS documents for RunTask and StopTask strings.
_LIMITS = {"startedBy": 128, "group": 255, "clientToken": 64, "reason": 255}


def check_lengths(values: dict[str, str | None]) -> None:
    """values: wire name -> the string given (None: not given)."""
    for name, value in values.items():
        limit = _LIMITS[name]
        if value is not None and len(value) > limit:
            raise InvalidParameterException(f"{name} can be at most {limit} characters.")


def check_count(count: int | None) -> int:
    if count is None:
        return 1
    if not 1 <= int(count) <= 10:
        raise InvalidParameterException("count must be between 1 and 10.")
    return int(count)


def require_fargate(td: dict[str, Any], by_service: bool = False) -> None:
    """by_service: a service's scheduler scales on with a revision since deregistered or
    being deleted, as ECS lets it; users may start only ACTIVE ones."""
    if "FARGATE" not in td.get("compatibilities", []):
        raise ClientException("Task definition does not support launch_type FARGATE.")
    if td["status"] != "ACTIVE" and not by_service:
        raise ClientException("TaskDefinition is inactive")
    # A definition an older fargo stored with what this one refuses is not run without it.
    check_mount_sources(td)
    check_implemented(td)


# RunTask's members (botocore's ecs shapes) that fargo honours; any other given a value is
# refused by name rather than ignored.
_RUN_TASK_KNOWN = frozenset({
    "capacityProviderStrategy", "cluster", "count", "group", "launchType",
    "networkConfiguration", "overrides", "startedBy", "tags", "taskDefinition", "clientToken",
    "platformVersion",
})
_EC2_ONLY = ("placementConstraints", "placementStrategy")
_AWSVPC_KNOWN = frozenset({"subnets", "securityGroups", "assignPublicIp"})
_OVERRIDES_KNOWN = frozenset({"containerOverrides", "cpu", "memory", "taskRoleArn",
                              "executionRoleArn"})
_CONTAINER_OVERRIDE_KNOWN = frozenset({"name", "command", "environment", "cpu", "memory",
                                       "memoryReservation"})
# fargo behaves as Fargate's platform 1.4.0, on runc or in a gVisor sandbox
# (model/isolation.py); LATEST is the server's default tier.
PLATFORM_VERSIONS = ("LATEST", *ECS_PLATFORMS)


def check_platform_version(version: object) -> None:
    """RunTask's, CreateService's and UpdateService's platformVersion (None: not given)."""
    if version is not None and version not in PLATFORM_VERSIONS:
        raise InvalidParameterException(
            f"Platform version {str(version)[:32]} is not supported by fargo; use LATEST, "
            "1.4.0 (runc) or 1.4.0-gvisor (a gVisor sandbox).")


def _not_honoured(member: str) -> InvalidParameterException:
    return InvalidParameterException(f"The '{member}' parameter is not supported by fargo.")


def check_run_task_params(p: dict[str, Any]) -> None:
    """Refuse RunTask members fargo would otherwise accept and not act on."""
    for name in _EC2_ONLY:
        if present(p.get(name)):
            raise InvalidParameterException(
                f"The '{name}' parameter is not supported on Fargate.")
    check_platform_version(p.get("platformVersion"))
    if p.get("propagateTags") == "NONE":  # what fargo does anyway
        p = {k: v for k, v in p.items() if k != "propagateTags"}
    member = unknown_given(p, _RUN_TASK_KNOWN | set(_EC2_ONLY))
    if member:
        raise _not_honoured(member)
    vpc = (p.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
    member = unknown_given(vpc, _AWSVPC_KNOWN)
    if member:
        raise _not_honoured(f"awsvpcConfiguration.{member}")
    if vpc.get("assignPublicIp") == "ENABLED":  # tasks here have private addresses only
        raise _not_honoured("awsvpcConfiguration.assignPublicIp")
    overrides = p.get("overrides") or {}
    member = unknown_given(overrides, _OVERRIDES_KNOWN)
    if member:
        raise _not_honoured(f"overrides.{member}")
    for co in overrides.get("containerOverrides") or []:
        member = unknown_given(co, _CONTAINER_OVERRIDE_KNOWN)
        if member:
            raise _not_honoured(f"containerOverrides.{member}")
