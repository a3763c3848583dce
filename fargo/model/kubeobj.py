"""Kubernetes objects as plain JSON: name rules, pod validation and defaults, and JSON merge
patch. No I/O."""

from __future__ import annotations

import copy
import re
from typing import Any

from . import clusterdns, quantity
from .kubeerrors import KubeError, bad_request, invalid

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                 "or '-', and must start and end with an alphanumeric character")
DNS_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                     "characters, '-' or '.', and must start and end with an alphanumeric "
                     "character")

# A year: longer grace periods only overflow clocks (the API allows any int64).
MAX_GRACE = 365 * 24 * 3600


def name_error(name: Any, label: bool = False) -> str | None:
    if not isinstance(name, str) or not name:
        return "Required value: name or generateName is required"
    if label:
        if len(name) > 63 or not _LABEL.match(name):
            return f"Invalid value: {name[:80]!r}: {DNS_LABEL_MSG}"
    elif len(name) > 253 or not _SUBDOMAIN.match(name):
        return f"Invalid value: {name[:80]!r}: {DNS_SUBDOMAIN_MSG}"
    return None


def _label_errors(labels: Any, field: str) -> list[tuple[str, str]]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [(field, "Invalid value: must be a map of strings")]
    out = []
    for k, v in labels.items():
        key = k.rsplit("/", 1)[-1] if isinstance(k, str) else ""
        prefix = k.rsplit("/", 1)[0] if isinstance(k, str) and "/" in k else None
        if not key or len(key) > 63 or not _QUALIFIED.match(key) or (
                prefix is not None and not _SUBDOMAIN.match(prefix)):
            out.append((field, f"Invalid value: {str(k)[:80]!r}: name part must consist of "
                        "alphanumeric characters, '-', '_' or '.'"))
        if not isinstance(v, str) or len(v) > 63 or not _LABEL_VALUE.match(v):
            out.append((f"{field}", f"Invalid value: {str(v)[:80]!r}: a valid label must be an "
                        "empty string or consist of alphanumeric characters, '-', '_' or '.'"))
    return out


def check_meta(obj: dict[str, Any], kind: str, label_name: bool = False) -> str:
    """Body-level checks every kind shares; returns the object's name."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise invalid(kind, "", [("metadata.name", "Required value: name or generateName "
                                  "is required")])
    name = meta.get("name")
    err = name_error(name, label_name)
    errors = [("metadata.name", err)] if err else []
    gen = meta.get("generateName")
    if isinstance(gen, str) and gen:  # a prefix: its trailing dash is fine
        err = name_error(gen[:-1] + "a" if gen.endswith("-") else gen, label_name)
        if err:
            errors.append(("metadata.generateName", err))
    errors += _label_errors(meta.get("labels"), "metadata.labels")
    ann = meta.get("annotations")
    if ann is not None and (not isinstance(ann, dict)
                            or not all(isinstance(v, str) for v in ann.values())):
        errors.append(("metadata.annotations", "Invalid value: must be a map of strings"))
    if errors:
        raise invalid(kind, str(name or "")[:253], errors)
    return str(name)  # name_error passed it: a string


def check_kind(obj: Any, kind: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise bad_request("the body of the request was in an unknown format")
    if obj.get("kind", kind) != kind:
        raise bad_request(f"the API version in the data (/{obj.get('apiVersion')}) and kind "
                          f"{str(obj.get('kind'))[:60]!r} do not match the path: expected {kind}")
    if obj.get("apiVersion", "v1") != "v1":
        raise bad_request(f"the API version in the data ({str(obj.get('apiVersion'))[:60]}) "
                          "does not match the expected API version (v1)")
    return obj


NAME_LABEL = "kubernetes.io/metadata.name"


def namespace(name: str, labels: dict[str, str] | None = None,
              annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A Namespace as it is made: its name is also a label, as the apiserver sets it."""
    meta: dict[str, Any] = {"name": name, "labels": {**(labels or {}), NAME_LABEL: name}}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}}


def new_namespace(body: Any) -> dict[str, Any]:
    """The Namespace a create request asks for, checked: only name, labels and annotations
    are taken from it."""
    check_kind(body, "Namespace")
    name = check_meta(body, "Namespace", label_name=True)
    meta = body["metadata"]
    made = namespace(name, meta.get("labels"), meta.get("annotations"))
    if meta.get("managedFields"):  # model/ssa.py's, worked out before the write
        made["metadata"]["managedFields"] = meta["managedFields"]
    return made


def replaced_namespace(old: dict[str, Any], new: dict[str, Any], name: str) -> dict[str, Any]:
    """`old` with the labels and annotations of `new` (an update changes nothing else; the
    name may not change)."""
    check_kind(new, "Namespace")
    if not isinstance(new.get("metadata"), dict):  # left out, or null
        new["metadata"] = {}
    if new["metadata"].get("name", name) != name:
        raise KubeError(422, "Invalid", f'Namespace "{name}" is invalid: metadata.name: '
                        "Invalid value: field is immutable")
    new.setdefault("metadata", {})["name"] = name
    check_meta(new, "Namespace", label_name=True)
    merged = dict(old)
    merged["metadata"] = dict(old["metadata"])
    for key in ("labels", "annotations"):
        if new["metadata"].get(key):
            merged["metadata"][key] = new["metadata"][key]
        else:
            merged["metadata"].pop(key, None)
    if new["metadata"].get("managedFields"):  # model/ssa.py's; a writer without keeps them
        merged["metadata"]["managedFields"] = new["metadata"]["managedFields"]
    elif "managedFields" in new["metadata"]:
        merged["metadata"].pop("managedFields", None)
    merged["metadata"].setdefault("labels", {})[NAME_LABEL] = name
    return merged


_PROTOCOLS = ("SCTP", "TCP", "UDP")
_MAX_ID = 2**31 - 1  # user and group ids, as the apiserver bounds them


def _port_errors(ports: Any, field: str) -> list[tuple[str, str]]:
    """A container's ports: numbers in 1..65535, a protocol of the three."""
    if ports is None:
        return []
    if not isinstance(ports, list):
        return [(field, "Invalid value: must be a list")]
    out = []
    for i, p in enumerate(ports):
        at = f"{field}[{i}]"
        if not isinstance(p, dict):
            out.append((at, "Invalid value: must be an object"))
            continue
        for key in ("containerPort", "hostPort"):
            v = p.get(key)
            if v is None or (key == "hostPort" and v == 0):
                if key == "containerPort":
                    out.append((f"{at}.{key}", "Required value"))
            elif not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 65535:
                out.append((f"{at}.{key}", f"Invalid value: {str(v)[:40]}: must be between "
                            "1 and 65535, inclusive"))
        if p.get("protocol") not in (None, *_PROTOCOLS):
            out.append((f"{at}.protocol", f"Unsupported value: {str(p['protocol'])[:40]!r}: "
                        'supported values: "SCTP", "TCP", "UDP"'))
    return out


def _security_errors(sc: Any, field: str) -> list[tuple[str, str]]:
    """User and group ids in 0..2^31-1; capability names strings."""
    if not isinstance(sc, dict):
        return []
    out = []
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        v = sc.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)
                              or not 0 <= v <= _MAX_ID):
            out.append((f"{field}.{key}", f"Invalid value: {str(v)[:40]}: must be between 0 "
                        f"and {_MAX_ID}, inclusive"))
    caps = sc.get("capabilities")
    for key in ("add", "drop"):
        names = caps.get(key) if isinstance(caps, dict) else None
        if names is not None and (not isinstance(names, list) or not all(
                isinstance(n, str) and n for n in names)):
            out.append((f"{field}.capabilities.{key}", "Invalid value: must be a list of "
                        "capability names"))
    return out


def _container_errors(containers: Any, field: str, seen: set[str],
                      required: bool) -> list[tuple[str, str]]:
    if containers is None or containers == []:
        return [(field, "Required value")] if required else []
    if not isinstance(containers, list):
        return [(field, "Invalid value: must be a list")]
    out = []
    for i, c in enumerate(containers):
        at = f"{field}[{i}]"
        if not isinstance(c, dict):
            out.append((at, "Invalid value: must be an object"))
            continue
        err = name_error(c.get("name"), label=True)
        if err:
            out.append((f"{at}.name", err))
        elif c["name"] in seen:
            out.append((f"{at}.name", f"Duplicate value: {c['name']!r}"))
        else:
            seen.add(c["name"])
        if not isinstance(c.get("image"), str) or not c["image"].strip():
            out.append((f"{at}.image", "Required value"))
        for key in ("command", "args"):
            v = c.get(key)
            if v is not None and (not isinstance(v, list)
                                  or not all(isinstance(a, str) for a in v)):
                out.append((f"{at}.{key}", "Invalid value: must be a list of strings"))
        for j, e in enumerate(c.get("env") or []):
            if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not e["name"]:
                out.append((f"{at}.env[{j}].name", "Required value"))
            elif "=" in e["name"] or not all(" " <= ch <= "~" for ch in e["name"]):
                out.append((f"{at}.env[{j}].name", f"Invalid value: {e['name'][:80]!r}: a "
                            "valid environment variable name must consist only of printable "
                            "ASCII characters other than '='"))
            elif e.get("value") is not None and not isinstance(e["value"], str):
                out.append((f"{at}.env[{j}].value", "Invalid value: must be a string"))
        out += _port_errors(c.get("ports"), f"{at}.ports")
        out += _security_errors(c.get("securityContext"), f"{at}.securityContext")
        res = c.get("resources") or {}
        if not isinstance(res, dict):
            out.append((f"{at}.resources", "Invalid value: must be an object"))
            continue
        for part in ("requests", "limits"):
            for k, v in (res.get(part) or {}).items():
                try:
                    quantity.parse(v)
                except ValueError as err:
                    out.append((f"{at}.resources.{part}[{k}]", f"Invalid value: {err}"))
    return out


def check_pod(pod: dict[str, Any]) -> str:
    """Validate a Pod body for create; returns its name. Raises 400/422 KubeErrors."""
    check_kind(pod, "Pod")
    name = check_meta(pod, "Pod")
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        raise invalid("Pod", name, [("spec.containers", "Required value")])
    seen: set[str] = set()
    errors = _container_errors(spec.get("containers"), "spec.containers", seen, True)
    errors += _container_errors(spec.get("initContainers"), "spec.initContainers", seen, False)
    errors += _security_errors(spec.get("securityContext"), "spec.securityContext")
    errors += clusterdns.spec_errors(spec)
    if spec.get("ephemeralContainers"):  # added to a running pod only (kubectl debug)
        errors.append(("spec.ephemeralContainers", "Forbidden: cannot be set on create"))
    node = spec.get("nodeName")
    if node not in (None, ""):
        err = name_error(node)
        if err:
            errors.append(("spec.nodeName", err))
    policy = spec.get("restartPolicy", "Always")
    if policy not in RESTART_POLICIES:
        errors.append(("spec.restartPolicy", f"Unsupported value: {str(policy)[:40]!r}: "
                       'supported values: "Always", "OnFailure", "Never"'))
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)
                              or not 0 <= grace <= MAX_GRACE):
        errors.append(("spec.terminationGracePeriodSeconds",
                       f"Invalid value: must be an integer from 0 to {MAX_GRACE}"))
    if errors:
        raise invalid("Pod", name, errors)
    return name


def default_pod(pod: dict[str, Any]) -> None:
    """The defaults the apiserver fills in, so `-o yaml` shows what runs."""
    spec = pod["spec"]
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    for c in (spec.get("initContainers") or []) + spec["containers"]:
        c.setdefault("imagePullPolicy", "Always" if c["image"].endswith(":latest")
                     or ":" not in c["image"].rsplit("/", 1)[-1] else "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})


# ---- patches

def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (strategic merge patch is model/strategic.py's)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def pod_update_errors(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str]]:
    """What an update may not change: the spec (fargo does not restart pods for an image
    change), the name and namespace."""
    errors = []
    if new.get("spec") != old.get("spec"):
        errors.append(("spec", "Forbidden: pod updates may not change fields other than "
                       "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                       "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
                       "existing tolerations),`spec.terminationGracePeriodSeconds` (allow it "
                       "to be set to 1 if it was previously negative); fargo refuses every "
                       "spec change"))
    for key in ("name", "namespace", "uid"):
        if (new.get("metadata") or {}).get(key) != (old.get("metadata") or {}).get(key):
            errors.append((f"metadata.{key}", "Invalid value: field is immutable"))
    return errors
