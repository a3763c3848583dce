"""The ECS services actions: parameters (checked against botocore's shape) go to
control/services; records come back rendered as ECS's Service."""

from __future__ import annotations

from typing import Any

from ..control.services import Services
from ..control.services.operations import ServiceState
from ..model.capacity import Strategy
from ..model.service import Deployment, NetworkConf, RegistryBinding, Service
from .ecs import page

Params = dict[str, Any]


def _network(conf: NetworkConf) -> dict[str, Any]:
    return {"awsvpcConfiguration": {"subnets": list(conf.subnets),
                                    "securityGroups": list(conf.security_groups),
                                    "assignPublicIp": conf.assign_public_ip}}


def _launch(out: dict[str, Any], launch: str | None, strategy: Strategy) -> None:
    if strategy:
        out["capacityProviderStrategy"] = [item.to_wire() for item in strategy]
    elif launch:
        out["launchType"] = launch


def _registry(r: RegistryBinding) -> dict[str, Any]:
    out: dict[str, Any] = {"registryArn": r.registry_arn}
    for key, value in (("port", r.port), ("containerName", r.container_name),
                       ("containerPort", r.container_port)):
        if value is not None:
            out[key] = value
    return out


def deployment_json(d: Deployment, state: ServiceState) -> dict[str, Any]:
    counts = state.per_deployment.get(d.id)
    out: dict[str, Any] = {
        "id": d.id, "status": d.status, "taskDefinition": d.task_definition,
        "desiredCount": d.desired_count, "pendingCount": counts.pending if counts else 0,
        "runningCount": counts.running if counts else 0, "failedTasks": d.failed_tasks,
        "createdAt": d.created_at, "updatedAt": d.updated_at,
        "platformVersion": d.platform_version, "platformFamily": "Linux",
        "networkConfiguration": _network(d.network), "rolloutState": d.rollout_state,
        "rolloutStateReason": d.rollout_state_reason,
    }
    _launch(out, d.launch_type, d.strategy)
    return out


def service_json(state: ServiceState) -> dict[str, Any]:
    svc: Service = state.service
    out: dict[str, Any] = {
        "serviceArn": svc.arn, "serviceName": svc.name, "clusterArn": svc.cluster_arn,
        "loadBalancers": [{"targetGroupArn": b.target_group_arn,
                           "containerName": b.container_name,
                           "containerPort": b.container_port} for b in svc.load_balancers],
        "serviceRegistries": [_registry(r) for r in svc.registries], "status": svc.status,
        "desiredCount": svc.desired_count, "runningCount": state.counts.running,
        "pendingCount": state.counts.pending, "platformVersion": svc.platform_version,
        "platformFamily": "Linux", "taskDefinition": svc.task_definition,
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": svc.config.breaker,
                                         "rollback": svc.config.rollback},
            "maximumPercent": svc.config.maximum_percent,
            "minimumHealthyPercent": svc.config.minimum_healthy_percent},
        "deployments": [deployment_json(d, state) for d in svc.deployments],
        "events": [{"id": e.id, "createdAt": e.created_at, "message": e.message}
                   for e in svc.events],
        "createdAt": svc.created_at, "placementConstraints": [], "placementStrategy": [],
        "networkConfiguration": _network(svc.network), "schedulingStrategy": "REPLICA",
        "deploymentController": {"type": "ECS"},
        "createdBy": "arn:aws:iam::000000000000:root",
        "enableECSManagedTags": svc.managed_tags, "propagateTags": svc.propagate_tags,
        "enableExecuteCommand": False, "availabilityZoneRebalancing": "DISABLED",
    }
    _launch(out, svc.launch_type, svc.strategy)
    if svc.grace_seconds is not None:
        out["healthCheckGracePeriodSeconds"] = svc.grace_seconds
    if state.tags is not None:
        out["tags"] = state.tags
    return out


def handlers(services: Services) -> dict[str, Any]:
    def one(svc: Service) -> dict[str, Any]:
        return {"service": service_json(services.state(svc))}

    def describe(p: Params, region: str) -> Any:
        found, failures = services.describe(p.get("cluster"), p["services"],
                                            "TAGS" in (p.get("include") or []), region)
        return {"services": [service_json(s) for s in found], "failures": failures}

    def listing(p: Params, region: str) -> Any:
        arns = services.list(p.get("cluster"), p.get("launchType"), region,
                             p.get("schedulingStrategy"), p.get("resourceManagementType"))
        return page(arns, {**p, "maxResults": p.get("maxResults", 10)}, "serviceArns")

    return {
        "CreateService": lambda p, region: one(services.create(p, region)),
        "UpdateService": lambda p, region: one(services.update(p, region)),
        "DeleteService": lambda p, region: one(services.delete(
            p.get("cluster"), p["service"], bool(p.get("force")), region)),
        "DescribeServices": describe,
        "ListServices": listing,
    }

