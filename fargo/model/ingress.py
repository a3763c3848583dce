"""networking.k8s.io/v1 Ingress and IngressClass as kube-apiserver checks them, and what the
AWS Load Balancer Controller reads of them: which Ingresses are its own (class alb), their
`alb.ingress.kubernetes.io/*` annotations, and the load balancer a group of Ingresses (or a
Service of type LoadBalancer) asks for, as a plain Stack that control/kubelb.py makes with
ELBv2's own operations.

Pure: no I/O; Services come in as the dicts KubeState holds. A Stack that cannot be built is a
BuildError whose message is what the controller's Warning event says."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from .kubeerrors import invalid
from .kubekinds import KindRule, register

Obj = dict[str, Any]
GROUP, VERSION = "networking.k8s.io", "v1"
CONTROLLER = "ingress.k8s.aws/alb"  # IngressClass spec.controller of the AWS LB controller
CLASS = "alb"  # the class its Helm chart installs, and the name it answers to by default
A = "alb.ingress.kubernetes.io/"
S = "service.beta.kubernetes.io/"
NLB_CLASS = "service.k8s.aws/nlb"
# Tags, as the controller puts them on what it makes (and finds it again by).
CLUSTER_TAG = "elbv2.k8s.aws/cluster"
INGRESS_STACK, INGRESS_RESOURCE = "ingress.k8s.aws/stack", "ingress.k8s.aws/resource"
SERVICE_STACK, SERVICE_RESOURCE = "service.k8s.aws/stack", "service.k8s.aws/resource"
INGRESS_FINALIZER, SERVICE_FINALIZER = "ingress.k8s.aws/resources", "service.k8s.aws/resources"
GATE_PREFIX = "target-health.elbv2.k8s.aws/"  # pods' readiness gates, one per target group
GATE_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"  # a namespace's label: "enabled"

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_IP = re.compile(r"^[0-9.]+$|:")
_GROUP_NAME = re.compile(r"^([a-z0-9][-a-z0-9.]*)?[a-z0-9]$")
_CONTROLLER = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
                         r"/[-a-zA-Z0-9_./]+$")
PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric "
                 "character (e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")


def _q(value: Any) -> str:
    return json.dumps(value)


# ---- the apiserver's checks
def _backend_errors(b: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(b, dict):
        return [(where, "Required value")]
    svc, res = b.get("service"), b.get("resource")
    if svc is not None and res is not None:
        return [(where, "Invalid value: \"\": cannot set both resource and service backends")]
    if res is not None:
        out = []
        if not isinstance(res, dict) or not res.get("kind"):
            out.append((f"{where}.resource.kind", "Required value"))
        if not isinstance(res, dict) or not res.get("name"):
            out.append((f"{where}.resource.name", "Required value"))
        return out
    if not isinstance(svc, dict):
        return [(where, "Invalid value: \"\": resource or service backend is required")]
    out = []
    name = svc.get("name")
    if not name:
        out.append((f"{where}.service.name", "Required value"))
    elif not isinstance(name, str) or len(name) > 63 or not _LABEL.match(name):
        out.append((f"{where}.service.name", f"Invalid value: {_q(name)}: a DNS-1035 label "
                    "must consist of lower case alphanumeric characters or '-', start with an "
                    "alphabetic character, and end with an alphanumeric character"))
    port = svc.get("port")
    if not isinstance(port, dict) or (port.get("name") in (None, "") and
                                      port.get("number") in (None, 0)):
        out.append((f"{where}.service.port", "Invalid value: \"\": port name or number is "
                    "required"))
    elif port.get("name") not in (None, "") and port.get("number") not in (None, 0):
        out.append((f"{where}.service.port", "Invalid value: \"\": cannot set both port name "
                    "& port number"))
    elif port.get("name") not in (None, ""):
        pn = port["name"]
        if not isinstance(pn, str) or len(pn) > 15 or not _PORT_NAME.match(pn) or \
                not re.search("[a-z]", pn):
            out.append((f"{where}.service.port.name", f"Invalid value: {_q(pn)}: must be an "
                        "IANA_SVC_NAME (at most 15 characters, matching regex [a-z0-9]([a-z0-9-]"
                        "*[a-z0-9])*, it must contain at least one letter [a-z], and hyphens "
                        "cannot be adjacent to other hyphens)"))
    else:
        num = port["number"]
        if not isinstance(num, int) or not 1 <= num <= 65535:
            out.append((f"{where}.service.port.number", f"Invalid value: {num}: must be "
                        "between 1 and 65535, inclusive"))
    return out


def _host_errors(host: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(host, str) or host == "":
        return []
    if _IP.search(host):
        return [(where, f"Invalid value: {_q(host)}: must be a DNS name, not an IP address")]
    bare = host[2:] if host.startswith("*.") else host
    if "*" in bare:
        return [(where, f"Invalid value: {_q(host)}: a wildcard DNS-1123 subdomain must start "
                 "with '*.', followed by a valid DNS subdomain, which must consist of lower "
                 "case alphanumeric characters, '-' or '.' and end with an alphanumeric "
                 "character (e.g. '*.example.com', regex used for validation is "
                 "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")]
    if len(host) > 253 or not _SUBDOMAIN.match(bare):
        return [(where, f"Invalid value: {_q(host)}: {SUBDOMAIN_MSG}")]
    return []


def ingress_errors(obj: Obj) -> list[tuple[str, str]]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = {}
    errors: list[tuple[str, str]] = []
    rules = spec.get("rules") or []
    default = spec.get("defaultBackend")
    if not rules and default is None:
        errors.append(("spec", "Invalid value: \"\": either `defaultBackend` or `rules` must "
                       "be specified"))
    if default is not None:
        errors += _backend_errors(default, "spec.defaultBackend")
    cls = spec.get("ingressClassName")
    if cls is not None and (not isinstance(cls, str) or len(cls) > 253
                            or not _SUBDOMAIN.match(cls)):
        errors.append(("spec.ingressClassName", f"Invalid value: {_q(cls)}: {SUBDOMAIN_MSG}"))
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        where = f"spec.rules[{i}]"
        if not isinstance(rule, dict):
            continue
        errors += _host_errors(rule.get("host"), f"{where}.host")
        http = rule.get("http")
        if http is None:
            continue
        paths = (http or {}).get("paths") if isinstance(http, dict) else None
        if not paths:
            errors.append((f"{where}.http.paths", "Required value"))
            continue
        for j, p in enumerate(paths):
            pw = f"{where}.http.paths[{j}]"
            if not isinstance(p, dict):
                continue
            kind, path = p.get("pathType"), p.get("path")
            if kind is None:
                errors.append((f"{pw}.pathType", "Required value: pathType must be "
                               "specified"))
            elif kind not in PATH_TYPES:
                errors.append((f"{pw}.pathType", f"Unsupported value: {_q(kind)}: supported "
                               "values: \"Exact\", \"ImplementationSpecific\", \"Prefix\""))
            elif kind in ("Exact", "Prefix"):
                if not isinstance(path, str) or not path.startswith("/"):
                    errors.append((f"{pw}.path", f"Invalid value: {_q(path)}: must be an "
                                   "absolute path"))
                elif "//" in path or any(s in path.split("/") for s in (".", "..")) or \
                        "%2f" in path.lower():
                    errors.append((f"{pw}.path", f"Invalid value: {_q(path)}: must not "
                                   "contain '//', '/./', '/../', '%2f' or '%2F'"))
            elif path not in (None, "") and not str(path).startswith("/"):
                errors.append((f"{pw}.path", f"Invalid value: {_q(path)}: must be an absolute "
                               "path"))
            errors += _backend_errors(p.get("backend"), f"{pw}.backend")
    for i, t in enumerate(spec.get("tls") or []):
        for j, h in enumerate((t or {}).get("hosts") or [] if isinstance(t, dict) else []):
            errors += _host_errors(h, f"spec.tls[{i}].hosts[{j}]")
    return errors


def check_ingress(obj: Obj, old: Obj | None) -> None:
    errors = ingress_errors(obj)
    if errors:
        raise invalid("Ingress", obj["metadata"]["name"], errors)


def check_ingress_class(obj: Obj, old: Obj | None) -> None:
    spec = obj.get("spec")
    ctl = spec.get("controller") if isinstance(spec, dict) else None
    errors: list[tuple[str, str]] = []
    if not ctl:
        errors.append(("spec.controller", "Required value"))
    elif not isinstance(ctl, str) or len(ctl) > 250 or not _CONTROLLER.match(ctl):
        errors.append(("spec.controller", f"Invalid value: {_q(ctl)}: must be a domain-"
                       "prefixed path (such as \"acme.io/foo\")"))
    if old is not None and ctl != (old.get("spec") or {}).get("controller"):
        errors.append(("spec.controller", f"Invalid value: {_q(ctl)}: field is immutable"))
    params = spec.get("parameters") if isinstance(spec, dict) else None
    if isinstance(params, dict):
        errors += _parameters_errors(params)
    if errors:
        raise invalid("IngressClass", obj["metadata"]["name"], errors)


def _parameters_errors(params: Obj) -> list[tuple[str, str]]:
    """spec.parameters as the apiserver checks the reference (scope defaults to Cluster)."""
    at = "spec.parameters"
    errors: list[tuple[str, str]] = []
    for key in ("kind", "name"):
        if not params.get(key):
            errors.append((f"{at}.{key}", "Required value"))
    group = params.get("apiGroup")
    if group not in (None, "") and (not isinstance(group, str) or len(group) > 253 or
                                    not _SUBDOMAIN.match(group)):
        errors.append((f"{at}.apiGroup", f"Invalid value: {_q(group)}: {SUBDOMAIN_MSG}"))
    scope, ns = params.get("scope", "Cluster"), params.get("namespace")
    if scope not in ("Cluster", "Namespace"):
        errors.append((f"{at}.scope", f"Unsupported value: {_q(scope)}: supported values: "
                       "\"Cluster\", \"Namespace\""))
    elif scope == "Namespace" and not ns:
        errors.append((f"{at}.namespace", "Required value: `parameters.scope` is set to "
                       "'Namespace'"))
    elif scope == "Cluster" and ns is not None:
        errors.append((f"{at}.namespace", "Forbidden: `parameters.scope` is set to 'Cluster'"))
    elif ns is not None and (not isinstance(ns, str) or len(ns) > 63 or not _LABEL.match(ns)):
        errors.append((f"{at}.namespace", f"Invalid value: {_q(ns)}: a lowercase RFC 1123 "
                       "label must consist of lower case alphanumeric characters or '-', and "
                       "must start and end with an alphanumeric character"))
    return errors


def default_ingress_class(obj: Obj) -> None:
    spec = obj.get("spec")
    params = spec.get("parameters") if isinstance(spec, dict) else None
    if isinstance(params, dict) and params.get("scope") is None:
        params["scope"] = "Cluster"


register(KindRule("ingresses", "Ingress", group=GROUP, version=VERSION, status=True,
                  generation=True, check=check_ingress),
         KindRule("ingressclasses", "IngressClass", group=GROUP, version=VERSION,
                  namespaced=False, generation=True, check=check_ingress_class,
                  default=default_ingress_class))


def alb_class() -> Obj:
    """The IngressClass the controller's Helm chart installs in each cluster."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "IngressClass",
            "metadata": {"name": CLASS, "labels": {
                "app.kubernetes.io/name": "aws-load-balancer-controller"}},
            "spec": {"controller": CONTROLLER}}


def is_alb(ing: Obj, classes: list[Obj]) -> bool:
    """Whether the AWS LB controller reconciles this Ingress: its class (by name, or the
    legacy annotation, or the default IngressClass) is the controller's."""
    by_name = {c["metadata"]["name"]: c for c in classes}
    meta = ing.get("metadata") or {}
    legacy = (meta.get("annotations") or {}).get("kubernetes.io/ingress.class")
    name = (ing.get("spec") or {}).get("ingressClassName")
    if name is None and legacy is not None:
        return legacy == CLASS
    if name is None:
        return any((c.get("metadata", {}).get("annotations") or {}).get(
            "ingressclass.kubernetes.io/is-default-class") == "true" and
            (c.get("spec") or {}).get("controller") == CONTROLLER for c in classes)
    found = by_name.get(name)
    if found is None:
        return name == CLASS
    return (found.get("spec") or {}).get("controller") == CONTROLLER


# ---- what the controller builds
class BuildError(Exception):
    """The stack could not be built: the controller's FailedBuildModel event says why."""


@dataclass(frozen=True)
class Health:
    protocol: str = "HTTP"
    path: str | None = "/"
    interval: int = 15
    timeout: int = 5
    healthy: int = 2
    unhealthy: int = 2
    codes: str | None = "200"


@dataclass(frozen=True)
class Group:
    """A target group: ip targets = the ready endpoints of one Service port."""

    resource: str  # its resource tag (upstream's: ns/ingress-svc:port, or the port)
    ns: str
    service: str
    port: int | str  # the Service's port, by number or name
    protocol: str  # HTTP | TCP
    health: Health
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Rule:
    hosts: tuple[str, ...]
    paths: tuple[str, ...]
    group: str  # a Group's resource


@dataclass(frozen=True)
class ListenerSpec:
    port: int
    protocol: str  # HTTP | TCP
    rules: tuple[Rule, ...] = ()
    default: str | None = None  # a Group's resource; None: a 404 fixed response


@dataclass(frozen=True)
class Stack:
    stack: str  # the stack tag: ns/name, or the group name
    kind: str  # application | network
    name: str  # the load balancer's name
    stack_tag: str  # ingress.k8s.aws/stack or service.k8s.aws/stack
    resource_tag: str
    scheme: str
    subnets: tuple[str, ...] | None  # None: the cluster's, one per zone
    security_groups: tuple[str, ...] | None
    listeners: tuple[ListenerSpec, ...]
    groups: tuple[Group, ...]
    members: tuple[tuple[str, str], ...]  # the Ingresses (ns, name) or the Service
    tags: tuple[tuple[str, str], ...] = ()
    lb_attributes: tuple[tuple[str, str], ...] = ()

    def group(self, resource: str) -> Group:
        return next(g for g in self.groups if g.resource == resource)


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:10]


def _clean(text: str, size: int) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text)[:size]


def lb_name(cluster: str, stack: str, ns: str, name: str, group: str | None) -> str:
    head = _clean(group, 17) if group else f"{_clean(ns, 8)}-{_clean(name, 8)}"
    return f"k8s-{head}-{_hash(cluster, stack)}"


def tg_name(cluster: str, stack: str, g: Group) -> str:
    return (f"k8s-{_clean(g.ns, 8)}-{_clean(g.service, 8)}-"
            f"{_hash(cluster, stack, g.resource, g.protocol)}")


def _ann(obj: Obj) -> dict[str, str]:
    a = (obj.get("metadata") or {}).get("annotations") or {}
    return {k: v for k, v in a.items() if isinstance(v, str)}


def _int(a: dict[str, str], key: str, lo: int, hi: int, default: int, where: str) -> int:
    raw = a.get(key)
    if raw is None:
        return default
    if not re.fullmatch(r"-?[0-9]{1,6}", raw.strip()) or not lo <= int(raw) <= hi:
        raise BuildError(f"{where}: failed to parse {key}: must be an integer from {lo} to "
                         f"{hi}, not {raw[:40]!r}")
    return int(raw)


def _list(raw: str | None) -> tuple[str, ...] | None:
    if raw is None:
        return None
    return tuple(x.strip() for x in raw.split(",") if x.strip()) or None


def _map(raw: str | None, where: str, key: str) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    out = []
    for item in raw.split(","):
        k, eq, v = item.strip().partition("=")
        if not eq or not k.strip():
            raise BuildError(f"{where}: failed to parse stringMap annotation {key}: {raw[:80]}")
        out.append((k.strip(), v.strip()))
    return tuple(out)


# Annotations whose feature fargo does not have: refused by name, never ignored.
_UNSUPPORTED = ("certificate-arn", "ssl-redirect", "ssl-policy", "auth-type", "auth-idp-cognito",
                "auth-idp-oidc", "wafv2-acl-arn", "waf-acl-id", "shield-advanced-protection",
                "inbound-cidrs", "customer-owned-ipv4-pool", "mutual-authentication",
                "security-group-prefix-lists", "manage-backend-security-group-rules",
                "backend-protocol-version", "frontend-nlb-scheme", "enable-frontend-nlb")


def _refused(a: dict[str, str], where: str) -> None:
    for key in a:
        if not key.startswith(A):
            continue
        short = key[len(A):]
        if short in _UNSUPPORTED or short.startswith(("actions.", "conditions.")):
            raise BuildError(f"{where}: annotation {key} is not supported by fargo "
                             "(no certificates, authentication, WAF or custom actions yet)")
    if a.get(A + "ip-address-type", "ipv4") != "ipv4":
        raise BuildError(f"{where}: {A}ip-address-type {a[A + 'ip-address-type']!r} is not "
                         "supported by fargo: load balancers have IPv4 addresses only")
    proto = a.get(A + "backend-protocol", "HTTP")
    if proto != "HTTP":
        raise BuildError(f"{where}: {A}backend-protocol {proto!r} is not supported by fargo: "
                         "use HTTP (HTTPS needs certificates)")


def target_type_error(value: str | None, key: str) -> str | None:
    if value == "ip":
        return None
    if value in (None, "instance"):
        said = "defaults to instance" if value is None else "instance"
        return (f"{key} {said}: Fargate pods run on no node whose port could be a target; "
                f"set {key}: ip")
    return f"{key} {value[:40]!r} is not valid: use ip"


def _listen_ports(a: dict[str, str], where: str) -> tuple[int, ...]:
    raw = a.get(A + "listen-ports")
    if raw is None:
        return (80,)
    try:
        entries = json.loads(raw)
    except (ValueError, RecursionError):  # nesting past the parser's depth too
        raise BuildError(f"{where}: failed to parse json annotation {A}listen-ports: "
                         f"{raw[:80]}") from None
    ports: list[int] = []
    if not isinstance(entries, list) or not entries:
        raise BuildError(f"{where}: {A}listen-ports must be a JSON list such as "
                         "[{\"HTTP\": 80}]")
    for e in entries:
        if not isinstance(e, dict) or len(e) != 1:
            raise BuildError(f"{where}: {A}listen-ports entries are one protocol each, such "
                             "as {\"HTTP\": 80}")
        (proto, port), = e.items()
        if proto == "HTTPS":
            raise BuildError(f"{where}: HTTPS listeners need certificates, which fargo does "
                             "not have yet: listen on HTTP")
        if proto != "HTTP" or not isinstance(port, int) or isinstance(port, bool) or \
                not 1 <= port <= 65535:
            raise BuildError(f"{where}: listen protocol must be HTTP or HTTPS and the port "
                             f"1-65535: {json.dumps(e)[:60]}")
        if port not in ports:
            ports.append(port)
    return tuple(ports)


def _health(anns: list[dict[str, str]], where: str, http: bool) -> Health:
    """Health check settings: the Service's annotation first, then the Ingress's."""
    def get(key: str) -> str | None:
        return next((a[key] for a in anns if key in a), None)
    merged = {k: v for k in (A + "healthcheck-path", A + "healthcheck-interval-seconds",
                             A + "healthcheck-timeout-seconds", A + "healthy-threshold-count",
                             A + "unhealthy-threshold-count", A + "success-codes",
                             A + "healthcheck-protocol")
              if (v := get(k)) is not None}
    proto = merged.get(A + "healthcheck-protocol", "HTTP")
    if proto not in ("HTTP",):
        raise BuildError(f"{where}: {A}healthcheck-protocol {proto[:20]!r} is not supported "
                         "by fargo: use HTTP")
    path = merged.get(A + "healthcheck-path", "/")
    if not path.startswith("/"):
        raise BuildError(f"{where}: {A}healthcheck-path must begin with '/'")
    return Health("HTTP", path,
                  _int(merged, A + "healthcheck-interval-seconds", 5, 300, 15, where),
                  _int(merged, A + "healthcheck-timeout-seconds", 2, 120, 5, where),
                  _int(merged, A + "healthy-threshold-count", 2, 10, 2, where),
                  _int(merged, A + "unhealthy-threshold-count", 2, 10, 2, where),
                  merged.get(A + "success-codes", "200"))


def _paths(kind: str, path: str | None) -> tuple[str, ...]:
    """An Ingress path as ALB path patterns, as the controller turns them."""
    if kind == "Exact":
        return (path or "/",)
    if kind == "Prefix":
        if path in (None, "", "/"):
            return ("/*",)
        bare = path.rstrip("/")
        return (bare, bare + "/*")
    return (path,) if path else ()


def _rank(kind: str, path: str | None) -> tuple[int, int]:
    """Within an Ingress, Exact paths before Prefix ones, longer prefixes first (as an
    Ingress means them); ImplementationSpecific keep their place after those."""
    if kind == "Exact":
        return (0, 0)
    if kind == "Prefix":
        return (1, -len((path or "/").rstrip("/")))
    return (2, 0)


Services = dict[tuple[str, str], Obj]


def _service_port(svc: Obj, port: int | str, where: str) -> None:
    for p in (svc.get("spec") or {}).get("ports") or []:
        if (isinstance(port, int) and p.get("port") == port) or \
                (isinstance(port, str) and p.get("name") == port):
            return
    ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    raise BuildError(f"{where}: unable to find port {port} on service {ns}/{name}")


def group_of(ing: Obj) -> tuple[str | None, int]:
    """The Ingress's group.name (None: a group of its own) and group.order."""
    a = _ann(ing)
    where = f"ingress: {ing['metadata']['namespace']}/{ing['metadata']['name']}"
    name = a.get(A + "group.name")
    if name is not None and (len(name) > 63 or not _GROUP_NAME.match(name)):
        raise BuildError(f"{where}: invalid ingress group name: {name[:70]!r}")
    return name, _int(a, A + "group.order", -1000, 1000, 0, where)


def build_alb(cluster: str, group: str | None, ingresses: list[Obj],
              services: Services) -> Stack:
    """The application load balancer of an Ingress group (one Ingress when group is None):
    ingresses are the group's live members, in group.order then name."""
    first = ingresses[0]["metadata"]
    stack = group or f"{first['namespace']}/{first['name']}"
    exclusive: dict[str, tuple[str, str]] = {}
    ports_of: dict[int, list[Rule]] = {}
    defaults: dict[int, str] = {}
    groups: dict[str, Group] = {}
    tags: list[tuple[str, str]] = []
    lb_attrs: list[tuple[str, str]] = []
    for ing in ingresses:
        meta = ing["metadata"]
        ns, name = meta["namespace"], meta["name"]
        where = f"ingress: {ns}/{name}"
        a = _ann(ing)
        _refused(a, where)
        for key in ("scheme", "subnets", "security-groups", "load-balancer-name"):
            if A + key in a:
                seen = exclusive.setdefault(key, (a[A + key], where))
                if seen[0] != a[A + key]:
                    raise BuildError(f"conflicting {key} {seen[0]!r} ({seen[1]}) and "
                                     f"{a[A + key]!r} ({where})")
        tags += _map(a.get(A + "tags"), where, A + "tags")
        lb_attrs += _map(a.get(A + "load-balancer-attributes"), where,
                         A + "load-balancer-attributes")
        listen = _listen_ports(a, where)

        def backend(b: Obj, at: str, a: dict[str, str] = a, ns: str = ns, name: str = name,
                    where: str = where) -> str:
            if b.get("resource") is not None:
                raise BuildError(f"{where}: {at}: resource backends are not supported by the "
                                 "AWS Load Balancer Controller: name a Service")
            sb = b["service"]
            port = sb["port"].get("name") or sb["port"].get("number")
            if port == "use-annotation":
                raise BuildError(f"{where}: {at}: {A}actions.{sb['name']} (use-annotation) is "
                                 "not supported by fargo")
            svc = services.get((ns, sb["name"]))
            if svc is None:
                raise BuildError(f"{where}: Service \"{sb['name']}\" not found")
            _service_port(svc, port, where)
            sa = _ann(svc)
            err = target_type_error(sa.get(A + "target-type", a.get(A + "target-type")),
                                    A + "target-type")
            if err:
                raise BuildError(f"{where}: {err}")
            resource = f"{ns}/{name}-{sb['name']}:{port}"
            attrs = _map(sa.get(A + "target-group-attributes",
                                a.get(A + "target-group-attributes")), where,
                         A + "target-group-attributes")
            groups.setdefault(resource, Group(resource, ns, sb["name"], port, "HTTP",
                                              _health([sa, a], where, True), attrs))
            return resource

        spec = ing.get("spec") or {}
        if spec.get("defaultBackend"):
            key = backend(spec["defaultBackend"], "spec.defaultBackend")
            for port in listen:
                if defaults.setdefault(port, key) != key:
                    raise BuildError(f"{where}: conflicting default backends on port {port}")
        entries: list[tuple[tuple[int, int], int, Any, str, Any, Obj]] = []
        for rule in spec.get("rules") or []:
            host = rule.get("host")
            for p in ((rule.get("http") or {}).get("paths") or []):
                kind, path = p.get("pathType", "ImplementationSpecific"), p.get("path")
                entries.append((_rank(kind, path), len(entries), host, kind, path,
                                p["backend"]))
        for _, _, host, kind, path, b in sorted(entries, key=lambda e: (e[0], e[1])):
            key = backend(b, f"path {path or '/'}")
            made = Rule((host,) if host else (), _paths(kind, path), key)
            for port in listen:
                ports_of.setdefault(port, []).append(made)
    a0 = {k: v for ing in ingresses for k, v in _ann(ing).items()}
    scheme = a0.get(A + "scheme", "internal")
    if scheme not in ("internal", "internet-facing"):
        raise BuildError(f"invalid {A}scheme {scheme[:40]!r}: use internal or internet-facing")
    listeners = []
    for port in sorted(set(ports_of) | set(defaults)):
        rules = tuple(r if r.hosts or r.paths else Rule(r.hosts, ("/*",), r.group)
                      for r in ports_of.get(port, []))
        listeners.append(ListenerSpec(port, "HTTP", rules, defaults.get(port)))
    name = a0.get(A + "load-balancer-name") or lb_name(
        cluster, stack, first["namespace"], first["name"], group)
    return Stack(stack, "application", name, INGRESS_STACK, INGRESS_RESOURCE, scheme,
                 _list(a0.get(A + "subnets")), _list(a0.get(A + "security-groups")),
                 tuple(listeners), tuple(groups.values()),
                 tuple((i["metadata"]["namespace"], i["metadata"]["name"]) for i in ingresses),
                 tuple(dict(tags).items()), tuple(dict(lb_attrs).items()))


def wants_nlb(svc: Obj) -> bool:
    """A Service the AWS LB controller makes an NLB for: type LoadBalancer, with its
    loadBalancerClass or the external/nlb-ip load balancer type annotation."""
    spec = svc.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return False
    cls = spec.get("loadBalancerClass")
    if cls is not None:
        return bool(cls == NLB_CLASS)
    return _ann(svc).get(S + "aws-load-balancer-type") in ("external", "nlb-ip")


def legacy_refusal(svc: Obj) -> str | None:
    """Why a LoadBalancer Service the AWS LB controller leaves alone gets no load balancer
    (the in-tree cloud provider would make a Classic one, of instance targets)."""
    spec = svc.get("spec") or {}
    if spec.get("type") != "LoadBalancer" or wants_nlb(svc) or \
            spec.get("loadBalancerClass") is not None:
        return None
    return ("fargo makes load balancers for Services as the AWS Load Balancer Controller "
            f"does: annotate {S}aws-load-balancer-type: external and "
            f"{S}aws-load-balancer-nlb-target-type: ip (Classic Load Balancers and instance "
            "targets need nodes, which Fargate pods do not have)")


def build_nlb(cluster: str, svc: Obj) -> Stack:
    meta = svc["metadata"]
    ns, name = meta["namespace"], meta["name"]
    where = f"service: {ns}/{name}"
    a = _ann(svc)
    kind = a.get(S + "aws-load-balancer-type")
    target = "ip" if kind == "nlb-ip" else a.get(S + "aws-load-balancer-nlb-target-type")
    err = target_type_error(target, S + "aws-load-balancer-nlb-target-type")
    if err:
        raise BuildError(f"{where}: {err}")
    scheme = a.get(S + "aws-load-balancer-scheme")
    if scheme is None:
        scheme = "internal" if a.get(S + "aws-load-balancer-internal", "true") == "true" \
            else "internet-facing"
    if scheme not in ("internal", "internet-facing"):
        raise BuildError(f"{where}: invalid {S}aws-load-balancer-scheme {scheme[:40]!r}")
    for key in ("aws-load-balancer-ssl-cert", "aws-load-balancer-proxy-protocol",
                "aws-load-balancer-eip-allocations", "aws-load-balancer-private-ipv4-addresses"):
        if S + key in a:
            raise BuildError(f"{where}: annotation {S}{key} is not supported by fargo")
    if a.get(S + "aws-load-balancer-ip-address-type", "ipv4") != "ipv4":
        raise BuildError(f"{where}: only ipv4 load balancers are supported by fargo")
    hproto = a.get(S + "aws-load-balancer-healthcheck-protocol", "TCP").upper()
    if hproto not in ("TCP", "HTTP"):
        raise BuildError(f"{where}: healthcheck protocol {hproto[:20]!r} is not supported by "
                         "fargo: use TCP or HTTP")
    health = Health(hproto, a.get(S + "aws-load-balancer-healthcheck-path", "/")
                    if hproto == "HTTP" else None,
                    _int(a, S + "aws-load-balancer-healthcheck-interval", 5, 300, 10, where),
                    # upstream's TCP default is 10 s, as long as its interval: ELBv2 here
                    # wants the timeout under the interval, so 6 s as for HTTP
                    _int(a, S + "aws-load-balancer-healthcheck-timeout", 2, 120, 6, where),
                    _int(a, S + "aws-load-balancer-healthcheck-healthy-threshold", 2, 10, 3,
                         where),
                    _int(a, S + "aws-load-balancer-healthcheck-unhealthy-threshold", 2, 10, 3,
                         where),
                    "200-399" if hproto == "HTTP" else None)
    attrs = _map(a.get(S + "aws-load-balancer-target-group-attributes"), where,
                 S + "aws-load-balancer-target-group-attributes")
    listeners, groups = [], []
    for p in (svc.get("spec") or {}).get("ports") or []:
        if p.get("protocol", "TCP") != "TCP":
            raise BuildError(f"{where}: port {p.get('port')}: protocol {p.get('protocol')} is "
                             "not supported by fargo's network load balancers: use TCP")
        g = Group(str(p["port"]), ns, name, p["port"], "TCP", health, attrs)
        groups.append(g)
        listeners.append(ListenerSpec(p["port"], "TCP", (), g.resource))
    if not listeners:
        raise BuildError(f"{where}: a LoadBalancer Service needs at least one port")
    # Hashed apart from an Ingress of the same ns/name, whose ALB is another load balancer.
    lb = a.get(S + "aws-load-balancer-name") or lb_name(cluster, f"service:{ns}/{name}", ns,
                                                        name, None)
    return Stack(f"{ns}/{name}", "network", lb, SERVICE_STACK, SERVICE_RESOURCE, scheme,
                 _list(a.get(S + "aws-load-balancer-subnets")),
                 _list(a.get(S + "aws-load-balancer-security-groups")), tuple(listeners),
                 tuple(groups), ((ns, name),),
                 _map(a.get(S + "aws-load-balancer-additional-resource-tags"), where,
                      S + "aws-load-balancer-additional-resource-tags"))


@dataclass
class Endpoint:
    ip: str
    port: int
    pod: str | None  # the targetRef pod's name
    ready: bool


def endpoints(svc: Obj, port: int | str, slices: list[Obj]) -> list[Endpoint]:
    """The endpoints of one Service port (by number or name) as the slices hold them, each
    with the port its pod listens on."""
    sp = next((p for p in (svc.get("spec") or {}).get("ports") or []
               if (isinstance(port, int) and p.get("port") == port) or
               (isinstance(port, str) and p.get("name") == port)), None)
    if sp is None:
        return []
    pname = sp.get("name") or ""
    out = []
    for s in slices:
        if s.get("addressType", "IPv4") != "IPv4":
            continue
        sport = next((p for p in s.get("ports") or [] if (p.get("name") or "") == pname), None)
        if sport is None or not isinstance(sport.get("port"), int):
            continue
        for e in s.get("endpoints") or []:
            ref = e.get("targetRef") or {}
            ready = (e.get("conditions") or {}).get("ready") is not False
            for ip in e.get("addresses") or []:
                out.append(Endpoint(ip, sport["port"], ref.get("name"), ready))
    return out
