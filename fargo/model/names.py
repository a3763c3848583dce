"""Name rules and ARNs shared by every face."""

from __future__ import annotations

import re

from .errors import ClientException, InvalidParameterException

ACCOUNT = "000000000000"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def check_name(value: str, what: str) -> str:
    """Family, cluster and container names: up to 255 letters, digits, hyphens, underscores."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        shown = repr(value[:64]) if isinstance(value, str) else type(value).__name__
        raise ClientException(
            f"Invalid {what} {shown}: up to 255 letters (uppercase and lowercase), numbers, "
            "hyphens, and underscores are allowed."
        )
    return value


def arn(region: str, kind: str, path: str) -> str:
    return f"arn:aws:ecs:{region}:{ACCOUNT}:{kind}/{path}"


def cluster_name_from(ref: str | None) -> str:
    """A cluster given by name or ARN; None means the default cluster."""
    if not ref:
        return "default"
    if ref.startswith("arn:"):
        tail = ref.split(":", 5)[-1]
        if not tail.startswith("cluster/"):
            raise InvalidParameterException(f"Invalid cluster ARN: {ref[:200]}")
        ref = tail[len("cluster/"):]
    if not _NAME.fullmatch(ref):
        raise InvalidParameterException(f"Invalid cluster identifier: {ref[:200]!r}")
    return ref


def task_id_from(ref: str) -> str:
    """A task given by id or ARN (arn:...:task/CLUSTER/ID, or the old arn:...:task/ID)."""
    if ref.startswith("arn:"):
        ref = ref.rsplit("/", 1)[-1]
    if not re.fullmatch(r"[0-9a-f]{32}", ref):
        raise InvalidParameterException(f"Invalid task identifier: {ref[:200]!r}")
    return ref


def family_revision(ref: str) -> tuple[str, int | None]:
    """'web', 'web:3' or a task definition ARN -> (family, revision or None for latest)."""
    if ref.startswith("arn:"):
        tail = ref.split(":", 5)[-1]
        if not tail.startswith("task-definition/"):
            raise ClientException(f"Invalid task definition ARN: {ref[:200]}")
        ref = tail[len("task-definition/"):]
    family, _, rev = ref.partition(":")
    check_name(family, "family")
    if not rev:
        return family, None
    if not re.fullmatch(r"[0-9]{1,9}", rev) or int(rev) < 1:
        raise ClientException(f"Invalid revision number. Number: {rev[:32]}")
    return family, int(rev)
