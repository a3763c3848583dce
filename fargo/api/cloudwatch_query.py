"""CloudWatch in the AWS query protocol, as SDKs older than its JSON and CBOR protocols
speak it: a form of `Action=...&Version=2010-08-01` (lists as Name.member.N) in,
`<OpResponse><OpResult>` XML out, `<ErrorResponse><Error><Type><Code>` with the query codes
for errors. Which query-protocol face a request is for follows from its signature's scope
(monitoring), or, unsigned, from its Version."""

from __future__ import annotations

import datetime
import re
import uuid
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

from ..model.errors import ApiError
from . import body
from .auth import authenticate
from .body import BodyError
from .cloudwatch import SIGNING, answer, check, operation, query_code, shaped, status_of
from .ec2query import parse_form
from .errors import HttpError

VERSION = "2010-08-01"
XMLNS = f"http://monitoring.amazonaws.com/doc/{VERSION}/"
MAX_INDEX = 100_000  # list positions past this are not a real request's
_SCOPE = re.compile(r"Credential=[^/,\s]*/[^/,\s]*/[^/,\s]*/([^/,\s]*)/")
_INT = re.compile(r"^-?[0-9]{1,20}$")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# The query protocol's own statuses for the errors it names differently (authentication).
_QUERY_STATUS = {"MissingAuthenticationToken": 403, "InvalidClientTokenId": 403,
                 "SignatureDoesNotMatch": 403, "AccessDenied": 403}


def invalid(message: str) -> ApiError:
    return ApiError(message, code="InvalidParameterValueException")


async def addressed(request: web.Request) -> bool:
    """Whether a query-protocol request is CloudWatch's: signed for `monitoring`, or
    unsigned and of Version 2010-08-01."""
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
    return invalid(f"The parameter {path[:200]} is not recognized.")


def _read(shape: Shape, node: _Node, path: str) -> Any:
    if isinstance(shape, StructureShape):
        if node.value:
            raise invalid(f"The parameter {path} must be given by its members.")
        out: dict[str, Any] = {}
        for key, child in node.children.items():
            at = f"{path}.{key}" if path else key
            if key not in shape.members:
                raise _unknown(at)
            out[key] = _read(shape.members[key], child, at)
        return out
    if isinstance(shape, ListShape):
        if not node.children:
            if node.value:
                raise invalid(f"The parameter {path} must be given as {path}.member.N.")
            return []  # "Name=": the query protocol's empty list
        if set(node.children) != {"member"}:
            raise _unknown(f"{path}.{next(k for k in node.children if k != 'member')}")
        items = node.children["member"]
        return [_read(shape.member, child, f"{path}.member.{i}")
                for i, child in _indexed(items, f"{path}.member")]
    if isinstance(shape, MapShape):
        raise _unknown(path)  # no CloudWatch input takes a map
    if node.children:
        raise _unknown(f"{path}.{next(iter(node.children))}")
    return _scalar(shape, node.value or "", path)


def _indexed(node: _Node, path: str) -> list[tuple[int, _Node]]:
    items = []
    for key, child in node.children.items():
        if not re.fullmatch(r"[1-9][0-9]{0,5}", key) or int(key) > MAX_INDEX:
            raise _unknown(f"{path}.{key}")
        items.append((int(key), child))
    return sorted(items, key=lambda kv: kv[0])


def _scalar(shape: Shape, text: str, path: str) -> Any:
    kind = shape.type_name
    if kind in ("integer", "long"):
        if not _INT.match(text):
            raise invalid(f"The value {text[:64]} for parameter {path} is not an integer.")
        return int(text)
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise invalid(f"The value {text[:64]} for parameter {path} is not a boolean.")
        return text.lower() == "true"
    if kind in ("float", "double"):
        try:
            return float(text)
        except ValueError:
            raise invalid(f"The value {text[:64]} for parameter {path} is not a "
                          "number.") from None
    return text  # strings, and timestamps (ISO 8601, read by the handler)


def parse(op: OperationModel, form: dict[str, str]) -> dict[str, Any]:
    form = {k: v for k, v in form.items() if k not in ("Action", "Version")}
    if op.input_shape is None:
        if form:
            raise _unknown(next(iter(form)))
        return {}
    return check(op, _read(op.input_shape, _tree(form), ""))


# ---- XML out
def _text(value: str) -> str:
    return escape(_NOT_XML.sub("\ufffd", value))


def _stamp(value: float) -> str:
    when = datetime.datetime.fromtimestamp(value, datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _xml(shape: Shape, value: Any) -> str:
    if isinstance(shape, StructureShape):
        parts = []
        for name, member in shape.members.items():
            if value.get(name) is not None:
                parts.append(f"<{name}>{_xml(member, value[name])}</{name}>")
        return "".join(parts)
    if isinstance(shape, ListShape):
        return "".join(f"<member>{_xml(shape.member, v)}</member>" for v in value)
    if isinstance(shape, MapShape):
        return "".join(f"<entry><key>{_xml(shape.key, k)}</key><value>"
                       f"{_xml(shape.value, v)}</value></entry>" for k, v in value.items())
    if shape.type_name == "boolean":
        return "true" if value else "false"
    if shape.type_name in ("double", "float"):
        return repr(float(value))
    return _text(str(value))


def render(op: OperationModel, result: dict[str, Any]) -> web.Response:
    out = op.output_shape
    inner = _xml(out, shaped(out, result, _stamp)) if out is not None else ""
    rid = str(uuid.uuid4())
    result_part = f"<{op.name}Result>{inner}</{op.name}Result>" if out is not None else ""
    text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<{op.name}Response xmlns="{XMLNS}">'
            f"{result_part}<ResponseMetadata><RequestId>{rid}</RequestId>"
            f"</ResponseMetadata></{op.name}Response>")
    return web.Response(text=text, content_type="text/xml", headers={"x-amzn-RequestId": rid})


def error_response(err: ApiError) -> web.Response:
    code = query_code(err.code)
    status = _QUERY_STATUS.get(code, status_of(err))
    rid = str(uuid.uuid4())
    kind = "Receiver" if status >= 500 else "Sender"
    text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="{XMLNS}"><Error>'
            f"<Type>{kind}</Type><Code>{_text(code)}</Code>"
            f"<Message>{_text(err.message)}</Message></Error><RequestId>{rid}</RequestId>"
            "</ErrorResponse>")
    return web.Response(text=text, status=status, content_type="text/xml",
                        headers={"x-amzn-RequestId": rid})


async def serve(request: web.Request) -> web.Response:
    try:
        sent = await body.read(request) if request.method == "POST" else b""
        authenticate(request, sent, SIGNING, "json")
        raw = body.decoded(request, sent) if request.method == "POST" else \
            request.raw_path.partition("?")[2].encode("utf-8", "surrogateescape")
        try:
            form = parse_form(raw)
        except ApiError as err:
            raise invalid(err.message) from None
        version = form.get("Version")
        if version is not None and version != VERSION:
            raise ApiError(f"Version {version[:40]} is not served here: CloudWatch's is "
                           f"{VERSION}.", code="InvalidAction")
        op = operation(form.get("Action", ""))
        return render(op, answer(request, op, parse(op, form)))
    except ApiError as err:
        return error_response(err)
    except BodyError as err:
        return error_response(HttpError(err.message, "SerializationException", 400))
