"""The v1 ConfigMap as kube-apiserver checks it: string data, base64 binaryData, keys of
config-key characters, 1 MiB at most, and `immutable` freezing both."""

from __future__ import annotations

import base64
import binascii
import copy
import re
from typing import Any

from .kubeerrors import KubeError, invalid
from .kubeobj import check_kind, check_meta

MAX_BYTES = 1 << 20
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
IMMUTABLE = "Forbidden: field is immutable when `immutable` is set"


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
            if len(key) > 253 or not _KEY.match(key):
                errors.append((f"{field}[{key}]", f'Invalid value: "{key[:253]}": a valid '
                               "config key must consist of alphanumeric characters, '-', '_' "
                               "or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex "
                               "used for validation is '[-._a-zA-Z0-9]+')"))
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


def _shape(body: dict[str, Any], name: str) -> dict[str, Any]:
    meta = body["metadata"]
    out: dict[str, Any] = {"metadata": {k: copy.deepcopy(meta[k]) for k in
                                        ("name", "labels", "annotations") if meta.get(k)}}
    out["metadata"]["name"] = name
    for key in ("data", "binaryData"):
        if body.get(key):
            out[key] = dict(body[key])
    if body.get("immutable") is not None:
        out["immutable"] = body["immutable"]
    return out


def new_configmap(body: Any) -> dict[str, Any]:
    """The ConfigMap a create asks for, checked."""
    check_kind(body, "ConfigMap")
    name = check_meta(body, "ConfigMap")
    errors = _errors(body)
    if errors:
        raise invalid("ConfigMap", name, errors)
    return _shape(body, name)


def replaced_configmap(old: dict[str, Any], new: dict[str, Any], name: str) -> dict[str, Any]:
    """`old` as an update (PUT, or PATCH applied) makes it; immutable ones keep their data."""
    check_kind(new, "ConfigMap")
    if (new.get("metadata") or {}).get("name", name) != name:
        raise KubeError(422, "Invalid", f'ConfigMap "{name}" is invalid: metadata.name: '
                        "Invalid value: field is immutable")
    new.setdefault("metadata", {})["name"] = name
    check_meta(new, "ConfigMap")
    errors = _errors(new)
    if old.get("immutable"):
        for key in ("data", "binaryData"):
            if (new.get(key) or {}) != (old.get(key) or {}):
                errors.append((key, IMMUTABLE))
        if not new.get("immutable"):
            errors.append(("immutable", IMMUTABLE))
    if errors:
        raise invalid("ConfigMap", name, errors)
    merged = _shape(new, name)
    for key in ("uid", "creationTimestamp", "namespace", "resourceVersion"):
        if key in old["metadata"]:
            merged["metadata"][key] = old["metadata"][key]
    merged["kind"], merged["apiVersion"] = old.get("kind", "ConfigMap"), "v1"
    return merged
