"""AdmissionReview v1 webhooks, the second door to model/admission.py: a real cluster can
register POST /admission/mutate and /admission/validate (?cluster=NAME picks the EKS cluster
whose Fargate profiles apply; with one cluster it may be left out)."""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from ...model import admission
from ...model.kubeerrors import KubeError, bad_request
from .keys import EKS
from .wire import read_body, status_response


def _review(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("kind") != "AdmissionReview":
        raise bad_request("expected an AdmissionReview")
    if body.get("apiVersion") != "admission.k8s.io/v1":
        raise bad_request(f"unsupported AdmissionReview version "
                          f"{str(body.get('apiVersion'))[:60]!r}: use admission.k8s.io/v1")
    req = body.get("request")
    if not isinstance(req, dict) or not isinstance(req.get("uid"), str):
        raise bad_request("the AdmissionReview has no request with a uid")
    return req


def _profiles(request: web.Request) -> list[dict[str, Any]]:
    eks = request.app[EKS]
    name = request.query.get("cluster")
    if name is None:
        clusters = eks.list_clusters()
        if len(clusters) != 1:
            raise bad_request("name the EKS cluster whose Fargate profiles apply: "
                              "?cluster=NAME")
        name = clusters[0]
    if not eks.exists(name):
        raise KubeError(404, "NotFound", f'EKS cluster "{name[:100]}" not found')
    return eks.profiles(name)


def _pod(req: dict[str, Any]) -> dict[str, Any] | None:
    """The pod under review, or None when the request is about something else."""
    kind = req.get("kind") or {}
    if not isinstance(kind, dict):
        return None
    if kind.get("kind") != "Pod" or kind.get("group", "") != "" or req.get("subResource"):
        return None
    if req.get("operation") not in ("CREATE", None):
        return None
    obj = req.get("object")
    return obj if isinstance(obj, dict) else None


def _answer(uid: str, response: dict[str, Any]) -> web.Response:
    return web.json_response({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                              "response": {"uid": uid, **response}})


async def _judge(request: web.Request, decide: Any) -> web.Response:
    """Both doors: read the review, find the pod, and answer with what `decide` makes of it
    (a response dict for a pod, given its profiles and namespace)."""
    try:
        req = _review(await read_body(request))
        profiles = _profiles(request)
    except KubeError as err:
        return status_response(err)
    pod = _pod(req)
    if pod is None:
        return _answer(req["uid"], {"allowed": True})
    try:
        ns = req.get("namespace") or (pod.get("metadata") or {}).get("namespace") or "default"
        return _answer(req["uid"], decide(pod, profiles, ns))
    except (AttributeError, TypeError):
        return status_response(bad_request("the pod in the AdmissionReview is malformed"))


def _mutation(pod: dict[str, Any], profiles: Any, ns: str) -> dict[str, Any]:
    _, patch = admission.mutation(pod, profiles, ns)
    if not patch:
        return {"allowed": True}
    encoded = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"allowed": True, "patchType": "JSONPatch", "patch": encoded}


def _verdict(pod: dict[str, Any], profiles: Any, ns: str) -> dict[str, Any]:
    # A real cluster runs what it admits: only Fargate's own limits apply, not fargo's.
    refusal = admission.verdict(pod, profiles, ns, fargo_runs=False)
    if refusal is None:
        return {"allowed": True}
    return {"allowed": False, "status": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": refusal, "reason": "Forbidden", "code": 403}}


async def mutate(request: web.Request) -> web.Response:
    return await _judge(request, _mutation)


async def validate(request: web.Request) -> web.Response:
    return await _judge(request, _verdict)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/admission/mutate", mutate)
    app.router.add_post("/admission/validate", validate)
