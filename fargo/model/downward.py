"""The downward API in containers' environment (pure): `env[].valueFrom.fieldRef` (the
pod's own fields) and `resourceFieldRef` (a container's requests and limits), checked as the
apiserver checks them and resolved as kubelet resolves them, once the pod's address and node
are known (the scheduler knows them when its task is placed)."""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from . import quantity

FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
               "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
               "status.podIPs")
RESOURCES = ("limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu",
             "requests.ephemeral-storage", "requests.memory")
SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
_CPU_DIVISORS = ("1m", "1")
_BYTE_DIVISORS = ("1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi",
                  "1Ei")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def _key_error(key: str) -> str | None:
    """A label or annotation key: an optional DNS-subdomain prefix and a qualified name."""
    prefix, _, name = key.rpartition("/")
    if not name or len(name) > 63 or not _QUALIFIED.match(name):
        return (f"Invalid value: {key[:80]!r}: name part must consist of alphanumeric "
                "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                "character")
    if "/" in key and (not prefix or len(prefix) > 253 or not _PREFIX.match(prefix)):
        return f"Invalid value: {key[:80]!r}: prefix part must be a lowercase RFC 1123 subdomain"
    return None


def _field_errors(ref: Any, at: str) -> list[tuple[str, str]]:
    if not isinstance(ref, dict):
        return [(at, "Invalid value: must be an object")]
    version = ref.get("apiVersion", "v1")
    if version != "v1":
        return [(f"{at}.apiVersion", f"Unsupported value: {str(version)[:40]!r}: supported "
                 'values: "v1"')]
    path = ref.get("fieldPath")
    if not isinstance(path, str) or not path:
        return [(f"{at}.fieldPath", "Required value")]
    sub = _SUBSCRIPT.match(path)
    if sub:
        err = _key_error(sub.group(2))
        return [(f"{at}.fieldPath", err)] if err else []
    if path not in FIELD_PATHS:
        return [(f"{at}.fieldPath", f"Unsupported value: {path[:80]!r}: supported values: "
                 + _quoted(FIELD_PATHS))]
    return []


def _resource_errors(ref: Any, at: str, names: set[str]) -> list[tuple[str, str]]:
    if not isinstance(ref, dict):
        return [(at, "Invalid value: must be an object")]
    resource = ref.get("resource")
    if not isinstance(resource, str) or not resource:
        return [(f"{at}.resource", "Required value")]
    if resource not in RESOURCES:
        return [(f"{at}.resource", f"Unsupported value: {resource[:80]!r}: supported values: "
                 + _quoted(RESOURCES))]
    out = []
    container = ref.get("containerName")
    if container not in (None, "") and container not in names:
        out.append((f"{at}.containerName", f"Invalid value: {str(container)[:80]!r}: must be "
                    "the name of one of the pod's containers"))
    divisor = ref.get("divisor")
    if divisor not in (None, "", "0", 0):
        allowed = _CPU_DIVISORS if resource.endswith(".cpu") else _BYTE_DIVISORS
        try:
            ok = any(quantity.parse(divisor) == quantity.parse(a) for a in allowed)
        except ValueError:
            ok = False
        if not ok:
            what = "cpu" if resource.endswith(".cpu") else resource.split(".", 1)[1]
            out.append((f"{at}.divisor", f"Invalid value: {str(divisor)[:40]!r}: only "
                        f"divisor's values {', '.join(allowed)} are supported with the {what} "
                        "resource"))
    return out


def env_errors(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """Each `valueFrom` of a pod's containers: exactly one source, no `value` beside it, and
    for the downward API's two sources what they name."""
    out: list[tuple[str, str]] = []
    groups = [(g, spec.get(g) or []) for g in ("initContainers", "containers")]
    names = {str(c.get("name")) for _, cs in groups for c in cs if isinstance(c, dict)}
    for group, containers in groups:
        for i, c in enumerate(containers):
            if not isinstance(c, dict) or not isinstance(c.get("env"), list):
                continue
            for j, e in enumerate(c["env"]):
                if not isinstance(e, dict) or e.get("valueFrom") is None:
                    continue
                at = f"spec.{group}[{i}].env[{j}].valueFrom"
                source = e["valueFrom"]
                if not isinstance(source, dict):
                    out.append((at, "Invalid value: must be an object"))
                    continue
                given = [s for s in SOURCES if source.get(s) is not None]
                if e.get("value"):
                    out.append((at, "Invalid value: \"\": may not be specified when `value` "
                                "is not empty"))
                elif not given:
                    out.append((at, "Invalid value: \"\": must specify one of: `fieldRef`, "
                                "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
                elif len(given) > 1:
                    out.append((at, "Invalid value: \"\": may not have more than one field "
                                "specified at a time"))
                elif given[0] == "fieldRef":
                    out += _field_errors(source["fieldRef"], f"{at}.fieldRef")
                elif given[0] == "resourceFieldRef":
                    out += _resource_errors(source["resourceFieldRef"],
                                            f"{at}.resourceFieldRef", names)
    return out


def default_env(spec: dict[str, Any]) -> None:
    """The apiserver's defaults: fieldRef's apiVersion v1, resourceFieldRef's divisor 0."""
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for e in c.get("env") or []:
            source = e.get("valueFrom") if isinstance(e, dict) else None
            if not isinstance(source, dict):
                continue
            if isinstance(source.get("fieldRef"), dict):
                source["fieldRef"].setdefault("apiVersion", "v1")
            if isinstance(source.get("resourceFieldRef"), dict):
                source["resourceFieldRef"].setdefault("divisor", "0")


@dataclass(frozen=True)
class Placed:
    """What the pod's placement decided: its address, its node and the node's size (what a
    container without a limit may use)."""

    ip: str
    node: str
    cpu_units: int  # 1024 per vCPU
    memory_mib: int
    storage_gib: int = 20


def field_value(pod: dict[str, Any], path: str, placed: Placed) -> str:
    meta = pod.get("metadata") or {}
    sub = _SUBSCRIPT.match(path)
    if sub:
        return str((meta.get(sub.group(1)) or {}).get(sub.group(2), ""))
    if path.startswith("metadata."):
        return str(meta.get(path.split(".", 1)[1]) or "")
    if path == "spec.nodeName":
        return placed.node
    if path == "spec.serviceAccountName":
        return str((pod.get("spec") or {}).get("serviceAccountName") or "default")
    return placed.ip  # status.podIP(s), status.hostIP(s): one address, the task's own


def resource_value(spec: dict[str, Any], container: dict[str, Any], ref: dict[str, Any],
                   placed: Placed) -> str:
    """A request or limit in divisor units, rounded up (kubelet's rule); a limit not set is
    the node's allocatable, a request not set is its limit (the apiserver's default) or 0."""
    target = ref.get("containerName") or container["name"]
    c = next((x for x in (spec.get("initContainers") or []) + spec["containers"]
              if x.get("name") == target), container)
    part, name = ref["resource"].split(".", 1)
    res = c.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    node = {"cpu": Decimal(placed.cpu_units) / 1024,
            "memory": Decimal(placed.memory_mib * 2**20),
            "ephemeral-storage": Decimal(placed.storage_gib * 2**30)}
    if part == "limits":
        value = quantity.parse(limits[name]) if name in limits else node[name]
    elif name in requests:
        value = quantity.parse(requests[name])
    else:
        value = quantity.parse(limits[name]) if name in limits else Decimal(0)
    raw = ref.get("divisor")
    divisor = quantity.parse(raw) if raw not in (None, "", "0", 0) else Decimal(1)
    if name == "cpu":  # in millicores first, as kubelet counts
        value, divisor = Decimal(math.ceil(value * 1000)), Decimal(math.ceil(divisor * 1000))
    return str(math.ceil(value / divisor))


def resolved_spec(pod: dict[str, Any], placed: Placed) -> dict[str, Any]:
    """A copy of the pod's spec whose downward-API variables hold their values (as plain
    `value`s, in their places); other sources are left for whoever resolves them."""
    spec = copy.deepcopy(pod["spec"])
    for c in (spec.get("initContainers") or []) + spec["containers"]:
        env = c.get("env")
        if not env:
            continue
        for i, e in enumerate(env):
            source = e.get("valueFrom") or {}
            if isinstance(source.get("fieldRef"), dict):
                value = field_value(pod, source["fieldRef"]["fieldPath"], placed)
            elif isinstance(source.get("resourceFieldRef"), dict):
                value = resource_value(spec, c, source["resourceFieldRef"], placed)
            else:
                continue
            env[i] = {"name": e["name"], "value": value}
    return spec
