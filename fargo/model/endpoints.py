"""v1 Endpoints and discovery.k8s.io/v1 EndpointSlice (pure): their kinds' rows, and what
the endpoints controllers make of a Service and the pods its selector matches.

An endpoint is a pod with an IP that has not finished (Succeeded/Failed). Ready is the
pod's Ready condition and no deletionTimestamp; a terminating pod stays in the slices with
ready=false, terminating=true, serving=its Ready (upstream's rule), and leaves v1 Endpoints.
publishNotReadyAddresses makes every endpoint ready. A named targetPort is resolved per pod
by its containers' port names, so pods whose names resolve differently land in slices of
their own (one slice per port mapping, 100 endpoints each, as upstream)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, TypeGuard

from . import kubeservice
from .kubeerrors import invalid
from .kubekinds import KindRule, register

Obj = dict[str, Any]
SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"
ENDPOINTS_MANAGED_BY = "endpoints.kubernetes.io/managed-by"
ENDPOINTS_CONTROLLER = "endpoint-controller"
HEADLESS_LABEL = "service.kubernetes.io/headless"
PER_SLICE = 100  # upstream's --max-endpoints-per-slice default
ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's name-suffix letters


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


# ---- pods as endpoints

def pod_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def pod_ip(pod: Obj) -> str | None:
    ip = (pod.get("status") or {}).get("podIP")
    return ip if isinstance(ip, str) and ip else None


def is_endpoint(pod: Obj) -> bool:
    return pod_ip(pod) is not None and \
        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def container_ports(pod: Obj) -> dict[str, int]:
    """The pod's named container ports (first of a name wins), for named targetPorts."""
    out: dict[str, int] = {}
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or [] if isinstance(c, dict) else []:
            if isinstance(p, dict) and isinstance(p.get("name"), str) and \
                    _is_int(p.get("containerPort")):
                out.setdefault(p["name"], p["containerPort"])
    return out


def conditions(svc: Obj, pod: Obj) -> Obj:
    publish = bool(kubeservice.spec_of(svc).get("publishNotReadyAddresses"))
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    serving = publish or pod_ready(pod)
    return {"ready": publish or (serving and not terminating), "serving": serving,
            "terminating": terminating}


Port = tuple[str, int, str, str]  # name, the pod's port, protocol, appProtocol ("": none)


def _ports_for(svc: Obj, pod: Obj) -> tuple[Port, ...]:
    named = container_ports(pod)
    out = []
    for p in kubeservice.ports_of(svc):
        port = kubeservice.target_port(p, named)
        if port is not None:
            out.append((str(p.get("name") or ""), port, str(p.get("protocol") or "TCP"),
                        str(p.get("appProtocol") or "")))
    return tuple(out)


def _port_json(port: Port, keep_empty_name: bool) -> Obj:
    name, number, protocol, app = port
    out: Obj = {"name": name} if name or keep_empty_name else {}
    out.update(port=number, protocol=protocol)
    if app:
        out["appProtocol"] = app
    return out


@dataclass(frozen=True)
class Endpoint:
    pod: Obj
    ports: tuple[Port, ...]
    cond: Obj


def endpoints_of(svc: Obj, pods: list[Obj]) -> list[Endpoint]:
    """The pods that are the Service's endpoints (the caller has matched the selector),
    ordered by name so a pass that changes nothing writes nothing."""
    out = [Endpoint(p, _ports_for(svc, p), conditions(svc, p))
           for p in pods if is_endpoint(p)]
    return sorted(out, key=lambda e: e.pod["metadata"]["name"])


def _target_ref(pod: Obj) -> Obj:
    meta = pod["metadata"]
    return {"kind": "Pod", "namespace": meta.get("namespace", ""), "name": meta["name"],
            "uid": meta.get("uid", "")}


def _hostname(pod: Obj, service: str) -> str | None:
    """A pod's name under the Service (DNS <hostname>.<svc>...): only a pod that names both
    its hostname and this Service as its subdomain, as upstream."""
    spec = pod.get("spec") or {}
    host = spec.get("hostname")
    return host if isinstance(host, str) and host and spec.get("subdomain") == service \
        else None


def _suffix(*parts: str) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:5])


def _labels(svc: Obj, extra: dict[str, str]) -> dict[str, str]:
    labels = dict(svc["metadata"].get("labels") or {})
    labels.update(extra)
    if kubeservice.is_headless(svc):
        labels[HEADLESS_LABEL] = ""
    return labels


# ---- EndpointSlices

def slices_for(svc: Obj, endpoints: list[Endpoint], zones: dict[str, str]) -> list[Obj]:
    """The EndpointSlices the Service should have: named from its uid and the port mapping
    (so the next pass finds the same ones); one placeholder with no endpoints when there
    are none. `zones`: node name -> its topology zone."""
    meta = svc["metadata"]
    groups: dict[tuple[Port, ...], list[Endpoint]] = {}
    for e in endpoints:
        groups.setdefault(e.ports, []).append(e)
    chunks: list[tuple[tuple[Port, ...], list[Endpoint], int]] = []
    for ports, group in sorted(groups.items()):
        for i in range(0, len(group), PER_SLICE):
            chunks.append((ports, group[i:i + PER_SLICE], i // PER_SLICE))
    out = []
    owner = {"apiVersion": "v1", "kind": "Service", "name": meta["name"],
             "uid": meta.get("uid", ""), "controller": True, "blockOwnerDeletion": True}
    labels = _labels(svc, {SERVICE_NAME: meta["name"], MANAGED_BY: CONTROLLER})
    for ports, group, index in chunks or [((), [], 0)]:
        key = ",".join(f"{n}:{p}/{pr}" for n, p, pr, _ in ports)
        name = f"{meta['name'][:57]}-{_suffix(meta.get('uid', ''), key, str(index))}"
        eps = []
        for e in group:
            one: Obj = {"addresses": [pod_ip(e.pod)], "conditions": dict(e.cond),
                        "targetRef": _target_ref(e.pod)}
            node = (e.pod.get("spec") or {}).get("nodeName")
            if node:
                one["nodeName"] = node
                if zones.get(node):
                    one["zone"] = zones[node]
            host = _hostname(e.pod, meta["name"])
            if host:
                one["hostname"] = host
            eps.append(one)
        slice_: Obj = {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": meta.get("namespace", ""),
                         "labels": labels, "ownerReferences": [owner],
                         "generateName": f"{meta['name']}-"},
            "addressType": "IPv4", "endpoints": eps,
            "ports": [_port_json(p, True) for p in ports] if group else None}
        out.append(slice_)
    return out


# ---- v1 Endpoints

def endpoints_object(svc: Obj, endpoints: list[Endpoint]) -> Obj:
    """The v1 Endpoints of a Service: subsets by port mapping, ready addresses apart from
    not-ready ones; terminating pods left out unless publishNotReadyAddresses."""
    meta = svc["metadata"]
    publish = bool(kubeservice.spec_of(svc).get("publishNotReadyAddresses"))
    groups: dict[tuple[Port, ...], tuple[list[Obj], list[Obj]]] = {}
    for e in endpoints:
        if not e.ports or (e.cond["terminating"] and not publish):
            continue
        addr: Obj = {"ip": pod_ip(e.pod), "targetRef": _target_ref(e.pod)}
        node = (e.pod.get("spec") or {}).get("nodeName")
        if node:
            addr["nodeName"] = node
        host = _hostname(e.pod, meta["name"])
        if host:
            addr["hostname"] = host
        ready, not_ready = groups.setdefault(e.ports, ([], []))
        (ready if e.cond["ready"] else not_ready).append(addr)
    subsets = []
    for ports, (ready, not_ready) in sorted(groups.items()):
        subset: Obj = {}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        subset["ports"] = [_port_json(p, False) for p in ports]
        subsets.append(subset)
    obj: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": meta["name"], "namespace": meta.get("namespace", ""),
                             "labels": _labels(svc, {ENDPOINTS_MANAGED_BY:
                                                     ENDPOINTS_CONTROLLER})}}
    if subsets:
        obj["subsets"] = subsets
    return obj


def same_content(have: Obj, want: Obj, keys: tuple[str, ...]) -> bool:
    """Whether a stored object already says what the controller wants (labels, owners and
    the kind's own fields)."""
    hm, wm = have.get("metadata") or {}, want.get("metadata") or {}
    if (hm.get("labels") or {}) != (wm.get("labels") or {}):
        return False
    if "ownerReferences" in wm and hm.get("ownerReferences") != wm["ownerReferences"]:
        return False
    return all(have.get(k) == want.get(k) for k in keys)


# ---- the kinds' own checks (users may write Endpoints for a Service without a selector)

def check_endpoints(obj: Obj, old: Obj | None) -> None:
    name = obj["metadata"]["name"]
    errors: list[tuple[str, str]] = []
    subsets = obj.get("subsets")
    if subsets is not None and not isinstance(subsets, list):
        errors.append(("subsets", "Invalid value: must be a list"))
        subsets = []
    for i, sub in enumerate(subsets or []):
        at = f"subsets[{i}]"
        if not isinstance(sub, dict):
            errors.append((at, "Invalid value: must be an object"))
            continue
        for key in ("addresses", "notReadyAddresses"):
            for j, addr in enumerate(sub.get(key) or []):
                errors += _address_errors(addr, f"{at}.{key}[{j}].ip")
        for j, port in enumerate(sub.get("ports") or []):
            errors += _port_errors(port, f"{at}.ports[{j}]")
    if errors:
        raise invalid("Endpoints", name, errors)


# What no endpoint may be (upstream's ValidateNonSpecialIP): a user's Endpoints or
# EndpointSlice would otherwise point a ClusterIP or a load balancer's targets at the host's
# loopback or the metadata address.
_SPECIAL = (("unspecified (0.0.0.0)", ("0.0.0.0/32", "::/128")),
            ("in the loopback range (127.0.0.0/8, ::1/128)", ("127.0.0.0/8", "::1/128")),
            ("in the link-local range (169.254.0.0/16, fe80::/10)",
             ("169.254.0.0/16", "fe80::/10")),
            ("in the link-local multicast range (224.0.0.0/24, ff02::/10)",
             ("224.0.0.0/24", "ff02::/10")))


def _address_errors(addr: Any, at: str, version: int | None = None) -> list[tuple[str, str]]:
    import ipaddress
    ip = addr.get("ip") if isinstance(addr, dict) else None
    try:
        parsed = ipaddress.ip_address(ip if isinstance(ip, str) else "")
    except ValueError:
        parsed = None
    if parsed is None or (version is not None and parsed.version != version):
        family = f"IPv{version} " if version else "IP "
        return [(at, f"Invalid value: {kubeservice.q(ip)}: must be a valid {family}address")]
    for why, nets in _SPECIAL:
        if any(parsed in ipaddress.ip_network(n, strict=False) for n in nets):
            return [(at, f"Invalid value: {kubeservice.q(ip)}: may not be {why}")]
    return []


def _port_errors(port: Any, at: str, optional: bool = False) -> list[tuple[str, str]]:
    if not isinstance(port, dict):
        return [(at, "Invalid value: must be an object")]
    errors = []
    number = port.get("port")
    if number is None and optional:  # an EndpointSlice port without a number: all ports
        pass
    elif not _is_int(number) or not 0 < number <= 65535:
        errors.append((f"{at}.port", f"Invalid value: {kubeservice.q(number)}: must be "
                       "between 1 and 65535, inclusive"))
    protocol = port.get("protocol", "TCP")
    if protocol not in kubeservice.PROTOCOLS:
        errors.append((f"{at}.protocol", f"Unsupported value: {kubeservice.q(protocol)}: "
                       'supported values: "SCTP", "TCP", "UDP"'))
    return errors


def default_ports(obj: Obj, list_key: str) -> None:
    for sub in obj.get(list_key) or [] if isinstance(obj.get(list_key), list) else []:
        ports = sub.get("ports") if isinstance(sub, dict) else None
        for p in ports if isinstance(ports, list) else []:
            if isinstance(p, dict) and p.get("protocol") in (None, ""):
                p["protocol"] = "TCP"


def default_endpoints(obj: Obj) -> None:
    default_ports(obj, "subsets")


def default_slice(obj: Obj) -> None:
    for p in obj.get("ports") or [] if isinstance(obj.get("ports"), list) else []:
        if isinstance(p, dict) and p.get("protocol") in (None, ""):
            p["protocol"] = "TCP"


def check_slice(obj: Obj, old: Obj | None) -> None:
    name = obj["metadata"]["name"]
    errors: list[tuple[str, str]] = []
    kind = obj.get("addressType")
    if kind not in ADDRESS_TYPES:
        errors.append(("addressType", f"Unsupported value: {kubeservice.q(kind)}: supported "
                       'values: "FQDN", "IPv4", "IPv6"'))
    elif old is not None and old.get("addressType") != kind:
        errors.append(("addressType", f"Invalid value: {kubeservice.q(kind)}: field is "
                       "immutable"))
    eps = obj.get("endpoints")
    if eps is not None and not isinstance(eps, list):
        errors.append(("endpoints", "Invalid value: must be a list"))
        eps = []
    if len(eps or []) > 1000:
        errors.append(("endpoints", f"Too many: {len(eps or [])}: must have at most 1000 items"))
    for i, e in enumerate(eps or []):
        addrs = e.get("addresses") if isinstance(e, dict) else None
        if not isinstance(addrs, list) or not 1 <= len(addrs) <= 100:
            errors.append((f"endpoints[{i}].addresses", "Required value: must contain at "
                           "least 1 address"))
            continue
        if kind in ("IPv4", "IPv6"):
            for j, a in enumerate(addrs):
                errors += _address_errors({"ip": a}, f"endpoints[{i}].addresses[{j}]",
                                          4 if kind == "IPv4" else 6)
    given = obj.get("ports")
    ports: list[Any] = given if isinstance(given, list) else []
    if len(ports) > 100:
        errors.append(("ports", f"Too many: {len(ports)}: must have at most 100 items"))
    names: set[str] = set()  # consumers match a Service port to a slice port by its name
    for i, p in enumerate(ports):
        errors += _port_errors(p, f"ports[{i}]", optional=True)
        pname = p.get("name") if isinstance(p, dict) else None
        pname = pname if isinstance(pname, str) else ""
        if pname and (len(pname) > 63 or not kubeservice._DNS1123.match(pname)):
            errors.append((f"ports[{i}].name", f"Invalid value: {kubeservice.q(pname)}: "
                           f"{kubeservice.DNS1123_MSG}"))
        elif pname in names:
            errors.append((f"ports[{i}].name", f"Duplicate value: {kubeservice.q(pname)}"))
        names.add(pname)
    if errors:
        raise invalid("EndpointSlice", name, errors)


register(
    KindRule("endpoints", "Endpoints", check=check_endpoints, default=default_endpoints),
    KindRule("endpointslices", "EndpointSlice", group="discovery.k8s.io",
             check=check_slice, default=default_slice),
)
