"""The EC2 query protocol: form-encoded `Action=...` in, XML out, both read and written by
botocore's model of the operation. The form and the text are api/queryform.py's, as the
other query faces share them; the rest is EC2's dialect (flat lists, lowerCamel tags, its
own error shape). EC2 is the query face a request is for when no other claims it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from botocore.model import ListShape, OperationModel, Shape, StructureShape

from ..model.errors import ApiError
from . import shapes
from .errors import http_status
from .queryform import Handler, Node, handler, parse_form, text, tree

XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"


def _wire(name: str, member: Shape) -> str:
    """The member's key on the wire, as botocore's EC2 serializer writes it."""
    ser = member.serialization
    if "queryName" in ser:
        return str(ser["queryName"])
    if "name" in ser:
        return str(ser["name"][0].upper() + ser["name"][1:])
    return name


def _value(shape: Shape, node: Node) -> Any:
    """The parameter below node, or None when the form gives none. Scalars stay strings:
    the control methods check and convert them, with EC2's own messages."""
    if isinstance(shape, StructureShape):
        out = {}
        for name, member in shape.members.items():
            child = node.children.get(_wire(name, member))
            value = None if child is None else _value(member, child)
            if value is not None:
                out[name] = value
        return out if out or node.children else None
    if isinstance(shape, ListShape):
        # EC2 lists are flat: Key.1, Key.2, ... (Key.N.Member for structures), in N order.
        indexed = sorted((int(k), child) for k, child in node.children.items()
                         if k.isdigit() and len(k) <= 6)
        items = [v for _, child in indexed if (v := _value(shape.member, child)) is not None]
        return items or None
    if shape.type_name == "map":
        return None  # no operation fargo serves takes one
    return node.value


def parse_params(op: OperationModel, form: dict[str, str]) -> dict[str, Any]:
    """The form as the operation's input shape names it (IpPermissions.1.Groups.1.GroupId
    becomes IpPermissions[0]["UserIdGroupPairs"][0]["GroupId"]); unknown keys are dropped."""
    if op.input_shape is None:
        return {}
    params = _value(op.input_shape, tree(form))
    return params if isinstance(params, dict) else {}


def params(action: str, form: dict[str, str]) -> dict[str, Any]:
    op = shapes.operation("ec2", action)
    if op is None:
        raise ApiError(f"The action {action[:100]!r} is not valid for this web service.",
                       code="InvalidAction")
    return parse_params(op, form)


def _xml(shape: Shape, value: Any) -> str:
    if isinstance(shape, StructureShape):
        parts = []
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                tag = member.serialization.get("name", name[0].lower() + name[1:])
                parts.append(f"<{tag}>{_xml(member, value[name])}</{tag}>")
        return "".join(parts)
    if isinstance(shape, ListShape):
        tag = shape.member.serialization.get("name", "item")
        return "".join(f"<{tag}>{_xml(shape.member, v)}</{tag}>" for v in value)
    if shape.type_name == "boolean":
        return "true" if value else "false"
    return text(str(value))


def render(action: str, result: dict[str, Any]) -> web.Response:
    op = shapes.operation("ec2", action)
    assert op is not None
    inner = _xml(op.output_shape, result) if op.output_shape else ""
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="{XMLNS}">'
            f"<requestId>{uuid.uuid4()}</requestId>{inner}</{action}Response>")
    return web.Response(text=body, content_type="text/xml")


def error_response(err: ApiError) -> web.Response:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
            f"<Code>{text(err.code)}</Code><Message>{text(err.message)}</Message>"
            f"</Error></Errors><RequestID>{uuid.uuid4()}</RequestID></Response>")
    return web.Response(text=body, status=http_status(err), content_type="text/xml")


async def dispatch_query(body: bytes, handlers: Mapping[str, Handler],
                         permit: Callable[[str], None] = lambda action: None) -> web.Response:
    """permit: raises when the caller may not call that action (api/auth.py's)."""
    try:
        form = parse_form(body, "InvalidParameterValue")
        action = form.get("Action", "")
        permit(action)
        request = params(action, form)
        return render(action, handler(handlers, action)(request))
    except ApiError as err:
        return error_response(err)
