"""Discovery documents: /version, /api, /apis, /api/v1 (legacy and aggregated v2 forms),
all read off the route table in resources.py (only the core group has kinds so far)."""

from __future__ import annotations

import platform
from typing import Any

from .resources import RESOURCES, Resource

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def _core() -> list[Resource]:
    return [r for r in RESOURCES if r.group == "" and r.version == "v1"]


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
    for r in _core():
        out.append({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                    "kind": r.kind, "verbs": r.verbs, "shortNames": list(r.short),
                    **({"categories": list(r.categories)} if r.categories else {})})
        for sub in r.subresources:
            out.append({"name": f"{r.plural}/{sub}", "singularName": "",
                        "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get"]})
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": out}


def aggregated_core() -> dict[str, Any]:
    resources = []
    for r in _core():
        kind = {"group": "", "version": "v1", "kind": r.kind}
        entry: dict[str, Any] = {
            "resource": r.plural, "responseKind": kind,
            "scope": "Namespaced" if r.namespaced else "Cluster",
            "singularResource": r.singular, "verbs": r.verbs, "shortNames": list(r.short)}
        if r.categories:
            entry["categories"] = list(r.categories)
        if r.subresources:
            entry["subresources"] = [{"subresource": sub, "responseKind": dict(kind),
                                      "verbs": ["get"]} for sub in r.subresources]
        resources.append(entry)
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": [{"metadata": {"creationTimestamp": None}, "versions": [
                {"version": "v1", "resources": resources, "freshness": "Current"}]}]}


def aggregated_groups() -> dict[str, Any]:
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": []}


def wants_aggregated(accept: str) -> bool:
    return "g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList" in accept.replace(" ", "")
