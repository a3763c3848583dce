"""A cluster's DNS as Kubernetes specifies it (kubernetes/dns docs/specification.md) and as
EKS's CoreDNS answers it (`pods insecure`, TTL 5), and the /etc/resolv.conf kubelet writes
for a pod by its dnsPolicy and dnsConfig. Pure: the objects are passed in.

Names answered under cluster.local:
- `svc.ns.svc.cluster.local`: A of the ClusterIP; for a headless Service the ready
  endpoints' addresses; an ExternalName Service is a CNAME to its externalName;
- `_port._proto.svc.ns.svc.cluster.local`: SRV per named port (a headless Service's: one per
  ready endpoint, to `host.svc.ns.svc.cluster.local`, each an A of its own; host is the
  endpoint's hostname, the pod's spec.hostname when its spec.subdomain is the Service, or
  the address with dashes);
- `a-b-c-d.ns.pod.cluster.local`: A a.b.c.d in a namespace that exists (CoreDNS's
  `pods insecure`, which EKS's Corefile sets);
- PTR of ClusterIPs in the service range's reverse zone.
Whatever else is under cluster.local does not exist (NXDOMAIN), names on the way to a name
that does exist exist without records (NOERROR, no data)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Any

from .dns import (
    AAAA,
    A,
    Cname,
    Ptr,
    Record,
    Srv,
    Zone,
    internal_domain,
    name_key,
    reverse_name,
    reverse_zone,
)

ZONE = "cluster.local"
TTL = 5  # CoreDNS's kubernetes plugin default, which EKS's Corefile keeps
DNS_OFFSET = 10  # kube-dns's ClusterIP: the service range's base + 10
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                  "characters, '-' or '.', and must start and end with an alphanumeric "
                  "character (e.g. 'example.com', regex used for validation is "
                  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")


def dns_address(service_cidr: str) -> str:
    """The cluster's DNS address (kube-dns's ClusterIP): the service range's base + 10."""
    net = ipaddress.IPv4Network(service_cidr, strict=False)
    return str(net.network_address + DNS_OFFSET)


def zones(service_cidr: str | None) -> list[Zone]:
    """The zones a cluster's pods get answers for with authority."""
    out = [Zone(ZONE, TTL)]
    if service_cidr:
        out.append(Zone(reverse_zone(service_cidr), TTL))
    return out


# ---- a pod's resolv.conf


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _merge_options(base: list[str], given: Sequence[Any]) -> list[str]:
    """kubelet's merge: by option name, the pod's value replacing the default's."""
    merged: dict[str, str | None] = {}
    for text in base:
        name, sep, value = text.partition(":")
        merged[name] = value if sep else None
    for opt in given:
        if isinstance(opt, dict) and opt.get("name"):
            given_value = opt.get("value")
            merged[str(opt["name"])] = None if given_value in (None, "") else str(given_value)
    return [key if val is None else f"{key}:{val}" for key, val in merged.items()]


def _fit_searches(searches: list[str]) -> list[str]:
    """kubelet drops what passes the resolver's limits (32 domains, 2048 characters)."""
    out: list[str] = []
    size = -1
    for search in searches[:MAX_SEARCHES]:
        if size + 1 + len(search) > MAX_SEARCH_CHARS:
            break
        size += 1 + len(search)
        out.append(search)
    return out


def resolv_conf(spec: dict[str, Any], namespace: str, cluster_dns: str | None,
                vpc_resolver: str, region: str) -> str:
    """/etc/resolv.conf of a pod's containers. ClusterFirst (the default): the cluster's DNS,
    the namespace's search path then the VPC's internal domain (the node's search path on
    EKS), ndots:5. Default: what an ECS task on Fargate gets (the VPC resolver, the internal
    domain). None: dnsConfig alone. dnsConfig is merged into any of them as kubelet does."""
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    vpc_search = [internal_domain(region)]
    servers: list[str]
    searches: list[str]
    options: list[str]
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and cluster_dns:
        servers = [cluster_dns]
        searches = [f"{namespace}.svc.{ZONE}", f"svc.{ZONE}", ZONE, *vpc_search]
        options = ["ndots:5"]
    elif policy == "None":
        servers, searches, options = [], [], []
    else:  # Default, or ClusterFirst without a cluster DNS address (kubelet falls back)
        servers, searches, options = [vpc_resolver], vpc_search, []
    config = spec.get("dnsConfig") or {}
    servers = _dedupe([*servers, *(str(s) for s in config.get("nameservers") or [])])
    searches = _dedupe([*searches, *(str(s) for s in config.get("searches") or [])])
    options = _merge_options(options, config.get("options") or [])
    lines = []
    searches = _fit_searches(searches)
    if searches:
        lines.append("search " + " ".join(searches))
    lines += [f"nameserver {s}" for s in servers[:MAX_NAMESERVERS]]
    if options:
        lines.append("options " + " ".join(options))
    return "".join(line + "\n" for line in lines)


def hosts_file(pod_ip: str, namespace: str, spec: dict[str, Any]) -> str | None:
    """kubelet's /etc/hosts for a pod that names its own hostname (None: fargo's default,
    the task's private DNS name, stays)."""
    hostname = spec.get("hostname")
    if not hostname:
        return None
    subdomain = spec.get("subdomain")
    names = f"{hostname}.{subdomain}.{namespace}.svc.{ZONE}\t{hostname}" if subdomain \
        else hostname
    return ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"{pod_ip}\t{names}\n")


def spec_errors(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """The apiserver's checks of dnsPolicy, dnsConfig, hostname and subdomain."""
    out: list[tuple[str, str]] = []
    policy = spec.get("dnsPolicy")
    if policy is not None and policy not in POLICIES:
        out.append(("spec.dnsPolicy", f"Unsupported value: {str(policy)[:60]!r}: supported "
                    "values: " + ", ".join(f'"{p}"' for p in POLICIES)))
    for key in ("hostname", "subdomain"):
        value = spec.get(key)
        if value not in (None, "") and (not isinstance(value, str) or len(value) > 63
                                        or not _LABEL_RE.match(value)):
            out.append((f"spec.{key}", f"Invalid value: {str(value)[:80]!r}: a lowercase RFC "
                        "1123 label must consist of lower case alphanumeric characters or "
                        "'-', and must start and end with an alphanumeric character (e.g. "
                        "'my-name',  or '123-abc', regex used for validation is "
                        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"))
    config = spec.get("dnsConfig")
    if policy == "None" and config is None:
        out.append(("spec.dnsConfig", "Required value: must provide `dnsConfig` when "
                    "`dnsPolicy` is None"))
    if config is None:
        return out
    if not isinstance(config, dict):
        return [*out, ("spec.dnsConfig", "Invalid value: must be an object")]
    servers = config.get("nameservers") or []
    if not isinstance(servers, list):
        servers = [servers]
    if policy == "None" and not servers:
        out.append(("spec.dnsConfig.nameservers", "Required value: must provide at least one "
                    "DNS nameserver when `dnsPolicy` is None"))
    if len(servers) > MAX_NAMESERVERS:
        out.append(("spec.dnsConfig.nameservers", f"Invalid value: {servers!r:.200}: must not "
                    f"have more than {MAX_NAMESERVERS} nameservers"))
    for i, server in enumerate(servers):
        try:
            ipaddress.ip_address(server if isinstance(server, str) else "-")
        except ValueError:
            out.append((f"spec.dnsConfig.nameservers[{i}]", f"Invalid value: "
                        f"{str(server)[:80]!r}: must be a valid IP address, (e.g. 10.9.8.7 "
                        "or 2001:db8::ffff)"))
    searches = config.get("searches") or []
    if not isinstance(searches, list):
        searches = [searches]
    if len(searches) > MAX_SEARCHES:
        out.append(("spec.dnsConfig.searches", f"Invalid value: {len(searches)} paths: must "
                    f"not have more than {MAX_SEARCHES} search paths"))
    if len(" ".join(str(s) for s in searches)) > MAX_SEARCH_CHARS:
        out.append(("spec.dnsConfig.searches", f"Invalid value: must not have more than "
                    f"{MAX_SEARCH_CHARS} characters (including spaces) in the search list"))
    for i, search in enumerate(searches):
        text = search.removesuffix(".") if isinstance(search, str) else None
        if search == ".":
            continue
        if not text or len(text) > 253 or not _SUBDOMAIN_RE.match(text):
            out.append((f"spec.dnsConfig.searches[{i}]",
                        f"Invalid value: {str(search)[:80]!r}: {_SUBDOMAIN_MSG}"))
    for i, opt in enumerate(config.get("options") or []):
        if not isinstance(opt, dict) or not opt.get("name"):
            out.append((f"spec.dnsConfig.options[{i}]",
                        "Required value: Option.Name must not be empty"))
    return out


# ---- the records of one cluster


class ClusterRecords:
    """A cluster's names: records by name, and the namespaces (pod names need theirs)."""

    def __init__(self, namespaces: Iterable[str] = (), reverse_apex: str | None = None):
        self.records: dict[str, list[Record]] = {}
        self.namespaces = frozenset(namespaces)
        self.reverse_apex = reverse_apex

    def add(self, record: Record, apex: str = ZONE) -> None:
        self.exists(record.name, apex)
        self.records[record.name].append(record)

    def exists(self, name: str, apex: str = ZONE) -> None:
        """The name and every name between it and its zone's apex exist."""
        while name.endswith("." + apex) and name not in self.records:
            self.records[name] = []
            name = name.split(".", 1)[1]

    def at(self, name: str) -> list[Record] | None:
        """The records at a name (a model/dns.py key) under cluster.local or the service
        range's reverse zone; None when no such name exists."""
        found = self.records.get(name)
        if found is not None:
            return found
        return self._pod_name(name)

    def _pod_name(self, name: str) -> list[Record] | None:
        labels = name.split(".")
        if len(labels) != 5 or ".".join(labels[2:]) != f"pod.{ZONE}" \
                or labels[1] not in self.namespaces:
            return None
        text = labels[0].replace("-", ".")
        try:
            ip = ipaddress.IPv4Address(text)
        except ValueError:
            return None
        if str(ip) != text:  # no leading zeros or other spellings of the address
            return None
        return [Record(name, TTL, A(text))]


def _labels(obj: dict[str, Any]) -> dict[str, Any]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _ns_name(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def _address(text: Any) -> A | AAAA | None:
    try:
        ip = ipaddress.ip_address(text if isinstance(text, str) else "")
    except ValueError:
        return None
    return A(str(ip)) if ip.version == 4 else AAAA(str(ip))


def _host_label(address: str) -> str:
    return address.replace(".", "-").replace(":", "-")


def _ready(endpoint: dict[str, Any], pods: dict[tuple[str, str], dict[str, Any]],
           ns: str, publish_not_ready: bool) -> bool:
    """An endpoint DNS answers with: ready (absent counts as ready, as upstream says), and its
    pod neither gone nor terminating even if the slice has not caught up yet."""
    ref = endpoint.get("targetRef") or {}
    if ref.get("kind") == "Pod":
        pod = pods.get((str(ref.get("namespace") or ns), str(ref.get("name") or "")))
        if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            return False
    if publish_not_ready:
        return True
    return (endpoint.get("conditions") or {}).get("ready") is not False


def _hostname(endpoint: dict[str, Any], address: str, svc: str,
              pods: dict[tuple[str, str], dict[str, Any]], ns: str) -> str:
    if endpoint.get("hostname"):
        return str(endpoint["hostname"])
    ref = endpoint.get("targetRef") or {}
    pod = pods.get((str(ref.get("namespace") or ns), str(ref.get("name") or ""))) \
        if ref.get("kind") == "Pod" else None
    spec = (pod or {}).get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == svc:
        return str(spec["hostname"])
    return _host_label(address)


def build(namespaces: Iterable[str], services: Iterable[dict[str, Any]],
          slices: Iterable[dict[str, Any]], pods: Iterable[dict[str, Any]],
          service_cidr: str | None = None) -> ClusterRecords:
    """Every name of one cluster, from its namespaces, Services, EndpointSlices and pods
    (service_cidr: its service range, whose reverse zone holds the ClusterIPs' PTRs)."""
    table = ClusterRecords(namespaces, reverse_zone(service_cidr) if service_cidr else None)
    for base in (f"svc.{ZONE}", f"pod.{ZONE}"):
        table.exists(base)
    for ns in table.namespaces:
        table.exists(f"{ns}.svc.{ZONE}")
        table.exists(f"{ns}.pod.{ZONE}")
    by_pod = {_ns_name(p): p for p in pods}
    by_service: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in slices:
        owner = _labels(s).get(SERVICE_NAME_LABEL)
        if owner:
            by_service.setdefault((_ns_name(s)[0], str(owner)), []).append(s)
    for svc in services:
        ns, name = _ns_name(svc)
        if name and ns in table.namespaces:
            _service(table, ns, name, svc.get("spec") or {},
                     by_service.get((ns, name), []), by_pod)
    return table


def _service(table: ClusterRecords, ns: str, name: str, spec: dict[str, Any],
             slices: list[dict[str, Any]], pods: dict[tuple[str, str], dict[str, Any]]) -> None:
    fqdn = f"{name}.{ns}.svc.{ZONE}"
    table.exists(fqdn)
    if spec.get("type") == "ExternalName":
        target = name_key(str(spec.get("externalName") or ""))
        if target is not None:
            table.add(Record(fqdn, TTL, Cname(target)))
        return
    ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip]
    if ips and ips[0] != "None":
        for ip in ips:
            data = _address(ip)
            if data is not None:
                table.add(Record(fqdn, TTL, data))
                if isinstance(data, A) and table.reverse_apex:
                    table.add(Record(reverse_name(data.address), TTL, Ptr(fqdn)),
                              table.reverse_apex)
        for port in spec.get("ports") or []:
            if isinstance(port, dict) and port.get("name") and isinstance(port.get("port"), int):
                proto = str(port.get("protocol") or "TCP").lower()
                table.add(Record(f"_{port['name']}._{proto}.{fqdn}", TTL,
                                 Srv(0, 100, port["port"], fqdn)))
        return
    if ips and ips[0] == "None":
        _headless(table, ns, name, fqdn, spec, slices, pods)


def _headless(table: ClusterRecords, ns: str, name: str, fqdn: str, spec: dict[str, Any],
              slices: list[dict[str, Any]], pods: dict[tuple[str, str], dict[str, Any]]) -> None:
    publish = bool(spec.get("publishNotReadyAddresses"))
    targets: dict[str, tuple[str, list[dict[str, Any]]]] = {}  # host name -> address, ports
    for s in slices:
        for ep in s.get("endpoints") or []:
            if not isinstance(ep, dict) or not _ready(ep, pods, ns, publish):
                continue
            for address in ep.get("addresses") or []:
                if _address(address) is None:
                    continue
                host = f"{_hostname(ep, str(address), name, pods, ns)}.{fqdn}"
                if name_key(host) is not None and host not in targets:
                    targets[host] = (str(address), list(s.get("ports") or []))
    seen: set[str] = set()
    for host, (address, ports) in sorted(targets.items()):
        data = _address(address)
        assert data is not None
        if address not in seen:
            seen.add(address)
            table.add(Record(fqdn, TTL, data))
        table.add(Record(host, TTL, data))
        for port in ports:
            if isinstance(port, dict) and port.get("name") and isinstance(port.get("port"), int):
                proto = str(port.get("protocol") or "TCP").lower()
                table.add(Record(f"_{port['name']}._{proto}.{fqdn}", TTL,
                                 Srv(0, max(1, 100 // len(targets)), port["port"], host)))
