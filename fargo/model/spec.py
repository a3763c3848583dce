"""From a container definition and its image to the container the data plane runs: Docker's
and ECS's rules for the command, environment, user and working directory, and what Fargate
sets in every container (FARGATE.md section 5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..port.data import DEFAULT_PATH, ContainerSpec
from .dns import hosts_file, resolv_conf
from .errors import ClientException
from .taskrecord import ContainerDef, Task

METADATA_HOST = "169.254.170.2"


def resolve_command(cdef: ContainerDef, config: dict[str, Any]) -> list[str]:
    """Docker's rule: an entryPoint given in the definition also drops the image's Cmd."""
    entry = cdef.get("entryPoint")
    cmd = cdef.get("command")
    if entry is None:
        entry = config.get("Entrypoint") or []
        if cmd is None:
            cmd = config.get("Cmd") or []
    args = list(entry) + list(cmd or [])
    if not args:
        raise ClientException(
            f"container {cdef['name']!r}: no command given and the image has none")
    return args


def resolve_env(cdef: ContainerDef, config: dict[str, Any], task_env: dict[str, str],
                secrets: Mapping[str, str] | None = None) -> dict[str, str]:
    """The image's Env, then what Fargate sets, then the definition's environment, then
    its secrets (their values, fetched at this start)."""
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(task_env)
    for item in cdef.get("environment") or []:
        env[item["name"]] = item.get("value", "")
    env.update(secrets or {})
    return env


def task_env(task: Task, name: str) -> dict[str, str]:
    """What Fargate sets in every container of a task."""
    uri = f"http://{METADATA_HOST}/v4/{task.id}-{name}"
    env = {"AWS_EXECUTION_ENV": "AWS_ECS_FARGATE", "AWS_REGION": task.region,
           "AWS_DEFAULT_REGION": task.region, "ECS_CONTAINER_METADATA_URI_V4": uri,
           "ECS_CONTAINER_METADATA_URI": uri.replace("/v4/", "/v3/")}
    if task.role:
        env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = f"/v2/credentials/{task.credentials_id}"
    if task.interface.endpoint:  # the AWS SDKs and CLI send every service's calls there
        env["AWS_ENDPOINT_URL"] = f"http://{task.interface.endpoint}"
        # ...as they are: not to data-ADDRESS, the host Cloud Map's DiscoverInstances would
        # otherwise be sent to.
        env["AWS_DISABLE_HOST_PREFIX_INJECTION"] = "true"
    return env


def container_spec(task: Task, cdef: ContainerDef, config: dict[str, Any],
                   secrets: Mapping[str, str] | None = None,
                   nameserver: str | None = None) -> ContainerSpec:
    """The container as the data plane takes it; config is the image's config object,
    secrets the values of the definition's `secrets` by variable name, nameserver the task's
    VPC resolver (its base + 2), named in /etc/resolv.conf as on Fargate (None: the image's
    files stay)."""
    linux = cdef.get("linuxParameters") or {}
    caps = linux.get("capabilities") or {}
    return ContainerSpec(
        name=cdef["name"], args=resolve_command(cdef, config),
        env=resolve_env(cdef, config, task_env(task, cdef["name"]), secrets),
        cwd=cdef.get("workingDirectory") or config.get("WorkingDir") or "/",
        user=cdef.get("user") or config.get("User") or "",
        cpu_shares=int(cdef["cpu"]) if cdef.get("cpu") else None,
        memory_mib=cdef.get("memory"), memory_reservation_mib=cdef.get("memoryReservation"),
        stop_signal=config.get("StopSignal") or "SIGTERM",
        readonly_rootfs=bool(cdef.get("readonlyRootFilesystem")),
        hostname=task.interface.private_dns or None,  # as on Fargate: the ENI's DNS name
        extra_caps=list(caps.get("add") or []), dropped_caps=list(caps.get("drop") or []),
        resolv_conf=resolv_conf(nameserver, task.region) if nameserver else None,
        hosts=hosts_file(task.ip, task.interface.private_dns)
        if nameserver and task.interface.private_dns else None)
