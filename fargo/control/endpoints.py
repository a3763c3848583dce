"""The endpoints controllers, as kube-controller-manager's endpointslice and endpoints
controllers: for every Service with a selector, the EndpointSlices (owned by the Service,
so the garbage collector takes them with it) and the v1 Endpoints (named as the Service)
say which pods it reaches, their readiness and their ports (model/endpoints.py).

Level-triggered: each pass computes what should be from the store and writes only what
differs, deletes the managed slices and Endpoints whose Service is gone or lost its
selector; a write cut short by a SIGKILL is finished by the next pass."""

from __future__ import annotations

import logging
from typing import Any

from ..model import endpoints as epm
from ..model import kubeservice as ksvc
from ..model.kubeerrors import KubeError
from ..model.selectors import selector_matcher
from .kubecontrol import Controller
from .kubestate import Change, KubeState
from .objects import Objects

log = logging.getLogger("fargo.endpoints")
Obj = dict[str, Any]
SLICE_KEYS = ("addressType", "endpoints", "ports")


class EndpointsController(Controller):
    name = "endpoints controller"

    def __init__(self, state: KubeState, objects: Objects):
        self.state = state
        self.objects = objects

    def interested(self, change: Change) -> bool:
        return change.resource in ("services", "pods", "endpointslices", "endpoints")

    def reconcile(self, cluster: str) -> None:
        zones = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(
            "topology.kubernetes.io/zone", "") for n in self.state.list(cluster, "nodes")}
        services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s
                    for s in self.state.list(cluster, "services")}
        pods_by_ns: dict[str, list[Obj]] = {}
        for pod in self.state.list(cluster, "pods"):
            pods_by_ns.setdefault(pod["metadata"]["namespace"], []).append(pod)
        slices_by_svc: dict[tuple[str, str], list[Obj]] = {}
        for sl in self.state.list(cluster, "endpointslices"):
            labels = sl["metadata"].get("labels") or {}
            if labels.get(epm.MANAGED_BY) == epm.CONTROLLER and epm.SERVICE_NAME in labels:
                key = (sl["metadata"]["namespace"], labels[epm.SERVICE_NAME])
                slices_by_svc.setdefault(key, []).append(sl)
        for key, svc in services.items():
            try:
                self._sync(cluster, svc, pods_by_ns.get(key[0], []),
                           slices_by_svc.pop(key, []), zones)
            except KubeError as err:  # one refused write; the next pass retries
                log.info("service %s/%s: %s", key[0], key[1], err.message)
        for (ns, _), stale in slices_by_svc.items():  # their Service is gone
            for sl in stale:
                self._delete(cluster, "endpointslices", ns, sl["metadata"]["name"])
        for ep in self.state.list(cluster, "endpoints"):
            meta = ep["metadata"]
            owner = services.get((meta["namespace"], meta["name"]))
            managed = (meta.get("labels") or {}).get(epm.ENDPOINTS_MANAGED_BY) == \
                epm.ENDPOINTS_CONTROLLER
            if managed and (owner is None or not ksvc.spec_of(owner).get("selector")):
                self._delete(cluster, "endpoints", meta["namespace"], meta["name"])

    def _sync(self, cluster: str, svc: Obj, pods: list[Obj], have: list[Obj],
              zones: dict[str, str]) -> None:
        ns = svc["metadata"]["namespace"]
        sel = ksvc.spec_of(svc).get("selector")
        if not isinstance(sel, dict) or not sel or ksvc.service_type(svc) == "ExternalName" \
                or svc["metadata"].get("deletionTimestamp"):
            for sl in have:  # no selector: its endpoints are the user's to write
                self._delete(cluster, "endpointslices", ns, sl["metadata"]["name"])
            return
        match = selector_matcher({"matchLabels": sel})
        chosen = epm.endpoints_of(svc, [p for p in pods
                                        if match(p["metadata"].get("labels") or {})])
        want = {s["metadata"]["name"]: s for s in epm.slices_for(svc, chosen, zones)}
        for sl in have:
            name = sl["metadata"]["name"]
            if name not in want:
                self._delete(cluster, "endpointslices", ns, name)
        stored = {s["metadata"]["name"]: s for s in have}
        for name, sl in want.items():
            old = stored.get(name) or self.state.find(cluster, "endpointslices", ns, name)
            if old is None:
                self.objects.create(cluster, "endpointslices", ns, sl)
            elif not epm.same_content(old, sl, SLICE_KEYS):
                self.objects.update(cluster, "endpointslices", ns, name,
                                    _onto(old, sl, SLICE_KEYS))
        ep = epm.endpoints_object(svc, chosen)
        name = svc["metadata"]["name"]
        stored_ep = self.state.find(cluster, "endpoints", ns, name)
        if stored_ep is None:
            self.objects.create(cluster, "endpoints", ns, ep)
        elif not epm.same_content(stored_ep, ep, ("subsets",)):
            self.objects.update(cluster, "endpoints", ns, name,
                                _onto(stored_ep, ep, ("subsets",)))

    def _delete(self, cluster: str, plural: str, ns: str, name: str) -> None:
        try:
            self.objects.delete(cluster, plural, ns, name)
        except KubeError as err:
            if err.code != 404:
                raise


def _onto(old: Obj, want: Obj, keys: tuple[str, ...]) -> Obj:
    """The stored object with the wanted labels, owners and fields (its resourceVersion
    kept, so a write between the read and this one is a conflict, not lost)."""
    out = {k: v for k, v in old.items() if k not in keys}
    out["metadata"] = dict(old["metadata"])
    out["metadata"]["labels"] = want["metadata"].get("labels") or {}
    if "ownerReferences" in want["metadata"]:
        out["metadata"]["ownerReferences"] = want["metadata"]["ownerReferences"]
    for k in keys:
        if want.get(k) is not None:
            out[k] = want[k]
    return out
