"""The control objects the EKS and Kubernetes faces reach, as typed keys of the aiohttp app.
The faces get nothing else from the app but the settings and IAM that every face shares."""

from __future__ import annotations

from aiohttp import web

from ...control.eks import Eks
from ...control.kubestate import KubeState
from ...control.objects import Objects
from ...control.pods import Pods
from ..eks import EKS

KUBE_STATE = web.AppKey("kube_state", KubeState)
PODS = web.AppKey("pods", Pods)
OBJECTS = web.AppKey("objects", Objects)

__all__ = ["EKS", "KUBE_STATE", "OBJECTS", "PODS", "install"]  # EKS is the EKS face's own


def install(app: web.Application, *, eks: Eks, kube_state: KubeState, pods: Pods,
            objects: Objects) -> None:
    app[EKS] = eks
    app[KUBE_STATE] = kube_state
    app[PODS] = pods
    app[OBJECTS] = objects

