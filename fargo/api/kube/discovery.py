"""Discovery documents: /version, /api, /apis, /api/v1 (legacy and aggregated v2 forms)."""

from __future__ import annotations

import platform
from typing import Any

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
ALL_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]

# name, singular, kind, namespaced, verbs, short names, subresources
RESOURCES: list[tuple[str, str, str, bool, list[str], list[str], list[str]]] = [
    ("namespaces", "namespace", "Namespace", False,
     ["create", "delete", "get", "list", "patch", "update", "watch"], ["ns"], []),
    ("nodes", "node", "Node", False, ["get", "list", "watch"], ["no"], []),
    ("pods", "pod", "Pod", True, ALL_VERBS, ["po"], ["log", "status"]),
    ("events", "event", "Event", True, ["get", "list", "watch"], ["ev"], []),
]


def version() -> dict[str, Any]:
    return {"major": "1", "minor": "32", "gitVersion": "v1.32.0-eks-fargo",
            "gitCommit": "fargo", "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.23", "compiler": "gc",
            "platform": f"linux/{'amd64' if platform.machine() == 'x86_64' else 'arm64'}"}


def api_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": "127.0.0.1"}]}


def api_groups() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}


def resource_list() -> dict[str, Any]:
    out = []
    for name, singular, kind, namespaced, verbs, short, subs in RESOURCES:
        out.append({"name": name, "singularName": singular, "namespaced": namespaced,
                    "kind": kind, "verbs": verbs, "shortNames": short,
                    **({"categories": ["all"]} if name == "pods" else {})})
        for sub in subs:
            out.append({"name": f"{name}/{sub}", "singularName": "", "namespaced": namespaced,
                        "kind": kind, "verbs": ["get"]})
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": out}


def aggregated_core() -> dict[str, Any]:
    resources = []
    for name, singular, kind, namespaced, verbs, short, subs in RESOURCES:
        entry: dict[str, Any] = {
            "resource": name, "responseKind": {"group": "", "version": "v1", "kind": kind},
            "scope": "Namespaced" if namespaced else "Cluster", "singularResource": singular,
            "verbs": verbs, "shortNames": short}
        if name == "pods":
            entry["categories"] = ["all"]
        if subs:
            entry["subresources"] = [{"subresource": s, "responseKind": {
                "group": "", "version": "v1", "kind": kind}, "verbs": ["get"]} for s in subs]
        resources.append(entry)
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": [{"metadata": {"creationTimestamp": None}, "versions": [
                {"version": "v1", "resources": resources, "freshness": "Current"}]}]}


def aggregated_groups() -> dict[str, Any]:
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": []}


def wants_aggregated(accept: str) -> bool:
    return "g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList" in accept.replace(" ", "")
