"""ECS tag rules, checked before anything is written."""

from __future__ import annotations

from .errors import InvalidParameterException

MAX_TAGS = 50


def check_tags(tags: list[dict[str, str]], existing: list[dict[str, str]] | None = None) -> None:
    """Keys 1-128 characters, values up to 256, no `aws:` prefix, 50 per resource in all."""
    for t in tags:
        key = t.get("key")
        if not key or len(key) > 128 or len(t.get("value", "")) > 256:
            raise InvalidParameterException("Tag keys must be 1-128 characters and values "
                                            "at most 256.")
        if key.lower().startswith("aws:"):
            raise InvalidParameterException("Tag keys may not start with 'aws:'.")
    keys = {t["key"] for t in existing or []} | {t["key"] for t in tags}
    if len(keys) > MAX_TAGS:
        raise InvalidParameterException(f"A resource may have at most {MAX_TAGS} tags.")


def merged(existing: list[dict[str, str]], tags: list[dict[str, str]]) -> list[dict[str, str]]:
    current = {t["key"]: t.get("value", "") for t in existing}
    current.update({t["key"]: t.get("value", "") for t in tags})
    return [{"key": k, "value": v} for k, v in current.items()]
