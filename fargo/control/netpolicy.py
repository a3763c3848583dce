"""The NetworkPolicy controller: from every cluster's NetworkPolicies, pods (addresses,
labels, named ports) and namespaces (labels), the rules each isolated pod's traffic must
pass, applied to the host in one transaction (Network.apply_policies) whenever they change.

Level-triggered: a pass rebuilds a cluster's part from the store; the whole spec (every
cluster's parts) is applied when it differs from what this process last applied, so the
first pass after a start always applies it (a restart converges the kernel on the store)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..model import netpolicy as npm
from ..model.selectors import selector_matcher
from ..port.firewall import PolicySpec
from ..port.protocols import Network
from ..store.kube import KubeTables
from .kubecontrol import Controller
from .kubestate import Change, KubeState

log = logging.getLogger("fargo.netpolicy")
WATCHED = ("networkpolicies", "pods", "namespaces")


class NetworkPolicies(Controller):
    name = "network policy controller"

    def __init__(self, state: KubeState, tables: KubeTables, network: Network,
                 subnets: Callable[[], list[str]]):
        self.state = state
        self.tables = tables
        self.network = network
        self.subnets = subnets  # ids of every subnet (their bridges carry the pods)
        self._parts: dict[str, npm.PodRules] = {}
        self._applied: PolicySpec | None = None
        # Per cluster with policies, the pods its last pass saw (address -> uid): a pod placed
        # at a new address, or at one another pod held, is judged at once (in the write that
        # binds it), before its task starts.
        self._seen: dict[str, dict[str, str]] = {}
        state.listeners.append(self._told)

    def _told(self, cluster: str, change: Change) -> None:
        if change.resource != "pods" or change.type == "DELETED" or cluster not in self._seen:
            return
        view = npm.pod_view(change.obj)
        uid = (change.obj.get("metadata") or {}).get("uid", "")
        if view is None or self._seen[cluster].get(view.ip) == uid:
            return
        # Only a pod a policy isolates needs it now: as a peer of others, a pass later (and
        # denied until then) fails closed.
        if not any(selector_matcher((p.get("spec") or {}).get("podSelector") or {})(
                view.labels) for p in self.state.list(cluster, "networkpolicies", view.namespace)):
            return
        try:
            self.reconcile(cluster)
        except Exception:  # noqa: BLE001 - the controller's next pass tries again
            log.exception("network policies for a new pod of cluster %s", cluster)

    def interested(self, change: Change) -> bool:
        return change.resource in WATCHED

    def cluster_rules(self, cluster: str) -> npm.PodRules:
        policies = self.state.list(cluster, "networkpolicies")
        if not policies:
            self._seen.pop(cluster, None)
            return npm.PodRules()
        # Two pods with one address (one terminating, one new): the live one's labels count.
        by_ip: dict[str, npm.PodView] = {}
        seen: dict[str, str] = {}
        for p in sorted(self.state.list(cluster, "pods"),
                        key=lambda p: bool(p["metadata"].get("deletionTimestamp"))):
            v = npm.pod_view(p)
            if v is not None and v.ip not in by_ip:
                by_ip[v.ip] = v
                seen[v.ip] = p["metadata"].get("uid", "")
        self._seen[cluster] = seen
        namespaces = {n["metadata"]["name"]: dict(n["metadata"].get("labels") or {})
                      for n in self.state.list(cluster, "namespaces")}
        return npm.pod_rules(policies, by_ip.values(), namespaces)

    def converge(self) -> None:
        """Every cluster's part rebuilt and the whole applied (a start's first pass: with no
        cluster left, what an earlier run applied is emptied too)."""
        self._parts = {c["name"]: self.cluster_rules(c["name"])
                       for c in self.tables.list_clusters()}
        self._apply()

    def reconcile(self, cluster: str) -> None:
        self._parts[cluster] = self.cluster_rules(cluster)
        live = {c["name"] for c in self.tables.list_clusters()}
        for gone in [c for c in self._parts if c not in live]:
            del self._parts[gone]
            self._seen.pop(gone, None)
        self._apply()

    def _apply(self) -> None:
        whole = npm.PodRules()
        for name in sorted(self._parts):
            whole.merge(self._parts[name])
        spec = PolicySpec(subnets=sorted(self.subnets()), ingress=whole.ingress,
                          egress=whole.egress)
        if spec != self._applied:
            self.network.apply_policies(spec)  # a refusal raises: the next pass tries again
            self._applied = spec
            log.info("network policies: %d pods isolated for ingress, %d for egress",
                     len(spec.ingress), len(spec.egress))
