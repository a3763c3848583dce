"""The EC2 query protocol: form-encoded `Action=...` in, XML out, shaped by botocore's model."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from aiohttp import web
from botocore.model import Shape

from ..model.errors import ApiError
from . import shapes

XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"


def parse_form(body: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        raise ApiError("The request body is not valid UTF-8.", code="InvalidParameterValue") \
            from None


_NUMBERED = re.compile(r"^(?P<base>[A-Za-z]+(?:\.\d{1,6}\.[A-Za-z]+)?)\.(?P<n>\d{1,6})$")


def numbered(form: dict[str, str], prefix: str) -> list[str]:
    """Values of Prefix.1, Prefix.2, ... in order."""
    found = []
    for key, value in form.items():
        m = _NUMBERED.match(key)
        if m and m.group("base") == prefix:
            found.append((int(m.group("n")), value))
    return [v for _, v in sorted(found)]


def filters(form: dict[str, str]) -> dict[str, list[str]]:
    """Filter.N.Name / Filter.N.Value.M, grouped in one pass over the form."""
    names: dict[str, str] = {}
    values: dict[str, list[tuple[int, str]]] = {}
    for key, value in form.items():
        m = _NUMBERED.match(key)
        if not m:
            if re.fullmatch(r"Filter\.\d{1,6}\.Name", key):
                names[key.split(".")[1]] = value
            continue
        base = m.group("base")
        if base.startswith("Filter.") and base.endswith(".Value"):
            values.setdefault(base.split(".")[1], []).append((int(m.group("n")), value))
    out: dict[str, list[str]] = {}
    for n, name in names.items():
        out.setdefault(name, []).extend(v for _, v in sorted(values.get(n, [])))
    return out


def _xml(shape: Shape, value: Any) -> str:
    if shape.type_name == "structure":
        parts = []
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                tag = member.serialization.get("name", name[0].lower() + name[1:])
                parts.append(f"<{tag}>{_xml(member, value[name])}</{tag}>")
        return "".join(parts)
    if shape.type_name == "list":
        tag = shape.member.serialization.get("name", "item")
        return "".join(f"<{tag}>{_xml(shape.member, v)}</{tag}>" for v in value)
    if shape.type_name == "boolean":
        return "true" if value else "false"
    return escape(str(value))


def render(action: str, result: dict[str, Any]) -> web.Response:
    op = shapes.operation("ec2", action)
    assert op is not None
    inner = _xml(op.output_shape, result) if op.output_shape else ""
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="{XMLNS}">'
            f"<requestId>{uuid.uuid4()}</requestId>{inner}</{action}Response>")
    return web.Response(text=body, content_type="text/xml")


# Characters XML 1.0 cannot carry even escaped (NUL and most C0 controls): a message that
# echoes hostile input must still parse.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def error_response(err: ApiError) -> web.Response:
    message = _NOT_XML.sub("\ufffd", err.message)
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
            f"<Code>{escape(err.code)}</Code><Message>{escape(message)}</Message>"
            f"</Error></Errors><RequestID>{uuid.uuid4()}</RequestID></Response>")
    return web.Response(text=body, status=err.status, content_type="text/xml")


async def dispatch_query(body: bytes,
                         handlers: dict[str, Callable[[dict[str, str]], dict[str, Any]]]
                         ) -> web.Response:
    try:
        form = parse_form(body)
        action = form.get("Action", "")
        if shapes.operation("ec2", action) is None:
            raise ApiError(f"The action {action[:100]!r} is not valid for this web service.",
                           code="InvalidAction")
        handler = handlers.get(action)
        if handler is None:
            raise ApiError(f"{action} is not supported by fargo yet.", code="InvalidAction")
        return render(action, handler(form))
    except ApiError as err:
        return error_response(err)
