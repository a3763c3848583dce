"""The one gate of the Kubernetes face. Three kinds of bearer token open it:

- EKS's own, as `aws eks update-kubeconfig` sets kubectl up to get them (`aws eks get-token`:
  `k8s-aws-v1.` + a presigned STS GetCallerIdentity URL), checked by control/eksauth.py
  against fargo's keys and mapped to a Kubernetes user (the creator, or aws-auth);
- the cluster's own token, which `fargo kubeconfig` fetches with a signed request
  (issue_token) and writes into the kubeconfig: the cluster's admin;
- a service account's token (TokenRequest, projected volumes, token secrets), checked by
  control/satokens.py: the account's user and groups.

Every refusal is 401 Unauthorized and says nothing more (the server's log says why). The
user is kept on the request for SelfSubjectReview (`kubectl auth whoami`); RBAC is not
enforced: an admitted user may do anything."""

from __future__ import annotations

import hmac
import ipaddress
import logging

from aiohttp import web

from ...control.eksauth import AUTHENTICATED, MASTERS, EksAuth, KubeUser, Unauthorized
from ...control.kubestate import now_rfc3339
from ...control.satokens import looks_like_jwt
from ...model.ekstoken import PREFIX
from ...model.errors import ApiError
from ...model.kubeerrors import KubeError
from .. import body
from ..auth import authenticate, permit
from ..awsjson import error_response
from ..errors import HttpError
from ..keys import IAM, SETTINGS
from . import protobuf
from .keys import EKS, KUBE_STATE
from .tokens import account_user
from .wire import json_response, read_body, status_response

log = logging.getLogger("fargo.kube.auth")
USER = "kube_user"  # the request's KubeUser, once admitted
# Who holds the cluster's own token (fargo kubeconfig), and who calls a --no-auth server.
CLUSTER_ADMIN = KubeUser("kubernetes-admin", "fargo:cluster-token", (MASTERS, AUTHENTICATED))


def _own_host(request: web.Request) -> object:
    """Whether a token's URL was presigned for fargo's own endpoint (AWS_ENDPOINT_URL or
    --endpoint-url pointing here): an address, localhost, or the names this server has."""
    names = {request.app[SETTINGS].host.lower(), "localhost", (request.url.host or "").lower()}
    names.discard("")

    def mine(netloc: str) -> bool:
        host = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
        host = host.strip("[]").lower()
        try:
            ipaddress.ip_address(host)
            return True
        except ValueError:
            return host in names
    return mine


def _unauthorized() -> KubeError:
    return KubeError(401, "Unauthorized", "Unauthorized")


def authorize(request: web.Request, cluster: str) -> None:
    """Return to admit the request; raise KubeError 401 otherwise (also for an unknown
    cluster, so a caller without a token learns nothing about which clusters exist)."""
    if not request.app[SETTINGS].auth:
        request[USER] = CLUSTER_ADMIN
        return
    header = request.headers.get("Authorization", "")
    given = header[len("Bearer "):].strip() if header.startswith("Bearer ") else ""
    if given.startswith(PREFIX):
        auth = EksAuth(request.app[IAM], request.app[EKS], request.app[KUBE_STATE],
                       request.app[SETTINGS].region)
        try:
            request[USER] = auth.authenticate(cluster, given, own_host=_own_host(request))
        except Unauthorized as err:
            log.info("kube %s: token refused: %s", cluster[:100], err)
            raise _unauthorized() from None
        return
    if looks_like_jwt(given):  # a service account's token (api/kube/tokens.py)
        try:
            request[USER] = account_user(request, cluster, given)
        except (Unauthorized, KubeError) as err:
            log.info("kube %s: service account token refused: %s", cluster[:100], err)
            raise _unauthorized() from None
        return
    key = request.app[EKS].token_key(cluster)
    expected = request.app[IAM].kube_token(key, create=False) if key else None
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise _unauthorized()
    request[USER] = CLUSTER_ADMIN


def user_of(request: web.Request) -> KubeUser:
    """The admitted request's user (authorize ran first)."""
    user = request.get(USER)
    if not isinstance(user, KubeUser):
        raise _unauthorized()
    return user


async def _raw_body(request: web.Request) -> bytes:
    try:
        return await body.read_decoded(request)
    except body.BodyError as err:
        reason = {413: "RequestEntityTooLarge", 415: "UnsupportedMediaType"}
        raise KubeError(err.status, reason.get(err.status, "BadRequest"), err.message) from None


REVIEW_PATH = "/eks/{cluster}/apis/authentication.k8s.io/v1/selfsubjectreviews"


async def self_subject_review(request: web.Request) -> web.Response:
    """POST REVIEW_PATH (`kubectl auth whoami`): who the request's token speaks for. Made,
    answered and never stored, as the apiserver does; create is its only verb."""
    cluster = request.match_info["cluster"]
    try:
        authorize(request, cluster)
        if not request.app[EKS].exists(cluster):
            raise KubeError(404, "NotFound", f'EKS cluster "{cluster[:100]}" not found')
        if request.content_type == protobuf.CONTENT_TYPE:  # kubectl's: its TypeMeta read
            raw = await _raw_body(request)
            kind: object = None
            try:
                type_meta = dict(protobuf.fields(raw.removeprefix(protobuf.MAGIC))).get(1)
                if isinstance(type_meta, bytes):
                    kind = dict(protobuf.fields(type_meta)).get(2)
            except (ValueError, TypeError, IndexError):
                pass
            if not raw.startswith(protobuf.MAGIC) or kind != b"SelfSubjectReview":
                raise KubeError(400, "BadRequest", "the body must be a SelfSubjectReview")
        else:
            sent = await read_body(request)
            if not isinstance(sent, dict) or sent.get("kind", "SelfSubjectReview") != \
                    "SelfSubjectReview":
                raise KubeError(400, "BadRequest", "the body must be a SelfSubjectReview")
    except KubeError as err:
        return status_response(err)
    return json_response({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                          "metadata": {"creationTimestamp": now_rfc3339()},
                          "status": {"userInfo": user_of(request).user_info()}}, status=201)


async def issue_token(request: web.Request) -> web.Response:
    """GET /fargo/v1/eks/{cluster}/token, SigV4-signed: the cluster's bearer token."""
    try:
        authenticate(request, b"", "fargo", "rest")
        permit(request, "IssueKubernetesToken", "rest")
        key = request.app[EKS].token_key(request.match_info["cluster"])
        if key is None:
            raise HttpError("No cluster found for that name.", "ResourceNotFoundException", 404)
    except ApiError as err:
        return error_response(err)
    return web.json_response({"token": request.app[IAM].kube_token(key)})
