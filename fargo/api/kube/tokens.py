"""POST serviceaccounts/NAME/token (`kubectl create token`): a TokenRequest, answered with a
signed token and never stored, as the apiserver does; and the check of a service account
token presented to the Kubernetes face (called from auth.py)."""

from __future__ import annotations

from aiohttp import web

from ...control.eksauth import KubeUser
from ...control.satokens import ServiceAccountTokens
from ...model.kubeerrors import method_not_allowed
from ..keys import SETTINGS
from .keys import EKS, KUBE_STATE
from .wire import json_response, read_body


def _tokens(request: web.Request) -> ServiceAccountTokens:
    return ServiceAccountTokens(request.app[KUBE_STATE], request.app[EKS].token_key,
                                request.app[SETTINGS].region)


async def create_token(request: web.Request, cluster: str, ns: str,
                       name: str) -> web.StreamResponse:
    if request.method != "POST":
        raise method_not_allowed(request.method)
    body = await read_body(request)  # JSON, or protobuf as kubectl's typed client posts
    return json_response(_tokens(request).token_request(cluster, ns, name, body), status=201)


def account_user(request: web.Request, cluster: str, token: str) -> KubeUser:
    """The service account a bearer token speaks for (Unauthorized when it does not)."""
    return _tokens(request).authenticate(cluster, token)
