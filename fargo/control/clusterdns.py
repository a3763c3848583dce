"""Each EKS cluster's DNS (cluster.local), answered by fargo's resolver to that cluster's pods
only, and what a pod's containers are told of it (resolv.conf, hosts).

A RecordSource of control/dns.py's Names: a view that carries a cluster (a pod's netns,
control/metadata.py) gets cluster.local and the service range's reverse zone from
model/clusterdns.py's rules over the cluster's namespaces, Services, EndpointSlices and
pods. Queries never read the store while nothing changed: the records of a cluster are built
once from KubeState and again after any write of those kinds (KubeState.listeners mark the
cluster stale; the next query rebuilds). The pod's netns DNATs the cluster DNS address
(base + 10 of serviceIpv4Cidr) to the resolver's sockets there, so nothing leaves the pod."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ..model import clusterdns
from ..model.dns import Record, View, Zone
from ..model.taskrecord import Task
from ..port.data import ContainerSpec
from .kubestate import Change, KubeState

log = logging.getLogger("fargo.clusterdns")
_KINDS = frozenset({"services", "endpointslices", "pods", "namespaces"})
_SUFFIXES = ("." + clusterdns.ZONE, ".in-addr.arpa")

# A cluster's serviceIpv4Cidr (None: no such cluster).
ServiceCidr = Callable[[str], str | None]


class ClusterDns:
    def __init__(self, state: KubeState, service_cidr: ServiceCidr, region: str):
        self.state = state
        self.service_cidr = service_cidr
        self.region = region
        self._lock = threading.Lock()
        self._tables: dict[str, clusterdns.ClusterRecords] = {}
        self._cidrs: dict[str, str | None] = {}
        self._stale: set[str] = set()
        self.builds = 0  # how many times a cluster's records were built (for tests, bench)
        state.listeners.append(self._changed)

    def _changed(self, cluster: str, change: Change) -> None:
        if change.resource in _KINDS:
            with self._lock:
                self._stale.add(cluster)

    # ---- RecordSource
    def zones(self, view: View) -> Sequence[Zone]:
        if view.cluster is None:
            return ()
        return clusterdns.zones(self._cidr(view.cluster))

    def records_at(self, view: View, name: str) -> Sequence[Record] | None:
        if view.cluster is None or not name.endswith(_SUFFIXES) and name != clusterdns.ZONE:
            return None
        return self._table(view.cluster).at(name)

    def _cidr(self, cluster: str) -> str | None:
        with self._lock:
            if cluster in self._cidrs:
                return self._cidrs[cluster]
        cidr = self.service_cidr(cluster)
        with self._lock:
            self._cidrs[cluster] = cidr
        return cidr

    def _table(self, cluster: str) -> clusterdns.ClusterRecords:
        with self._lock:
            table = self._tables.get(cluster)
            if table is not None and cluster not in self._stale:
                return table
            self._stale.discard(cluster)  # a write from here on marks it stale again
        table = self._build(cluster)
        with self._lock:
            self._tables[cluster] = table
        return table

    def _build(self, cluster: str) -> clusterdns.ClusterRecords:
        cidr = self.service_cidr(cluster)
        with self._lock:
            self._cidrs[cluster] = cidr
        if cidr is None:  # the cluster is gone: nothing under cluster.local exists
            return clusterdns.ClusterRecords()
        namespaces = [str(ns["metadata"]["name"])
                      for ns in self.state.list(cluster, "namespaces")]
        services = self.state.list(cluster, "services")
        headless = any((s.get("spec") or {}).get("clusterIP") == "None" for s in services)
        # Only a headless Service's answers depend on endpoints and their pods.
        slices = self.state.list(cluster, "endpointslices") if headless else []
        pods = self.state.list(cluster, "pods") if headless else []
        self.builds += 1
        return clusterdns.build(namespaces, services, slices, pods, cidr)

    # ---- pods' side
    def address(self, task: Task) -> str | None:
        """The cluster DNS address a pod's netns sends to the resolver (None: not a pod, or
        its cluster is gone)."""
        if task.pod is None:
            return None
        cidr = self._cidr(task.pod.cluster)
        return clusterdns.dns_address(cidr) if cidr else None

    def view(self, task: Task, vpc_id: str) -> View:
        return View(vpc_id, task.pod.cluster if task.pod is not None else None)

    def container_spec(self, task: Task, spec: ContainerSpec,
                       vpc_resolver: str | None) -> ContainerSpec:
        """A pod container's resolv.conf by its dnsPolicy and dnsConfig, and its hosts file
        and host name when it names its own hostname; other tasks' specs as they are."""
        if task.pod is None or vpc_resolver is None:
            return spec
        pod = self.state.find(task.pod.cluster, "pods", task.pod.namespace, task.pod.name)
        if pod is None:
            return spec
        pspec: dict[str, Any] = pod.get("spec") or {}
        resolv = clusterdns.resolv_conf(pspec, task.pod.namespace, self.address(task),
                                        vpc_resolver, self.region)
        hosts = clusterdns.hosts_file(task.ip, task.pod.namespace, pspec)
        if hosts is None:
            return dataclasses.replace(spec, resolv_conf=resolv)
        return dataclasses.replace(spec, resolv_conf=resolv, hosts=hosts,
                                   hostname=str(pspec["hostname"]))
