"""Building a task record from a task definition and RunTask's overrides (no I/O)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from .errors import ClientException, InvalidParameterException
from .names import arn
from .sizes import check_task_size, parse_cpu, parse_memory
from .taskdef import check_environment

PLATFORM_VERSION = "1.4.0"


def task_id_of(task: dict[str, Any]) -> str:
    """The id at the end of a task's ARN (arn:...:task/CLUSTER/ID)."""
    return task["taskArn"].rsplit("/", 1)[-1]


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


def new_task(*, td: dict[str, Any], cluster_arn: str, region: str, cpu: int, memory: int,
             overrides: dict[str, Any], subnet: Any, ip: str, group: str | None,
             started_by: str | None, now: float,
             capacity_provider: str | None) -> dict[str, Any]:
    """A task record in PROVISIONING, shaped as ECS's Task, plus private `_fargo` details."""
    task_id = uuid.uuid4().hex
    cluster_name = cluster_arn.rsplit("/", 1)[-1]
    task_arn = arn(region, "task", f"{cluster_name}/{task_id}")
    attachment_id = str(uuid.uuid4())
    eni = "eni-" + uuid.uuid4().hex[:17]
    plan = container_plan(td, overrides)
    containers = []
    for c in plan:
        entry: dict[str, Any] = {
            "containerArn": arn(region, "container", f"{cluster_name}/{task_id}/{uuid.uuid4()}"),
            "taskArn": task_arn, "name": c["name"], "image": c["image"],
            "lastStatus": "PENDING", "networkBindings": [],
            "networkInterfaces": [{"attachmentId": attachment_id, "privateIpv4Address": ip}],
            "healthStatus": "UNKNOWN", "cpu": str(c.get("cpu") or 0),
        }
        if c.get("memory"):
            entry["memory"] = str(c["memory"])
        if c.get("memoryReservation"):
            entry["memoryReservation"] = str(c["memoryReservation"])
        containers.append(entry)
    storage = (td.get("ephemeralStorage") or {}).get("sizeInGiB", 20)
    task: dict[str, Any] = {
        "taskArn": task_arn, "clusterArn": cluster_arn,
        "taskDefinitionArn": td["taskDefinitionArn"],
        "overrides": {"containerOverrides": overrides.get("containerOverrides") or [],
                      "inferenceAcceleratorOverrides": [],
                      **{k: overrides[k] for k in ("cpu", "memory", "taskRoleArn",
                                                   "executionRoleArn") if overrides.get(k)}},
        "lastStatus": "PROVISIONING", "desiredStatus": "RUNNING",
        "cpu": str(cpu), "memory": str(memory), "containers": containers,
        "version": 1, "createdAt": now, "group": group or f"family:{td['family']}",
        "launchType": "FARGATE", "platformVersion": PLATFORM_VERSION, "platformFamily": "Linux",
        "availabilityZone": subnet.zone, "connectivity": "CONNECTED", "connectivityAt": now,
        "ephemeralStorage": {"sizeInGiB": storage},
        "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
        "attachments": [{
            "id": attachment_id, "type": "ElasticNetworkInterface", "status": "PRECREATED",
            "details": [
                {"name": "subnetId", "value": subnet.id},
                {"name": "networkInterfaceId", "value": eni},
                {"name": "privateDnsName", "value": private_dns(ip, region)},
                {"name": "privateIPv4Address", "value": ip},
            ],
        }],
        "_fargo": {"ip": ip, "subnet": subnet.id, "plan": plan,
                   # The role its containers' credentials endpoint speaks for, if any.
                   "role": overrides.get("taskRoleArn") or td.get("taskRoleArn"),
                   "credentials_id": str(uuid.uuid4())},
    }
    if started_by:
        task["startedBy"] = started_by
    if capacity_provider:
        task["capacityProviderName"] = capacity_provider
    return task


def set_attachment(task: dict[str, Any], status: str, mac: str | None = None) -> None:
    att = task["attachments"][0]
    att["status"] = status
    if mac and not any(d["name"] == "macAddress" for d in att["details"]):
        att["details"].insert(2, {"name": "macAddress", "value": mac})


def public_view(task: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in task.items() if not k.startswith("_")}


def check_launch(req: dict[str, Any]) -> str | None:
    """RunTask's launchType / capacityProviderStrategy; returns the capacity provider used."""
    strategy = req.get("capacityProviderStrategy")
    if strategy and req.get("launchType"):
        raise InvalidParameterException(
            "Specifying both a launch type and capacity provider strategy is not supported. "
            "Remove one and try again.")
    if strategy:
        providers = {s.get("capacityProvider") for s in strategy}
        if providers - {"FARGATE"}:
            bad = sorted(str(p) for p in providers - {"FARGATE"})
            raise InvalidParameterException(
                f"Capacity provider {bad[0][:255]} is not supported here; use FARGATE.")
        return "FARGATE"
    if req.get("launchType", "FARGATE") != "FARGATE":
        raise InvalidParameterException(
            f"Launch type {str(req['launchType'])[:32]} is not supported: fargo runs FARGATE tasks.")
    return None


# Limits AWS documents for RunTask and StopTask strings.
_LIMITS = {"startedBy": 128, "group": 255, "clientToken": 64, "reason": 255}


def check_lengths(req: dict[str, Any]) -> None:
    for field, limit in _LIMITS.items():
        value = req.get(field)
        if value is not None and len(value) > limit:
            raise InvalidParameterException(f"{field} can be at most {limit} characters.")


def check_count(count: Any) -> int:
    if count is None:
        return 1
    if not 1 <= int(count) <= 10:
        raise InvalidParameterException("count must be between 1 and 10.")
    return int(count)


def require_fargate(td: dict[str, Any]) -> None:
    if "FARGATE" not in td.get("compatibilities", []):
        raise ClientException("Task definition does not support launch_type FARGATE.")
    if td["status"] != "ACTIVE":
        raise ClientException("TaskDefinition is inactive")
