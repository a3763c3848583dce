"""The task metadata endpoint v4 and the role credentials endpoint, as a task sees them at
http://169.254.170.2: the paths and the JSON. Which tasks have one, and what it holds, is
control/metadata.py's."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from typing import Any

from aiohttp import web

from ..control.metadata import Handler, TaskEndpoints
from ..model.taskrecord import Container, Task
from ..model.vpc import Subnet
from ..port.data import ContainerStats, TaskStats

log = logging.getLogger("fargo.metadata")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat().replace("+00:00", "Z")


def _family_revision(task: Task) -> tuple[str, str]:
    family, revision = task.task_definition_arn.rsplit("/", 1)[-1].split(":")
    return family, revision


def container_doc(task: Task, c: Container, subnet: Subnet) -> dict[str, Any]:
    family, revision = _family_revision(task)
    plan = task.container_def(c.name)
    gateway_prefix = subnet.cidr.split("/")[1]
    doc: dict[str, Any] = {
        "DockerId": f"{task.id}-{c.name}", "Name": c.name,
        "DockerName": f"ecs-{family}-{revision}-{c.name}", "Image": c.image,
        "ImageID": c.image_digest or "",
        "Labels": {"com.amazonaws.ecs.cluster": task.cluster_arn,
                   "com.amazonaws.ecs.container-name": c.name,
                   "com.amazonaws.ecs.task-arn": task.arn,
                   "com.amazonaws.ecs.task-definition-family": family,
                   "com.amazonaws.ecs.task-definition-version": revision},
        "DesiredStatus": "STOPPED" if task.stopping else "RUNNING",
        "KnownStatus": c.last_status,
        "Limits": {"CPU": int(plan.get("cpu") or 0), "Memory": int(plan.get("memory") or 0)},
        "Type": "NORMAL", "ContainerARN": c.arn,
        "Networks": [{
            "NetworkMode": "awsvpc", "IPv4Addresses": [task.ip],
            "AttachmentIndex": 0, "MACAddress": task.interface.mac or "",
            "IPv4SubnetCIDRBlock": subnet.cidr, "PrivateDNSName": task.interface.private_dns,
            "SubnetGatewayIpv4Address": f"{subnet.gateway}/{gateway_prefix}",
        }],
    }
    if c.exit_code is not None:
        doc["ExitCode"] = c.exit_code
    if task.started_at:
        doc["CreatedAt"] = doc["StartedAt"] = iso(task.started_at)
    return doc


def task_doc(task: Task, subnet: Subnet) -> dict[str, Any]:
    family, revision = _family_revision(task)
    doc = {
        "Cluster": task.cluster_arn, "TaskARN": task.arn, "Family": family,
        "Revision": revision, "DesiredStatus": task.desired_status,
        "KnownStatus": task.last_status,
        "Limits": {"CPU": task.cpu / 1024, "Memory": task.memory},
        "PullStartedAt": iso(task.pull_started_at),
        "PullStoppedAt": iso(task.pull_stopped_at),
        "AvailabilityZone": task.availability_zone, "LaunchType": "FARGATE",
        "Containers": [container_doc(task, c, subnet) for c in task.containers],
        "EphemeralStorageMetrics": {"Utilized": 0, "Reserved": task.storage_gib * 1024},
    }
    return {k: v for k, v in doc.items() if v is not None}


def docker_stats(raw: TaskStats, name: str | None) -> dict[str, Any]:
    """Stats in the Docker stats shape that the v4 endpoint serves, from the cgroup readings."""
    if name:
        part = raw.containers.get(name) or ContainerStats()
        usage, cpu_ns = part.memory_usage_bytes, part.cpu_usage_ns
    else:
        usage, cpu_ns = raw.memory_usage_bytes, raw.cpu_usage_ns
    cpus = max(1, (raw.cpu_quota_us or 0) // max(1, raw.cpu_period_us or 1))
    doc: dict[str, Any] = {
        "read": iso(time.time()), "name": name or "",
        "memory_stats": {"usage": usage or 0,
                         "max_usage": raw.memory_max_usage_bytes or 0,
                         "limit": raw.memory_limit_bytes or 0},
        "cpu_stats": {"cpu_usage": {"total_usage": cpu_ns or 0},
                      "online_cpus": cpus},
        "pids_stats": {"current": raw.pids_current or 0},
    }
    if raw.network is not None:  # awsvpc: every container of the task shares its eth0
        doc["networks"] = {"eth0": dataclasses.asdict(raw.network)}
    return doc


def handler(endpoints: TaskEndpoints, tid: str) -> Handler:
    """The HTTP handler of one task's endpoint."""

    async def answer(request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await _route(endpoints, tid, request)
        except Exception:  # noqa: BLE001 - a task must never see a traceback
            log.exception("metadata request %s for task %s", request.path, tid)
            return web.json_response({"message": "internal error"}, status=500)

    return answer


async def _route(endpoints: TaskEndpoints, tid: str,
                 request: web.BaseRequest) -> web.StreamResponse:
    task = endpoints.task(tid)
    parts = [p for p in request.path.split("/") if p]
    if task is None or request.method != "GET":
        return _not_found()
    if len(parts) == 3 and parts[:2] == ["v2", "credentials"]:
        key = endpoints.role_credentials(tid, parts[2])
        if key is None:
            return _not_found()
        return web.json_response({"RoleArn": key.principal, "AccessKeyId": key.id,
                                  "SecretAccessKey": key.secret, "Token": key.token,
                                  "Expiration": iso(key.expires)})
    if len(parts) < 2 or parts[0] not in ("v3", "v4"):
        return _not_found()
    name = _container_of(task, parts[1])
    if name is None:
        return _not_found()
    subnet = endpoints.subnet(task)
    rest = parts[2:]
    if rest == []:
        return web.json_response(container_doc(task, task.container(name), subnet))
    if rest == ["task"]:
        return web.json_response(task_doc(task, subnet))
    if rest in (["stats"], ["task", "stats"]):
        raw = await endpoints.stats(tid)
        if rest == ["stats"]:
            return web.json_response(docker_stats(raw, name))
        return web.json_response({f"{tid}-{n}": docker_stats(raw, n) for n in raw.containers})
    return _not_found()


def _container_of(task: Task, token: str) -> str | None:
    """The path token is `<task id>-<container name>`, and only this task's count."""
    if not token.startswith(task.id + "-"):
        return None
    name = token[len(task.id) + 1:]
    return name if any(c.name == name for c in task.containers) else None


def _not_found() -> web.Response:
    return web.json_response({"message": "Not found"}, status=404)
