"""The verbs every resource shares, as kube-apiserver answers them: list (or watch), get,
create, update (PUT, or PATCH applied here to the current object) and delete. What a write
does to a kind is its handler in resources.py; one without a handler answers 405."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ...control.kubestate import public
from ...model.kubeerrors import bad_request, method_not_allowed, unknown_path
from ...model.selectors import Matcher, field_selector, label_selector
from . import tables
from .resources import Obj, Resource, Scope
from .watch import watch
from .wire import delete_grace, json_response, patched, read_body


@dataclass(frozen=True)
class Target:
    """What a URL names: a kind, and a namespace (None: all of them, or a cluster-scoped
    kind), an object's name (None: the collection) and a subresource."""
    res: Resource
    ns: str | None
    name: str | None
    sub: str | None


Verb = Callable[[web.Request, Scope, Target], Awaitable[web.StreamResponse]]


def _matcher(request: web.Request, res: Resource) -> Matcher:
    labels = label_selector(request.query.get("labelSelector"))
    fields = field_selector(request.query.get("fieldSelector"), res.fields)

    def match(obj: Obj) -> bool:
        return labels(obj["metadata"].get("labels") or {}) and fields(obj)
    return match


def _view(request: web.Request, res: Resource, objs: list[Obj], rv: str, single: bool) -> Any:
    if tables.wants_table(request.headers.get("Accept", "")):
        return tables.table(res.printer, objs, rv, request.query.get("includeObject"))
    if single:
        return objs[0]
    return {"kind": f"{res.kind}List", "apiVersion": res.api_version,
            "metadata": {"resourceVersion": rv}, "items": objs}


# The words Go's strconv.ParseBool takes, as the apiserver reads a query's booleans.
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"", "0", "f", "F", "FALSE", "false", "False"}


def _flag(request: web.Request, key: str) -> bool:
    raw = request.query.get(key, "")
    if raw in _TRUE or raw in _FALSE:
        return raw in _TRUE
    raise bad_request(f"{key} must be true or false: {raw[:40]!r}")


def _check_integer(request: web.Request, key: str) -> None:
    """A list's integer options, read (and bounded to int64) as the apiserver does, though
    fargo's lists are whole: the answer to a bad one is a 400, never a silent default."""
    raw = request.query.get(key)
    if raw is not None and not (raw.isascii() and raw.lstrip("-").isdigit() and len(raw) <= 18):
        raise bad_request(f"{key} must be an integer: {raw[:40]!r}")


async def list_or_watch(request: web.Request, s: Scope, t: Target) -> web.StreamResponse:
    match = _matcher(request, t.res)
    _check_integer(request, "limit")
    _check_integer(request, "timeoutSeconds")
    if _flag(request, "watch"):
        return await watch(request, s.state, s.cluster, t.res, t.ns, match)
    rv = str(s.state.current_rv)
    objs = [public(o) for o in s.state.list(s.cluster, t.res.plural, t.ns) if match(o)]
    return json_response(_view(request, t.res, objs, rv, single=False))


async def get(request: web.Request, s: Scope, t: Target) -> web.StreamResponse:
    obj = public(s.state.get(s.cluster, t.res.plural, s.ns, t.name or ""))
    return json_response(_view(request, t.res, [obj], obj["metadata"]["resourceVersion"],
                               single=True))


async def create(request: web.Request, s: Scope, t: Target) -> web.StreamResponse:
    body = await read_body(request)
    if t.res.create is None:
        raise method_not_allowed("POST")
    return json_response(public(t.res.create(s, body)), status=201)


async def delete(request: web.Request, s: Scope, t: Target) -> web.StreamResponse:
    grace = await delete_grace(request)
    if t.res.delete is None:
        raise method_not_allowed("DELETE")
    return json_response(public(t.res.delete(s, t.name or "", grace)))


async def update(request: web.Request, s: Scope, t: Target) -> web.StreamResponse:
    if t.res.replace is None:
        raise method_not_allowed(request.method)
    body = await read_body(request)
    old = public(s.state.get(s.cluster, t.res.plural, s.ns, t.name or ""))
    new = body if request.method == "PUT" else patched(request.content_type, old, body)
    if not isinstance(new, dict):
        raise bad_request("the patched object is not an object")
    return json_response(public(t.res.replace(s, t.name or "", new)))


COLLECTION: dict[str, Verb] = {"GET": list_or_watch, "POST": create}
OBJECT: dict[str, Verb] = {"GET": get, "DELETE": delete, "PUT": update, "PATCH": update}
STATUS: dict[str, Verb] = {"GET": get}  # read-only here: controllers write status


def verb(t: Target, method: str) -> Verb:
    """The verb a method means on what the URL names; 404 for an unknown subresource, 405
    for a method it does not take."""
    if t.name is None:
        verbs = COLLECTION
    elif t.sub is None:
        verbs = OBJECT
    elif t.sub == "status":
        verbs = STATUS
    elif t.sub in t.res.streams:
        stream = t.res.streams[t.sub]

        async def read(request: web.Request, s: Scope, t: Target) -> web.StreamResponse:
            return await stream(request, s, t.name or "")
        verbs = {"GET": read}
    else:
        raise unknown_path()
    found = verbs.get(method)
    if found is None:
        raise method_not_allowed(method)
    return found
