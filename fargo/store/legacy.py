"""Task rows of older servers (an ECS-shaped JSON document plus a private `_fargo` part) read
into task records, so an upgraded server re-adopts the tasks an older one left running."""

from __future__ import annotations

from typing import Any

import orjson

from ..model.taskrecord import (
    Container,
    ContainerRun,
    Interface,
    LastRun,
    PodRef,
    RestartPolicy,
    Task,
)


def _detail(doc: dict[str, Any], name: str) -> str | None:
    for att in doc.get("attachments") or []:
        for d in att.get("details") or []:
            if d.get("name") == name:
                return str(d.get("value"))
    return None


def _run(raw: dict[str, Any] | None) -> ContainerRun | None:
    if not raw:
        return None
    last = raw.get("last")
    return ContainerRun(
        restart_count=raw.get("restartCount", 0), restart_at=raw.get("restartAt"),
        started_at=raw.get("startedAt"), finished_at=raw.get("finishedAt"),
        exit_code=raw.get("exitCode"), oom=bool(raw.get("oom")),
        last=LastRun(last.get("exitCode"), bool(last.get("oom")), last.get("startedAt"),
                     last.get("finishedAt")) if last else None)


def task_from_row(doc_text: str | bytes, private_text: str | bytes) -> Task:
    doc = orjson.loads(doc_text)
    priv = orjson.loads(private_text)
    runs = priv.get("runs") or {}
    containers = [Container(
        name=c["name"], arn=c["containerArn"], image=c["image"], cpu=int(c.get("cpu") or 0),
        memory=int(c["memory"]) if c.get("memory") else None,
        memory_reservation=int(c["memoryReservation"]) if c.get("memoryReservation") else None,
        last_status=c["lastStatus"], health_status=c.get("healthStatus", "UNKNOWN"),
        exit_code=c.get("exitCode"), reason=c.get("reason"), image_digest=c.get("imageDigest"),
        runtime_id=c.get("runtimeId"), run=_run(runs.get(c["name"])))
        for c in doc["containers"]]
    att = (doc.get("attachments") or [{}])[0]
    pod = priv.get("pod")
    restart = priv.get("restart")
    overrides = {k: v for k, v in (doc.get("overrides") or {}).items()
                 if k != "inferenceAcceleratorOverrides"}
    arn = doc["taskArn"]
    return Task(
        id=arn.rsplit("/", 1)[-1], arn=arn, cluster_arn=doc["clusterArn"],
        task_definition_arn=doc["taskDefinitionArn"],
        family=doc["taskDefinitionArn"].split("/")[-1].split(":")[0],
        region=arn.split(":")[3], cpu=int(doc["cpu"]), memory=int(doc["memory"]),
        created_at=doc["createdAt"], availability_zone=doc["availabilityZone"],
        interface=Interface(
            attachment_id=att.get("id", ""), eni_id=_detail(doc, "networkInterfaceId") or "",
            subnet_id=priv.get("subnet") or _detail(doc, "subnetId") or "", ip=priv["ip"],
            private_dns=_detail(doc, "privateDnsName") or "",
            status=att.get("status", "PRECREATED"), mac=_detail(doc, "macAddress"),
            groups=list(priv.get("groups") or [])),
        containers=containers, plan=priv.get("plan") or [], overrides=overrides,
        storage_gib=(doc.get("ephemeralStorage") or {}).get("sizeInGiB", 20),
        group=doc.get("group", ""), started_by=doc.get("startedBy"),
        capacity_provider=doc.get("capacityProviderName"),
        launch_type=doc.get("launchType", "FARGATE"), last_status=doc["lastStatus"],
        desired_status=doc["desiredStatus"], version=doc.get("version", 1),
        stop_code=doc.get("stopCode"), stopped_reason=doc.get("stoppedReason"),
        started_at=doc.get("startedAt"), stopping_at=doc.get("stoppingAt"),
        execution_stopped_at=doc.get("executionStoppedAt"), stopped_at=doc.get("stoppedAt"),
        pull_started_at=doc.get("pullStartedAt"), pull_stopped_at=doc.get("pullStoppedAt"),
        role=priv.get("role"), credentials_id=priv.get("credentials_id", ""),
        role_key=priv.get("role_key"),
        restart=RestartPolicy(restart.get("policy", "Always"), list(restart.get("init") or []))
        if restart else None,
        pod=PodRef(pod["cluster"], pod["namespace"], pod["name"], pod["uid"]) if pod else None,
        stop_timeout=priv.get("stop_timeout"))
