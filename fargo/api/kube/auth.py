"""The one gate of the Kubernetes face: each EKS cluster's API wants its own bearer token,
which `fargo kubeconfig` fetches with a signed request and writes into the kubeconfig."""

from __future__ import annotations

import hmac

from aiohttp import web

from ...model.errors import ApiError
from ...model.kubeerrors import KubeError
from ..auth import authenticate, permit
from ..awsjson import error_response
from ..errors import HttpError
from ..keys import IAM, SETTINGS
from .keys import EKS


def authorize(request: web.Request, cluster: str) -> None:
    """Return to admit the request; raise KubeError 401 otherwise (also for an unknown
    cluster, so a caller without a token learns nothing about which clusters exist)."""
    if not request.app[SETTINGS].auth:
        return
    key = request.app[EKS].token_key(cluster)
    expected = request.app[IAM].kube_token(key, create=False) if key else None
    header = request.headers.get("Authorization", "")
    given = header[len("Bearer "):].strip() if header.startswith("Bearer ") else ""
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise KubeError(401, "Unauthorized", "Unauthorized")


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
