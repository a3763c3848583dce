"""The AWS query protocol as its faces share it (ELBv2, CloudWatch, STS; EC2 takes the form
and the text but has its own dialect of the rest): which face a request is for, its form read
against the operation's botocore input shape (lists as Name.member.N, maps as
Name.entry.N.key/value), and the `<OpResponse><OpResult>` and `<ErrorResponse>` XML out. What
differs between the services' readers is a Dialect: the error code, the wording."""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from aiohttp import web
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

from ..model.errors import ApiError
from . import body, shapes
from .auth import authenticate
from .body import BodyError
from .sigv4 import Caller

MAX_INDEX = 100_000  # list positions past this are not a real request's
_SCOPE = re.compile(r"Credential=[^/,\s]*/[^/,\s]*/[^/,\s]*/([^/,\s]*)/")
_INT = re.compile(r"^-?[0-9]{1,20}$")
_POSITION = re.compile(r"[1-9][0-9]{0,5}")
# Characters XML 1.0 cannot carry even escaped (NUL and most C0 controls), and lone
# surrogates no encoder writes: an answer that echoes hostile input must still parse.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

# handler(params): the parameters as the input shape names them; answers with an object of
# the output shape.
Handler = Callable[[dict[str, Any]], dict[str, Any]]


def handler(handlers: Mapping[str, Handler], action: str) -> Handler:
    """The action's handler; an action of the model that fargo does not serve is refused."""
    found = handlers.get(action)
    if found is None:
        raise ApiError(f"{action} is not supported by fargo yet.", code="InvalidAction")
    return found


def parse_form(sent: bytes, code: str) -> dict[str, str]:
    """A form (the POST body, or a GET's query string): UTF-8, and so are its %-escapes;
    code names the error of one that is not."""
    try:
        return dict(parse_qsl(sent.decode("utf-8"), keep_blank_values=True,
                              strict_parsing=False, errors="strict"))
    except UnicodeDecodeError:
        raise ApiError("The request is not valid UTF-8.", code=code) from None


# ---- which face
async def addressed(request: web.Request, signing: str, version: str) -> bool:
    """Whether a query-protocol request is for the face signed as `signing`: its signature's
    scope names that service, or an unsigned one says Version=version."""
    found = _SCOPE.search(request.headers.get("Authorization", ""))
    if found:
        return found.group(1) == signing
    if request.query.get("Version") == version:
        return True
    if request.method != "POST":
        return False
    try:
        sent = body.decoded(request, await body.read(request))  # aiohttp keeps the body
        return parse_form(sent, "InvalidParameterValue").get("Version") == version
    except (BodyError, ApiError):
        return False


async def received(request: web.Request, signing: str, style: str,
                   code: str) -> tuple[Caller | None, dict[str, str]]:
    """The signer and the form of a request: the body within its limit and signed (before it
    is decoded: no unsigned gzip bomb is inflated), or a GET's query string."""
    sent = await body.read(request) if request.method == "POST" else b""
    caller = authenticate(request, sent, signing, style)
    raw = body.decoded(request, sent) if request.method == "POST" else \
        request.raw_path.partition("?")[2].encode("utf-8", "surrogateescape")
    return caller, parse_form(raw, code)


# ---- the form, read against the input shape
@dataclass(frozen=True)
class Dialect:
    """How a service words what its form reader refuses. The templates take {path} (and
    `bad` {text} and {what}: "an integer", "a boolean", "a number")."""

    code: str  # of every refusal
    unknown: str  # a key the shape does not have
    whole: str  # a structure given a value of its own rather than members
    listed: str  # a list given a value rather than Name.member.N
    bad: str  # a scalar that does not read as its type
    maps: bool  # whether map parameters are taken (Name.entry.N.key/value)
    as_sent: bool  # error paths number list items as sent, or by their place (1, 2...)

    def refuse(self, template: str, **words: str) -> ApiError:
        return ApiError(template.format(**words), code=self.code)

    def refuse_unknown(self, path: str) -> ApiError:
        return self.refuse(self.unknown, path=path[:200])


# ELBv2's and STS's: the parameter named in quotes, refused as ValidationError.
VALIDATION = Dialect(
    code="ValidationError",
    unknown="The parameter '{path}' is not recognized",
    whole="The parameter '{path}' must be given by its members ({path}.Name)",
    listed="The parameter '{path}' must be given as {path}.member.N",
    bad="Invalid value for parameter {path}: '{text}' is not {what}",
    maps=True, as_sent=False)


class Node:
    """One dotted segment of the form's keys: the value given for it and the keys below."""

    __slots__ = ("value", "children")

    def __init__(self) -> None:
        self.value: str | None = None
        self.children: dict[str, Node] = {}


def tree(form: dict[str, str]) -> Node:
    root = Node()
    for key, value in form.items():
        node = root
        for part in key.split("."):
            node = node.children.setdefault(part, Node())
        node.value = value
    return root


def parse(op: OperationModel, form: dict[str, str], dialect: Dialect) -> dict[str, Any]:
    """The form's parameters (but Action and Version) as the operation's input shape names
    and types them; a key the shape does not have is refused by name. Not yet checked
    against the shape's constraints: the service's own check does that."""
    form = {k: v for k, v in form.items() if k not in ("Action", "Version")}
    if op.input_shape is None:
        if form:
            raise dialect.refuse_unknown(next(iter(form)))
        return {}
    params = _read(dialect, op.input_shape, tree(form), "")
    assert isinstance(params, dict)
    return params


def _read(d: Dialect, shape: Shape, node: Node, path: str) -> Any:
    if isinstance(shape, StructureShape):
        if node.value:
            raise d.refuse(d.whole, path=path)
        out: dict[str, Any] = {}
        wire = {m.serialization.get("name", n): (n, m) for n, m in shape.members.items()}
        for key, child in node.children.items():
            at = f"{path}.{key}" if path else key
            if key not in wire:
                raise d.refuse_unknown(at)
            name, member = wire[key]
            out[name] = _read(d, member, child, at)
        return out
    if isinstance(shape, ListShape):
        return _list(d, shape, node, path)
    if isinstance(shape, MapShape):
        if not d.maps:
            raise d.refuse_unknown(path)
        return _map(d, shape, node, path)
    if node.children:
        raise d.refuse_unknown(f"{path}.{next(iter(node.children))}")
    return _scalar(d, shape, node.value or "", path)


def _indexed(d: Dialect, node: Node, path: str) -> list[tuple[str, Node]]:
    """The items below node in their order, each with the path an error names it by."""
    items = []
    for key, child in node.children.items():
        if not _POSITION.fullmatch(key) or int(key) > MAX_INDEX:
            raise d.refuse_unknown(f"{path}.{key}")
        items.append((int(key), child))
    items.sort(key=lambda kv: kv[0])
    return [(f"{path}.{n if d.as_sent else i + 1}", child)
            for i, (n, child) in enumerate(items)]


def _only(d: Dialect, node: Node, tag: str, path: str) -> None:
    if set(node.children) != {tag}:
        raise d.refuse_unknown(f"{path}.{next(k for k in node.children if k != tag)}")


def _list(d: Dialect, shape: ListShape, node: Node, path: str) -> list[Any]:
    if not node.children:
        if node.value:
            raise d.refuse(d.listed, path=path)
        return []  # "Name=": the query protocol's empty list
    if shape.serialization.get("flattened"):
        items = _indexed(d, node, path)
    else:
        tag = shape.member.serialization.get("name", "member")
        _only(d, node, tag, path)
        items = _indexed(d, node.children[tag], f"{path}.{tag}")
    return [_read(d, shape.member, child, at) for at, child in items]


def _map(d: Dialect, shape: MapShape, node: Node, path: str) -> dict[str, Any]:
    if not node.children:
        return {}
    if shape.serialization.get("flattened"):
        entries, at = node, path
    else:
        _only(d, node, "entry", path)
        entries, at = node.children["entry"], f"{path}.entry"
    key_tag = shape.key.serialization.get("name", "key")
    value_tag = shape.value.serialization.get("name", "value")
    out: dict[str, Any] = {}
    for place, entry in _indexed(d, entries, at):
        key, value = entry.children.get(key_tag), entry.children.get(value_tag)
        if key is None or value is None or set(entry.children) - {key_tag, value_tag}:
            raise ApiError(f"Each entry of '{path}' needs a {key_tag} and a {value_tag}",
                           code=d.code)
        out[str(_read(d, shape.key, key, f"{place}.{key_tag}"))] = \
            _read(d, shape.value, value, f"{place}.{value_tag}")
    return out


def _scalar(d: Dialect, shape: Shape, sent: str, path: str) -> Any:
    kind = shape.type_name
    if kind in ("integer", "long"):
        if not _INT.match(sent):
            raise d.refuse(d.bad, path=path, text=sent[:64], what="an integer")
        return int(sent)
    if kind == "boolean":
        if sent.lower() not in ("true", "false"):
            raise d.refuse(d.bad, path=path, text=sent[:64], what="a boolean")
        return sent.lower() == "true"
    if kind in ("float", "double"):
        try:
            return float(sent)
        except ValueError:
            raise d.refuse(d.bad, path=path, text=sent[:64], what="a number") from None
    return sent  # strings, and timestamps (ISO 8601, read by the handler)


# ---- what botocore's validator leaves to the service
def validated(op: OperationModel, params: dict[str, Any], code: str) -> dict[str, Any]:
    """params checked against the input shape: botocore's validator, then the enums and
    maximum lengths and values it does not check, in the words of AWS's validation."""
    shapes.validate(op, params, code, code)
    if op.input_shape is not None:
        _constraints(op.input_shape, params, "", code)
    return params


def _constraints(shape: Shape, value: Any, path: str, code: str) -> None:
    meta = shape.metadata
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                _constraints(member, value[name], f"{path}.{name}" if path else name, code)
        return
    if isinstance(shape, ListShape) and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            raise ApiError(f"1 validation error detected: Value at '{path}' failed to satisfy "
                           f"constraint: Member must have length less than or equal to "
                           f"{meta['max']}", code=code)
        for i, item in enumerate(value):
            _constraints(shape.member, item, f"{path}.{i + 1}", code)
        return
    if isinstance(shape, MapShape) and isinstance(value, dict):
        for key, item in value.items():
            _constraints(shape.value, item, f"{path}.{key}", code)
        return
    if isinstance(value, str):
        enum = meta.get("enum")
        if enum and value not in enum:
            raise ApiError(f"1 validation error detected: Value '{value[:100]}' at '{path}' "
                           "failed to satisfy constraint: Member must satisfy enum value set: "
                           f"[{', '.join(enum)}]", code=code)
        if "max" in meta and len(value) > meta["max"]:
            raise ApiError(f"1 validation error detected: Value at '{path}' failed to satisfy "
                           f"constraint: Member must have length less than or equal to "
                           f"{meta['max']}", code=code)
    elif isinstance(value, int) and not isinstance(value, bool):
        if "max" in meta and value > meta["max"]:
            raise ApiError(f"1 validation error detected: Value '{value}' at '{path}' failed "
                           f"to satisfy constraint: Member must have value less than or equal "
                           f"to {meta['max']}", code=code)


# ---- XML out
def text(value: str) -> str:
    return escape(_NOT_XML.sub("\ufffd", value))


def stamp(value: Any) -> str:
    """A timestamp as the query protocol writes it: ISO 8601 in UTC, to the millisecond
    (seconds since the epoch; a string is taken as written)."""
    if isinstance(value, int | float):
        when = datetime.datetime.fromtimestamp(value, datetime.UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    return text(str(value))


def xml(shape: Shape, value: Any) -> str:
    """value, an object of shape, as the query protocol's XML (within its element)."""
    if isinstance(shape, StructureShape):
        parts = []
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                tag = member.serialization.get("name", name)
                parts.append(f"<{tag}>{xml(member, value[name])}</{tag}>")
        return "".join(parts)
    if isinstance(shape, ListShape):
        tag = shape.member.serialization.get("name", "member")
        return "".join(f"<{tag}>{xml(shape.member, v)}</{tag}>" for v in value)
    if isinstance(shape, MapShape):
        return "".join(f"<entry><key>{xml(shape.key, k)}</key><value>"
                       f"{xml(shape.value, v)}</value></entry>" for k, v in value.items())
    if shape.type_name == "boolean":
        return "true" if value else "false"
    if shape.type_name == "timestamp":
        return stamp(value)
    return text(str(value))


def response(op: OperationModel, xmlns: str, result: dict[str, Any]) -> web.Response:
    """`<OpResponse><OpResult>` (none for an operation without output) and the request id."""
    out = op.output_shape
    rid = str(uuid.uuid4())
    inner = ""
    if out is not None:
        wrapper = out.serialization.get("resultWrapper", f"{op.name}Result")
        inner = f"<{wrapper}>{xml(out, result)}</{wrapper}>"
    answer = (f'<?xml version="1.0" encoding="UTF-8"?>\n<{op.name}Response xmlns="{xmlns}">'
              f"{inner}<ResponseMetadata><RequestId>{rid}</RequestId>"
              f"</ResponseMetadata></{op.name}Response>")
    return web.Response(text=answer, content_type="text/xml",
                        headers={"x-amzn-RequestId": rid})


def error_response(xmlns: str, code: str, message: str, status: int) -> web.Response:
    """`<ErrorResponse><Error>`: Sender for the client's fault, Receiver for a 5xx."""
    rid = str(uuid.uuid4())
    kind = "Receiver" if status >= 500 else "Sender"
    answer = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="{xmlns}"><Error>'
              f"<Type>{kind}</Type><Code>{text(code)}</Code>"
              f"<Message>{text(message)}</Message></Error><RequestId>{rid}</RequestId>"
              "</ErrorResponse>")
    return web.Response(text=answer, status=status, content_type="text/xml",
                        headers={"x-amzn-RequestId": rid})
