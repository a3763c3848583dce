"""kube-proxy for every EKS cluster of the server: the host's ClusterIP table
(port/services.py, applied by the Network port) built from the Services and EndpointSlices in
the store, in upstream's shape.

Level-triggered: each pass rebuilds the whole spec from the store and hands it to the data
plane, which applies it only when its text changed; the first pass after a start re-applies
it, so a SIGKILL loses nothing. An endpoint is used only while its slice says ready AND its
pod lives without a deletionTimestamp: a pod being stopped leaves the VIPs at once (the
`before_stop` hook of control/pods.py), before the EndpointSlice controller catches up.

Which Services get a VIP: any with an IPv4 clusterIP (ClusterIP and LoadBalancer; headless
"None" and ExternalName have none), except each cluster's kube-dns, whose address each pod's
own netns answers (agent/metadata.py)."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from ..port.protocols import Network
from ..port.services import Backend, ServicesSpec, VirtualPort
from .kubecontrol import Controller
from .kubestate import Change, KubeState

log = logging.getLogger("fargo.kubeproxy")
SERVICE_NAME = "kubernetes.io/service-name"
DEFAULT_AFFINITY = 10800  # sessionAffinityConfig.clientIP.timeoutSeconds' default
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
Obj = dict[str, Any]


def _vips(svc: Obj) -> list[str]:
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return []
    ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
    out = []
    for ip in ips:
        try:
            if isinstance(ip, str) and ipaddress.ip_address(ip).version == 4:
                out.append(ip)
        except ValueError:
            continue  # "None" (headless), "" (not allocated)
    return out


def _affinity(svc: Obj) -> int:
    spec = svc.get("spec") or {}
    if spec.get("sessionAffinity") != "ClientIP":
        return 0
    cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
    seconds = cfg.get("timeoutSeconds", DEFAULT_AFFINITY)
    return seconds if isinstance(seconds, int) and 0 < seconds <= 86400 else DEFAULT_AFFINITY


def _ready(ep: Obj) -> bool:
    return (ep.get("conditions") or {}).get("ready") is not False  # nil: ready (upstream)


def _live(ep: Obj, pods: dict[str, Obj], ns: str, stopping: frozenset[str]) -> bool:
    """Ready by its slice, and its pod (if it names one) still there, not being deleted nor
    stopped."""
    if not _ready(ep):
        return False
    ref = ep.get("targetRef") or {}
    if ref.get("uid") and ref.get("uid") in stopping:
        return False
    if ref.get("kind") != "Pod":
        return True
    pod = pods.get(f"{ref.get('namespace') or ns}/{ref.get('name')}")
    if pod is None or pod["metadata"].get("deletionTimestamp"):
        return False
    return not ref.get("uid") or ref.get("uid") == pod["metadata"].get("uid")


def service_ports(svc: Obj, slices: list[Obj], pods: dict[str, Obj],
                  stopping: frozenset[str] = frozenset()) -> list[VirtualPort]:
    """One Service's VIP.protocol.ports with their live endpoints; stopping: uids of pods
    whose tasks are being stopped (pure: tests call it)."""
    meta = svc["metadata"]
    ns, name = meta.get("namespace", ""), meta["name"]
    vips = _vips(svc)
    if not vips:
        return []
    affinity = _affinity(svc)
    out: list[VirtualPort] = []
    for sp in (svc.get("spec") or {}).get("ports") or []:
        proto = PROTOCOLS.get(sp.get("protocol", "TCP"))
        port = sp.get("port")
        if proto is None or not isinstance(port, int):
            continue
        pname = sp.get("name") or ""
        backends: set[Backend] = set()
        for sl in slices:
            if sl.get("addressType", "IPv4") != "IPv4":
                continue
            target = next((p.get("port") for p in sl.get("ports") or []
                           if (p.get("name") or "") == pname
                           and p.get("protocol", "TCP") == sp.get("protocol", "TCP")), None)
            if not isinstance(target, int):
                continue
            for ep in sl.get("endpoints") or []:
                if _live(ep, pods, ns, stopping):
                    backends.update(Backend(a, target) for a in ep.get("addresses") or []
                                    if isinstance(a, str))
        label = f"{ns}/{name}:{pname or port}"
        out += [VirtualPort(vip, proto, port, sorted(backends, key=lambda b: (b.ip, b.port)),
                            affinity, label) for vip in vips]
    return out


class KubeProxy(Controller):
    name = "kube-proxy"

    def __init__(self, state: KubeState, network: Network) -> None:
        self.state = state
        self.network = network
        self._ports: dict[str, list[VirtualPort]] = {}  # cluster -> its ports, last pass
        # cluster -> uids of pods a before_stop named that may still look ready (a grace-0
        # delete, a deleted profile's stop): out until their slices say not ready, or gone.
        self._stopping: dict[str, set[str]] = {}

    def interested(self, change: Change) -> bool:
        if change.resource in ("services", "endpointslices"):
            return True
        return change.resource == "pods" and (
            change.type == "DELETED" or bool(change.obj["metadata"].get("deletionTimestamp")))

    def reconcile(self, cluster: str) -> None:
        self._ports[cluster] = self.cluster_ports(cluster)
        self._apply()

    def sync_all(self) -> None:
        """Every cluster at once, clusters or not (a start: a table left by a killed server
        with no cluster left is removed)."""
        try:
            self._ports = {c["name"]: self.cluster_ports(c["name"])
                           for c in self.state.tables.list_clusters()}
            self._apply()
        except Exception:  # noqa: BLE001 - the start goes on; every pass tries again
            log.exception("kube-proxy: applying the services at start")

    def before_stop(self, cluster: str, pod: Obj) -> None:
        """control/pods.py's hook: the pod (its deletionTimestamp already stored) leaves every
        VIP before its task is stopped. Synchronous, quick; never raises."""
        try:
            uid = pod["metadata"].get("uid")
            if uid:
                self._stopping.setdefault(cluster, set()).add(uid)
            self.reconcile(cluster)
        except Exception:  # noqa: BLE001 - a stop must go on; the next pass retries
            log.exception("kube-proxy: taking pod %s out of the services",
                          pod.get("metadata", {}).get("name"))

    def cluster_ports(self, cluster: str) -> list[VirtualPort]:
        pods = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p
                for p in self.state.list(cluster, "pods")}
        by_service: dict[tuple[str, str], list[Obj]] = {}
        for sl in self.state.list(cluster, "endpointslices"):
            owner = (sl["metadata"].get("labels") or {}).get(SERVICE_NAME)
            if owner:
                by_service.setdefault((sl["metadata"]["namespace"], owner), []).append(sl)
        stopping = self._stopping.get(cluster, set())
        if stopping:  # each stays out while its pod lives and a slice still says it is ready
            uids = {p["metadata"].get("uid") for p in pods.values()}
            shown = {(ep.get("targetRef") or {}).get("uid")
                     for sls in by_service.values() for sl in sls
                     for ep in sl.get("endpoints") or [] if _ready(ep)}
            stopping &= uids & shown
        out: list[VirtualPort] = []
        for svc in self.state.list(cluster, "services"):
            meta = svc["metadata"]
            if (meta.get("namespace"), meta["name"]) == ("kube-system", "kube-dns"):
                continue  # each pod's netns answers the cluster DNS address itself
            out += service_ports(svc, by_service.get((meta["namespace"], meta["name"]), []),
                                 pods, frozenset(stopping))
        return out

    def _apply(self) -> None:
        live = {c["name"] for c in self.state.tables.list_clusters()}
        for gone in set(self._ports) - live:
            del self._ports[gone]
            self._stopping.pop(gone, None)
        seen: set[tuple[str, str, int]] = set()
        ports: list[VirtualPort] = []
        for cluster in sorted(self._ports):
            for vp in self._ports[cluster]:
                key = (vp.vip, vp.protocol, vp.port)
                if key in seen:  # allocation keeps VIPs unique; never let one break all
                    log.warning("kube-proxy: %s %s/%d of %s is taken by another cluster",
                                vp.vip, vp.protocol, vp.port, cluster)
                    continue
                seen.add(key)
                ports.append(vp)
        self.network.apply_services(ServicesSpec(ports))
