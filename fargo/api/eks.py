"""EKS's REST-JSON face (botocore's `eks` model): clusters and Fargate profiles. Each
operation: the request checked against its input shape, a call of control/eks.py with named
arguments, the response rendered (and paged) here."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from botocore.model import OperationModel

from ..control.eks import ClusterVpc, Eks
from ..control.iam import ROOT
from ..model.errors import ApiError
from ..model.profiles import InvalidParameter
from . import paging, shapes
from .auth import authenticate, permit
from .awsjson import loads
from .body import BodyError, decoded
from .body import read as read_body
from .errors import http_status
from .keys import SETTINGS

EKS = web.AppKey("eks", Eks)

Params = dict[str, Any]  # a request checked against the operation's input shape
CREATOR = "fargo:creator"  # the signer's ARN, added to CreateCluster's checked params
# (control, params, region) -> the response body
Call = Callable[[Eks, Params, str], dict[str, Any]]


def _create_cluster(eks: Eks, p: Params, region: str) -> dict[str, Any]:
    vpc = p["resourcesVpcConfig"]
    return {"cluster": eks.create_cluster(
        name=p["name"], role_arn=p["roleArn"], region=region,
        vpc=ClusterVpc(subnet_ids=list(vpc.get("subnetIds") or []),
                       security_group_ids=list(vpc.get("securityGroupIds") or []),
                       endpoint_public_access=vpc.get("endpointPublicAccess", True),
                       endpoint_private_access=vpc.get("endpointPrivateAccess", False)),
        version=p.get("version"), logging=p.get("logging"), tags=p.get("tags"),
        client_request_token=p.get("clientRequestToken"), creator=p[CREATOR],
        access=p.get("accessConfig"))}


def _create_profile(eks: Eks, p: Params, region: str) -> dict[str, Any]:
    return {"fargateProfile": eks.create_fargate_profile(
        cluster=p["clusterName"], name=p["fargateProfileName"],
        pod_execution_role_arn=p["podExecutionRoleArn"], region=region,
        selectors=p.get("selectors"), subnets=p.get("subnets"), tags=p.get("tags"))}


def _page(items: list[str], p: Params, key: str) -> dict[str, Any]:
    return paging.page(items, p.get("nextToken"), p.get("maxResults") or 100, key,
                       invalid=InvalidParameter, bad_token="The nextToken is not valid.")


# (method, route) -> (operation, what it calls and renders)
ROUTES: dict[tuple[str, str], tuple[str, Call]] = {
    ("POST", "/clusters"): ("CreateCluster", _create_cluster),
    ("GET", "/clusters"): ("ListClusters", lambda eks, p, region: _page(
        eks.list_clusters(), p, "clusters")),
    ("GET", "/clusters/{name}"): ("DescribeCluster", lambda eks, p, region: {
        "cluster": eks.describe_cluster(p["name"])}),
    ("DELETE", "/clusters/{name}"): ("DeleteCluster", lambda eks, p, region: {
        "cluster": eks.delete_cluster(p["name"])}),
    ("POST", "/clusters/{name}/fargate-profiles"): ("CreateFargateProfile", _create_profile),
    ("GET", "/clusters/{name}/fargate-profiles"): (
        "ListFargateProfiles", lambda eks, p, region: _page(
            eks.list_fargate_profiles(p["clusterName"]), p, "fargateProfileNames")),
    ("GET", "/clusters/{name}/fargate-profiles/{fargateProfileName}"): (
        "DescribeFargateProfile", lambda eks, p, region: {
            "fargateProfile": eks.describe_fargate_profile(p["clusterName"],
                                                           p["fargateProfileName"])}),
    ("DELETE", "/clusters/{name}/fargate-profiles/{fargateProfileName}"): (
        "DeleteFargateProfile", lambda eks, p, region: {
            "fargateProfile": eks.delete_fargate_profile(p["clusterName"],
                                                         p["fargateProfileName"])}),
}


Handler = Callable[[web.Request], Awaitable[web.Response]]


def error_response(err: ApiError) -> web.Response:
    """REST-JSON errors: the code in x-amzn-ErrorType, the message in the body."""
    return web.json_response({"message": err.message}, status=http_status(err, "eks"),
                             headers={"x-amzn-ErrorType": err.code,
                                      "x-amzn-RequestId": str(uuid.uuid4())})


def _params(request: web.Request, op: OperationModel, body: bytes) -> dict[str, Any]:
    """URI labels, query string and JSON body merged into the operation's input shape."""
    params: dict[str, Any] = {}
    if body.strip():
        params = loads(body, "BadRequestException")
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


def _handler(op_name: str, call: Call) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        eks = request.app[EKS]
        try:
            sent = await read_body(request)
            caller = authenticate(request, sent, "eks", "rest")
            permit(request, op_name, "rest")
            body = decoded(request, sent)
            op = shapes.operation("eks", op_name)
            assert op is not None
            params = _params(request, op, body)
            shapes.validate(op, params, "InvalidParameterException",
                            "InvalidParameterException")
            if op_name == "CreateCluster":  # its creator is the cluster's first admin
                params[CREATOR] = caller.key.principal if caller else ROOT
            result = call(eks, params, request.app[SETTINGS].region)
        except ApiError as err:
            return error_response(err)
        except BodyError as err:
            return error_response(ApiError(err.message, code="BadRequestException"))
        return web.Response(body=json.dumps(result, default=str).encode(),
                            content_type="application/json",
                            headers={"x-amzn-RequestId": str(uuid.uuid4())})
    return handle


def add_routes(app: web.Application) -> None:
    for (method, path), (op, call) in ROUTES.items():
        app.router.add_route(method, path, _handler(op, call))
