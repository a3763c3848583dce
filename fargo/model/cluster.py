"""ECS cluster arguments fargo honours, and the ones it refuses by name: settings
(containerInsights), configuration, Service Connect defaults, DescribeClusters' include."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InvalidParameterException

CONTAINER_INSIGHTS = "containerInsights"
INSIGHTS_VALUES = ("enabled", "disabled", "enhanced")
# botocore's ClusterField enum; each is honoured by api/ecs.py's DescribeClusters.
INCLUDE = ("ATTACHMENTS", "CONFIGURATIONS", "SETTINGS", "STATISTICS", "TAGS")
IDEMPOTENT_MISMATCH = ("Arguments on this idempotent request are inconsistent with arguments "
                       "used in previous request(s).")


def parse_settings(items: list[Any] | None, field: str = "settings") -> dict[str, str]:
    """A cluster's settings list -> {name: value}; containerInsights is the only name."""
    out: dict[str, str] = {}
    for i, item in enumerate(items or []):
        if not isinstance(item, dict):
            raise InvalidParameterException(f"{field}[{i}] must be an object.")
        name, value = item.get("name"), item.get("value")
        if name != CONTAINER_INSIGHTS:
            shown = str(name)[:64] if name is not None else "(missing)"
            raise InvalidParameterException(
                f"{field}[{i}].name {shown!r} is not a cluster setting: the one cluster "
                f"setting is {CONTAINER_INSIGHTS}.")
        if value not in INSIGHTS_VALUES:
            shown = str(value)[:64] if value is not None else "(missing)"
            raise InvalidParameterException(
                f"{field}[{i}].value {shown!r} is not valid for {CONTAINER_INSIGHTS}: use "
                "enabled, disabled or enhanced.")
        if name in out:
            raise InvalidParameterException(f"{field} sets {name} more than once.")
        out[name] = str(value)
    return out


def settings_to_wire(settings: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in settings.items()]


def _given(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_given(v) for v in value.values())
    if isinstance(value, list):
        return bool(value)
    return value is not None


def check_configuration(conf: Any, field: str = "configuration") -> None:
    """ECS Exec's logging and KMS keys for ephemeral storage are not in fargo: a
    configuration that asks for either is refused by name; an empty one is nothing."""
    if not isinstance(conf, dict):
        if conf is not None:
            raise InvalidParameterException(f"{field} must be an object.")
        return
    for member in ("executeCommandConfiguration", "managedStorageConfiguration"):
        if _given(conf.get(member)):
            what = ("fargo does not run ECS Exec" if member == "executeCommandConfiguration"
                    else "fargo has no KMS keys to encrypt storage with")
            raise InvalidParameterException(
                f"The '{field}.{member}' parameter is not supported by fargo: {what}.")
    unknown = sorted(k for k, v in conf.items() if _given(v) and k not in (
        "executeCommandConfiguration", "managedStorageConfiguration"))
    if unknown:
        raise InvalidParameterException(
            f"The '{field}.{unknown[0][:64]}' parameter is not supported by fargo.")


def check_service_connect(value: Any) -> None:
    if _given(value):
        raise InvalidParameterException(
            "The 'serviceConnectDefaults' parameter is not supported by fargo: it has no "
            "Cloud Map namespaces.")


def parse_include(items: list[Any] | None) -> frozenset[str]:
    out = set()
    for item in items or []:
        if item not in INCLUDE:
            shown = str(item)[:64]
            raise InvalidParameterException(
                f"include value {shown!r} is not valid: use ATTACHMENTS, CONFIGURATIONS, "
                "SETTINGS, STATISTICS or TAGS.")
        out.add(str(item))
    return frozenset(out)


def statistics(*, running_fargate: int, pending_fargate: int, active_services: int,
               draining_services: int) -> list[dict[str, str]]:
    """DescribeClusters' STATISTICS, by launch type as ECS lists them: every task and
    service here is Fargate's, so the EC2 counts are 0."""
    counts = [("runningEC2TasksCount", 0), ("runningFargateTasksCount", running_fargate),
              ("pendingEC2TasksCount", 0), ("pendingFargateTasksCount", pending_fargate),
              ("activeEC2ServiceCount", 0), ("activeFargateServiceCount", active_services),
              ("drainingEC2ServiceCount", 0),
              ("drainingFargateServiceCount", draining_services)]
    return [{"name": n, "value": str(v)} for n, v in counts]
