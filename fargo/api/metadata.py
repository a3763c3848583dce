"""The task metadata endpoint v4 and the role credentials endpoint, as a task sees them at
http://169.254.170.2. One small HTTP server per task, on a socket inside that task's netns."""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from typing import Any

from aiohttp import web

from ..model.task import task_id_of

log = logging.getLogger("fargo.metadata")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat().replace("+00:00", "Z")


def _detail(task: dict[str, Any], name: str) -> str:
    return next((d["value"] for d in task["attachments"][0]["details"] if d["name"] == name), "")


def container_doc(task: dict[str, Any], c: dict[str, Any], subnet: Any) -> dict[str, Any]:
    tid = task_id_of(task)
    family, revision = task["taskDefinitionArn"].rsplit("/", 1)[-1].split(":")
    plan = next(p for p in task["_fargo"]["plan"] if p["name"] == c["name"])
    cpu = int(plan.get("cpu") or 0)
    gateway_prefix = subnet.cidr.split("/")[1]
    doc: dict[str, Any] = {
        "DockerId": f"{tid}-{c['name']}", "Name": c["name"],
        "DockerName": f"ecs-{family}-{revision}-{c['name']}", "Image": c["image"],
        "ImageID": c.get("imageDigest", ""),
        "Labels": {"com.amazonaws.ecs.cluster": task["clusterArn"],
                   "com.amazonaws.ecs.container-name": c["name"],
                   "com.amazonaws.ecs.task-arn": task["taskArn"],
                   "com.amazonaws.ecs.task-definition-family": family,
                   "com.amazonaws.ecs.task-definition-version": revision},
        "DesiredStatus": "STOPPED" if task["desiredStatus"] == "STOPPED" else "RUNNING",
        "KnownStatus": c["lastStatus"],
        "Limits": {"CPU": cpu, "Memory": int(plan.get("memory") or 0)},
        "Type": "NORMAL", "ContainerARN": c["containerArn"],
        "Networks": [{
            "NetworkMode": "awsvpc", "IPv4Addresses": [task["_fargo"]["ip"]],
            "AttachmentIndex": 0, "MACAddress": _detail(task, "macAddress"),
            "IPv4SubnetCIDRBlock": subnet.cidr, "PrivateDNSName": _detail(task, "privateDnsName"),
            "SubnetGatewayIpv4Address": f"{subnet.gateway}/{gateway_prefix}",
        }],
    }
    if "exitCode" in c:
        doc["ExitCode"] = c["exitCode"]
    if task.get("startedAt"):
        doc["CreatedAt"] = doc["StartedAt"] = iso(task["startedAt"])
    return doc


def task_doc(task: dict[str, Any], subnet: Any) -> dict[str, Any]:
    family, revision = task["taskDefinitionArn"].rsplit("/", 1)[-1].split(":")
    doc = {
        "Cluster": task["clusterArn"], "TaskARN": task["taskArn"], "Family": family,
        "Revision": revision, "DesiredStatus": task["desiredStatus"],
        "KnownStatus": task["lastStatus"],
        "Limits": {"CPU": int(task["cpu"]) / 1024, "Memory": int(task["memory"])},
        "PullStartedAt": iso(task.get("pullStartedAt")),
        "PullStoppedAt": iso(task.get("pullStoppedAt")),
        "AvailabilityZone": task["availabilityZone"], "LaunchType": "FARGATE",
        "Containers": [container_doc(task, c, subnet) for c in task["containers"]],
        "EphemeralStorageMetrics": {"Utilized": 0,
                                    "Reserved": task["ephemeralStorage"]["sizeInGiB"] * 1024},
    }
    return {k: v for k, v in doc.items() if v is not None}


def docker_stats(raw: dict[str, Any], name: str | None) -> dict[str, Any]:
    """Stats in the Docker stats shape that the v4 endpoint serves, from the cgroup readings."""
    part = raw.get("containers", {}).get(name, {}) if name else raw
    cpus = max(1, (raw.get("cpu_quota_us") or 0) // max(1, raw.get("cpu_period_us") or 1))
    return {
        "read": iso(time.time()), "name": name or "",
        "memory_stats": {"usage": part.get("memory_usage_bytes") or 0,
                         "max_usage": raw.get("memory_max_usage_bytes") or 0,
                         "limit": raw.get("memory_limit_bytes") or 0},
        "cpu_stats": {"cpu_usage": {"total_usage": part.get("cpu_usage_ns") or 0},
                      "online_cpus": cpus},
        "pids_stats": {"current": raw.get("pids_current") or 0},
    }


class MetadataService:
    """Opens and closes the per-task endpoints; answers from the store and the cgroups."""

    def __init__(self, store: Any, agent: Any, iam: Any, subnets: dict[str, Any]):
        self.store = store
        self.agent = agent
        self.iam = iam
        self.subnets = subnets
        self._servers: dict[str, asyncio.base_events.Server] = {}

    async def open(self, tid: str) -> None:
        if tid in self._servers:
            return
        sock = await asyncio.to_thread(self.agent.metadata_listener, tid)
        handler = web.Server(lambda request: self._answer(tid, request))
        loop = asyncio.get_running_loop()
        self._servers[tid] = await loop.create_server(handler, sock=sock)

    async def network_ready(self, tid: str) -> None:
        await self.open(tid)

    async def network_gone(self, tid: str) -> None:
        await self.close(tid)

    async def close(self, tid: str) -> None:
        server = self._servers.pop(tid, None)
        if server is not None:
            server.close()

    async def close_all(self) -> None:
        for tid in list(self._servers):
            await self.close(tid)

    async def _answer(self, tid: str, request: web.BaseRequest) -> web.Response:
        try:
            return await self._route(tid, request)
        except Exception:  # noqa: BLE001 - a task must never see a traceback
            log.exception("metadata request %s for task %s", request.path, tid)
            return web.json_response({"message": "internal error"}, status=500)

    async def _route(self, tid: str, request: web.BaseRequest) -> web.Response:
        task = self.store.get_task(tid)
        parts = [p for p in request.path.split("/") if p]
        if task is None or request.method != "GET":
            return _not_found()
        if len(parts) == 3 and parts[:2] == ["v2", "credentials"]:
            return self._credentials(task, parts[2])
        if len(parts) < 2 or parts[0] not in ("v3", "v4"):
            return _not_found()
        name = self._container_of(task, tid, parts[1])
        if name is None:
            return _not_found()
        subnet = self.subnets[task["_fargo"]["subnet"]]
        rest = parts[2:]
        if rest == []:
            c = next(c for c in task["containers"] if c["name"] == name)
            return web.json_response(container_doc(task, c, subnet))
        if rest == ["task"]:
            return web.json_response(task_doc(task, subnet))
        if rest in (["stats"], ["task", "stats"]):
            raw = await asyncio.to_thread(self.agent.sandbox.stats, tid)
            if rest == ["stats"]:
                return web.json_response(docker_stats(raw, name))
            return web.json_response({f"{tid}-{n}": docker_stats(raw, n)
                                      for n in raw.get("containers", {})})
        return _not_found()

    @staticmethod
    def _container_of(task: dict[str, Any], tid: str, token: str) -> str | None:
        """The path token is `<task id>-<container name>`, and only this task's count."""
        if not token.startswith(tid + "-"):
            return None
        name = token[len(tid) + 1:]
        return name if any(c["name"] == name for c in task["containers"]) else None

    def _credentials(self, task: dict[str, Any], cred_id: str) -> web.Response:
        priv = task["_fargo"]
        if not priv.get("role") or cred_id != priv.get("credentials_id"):
            return _not_found()
        key = self.iam.current_role_credentials(priv["role"], priv.get("role_key"))
        if key.id != priv.get("role_key"):
            priv["role_key"] = key.id
            self.store.put_task(task)
        return web.json_response({"RoleArn": key.principal, "AccessKeyId": key.id,
                                  "SecretAccessKey": key.secret, "Token": key.token,
                                  "Expiration": iso(key.expires)})


def _not_found() -> web.Response:
    return web.json_response({"message": "Not found"}, status=404)
