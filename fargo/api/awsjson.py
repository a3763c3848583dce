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
from .errors import http_status
from .keys import SETTINGS

# A request's parameters and its answer: JSON objects of the service's shapes.
JsonObject = dict[str, Any]
# handler(params, region); the ECS engine's are plain calls, a face may also await.
Handler = Callable[[JsonObject, str], JsonObject | Awaitable[JsonObject]]


def error_response(err: ApiError) -> web.Response:
    body = {"__type": err.code, "message": err.message}
    return web.json_response(body, status=http_status(err),
                             content_type="application/x-amz-json-1.1",
                             headers={"x-amzn-RequestId": str(uuid.uuid4())})


async def dispatch_json(request: web.Request, body: bytes, service_name: str, prefix: str,
                        handlers: Mapping[str, Handler]) -> web.Response:
    target = request.headers.get("X-Amz-Target", "")
    action = target[len(prefix) + 1:] if target.startswith(prefix + ".") else ""
    try:
        op = shapes.operation(service_name, action)
        if op is None:
            raise ApiError(f"Unknown operation {target[:200]!r}.",
                           code="UnknownOperationException")
        try:
            params = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            raise ApiError(f"Malformed request body: {err}"[:300],
                           code="SerializationException") from None
        shapes.validate(op, params, "SerializationException", "InvalidParameterException")
        handler = handlers.get(action)
        if handler is None:
            raise ApiError(f"{action} is not supported by fargo yet.",
                           code="UnsupportedFeatureException")
        answer = handler(params, request.app[SETTINGS].region)
        result = await answer if isinstance(answer, Awaitable) else answer
    except ApiError as err:
        return error_response(err)
    return web.Response(body=orjson.dumps(result or {}, default=str),
                        content_type="application/x-amz-json-1.1",
                        headers={"x-amzn-RequestId": str(uuid.uuid4())})
