"""The one gate of the Kubernetes face. It accepts every request for now; the bearer-token
check (an EKS-style token from the Authorization header) goes here and nowhere else."""

from __future__ import annotations

from aiohttp import web


def authorize(request: web.Request, cluster: str) -> None:
    """Return to admit the request; raise KubeError(401, "Unauthorized", ...) to refuse."""
    return None
