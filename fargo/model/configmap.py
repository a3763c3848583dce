"""The v1 ConfigMap as kube-apiserver checks it: string data, base64 binaryData, keys of
config-key characters, 1 MiB at most, and `immutable` freezing both."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from .kubeerrors import invalid
from .kubekinds import KindRule, register

MAX_BYTES = 1 << 20
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
IMMUTABLE = "Forbidden: field is immutable when `immutable` is set"


def key_error(key: str) -> str | None:
    """A config key (ConfigMap's and Secret's): what the apiserver says of a bad one."""
    if key in (".", ".."):
        return f"Invalid value: \"{key}\": must not be '{key}'"
    if key.startswith(".."):
        return f"Invalid value: \"{key[:253]}\": must not start with '..'"
    if len(key) > 253 or not _KEY.match(key):
        return (f'Invalid value: "{key[:253]}": a valid config key must consist of '
                "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  "
                "or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")
    return None


def _errors(obj: dict[str, Any]) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    total = 0
    keys: set[str] = set()
    for field in ("data", "binaryData"):
        values = obj.get(field)
        if values is None:
            continue
        if not isinstance(values, dict):
            errors.append((field, "Invalid value: must be a map of strings"))
            continue
        for key, value in values.items():
            if not isinstance(value, str):
                errors.append((f"{field}[{key}]", "Invalid value: must be a string"))
                continue
            err = key_error(key)
            if err:
                errors.append((f"{field}[{key}]", err))
            if key in keys:
                errors.append((f"{field}[{key}]", f'Invalid value: "{key}": duplicate of key '
                               f'present in {"data" if field == "binaryData" else "binaryData"}'))
            keys.add(key)
            if field == "binaryData":
                try:
                    total += len(base64.b64decode(value, validate=True))
                except (binascii.Error, ValueError):
                    errors.append((f"binaryData[{key}]", "Invalid value: illegal base64 data"))
            else:
                total += len(value.encode())
    if total > MAX_BYTES:
        errors.append(("[]", f"Too long: must have at most {MAX_BYTES} bytes"))
    if "immutable" in obj and not isinstance(obj["immutable"], bool | None):
        errors.append(("immutable", "Invalid value: must be a boolean"))
    return errors


def check_configmap(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """A ConfigMap's own rules on create and update; an immutable one keeps its data."""
    errors = _errors(obj)
    if old is not None and old.get("immutable"):
        for key in ("data", "binaryData"):
            if (obj.get(key) or {}) != (old.get(key) or {}):
                errors.append((key, IMMUTABLE))
        if not obj.get("immutable"):
            errors.append(("immutable", IMMUTABLE))
    if errors:
        raise invalid("ConfigMap", obj["metadata"]["name"], errors)


register(KindRule("configmaps", "ConfigMap", check=check_configmap))
