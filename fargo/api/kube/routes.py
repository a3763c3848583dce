"""Request routing for the Kubernetes face: /eks/CLUSTER/api/v1/... and
/apis/GROUP/VERSION/... to the resource table of resources.py, plus discovery and OpenAPI.

Every failure answers as a `kind: Status`; nothing here holds a rule of its own (pods and
admission live in control/ and model/)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from aiohttp import web

from ...model.kubeerrors import KubeError, method_not_allowed, unknown_path
from . import discovery, openapi, resources
from .auth import authorize
from .keys import EKS, KUBE_STATE, OBJECTS, PODS
from .resources import Scope
from .verbs import Target, verb
from .wire import json_response, status_response

log = logging.getLogger("fargo.kube")


# ---- paths that name no resource: GET (or HEAD) only
def _discovery(accept: str, aggregated: Callable[[], object],
               legacy: Callable[[], object]) -> web.Response:
    if discovery.wants_aggregated(accept):
        return web.Response(body=json.dumps(aggregated()).encode(),
                            headers={"Content-Type": discovery.AGGREGATED})
    return json_response(legacy())


def _openapi_v2(request: web.Request, cluster: str) -> web.Response:
    """OpenAPI v2: the protobuf form kubectl asks for, else JSON."""
    if openapi.V2_PROTOBUF in request.headers.get("Accept", ""):
        return web.Response(body=openapi.v2_protobuf(), content_type=openapi.V2_PROTOBUF_SENT)
    return web.Response(body=openapi.v2_json(), content_type="application/json")


Page = Callable[[web.Request, str], web.Response]  # (request, cluster)
NON_RESOURCE: dict[str, Page] = {
    "version": lambda request, cluster: json_response(discovery.version()),
    "healthz": lambda request, cluster: web.Response(text="ok"),
    "livez": lambda request, cluster: web.Response(text="ok"),
    "readyz": lambda request, cluster: web.Response(text="ok"),
    "api": lambda request, cluster: _discovery(request.headers.get("Accept", ""),
                                               discovery.aggregated_core,
                                               discovery.api_versions),
    "apis": lambda request, cluster: _discovery(request.headers.get("Accept", ""),
                                                discovery.aggregated_groups,
                                                discovery.api_groups),
    "api/v1": lambda request, cluster: json_response(discovery.resource_list("", "v1")),
    "openapi/v3": lambda request, cluster: json_response(openapi.root(f"/eks/{cluster}")),
    "openapi/v2": _openapi_v2,
    "": lambda request, cluster: json_response({"paths": ["/api", "/api/v1", "/apis",
                                                          "/version"]}),
}


# ---- resource paths
def _group_version(segs: list[str]) -> tuple[str, str, list[str]]:
    """api/v1/REST -> the core group; apis/GROUP/VERSION/REST -> that group."""
    if segs[:1] == ["api"] and len(segs) >= 2:
        return "", segs[1], segs[2:]
    if segs[:1] == ["apis"] and len(segs) >= 3:
        return segs[1], segs[2], segs[3:]
    raise unknown_path()


def parse_target(group: str, version: str, segs: list[str]) -> Target:
    """The segments after the group and version -> what they name; 404 for anything else.
    Namespaced kinds live under namespaces/NS/; namespaces/NAME/SUB is the namespace's own
    subresource."""
    if not segs:
        raise unknown_path()
    if segs[0] == "namespaces" and len(segs) >= 3:
        ns, plural, rest = segs[1], segs[2], segs[3:]
        res = resources.find(group, version, plural)
        if res is not None and res.namespaced:
            if len(rest) > 2:
                raise unknown_path()
            return Target(res, ns, rest[0] if rest else None, rest[1] if len(rest) > 1 else None)
        namespaces = resources.find(group, version, "namespaces")
        if namespaces is None or rest:
            raise unknown_path()
        return Target(namespaces, None, ns, plural)
    res, rest = resources.find(group, version, segs[0]), segs[1:]
    if res is None or len(rest) > 2 or (res.namespaced and rest):
        raise unknown_path()
    return Target(res, None, rest[0] if rest else None, rest[1] if len(rest) > 1 else None)


def _group_discovery(segs: list[str]) -> web.Response | None:
    """/apis/GROUP and /apis/GROUP/VERSION of the groups served; None for other paths."""
    if segs[:1] != ["apis"] or len(segs) not in (2, 3):
        return None
    doc = discovery.api_group(segs[1]) if len(segs) == 2 else \
        discovery.resource_list(segs[1], segs[2])
    if doc is None:
        raise unknown_path()
    return json_response(doc)


async def _route(request: web.Request, cluster: str, segs: list[str]) -> web.StreamResponse:
    path = "/".join(segs)
    page = NON_RESOURCE.get(path)
    found = page(request, cluster) if page is not None else _group_discovery(segs)
    if found is not None:
        if request.method not in ("GET", "HEAD"):
            raise method_not_allowed(request.method)
        return found
    t = parse_target(*_group_version(segs))
    answer = verb(t, request.method)
    app = request.app
    scope = Scope(cluster, t.ns or "", app[KUBE_STATE], app[PODS], app[OBJECTS])
    return await answer(request, scope, t)


async def handle(request: web.Request) -> web.StreamResponse:
    cluster = request.match_info["cluster"]
    tail = request.match_info.get("tail", "")
    try:
        authorize(request, cluster)
        if not request.app[EKS].exists(cluster):
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


def _openapi_v3(path: str) -> web.Response:
    """One group-version's OpenAPI v3 document (openapi.py), or 404."""
    doc = openapi.document(path)
    if doc is None:
        raise unknown_path()
    return web.Response(body=doc, content_type="application/json")


def _v3_page(path: str) -> Page:
    return lambda request, cluster: _openapi_v3(path)


NON_RESOURCE.update({f"openapi/v3/{openapi.gv_path(*gv)}": _v3_page(openapi.gv_path(*gv))
                     for gv in openapi.group_versions()})


async def openapi_root(request: web.Request) -> web.Response:
    """kubectl may ask for the OpenAPI index at the server root (it drops the URL's path)."""
    tail = request.match_info.get("tail", "").strip("/")
    try:
        return _openapi_v3(tail) if tail else json_response(openapi.root(""))
    except KubeError as err:
        return status_response(err)


def add_routes(app: web.Application) -> None:
    app.router.add_route("*", "/eks/{cluster}", handle)
    app.router.add_route("*", "/eks/{cluster}/{tail:.*}", handle)
    app.router.add_get("/openapi/v3", openapi_root)
    app.router.add_get("/openapi/v3/{tail:.*}", openapi_root)
