"""A task record in ECS's Task shape (botocore's ecs model): the one place it is rendered."""

from __future__ import annotations

from typing import Any

from ..model.healthcheck import task_health
from ..model.isolation import platform_of
from ..model.taskrecord import Container, Task

_OVERRIDE_KEYS = ("cpu", "memory", "taskRoleArn", "executionRoleArn")
# Wire name -> record field, for the timestamps a task has only once it reached them.
_STAMPS = (("startedAt", "started_at"), ("stoppingAt", "stopping_at"),
           ("executionStoppedAt", "execution_stopped_at"), ("stoppedAt", "stopped_at"),
           ("pullStartedAt", "pull_started_at"), ("pullStoppedAt", "pull_stopped_at"))


def container_json(task: Task, c: Container) -> dict[str, Any]:
    out: dict[str, Any] = {
        "containerArn": c.arn, "taskArn": task.arn, "name": c.name, "image": c.image,
        "lastStatus": c.last_status, "networkBindings": [],
        "networkInterfaces": [{"attachmentId": task.interface.attachment_id,
                               "privateIpv4Address": task.interface.ip}],
        "healthStatus": c.health_status, "cpu": str(c.cpu),
    }
    if c.memory:
        out["memory"] = str(c.memory)
    if c.memory_reservation:
        out["memoryReservation"] = str(c.memory_reservation)
    if c.exit_code is not None:
        out["exitCode"] = c.exit_code
    if c.reason:
        out["reason"] = c.reason
    if c.image_digest:
        out["imageDigest"] = c.image_digest
    if c.runtime_id:
        out["runtimeId"] = c.runtime_id
    return out


def attachment_json(task: Task) -> dict[str, Any]:
    eni = task.interface
    details = [{"name": "subnetId", "value": eni.subnet_id},
               {"name": "networkInterfaceId", "value": eni.eni_id}]
    if eni.mac:
        details.append({"name": "macAddress", "value": eni.mac})
    details += [{"name": "privateDnsName", "value": eni.private_dns},
                {"name": "privateIPv4Address", "value": eni.ip}]
    return {"id": eni.attachment_id, "type": "ElasticNetworkInterface", "status": eni.status,
            "details": details}


def task_json(task: Task) -> dict[str, Any]:
    ov = task.overrides
    out: dict[str, Any] = {
        "taskArn": task.arn, "clusterArn": task.cluster_arn,
        "taskDefinitionArn": task.task_definition_arn,
        "overrides": {"containerOverrides": ov.get("containerOverrides") or [],
                      "inferenceAcceleratorOverrides": [],
                      **{k: ov[k] for k in _OVERRIDE_KEYS if ov.get(k)}},
        "lastStatus": task.last_status, "desiredStatus": task.desired_status,
        "cpu": str(task.cpu), "memory": str(task.memory),
        "containers": [container_json(task, c) for c in task.containers],
        # From the containers' health as last recorded: a stopped task keeps its last.
        "healthStatus": task_health(task),
        "version": task.version, "createdAt": task.created_at, "group": task.group,
        "launchType": task.launch_type, "platformVersion": platform_of(task.isolation),
        "platformFamily": "Linux", "availabilityZone": task.availability_zone,
        "connectivity": "CONNECTED", "connectivityAt": task.created_at,
        "ephemeralStorage": {"sizeInGiB": task.storage_gib},
        "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
        "attachments": [attachment_json(task)],
    }
    if task.started_by:
        out["startedBy"] = task.started_by
    if task.capacity_provider:
        out["capacityProviderName"] = task.capacity_provider
    if task.stop_code:
        out["stopCode"] = task.stop_code
    if task.stopped_reason:
        out["stoppedReason"] = task.stopped_reason
    for wire, name in _STAMPS:
        value = getattr(task, name)
        if value is not None:
            out[wire] = value
    return out
