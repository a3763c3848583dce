"""Service writes with their allocations, and the kube-dns Service of every cluster.

A Service's clusterIP (and a LoadBalancer's nodePorts) are allocated inside the create or
update request itself, with no `await` between the pick and the write: no other request
interleaves, and the Service objects in the store are the only allocation record, so a
SIGKILL can neither leak an address nor hand one out twice.

ClusterIPs are unique across every cluster of this server that shares a service range (the
host has one table of VIPs), except the cluster DNS address (base + 10): each cluster's
kube-system/kube-dns holds it, and each pod's own netns answers it. nodePorts are a
cluster's own (they would be opened on that cluster's nodes)."""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import logging
import random
from typing import Any

from ..model import kubeservice as ksvc
from ..model import objmeta
from ..model.kubeerrors import KubeError, invalid
from ..model.kubekinds import rule
from ..model.taskrecord import Task
from ..port.data import ContainerSpec
from .kubecontrol import Controller
from .kubestate import Change, KubeState
from .objects import DeleteOptions, Objects, check_kind, check_namespace

log = logging.getLogger("fargo.kubeservices")
Obj = dict[str, Any]
DEFAULT_RANGE = "172.20.0.0/16"  # EKS's serviceIpv4Cidr when the VPC is not in 172.16/12
DNS_NAMESPACE, DNS_NAME = "kube-system", "kube-dns"
DNS_OFFSET = 10


def service_range(cluster_doc: Obj | None) -> ipaddress.IPv4Network:
    cidr = ((cluster_doc or {}).get("kubernetesNetworkConfig") or {}).get(
        "serviceIpv4Cidr") or DEFAULT_RANGE
    return ipaddress.IPv4Network(cidr)


def dns_ip(net: ipaddress.IPv4Network) -> str:
    return str(net.network_address + DNS_OFFSET)


def static_band(net: ipaddress.IPv4Network) -> int:
    """Upstream keeps the low part of the range for addresses users ask for (min(max(16,
    size/16), 256)) and picks at random above it first."""
    return min(max(16, net.num_addresses // 16), 256)


def kube_dns_service(net: ipaddress.IPv4Network) -> Obj:
    """kube-system/kube-dns as EKS's CoreDNS add-on makes it."""
    ip = dns_ip(net)
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": DNS_NAME, "namespace": DNS_NAMESPACE,
                     "labels": {"eks.amazonaws.com/component": "kube-dns",
                                "k8s-app": "kube-dns",
                                "kubernetes.io/cluster-service": "true",
                                "kubernetes.io/name": "CoreDNS"}},
        "spec": {"clusterIP": ip, "clusterIPs": [ip], "type": "ClusterIP",
                 "selector": {"k8s-app": "kube-dns"},
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP",
                            "targetPort": 53}]}}


def _reserved(net: ipaddress.IPv4Network, ip: str, ns: str, name: str) -> bool:
    """base + 1 is default/kubernetes' (EKS's API Service) and base + 10 kube-dns': held
    for them even before they exist, as they are from a cluster's first moment on EKS."""
    owners = {str(net.network_address + 1): ("default", "kubernetes"),
              dns_ip(net): (DNS_NAMESPACE, DNS_NAME)}
    return ip in owners and owners[ip] != (ns, name)


class ServiceWrites:
    """create/update/delete of Services through control/objects.py, with the allocations
    made in the same synchronous step as the write."""

    def __init__(self, state: KubeState, objects: Objects, rand: random.Random | None = None):
        self.state = state
        self.objects = objects
        self.rand = rand or random.SystemRandom()

    # ---- the verbs
    def create(self, cluster: str, ns: str, body: Any, dry_run: bool = False) -> Obj:
        obj = copy.deepcopy(check_kind(body, rule("services")))
        check_namespace(obj, ns)
        objmeta.check_metadata(obj, "Service")
        ksvc.default_service(obj)
        ksvc.check_service(obj, None)  # the user's mistakes before any allocation
        self.allocate(cluster, ns, obj, None)
        return self.objects.create(cluster, "services", ns, obj, dry_run)

    def replace(self, cluster: str, ns: str, name: str, new: Obj,
                dry_run: bool = False) -> Obj:
        old = self.state.get(cluster, "services", ns, name)
        new = copy.deepcopy(check_kind(new, rule("services")))
        meta = new.get("metadata")
        if isinstance(meta, dict) and meta.get("name") in (None, ""):
            meta["name"] = name
        if isinstance(new.get("spec"), dict) and isinstance(meta, dict) and \
                isinstance(meta.get("name"), str):
            ksvc.dropped_for_type(new, old)
            ksvc.patch_allocated(new, old)
            ksvc.default_service(new)
            ksvc.check_service(new, old)
            self.allocate(cluster, ns, new, old)
        return self.objects.update(cluster, "services", ns, name, new, None, dry_run)

    def delete(self, cluster: str, ns: str, name: str, opts: DeleteOptions) -> Obj:
        if ns == DNS_NAMESPACE and name == DNS_NAME:
            log.info("cluster %s: kube-system/kube-dns deleted; it is made again", cluster)
        return self.objects.delete(cluster, "services", ns, name, opts)

    # ---- allocation
    def _range_of(self, cluster: str) -> ipaddress.IPv4Network:
        return service_range(self.state.tables.get_cluster(cluster))

    def used_ips(self, cluster: str, net: ipaddress.IPv4Network,
                 skip: tuple[str, str] | None = None) -> set[str]:
        """Every clusterIP held in this range: all clusters sharing it, and the DNS
        address only by this cluster's own Services."""
        dns = dns_ip(net)
        used: set[str] = set()
        for doc in self.state.tables.list_clusters():
            if service_range(doc) != net:
                continue
            for svc in self.state.list(doc["name"], "services"):
                meta = svc["metadata"]
                if doc["name"] == cluster and skip == (meta.get("namespace"), meta["name"]):
                    continue
                for ip in ksvc.spec_of(svc).get("clusterIPs") or \
                        [ksvc.spec_of(svc).get("clusterIP")]:
                    if isinstance(ip, str) and ip not in ("", ksvc.HEADLESS) and \
                            (ip != dns or doc["name"] == cluster):
                        used.add(ip)
        return used

    def allocate(self, cluster: str, ns: str, obj: Obj, old: Obj | None) -> None:
        """Fill in the clusterIP and nodePorts `obj` needs (checked for their range and
        their holders) in place; 422 as the apiserver words it."""
        spec = ksvc.spec_of(obj)
        name = obj["metadata"]["name"]
        if ksvc.uses_cluster_ip(obj):
            had = ksvc.spec_of(old).get("clusterIP") if old is not None and \
                ksvc.uses_cluster_ip(old) else None
            if not had:
                ip = self._cluster_ip(cluster, ns, name, spec.get("clusterIP") or "")
                spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
        if ksvc.service_type(obj) == "LoadBalancer":
            self._node_ports(cluster, ns, obj, old)

    def _cluster_ip(self, cluster: str, ns: str, name: str, asked: str) -> str:
        if asked == ksvc.HEADLESS:
            return asked
        net = self._range_of(cluster)
        used = self.used_ips(cluster, net, (ns, name))
        if asked:
            addr = ipaddress.ip_address(asked)  # its form was checked
            why = None
            if addr not in net or addr in (net.network_address, net.broadcast_address):
                why = ("provided IP is not in the valid range. The range of valid IPs is "
                       f"{net}")
            elif asked in used or _reserved(net, asked, ns, name):
                why = "provided IP is already allocated"
            if why:
                raise invalid("Service", name, [("spec.clusterIPs", f"Invalid value: "
                                                 f"{ksvc.q([asked])}: failed to allocate IP "
                                                 f"{asked}: {why}")])
            return asked
        band = static_band(net)
        first, last = int(net.network_address) + 1, int(net.broadcast_address) - 1
        # Above the static band first, at random; then anywhere but the DNS address.
        for low in (int(net.network_address) + band, first):
            count = last - low + 1
            start = self.rand.randrange(count)
            for i in range(count):
                ip = str(ipaddress.IPv4Address(low + (start + i) % count))
                if ip not in used and ip != dns_ip(net):
                    return ip
        raise KubeError(422, "Invalid", f'Service "{name}" is invalid: spec.clusterIPs: '
                        "Internal error: failed to allocate a serviceIP: range is full")

    def _node_ports(self, cluster: str, ns: str, obj: Obj, old: Obj | None) -> None:
        spec = ksvc.spec_of(obj)
        name = obj["metadata"]["name"]
        low, high = ksvc.NODE_PORTS
        used: set[int] = set()
        for svc in self.state.list(cluster, "services"):
            if (svc["metadata"].get("namespace"), svc["metadata"]["name"]) == (ns, name):
                continue
            used.update(p["nodePort"] for p in ksvc.ports_of(svc) if p.get("nodePort"))
            hc = ksvc.spec_of(svc).get("healthCheckNodePort")
            if hc:
                used.add(hc)
        mine: set[int] = set()
        pairs: set[tuple[int, Any]] = set()  # one nodePort per protocol, as upstream
        errors = []
        for i, port in enumerate(ksvc.ports_of(obj)):
            asked = port.get("nodePort")
            if not asked:
                continue
            if (asked, port.get("protocol")) in pairs:
                errors.append((f"spec.ports[{i}].nodePort", f"Duplicate value: {asked}"))
            pairs.add((asked, port.get("protocol")))
            if not low <= asked <= high:
                errors.append((f"spec.ports[{i}].nodePort", f"Invalid value: {asked}: "
                               "provided port is not in the valid range. The range of valid "
                               f"ports is {low}-{high}"))
            elif asked in used:
                errors.append((f"spec.ports[{i}].nodePort", f"Invalid value: {asked}: "
                               "provided port is already allocated"))
            mine.add(asked)
        if errors:
            raise invalid("Service", name, errors)
        by_number: dict[Any, int] = {p.get("port"): p["nodePort"] for p in ksvc.ports_of(obj)
                                     if p.get("nodePort")}

        def pick() -> int:
            span = high - low + 1
            start = self.rand.randrange(span)
            for i in range(span):
                port = low + (start + i) % span
                if port not in used and port not in mine:
                    mine.add(port)
                    return port
            raise KubeError(422, "Invalid", f'Service "{name}" is invalid: spec.ports: '
                            "Internal error: failed to allocate a nodePort: range is full")
        if spec.get("allocateLoadBalancerNodePorts", True):
            for port in ksvc.ports_of(obj):
                if not port.get("nodePort"):
                    # The same port number over another protocol shares its nodePort.
                    port["nodePort"] = by_number.get(port.get("port")) or pick()
                    by_number.setdefault(port.get("port"), port["nodePort"])
        if spec.get("externalTrafficPolicy") == "Local" and not spec.get("healthCheckNodePort"):
            spec["healthCheckNodePort"] = pick()


class ServiceLinks:
    """A pod container's service variables (enableServiceLinks, default true), read from
    its namespace's Services when the container is made, as kubelet does; the container's
    own variables win."""

    def __init__(self, state: KubeState):
        self.state = state

    def container_spec(self, task: Task, spec: ContainerSpec) -> ContainerSpec:
        if task.pod is None:
            return spec
        ref = task.pod
        pod = self.state.find(ref.cluster, "pods", ref.namespace, ref.name)
        if pod is None or (pod.get("spec") or {}).get("enableServiceLinks") is False:
            return spec
        links = ksvc.link_env(self.state.list(ref.cluster, "services", ref.namespace))
        if not links:
            return spec
        return dataclasses.replace(spec, env={**links, **spec.env})


class KubeDnsService(Controller):
    """kube-system/kube-dns in every cluster, new or made before this server knew of it
    (level-triggered: a pass makes it whenever it is missing)."""
    name = "kube-dns service"

    def __init__(self, writes: ServiceWrites):
        self.writes = writes

    def interested(self, change: Change) -> bool:
        return (change.resource == "services" and change.type == "DELETED") or \
            (change.resource == "namespaces" and change.type == "ADDED")

    def reconcile(self, cluster: str) -> None:
        state = self.writes.state
        if state.find(cluster, "services", DNS_NAMESPACE, DNS_NAME) is not None:
            return
        ns = state.find(cluster, "namespaces", "", DNS_NAMESPACE)
        if ns is None or (ns.get("status") or {}).get("phase") == "Terminating":
            return
        net = self.writes._range_of(cluster)
        try:
            self.writes.create(cluster, DNS_NAMESPACE, kube_dns_service(net))
        except KubeError as err:  # e.g. a user's Service took the address: say so, retry
            log.warning("cluster %s: kube-system/kube-dns: %s", cluster, err.message)
