"""core/v1 Service as kube-apiserver defaults and checks it (pure). What needs the store
(a clusterIP or nodePort free across the server) is control/kubeservices.py's; this module
says what a Service may be, given what it was.

On EKS Fargate a pod has no node to open a port on, so type NodePort is refused by name;
a LoadBalancer gets nodePorts as upstream allocates them, inert as they are on Fargate."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, TypeGuard

from . import kubeobj
from .kubeerrors import invalid
from .kubekinds import KindRule, register

Obj = dict[str, Any]
Errors = list[tuple[str, str]]
TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
PROTOCOLS = ("SCTP", "TCP", "UDP")
AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds: three hours, as upstream
MAX_AFFINITY_TIMEOUT = 86400
NODE_PORTS = (30000, 32767)  # upstream's default --service-node-port-range
HEADLESS = "None"
NODEPORT_REFUSED = ("NodePort Services are not supported on Fargate: Fargate pods run on no "
                    "node a port could be opened on; use a ClusterIP or LoadBalancer Service")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
               "start with an alphabetic character, and end with an alphanumeric character")
DNS1123_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
               "or '-', and must start and end with an alphanumeric character")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character")


def q(value: Any) -> str:
    """A value as Go's %q / the apiserver's field errors print it."""
    if isinstance(value, str):
        return json.dumps(value[:256])
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[]string{" + ", ".join(q(v) for v in value[:8]) + "}"
    return json.dumps(value)[:256] if value is not None else "null"


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def spec_of(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def service_type(obj: Obj) -> str:
    t = spec_of(obj).get("type")
    return t if isinstance(t, str) and t else "ClusterIP"


def is_headless(obj: Obj) -> bool:
    return spec_of(obj).get("clusterIP") == HEADLESS


def selectorless_headless(obj: Obj) -> bool:
    return is_headless(obj) and not spec_of(obj).get("selector")


def uses_cluster_ip(obj: Obj) -> bool:
    return service_type(obj) != "ExternalName"


def ports_of(obj: Obj) -> list[Obj]:
    ports = spec_of(obj).get("ports")
    return [p for p in ports if isinstance(p, dict)] if isinstance(ports, list) else []


# ---- defaults (what the apiserver's defaulting and the REST strategy fill in)

def default_service(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    kind = spec.setdefault("type", "ClusterIP")
    if not isinstance(obj.get("status"), dict):
        obj["status"] = {"loadBalancer": {}}  # as every Service reads back upstream
    if spec.get("sessionAffinity") in (None, ""):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "ClientIP":
        conf = spec.get("sessionAffinityConfig")
        if conf is None:
            conf = spec["sessionAffinityConfig"] = {}
        if isinstance(conf, dict):
            client = conf.get("clientIP")
            if client is None:
                client = conf["clientIP"] = {}
            if isinstance(client, dict) and client.get("timeoutSeconds") is None:
                client["timeoutSeconds"] = DEFAULT_AFFINITY_TIMEOUT
    for port in ports_of(obj):
        if port.get("protocol") in (None, ""):
            port["protocol"] = "TCP"
        if port.get("targetPort") in (None, "", 0) and _is_int(port.get("port")):
            port["targetPort"] = port["port"]
    if kind == "ExternalName":
        return
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        spec.setdefault("externalTrafficPolicy", "Cluster")
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    # One IPv4 family, as on an EKS ipv4 cluster; a headless Service without a selector
    # gets both families whatever the cluster (its endpoints are the user's), as upstream.
    if spec.get("ipFamilyPolicy") in (None, "") and spec.get("ipFamilies") in (None, []) \
            and selectorless_headless(obj):
        spec["ipFamilyPolicy"], spec["ipFamilies"] = "RequireDualStack", ["IPv4", "IPv6"]
    if spec.get("ipFamilyPolicy") in (None, ""):
        spec["ipFamilyPolicy"] = "SingleStack"
    if spec.get("ipFamilies") in (None, []):
        spec["ipFamilies"] = ["IPv4"]
    ip = spec.get("clusterIP")
    if isinstance(ip, str) and ip and spec.get("clusterIPs") in (None, []):
        spec["clusterIPs"] = [ip]
    ips = spec.get("clusterIPs")
    if spec.get("clusterIP") in (None, "") and isinstance(ips, list) and ips and \
            isinstance(ips[0], str):
        spec["clusterIP"] = ips[0]


def dropped_for_type(new: Obj, old: Obj) -> None:
    """A type change sheds what the old type had and the new one may not keep, when the
    user left it as it was (upstream's dropTypeDependentFields): the clusterIP going to
    ExternalName, nodePorts going to ClusterIP, LoadBalancer-only fields."""
    spec, was = spec_of(new), spec_of(old)
    if not spec or service_type(new) == service_type(old):
        return
    kind = service_type(new)
    if kind == "ExternalName":
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy",
                    "internalTrafficPolicy"):
            if key in spec and spec.get(key) == was.get(key):
                del spec[key]
    if kind not in ("LoadBalancer", "NodePort"):
        old_ports = {(p.get("port"), p.get("protocol")): p.get("nodePort")
                     for p in ports_of(old)}
        for port in ports_of(new):
            if port.get("nodePort") is not None and \
                    old_ports.get((port.get("port"), port.get("protocol"))) == port["nodePort"]:
                del port["nodePort"]
        if spec.get("healthCheckNodePort") == was.get("healthCheckNodePort"):
            spec.pop("healthCheckNodePort", None)
        if spec.get("externalTrafficPolicy") == was.get("externalTrafficPolicy"):
            spec.pop("externalTrafficPolicy", None)
    if kind != "LoadBalancer":
        for key in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if key in spec and spec.get(key) == was.get(key):
                del spec[key]


def patch_allocated(new: Obj, old: Obj) -> None:
    """An update that leaves out what was allocated keeps it (kubectl replace of a file
    without clusterIP or nodePorts), as upstream's patchAllocatedValues."""
    spec, was = spec_of(new), spec_of(old)
    if not spec:
        return
    if uses_cluster_ip(new) and uses_cluster_ip(old):
        if spec.get("clusterIP") in (None, "") and was.get("clusterIP"):
            spec["clusterIP"] = was["clusterIP"]
        if spec.get("clusterIPs") in (None, []) and was.get("clusterIPs"):
            spec["clusterIPs"] = list(was["clusterIPs"])
    if service_type(new) in ("LoadBalancer", "NodePort") and \
            service_type(old) in ("LoadBalancer", "NodePort"):
        old_ports = {(p.get("port"), p.get("protocol") or "TCP"): p.get("nodePort")
                     for p in ports_of(old)}
        for port in ports_of(new):
            if not port.get("nodePort"):
                got = old_ports.get((port.get("port"), port.get("protocol") or "TCP"))
                if got:
                    port["nodePort"] = got
        if not spec.get("healthCheckNodePort") and was.get("healthCheckNodePort") and \
                spec.get("externalTrafficPolicy") == "Local":
            spec["healthCheckNodePort"] = was["healthCheckNodePort"]


# ---- checks

def _target_port_errors(tp: Any, at: str) -> Errors:
    if _is_int(tp):
        return [] if 1 <= tp <= 65535 else \
            [(at, f"Invalid value: {tp}: must be between 1 and 65535, inclusive")]
    if not isinstance(tp, str) or not tp:
        return [(at, "Required value")]
    if len(tp) > 15:
        return [(at, f"Invalid value: {q(tp)}: must be no more than 15 characters")]
    if not _PORT_NAME.match(tp) or "--" in tp:
        return [(at, f"Invalid value: {q(tp)}: must contain only alpha-numeric characters "
                 "(a-z, 0-9), and hyphens (-)")]
    if not any(ch.isalpha() for ch in tp):
        return [(at, f"Invalid value: {q(tp)}: must contain at least one letter (a-z)")]
    return []


def _port_errors(spec: Obj, kind: str) -> Errors:
    ports = spec.get("ports")
    at = "spec.ports"
    if ports is None:
        ports = []
    if not isinstance(ports, list):
        return [(at, "Invalid value: must be a list")]
    errors: Errors = []
    if not ports and kind != "ExternalName" and spec.get("clusterIP") != HEADLESS:
        errors.append((at, "Required value"))
    names: set[str] = set()
    keys: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        where = f"{at}[{i}]"
        if not isinstance(port, dict):
            errors.append((where, "Invalid value: must be an object"))
            continue
        name = port.get("name") or ""
        if not isinstance(name, str):
            errors.append((f"{where}.name", "Invalid value: must be a string"))
            name = ""
        if len(ports) > 1 and not name:
            errors.append((f"{where}.name", "Required value"))
        elif name:
            if len(name) > 63 or not _DNS1123.match(name):
                errors.append((f"{where}.name", f"Invalid value: {q(name)}: {DNS1123_MSG}"))
            elif name in names:
                errors.append((f"{where}.name", f"Duplicate value: {q(name)}"))
            names.add(name)
        number = port.get("port")
        if not _is_int(number) or not 1 <= number <= 65535:
            errors.append((f"{where}.port", f"Invalid value: {q(number)}: must be between 1 "
                           "and 65535, inclusive"))
        protocol = port.get("protocol")
        if protocol not in PROTOCOLS:
            errors.append((f"{where}.protocol", f"Unsupported value: {q(protocol)}: supported "
                           'values: "SCTP", "TCP", "UDP"'))
        if kind != "ExternalName" or port.get("targetPort") is not None:
            errors += _target_port_errors(port.get("targetPort"), f"{where}.targetPort")
        node_port = port.get("nodePort")
        if node_port not in (None, 0):
            if kind not in ("LoadBalancer", "NodePort"):
                errors.append((f"{where}.nodePort", f"Forbidden: may not be used when `type` "
                               f"is '{kind}'"))
            elif not _is_int(node_port) or not 1 <= node_port <= 65535:
                errors.append((f"{where}.nodePort", f"Invalid value: {q(node_port)}: must be "
                               "between 1 and 65535, inclusive"))
        key = (number, protocol)
        if key in keys:
            # Go's %#v of the (protocol, port) key the apiserver compares
            errors.append((where, "Duplicate value: core.ServicePort{Name:\"\", "
                           f"Protocol:{q(protocol)}, AppProtocol:(*string)(nil), "
                           f"Port:{q(number)}, TargetPort:intstr.IntOrString{{Type:0, "
                           'IntVal:0, StrVal:""}, NodePort:0}'))
        keys.add(key)
    return errors


def _ip_errors(spec: Obj, kind: str) -> Errors:
    errors: Errors = []
    ip, ips = spec.get("clusterIP"), spec.get("clusterIPs")
    if kind == "ExternalName":
        if ip not in (None, ""):
            errors.append(("spec.clusterIP", "Forbidden: may not be set for ExternalName "
                           "services"))
        if ips not in (None, []):
            errors.append(("spec.clusterIPs", "Forbidden: may not be set for ExternalName "
                           "services"))
        return errors
    if ip is not None and not isinstance(ip, str):
        return [("spec.clusterIP", f"Invalid value: {q(ip)}: must be a string")]
    if ips is not None and (not isinstance(ips, list) or
                            not all(isinstance(x, str) for x in ips)):
        return [("spec.clusterIPs", "Invalid value: must be a list of strings")]
    ips = ips or []
    if ip and ips and ips[0] != ip:
        errors.append(("spec.clusterIPs", f"Invalid value: {q(ips)}: first value must match "
                       "`clusterIP`"))
    if len(ips) > 1:
        if HEADLESS in ips:
            errors.append(("spec.clusterIPs", f"Invalid value: {q(ips)}: must not have more "
                           "than one value if the first is 'None'"))
        else:
            errors.append(("spec.clusterIPs", f"Invalid value: {q(ips)}: may specify no more "
                           "than one IP for each IP family (this cluster is IPv4 only)"))
    for i, one in enumerate(ips[:1]):
        if one == HEADLESS:
            if kind == "LoadBalancer":
                errors.append((f"spec.clusterIPs[{i}]", "Invalid value: \"None\": may not be "
                               "set to 'None' for LoadBalancer services"))
            continue
        try:
            addr = ipaddress.ip_address(one)
        except ValueError:
            errors.append((f"spec.clusterIPs[{i}]", f"Invalid value: {q(one)}: must be a "
                           "valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
            continue
        if addr.version != 4:
            errors.append((f"spec.clusterIPs[{i}]", f"Invalid value: {q(one)}: this cluster "
                           "serves the IPv4 family only"))
    families = spec.get("ipFamilies")
    free = selectorless_headless({"spec": spec})  # its families are only recorded
    if families is not None and not isinstance(families, list):
        errors.append(("spec.ipFamilies", "Invalid value: must be a list of strings"))
        families = []
    for i, family in enumerate(families or []):
        if family not in ("IPv4", "IPv6"):
            errors.append((f"spec.ipFamilies[{i}]", f"Unsupported value: {q(family)}: "
                           'supported values: "IPv4", "IPv6"'))
        elif family in (families or [])[:i]:
            errors.append((f"spec.ipFamilies[{i}]", f"Duplicate value: {q(family)}"))
        elif family == "IPv6" and not free:
            errors.append((f"spec.ipFamilies[{i}]", f"Invalid value: {q(family)}: not "
                           "configured on this cluster"))
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in IP_FAMILY_POLICIES:
        errors.append(("spec.ipFamilyPolicy", f"Unsupported value: {q(policy)}: supported "
                       'values: "PreferDualStack", "RequireDualStack", "SingleStack"'))
    elif policy == "RequireDualStack" and not free:
        errors.append(("spec.ipFamilyPolicy", f"Invalid value: {q(policy)}: this cluster is "
                       "not configured for dual-stack services"))
    elif policy == "SingleStack" and len(families or []) > 1:
        errors.append(("spec.ipFamilies", f"Invalid value: {q(families)}: when multiple IP "
                       "families are specified, IP family policy must be RequireDualStack or "
                       "PreferDualStack"))
    return errors


def _affinity_errors(spec: Obj) -> Errors:
    affinity = spec.get("sessionAffinity")
    if affinity not in AFFINITIES:
        return [("spec.sessionAffinity", f"Unsupported value: {q(affinity)}: supported values: "
                 '"ClientIP", "None"')]
    conf = spec.get("sessionAffinityConfig")
    if affinity == "None":
        if conf not in (None, {}):
            return [("spec.sessionAffinityConfig", f"Invalid value: {q(conf)}: must not be set "
                     "when session affinity is None")]
        return []
    if spec.get("type") == "ExternalName":
        return [("spec.sessionAffinity", 'Unsupported value: "ClientIP": supported values: '
                 '"None"')]
    client = conf.get("clientIP") if isinstance(conf, dict) else None
    timeout = client.get("timeoutSeconds") if isinstance(client, dict) else None
    if not _is_int(timeout) or not 0 < timeout <= MAX_AFFINITY_TIMEOUT:
        return [("spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                 f"Invalid value: {q(timeout)}: must be greater than 0 and less than "
                 f"{MAX_AFFINITY_TIMEOUT}")]
    return []


def _type_errors(spec: Obj, kind: str) -> Errors:
    errors: Errors = []
    if kind not in TYPES:
        return [("spec.type", f"Unsupported value: {q(kind)}: supported values: "
                 '"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"')]
    if kind == "NodePort":
        return [("spec.type", f"Forbidden: {NODEPORT_REFUSED}")]
    if kind == "ExternalName":
        name = spec.get("externalName")
        if not name:
            errors.append(("spec.externalName", "Required value"))
        elif not isinstance(name, str):
            errors.append(("spec.externalName", f"Invalid value: {q(name)}: must be a string"))
        else:
            bare = name.removesuffix(".")
            if len(bare) > 253 or not _SUBDOMAIN.match(bare):
                errors.append(("spec.externalName", f"Invalid value: {q(name)}: "
                               f"{SUBDOMAIN_MSG}"))
    for key in ("internalTrafficPolicy", "externalTrafficPolicy"):
        value = spec.get(key)
        if value is not None and value not in TRAFFIC_POLICIES:
            errors.append((f"spec.{key}", f"Unsupported value: {q(value)}: supported values: "
                           '"Cluster", "Local"'))
    if kind == "ClusterIP" and spec.get("externalTrafficPolicy") is not None:
        errors.append(("spec.externalTrafficPolicy", "Invalid value: "
                       f"{q(spec['externalTrafficPolicy'])}: may only be set for externally-"
                       "accessible services"))
    if kind != "LoadBalancer":
        for key in ("loadBalancerSourceRanges", "loadBalancerClass"):
            if spec.get(key) not in (None, [], ""):
                errors.append((f"spec.{key}", "Forbidden: may only be used when `type` is "
                               "'LoadBalancer'"))
        if spec.get("allocateLoadBalancerNodePorts") is not None:
            errors.append(("spec.allocateLoadBalancerNodePorts", "Forbidden: may only be used "
                           "when `type` is 'LoadBalancer'"))
    for i, cidr in enumerate(spec.get("loadBalancerSourceRanges") or []):
        try:
            ipaddress.ip_network(cidr if isinstance(cidr, str) else "", strict=False)
        except ValueError:
            errors.append((f"spec.loadBalancerSourceRanges[{i}]", f"Invalid value: {q(cidr)}: "
                           "must be a CIDR"))
    distribution = spec.get("trafficDistribution")
    if distribution is not None and distribution != "PreferClose":
        errors.append(("spec.trafficDistribution", f"Unsupported value: {q(distribution)}: "
                       'supported values: "PreferClose"'))
    if spec.get("externalIPs"):
        errors.append(("spec.externalIPs", "Forbidden: externalIPs are not supported by fargo "
                       "(nothing off this machine is routed to a Service)"))
    if spec.get("loadBalancerIP"):
        errors.append(("spec.loadBalancerIP", "Forbidden: not supported on EKS: the AWS Load "
                       "Balancer Controller ignores it; use the load balancer's annotations"))
    return errors


def _update_errors(spec: Obj, old: Obj, kind: str) -> Errors:
    """clusterIP is immutable once set while the type keeps one; the loadBalancerClass
    too (upstream's update rules)."""
    was = spec_of(old)
    errors: Errors = []
    if kind != "ExternalName" and service_type(old) != "ExternalName":
        old_ip, new_ip = was.get("clusterIP") or "", spec.get("clusterIP") or ""
        if old_ip and new_ip != old_ip:
            errors.append(("spec.clusterIPs[0]", f"Invalid value: {q(spec.get('clusterIPs') or [new_ip])}: "
                           "may not change once set"))
    if kind == "LoadBalancer" and service_type(old) == "LoadBalancer" and \
            spec.get("loadBalancerClass") != was.get("loadBalancerClass"):
        errors.append(("spec.loadBalancerClass", f"Invalid value: "
                       f"{q(spec.get('loadBalancerClass'))}: may not change once set"))
    return errors


def check_service(obj: Obj, old: Obj | None) -> None:
    name = obj["metadata"]["name"]
    errors: Errors = []
    if len(name) > 63 or not _DNS1035.match(name):
        errors.append(("metadata.name", f"Invalid value: {q(name)}: {DNS1035_MSG}"))
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise invalid("Service", name, errors + [("spec.ports", "Required value")])
    raw = spec.get("type")
    kind = raw if isinstance(raw, str) else ""
    errors += _type_errors(spec, kind)
    if errors and kind not in TYPES:
        raise invalid("Service", name, errors)
    errors += _port_errors(spec, kind)
    errors += _ip_errors(spec, kind)
    errors += _affinity_errors(spec)
    sel = spec.get("selector")
    if sel is not None:
        if not isinstance(sel, dict):
            errors.append(("spec.selector", "Invalid value: must be a map of strings"))
        else:
            errors += kubeobj._label_errors(sel, "spec.selector")
    pna = spec.get("publishNotReadyAddresses")
    if pna is not None and not isinstance(pna, bool):
        errors.append(("spec.publishNotReadyAddresses", "Invalid value: must be a boolean"))
    if old is not None:
        errors += _update_errors(spec, old, kind)
    if errors:
        raise invalid("Service", name, errors)


# ---- what others read of a Service

def target_port(port: Obj, container_ports: dict[str, int]) -> int | None:
    """The pod port a Service port reaches: a number as it is, a name by the pod's named
    container ports (None: the pod has no port of that name)."""
    tp = port.get("targetPort", port.get("port"))
    if _is_int(tp):
        return int(tp)
    if isinstance(tp, str):
        return container_ports.get(tp)
    return None


def ports_cell(svc: Obj) -> str:
    """kubectl's PORT(S): 80/TCP, 443:31234/TCP."""
    out = []
    for p in ports_of(svc):
        port = f"{p.get('port')}:{p['nodePort']}" if p.get("nodePort") else str(p.get("port"))
        out.append(f"{port}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def external_ip_cell(svc: Obj) -> str:
    kind = service_type(svc)
    if kind == "ExternalName":
        return str(spec_of(svc).get("externalName") or "<none>")
    if kind == "LoadBalancer":
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        names = [str(i.get("ip") or i.get("hostname")) for i in ingress
                 if isinstance(i, dict) and (i.get("ip") or i.get("hostname"))]
        return ",".join(names) if names else "<pending>"
    return "<none>"


def selector_cell(svc: Obj) -> str:
    sel = spec_of(svc).get("selector")
    if not isinstance(sel, dict) or not sel:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))


def _env_name(text: str) -> str:
    return text.upper().replace("-", "_")


def link_env(services: list[Obj]) -> dict[str, str]:
    """The Docker-links variables kubelet gives a container for each Service of its
    namespace that has a clusterIP (enableServiceLinks): WEB_SERVICE_HOST, _SERVICE_PORT,
    _SERVICE_PORT_<NAME>, _PORT, _PORT_<N>_<PROTO>(_PROTO, _PORT, _ADDR)."""
    env: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: s["metadata"]["name"]):
        ip = spec_of(svc).get("clusterIP")
        ports = [p for p in ports_of(svc) if _is_int(p.get("port"))]
        if not uses_cluster_ip(svc) or not isinstance(ip, str) or ip in ("", HEADLESS) \
                or not ports:
            continue
        name = _env_name(svc["metadata"]["name"])
        first = ports[0]
        env[f"{name}_SERVICE_HOST"] = ip
        env[f"{name}_SERVICE_PORT"] = str(first["port"])
        for p in ports:
            if p.get("name"):
                env[f"{name}_SERVICE_PORT_{_env_name(str(p['name']))}"] = str(p["port"])
        proto = str(first.get("protocol") or "TCP").lower()
        env[f"{name}_PORT"] = f"{proto}://{ip}:{first['port']}"
        for p in ports:
            proto = str(p.get("protocol") or "TCP")
            key = f"{name}_PORT_{p['port']}_{proto.upper()}"
            env[key] = f"{proto.lower()}://{ip}:{p['port']}"
            env[f"{key}_PROTO"] = proto.lower()
            env[f"{key}_PORT"] = str(p["port"])
            env[f"{key}_ADDR"] = ip
    return env


register(KindRule("services", "Service", status=True, check=check_service,
                  default=default_service))
