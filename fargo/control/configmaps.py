"""ConfigMaps of each EKS cluster's Kubernetes API: stored and served as the apiserver does
(the EKS log router reads aws-observability/aws-logging from here at each pod's start)."""

from __future__ import annotations

from typing import Any

from ..model.configmap import new_configmap, replaced_configmap
from ..model.kubeerrors import KubeError
from .kubestate import KubeState


def create(state: KubeState, cluster: str, ns: str, body: Any) -> dict[str, Any]:
    meta = body.get("metadata") if isinstance(body, dict) else None
    if isinstance(meta, dict) and meta.get("namespace") not in (None, ns):
        raise KubeError(400, "BadRequest", "the namespace of the provided object does not "
                        "match the namespace sent on the request")
    obj = new_configmap(body)
    namespace = state.get(cluster, "namespaces", "", ns)
    if (namespace.get("status") or {}).get("phase") == "Terminating":
        raise KubeError(403, "Forbidden", f'configmaps "{obj["metadata"]["name"]}" is '
                        f"forbidden: unable to create new content in namespace {ns} because "
                        "it is being terminated")
    return state.create(cluster, "configmaps", ns, obj)


def replace(state: KubeState, cluster: str, ns: str, name: str,
            new: dict[str, Any]) -> dict[str, Any]:
    old = state.get(cluster, "configmaps", ns, name)
    rv = (new.get("metadata") or {}).get("resourceVersion")
    if rv and rv != old["metadata"]["resourceVersion"]:
        raise KubeError(409, "Conflict", f'Operation cannot be fulfilled on configmaps "{name}": '
                        "the object has been modified; please apply your changes to the latest "
                        "version and try again")
    merged = replaced_configmap(old, new, name)
    return old if merged == old else state.update(cluster, "configmaps", ns, merged)


def delete(state: KubeState, cluster: str, ns: str, name: str) -> dict[str, Any]:
    state.get(cluster, "configmaps", ns, name)  # 404 when it is not there
    return state.delete(cluster, "configmaps", ns, name) or {}
