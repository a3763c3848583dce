"""The OpenAPI documents kubectl reads: v3's index (/openapi/v3) and one document per
group-version (/openapi/v3/api/v1, /openapi/v3/apis/apps/v1...), built from resources.py's
table (which kinds are served, with which verbs) and model/kubeschema.py's definitions.

kubectl uses them three ways: `kubectl apply` and `create` leave validation to the server
when a kind's PATCH operation lists the `fieldValidation` parameter (else it validates
client-side, from OpenAPI v2); `kubectl apply` builds its strategic merge patches from the
definitions' x-kubernetes-patch-* extensions when the PATCH operation takes
application/strategic-merge-patch+json; `kubectl explain` walks the definitions from the one
whose x-kubernetes-group-version-kind names the kind."""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from ...model import kubeschema
from .resources import RESOURCES, Resource

Doc = dict[str, Any]
_V3_REF = "#/components/schemas/"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json",
               "application/merge-patch+json", "application/strategic-merge-patch+json")


def group_versions() -> list[tuple[str, str]]:
    """The group-versions served with at least one kind Kubernetes defines (metrics.k8s.io's
    are aggregated upstream, with no OpenAPI of the apiserver's)."""
    out: list[tuple[str, str]] = []
    for r in RESOURCES:
        if (r.group, r.version) not in out and kubeschema.kind_definition(
                r.group, r.version, r.kind):
            out.append((r.group, r.version))
    return out


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def root(prefix: str) -> Doc:
    """The index: each group-version's document, with a hash of its content (clients cache
    a document by its URL, so the hash changes whenever the document does)."""
    return {"paths": {gv_path(g, v): {"serverRelativeURL":
                                       f"{prefix}/openapi/v3/{gv_path(g, v)}?hash={_hash(g, v)}"}
                      for g, v in group_versions()}}


@functools.cache
def _hash(group: str, version: str) -> str:
    return hashlib.sha512(_encoded(group, version)).hexdigest().upper()


@functools.cache
def _encoded(group: str, version: str) -> bytes:
    return json.dumps(_build(group, version), sort_keys=True).encode()


def document(path: str) -> bytes | None:
    """The encoded v3 document of 'api/v1' or 'apis/GROUP/VERSION'; None if none is served."""
    for g, v in group_versions():
        if gv_path(g, v) == path.strip("/"):
            return _encoded(g, v)
    return None


# ---- the definitions, as OpenAPI v3 components
def _v3(schema: Any, prop: str = "") -> Any:
    """A JSON-schema definition as the apiserver's v3 has it: non-nullable types, refs into
    components (wrapped in allOf when the property says more than the ref, as upstream's)."""
    if isinstance(schema, list):
        return [_v3(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            if kinds:
                out["type"] = kinds[0]
        elif key == "enum" and prop in ("apiVersion", "kind"):
            continue  # the definitions' file adds these; the apiserver's have none
        elif key == "properties" and isinstance(value, dict):
            out[key] = {k: _v3(v, k) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "oneOf", "allOf", "anyOf", "not"):
            out[key] = _v3(value)
        elif key == "$ref" and isinstance(value, str):
            out[key] = _V3_REF + value.rsplit("/", 1)[-1]
        else:
            out[key] = value
    if "$ref" in out and len(out) > 1:
        out = {"allOf": [{"$ref": out.pop("$ref")}], **out}
    return out


def _refs(schema: Any) -> set[str]:
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    found.add(value.rsplit("/", 1)[-1])
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _closure(names: set[str]) -> set[str]:
    defs = kubeschema.definitions()
    seen: set[str] = set()
    todo = [n for n in names if n in defs]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(n for n in _refs(defs[name]) if n in defs and n not in seen)
    return seen


# ---- paths and operations
def _param(name: str, where: str, description: str, schema: Doc,
           required: bool = False) -> Doc:
    return {"name": name, "in": where, "description": description, "schema": schema,
            **({"required": True} if required else {})}


_STR = {"type": "string", "uniqueItems": True}
_BOOL = {"type": "boolean", "uniqueItems": True}
_DRY_RUN = _param("dryRun", "query", "When present, indicates that modifications should not "
                  "be persisted. Valid values are: - All: all dry run stages will be "
                  "processed", _STR)
_FIELD_MANAGER = _param("fieldManager", "query", "fieldManager is a name associated with the "
                        "actor or entity that is making these changes.", _STR)
_FIELD_VALIDATION = _param(
    "fieldValidation", "query", "fieldValidation instructs the server on how to handle "
    "objects in the request containing unknown or duplicate fields. Valid values are: "
    "- Ignore, - Warn (the default), - Strict", _STR)
_FORCE = _param("force", "query", "Force is going to \"force\" Apply requests. It means user "
                "will re-acquire conflicting fields owned by other people. Force flag must be "
                "unset for non-apply patch requests.", _BOOL)
_LIST = [_param(n, "query", d, s) for n, d, s in (
    ("labelSelector", "A selector to restrict the list of returned objects by their labels.",
     _STR),
    ("fieldSelector", "A selector to restrict the list of returned objects by their fields.",
     _STR),
    ("limit", "limit is a maximum number of responses to return for a list call.",
     {"type": "integer", "uniqueItems": True}),
    ("resourceVersion", "resourceVersion sets a constraint on what resource versions a "
     "request may be served from.", _STR),
    ("timeoutSeconds", "Timeout for the list/watch call.",
     {"type": "integer", "uniqueItems": True}),
    ("watch", "Watch for changes to the described resources and return them as a stream "
     "of add, update, and remove notifications.", _BOOL),
    ("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type "
     "\"BOOKMARK\".", _BOOL),
)]
_DELETE = [_DRY_RUN, *(_param(n, "query", d, s) for n, d, s in (
    ("gracePeriodSeconds", "The duration in seconds before the object should be deleted.",
     {"type": "integer", "uniqueItems": True}),
    ("propagationPolicy", "Whether and how garbage collection will be performed: Orphan, "
     "Background or Foreground.", _STR),
))]


def _content(ref: str, types: tuple[str, ...] = ("application/json", "application/yaml",
                                                    "application/vnd.kubernetes.protobuf")
             ) -> Doc:
    return {t: {"schema": {"$ref": _V3_REF + ref}} for t in types}


def _op(action: str, op_id: str, description: str, gvk: Doc, params: list[Doc],
        responses: dict[str, str], body: tuple[str, tuple[str, ...]] | None = None) -> Doc:
    tag, _, name = op_id.partition(" ")
    op: Doc = {"tags": [tag], "description": description, "operationId": name,
               "parameters": params,
               "responses": {code: {"description": what, "content": _content(ref)}
                             for code, (what, ref) in (
                                 (c, r.split("|")) for c, r in responses.items())},
               "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk}
    op["responses"]["401"] = {"description": "Unauthorized"}
    if body is not None:
        ref, types = body
        op["requestBody"] = {"content": {t: {"schema": {"$ref": _V3_REF + ref}}
                                         for t in types}, "required": True}
    return op


def _camel(text: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in text.replace(".", "-").split("-") if p)


def _paths(r: Resource, kind_def: str) -> tuple[dict[str, Doc], set[str]]:
    """The paths of one resource and the definitions they name."""
    group, version = r.group, r.version
    gvk = {"group": group, "version": version, "kind": r.kind}
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    tag = f"{_camel(group.split('.')[0]) if group else 'Core'}{_camel(version)}"
    tag_name = f"{group.split('.')[0] if group else 'core'}_{version}"
    ns = "Namespaced" if r.namespaced else ""
    list_def = kind_def + "List"
    status, delete_opts = _META + "Status", _META + "DeleteOptions"
    names = {kind_def, status, delete_opts, _META + "Patch"}
    if list_def in kubeschema.definitions():
        names.add(list_def)
    verbs = set(r.verbs)
    coll = f"{base}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else \
        f"{base}/{r.plural}"
    one = f"{coll}/{{name}}"
    ns_params = [_param("namespace", "path", "object name and auth scope, such as for teams "
                        "and projects", {"type": "string", "uniqueItems": True}, True)] \
        if r.namespaced else []
    name_param = [_param("name", "path", f"name of the {r.kind}",
                         {"type": "string", "uniqueItems": True}, True)]
    paths: dict[str, Doc] = {}

    def oid(verb: str, suffix: str = "") -> str:
        return f"{tag_name} {verb}{tag}{ns}{r.kind}{suffix}"

    item: Doc = {"parameters": ns_params}
    if "list" in verbs:
        item["get"] = _op("list", oid("list"), f"list or watch objects of kind {r.kind}", gvk,
                          _LIST, {"200": f"OK|{list_def}"})
    if "create" in verbs:
        item["post"] = _op("post", oid("create"), f"create a {r.kind}", gvk,
                           [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION],
                           {"200": f"OK|{kind_def}", "201": f"Created|{kind_def}",
                            "202": f"Accepted|{kind_def}"},
                           (kind_def, ("*/*",)))
    if "deletecollection" in verbs:
        item["delete"] = _op("deletecollection", oid("deleteCollection"),
                             f"delete collection of {r.kind}", gvk, [*_DELETE, *_LIST],
                             {"200": f"OK|{status}"})
    paths[coll] = item
    obj: Doc = {"parameters": [*name_param, *ns_params]}
    if "get" in verbs:
        obj["get"] = _op("get", oid("read"), f"read the specified {r.kind}", gvk, [],
                         {"200": f"OK|{kind_def}"})
    if "update" in verbs:
        obj["put"] = _op("put", oid("replace"), f"replace the specified {r.kind}", gvk,
                         [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION],
                         {"200": f"OK|{kind_def}", "201": f"Created|{kind_def}"},
                         (kind_def, ("*/*",)))
    if "patch" in verbs:
        obj["patch"] = _op("patch", oid("patch"), f"partially update the specified {r.kind}",
                           gvk, [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION, _FORCE],
                           {"200": f"OK|{kind_def}", "201": f"Created|{kind_def}"},
                           (_META + "Patch", PATCH_TYPES))
    if "delete" in verbs:
        obj["delete"] = _op("delete", oid("delete"), f"delete a {r.kind}", gvk, _DELETE,
                            {"200": f"OK|{status}", "202": f"Accepted|{status}"},
                            (delete_opts, ("*/*",)))
    paths[one] = obj
    if r.namespaced and "list" in verbs:
        paths[f"{base}/{r.plural}"] = {"get": _op(
            "list", oid("list", "ForAllNamespaces").replace(ns, "", 1),
            f"list or watch objects of kind {r.kind}", gvk, _LIST,
            {"200": f"OK|{list_def}"})}
    for sub in r.subresources:
        paths.update(_sub_paths(r, sub, one, [*name_param, *ns_params], kind_def, gvk,
                                oid, names))
    return paths, names


def _sub_paths(r: Resource, sub: str, one: str, params: list[Doc], kind_def: str, gvk: Doc,
               oid: Any, names: set[str]) -> dict[str, Doc]:
    if sub == "log":
        return {f"{one}/log": {"parameters": params, "get": {
            **_op("get", oid("read", "Log"), f"read log of the specified {r.kind}", gvk, [],
                  {}), "responses": {"200": {"description": "OK", "content": {
                      "text/plain": {"schema": {"type": "string"}}}}}}}}
    if sub not in ("status", "scale"):
        return {}
    if sub == "scale":
        kind_def = "io.k8s.api.autoscaling.v1.Scale"
        gvk = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
        names.add(kind_def)
    title = sub.capitalize()
    writable = r.generic
    item: Doc = {"parameters": params,
                 "get": _op("get", oid("read", title), f"read {sub} of the specified "
                            f"{r.kind}", gvk, [], {"200": f"OK|{kind_def}"})}
    if writable:
        item["put"] = _op("put", oid("replace", title), f"replace {sub} of the specified "
                          f"{r.kind}", gvk, [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION],
                          {"200": f"OK|{kind_def}", "201": f"Created|{kind_def}"},
                          (kind_def, ("*/*",)))
        item["patch"] = _op("patch", oid("patch", title), f"partially update {sub} of the "
                            f"specified {r.kind}", gvk,
                            [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION, _FORCE],
                            {"200": f"OK|{kind_def}", "201": f"Created|{kind_def}"},
                            (_META + "Patch", PATCH_TYPES[1:]))
    return {f"{one}/{sub}": item}


def _build(group: str, version: str) -> Doc:
    paths: dict[str, Doc] = {}
    names: set[str] = set()
    for r in RESOURCES:
        if (r.group, r.version) != (group, version):
            continue
        kind_def = kubeschema.kind_definition(r.group, r.version, r.kind)
        if kind_def is None:
            continue  # a kind Kubernetes does not define has no document
        more, used = _paths(r, kind_def)
        paths.update(more)
        names |= used
    defs = kubeschema.definitions()
    schemas = {n: _v3(defs[n]) for n in sorted(_closure(names))}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": paths, "components": {"schemas": schemas,
                                           "securitySchemes": {"BearerToken": {
                                               "type": "apiKey", "name": "authorization",
                                               "in": "header",
                                               "description": "Bearer Token authentication"}}},
            "security": [{"BearerToken": []}]}


# ---- OpenAPI v2: kubectl reads it (as protobuf) to validate a `kind: List` client-side,
# and falls back to it for a kind v3 does not describe.
V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"  # asked for
V2_PROTOBUF_SENT = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"  # a MIME type
_V2_REF = "#/definitions/"


def _v2_schema(schema: Any, prop: str = "") -> Any:
    """A JSON-schema definition as swagger 2.0 has it (the oneOf scalars as the apiserver's
    v2 writes them: IntOrString a string of format int-or-string, Quantity a string)."""
    if isinstance(schema, list):
        return [_v2_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            if kinds:
                out["type"] = kinds[0]
        elif key == "enum" and prop in ("apiVersion", "kind"):
            continue
        elif key == "oneOf":
            alts = kubeschema.one_of(schema)
            out["type"] = "string"
            if "integer" in alts:
                out["format"] = "int-or-string"
        elif key == "properties" and isinstance(value, dict):
            out[key] = {k: _v2_schema(v, k) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "allOf"):
            out[key] = _v2_schema(value)
        elif key == "$ref" and isinstance(value, str):
            out[key] = _V2_REF + value.rsplit("/", 1)[-1]
        else:
            out[key] = value
    return out


def _v2_op(op: Doc) -> Doc:
    params = []
    for p in op.get("parameters") or []:
        params.append({"name": p["name"], "in": p["in"], "description": p["description"],
                       "type": p["schema"]["type"], "uniqueItems": True,
                       **({"required": True} if p.get("required") else {})})
    out: Doc = {"description": op["description"], "operationId": op["operationId"],
                "tags": op["tags"], "produces": ["application/json", "application/yaml",
                                                 "application/vnd.kubernetes.protobuf"],
                "schemes": ["https"]}
    body = op.get("requestBody")
    if body:
        content = body["content"]
        ref = next(iter(content.values()))["schema"]["$ref"].rsplit("/", 1)[-1]
        out["consumes"] = list(content)
        params.append({"name": "body", "in": "body", "required": True,
                       "schema": {"$ref": _V2_REF + ref}})
    out["parameters"] = params
    responses: Doc = {}
    for code, r in op["responses"].items():
        item: Doc = {"description": r["description"]}
        for c in (r.get("content") or {}).values():
            s = c["schema"]
            item["schema"] = {"$ref": _V2_REF + s["$ref"].rsplit("/", 1)[-1]} \
                if "$ref" in s else s
            break
        responses[code] = item
    out["responses"] = responses
    out.update({k: v for k, v in op.items() if k.startswith("x-")})
    return out


@functools.cache
def v2_document() -> Doc:
    paths: dict[str, Doc] = {}
    names: set[str] = set()
    for r in RESOURCES:
        kind_def = kubeschema.kind_definition(r.group, r.version, r.kind)
        if kind_def is None:
            continue
        more, used = _paths(r, kind_def)
        names |= used
        for path, item in more.items():
            v2: Doc = {}
            for key, value in item.items():
                if key == "parameters":
                    v2[key] = _v2_op({"parameters": value, "description": "",
                                      "operationId": "", "tags": [],
                                      "responses": {}})["parameters"]
                else:
                    v2[key] = _v2_op(value)
            paths[path] = v2
    defs = kubeschema.definitions()
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": paths,
            "definitions": {n: _v2_schema(defs[n]) for n in sorted(_closure(names))}}


@functools.cache
def v2_json() -> bytes:
    return json.dumps(v2_document(), sort_keys=True).encode()


# -- the protobuf form: gnostic's openapi_v2.Document, which kubectl decodes
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _s(num: int, text: Any) -> bytes:
    return _len(num, str(text).encode()) if text not in (None, "") else b""


def _b(num: int, flag: Any) -> bytes:
    return _varint(num << 3) + b"\x01" if flag else b""


def _any(num: int, value: Any) -> bytes:
    return _len(num, _s(2, json.dumps(value, sort_keys=True)))  # JSON is YAML


def _extensions(num: int, node: Doc) -> bytes:
    return b"".join(_len(num, _s(1, k) + _any(2, v)) for k, v in node.items()
                    if k.startswith("x-"))


def _pb_schema(s: Doc) -> bytes:
    out = _s(1, s.get("$ref")) + _s(2, s.get("format")) + _s(3, s.get("title"))
    out += _s(4, s.get("description"))
    if "default" in s:
        out += _any(5, s["default"])
    out += _b(16, s.get("uniqueItems"))
    out += b"".join(_s(19, r) for r in s.get("required") or ())
    out += b"".join(_any(20, e) for e in s.get("enum") or ())
    extra = s.get("additionalProperties")
    if isinstance(extra, dict):
        out += _len(21, _len(1, _pb_schema(extra)))
    elif isinstance(extra, bool):
        out += _len(21, _varint(2 << 3) + (b"\x01" if extra else b"\x00"))
    if s.get("type"):
        out += _len(22, _s(1, s["type"]))
    items = s.get("items")
    if isinstance(items, dict):
        out += _len(23, _len(1, _pb_schema(items)))
    out += b"".join(_len(24, _pb_schema(a)) for a in s.get("allOf") or ())
    props = s.get("properties")
    if isinstance(props, dict):
        out += _len(25, b"".join(_len(1, _s(1, k) + _len(2, _pb_schema(v)))
                                 for k, v in props.items()))
    out += _b(27, s.get("readOnly"))
    return out + _extensions(31, s)


def _pb_parameter(p: Doc) -> bytes:
    if p["in"] == "body":
        body = _s(1, p.get("description")) + _s(2, p["name"]) + _s(3, "body") + \
            _b(4, p.get("required")) + _len(5, _pb_schema(p["schema"]))
        param = _len(1, body)
    else:
        common = _b(1, p.get("required")) + _s(2, p["in"]) + _s(3, p.get("description")) + \
            _s(4, p["name"])
        if p["in"] == "path":
            sub = _len(4, common + _s(5, p.get("type")) + _b(19, p.get("uniqueItems")))
        else:
            sub = _len(3, common + _s(6, p.get("type")) + _b(20, p.get("uniqueItems")))
        param = _len(2, sub)
    return _len(1, param)  # ParametersItem.parameter


def _pb_operation(op: Doc) -> bytes:
    out = b"".join(_s(1, t) for t in op.get("tags") or ())
    out += _s(3, op.get("description")) + _s(5, op.get("operationId"))
    out += b"".join(_s(6, t) for t in op.get("produces") or ())
    out += b"".join(_s(7, t) for t in op.get("consumes") or ())
    out += b"".join(_len(8, _pb_parameter(p)) for p in op.get("parameters") or ())
    codes = b""
    for code, r in (op.get("responses") or {}).items():
        resp = _s(1, r.get("description"))
        if "schema" in r:
            resp += _len(2, _len(1, _pb_schema(r["schema"])))
        codes += _len(1, _s(1, code) + _len(2, _len(1, resp)))
    out += _len(9, codes)
    out += b"".join(_s(10, t) for t in op.get("schemes") or ())
    return out + _extensions(13, op)


_PATH_OPS = {"get": 2, "put": 3, "post": 4, "delete": 5, "patch": 8}


@functools.cache
def v2_protobuf() -> bytes:
    doc = v2_document()
    paths = b""
    for path, item in doc["paths"].items():
        body = b"".join(_len(num, _pb_operation(item[verb]))
                        for verb, num in _PATH_OPS.items() if verb in item)
        body += b"".join(_len(9, _pb_parameter(p)) for p in item.get("parameters") or ())
        paths += _len(2, _s(1, path) + _len(2, body))
    definitions = b"".join(_len(1, _s(1, name) + _len(2, _pb_schema(s)))
                           for name, s in doc["definitions"].items())
    info = _s(1, doc["info"]["title"]) + _s(2, doc["info"]["version"])
    return _s(1, "2.0") + _len(2, info) + _len(8, paths) + _len(9, definitions)
