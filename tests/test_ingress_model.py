"""Ingress and IngressClass as the apiserver checks them, and the AWS Load Balancer
Controller's model of them (model/ingress.py): which Ingresses are class alb, annotations,
group stacks, path patterns, rule order, NLB Services, refusals by name."""

from __future__ import annotations

import pytest

from fargo.model import ingress as m
from fargo.model.kubeerrors import KubeError

A = m.A
S = m.S


def ingress(name: str = "web", ns: str = "apps", annotations: dict | None = None,
            rules: list | None = None, default: dict | None = None,
            cls: str | None = "alb") -> dict:
    spec: dict = {}
    if cls:
        spec["ingressClassName"] = cls
    if rules is not None:
        spec["rules"] = rules
    if default is not None:
        spec["defaultBackend"] = default
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns, "uid": "u-" + name,
                         "annotations": {A + "target-type": "ip", **(annotations or {})}},
            "spec": spec}


def backend(svc: str, port: int | str = 80) -> dict:
    key = "number" if isinstance(port, int) else "name"
    return {"service": {"name": svc, "port": {key: port}}}


def path(p: str | None, kind: str, svc: str = "web", port: int | str = 80) -> dict:
    out = {"pathType": kind, "backend": backend(svc, port)}
    if p is not None:
        out["path"] = p
    return out


def service(name: str = "web", ns: str = "apps", ports: list | None = None,
            annotations: dict | None = None, type_: str = "ClusterIP") -> dict:
    return {"kind": "Service", "metadata": {"name": name, "namespace": ns, "uid": "s-" + name,
                                            "annotations": annotations or {}},
            "spec": {"type": type_, "ports": ports or [{"name": "http", "port": 80,
                                                       "targetPort": 8080,
                                                       "protocol": "TCP"}]}}


def causes(obj: dict) -> list[str]:
    with pytest.raises(KubeError) as err:
        m.check_ingress(obj, None)
    assert err.value.code == 422
    return [c["field"] + ": " + c["message"] for c in err.value.details["causes"]]


def test_the_apiservers_checks():
    assert causes(ingress()) == ["spec: Invalid value: \"\": either `defaultBackend` or "
                                 "`rules` must be specified"]
    bad = ingress(rules=[{"host": "1.2.3.4", "http": {"paths": [
        {"path": "x", "pathType": "Prefix", "backend": backend("web")},
        {"path": "/", "backend": backend("web")},
        {"path": "/", "pathType": "Sometimes", "backend": backend("web")},
        {"path": "/", "pathType": "Exact", "backend": {"service": {"name": "web",
                                                                    "port": {}}}},
        {"path": "/", "pathType": "Exact", "backend": {"service": {
            "name": "web", "port": {"name": "http", "number": 80}}}}]}}])
    found = causes(bad)
    assert found[0].startswith("spec.rules[0].host: Invalid value: \"1.2.3.4\": must be a DNS "
                               "name, not an IP address")
    assert "spec.rules[0].http.paths[0].path: Invalid value: \"x\": must be an absolute path" \
        in found
    assert "spec.rules[0].http.paths[1].pathType: Required value: pathType must be specified" \
        in found
    assert any(f.startswith("spec.rules[0].http.paths[2].pathType: Unsupported value") for f in found)
    assert "spec.rules[0].http.paths[3].backend.service.port: Invalid value: \"\": port name " \
        "or number is required" in found
    assert "spec.rules[0].http.paths[4].backend.service.port: Invalid value: \"\": cannot set " \
        "both port name & port number" in found
    m.check_ingress(ingress(rules=[{"host": "*.example.com", "http": {"paths": [
        path("/", "Prefix")]}}]), None)
    m.check_ingress(ingress(default=backend("web")), None)


def test_ingress_class_checks_and_which_ingresses_are_albs():
    cls = m.alb_class()
    cls["metadata"]["name"] = "alb"
    m.check_ingress_class(cls, None)
    with pytest.raises(KubeError, match="spec.controller: Required value"):
        m.check_ingress_class({"metadata": {"name": "x"}, "spec": {}}, None)
    other = {"metadata": {"name": "x"}, "spec": {"controller": "example.com/other"}}
    with pytest.raises(KubeError, match="field is immutable"):
        m.check_ingress_class(other, cls)
    assert m.is_alb(ingress(cls="alb"), [])  # the controller's default class name
    assert m.is_alb(ingress(cls="alb"), [cls])
    nginx = {"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}
    assert not m.is_alb(ingress(cls="nginx"), [cls, nginx])
    legacy = ingress(cls=None, annotations={"kubernetes.io/ingress.class": "alb"})
    assert m.is_alb(legacy, [])
    assert not m.is_alb(ingress(cls=None), [cls])
    default = {**cls, "metadata": {"name": "alb", "annotations": {
        "ingressclass.kubernetes.io/is-default-class": "true"}}}
    assert m.is_alb(ingress(cls=None), [default])


def test_a_2048_style_ingress_builds_one_alb_of_ip_targets():
    ing = ingress("ingress-2048", "game-2048", {A + "scheme": "internal"},
                  rules=[{"http": {"paths": [path("/", "Prefix", "service-2048")]}}])
    svcs = {("game-2048", "service-2048"): service("service-2048", "game-2048")}
    stack = m.build_alb("c1", None, [ing], svcs)
    assert stack.stack == "game-2048/ingress-2048" and stack.kind == "application"
    assert stack.name.startswith("k8s-game2048-ingress2-") and len(stack.name) <= 32
    assert stack.name == m.build_alb("c1", None, [ing], svcs).name  # stable: found again
    assert stack.name != m.build_alb("c2", None, [ing], svcs).name  # per cluster
    (listener,) = stack.listeners
    assert listener.port == 80 and listener.default is None
    assert [(r.hosts, r.paths) for r in listener.rules] == [((), ("/*",))]
    (grp,) = stack.groups
    assert grp.resource == "game-2048/ingress-2048-service-2048:80"
    assert grp.health == m.Health()  # the controller's defaults: / every 15 s, 2 and 2
    assert stack.scheme == "internal"


def test_paths_hosts_order_and_annotations():
    ing = ingress(annotations={A + "listen-ports": '[{"HTTP": 8080}, {"HTTP": 80}]',
                               A + "healthcheck-path": "/healthz",
                               A + "success-codes": "200-299",
                               A + "target-group-attributes":
                                   "deregistration_delay.timeout_seconds=5"},
                  rules=[{"host": "a.example.com", "http": {"paths": [
                      path("/app/", "Prefix"), path("/app/x", "Prefix"),
                      path("/exact", "Exact"), path("/img/*.png", "ImplementationSpecific")]}}],
                  default=backend("web", "http"))
    stack = m.build_alb("c", None, [ing], {("apps", "web"): service()})
    assert [x.port for x in stack.listeners] == [80, 8080]
    rules = stack.listeners[0].rules
    assert [r.paths for r in rules] == [("/exact",), ("/app/x", "/app/x/*"),
                                        ("/app", "/app/*"), ("/img/*.png",)]
    assert all(r.hosts == ("a.example.com",) for r in rules)
    assert stack.listeners[0].default == "apps/web-web:http"
    grp = stack.group("apps/web-web:80")
    assert grp.health.path == "/healthz" and grp.health.codes == "200-299"
    assert grp.attributes == (("deregistration_delay.timeout_seconds", "5"),)


def test_a_group_shares_one_alb_in_group_order():
    a = ingress("a", "one", {A + "group.name": "shared", A + "group.order": "2"},
                rules=[{"host": "a.test", "http": {"paths": [path("/", "Prefix")]}}])
    b = ingress("b", "two", {A + "group.name": "shared", A + "group.order": "1"},
                rules=[{"host": "b.test", "http": {"paths": [path("/", "Prefix")]}}])
    assert m.group_of(a) == ("shared", 2)
    svcs = {("one", "web"): service(ns="one"), ("two", "web"): service(ns="two")}
    stack = m.build_alb("c", "shared", [b, a], svcs)
    assert stack.stack == "shared" and stack.name.startswith("k8s-shared-")
    assert [r.hosts for r in stack.listeners[0].rules] == [("b.test",), ("a.test",)]
    assert {g.resource for g in stack.groups} == {"one/a-web:80", "two/b-web:80"}
    c = ingress("c", "one", {A + "group.name": "shared", A + "scheme": "internet-facing"},
                rules=[{"http": {"paths": [path("/", "Prefix")]}}])
    d = ingress("d", "one", {A + "group.name": "shared", A + "scheme": "internal"},
                rules=[{"http": {"paths": [path("/", "Prefix")]}}])
    with pytest.raises(m.BuildError, match="conflicting scheme"):
        m.build_alb("c", "shared", [c, d], svcs)
    with pytest.raises(m.BuildError, match="invalid ingress group name"):
        m.group_of(ingress(annotations={A + "group.name": "Not_Valid"}))


def test_refusals_by_name():
    svcs = {("apps", "web"): service()}
    rules = [{"http": {"paths": [path("/", "Prefix")]}}]
    with pytest.raises(m.BuildError, match='Service "missing" not found'):
        m.build_alb("c", None, [ingress(rules=[{"http": {"paths": [
            path("/", "Prefix", "missing")]}}])], svcs)
    with pytest.raises(m.BuildError, match="unable to find port 81 on service apps/web"):
        m.build_alb("c", None, [ingress(rules=[{"http": {"paths": [
            path("/", "Prefix", "web", 81)]}}])], svcs)
    instance = ingress(rules=rules)
    instance["metadata"]["annotations"][A + "target-type"] = "instance"
    with pytest.raises(m.BuildError, match="target-type instance: Fargate pods"):
        m.build_alb("c", None, [instance], svcs)
    unset = ingress(rules=rules)
    del unset["metadata"]["annotations"][A + "target-type"]
    with pytest.raises(m.BuildError, match="defaults to instance"):
        m.build_alb("c", None, [unset], svcs)
    with pytest.raises(m.BuildError, match="HTTPS listeners need certificates"):
        m.build_alb("c", None, [ingress(annotations={A + "listen-ports": '[{"HTTPS": 443}]'},
                                        rules=rules)], svcs)
    with pytest.raises(m.BuildError, match="certificate-arn is not supported"):
        m.build_alb("c", None, [ingress(annotations={A + "certificate-arn": "arn:x"},
                                        rules=rules)], svcs)
    with pytest.raises(m.BuildError, match="failed to parse json annotation"):
        m.build_alb("c", None, [ingress(annotations={A + "listen-ports": "[{"},
                                        rules=rules)], svcs)


def test_nlb_services():
    plain = service(type_="LoadBalancer")
    assert not m.wants_nlb(plain) and "aws-load-balancer-type: external" in (
        m.legacy_refusal(plain) or "")
    assert m.legacy_refusal(service()) is None
    svc = service(type_="LoadBalancer", annotations={
        S + "aws-load-balancer-type": "external", S + "aws-load-balancer-nlb-target-type": "ip",
        S + "aws-load-balancer-scheme": "internal"},
        ports=[{"name": "a", "port": 80, "targetPort": 8080, "protocol": "TCP"},
               {"name": "b", "port": 81, "targetPort": "b", "protocol": "TCP"}])
    assert m.wants_nlb(svc)
    stack = m.build_nlb("c", svc)
    assert stack.kind == "network" and stack.stack == "apps/web"
    assert [(x.port, x.protocol, x.default) for x in stack.listeners] == [
        (80, "TCP", "80"), (81, "TCP", "81")]
    assert stack.groups[0].health.protocol == "TCP"
    svc["metadata"]["annotations"][S + "aws-load-balancer-nlb-target-type"] = "instance"
    with pytest.raises(m.BuildError, match="nlb-target-type instance"):
        m.build_nlb("c", svc)
    udp = service(type_="LoadBalancer", annotations={S + "aws-load-balancer-type": "nlb-ip"},
                  ports=[{"port": 53, "protocol": "UDP"}])
    with pytest.raises(m.BuildError, match="protocol UDP is not supported"):
        m.build_nlb("c", udp)


def test_endpoints_of_a_service_port():
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "web"}])
    slices = [{"addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
               "endpoints": [
                   {"addresses": ["10.0.0.5"], "conditions": {"ready": True},
                    "targetRef": {"kind": "Pod", "name": "p1"}},
                   {"addresses": ["10.0.0.6"], "conditions": {"ready": False},
                    "targetRef": {"kind": "Pod", "name": "p2"}}]}]
    found = m.endpoints(svc, 80, slices)
    assert [(e.ip, e.port, e.pod, e.ready) for e in found] == [
        ("10.0.0.5", 8080, "p1", True), ("10.0.0.6", 8080, "p2", False)]
    assert m.endpoints(svc, "http", slices) == found
    assert m.endpoints(svc, 81, slices) == []
