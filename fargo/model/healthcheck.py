"""Container health checks (a container definition's `healthCheck`): their rules and
defaults, how one check's outcome moves a container's health, and how a task's health follows
from its containers'.

ECS's HealthCheck shape (botocore) documents `command` as starting with CMD or CMD-SHELL; a
Docker-style ["NONE"] (which only turns off a check inherited from the image, and ECS never
runs the image's checks) is refused: it would be accepted and then mean nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ClientException
from .taskrecord import Task

HEALTHY, UNHEALTHY, UNKNOWN = "HEALTHY", "UNHEALTHY", "UNKNOWN"
SHELL = ("/bin/sh", "-c")  # Docker's default shell for CMD-SHELL, as ECS uses it

# member -> (lowest, highest, default); startPeriod has no default: off unless given.
_BOUNDS: dict[str, tuple[int, int, int | None]] = {
    "interval": (5, 300, 30),
    "timeout": (2, 60, 5),
    "retries": (1, 10, 3),
    "startPeriod": (0, 300, None),
}
_KNOWN = frozenset({"command", *_BOUNDS})
MAX_COMMAND_ITEMS = 256
MAX_COMMAND_CHARS = 8192


@dataclass(frozen=True)
class HealthCheck:
    """A stored healthCheck, ready to run: argv is what runs inside the container."""

    argv: tuple[str, ...]
    interval: int
    timeout: int
    retries: int
    start_period: int  # 0: off


def _fail(container: str, msg: str) -> ClientException:
    return ClientException(f"Container '{container[:255]}': {msg}")


def normalize_health_check(hc: Any, container: str) -> dict[str, Any]:
    """The healthCheck as stored, with ECS's defaults; ClientException naming the field."""
    if not isinstance(hc, dict):
        raise _fail(container, "healthCheck must be an object.")
    for key, value in hc.items():
        if key not in _KNOWN and value is not None:
            raise _fail(container, f"healthCheck.{str(key)[:64]} is not a HealthCheck member.")
    out: dict[str, Any] = {"command": _command(hc.get("command"), container)}
    for key, (low, high, default) in _BOUNDS.items():
        value = hc.get(key)
        if value is None:
            if default is not None:
                out[key] = default
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise _fail(container, f"healthCheck.{key} must be an integer between {low} and "
                                   f"{high}.")
        out[key] = value
    return out


def _command(command: Any, container: str) -> list[str]:
    if command is None or command == []:
        raise _fail(container, "healthCheck.command is required.")
    if not isinstance(command, list) or not all(isinstance(a, str) for a in command):
        raise _fail(container, "healthCheck.command must be a list of strings.")
    if command[0] not in ("CMD", "CMD-SHELL"):
        raise _fail(container, "healthCheck.command must start with CMD or CMD-SHELL.")
    if len(command) < 2 or not command[1]:
        raise _fail(container, f"healthCheck.command needs a command after {command[0]}.")
    if len(command) > MAX_COMMAND_ITEMS or sum(map(len, command)) > MAX_COMMAND_CHARS:
        raise _fail(container, "healthCheck.command is too long.")
    if any("\x00" in a for a in command):
        raise _fail(container, "healthCheck.command must not contain NUL characters.")
    return list(command)


def health_check_of(cdef: dict[str, Any]) -> HealthCheck | None:
    """The check of a container definition as stored (normalized); None: it has none."""
    hc = cdef.get("healthCheck")
    if not hc:
        return None
    kind, *rest = hc["command"]
    # CMD-SHELL: everything after it goes to the shell, as Docker passes it (extra items
    # become $0, $1, ...).
    argv = (*SHELL, *rest) if kind == "CMD-SHELL" else tuple(rest)
    return HealthCheck(argv=argv, interval=int(hc.get("interval", 30)),
                       timeout=int(hc.get("timeout", 5)), retries=int(hc.get("retries", 3)),
                       start_period=int(hc.get("startPeriod") or 0))


def judge(status: str, failures: int, passed: bool, in_start_period: bool,
          retries: int) -> tuple[str, int]:
    """A container's health and failure streak after one check (ECS runs Docker's rule): a
    pass makes it HEALTHY; failures count only once its start period is over or it has
    passed once, and `retries` of them in a row make it UNHEALTHY. Until then it stays
    where it was (UNKNOWN before any verdict)."""
    if passed:
        return HEALTHY, 0
    if status == UNKNOWN and in_start_period:
        return status, failures
    failures += 1
    return (UNHEALTHY if failures >= retries else status), failures


def task_health(task: Task) -> str:
    """The task's healthStatus: UNHEALTHY if any essential container is; HEALTHY if every
    essential container that has a check is; UNKNOWN otherwise (also when none has one)."""
    defs = {c.get("name"): c for c in task.plan}
    statuses = []
    for c in task.containers:
        cdef = defs.get(c.name) or {}
        if not cdef.get("essential", True):
            continue
        if c.health_status == UNHEALTHY:
            return UNHEALTHY
        if cdef.get("healthCheck"):
            statuses.append(c.health_status)
    return HEALTHY if statuses and all(s == HEALTHY for s in statuses) else UNKNOWN
