"""Request routing for the Kubernetes face: /eks/CLUSTER/api/v1/... and discovery.

Every failure answers as a `kind: Status`; nothing here holds a rule of its own (pods and
admission live in control/ and model/)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from ...control.kubestate import public
from ...model import kubeobj
from ...model.admission import apply_json_patch
from ...model.kubeerrors import KubeError, bad_request, method_not_allowed, unknown_path
from ...model.kubeobj import MAX_GRACE
from ...model.selectors import FIELDS, field_selector, label_selector
from . import discovery, openapi, protobuf, tables
from .auth import authorize
from .logs import pod_logs
from .watch import watch

log = logging.getLogger("fargo.kube")
NAMESPACED = {"pods", "events"}
CLUSTER_SCOPED = {"namespaces", "nodes"}
LIST_KINDS = {"pods": "PodList", "nodes": "NodeList", "namespaces": "NamespaceList",
              "events": "EventList"}


@dataclass
class Target:
    resource: str
    ns: str | None
    name: str | None
    sub: str | None


def status_response(err: KubeError) -> web.Response:
    return web.json_response(err.status(), status=err.code)


def _json(request: web.Request, body: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), status=status,
                        content_type="application/json")


def parse_target(segs: list[str]) -> Target:
    """segments after api/v1 -> what they name; 404 for anything else."""
    if not segs:
        raise unknown_path()
    if segs[0] == "namespaces" and len(segs) >= 3:
        ns, resource, rest = segs[1], segs[2], segs[3:]
        if resource in ("status", "finalize") and not rest:
            return Target("namespaces", None, ns, resource)
        if resource not in NAMESPACED or len(rest) > 2:
            raise unknown_path()
        return Target(resource, ns, rest[0] if rest else None, rest[1] if len(rest) > 1 else None)
    resource, rest = segs[0], segs[1:]
    if resource not in NAMESPACED | CLUSTER_SCOPED or len(rest) > 2:
        raise unknown_path()
    if resource in NAMESPACED and rest:
        raise unknown_path()
    return Target(resource, None, rest[0] if rest else None, rest[1] if len(rest) > 1 else None)


async def read_body(request: web.Request) -> Any:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise KubeError(413, "RequestEntityTooLarge", "the request body is too large") from None
    if not raw.strip():
        raise bad_request("the request body is empty")
    ctype = request.content_type
    if ctype == protobuf.CONTENT_TYPE:
        try:
            return protobuf.decode(raw)
        except (ValueError, UnicodeDecodeError, TypeError, IndexError) as err:
            raise KubeError(415, "UnsupportedMediaType", str(err)[:300]) from None
    if "json" not in ctype and "yaml" not in ctype:
        # Protobuf and CBOR clients (kubectl) fall back to JSON on 415.
        raise KubeError(415, "UnsupportedMediaType", f"the body of the request was in an "
                        f"unknown format - accepted media types include: application/json, "
                        f"application/yaml (got {ctype[:80]})")
    try:
        if "yaml" in request.content_type:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError, RecursionError, UnicodeDecodeError) as err:
        raise bad_request(f"the body of the request could not be decoded: "
                          f"{str(err)[:200]}") from None


def _flag(request: web.Request, key: str) -> bool:
    return request.query.get(key, "").lower() in ("1", "true")


async def handle(request: web.Request) -> web.StreamResponse:
    cluster = request.match_info["cluster"]
    tail = request.match_info.get("tail", "")
    try:
        authorize(request, cluster)
        if request.app["kube_tables"].get_cluster(cluster) is None:
            raise KubeError(404, "NotFound", f'EKS cluster "{cluster[:100]}" not found')
        return await _route(request, cluster, [s for s in tail.split("/") if s])
    except KubeError as err:
        return status_response(err)
    except (ConnectionResetError, ConnectionError):
        raise
    except Exception:  # noqa: BLE001 - never a traceback page; the log has the details
        log.exception("kube %s %s", request.method, request.path)
        return status_response(KubeError(500, "InternalError", "an internal error occurred "
                                          "in fargo"))


async def openapi_root(request: web.Request) -> web.Response:
    """kubectl may ask for the OpenAPI index at the server root (it drops the URL's path)."""
    if request.match_info.get("tail", "").strip("/") == "api/v1":
        return _json(request, openapi.core_v1())
    if not request.match_info.get("tail", "").strip("/"):
        return _json(request, openapi.root(""))
    return status_response(unknown_path())


async def _route(request: web.Request, cluster: str, segs: list[str]) -> web.StreamResponse:
    accept = request.headers.get("Accept", "")
    path = "/".join(segs)
    if path in ("version", "api", "apis", "api/v1", "openapi/v3", "openapi/v3/api/v1",
                "healthz", "livez", "readyz", "openapi/v2", ""):
        if request.method not in ("GET", "HEAD"):
            raise method_not_allowed(request.method)
        if path == "version":
            return _json(request, discovery.version())
        if path in ("healthz", "livez", "readyz"):
            return web.Response(text="ok")
        if path == "api":
            if discovery.wants_aggregated(accept):
                return web.Response(body=json.dumps(discovery.aggregated_core()).encode(),
                                    headers={"Content-Type": discovery.AGGREGATED})
            return _json(request, discovery.api_versions())
        if path == "apis":
            if discovery.wants_aggregated(accept):
                return web.Response(body=json.dumps(discovery.aggregated_groups()).encode(),
                                    headers={"Content-Type": discovery.AGGREGATED})
            return _json(request, discovery.api_groups())
        if path == "api/v1":
            return _json(request, discovery.resource_list())
        if path == "openapi/v3":
            return _json(request, openapi.root(f"/eks/{cluster}"))
        if path == "openapi/v3/api/v1":
            return _json(request, openapi.core_v1())
        if path == "":
            return _json(request, {"paths": ["/api", "/api/v1", "/apis", "/version"]})
        raise unknown_path()  # openapi/v2: kubectl falls back without it
    if segs[:2] != ["api", "v1"]:
        raise unknown_path()
    t = parse_target(segs[2:])
    m = request.method
    if t.name is None:
        if m == "GET":
            if _flag(request, "watch"):
                return await watch(request, cluster, t.resource, t.ns, _matcher(request, t))
            return _list(request, cluster, t)
        if m == "POST":
            return await _create(request, cluster, t)
        raise method_not_allowed(m)
    if t.sub == "log" and t.resource == "pods":
        if m != "GET":
            raise method_not_allowed(m)
        return await pod_logs(request, cluster, t.ns or "", t.name)
    if t.sub not in (None, "status"):
        raise unknown_path()
    if m == "GET":
        return _get(request, cluster, t)
    if t.sub == "status" and m != "GET":
        raise method_not_allowed(m)
    if m == "DELETE":
        return await _delete(request, cluster, t)
    if m in ("PUT", "PATCH"):
        return await _update(request, cluster, t)
    raise method_not_allowed(m)


def _matcher(request: web.Request, t: Target) -> Any:
    labels = label_selector(request.query.get("labelSelector"))
    fields = field_selector(request.query.get("fieldSelector"), FIELDS[t.resource])

    def match(obj: dict[str, Any]) -> bool:
        return labels(obj["metadata"].get("labels") or {}) and fields(obj)
    return match


def _view(request: web.Request, resource: str, objs: list[dict[str, Any]], rv: str,
          single: bool) -> Any:
    if tables.wants_table(request.headers.get("Accept", "")):
        return tables.table(resource, objs, rv, request.query.get("includeObject"))
    if single:
        return objs[0]
    return {"kind": LIST_KINDS[resource], "apiVersion": "v1",
            "metadata": {"resourceVersion": rv}, "items": objs}


def _list(request: web.Request, cluster: str, t: Target) -> web.Response:
    state = request.app["kube_state"]
    match = _matcher(request, t)
    rv = str(state.tables.current_rv)
    objs = [public(o) for o in state.list(cluster, t.resource, t.ns) if match(o)]
    return _json(request, _view(request, t.resource, objs, rv, single=False))


def _get(request: web.Request, cluster: str, t: Target) -> web.Response:
    state = request.app["kube_state"]
    obj = public(state.get(cluster, t.resource, t.ns or "", t.name or ""))
    return _json(request, _view(request, t.resource, [obj], obj["metadata"]["resourceVersion"],
                                single=True))


async def _create(request: web.Request, cluster: str, t: Target) -> web.Response:
    state, pods = request.app["kube_state"], request.app["pods"]
    body = await read_body(request)
    if t.resource == "pods":
        obj = pods.create(cluster, t.ns or "", body)
    elif t.resource == "namespaces":
        kubeobj.check_kind(body, "Namespace")
        name = kubeobj.check_meta(body, "Namespace", label_name=True)
        meta = body["metadata"]
        labels = dict(meta.get("labels") or {})
        labels["kubernetes.io/metadata.name"] = name
        doc = {"metadata": {"name": name, "labels": labels},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
        if meta.get("annotations"):
            doc["metadata"]["annotations"] = meta["annotations"]
        obj = state.create(cluster, "namespaces", "", doc)
    else:
        raise method_not_allowed("POST")
    return _json(request, public(obj), status=201)


def _delete_grace(request: web.Request, body: Any) -> int | None:
    raw = request.query.get("gracePeriodSeconds")
    if raw is None and isinstance(body, dict):
        raw = body.get("gracePeriodSeconds")
    if raw is None:
        return None
    try:
        grace = int(raw) if str(raw).lstrip("-").isascii() else int("x")
    except (TypeError, ValueError):
        raise bad_request(f"gracePeriodSeconds must be an integer: {str(raw)[:40]!r}") from None
    return min(max(grace, 0), MAX_GRACE)


async def _delete(request: web.Request, cluster: str, t: Target) -> web.Response:
    body: Any = None
    if request.can_read_body:
        raw = await request.read()
        if raw.strip():
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError, RecursionError):
                raise bad_request("the DeleteOptions body could not be decoded") from None
    grace = _delete_grace(request, body)
    if t.resource == "pods":
        obj = request.app["pods"].delete(cluster, t.ns or "", t.name or "", grace)
    elif t.resource == "namespaces":
        obj = request.app["pods"].delete_namespace(cluster, t.name or "")
    else:
        raise method_not_allowed("DELETE")
    return _json(request, public(obj))


async def _update(request: web.Request, cluster: str, t: Target) -> web.Response:
    if t.resource not in ("pods", "namespaces"):
        raise method_not_allowed(request.method)
    state = request.app["kube_state"]
    body = await read_body(request)
    old = public(state.get(cluster, t.resource, t.ns or "", t.name or ""))
    if request.method == "PUT":
        new = body
    else:
        new = _patched(request.content_type, old, body)
    if not isinstance(new, dict):
        raise bad_request("the patched object is not an object")
    if t.resource == "pods":
        obj = request.app["pods"].replace(cluster, t.ns or "", t.name or "", new)
    else:
        obj = _replace_namespace(state, cluster, t.name or "", new)
    return _json(request, public(obj))


def _patched(ctype: str, old: dict[str, Any], patch: Any) -> Any:
    try:
        if ctype == "application/json-patch+json":
            if not isinstance(patch, list):
                raise bad_request("a JSON patch must be a list of operations")
            return apply_json_patch(old, patch)
        if ctype == "application/merge-patch+json":
            return kubeobj.merge_patch(old, patch)
        if ctype == "application/strategic-merge-patch+json":
            return kubeobj.merge_patch(old, patch, strategic=True)
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise KubeError(422, "Invalid", f"the patch could not be applied: {str(err)[:200]}"
                        ) from None
    if ctype == "application/apply-patch+yaml":
        raise KubeError(415, "UnsupportedMediaType", "server-side apply is not supported by "
                        "fargo yet: use client-side `kubectl apply`")
    raise KubeError(415, "UnsupportedMediaType", f"the body of the request was in an unknown "
                    f"format - accepted media types include: application/json-patch+json, "
                    f"application/merge-patch+json, application/strategic-merge-patch+json "
                    f"(got {ctype[:60]})")


def _replace_namespace(state: Any, cluster: str, name: str,
                       new: dict[str, Any]) -> dict[str, Any]:
    old = state.get(cluster, "namespaces", "", name)
    kubeobj.check_kind(new, "Namespace")
    if (new.get("metadata") or {}).get("name", name) != name:
        raise KubeError(422, "Invalid", f'Namespace "{name}" is invalid: metadata.name: '
                        "Invalid value: field is immutable")
    new.setdefault("metadata", {})["name"] = name
    kubeobj.check_meta(new, "Namespace", label_name=True)
    merged = dict(old)
    merged["metadata"] = dict(old["metadata"])
    for key in ("labels", "annotations"):
        if new["metadata"].get(key):
            merged["metadata"][key] = new["metadata"][key]
        else:
            merged["metadata"].pop(key, None)
    merged["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    return state.update(cluster, "namespaces", "", merged) if merged != old else old


def add_routes(app: web.Application) -> None:
    app.router.add_route("*", "/eks/{cluster}", handle)
    app.router.add_route("*", "/eks/{cluster}/{tail:.*}", handle)
    app.router.add_get("/openapi/v3", openapi_root)
    app.router.add_get("/openapi/v3/{tail:.*}", openapi_root)
