"""EKS's REST-JSON face (botocore's `eks` model): clusters and Fargate profiles."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from aiohttp import web

from ..model.errors import ApiError
from . import shapes
from .auth import authenticate

# (method, route) -> (operation, handler name on control/eks.Eks)
ROUTES = {
    ("POST", "/clusters"): ("CreateCluster", "create_cluster"),
    ("GET", "/clusters"): ("ListClusters", "list_clusters"),
    ("GET", "/clusters/{name}"): ("DescribeCluster", "describe_cluster"),
    ("DELETE", "/clusters/{name}"): ("DeleteCluster", "delete_cluster"),
    ("POST", "/clusters/{name}/fargate-profiles"): ("CreateFargateProfile",
                                                    "create_fargate_profile"),
    ("GET", "/clusters/{name}/fargate-profiles"): ("ListFargateProfiles",
                                                   "list_fargate_profiles"),
    ("GET", "/clusters/{name}/fargate-profiles/{fargateProfileName}"): (
        "DescribeFargateProfile", "describe_fargate_profile"),
    ("DELETE", "/clusters/{name}/fargate-profiles/{fargateProfileName}"): (
        "DeleteFargateProfile", "delete_fargate_profile"),
}


def error_response(err: ApiError) -> web.Response:
    """REST-JSON errors: the code in x-amzn-ErrorType, the message in the body."""
    return web.json_response({"message": err.message}, status=err.status,
                             headers={"x-amzn-ErrorType": err.code,
                                      "x-amzn-RequestId": str(uuid.uuid4())})


def _params(request: web.Request, op: Any, body: bytes) -> dict[str, Any]:
    """URI labels, query string and JSON body merged into the operation's input shape."""
    params: dict[str, Any] = {}
    if body.strip():
        try:
            params = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            raise ApiError(f"Malformed request body: {err}"[:300],
                           code="BadRequestException") from None
        if not isinstance(params, dict):
            raise ApiError("The request body must be a JSON object.", code="BadRequestException")
    members = op.input_shape.members if op.input_shape else {}
    for key, shape in members.items():
        loc, wire = shape.serialization.get("location"), shape.serialization.get("name", key)
        if loc == "uri":
            params[key] = request.match_info[wire]
        elif loc == "querystring" and wire in request.query:
            raw = request.query[wire]
            if shape.type_name == "integer":
                if not re.fullmatch(r"-?[0-9]{1,9}", raw):
                    raise ApiError(f"{wire} must be an integer.",
                                   code="InvalidParameterException")
                params[key] = int(raw)
            else:
                params[key] = raw
    return params


def _handler(op_name: str, method_name: str) -> Any:
    async def handle(request: web.Request) -> web.Response:
        eks = request.app["eks"]
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error_response(ApiError("The request body is too large.",
                                           code="BadRequestException"))
        try:
            authenticate(request, body, "eks", "rest")
            op = shapes.operation("eks", op_name)
            assert op is not None
            params = _params(request, op, body)
            shapes.validate(op, params, "InvalidParameterException",
                            "InvalidParameterException")
            result = getattr(eks, method_name)(params, request.app["settings"].region)
        except ApiError as err:
            return error_response(err)
        return web.Response(body=json.dumps(result, default=str).encode(),
                            content_type="application/json",
                            headers={"x-amzn-RequestId": str(uuid.uuid4())})
    return handle


def add_routes(app: web.Application) -> None:
    for (method, path), (op, meth) in ROUTES.items():
        app.router.add_route(method, path, _handler(op, meth))
