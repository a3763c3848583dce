"""Discovery documents: /version, /api, /apis, /api/v1 (legacy and aggregated v2 forms),
/apis/GROUP and /apis/GROUP/VERSION, all read off the route table in resources.py."""

from __future__ import annotations

import platform
from typing import Any

from .resources import RESOURCES, Resource

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def _served(group: str, version: str) -> list[Resource]:
    return [r for r in RESOURCES if r.group == group and r.version == version]


def _groups() -> dict[str, list[str]]:
    """Each named group's versions, in the table's order (the first is preferred)."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        if r.group and r.version not in out.setdefault(r.group, []):
            out[r.group].append(r.version)
    return out


def version() -> dict[str, Any]:
    return {"major": "1", "minor": "32", "gitVersion": "v1.32.0-eks-fargo",
            "gitCommit": "fargo", "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.23", "compiler": "gc",
            "platform": f"linux/{'amd64' if platform.machine() == 'x86_64' else 'arm64'}"}


def api_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": "127.0.0.1"}]}


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def api_groups() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(g, vs) for g, vs in _groups().items()]}


def api_group(name: str) -> dict[str, Any] | None:
    versions = _groups().get(name)
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)} if versions \
        else None


def resource_list(group: str = "", version: str = "v1") -> dict[str, Any] | None:
    served = _served(group, version)
    if not served:
        return None
    out = []
    for r in served:
        out.append({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                    "kind": r.kind, "verbs": r.verbs, "shortNames": list(r.short),
                    **({"categories": list(r.categories)} if r.categories else {})})
        for sub in r.subresources:
            out.append({"name": f"{r.plural}/{sub}", "singularName": "",
                        "namespaced": r.namespaced, "kind": _sub_kind(r, sub),
                        **({"group": "autoscaling", "version": "v1"} if sub == "scale"
                           else {}),
                        "verbs": _sub_verbs(r, sub)})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": out}


def _sub_kind(r: Resource, sub: str) -> str:
    return {"scale": "Scale", "exec": "PodExecOptions", "attach": "PodAttachOptions",
            "portforward": "PodPortForwardOptions", "log": r.kind}.get(sub, r.kind)


def _sub_verbs(r: Resource, sub: str) -> list[str]:
    if sub in ("status", "scale") and r.generic:
        return ["get", "patch", "update"]
    if sub in ("exec", "attach", "portforward"):
        return ["create", "get"]
    return ["get"]


def _aggregated(group: str, version: str) -> dict[str, Any]:
    resources = []
    for r in _served(group, version):
        kind = {"group": group, "version": version, "kind": r.kind}
        entry: dict[str, Any] = {
            "resource": r.plural, "responseKind": kind,
            "scope": "Namespaced" if r.namespaced else "Cluster",
            "singularResource": r.singular, "verbs": r.verbs, "shortNames": list(r.short)}
        if r.categories:
            entry["categories"] = list(r.categories)
        if r.subresources:
            entry["subresources"] = [
                {"subresource": sub, "verbs": _sub_verbs(r, sub),
                 "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}
                 if sub == "scale" else {**kind, "kind": _sub_kind(r, sub)}}
                for sub in r.subresources]
        resources.append(entry)
    return {"version": version, "resources": resources, "freshness": "Current"}


def _list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}


def aggregated_core() -> dict[str, Any]:
    return _list([{"metadata": {"creationTimestamp": None},
                   "versions": [_aggregated("", "v1")]}])


def aggregated_groups() -> dict[str, Any]:
    return _list([{"metadata": {"name": g, "creationTimestamp": None},
                   "versions": [_aggregated(g, v) for v in vs]}
                  for g, vs in _groups().items()])


def wants_aggregated(accept: str) -> bool:
    return "g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList" in accept.replace(" ", "")
