"""DaemonSets on EKS Fargate: stored, never run. No Fargate node is eligible for a
DaemonSet's pods, so the status says none is desired and an event on the DaemonSet says why
(once per generation)."""

from __future__ import annotations

from ..model import daemonsets
from .kubecontrol import Controller
from .kubestate import Change, KubeState
from .objects import Objects

COMPONENT = "daemonset-controller"


class DaemonSetController(Controller):
    name = "daemonset controller"

    def __init__(self, state: KubeState, objects: Objects):
        self.state = state
        self.objects = objects

    def interested(self, change: Change) -> bool:
        return change.resource == "daemonsets"

    def reconcile(self, cluster: str) -> None:
        for ds in self.state.list(cluster, "daemonsets"):
            if ds["metadata"].get("deletionTimestamp"):
                continue
            status = daemonsets.status_of(ds)
            if ds.get("status") == status:
                continue
            ds = self.objects.write_status(cluster, "daemonsets", ds["metadata"]["namespace"],
                                           ds, status)
            self.state.record_event(cluster, ds, "Warning", "NotSupportedOnFargate",
                                    daemonsets.NOT_ON_FARGATE, COMPONENT)
