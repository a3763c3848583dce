"""NetworkPolicy (networking.k8s.io/v1): the apiserver's checks and defaults, and what the
policies of a cluster mean for each of its pods, as the kernel will hold it.

Upstream semantics: a pod selected by no policy of a direction (policyTypes Ingress / Egress)
is not isolated in that direction; once selected, only what one of its policies' rules allows
passes (the rules of all the policies that select it are added up). A rule allows traffic
from (to) any of its peers on any of its ports; no peers means any peer, no ports any port
and protocol. Peers: podSelector (the policy's namespace), namespaceSelector (every pod of
the namespaces it selects), both (those pods of those namespaces), ipBlock (a CIDR less its
excepts). A named port is looked up on the pod that receives: the selected pod for ingress,
the peer pod for egress.

The result is plain data (`Allow`), one per kernel rule: the agent renders it
(agent/netpolicy.py). Pure: no I/O."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import kubeobj
from .kubeerrors import invalid
from .kubekinds import KindRule, register
from .probes import port_error
from .selectors import selector_errors, selector_matcher

Obj = dict[str, Any]
Errors = list[tuple[str, str]]
PROTOCOLS = ("SCTP", "TCP", "UDP")
TYPES = ("Ingress", "Egress")


def _go(value: Any) -> str:
    """A value as the apiserver's messages print it: strings quoted, numbers bare."""
    return json.dumps(value) if isinstance(value, str) else str(value)[:40]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ---- the apiserver's checks

def _selector_errors(sel: Any, at: str) -> Errors:
    errors = selector_errors(sel, at)
    if isinstance(sel, dict):
        errors += kubeobj._label_errors(sel.get("matchLabels"), f"{at}.matchLabels")
    return errors


def _port_errors(port: Any, at: str) -> Errors:
    if not isinstance(port, dict):
        return [(at, "Invalid value: must be an object")]
    errors: Errors = []
    proto = port.get("protocol")
    if proto is not None and proto not in PROTOCOLS:
        errors.append((f"{at}.protocol", f"Unsupported value: {_go(proto)}: supported values: "
                       '"SCTP", "TCP", "UDP"'))
    num, end = port.get("port"), port.get("endPort")
    if num is None:
        if end is not None:
            errors.append((f"{at}.endPort", f"Invalid value: {_go(end)}: may not be specified "
                           "when `port` is not specified"))
        return errors
    if _is_int(num):
        err = port_error(num)
        if err:
            errors.append((f"{at}.port", err))
        if end is not None:
            if _is_int(end) and end < num:
                errors.append((f"{at}.endPort", f"Invalid value: {num}: must be greater than or "
                               "equal to `port`"))
            err = port_error(end) if _is_int(end) else "Invalid value: must be an integer"
            if err:
                errors.append((f"{at}.endPort", err))
        return errors
    if end is not None:
        errors.append((f"{at}.endPort", f"Invalid value: {_go(end)}: may not be specified when "
                       "`port` is non-numeric"))
    err = port_error(num)
    if err:
        errors.append((f"{at}.port", err))
    return errors


def _cidr(text: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not isinstance(text, str) or "/" not in text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


_CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def _block_errors(block: Any, at: str) -> Errors:
    if not isinstance(block, dict):
        return [(at, "Invalid value: must be an object")]
    cidr = block.get("cidr")
    if not cidr:
        return [(f"{at}.cidr", "Required value")]
    net = _cidr(cidr)
    if net is None:
        return [(f"{at}.cidr", f"Invalid value: {_go(cidr)}: {_CIDR_MSG}")]
    errors: Errors = []
    for i, text in enumerate(block.get("except") or []):
        ex = _cidr(text)
        where = f"{at}.except[{i}]"
        if ex is None:
            errors.append((where, f"Invalid value: {_go(text)}: {_CIDR_MSG}"))
        elif ex.version != net.version or ex.prefixlen <= net.prefixlen or \
                not ex.subnet_of(net):  # type: ignore[arg-type]
            errors.append((where, f"Invalid value: {_go(text)}: must be a strict subset of "
                           "`cidr`"))
    return errors


def _peer_errors(peer: Any, at: str) -> Errors:
    if not isinstance(peer, dict):
        return [(at, "Invalid value: must be an object")]
    errors: Errors = []
    given = 0
    for key in ("podSelector", "namespaceSelector"):
        if peer.get(key) is not None:
            given += 1
            errors += _selector_errors(peer[key], f"{at}.{key}")
    if peer.get("ipBlock") is not None:
        given += 1
        errors += _block_errors(peer["ipBlock"], f"{at}.ipBlock")
    if given == 0:
        errors.append((at, "Required value: must specify a peer"))
    elif given > 1 and peer.get("ipBlock") is not None:
        errors.append((at, "Forbidden: may not specify both ipBlock and another peer"))
    return errors


def spec_errors(spec: Any) -> Errors:
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    errors = _selector_errors(spec.get("podSelector") or {}, "spec.podSelector")
    for direction, peers in (("ingress", "from"), ("egress", "to")):
        rules = spec.get(direction) or []
        if not isinstance(rules, list):
            errors.append((f"spec.{direction}", "Invalid value: must be a list"))
            continue
        for i, rule in enumerate(rules):
            at = f"spec.{direction}[{i}]"
            if not isinstance(rule, dict):
                errors.append((at, "Invalid value: must be an object"))
                continue
            for j, port in enumerate(rule.get("ports") or []):
                errors += _port_errors(port, f"{at}.ports[{j}]")
            for j, peer in enumerate(rule.get(peers) or []):
                errors += _peer_errors(peer, f"{at}.{peers}[{j}]")
    types = spec.get("policyTypes") or []
    if len(types) > len(TYPES):
        errors.append(("spec.policyTypes", f"Invalid value: {json.dumps(types)[:200]}: may not "
                       "specify more than two policyTypes"))
        return errors
    for i, t in enumerate(types):
        if t not in TYPES:
            errors.append((f"spec.policyTypes[{i}]", f"Unsupported value: {_go(t)}: supported "
                           'values: "Ingress", "Egress"'))
    return errors


def check_netpolicy(obj: Obj, old: Obj | None) -> None:
    errors = spec_errors(obj.get("spec"))
    if errors:
        raise invalid("NetworkPolicy", obj["metadata"]["name"], errors)


def default_netpolicy(obj: Obj) -> None:
    """The API's defaults: an empty podSelector, TCP ports, and policyTypes Ingress (plus
    Egress when there are egress rules) when none are given."""
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    if spec.get("podSelector") is None:
        spec["podSelector"] = {}
    for direction in ("ingress", "egress"):
        for rule in spec.get(direction) or []:
            for port in (rule.get("ports") or []) if isinstance(rule, dict) else []:
                if isinstance(port, dict) and port.get("protocol") is None:
                    port["protocol"] = "TCP"
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])


register(KindRule("networkpolicies", "NetworkPolicy", group="networking.k8s.io",
                  generation=True, check=check_netpolicy, default=default_netpolicy))


# ---- what the policies mean for each pod

@dataclass(frozen=True)
class Allow:
    """One kernel rule of a pod's chain: traffic from (ingress) or to (egress) `peers` (None:
    any address; CIDRs or addresses) outside `excepts`, of `protocol` ("" any; "tcp", "udp",
    "sctp") on ports lo..hi (0: any)."""
    peers: tuple[str, ...] | None = None
    excepts: tuple[str, ...] = ()
    protocol: str = ""
    lo: int = 0
    hi: int = 0


@dataclass(frozen=True)
class PodView:
    """What the rules need of a pod: where it is, its labels, its named container ports
    (name -> (protocol, number))."""
    namespace: str
    name: str
    ip: str
    labels: dict[str, str] = field(default_factory=dict)
    ports: dict[str, tuple[str, int]] = field(default_factory=dict)


@dataclass
class PodRules:
    """Per isolated pod address, its allows; a pod with an empty list gets nothing."""
    ingress: dict[str, list[Allow]] = field(default_factory=dict)
    egress: dict[str, list[Allow]] = field(default_factory=dict)

    def merge(self, other: PodRules) -> None:
        for mine, theirs in ((self.ingress, other.ingress), (self.egress, other.egress)):
            for ip, allows in theirs.items():
                mine.setdefault(ip, []).extend(a for a in allows if a not in mine.get(ip, []))


def pod_view(pod: Obj) -> PodView | None:
    """A pod that holds an address (None: none yet, or it has finished: it holds none)."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return None
    ip = status.get("podIP") or (status.get("hostIP") if (pod.get("_fargo") or {}).get("task")
                                 else None)
    if not isinstance(ip, str) or not ip:
        return None
    ports: dict[str, tuple[str, int]] = {}
    spec = pod.get("spec") or {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for p in (c.get("ports") or []) if isinstance(c, dict) else []:
            if isinstance(p, dict) and p.get("name") and _is_int(p.get("containerPort")):
                ports.setdefault(p["name"], (str(p.get("protocol") or "TCP").lower(),
                                             p["containerPort"]))
    return PodView(meta.get("namespace", ""), meta.get("name", ""), ip,
                   dict(meta.get("labels") or {}), ports)


def _ranges(ports: list[Obj], target: PodView | None) -> list[tuple[str, int, int]] | None:
    """A rule's ports as (protocol, lo, hi); None: any port and protocol. A named port is
    the target pod's (no target, or no such port there: nothing)."""
    if not ports:
        return None
    out: list[tuple[str, int, int]] = []
    for p in ports:
        proto = str(p.get("protocol") or "TCP").lower()
        num = p.get("port")
        if num is None:
            out.append((proto, 0, 0))
        elif _is_int(num):
            end = p.get("endPort")
            out.append((proto, num, end if isinstance(end, int) else num))
        elif target is not None and num in target.ports and target.ports[num][0] == proto:
            n = target.ports[num][1]
            out.append((proto, n, n))
    return out


def _named(ports: list[Obj]) -> bool:
    return any(isinstance(p.get("port"), str) for p in ports)


class _Cluster:
    def __init__(self, pods: Iterable[PodView], namespaces: dict[str, dict[str, str]]):
        self.pods = list(pods)
        self.namespaces = namespaces

    def selected(self, ns: str, sel: Obj | None) -> list[PodView]:
        match = selector_matcher(sel or {})
        return [p for p in self.pods if p.namespace == ns and match(p.labels)]

    def peer_pods(self, ns: str, peer: Obj) -> list[PodView]:
        pod_match = selector_matcher(peer.get("podSelector") or {})
        if peer.get("namespaceSelector") is None:
            in_ns = {ns}
        else:
            ns_match = selector_matcher(peer["namespaceSelector"])
            in_ns = {n for n, labels in self.namespaces.items()
                     if ns_match({**labels, "kubernetes.io/metadata.name": n})}
        return [p for p in self.pods if p.namespace in in_ns and pod_match(p.labels)]


def _block(peer: Obj) -> tuple[str, tuple[str, ...]] | None:
    """An ipBlock as IPv4 (cidr, excepts); None for IPv6 (no pod has such an address)."""
    block = peer["ipBlock"]
    net = _cidr(block.get("cidr"))
    if not isinstance(net, ipaddress.IPv4Network):
        return None
    excepts = tuple(sorted(str(n) for n in (_cidr(e) for e in block.get("except") or [])
                           if isinstance(n, ipaddress.IPv4Network)))
    return str(net), excepts


def _allows(peers: tuple[str, ...] | None, excepts: tuple[str, ...],
            ranges: list[tuple[str, int, int]] | None) -> list[Allow]:
    if peers is not None and not peers:
        return []  # a selector that picks no pod admits nobody
    if ranges is None:
        return [Allow(peers, excepts)]
    return [Allow(peers, excepts, proto, lo, hi) for proto, lo, hi in ranges]


def _rule_allows(c: _Cluster, ns: str, rule: Obj, peers_key: str, pod: PodView,
                 ingress: bool) -> list[Allow]:
    ports = [p for p in rule.get("ports") or [] if isinstance(p, dict)]
    peers = [p for p in rule.get(peers_key) or [] if isinstance(p, dict)]
    out: list[Allow] = []
    if ingress or not _named(ports):
        ranges = _ranges(ports, pod)
        if not peers:
            return _allows(None, (), ranges)
        for peer in peers:
            if peer.get("ipBlock") is not None:
                block = _block(peer)
                if block is not None:
                    out += _allows((block[0],), block[1], ranges)
            else:
                ips = tuple(sorted({p.ip for p in c.peer_pods(ns, peer)}))
                out += _allows(ips, (), ranges)
        return out
    # Egress with a named port: it names a port of each destination pod, one by one.
    targets: list[PodView] = []
    if not peers:
        targets = list(c.pods)
    for peer in peers:
        if peer.get("ipBlock") is not None:
            block = _block(peer)
            if block is None:
                continue
            net = ipaddress.IPv4Network(block[0])
            excepts = [ipaddress.IPv4Network(e) for e in block[1]]
            targets += [p for p in c.pods if _inside(p.ip, net, excepts)]
        else:
            targets += c.peer_pods(ns, peer)
    for t in sorted({t.ip: t for t in targets}.values(), key=lambda t: t.ip):
        out += _allows((t.ip,), (), _ranges(ports, t))
    return out


def _inside(ip: str, net: ipaddress.IPv4Network, excepts: list[ipaddress.IPv4Network]) -> bool:
    try:
        addr = ipaddress.IPv4Address(ip)
    except ValueError:
        return False
    return addr in net and not any(addr in e for e in excepts)


def pod_rules(policies: Iterable[Obj], pods: Iterable[PodView],
              namespaces: dict[str, dict[str, str]]) -> PodRules:
    """Every isolated pod of one cluster and what it may receive and send."""
    c = _Cluster(pods, namespaces)
    out = PodRules()
    for pol in sorted(policies, key=lambda p: (p["metadata"].get("namespace", ""),
                                               p["metadata"]["name"])):
        if pol["metadata"].get("deletionTimestamp"):
            continue
        ns, spec = pol["metadata"].get("namespace", ""), pol.get("spec") or {}
        types = spec.get("policyTypes") or (["Ingress"] + (["Egress"] if spec.get("egress")
                                                           else []))
        for pod in c.selected(ns, spec.get("podSelector")):
            for kind, key, peers_key, rules in (
                    ("Ingress", "ingress", "from", out.ingress),
                    ("Egress", "egress", "to", out.egress)):
                if kind not in types:
                    continue
                mine = rules.setdefault(pod.ip, [])
                for rule in spec.get(key) or []:
                    if isinstance(rule, dict):
                        for a in _rule_allows(c, ns, rule, peers_key, pod, kind == "Ingress"):
                            if a not in mine:
                                mine.append(a)
    return out
