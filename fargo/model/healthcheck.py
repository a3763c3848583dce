"""Container health checks (a container definition's `healthCheck`): their rules and
defaults, and how a task's health follows from its containers'."""

from __future__ import annotations

from typing import Any

from .errors import ClientException


def normalize_health_check(hc: Any, container: str) -> dict[str, Any]:
    """The healthCheck as stored, with ECS's defaults; ClientException naming the field."""
    if not isinstance(hc, dict) or not hc.get("command"):
        raise ClientException(f"Container '{container[:255]}': healthCheck.command is required.")
    return dict(hc)
