"""The AWS query protocol as Elastic Load Balancing (v2) speaks it: a form of `Action=...`
with botocore's serialization (lists as Name.member.N, maps as Name.entry.N.key/value) in,
`<XResponse><XResult>` XML out, `<ErrorResponse><Error><Type>` for errors; the reader and the
writer are api/queryform.py's. EC2's dialect of the same protocol is api/ec2query.py; which
one a request is for follows from its signature's scope (or, unsigned, its Version)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from botocore.model import OperationModel

from ..model.errors import ApiError
from . import queryform, shapes
from .auth import permit
from .body import BodyError
from .errors import SERVER_FAULTS, HttpError

SERVICE = "elbv2"  # botocore's name
SIGNING = "elasticloadbalancing"  # the SigV4 scope's service
VERSION = "2015-12-01"
XMLNS = f"http://elasticloadbalancing.amazonaws.com/doc/{VERSION}/"
DIALECT = queryform.VALIDATION
Handler = queryform.Handler  # with the shape's types


async def addressed(request: web.Request) -> bool:
    """Whether a query-protocol request is for ELBv2: its signature is scoped to
    elasticloadbalancing, or an unsigned one says Version=2015-12-01."""
    return await queryform.addressed(request, SIGNING, VERSION)


def parse(op: OperationModel, form: dict[str, str]) -> dict[str, Any]:
    """The form's parameters as the operation's input shape names and types them, checked
    against its constraints; a key the shape does not have is refused by name."""
    return queryform.validated(op, queryform.parse(op, form, DIALECT), DIALECT.code)


def render(op: OperationModel, result: dict[str, Any]) -> web.Response:
    return queryform.response(op, XMLNS, result)


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
    return queryform.error_response(XMLNS, err.code, err.message, _status(err))


async def serve(request: web.Request, handlers: Mapping[str, Handler]) -> web.Response:
    """One ELBv2 request: the body within its limit, the signature, the form, the action
    and its parameters checked against botocore's shape, the handler, the answer."""
    try:
        _, form = await queryform.received(request, SIGNING, "ec2", DIALECT.code)
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
        return render(op, queryform.handler(handlers, action)(params))
    except ApiError as err:
        return error_response(err)
    except BodyError as err:
        return error_response(HttpError(err.message, "InvalidRequest", 400))
