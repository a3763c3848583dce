"""One HTTP port for every face: AWS JSON (ECS), EC2 query, and fargo's own paths."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..config import Settings
from ..control.ecs import Ecs
from ..control.eks import Eks
from ..control.iam import Iam
from ..control.kubestate import KubeState
from ..control.logs import ContainerLogs
from ..control.pods import Pods
from ..control.secrets import Secrets
from ..model.errors import ApiError
from . import awsjson, ec2query
from . import ecs as ecs_face
from . import eks as eks_face
from . import secrets as secrets_face
from .auth import authenticate
from .ec2 import Ec2Face
from .errors import HttpError
from .keys import IAM, SETTINGS
from .kube import admission as kube_admission
from .kube import auth as kube_auth
from .kube import keys as kube_keys
from .kube import routes as kube_routes
from .logs import LOGS, task_logs

log = logging.getLogger("fargo.api")
async def _read_body(request: web.Request) -> bytes:
    """The whole body, or the AWS error for one past the limit (client_max_size enforces it)."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body
        raise ApiError(f"The request body is larger than {limit} bytes.",
                       code="SerializationException") from None


async def root(request: web.Request) -> web.Response:
    """POST /: the JSON protocols carry X-Amz-Target; the query protocol carries Action."""
    is_json = "X-Amz-Target" in request.headers
    try:
        body = await _read_body(request)
    except ApiError as err:
        return awsjson.error_response(err) if is_json else ec2query.error_response(err)
    if is_json:
        target = request.headers["X-Amz-Target"]
        prefix = target.split(".", 1)[0]
        if prefix not in request.app[JSON_SERVICES]:
            return awsjson.error_response(ApiError(f"Unknown operation {target[:200]!r}.",
                                                   code="UnknownOperationException"))
        service, handlers = request.app[JSON_SERVICES][prefix]
        try:
            authenticate(request, body, service, "json")
        except ApiError as err:
            return awsjson.error_response(err)
        return await awsjson.dispatch_json(request, body, service, prefix, handlers)
    try:
        authenticate(request, body, "ec2", "ec2")
    except ApiError as err:
        return ec2query.error_response(err)
    return await ec2query.dispatch_query(body, request.app[EC2_HANDLERS])


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@web.middleware
async def _no_tracebacks(request: web.Request, handler: Any) -> web.StreamResponse:
    """Whatever goes wrong inside answers in the AWS error shape, never a bare 500 page."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(request, HttpError(exc.reason or "Bad request", "ClientException",
                                             exc.status))
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(request, ApiError("Internal error in fargo.", code="ServerException"))


def _error(request: web.Request, err: ApiError) -> web.Response:
    """In the caller's protocol: JSON for the JSON faces, XML for EC2's query protocol."""
    if request.method == "POST" and request.path == "/" and "X-Amz-Target" not in request.headers:
        return ec2query.error_response(err)
    return awsjson.error_response(err)


JsonService = tuple[str, dict[str, awsjson.Handler]]  # (botocore service name, handlers)
JSON_SERVICES = web.AppKey("json_services", dict[str, JsonService])
EC2_HANDLERS = web.AppKey("ec2_handlers", Mapping[str, ec2query.Handler])


@dataclass
class Faces:
    """The control objects the HTTP faces reach; nothing else goes into the app."""

    settings: Settings
    iam: Iam
    ecs: Ecs
    ec2: Ec2Face
    secrets: Secrets
    logs: ContainerLogs
    eks: Eks | None = None
    kube_state: KubeState | None = None
    pods: Pods | None = None


def build_app(faces: Faces) -> web.Application:
    app = web.Application(middlewares=[_no_tracebacks],
                          client_max_size=faces.settings.max_body)
    app[SETTINGS] = faces.settings
    app[IAM] = faces.iam
    app[LOGS] = faces.logs
    app[JSON_SERVICES] = {
        ecs_face.PREFIX: ("ecs", ecs_face.handlers(faces.ecs)),
        "secretsmanager": (secrets_face.SERVICE, secrets_face.handlers(faces.secrets)),
    }
    app[EC2_HANDLERS] = faces.ec2.handlers()
    app.router.add_post("/", root)
    app.router.add_get("/fargo/health", health)
    app.router.add_get("/fargo/v1/tasks/{task}/logs", task_logs)
    if faces.eks and faces.kube_state and faces.pods:
        # EKS's REST face, each cluster's Kubernetes API, the webhooks
        kube_keys.install(app, eks=faces.eks, kube_state=faces.kube_state, pods=faces.pods)
        eks_face.add_routes(app)
        app.router.add_get("/fargo/v1/eks/{cluster}/token", kube_auth.issue_token)
        kube_routes.add_routes(app)
        kube_admission.add_routes(app)
    return app
