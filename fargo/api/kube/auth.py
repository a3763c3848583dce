"""The one gate of the Kubernetes face: each EKS cluster's API wants its own bearer token,
which `fargo kubeconfig` fetches with a signed request and writes into the kubeconfig."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from ...model.errors import ApiError
from ...model.kubeerrors import KubeError
from ..auth import authenticate
from ..awsjson import error_response


def token_key(doc: dict[str, Any]) -> str:
    return f"{doc['name']}/{doc['createdAt']}"


def authorize(request: web.Request, cluster: str) -> None:
    """Return to admit the request; raise KubeError 401 otherwise (also for an unknown
    cluster, so a caller without a token learns nothing about which clusters exist)."""
    if not request.app["settings"].auth:
        return
    doc = request.app["kube_tables"].get_cluster(cluster)
    expected = request.app["iam"].kube_token(token_key(doc), create=False) if doc else None
    header = request.headers.get("Authorization", "")
    given = header[len("Bearer "):].strip() if header.startswith("Bearer ") else ""
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise KubeError(401, "Unauthorized", "Unauthorized")


async def issue_token(request: web.Request) -> web.Response:
    """GET /fargo/v1/eks/{cluster}/token, SigV4-signed: the cluster's bearer token."""
    try:
        authenticate(request, b"", "fargo", "rest")
        doc = request.app["kube_tables"].get_cluster(request.match_info["cluster"])
        if doc is None:
            raise ApiError("No cluster found for that name.", code="ResourceNotFoundException",
                           status=404)
    except ApiError as err:
        return error_response(err)
    return web.json_response({"token": request.app["iam"].kube_token(token_key(doc))})
