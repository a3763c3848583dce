"""The AWS JSON 1.1 protocol: `X-Amz-Target` names the action, JSON in and out."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from ..model.errors import ApiError
from . import shapes
from .auth import permit
from .errors import http_status
from .keys import SETTINGS

# What a missing or too short member is, where a service does not call it
# InvalidParameterException.
_INVALID = {"ssm": "ValidationException", "servicediscovery": "InvalidInput",
            "ce": "ValidationException"}
# A request's parameters and its answer: JSON objects of the service's shapes.
JsonObject = dict[str, Any]
# handler(params, region); the ECS engine's are plain calls, a face may also await.
Handler = Callable[[JsonObject, str], JsonObject | Awaitable[JsonObject]]


def error_response(err: ApiError) -> web.Response:
    """The code in `__type` and, as AWS's JSON services also send it, in x-amzn-ErrorType."""
    body = {"__type": err.code, "message": err.message}
    body.update(getattr(err, "fields", {}))  # the members an error's shape adds (Cloud Map's)
    return web.json_response(body, status=http_status(err),
                             content_type="application/x-amz-json-1.1",
                             headers={"x-amzn-RequestId": str(uuid.uuid4()),
                                      "x-amzn-ErrorType": err.code})


def loads(body: bytes, code: str) -> Any:
    """A request's JSON, strictly: UTF-8 (no BOM), no lone surrogate (no answer could echo
    it), no NaN, at most 1,024 levels deep; else ApiError(code)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise ApiError(f"Malformed request body: {err}"[:300], code=code) from None


def dumps(result: Any) -> bytes:
    """orjson, or, for what it refuses (a lone surrogate a store kept from an older server,
    an integer past 64 bits), the standard library's escaped JSON."""
    try:
        return orjson.dumps(result, default=str)
    except TypeError:
        return json.dumps(result, default=str).encode()


async def dispatch_json(request: web.Request, body: bytes, service_name: str, prefix: str,
                        handlers: Mapping[str, Handler]) -> web.Response:
    target = request.headers.get("X-Amz-Target", "")
    action = target[len(prefix) + 1:] if target.startswith(prefix + ".") else ""
    try:
        op = shapes.operation(service_name, action)
        if op is None:
            raise ApiError(f"Unknown operation {target[:200]!r}.",
                           code="UnknownOperationException")
        permit(request, action, "json")
        params = loads(body or b"{}", "SerializationException")
        shapes.validate(op, params, "SerializationException",
                        _INVALID.get(service_name, "InvalidParameterException"))
        handler = handlers.get(action)
        if handler is None:
            raise ApiError(f"{action} is not supported by fargo yet.",
                           code="UnsupportedFeatureException")
        answer = handler(params, request.app[SETTINGS].region)
        result = await answer if isinstance(answer, Awaitable) else answer
    except ApiError as err:
        return error_response(err)
    return web.Response(body=dumps(result or {}),
                        content_type="application/x-amz-json-1.1",
                        headers={"x-amzn-RequestId": str(uuid.uuid4())})
