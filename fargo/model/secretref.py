"""A container definition's `secrets`: where each value comes from (a Secrets Manager secret,
with its json-key, version-stage and version-id suffixes, or an SSM parameter)."""

from __future__ import annotations

from typing import Any

from .errors import ClientException


def check_secrets(secrets: Any, container: str) -> None:
    """ClientException naming the field for a secrets list ECS would refuse."""
    for item in secrets or []:
        if not isinstance(item, dict) or not item.get("name") or not item.get("valueFrom"):
            raise ClientException(f"Container '{container[:255]}': every secret needs a name "
                                  "and a valueFrom.")
