"""Task-definition rules for FARGATE: what may be registered and what it looks like stored."""

from __future__ import annotations

import copy
import os
from typing import Any, NoReturn

from .errors import ClientException
from .healthcheck import normalize_health_check
from .logconfig import check_fargate_logging, check_log_configuration
from .names import check_name
from .secretref import check_secrets
from .sizes import check_task_size, parse_cpu, parse_memory

# Container-definition fields Fargate refuses outright.
_CONTAINER_FORBIDDEN = (
    "privileged", "disableNetworking", "dnsSearchDomains", "dnsServers",
    "dockerSecurityOptions", "extraHosts", "links", "hostname",
)
_LINUX_FORBIDDEN = ("devices", "sharedMemorySize", "tmpfs", "maxSwap", "swappiness")
_ALLOWED_CAPS = {"SYS_PTRACE"}
MAX_STOP_TIMEOUT = 120
DEFAULT_STOP_TIMEOUT = 30

# The members of RegisterTaskDefinition's input (botocore's ecs shapes) that fargo knows: it
# runs them as ECS does, or Fargate's own rules above refuse them. A member not named here
# that is given a value is refused by name: never stored and then ignored. (The task
# definition as stored also carries what registration adds.)
_TASKDEF_KNOWN = frozenset({
    "family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions",
    "volumes", "placementConstraints", "requiresCompatibilities", "cpu", "memory", "tags",
    "ipcMode", "ephemeralStorage", "runtimePlatform",
    "taskDefinitionArn", "revision", "status", "compatibilities", "requiresAttributes",
    "registeredAt", "registeredBy", "deregisteredAt", "deleteRequestedAt",
})
_CONTAINER_KNOWN = frozenset({
    "name", "image", "repositoryCredentials", "cpu", "memory", "memoryReservation",
    "portMappings", "essential", "entryPoint", "command", "environment", "dependsOn",
    "stopTimeout", "user", "workingDirectory", "readonlyRootFilesystem", "linuxParameters",
    "resourceRequirements",
    # Images are resolved at each start: a digest is never pinned, either way.
    "versionConsistency",
    "secrets",  # model/secretref.py
    "healthCheck",  # model/healthcheck.py
    "logConfiguration",  # model/logconfig.py
    "mountPoints", "volumesFrom",  # bind mounts: model/podvolumes.py, agent/volumes.py
    *_CONTAINER_FORBIDDEN,
})
_LINUX_KNOWN = frozenset({"capabilities", *_LINUX_FORBIDDEN})
# name and appProtocol only configure Service Connect, which nothing here offers to use.
_PORT_KNOWN = frozenset({"containerPort", "hostPort", "protocol", "name", "appProtocol"})
_VOLUME_KNOWN = frozenset({"name", "host", "dockerVolumeConfiguration"})
_HOST_ARCH = {"x86_64": "X86_64", "aarch64": "ARM64"}.get(os.uname().machine)


def _fail(msg: str) -> NoReturn:
    raise ClientException(msg)


def present(value: object) -> bool:
    return value not in (None, False, [], {}, "")


def check_fargate(td: dict[str, Any]) -> None:
    """Refuse, naming the parameter, anything FARGATE.md section 2 rules out."""
    if td.get("networkMode") != "awsvpc":
        _fail("Fargate only supports network mode 'awsvpc'.")
    if "cpu" not in td:
        _fail("Fargate requires that 'cpu' be defined at the task level.")
    if "memory" not in td:
        _fail("Fargate requires that 'memory' be defined at the task level.")
    if present(td.get("ipcMode")):
        _fail("The 'ipcMode' parameter is not supported on Fargate.")
    if td.get("pidMode") not in (None, "task"):
        _fail("Fargate only supports pidMode 'task'.")
    if present(td.get("placementConstraints")):
        _fail("The 'placementConstraints' parameter is not supported on Fargate.")
    for vol in td.get("volumes") or []:
        if present(vol.get("dockerVolumeConfiguration")):
            _fail(f"Volume '{vol.get('name')}': 'dockerVolumeConfiguration' is not supported on Fargate.")
        if present((vol.get("host") or {}).get("sourcePath")):
            _fail(f"Volume '{vol.get('name')}': host 'sourcePath' is not supported on Fargate.")
    cpu, mem = int(td["cpu"]), int(td["memory"])
    used_cpu = used_mem = 0
    for c in td["containerDefinitions"]:
        name = c["name"]
        for field in _CONTAINER_FORBIDDEN:
            if present(c.get(field)):
                _fail(f"Container '{name}': the '{field}' parameter is not supported on Fargate.")
        linux = c.get("linuxParameters") or {}
        for field in _LINUX_FORBIDDEN:
            if field in linux and linux[field] is not None and linux[field] != []:
                _fail(f"Container '{name}': linuxParameters '{field}' is not supported on Fargate.")
        extra = set((linux.get("capabilities") or {}).get("add") or []) - _ALLOWED_CAPS
        if extra:
            _fail(f"Container '{name}': capabilities {sorted(extra)} cannot be added on Fargate; "
                  "only SYS_PTRACE can.")
        for req in c.get("resourceRequirements") or []:
            if req.get("type") == "GPU":
                _fail(f"Container '{name}': GPU resourceRequirements are not supported on Fargate.")
        for pm in c.get("portMappings") or []:
            if pm.get("hostPort") not in (None, pm.get("containerPort")):
                _fail(f"Container '{name}': hostPort must be left blank or equal containerPort "
                      "in awsvpc network mode.")
        check_fargate_logging(c, td)
        used_cpu += int(c.get("cpu") or 0)
        used_mem += int(c.get("memory") or c.get("memoryReservation") or 0)
    if used_cpu > cpu:
        _fail(f"Invalid 'cpu' setting for task: containers ask for {used_cpu} CPU units, "
              f"more than the task's {cpu}.")
    if used_mem > mem:
        _fail(f"Invalid 'memory' setting for task: containers ask for {used_mem} MiB, "
              f"more than the task's {mem}.")


def _not_run(field: str, container: str | None = None) -> NoReturn:
    where = f"Container '{container}': the" if container else "The"
    _fail(f"{where} '{field}' parameter is not supported by fargo.")


def unknown_given(obj: dict[str, Any], known: frozenset[str]) -> str | None:
    """The first member of obj that fargo does not know and that is given a value."""
    return next((k for k, v in obj.items() if k not in known and present(v)), None)


def check_mount_sources(td: dict[str, Any]) -> None:
    """AWS's own rule: every mountPoint names a volume the definition declares."""
    declared = {v.get("name") for v in td.get("volumes") or []}
    names = {c.get("name") for c in td.get("containerDefinitions") or []}
    for c in td.get("containerDefinitions") or []:
        paths = set()
        for mp in c.get("mountPoints") or []:
            if mp.get("sourceVolume") not in declared:
                _fail(f"Unknown volume '{str(mp.get('sourceVolume'))[:255]}'.")
            path = mp.get("containerPath")
            if not isinstance(path, str) or not path.startswith("/"):
                _fail(f"Container '{str(c.get('name'))[:255]}': mountPoints containerPath "
                      f"'{str(path)[:255]}' must be an absolute path.")
            if path.rstrip("/") in paths:
                _fail(f"Container '{str(c.get('name'))[:255]}': duplicate mount point "
                      f"'{path[:255]}'.")
            paths.add(path.rstrip("/"))
        for vf in c.get("volumesFrom") or []:
            if vf.get("sourceContainer") not in names or vf["sourceContainer"] == c.get("name"):
                _fail(f"Container '{str(c.get('name'))[:255]}': volumesFrom sourceContainer "
                      f"'{str(vf.get('sourceContainer'))[:255]}' is not another container "
                      "of the task definition.")


def check_implemented(td: dict[str, Any]) -> None:
    """Refuse, naming it, a member fargo would otherwise keep but not act on."""
    field = unknown_given(td, _TASKDEF_KNOWN)
    if field:
        _not_run(field)
    if td.get("pidMode") == "task":  # one pid namespace per container here, not per task
        _not_run("pidMode")
    platform = td.get("runtimePlatform") or {}
    if platform.get("operatingSystemFamily") not in (None, "LINUX"):
        _not_run("runtimePlatform.operatingSystemFamily")
    if platform.get("cpuArchitecture") not in (None, _HOST_ARCH):
        _fail(f"The 'runtimePlatform.cpuArchitecture' {platform['cpuArchitecture']} is not "
              f"supported by fargo on this host ({_HOST_ARCH or 'unknown'}).")
    for vol in td.get("volumes") or []:
        field = unknown_given(vol, _VOLUME_KNOWN)
        if field:
            _fail(f"Volume '{str(vol.get('name'))[:255]}': the '{field}' parameter is not "
                  "supported by fargo.")
    for c in td.get("containerDefinitions") or []:
        _check_container_implemented(c)


def _check_container_implemented(c: dict[str, Any]) -> None:
    name = str(c.get("name"))[:255]
    given = dict(c)
    if not (given.get("restartPolicy") or {}).get("enabled"):
        given.pop("restartPolicy", None)  # a policy turned off asks for nothing
    field = unknown_given(given, _CONTAINER_KNOWN)
    if field:
        _not_run(field, name)
    check_log_configuration(c)
    field = unknown_given(c.get("linuxParameters") or {}, _LINUX_KNOWN)
    if field:
        _not_run(f"linuxParameters.{field}", name)
    for pm in c.get("portMappings") or []:
        field = unknown_given(pm, _PORT_KNOWN)
        if field:
            _not_run(f"portMappings.{field}", name)
    for req in c.get("resourceRequirements") or []:
        if req.get("type") != "GPU":  # GPUs: Fargate's own refusal
            _not_run("resourceRequirements", name)


def _normalize_container(c: dict[str, Any]) -> dict[str, Any]:
    check_name(c.get("name", ""), "container name")
    if not c.get("image"):
        _fail(f"Container '{c['name']}': 'image' is required.")
    if len(c["image"]) > 1024 or "\x00" in c["image"]:
        _fail(f"Container '{c['name']}': invalid image reference.")
    check_environment(c.get("environment"), c["name"])
    check_secrets(c.get("secrets"), c["name"])
    out = copy.deepcopy(c)
    if out.get("healthCheck") is not None:
        out["healthCheck"] = normalize_health_check(out["healthCheck"], c["name"])
    out.setdefault("cpu", 0)
    out.setdefault("essential", True)
    out.setdefault("environment", [])
    out.setdefault("mountPoints", [])
    out.setdefault("volumesFrom", [])
    ports = []
    for pm in out.get("portMappings") or []:
        pm = dict(pm)
        if "containerPort" not in pm:
            _fail(f"Container '{c['name']}': portMappings need a containerPort.")
        if not 0 < int(pm["containerPort"]) < 65536:
            _fail(f"Container '{c['name']}': containerPort {pm['containerPort']} is out of range.")
        pm.setdefault("hostPort", pm["containerPort"])
        pm.setdefault("protocol", "tcp")
        ports.append(pm)
    out["portMappings"] = ports
    if "memoryReservation" in out and "memory" in out and out["memoryReservation"] > out["memory"]:
        _fail(f"Container '{c['name']}': memoryReservation must not exceed memory.")
    timeout = out.get("stopTimeout")
    if timeout is not None and not 0 <= timeout <= MAX_STOP_TIMEOUT:
        _fail(f"Container '{c['name']}': stopTimeout must be between 0 and {MAX_STOP_TIMEOUT} seconds.")
    return out


def check_environment(env: list[dict[str, Any]] | None, container: str) -> None:
    """Each variable needs a name (a KeyValuePair's members are optional in the model)."""
    for item in env or []:
        name = item.get("name")
        if not name or "=" in name or "\x00" in name or "\x00" in str(item.get("value", "")):
            _fail(f"Container '{container[:255]}': every environment variable needs a name "
                  "without '=' or NUL characters.")


def _check_depends(containers: list[dict[str, Any]]) -> None:
    by_name = {c["name"]: c for c in containers}
    for c in containers:
        for dep in c.get("dependsOn") or []:
            target = dep.get("containerName")
            if target not in by_name or target == c["name"]:
                _fail(f"Container '{c['name']}' depends on unknown container "
                      f"'{str(target)[:255]}'.")
            cond = dep.get("condition")
            if cond not in ("START", "COMPLETE", "SUCCESS", "HEALTHY"):
                _fail(f"Container '{c['name']}': invalid dependsOn condition.")
            if cond == "HEALTHY" and not by_name[target].get("healthCheck"):
                # ECS's agent could never resolve it (no check, no health): refused here.
                _fail(f"Container '{c['name']}': dependency condition HEALTHY needs health "
                      f"checks on the container '{target}', which has no healthCheck.")
            if cond in ("COMPLETE", "SUCCESS") and by_name[target].get("essential", True):
                _fail(f"Container '{c['name']}': dependency condition {cond} cannot be set "
                      f"on the essential container '{target}'.")
    # A cycle would never start: refuse it.
    graph = {c["name"]: [d["containerName"] for d in c.get("dependsOn") or []] for c in containers}
    state: dict[str, int] = {}

    def visit(n: str) -> None:
        if state.get(n) == 1:
            _fail(f"Container dependencies form a cycle through '{n}'.")
        if state.get(n) == 2:
            return
        state[n] = 1
        for m in graph[n]:
            visit(m)
        state[n] = 2

    for n in graph:
        visit(n)


def normalize(req: dict[str, Any]) -> dict[str, Any]:
    """Check a RegisterTaskDefinition request and return the definition to store (no ARN yet)."""
    check_name(req.get("family", ""), "family")
    containers = req.get("containerDefinitions") or []
    if not containers:
        _fail("Container list cannot be empty.")
    if len(containers) > 10:
        _fail("A task definition may hold at most 10 containers.")
    names = [c.get("name") for c in containers]
    if len(set(names)) != len(names):
        _fail("Container names must be unique within a task definition.")
    check_mount_sources(req)
    td: dict[str, Any] = {k: copy.deepcopy(v) for k, v in req.items() if k != "tags"}
    td["containerDefinitions"] = [_normalize_container(c) for c in containers]
    if any(c.get("secrets") for c in containers) and not td.get("executionRoleArn"):
        _fail("When you are specifying container secrets, you must also specify a value "
              "for 'executionRoleArn'.")
    if not any(c["essential"] for c in td["containerDefinitions"]):
        _fail("A task definition must have at least one essential container.")
    _check_depends(td["containerDefinitions"])
    td.setdefault("networkMode", "bridge")
    if "cpu" in td:
        td["cpu"] = str(parse_cpu(td["cpu"]))
    if "memory" in td:
        td["memory"] = str(parse_memory(td["memory"]))
    storage = td.get("ephemeralStorage")
    if storage is not None and not 21 <= int(storage.get("sizeInGiB", 0)) <= 200:
        _fail("Invalid 'ephemeralStorage.sizeInGiB': it must be between 21 and 200 GiB.")
    td.setdefault("volumes", [])
    td.setdefault("placementConstraints", [])
    requires = td.get("requiresCompatibilities") or []
    for item in requires:
        if item not in ("EC2", "FARGATE", "EXTERNAL"):
            _fail(f"Invalid requiresCompatibilities value {str(item)[:32]!r}.")
    compat = ["EC2"]
    fargate_error = None
    try:
        check_fargate(td)
        check_task_size(int(td["cpu"]), int(td["memory"]))
        compat.append("FARGATE")
    except ClientException as err:
        fargate_error = err
    if "FARGATE" in requires and fargate_error:
        raise fargate_error
    check_implemented(td)
    td["compatibilities"] = compat
    td["requiresAttributes"] = []
    return td
