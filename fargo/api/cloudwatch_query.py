"""CloudWatch in the AWS query protocol, as SDKs older than its JSON and CBOR protocols
speak it: a form of `Action=...&Version=2010-08-01` (lists as Name.member.N) in,
`<OpResponse><OpResult>` XML out, `<ErrorResponse><Error><Type><Code>` with the query codes
for errors; the reader and the writer are api/queryform.py's, in CloudWatch's words. Which
query-protocol face a request is for follows from its signature's scope (monitoring), or,
unsigned, from its Version."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from botocore.model import OperationModel

from ..model.errors import ApiError
from . import queryform
from .body import BodyError
from .cloudwatch import SIGNING, answer, check, operation, query_code, shaped, status_of
from .errors import HttpError

VERSION = "2010-08-01"
XMLNS = f"http://monitoring.amazonaws.com/doc/{VERSION}/"
# No CloudWatch input fargo serves takes a map; error paths name list items as sent.
DIALECT = queryform.Dialect(
    "InvalidParameterValueException", unknown="The parameter {path} is not recognized.",
    whole="The parameter {path} must be given by its members.",
    listed="The parameter {path} must be given as {path}.member.N.",
    bad="The value {text} for parameter {path} is not {what}.", maps=False, as_sent=True)
# The query protocol's own statuses for the errors it names differently (authentication).
_QUERY_STATUS = {"MissingAuthenticationToken": 403, "InvalidClientTokenId": 403,
                 "SignatureDoesNotMatch": 403, "AccessDenied": 403}


async def addressed(request: web.Request) -> bool:
    """Whether a query-protocol request is CloudWatch's: signed for `monitoring`, or
    unsigned and of Version 2010-08-01."""
    return await queryform.addressed(request, SIGNING, VERSION)


def parse(op: OperationModel, form: dict[str, str]) -> dict[str, Any]:
    return check(op, queryform.parse(op, form, DIALECT))


def render(op: OperationModel, result: dict[str, Any]) -> web.Response:
    return queryform.response(op, XMLNS, shaped(op.output_shape, result, queryform.stamp))


def error_response(err: ApiError) -> web.Response:
    code = query_code(err.code)
    return queryform.error_response(XMLNS, code, err.message,
                                    _QUERY_STATUS.get(code, status_of(err)))


async def serve(request: web.Request) -> web.Response:
    try:
        _, form = await queryform.received(request, SIGNING, "json", DIALECT.code)
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
