"""node.k8s.io/v1 RuntimeClass as the apiserver checks it, and how a pod's class picks its
sandbox tier (model/isolation.py).

Each EKS cluster has two classes, `gvisor` (handler runsc) and `runc` (handler runc); a user may
add classes naming either handler. `overhead` and `scheduling` are refused by name: a Fargate
pod's size is its own (no overhead is added) and it has no node to be scheduled onto.

A pod names its class in spec.runtimeClassName; without one, the Fargate profile that selects
it may give a default by its tag PROFILE_TAG (a class name); else the server's default tier.
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import isolation
from .kubeerrors import KubeError, invalid
from .kubekinds import KindRule, register

GROUP, VERSION = "node.k8s.io", "v1"
PROFILE_TAG = "fargo.io/runtime-class"
SANDBOX_ANNOTATION = "fargo.io/sandbox"  # the tier a pod runs in, set where it is bound
BUILTIN = {"gvisor": "runsc", "runc": "runc"}
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

Obj = dict[str, Any]


def check_runtime_class(obj: Obj, old: Obj | None) -> None:
    name = obj["metadata"]["name"]
    handler = obj.get("handler")
    errors: list[tuple[str, str]] = []
    if handler in (None, ""):
        errors.append(("handler", "Required value"))
    elif not isinstance(handler, str) or len(handler) > 63 or not _LABEL.match(handler):
        errors.append(("handler", f"Invalid value: {json.dumps(handler)}: a lowercase RFC "
                       "1123 label must consist of lower case alphanumeric characters or '-', "
                       "and must start and end with an alphanumeric character"))
    elif handler not in isolation.HANDLERS:
        errors.append(("handler", f"Unsupported value: {json.dumps(handler)}: supported "
                       "values: \"runc\", \"runsc\" (the handlers fargo runs)"))
    if old is not None and handler != old.get("handler"):
        errors.append(("handler", f"Invalid value: {json.dumps(handler)}: field is immutable"))
    for key in ("overhead", "scheduling"):
        if obj.get(key) is not None:
            errors.append((key, "Forbidden: not supported on Fargate (a pod's size is its "
                           "own and it has no node to schedule onto)"))
    if errors:
        raise invalid("RuntimeClass", name, errors)


register(KindRule("runtimeclasses", "RuntimeClass", group=GROUP, version=VERSION,
                  namespaced=False, check=check_runtime_class))


def builtin(name: str) -> Obj:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RuntimeClass",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "fargo"}},
            "handler": BUILTIN[name]}


def class_name(pod: Obj) -> str | None:
    name = (pod.get("spec") or {}).get("runtimeClassName")
    return name if isinstance(name, str) and name else None


def not_found(pod: Obj, name: str) -> KubeError:
    """The apiserver's RuntimeClass admission answer for a pod naming a class that is not."""
    pod_name = (pod.get("metadata") or {}).get("name", "")
    return KubeError(403, "Forbidden", f'pods "{pod_name}" is forbidden: pod rejected: '
                     f'RuntimeClass "{name}" not found', {"name": pod_name, "kind": "pods"})


def profile_default(profile: Obj | None) -> str | None:
    """The class a Fargate profile gives the pods it selects that name none."""
    tag = ((profile or {}).get("tags") or {}).get(PROFILE_TAG)
    return tag if isinstance(tag, str) and tag else None


def tier(runtime_class: Obj) -> str:
    return isolation.HANDLERS.get(str(runtime_class.get("handler")), isolation.RUNC)
