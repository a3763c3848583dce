"""The AWS query protocol as Elastic Load Balancing (v2) speaks it: a form of `Action=...`
with botocore's serialization (lists as Name.member.N, maps as Name.entry.N.key/value) in,
`<XResponse><XResult>` XML out, `<ErrorResponse><Error><Type>` for errors. EC2's dialect of
the same protocol is api/ec2query.py; which one a request is for follows from its signature's
scope (or, unsigned, its Version)."""

from __future__ import annotations

import datetime
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

from ..model.errors import ApiError
from . import body, shapes
from .auth import authenticate, permit
from .body import BodyError
from .ec2query import parse_form
from .errors import SERVER_FAULTS, HttpError

log = logging.getLogger("fargo.api")
SERVICE = "elbv2"  # botocore's name
SIGNING = "elasticloadbalancing"  # the SigV4 scope's service
VERSION = "2015-12-01"
XMLNS = f"http://elasticloadbalancing.amazonaws.com/doc/{VERSION}/"
MAX_INDEX = 100_000  # list positions past this are not a real request's
_SCOPE = re.compile(r"Credential=[^/,\s]*/[^/,\s]*/[^/,\s]*/([^/,\s]*)/")
_INT = re.compile(r"^-?[0-9]{1,20}$")

# handler(params): the parameters as the input shape names them, with the shape's types;
# answers with an object of the output shape.
Handler = Callable[[dict[str, Any]], dict[str, Any]]


def invalid(message: str) -> ApiError:
    return ApiError(message, code="ValidationError")


# ---- which face
async def addressed(request: web.Request) -> bool:
    """Whether a query-protocol request is for ELBv2: its signature is scoped to
    elasticloadbalancing, or an unsigned one says Version=2015-12-01."""
    found = _SCOPE.search(request.headers.get("Authorization", ""))
    if found:
        return found.group(1) == SIGNING
    if request.query.get("Version") == VERSION:
        return True
    if request.method != "POST":
        return False
    try:
        sent = body.decoded(request, await body.read(request))  # aiohttp keeps the body
        return parse_form(sent).get("Version") == VERSION
    except (BodyError, ApiError):
        return False


# ---- the form, read against the input shape
class _Node:
    __slots__ = ("value", "children")

    def __init__(self) -> None:
        self.value: str | None = None
        self.children: dict[str, _Node] = {}


def _tree(form: dict[str, str]) -> _Node:
    root = _Node()
    for key, value in form.items():
        node = root
        for part in key.split("."):
            node = node.children.setdefault(part, _Node())
        node.value = value
    return root


def _unknown(path: str) -> ApiError:
    return invalid(f"The parameter '{path[:200]}' is not recognized")


def _read(shape: Shape, node: _Node, path: str) -> Any:
    if isinstance(shape, StructureShape):
        if node.value:
            raise invalid(f"The parameter '{path}' must be given by its members ({path}.Name)")
        out: dict[str, Any] = {}
        wire = {m.serialization.get("name", n): (n, m) for n, m in shape.members.items()}
        for key, child in node.children.items():
            if key not in wire:
                raise _unknown(f"{path}.{key}" if path else key)
            name, member = wire[key]
            out[name] = _read(member, child, f"{path}.{key}" if path else key)
        return out
    if isinstance(shape, ListShape):
        return _list(shape, node, path)
    if isinstance(shape, MapShape):
        return _map(shape, node, path)
    if node.children:
        raise _unknown(f"{path}.{next(iter(node.children))}")
    return _scalar(shape, node.value or "", path)


def _indexed(node: _Node, path: str) -> list[_Node]:
    items = []
    for key, child in node.children.items():
        if not re.fullmatch(r"[1-9][0-9]{0,5}", key) or int(key) > MAX_INDEX:
            raise _unknown(f"{path}.{key}")
        items.append((int(key), child))
    return [child for _, child in sorted(items, key=lambda x: x[0])]


def _list(shape: ListShape, node: _Node, path: str) -> list[Any]:
    if not node.children:
        if node.value:
            raise invalid(f"The parameter '{path}' must be given as {path}.member.N")
        return []  # the query protocol's empty list: "Name="
    if shape.serialization.get("flattened"):
        children, at = _indexed(node, path), path
    else:
        tag = shape.member.serialization.get("name", "member")
        if set(node.children) != {tag}:
            bad = next(k for k in node.children if k != tag)
            raise _unknown(f"{path}.{bad}")
        children, at = _indexed(node.children[tag], f"{path}.{tag}"), f"{path}.{tag}"
    return [_read(shape.member, child, f"{at}.{i + 1}") for i, child in enumerate(children)]


def _map(shape: MapShape, node: _Node, path: str) -> dict[str, Any]:
    if not node.children:
        return {}
    if shape.serialization.get("flattened"):
        entries, at = node, path
    else:
        if set(node.children) != {"entry"}:
            raise _unknown(f"{path}.{next(k for k in node.children if k != 'entry')}")
        entries, at = node.children["entry"], f"{path}.entry"
    key_tag = shape.key.serialization.get("name", "key")
    value_tag = shape.value.serialization.get("name", "value")
    out: dict[str, Any] = {}
    for i, entry in enumerate(_indexed(entries, at)):
        key, value = entry.children.get(key_tag), entry.children.get(value_tag)
        if key is None or value is None or set(entry.children) - {key_tag, value_tag}:
            raise invalid(f"Each entry of '{path}' needs a {key_tag} and a {value_tag}")
        out[str(_read(shape.key, key, f"{at}.{i + 1}.{key_tag}"))] = \
            _read(shape.value, value, f"{at}.{i + 1}.{value_tag}")
    return out


def _scalar(shape: Shape, text: str, path: str) -> Any:
    kind = shape.type_name
    if kind in ("integer", "long"):
        if not _INT.match(text):
            raise invalid(f"Invalid value for parameter {path}: '{text[:64]}' is not an "
                          "integer")
        return int(text)
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise invalid(f"Invalid value for parameter {path}: '{text[:64]}' is not a "
                          "boolean")
        return text.lower() == "true"
    if kind in ("float", "double"):
        try:
            return float(text)
        except ValueError:
            raise invalid(f"Invalid value for parameter {path}: '{text[:64]}' is not a "
                          "number") from None
    if kind in ("timestamp", "blob"):
        raise invalid(f"The parameter '{path}' is not recognized")  # no input of fargo's
    return text


def parse(op: OperationModel, form: dict[str, str]) -> dict[str, Any]:
    """The form's parameters as the operation's input shape names and types them; a key the
    shape does not have is refused by name."""
    form = {k: v for k, v in form.items() if k not in ("Action", "Version")}
    if op.input_shape is None:
        if form:
            raise _unknown(next(iter(form)))
        return {}
    params = _read(op.input_shape, _tree(form), "")
    shapes.validate(op, params, "ValidationError", "ValidationError")
    _constraints(op.input_shape, params, "")
    return params


def _constraints(shape: Shape, value: Any, path: str) -> None:
    """What botocore's validator leaves to the service: enums and maximum lengths and
    values, in ELBv2's words."""
    meta = shape.metadata
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                _constraints(member, value[name], f"{path}.{name}" if path else name)
        return
    if isinstance(shape, ListShape) and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            raise invalid(f"1 validation error detected: Value at '{path}' failed to satisfy "
                          f"constraint: Member must have length less than or equal to "
                          f"{meta['max']}")
        for i, item in enumerate(value):
            _constraints(shape.member, item, f"{path}.{i + 1}")
        return
    if isinstance(shape, MapShape) and isinstance(value, dict):
        for key, item in value.items():
            _constraints(shape.value, item, f"{path}.{key}")
        return
    if isinstance(value, str):
        enum = meta.get("enum")
        if enum and value not in enum:
            raise invalid(f"1 validation error detected: Value '{value[:100]}' at '{path}' "
                          "failed to satisfy constraint: Member must satisfy enum value set: "
                          f"[{', '.join(enum)}]")
        if "max" in meta and len(value) > meta["max"]:
            raise invalid(f"1 validation error detected: Value at '{path}' failed to satisfy "
                          f"constraint: Member must have length less than or equal to "
                          f"{meta['max']}")
    elif isinstance(value, int) and not isinstance(value, bool):
        if "max" in meta and value > meta["max"]:
            raise invalid(f"1 validation error detected: Value '{value}' at '{path}' failed "
                          f"to satisfy constraint: Member must have value less than or equal "
                          f"to {meta['max']}")


# ---- XML out
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: str) -> str:
    return escape(_NOT_XML.sub("\ufffd", value))


def _stamp(value: Any) -> str:
    if isinstance(value, int | float):
        when = datetime.datetime.fromtimestamp(value, datetime.UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    return _text(str(value))


def _xml(shape: Shape, value: Any) -> str:
    if isinstance(shape, StructureShape):
        parts = []
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                tag = member.serialization.get("name", name)
                parts.append(f"<{tag}>{_xml(member, value[name])}</{tag}>")
        return "".join(parts)
    if isinstance(shape, ListShape):
        tag = shape.member.serialization.get("name", "member")
        return "".join(f"<{tag}>{_xml(shape.member, v)}</{tag}>" for v in value)
    if isinstance(shape, MapShape):
        return "".join(f"<entry><key>{_xml(shape.key, k)}</key><value>"
                       f"{_xml(shape.value, v)}</value></entry>" for k, v in value.items())
    if shape.type_name == "boolean":
        return "true" if value else "false"
    if shape.type_name == "timestamp":
        return _stamp(value)
    return _text(str(value))


def render(op: OperationModel, result: dict[str, Any]) -> web.Response:
    out = op.output_shape
    inner = _xml(out, result) if out is not None else ""
    wrapper = out.serialization.get("resultWrapper", f"{op.name}Result") if out is not None \
        else f"{op.name}Result"
    rid = str(uuid.uuid4())
    text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<{op.name}Response xmlns="{XMLNS}">'
            f"<{wrapper}>{inner}</{wrapper}><ResponseMetadata><RequestId>{rid}</RequestId>"
            f"</ResponseMetadata></{op.name}Response>")
    return web.Response(text=text, content_type="text/xml", headers={"x-amzn-RequestId": rid})


def _status(err: ApiError) -> int:
    if isinstance(err, HttpError):
        return err.status
    if err.code in SERVER_FAULTS:
        return 500
    for shape in shapes.service(SERVICE).error_shapes:
        meta = shape.metadata.get("error", {})
        if meta.get("code") == err.code:
            return int(meta.get("httpStatusCode", 400))
    return 400


def error_response(err: ApiError) -> web.Response:
    status = _status(err)
    rid = str(uuid.uuid4())
    kind = "Receiver" if status >= 500 else "Sender"
    text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="{XMLNS}"><Error>'
            f"<Type>{kind}</Type><Code>{_text(err.code)}</Code>"
            f"<Message>{_text(err.message)}</Message></Error><RequestId>{rid}</RequestId>"
            "</ErrorResponse>")
    return web.Response(text=text, status=status, content_type="text/xml",
                        headers={"x-amzn-RequestId": rid})


async def serve(request: web.Request, handlers: Mapping[str, Handler]) -> web.Response:
    """One ELBv2 request: the body within its limit, the signature, the form, the action
    and its parameters checked against botocore's shape, the handler, the answer."""
    try:
        sent = await body.read(request) if request.method == "POST" else b""
        authenticate(request, sent, SIGNING, "ec2")
        raw = body.decoded(request, sent) if request.method == "POST" else \
            request.raw_path.partition("?")[2].encode("utf-8", "surrogateescape")
        try:
            form = parse_form(raw)
        except ApiError as err:
            raise invalid(err.message) from None
        action = form.get("Action", "")
        version = form.get("Version")
        if version is not None and version != VERSION:
            raise ApiError(f"Version '{version[:40]}' is not served here: Elastic Load "
                           f"Balancing's is {VERSION}", code="InvalidAction")
        permit(request, action, "ec2")
        op = shapes.operation(SERVICE, action)
        if op is None:
            raise ApiError(f"The action '{action[:100]}' is not valid for this web service.",
                           code="InvalidAction")
        params = parse(op, form)
        handler = handlers.get(action)
        if handler is None:
            raise ApiError(f"{action} is not supported by fargo yet.", code="InvalidAction")
        return render(op, handler(params))
    except ApiError as err:
        return error_response(err)
    except BodyError as err:
        return error_response(HttpError(err.message, "InvalidRequest", 400))
