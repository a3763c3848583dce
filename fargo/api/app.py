"""One HTTP port for every face: AWS JSON (ECS, Secrets Manager), EC2 query, EKS REST-JSON,
each cluster's Kubernetes API, and fargo's own paths."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..config import Settings
from ..control.cloudmap import CloudMap
from ..control.cost import CostExplorer
from ..control.cwlogs import CloudWatchLogs
from ..control.ecs import Ecs
from ..control.eks import Eks
from ..control.elbv2 import Elbv2
from ..control.iam import Iam
from ..control.kubestate import KubeState
from ..control.logs import ContainerLogs
from ..control.metrics import Metrics
from ..control.metricsampler import MetricSampler
from ..control.objects import Objects
from ..control.pods import Pods
from ..control.secrets import Secrets
from ..control.services import Services
from ..control.ssm import Ssm
from ..model.errors import ApiError
from . import awsjson, body, cloudwatch, cloudwatch_query, ec2query, ecs_services, elbv2query, shapes
from . import ce as ce_face
from . import cost as cost_face
from . import cwlogs as cwlogs_face
from . import ecs as ecs_face
from . import eks as eks_face
from . import elbv2 as elbv2_face
from . import prometheus as prometheus_face
from . import secrets as secrets_face
from . import servicediscovery as servicediscovery_face
from . import spot as spot_face
from . import ssm as ssm_face
from . import sts as sts_face
from .auth import authenticate, permit
from .body import BodyError
from .ec2 import Ec2Face
from .errors import HttpError
from .http import Kind, Runner, face_of_request, refuse
from .keys import IAM, SETTINGS
from .kube import admission as kube_admission
from .kube import auth as kube_auth
from .kube import keys as kube_keys
from .kube import routes as kube_routes
from .logs import LOGS, task_logs

log = logging.getLogger("fargo.api")


async def root(request: web.Request) -> web.Response:
    """/: the JSON protocols POST with X-Amz-Target naming the action; the query protocol
    carries Action in a POSTed form or, as EC2 also takes it, in a GET's query string."""
    if "X-Amz-Target" in request.headers:
        if cloudwatch.METRICS in request.app and cloudwatch.serves_json(request.headers):
            return await cloudwatch.serve_json(request)  # AWS JSON 1.0
        return await _json(request)
    if await elbv2query.addressed(request):  # the query protocol of ELBv2, not EC2's
        return await elbv2query.serve(request, request.app[ELBV2_HANDLERS])
    if cloudwatch.METRICS in request.app and await cloudwatch_query.addressed(request):
        return await cloudwatch_query.serve(request)
    if await sts_face.addressed(request):  # GetCallerIdentity, AssumeRole
        return await sts_face.serve(request)
    return await _query(request)


async def _json(request: web.Request) -> web.Response:
    if request.method != "POST":
        return awsjson.error_response(HttpError(
            f"The JSON protocol takes POST, not {request.method}.",
            "UnknownOperationException", 405))
    try:
        sent = await body.read(request)
    except BodyError as err:
        return awsjson.error_response(ApiError(err.message, code="SerializationException"))
    target = request.headers["X-Amz-Target"]
    prefix = target.split(".", 1)[0]
    if prefix not in request.app[JSON_SERVICES]:
        return awsjson.error_response(ApiError(f"Unknown operation {target[:200]!r}.",
                                               code="UnknownOperationException"))
    service, handlers = request.app[JSON_SERVICES][prefix]
    try:  # the signature first, then the decoding: no unsigned gzip bomb is inflated
        authenticate(request, sent, service, "json")
        data = body.decoded(request, sent)
    except ApiError as err:
        return awsjson.error_response(err)
    except BodyError as err:
        return awsjson.error_response(ApiError(err.message, code="SerializationException"))
    return await awsjson.dispatch_json(request, data, service, prefix, handlers)


async def _query(request: web.Request) -> web.Response:
    try:
        sent = await body.read(request) if request.method == "POST" else b""
        authenticate(request, sent, "ec2", "ec2")
        form = body.decoded(request, sent) if request.method == "POST" else \
            request.raw_path.partition("?")[2].encode("utf-8", "surrogateescape")
    except ApiError as err:
        return ec2query.error_response(err)
    except BodyError as err:
        return ec2query.error_response(ApiError(err.message, code="InvalidRequest"))
    return await ec2query.dispatch_query(form, request.app[EC2_HANDLERS],
                                         lambda action: permit(request, action, "ec2"))


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@web.middleware
async def _in_face_shape(request: web.Request, handler: Any) -> web.StreamResponse:
    """Whatever goes wrong inside (no route, a method the path does not take, a fault)
    answers in the error shape of the face the request was for, never aiohttp's page."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = {404: Kind.NOT_FOUND, 405: Kind.METHOD}.get(exc.status, Kind.UNREADABLE)
        return refuse(face_of_request(request), kind, exc.status,
                      f"{exc.reason}: {request.method} {request.path[:200]}")
    except ConnectionResetError:  # the client left mid-answer (kubectl ending a watch)
        log.debug("client gone during %s %s", request.method, request.path[:200])
        return web.Response(status=499)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path[:200])
        return refuse(face_of_request(request), Kind.FAULT, 500, "Internal error in fargo.")


__all__ = ["Faces", "Runner", "build_app"]

JsonService = tuple[str, dict[str, awsjson.Handler]]  # (botocore service name, handlers)
JSON_SERVICES = web.AppKey("json_services", dict[str, JsonService])
EC2_HANDLERS = web.AppKey("ec2_handlers", Mapping[str, ec2query.Handler])
ELBV2_HANDLERS = web.AppKey("elbv2_handlers", Mapping[str, elbv2query.Handler])


@dataclass
class Faces:
    """The control objects the HTTP faces reach; nothing else goes into the app."""

    settings: Settings
    iam: Iam
    ecs: Ecs
    services: Services
    ec2: Ec2Face
    secrets: Secrets
    ssm: Ssm
    logs: ContainerLogs
    eks: Eks | None = None
    kube_state: KubeState | None = None
    pods: Pods | None = None
    objects: Objects | None = None  # generic writes of Kubernetes kinds
    cloudmap: CloudMap | None = None
    elbv2: Elbv2 | None = None
    metrics: Metrics | None = None  # CloudWatch metrics
    sampler: MetricSampler | None = None  # its latest pass, for /metrics (Prometheus)
    cost: CostExplorer | None = None  # Cost Explorer and fargo's per-task cost path
    cwlogs: CloudWatchLogs | None = None  # CloudWatch Logs


def build_app(faces: Faces, for_tasks: bool = False) -> web.Application:
    """The app of the host's port; for_tasks: the one each task's VPC endpoint serves, with
    the signed AWS faces only (no health probe, no webhooks, no Kubernetes API)."""
    app = web.Application(middlewares=[_in_face_shape],
                          client_max_size=faces.settings.max_body)
    app[SETTINGS] = faces.settings
    app[IAM] = faces.iam
    app[LOGS] = faces.logs
    app[JSON_SERVICES] = {
        ecs_face.PREFIX: ("ecs", {**ecs_face.handlers(faces.ecs),
                                  **ecs_services.handlers(faces.services)}),
        "secretsmanager": (secrets_face.SERVICE, secrets_face.handlers(faces.secrets)),
        ssm_face.PREFIX: (ssm_face.SERVICE, ssm_face.handlers(faces.ssm)),
    }
    if faces.cloudmap:
        app[JSON_SERVICES][servicediscovery_face.PREFIX] = (
            servicediscovery_face.SERVICE, servicediscovery_face.handlers(faces.cloudmap))
    if faces.cost:
        app[JSON_SERVICES][ce_face.PREFIX] = (ce_face.SERVICE, ce_face.handlers(faces.cost))
    if faces.cwlogs:
        app[JSON_SERVICES][cwlogs_face.PREFIX] = (cwlogs_face.SERVICE,
                                                  cwlogs_face.handlers(faces.cwlogs))
    ec2_handlers = faces.ec2.handlers()
    shapes.serve_only("ec2", ec2_handlers)  # its other 750 operations are refused by name
    app[EC2_HANDLERS] = ec2_handlers
    app[ELBV2_HANDLERS] = elbv2_face.handlers(faces.elbv2) if faces.elbv2 else {}
    if faces.metrics:
        cloudwatch.install(app, faces.metrics)  # and its CBOR route
    app.router.add_post("/", root)
    app.router.add_get("/", root)  # and HEAD
    app.router.add_get("/fargo/v1/tasks/{task}/logs", task_logs)
    if not for_tasks:
        app.router.add_get("/fargo/health", health)
        spot_face.install(app, faces.ecs.engine)  # admin: Fargate Spot interruptions
        if faces.sampler:
            prometheus_face.install(app, faces.sampler)  # GET /metrics, unauthenticated
        if faces.cost:
            cost_face.install(app, faces.cost)  # each task's bill, for `fargo cost`
    if faces.eks and faces.kube_state and faces.pods and faces.objects:
        # EKS's REST face, each cluster's Kubernetes API, the webhooks
        kube_keys.install(app, eks=faces.eks, kube_state=faces.kube_state, pods=faces.pods,
                          objects=faces.objects)
        eks_face.add_routes(app)
        if for_tasks:
            return app
        app.router.add_get("/fargo/v1/eks/{cluster}/token", kube_auth.issue_token)
        app.router.add_post(kube_auth.REVIEW_PATH, kube_auth.self_subject_review)  # whoami
        kube_routes.add_routes(app)
        kube_admission.add_routes(app)
    return app
