"""The verbs every resource shares, as kube-apiserver answers them: list (or watch), get,
create, update (PUT, or PATCH applied here to the current object), delete and
deletecollection, the status and scale subresources, and dryRun. A kind with handlers of its
own (resources.py) writes through them; every other kind through control/objects.py."""

from __future__ import annotations

import copy
import datetime
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from dataclasses import replace as with_changes
from typing import Any

from aiohttp import web

from ...control.kubestate import public
from ...model import kubeschema, objmeta, ssa
from ...model.kubeerrors import (
    KubeError,
    bad_request,
    method_not_allowed,
    not_found,
    unknown_path,
)
from ...model.selectors import Matcher, field_selector, label_selector, selector_text
from . import tables
from .resources import Obj, Resource, Scope
from .watch import watch
from .wire import delete_options, json_response, patched, read_body


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
    if t.res.read is not None:  # computed when asked (metrics.k8s.io): nothing to watch
        if _flag(request, "watch"):
            raise method_not_allowed("GET")
        objs = [o for o in await t.res.read(s, t.ns, None) if match(o)]
        return json_response(_view(request, t.res, objs, "", single=False))
    if _flag(request, "watch"):
        return await watch(request, s.state, s.cluster, t.res, t.ns, match)
    rv = str(s.state.current_rv)
    objs = [public(o) for o in s.state.list(s.cluster, t.res.plural, t.ns) if match(o)]
    return json_response(_view(request, t.res, objs, rv, single=False))


async def get(request: web.Request, s: Scope, t: Target) -> web.StreamResponse:
    if t.res.read is not None:
        found = await t.res.read(s, s.ns, t.name or "")
        if not found or t.sub is not None:
            raise not_found(f"{t.res.plural}.{t.res.group}", t.name or "")
        return json_response(_view(request, t.res, found[:1], "", single=True))
    obj = public(s.state.get(s.cluster, t.res.plural, s.ns, t.name or ""))
    return json_response(_view(request, t.res, [obj], obj["metadata"]["resourceVersion"],
                               single=True))


def dry_run(request: web.Request) -> bool:
    """dryRun=All (the only value the apiserver takes): checked and answered, not written."""
    values = request.query.getall("dryRun", [])
    if any(v != "All" for v in values):
        raise bad_request(f'Invalid dryRun value: {values[0][:40]!r}: supported values: "All"'
                          if values else "")
    return bool(values)


def _suffix() -> str:
    return "".join(secrets.choice(objmeta.NAME_ALPHABET) for _ in range(objmeta.SUFFIX_LEN))


def _read_only(t: Target, method: str) -> None:
    if t.res.read_only:
        raise method_not_allowed(method)


def _schema(res: Resource) -> kubeschema.Schema | None:
    return kubeschema.kind_schema(res.group, res.version, res.kind)


def _mode(request: web.Request) -> str:
    return kubeschema.directive(request.query.getall("fieldValidation", []))


def _warned(response: web.Response, warnings: list[str]) -> web.Response:
    """Warnings as the apiserver sends them: a `Warning: 299 - "text"` header each."""
    for text in warnings:
        quoted = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
        response.headers.add("Warning", f'299 - "{quoted[:1000]}"')
    return response


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _track(request: web.Request, res: Resource, schema: kubeschema.Schema | None,
           old: Obj | None, new: Any, sub: str = "") -> None:
    """The managedFields a write leaves on `new` (its manager: the request's fieldManager,
    else its User-Agent's program), set on it before the write."""
    meta = new.get("metadata") if isinstance(new, dict) else None
    if not isinstance(meta, dict):
        return  # refused by the write's own checks
    manager = ssa.manager_name(request.query.get("fieldManager"),
                               request.headers.get("User-Agent", ""))
    meta["managedFields"] = ssa.updated(old, new, schema, manager, res.api_version, _now(),
                                        sub, res.rule.status)


def _create(s: Scope, t: Target, body: Any) -> Obj:
    if t.res.create is not None:
        return t.res.create(s, body)
    if t.res.generic:
        return s.objects.create(s.cluster, t.res.plural, s.ns, body, s.dry_run)
    raise method_not_allowed("POST")


def _replace(s: Scope, t: Target, name: str, new: Obj) -> Obj:
    if t.res.replace is not None:
        return t.res.replace(s, name, new)
    if t.res.generic:
        return s.objects.update(s.cluster, t.res.plural, s.ns, name, new, None, s.dry_run)
    raise method_not_allowed("PUT")


async def create(request: web.Request, s: Scope, t: Target) -> web.StreamResponse:
    _read_only(t, "POST")
    schema = _schema(t.res)
    body, warnings = kubeschema.checked_body(await read_body(request), schema, t.res.kind,
                                             t.res.version, _mode(request),
                                             "yaml" in request.content_type)
    objmeta.assign_name(body, _suffix())
    _track(request, t.res, schema, None, body)
    s = with_changes(s, dry_run=dry_run(request))
    return _warned(json_response(public(_create(s, t, body)), status=201), warnings)


async def delete(request: web.Request, s: Scope, t: Target) -> web.StreamResponse:
    _read_only(t, "DELETE")
    opts = await delete_options(request, dry_run(request))
    s = with_changes(s, dry_run=opts.dry_run)
    if t.res.delete is not None:
        obj = t.res.delete(s, t.name or "", opts)
    elif t.res.generic:
        obj = s.objects.delete(s.cluster, t.res.plural, s.ns, t.name or "", opts)
    else:
        raise method_not_allowed("DELETE")
    return json_response(public(obj))


async def delete_collection(request: web.Request, s: Scope, t: Target) -> web.StreamResponse:
    """DELETE on a collection: every object the selectors match, each as its own DELETE."""
    _read_only(t, "DELETE")
    if not t.res.generic and t.res.delete is None:
        raise method_not_allowed("DELETE")
    match = _matcher(request, t.res)
    opts = await delete_options(request, dry_run(request))
    s = with_changes(s, dry_run=opts.dry_run)
    done = []
    for obj in s.state.list(s.cluster, t.res.plural, t.ns):
        if not match(obj):
            continue
        ns, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
        one = with_changes(s, ns=ns)
        if t.res.delete is not None:
            done.append(public(t.res.delete(one, name, opts)))
        else:
            done.append(public(s.objects.delete(s.cluster, t.res.plural, ns, name, opts)))
    return json_response({"kind": f"{t.res.kind}List", "apiVersion": t.res.api_version,
                          "metadata": {"resourceVersion": str(s.state.current_rv)},
                          "items": done})


async def _new_version(request: web.Request, old: Obj, res: Resource,
                       schema: kubeschema.Schema | None,
                       kind: tuple[str, str] | None = None) -> tuple[Obj, list[str]]:
    """The whole object a PUT gives, or a PATCH makes of the stored one, checked against
    the kind's schema as fieldValidation asks; and the warnings to send with the answer."""
    body = await read_body(request)
    mode = _mode(request)
    if request.method == "PUT":
        named, version = kind or (res.kind, res.version)
        new, warnings = kubeschema.checked_body(body, schema, named, version, mode,
                                                "yaml" in request.content_type)
    else:
        new = patched(request.content_type, old, body, schema)
        new, warnings = kubeschema.checked_patch(body, old, new, schema, mode)
    if not isinstance(new, dict):
        raise bad_request("the patched object is not an object")
    return new, warnings


async def update(request: web.Request, s: Scope, t: Target) -> web.StreamResponse:
    _read_only(t, request.method)
    s = with_changes(s, dry_run=dry_run(request))
    name = t.name or ""
    if request.method == "PATCH" and request.content_type == ssa.CONTENT_TYPE:
        return await _apply(request, s, t, name)
    ssa.apply_manager(None, request.method == "PATCH" and _flag(request, "force"), False)
    old = public(s.state.get(s.cluster, t.res.plural, s.ns, name))
    schema = _schema(t.res)
    new, warnings = await _new_version(request, old, t.res, schema)
    _track(request, t.res, schema, old, new)
    return _warned(json_response(public(_replace(s, t, name, new))), warnings)


async def _apply(request: web.Request, s: Scope, t: Target, name: str) -> web.StreamResponse:
    """Server-side apply (kubectl apply --server-side): the configuration merged into the
    object by model/ssa.py, or the object made from it if there is none."""
    res, force = t.res, _flag(request, "force")
    manager = ssa.apply_manager(request.query.get("fieldManager"), force, True) or ""
    schema = _schema(res)
    applied, warnings = ssa.checked_apply(await read_body(request), schema, res.group,
                                          res.version, res.kind, name, _mode(request))
    try:
        old: Obj | None = public(s.state.get(s.cluster, res.plural, s.ns, name))
    except KubeError as err:
        if err.code != 404:
            raise
        old = None
    obj = ssa.apply(old, applied, schema, manager, force, res.api_version, _now(),
                    res.rule.status)
    if old is None:
        obj["metadata"]["name"] = name
        return _warned(json_response(public(_create(s, t, obj)), status=201), warnings)
    return _warned(json_response(public(_replace(s, t, name, obj))), warnings)


async def update_status(request: web.Request, s: Scope, t: Target) -> web.StreamResponse:
    """PUT or PATCH of .../status: only the status changes (kinds written generically)."""
    s = with_changes(s, dry_run=dry_run(request))
    name = t.name or ""
    old = public(s.state.get(s.cluster, t.res.plural, s.ns, name))
    schema = _schema(t.res)
    new, warnings = await _new_version(request, old, t.res, schema)
    _track(request, t.res, schema, old, new, "status")
    obj = s.objects.update(s.cluster, t.res.plural, s.ns, name, new, "status", s.dry_run)
    return _warned(json_response(public(obj)), warnings)


def _scale(res: Resource, obj: Obj) -> Obj:
    """The autoscaling/v1 Scale of an object with replicas."""
    meta = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    sel = spec.get("selector")
    text = selector_text(sel) if isinstance(sel, dict) else ""
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                              "creationTimestamp") if k in meta},
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {"replicas": status.get("replicas", 0), "selector": text}}


async def scale(request: web.Request, s: Scope, t: Target) -> web.StreamResponse:
    """GET, PUT or PATCH of .../scale (kubectl scale): spec.replicas through a Scale."""
    if not t.res.rule.scale:
        raise unknown_path()
    name = t.name or ""
    obj = public(s.state.get(s.cluster, t.res.plural, s.ns, name))
    if request.method == "GET":
        return json_response(_scale(t.res, obj))
    if request.method not in ("PUT", "PATCH"):
        raise method_not_allowed(request.method)
    s = with_changes(s, dry_run=dry_run(request))
    new, warnings = await _new_version(request, _scale(t.res, obj), t.res,
                                       kubeschema.kind_schema("autoscaling", "v1", "Scale"),
                                       ("Scale", "v1"))
    replicas = (new.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise KubeError(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: '
                        "spec.replicas: Invalid value: must be greater than or equal to 0",
                        {"name": name, "kind": "Scale", "causes": [{
                            "reason": "FieldValueInvalid", "field": "spec.replicas",
                            "message": "Invalid value: must be greater than or equal to 0"}]})
    rv = (new.get("metadata") or {}).get("resourceVersion")
    changed = copy.deepcopy(obj)
    changed.setdefault("spec", {})["replicas"] = replicas
    changed["metadata"]["resourceVersion"] = rv or obj["metadata"]["resourceVersion"]
    _track(request, t.res, _schema(t.res), obj, changed, "scale")
    out = s.objects.update(s.cluster, t.res.plural, s.ns, name, changed, None, s.dry_run)
    return _warned(json_response(_scale(t.res, public(out))), warnings)


COLLECTION: dict[str, Verb] = {"GET": list_or_watch, "POST": create,
                               "DELETE": delete_collection}
OBJECT: dict[str, Verb] = {"GET": get, "DELETE": delete, "PUT": update, "PATCH": update}
STATUS: dict[str, Verb] = {"GET": get, "PUT": update_status, "PATCH": update_status}
SCALE: dict[str, Verb] = {"GET": scale, "PUT": scale, "PATCH": scale}


def verb(t: Target, method: str) -> Verb:
    """The verb a method means on what the URL names; 404 for an unknown subresource, 405
    for a method it does not take."""
    if t.name is None:
        verbs = COLLECTION
    elif t.sub is None:
        verbs = OBJECT
    elif t.sub == "status":
        verbs = STATUS if t.res.generic else {"GET": get}  # others' status is control's
    elif t.sub == "scale" and t.res.rule.scale:
        verbs = SCALE
    elif t.sub in t.res.streams:
        stream = t.res.streams[t.sub]

        async def streamed(request: web.Request, s: Scope, t: Target) -> web.StreamResponse:
            return await stream(request, s, t.name or "")
        return streamed  # the stream's handler refuses the methods it does not take
    else:
        raise unknown_path()
    found = verbs.get(method)
    if found is None:
        raise method_not_allowed(method)
    return found
