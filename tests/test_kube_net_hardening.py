"""Hostile input to issue 16's networking kinds (Service, Endpoints, EndpointSlice, Ingress,
IngressClass, NetworkPolicy, SecurityGroupPolicy) and to the AWS Load Balancer Controller's
annotations, sent over HTTPS with the cluster's token and with the real kubectl. Every answer
is the apiserver's Status with its code (never a 5xx, never a traceback in the server log);
what is stored survives a refusal as it was; a refused create or update allocates no
clusterIP (none leaked, none handed out twice) and no load balancer is made for what the
controller cannot build. One server for the module; nothing runs (namespace NS has no
Fargate profile)."""

from __future__ import annotations

import base64
import concurrent.futures
import copy
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, FargoServers
from tests.test_kube_hardening import JSONP, MERGE, STRATEGIC, Kube, tracebacks

KUBECTL = "/usr/bin/kubectl"
NS = "nh"
Obj = dict[str, Any]
SVC = "/api/v1/namespaces/nh/services"
EPS = "/api/v1/namespaces/nh/endpoints"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/nh/endpointslices"
ING = "/apis/networking.k8s.io/v1/namespaces/nh/ingresses"
CLASSES = "/apis/networking.k8s.io/v1/ingressclasses"
NETPOL = "/apis/networking.k8s.io/v1/namespaces/nh/networkpolicies"
SGP = "/apis/vpcresources.k8s.aws/v1beta1/namespaces/nh/securitygrouppolicies"
A = "alb.ingress.kubernetes.io/"
S = "service.beta.kubernetes.io/"


class World:
    def __init__(self, kube: Kube, srv: Any, cluster: str, subnets: list[str]):
        self.kube, self.srv, self.cluster, self.subnets = kube, srv, cluster, subnets
        self.elbv2, self.eks = srv.client("elbv2"), srv.client("eks")

    def kube_of(self, cluster: str) -> Kube:
        """A client of another cluster of the server, with its own token."""
        out = subprocess.run([sys.executable, "-m", "fargo", "kubeconfig", cluster,
                              "--endpoint", self.srv.endpoint], capture_output=True,
                             text=True, cwd=ROOT, env=self.srv.env(), timeout=30,
                             check=True).stdout
        doc = yaml.safe_load(out)
        return Kube(doc["clusters"][0]["cluster"]["server"], doc["users"][0]["user"]["token"],
                    self.kube.ca, self.kube.log, self.kube.config)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("kube-net-hardening")
    with FargoServers(base) as servers:
        srv = servers()
        eks, ec2 = srv.client("eks"), srv.client("ec2")
        subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]]
        cluster = "n" + uuid.uuid4().hex[:8]
        eks.create_cluster(name=cluster, roleArn="arn:aws:iam::000000000000:role/eks",
                           resourcesVpcConfig={"subnetIds": subnets})
        out = subprocess.run([sys.executable, "-m", "fargo", "kubeconfig", cluster,
                              "--endpoint", srv.endpoint], capture_output=True, text=True,
                             cwd=ROOT, env=srv.env(), timeout=30, check=True).stdout
        config = base / "kubeconfig"
        config.write_text(out)
        doc = yaml.safe_load(out)
        ca = base / "ca.pem"
        ca.write_bytes(base64.b64decode(doc["clusters"][0]["cluster"][
            "certificate-authority-data"]))
        kube = Kube(doc["clusters"][0]["cluster"]["server"], doc["users"][0]["user"]["token"],
                    str(ca), srv.log, config)
        kube.call("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
        yield World(kube, srv, cluster, subnets)


def svc(name: str, **spec: Any) -> Obj:
    body: Obj = {"selector": {"app": name[:63]},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body}


def _set(obj: Obj, dotted: str, value: Any) -> Obj:
    out = copy.deepcopy(obj)
    node: Any = out
    keys = [int(k) if k.isdigit() else k for k in dotted.split(".")]
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return out


def refused(kube: Kube, method: str, path: str, body: Any, code: int | tuple[int, ...],
            says: str = "", ctype: str = "application/json") -> Obj:
    r = kube.call(method, path, body, ctype=ctype)
    codes = code if isinstance(code, tuple) else (code,)
    assert r.status_code in codes, (method, path, str(body)[:300], r.status_code, r.text[:400])
    st = r.json()
    assert says in st["message"], (says, st["message"][:400])
    return st


def cluster_ips(kube: Kube) -> list[str]:
    items = kube.get("/api/v1/services")["items"]
    return [i["spec"]["clusterIP"] for i in items
            if i["spec"].get("clusterIP") not in (None, "", "None")]


def names(kube: Kube, path: str) -> set[str]:
    return {i["metadata"]["name"] for i in kube.get(path)["items"]}


# ---- Services
SERVICE_CASES: list[tuple[str, Any, int, str]] = [
    ("spec.ports.0.port", 0, 422, "spec.ports[0].port"),
    ("spec.ports.0.port", 65536, 422, "must be between 1 and 65535"),
    ("spec.ports.0.port", 2**31, 400, "int32"),
    ("spec.ports.0.port", "80", 400, ""),
    ("spec.ports.0.port", None, 422, "spec.ports[0].port"),
    ("spec.ports.0.protocol", "HTTP", 422, 'Unsupported value: "HTTP"'),
    ("spec.ports.0.protocol", 6, 400, ""),
    ("spec.ports.0.targetPort", "Http_1", 422, "spec.ports[0].targetPort"),
    ("spec.ports.0.targetPort", "a--b", 422, "spec.ports[0].targetPort"),
    ("spec.ports.0.targetPort", "1234", 422, "at least one letter"),
    ("spec.ports.0.targetPort", "x" * 16, 422, "no more than 15"),
    ("spec.ports.0.targetPort", 65536, 422, "spec.ports[0].targetPort"),
    ("spec.ports.0.targetPort", -1, 422, "spec.ports[0].targetPort"),
    ("spec.ports.0.targetPort", 2**31, 400, ""),
    ("spec.ports.0.targetPort", 1.5, 400, ""),
    ("spec.ports.0.name", "HTTP", 422, "spec.ports[0].name"),
    ("spec.ports.0.nodePort", 30080, 422, "spec.ports[0].nodePort"),
    ("spec.ports", [{"name": "a", "port": 80}, {"name": "a", "port": 81}], 422,
     'Duplicate value: "a"'),
    ("spec.ports", [{"port": 80}, {"port": 81}], 422, "spec.ports[0].name: Required"),
    ("spec.ports", [{"name": "a", "port": 80}, {"name": "b", "port": 80}], 422, "Duplicate"),
    ("spec.ports", [], 422, "spec.ports: Required value"),
    ("spec.ports", [{"name": f"p{i}", "port": 80} for i in range(5000)], 422, "Duplicate"),
    ("spec.ports", "80", 400, ""),
    ("spec.clusterIP", "10.0.0.1", 422, "not in the valid range"),
    ("spec.clusterIP", "172.20.0.0", 422, "not in the valid range"),
    ("spec.clusterIP", "172.20.255.255", 422, "not in the valid range"),
    ("spec.clusterIP", "bogus", 422, "must be a valid IP address"),
    ("spec.clusterIP", "fd00::1", 422, ""),
    ("spec.clusterIP", 1, 400, ""),
    ("spec.clusterIPs", ["172.20.9.9", "172.20.9.10"], 422, "spec.clusterIPs"),
    ("spec.type", "Bogus", 422, 'Unsupported value: "Bogus"'),
    ("spec.type", "NodePort", 422, "NodePort Services are not supported on Fargate"),
    ("spec.sessionAffinity", "Sticky", 422, "spec.sessionAffinity"),
    ("spec.externalTrafficPolicy", "Local", 422, "spec.externalTrafficPolicy"),
    ("spec.internalTrafficPolicy", "Nearest", 422, "spec.internalTrafficPolicy"),
    ("spec.ipFamilies", ["IPv6"], 422, "spec.ipFamilies[0]"),
    ("spec.ipFamilies", ["IPv5"], 422, "spec.ipFamilies[0]"),
    ("spec.ipFamilyPolicy", "Maybe", 422, "spec.ipFamilyPolicy"),
    ("spec.externalIPs", ["8.8.8.8"], 422, "spec.externalIPs"),
    ("spec.loadBalancerSourceRanges", ["10.0.0.0/8"], 422, "spec.loadBalancerSourceRanges"),
    ("spec.selector", {"A B": "c"}, 422, "spec.selector"),
    ("spec.selector", {"a": "x" * 64}, 422, "spec.selector"),
    ("spec.selector", {"a": 1}, 400, ""),
    ("spec.publishNotReadyAddresses", "yes", 400, ""),
    ("metadata.name", "1abc", 422, "DNS-1035"),
    ("metadata.name", "A", 422, ""),
    ("metadata.name", "x" * 64, 422, ""),
    ("metadata.name", "../x", 422, ""),
]


def test_service_creates_refused_with_the_apiservers_words(world):
    kube = world.kube
    before = sorted(cluster_ips(kube))
    for i, (where, value, code, says) in enumerate(SERVICE_CASES):
        body = _set(svc(f"bad{i}"), where, value)
        refused(kube, "POST", SVC, body, code, says)
    more: list[tuple[Obj, int, str]] = [
        (svc("lbnone", type="LoadBalancer", clusterIP="None"), 422,
         "may not be set to 'None' for LoadBalancer"),
        (svc("extname", type="ExternalName", externalName="not a dns name!"), 422,
         "spec.externalName"),
        (svc("extname", type="ExternalName", externalName="a" * 254), 422, "spec.externalName"),
        (svc("extname", type="ExternalName", externalName="-a.example.com"), 422, ""),
        (svc("extname", type="ExternalName"), 422, "spec.externalName: Required"),
        (svc("extname", type="ExternalName", externalName="x.example.com",
             clusterIP="172.20.3.3"), 422, "spec.clusterIP"),
        (svc("affin", sessionAffinity="ClientIP",
             sessionAffinityConfig={"clientIP": {"timeoutSeconds": 0}}), 422, "timeoutSeconds"),
        (svc("affin", sessionAffinity="ClientIP",
             sessionAffinityConfig={"clientIP": {"timeoutSeconds": 86401}}), 422,
         "timeoutSeconds"),
        (svc("lbport", type="LoadBalancer",
             ports=[{"name": "a", "port": 80, "nodePort": 1}]), 422, "valid range"),
        (svc("lbport", type="LoadBalancer",
             ports=[{"name": "a", "port": 80, "nodePort": 70000}]), 422, "nodePort"),
        (svc("nospec") | {"spec": None}, 422, ""),
        (svc("nospec") | {"spec": []}, 400, ""),
    ]
    for body, code, says in more:
        refused(kube, "POST", SVC, body, code, says)
    # Nothing refused was stored, and no address was taken by the refusals.
    assert not {n for n in names(kube, SVC) if n.startswith(("bad", "lb", "ext", "aff"))}
    assert sorted(cluster_ips(kube)) == before


def test_cluster_ips_neither_leak_nor_double_allocate(world):
    kube = world.kube
    held = kube.call("POST", SVC, svc("held", clusterIP="172.20.7.7"))
    assert held.status_code == 201, held.text
    refused(kube, "POST", SVC, svc("dup", clusterIP="172.20.7.7"), 422,
            "provided IP is already allocated")
    # kube-dns's address is this cluster's kube-dns's own.
    refused(kube, "POST", SVC, svc("dns", clusterIP="172.20.0.10"), 422, "already allocated")
    # A refusal for another reason, and a dry run, leave the address free.
    bad = _set(svc("later", clusterIP="172.20.7.8"), "spec.ports.0.port", 0)
    refused(kube, "POST", SVC, bad, 422, "spec.ports[0].port")
    dry = kube.call("POST", SVC + "?dryRun=All", svc("later", clusterIP="172.20.7.8"))
    assert dry.status_code == 201 and dry.json()["spec"]["clusterIP"] == "172.20.7.8"
    assert "later" not in names(kube, SVC)
    r = kube.call("POST", SVC, svc("later", clusterIP="172.20.7.8"))
    assert r.status_code == 201, r.text
    # Racing creates of one address: exactly one wins.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: kube.call("POST", SVC, svc(
            f"race{i}", clusterIP="172.20.7.9")).status_code, range(8)))
    assert sorted(codes) == [201] + [422] * 7, codes
    # Many at once without asking: all distinct.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda i: kube.call("POST", SVC, svc(f"many{i}")), range(24)))
    assert all(m.status_code == 201 for m in made)
    ips = cluster_ips(kube)
    assert len(ips) == len(set(ips)), sorted(ips)
    # Deleting frees the address for another Service.
    assert kube.call("DELETE", SVC + "/held").status_code == 200
    r = kube.call("POST", SVC, svc("heir", clusterIP="172.20.7.7"))
    assert r.status_code == 201, r.text
    for n in ["later", "heir", "race" + str(codes.index(201))] + [f"many{i}" for i in range(24)]:
        assert kube.call("DELETE", f"{SVC}/{n}").status_code == 200


def _same(kube: Kube, path: str, before: Obj) -> None:
    now = kube.get(path)
    assert now["spec"] == before["spec"], (now["spec"], before["spec"])
    assert now["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_service_updates_and_patches_refused_leave_it_as_it_was(world):
    kube = world.kube
    r = kube.call("POST", SVC, svc("upd", sessionAffinity="None"))
    assert r.status_code == 201, r.text
    other = kube.call("POST", SVC, svc("upd2")).json()["spec"]["clusterIP"]
    path = SVC + "/upd"
    before = kube.get(path)
    ip = before["spec"]["clusterIP"]
    assert ip.startswith("172.20.")
    changes: list[tuple[str, Any, int, str]] = [
        (MERGE, {"spec": {"clusterIP": "172.20.200.200", "clusterIPs": ["172.20.200.200"]}},
         422, "may not change once set"),
        (MERGE, {"spec": {"clusterIP": other, "clusterIPs": [other]}}, 422, ""),
        (MERGE, {"spec": {"clusterIP": "None", "clusterIPs": ["None"]}}, 422, ""),
        (MERGE, {"spec": {"clusterIP": "10.1.1.1", "clusterIPs": ["10.1.1.1"]}}, 422, ""),
        (MERGE, {"spec": {"type": "NodePort"}}, 422, "NodePort"),
        (MERGE, {"spec": {"type": "LoadBalancer", "clusterIP": "None",
                          "clusterIPs": ["None"]}}, 422, ""),
        (MERGE, {"spec": {"ports": [{"name": "http", "port": 0}]}}, 422, "spec.ports[0].port"),
        (MERGE, {"spec": {"ports": None}}, 422, "spec.ports"),
        (MERGE, {"spec": None}, 422, ""),
        (MERGE, {"spec": {"ports": [{"name": "http", "port": 80, "targetPort": "no_pe"}]}},
         422, "targetPort"),
        (STRATEGIC, {"spec": {"ports": [{"name": "http", "port": 81}]}}, 422,
         'Duplicate value: "http"'),  # merged by port: a second port named http
        (STRATEGIC, {"spec": {"ports": [{"$patch": "replace"}, {"name": "x", "port": 70000}]}},
         422, ""),
        (STRATEGIC, {"spec": {"ports": [{"port": 80, "protocol": "ICMP"}]}}, 422, ""),
        (STRATEGIC, {"spec": {"clusterIP": "172.20.9.1"}}, 422, "may not change once set"),
        (JSONP, [{"op": "replace", "path": "/spec/clusterIP", "value": "172.20.9.2"}], 422, ""),
        (JSONP, [{"op": "remove", "path": "/spec/ports"}], 422, "spec.ports"),
        # the patched object does not decode: 422 as the apiserver's patch handler says
        (JSONP, [{"op": "replace", "path": "/spec/ports/0/port", "value": 2**31}], 422,
         "int32"),
        (JSONP, [{"op": "add", "path": "/spec/ports/-", "value": {"name": "http",
                                                                   "port": 81}}], 422, ""),
        (JSONP, [{"op": "replace", "path": "/spec/type", "value": "ExternalName"}], 422,
         "spec.externalName"),
        (JSONP, [{"op": "replace", "path": "/spec/ports/9", "value": {}}], 422, ""),
    ]
    for ctype, patch, code, says in changes:
        refused(kube, "PATCH", path, patch, code, says, ctype=ctype)
        _same(kube, path, before)
    put = copy.deepcopy(before)
    put["spec"]["clusterIP"] = put["spec"]["clusterIPs"][0] = "172.20.99.99"
    refused(kube, "PUT", path, put, 422, "may not change once set")
    put = copy.deepcopy(before)
    put["spec"]["ports"][0]["port"] = 65536
    refused(kube, "PUT", path, put, 422, "spec.ports[0].port")
    _same(kube, path, before)
    # A PUT without the clusterIP keeps it (kubectl replace of the file), and the address is
    # still held only once.
    put = copy.deepcopy(before)
    del put["spec"]["clusterIP"], put["spec"]["clusterIPs"]
    r = kube.call("PUT", path, put)
    assert r.status_code == 200 and r.json()["spec"]["clusterIP"] == ip, r.text
    ips = cluster_ips(kube)
    assert ips.count(ip) == 1 and len(ips) == len(set(ips))
    # The refused addresses stay free.
    r = kube.call("POST", SVC + "?dryRun=All", svc("free", clusterIP="172.20.200.200"))
    assert r.status_code == 201, r.text


def test_watch_of_each_new_kind(world):
    kube = world.kube
    for path in (SVC, EPS, SLICES, ING, CLASSES, NETPOL, SGP):
        r = kube.call("GET", path, params={"watch": "true", "timeoutSeconds": "1"},
                      timeout=10)
        assert r.status_code == 200, (path, r.text[:200])
        for line in r.text.splitlines():
            ev = json.loads(line)
            assert ev["type"] in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"), ev
        for q in ({"resourceVersion": "abc"}, {"timeoutSeconds": "-5"},
                  {"resourceVersion": "99999999999999999999999"}):
            r = kube.call("GET", path, params={"watch": "true", **q}, timeout=10)
            assert r.status_code in (200, 400, 410), (path, q, r.status_code)


# ---- Endpoints and EndpointSlices written by a user (a Service without a selector)
def _slice(name: str, **over: Any) -> Obj:
    body: Obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "mine"}},
                 "addressType": "IPv4",
                 "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": True}}],
                 "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    body.update(over)
    return body


def test_user_endpoint_slices_and_endpoints(world):
    kube = world.kube
    r = kube.call("POST", SVC, svc("mine") | {"spec": {
        "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    assert r.status_code == 201, r.text
    ok = kube.call("POST", SLICES, _slice("mine-1"))
    assert ok.status_code == 201, ok.text
    # What upstream accepts: an FQDN slice, a port without a number (all ports).
    assert kube.call("POST", SLICES, _slice("mine-f", addressType="FQDN", endpoints=[
        {"addresses": ["db.example.com"]}])).status_code == 201
    assert kube.call("POST", SLICES + "?dryRun=All", _slice(
        "mine-n", ports=[{"name": "all", "protocol": "TCP"}])).status_code == 201
    ep = lambda ip: {"addresses": [ip]}  # noqa: E731
    cases: list[tuple[Obj, int, str]] = [
        (_slice("b", addressType="IPv9"), 422, "addressType"),
        (_slice("b", addressType=None), 422, "addressType"),
        (_slice("b", endpoints=[{"addresses": []}]), 422, "endpoints[0].addresses"),
        (_slice("b", endpoints=[ep("300.1.1.1")]), 422, "endpoints[0].addresses[0]"),
        (_slice("b", endpoints=[ep("fd00::1")]), 422, "endpoints[0].addresses[0]"),
        (_slice("b", endpoints=[ep("127.0.0.1")]), 422, "loopback"),
        (_slice("b", endpoints=[ep("169.254.169.254")]), 422, "link-local"),
        (_slice("b", endpoints=[ep("0.0.0.0")]), 422, "unspecified"),
        (_slice("b", endpoints=[ep("224.0.0.1")]), 422, "link-local multicast"),
        (_slice("b", endpoints=[ep(f"10.0.{i // 250}.{i % 250 + 1}") for i in range(1001)]),
         422, "Too many"),
        (_slice("b", endpoints=[{"addresses": [f"10.1.0.{i}" for i in range(1, 102)]}]),
         422, "endpoints[0].addresses"),
        (_slice("b", endpoints=[{"addresses": [1]}]), 400, ""),
        (_slice("b", ports=[{"name": "http", "port": 65536}]), 422, "ports[0].port"),
        (_slice("b", ports=[{"name": "http", "port": 0}]), 422, "ports[0].port"),
        (_slice("b", ports=[{"name": "http", "port": 2**31}]), 400, "int32"),
        (_slice("b", ports=[{"name": "http", "port": 80, "protocol": "HTTP"}]), 422,
         "ports[0].protocol"),
        (_slice("b", ports=[{"name": "http", "port": 80}, {"name": "http", "port": 81}]), 422,
         'ports[1].name: Duplicate value: "http"'),
        (_slice("b", ports=[{"port": 80}, {"port": 81}]), 422, "ports[1].name: Duplicate"),
        (_slice("b", ports=[{"name": "Bad_Name", "port": 80}]), 422, "ports[0].name"),
        (_slice("b", ports=[{"name": f"p{i}", "port": 80} for i in range(101)]), 422,
         "Too many"),
    ]
    for body, code, says in cases:
        refused(kube, "POST", SLICES, body, code, says)
    before = kube.get(SLICES + "/mine-1")
    refused(kube, "PATCH", SLICES + "/mine-1", {"addressType": "IPv6"}, 422, "immutable",
            ctype=MERGE)
    refused(kube, "PATCH", SLICES + "/mine-1", [{"op": "replace", "path":
                                                 "/endpoints/0/addresses/0",
                                                 "value": "127.0.0.2"}], 422, "loopback",
            ctype=JSONP)
    _same_slice = kube.get(SLICES + "/mine-1")
    assert _same_slice["endpoints"] == before["endpoints"]
    e = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "mine"},
         "subsets": [{"addresses": [{"ip": "10.0.0.5"}], "ports": [{"port": 8080}]}]}
    assert kube.call("POST", EPS, e).status_code == 201
    for ip, says in (("127.0.0.1", "loopback"), ("169.254.169.254", "link-local"),
                     ("x", "valid IP"), ("0.0.0.0", "unspecified")):
        bad = _set(e, "subsets.0.addresses.0.ip", ip)
        bad["metadata"]["name"] = "mine2"
        refused(kube, "POST", EPS, bad, 422, says)
    refused(kube, "POST", EPS, _set(e, "subsets.0.ports.0.port", 0) | {
        "metadata": {"name": "m3"}}, 422, "port")
    for n in ("mine-1", "mine-f"):
        assert kube.call("DELETE", f"{SLICES}/{n}").status_code == 200
    assert kube.call("DELETE", EPS + "/mine").status_code == 200
    assert kube.call("DELETE", SVC + "/mine").status_code == 200


# ---- Ingress and IngressClass
def ingress(name: str, paths: list[Obj] | None = None, **meta: Any) -> Obj:
    paths = paths if paths is not None else [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": "web", "port": {"number": 80}}}}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, **meta},
            "spec": {"ingressClassName": "alb", "rules": [{"http": {"paths": paths}}]}}


def _path(**p: Any) -> list[Obj]:
    base: Obj = {"path": "/x", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}
    base.update(p)
    return [{k: v for k, v in base.items() if v is not None}]


def test_ingress_and_class_refusals(world):
    kube = world.kube
    svc_port = {"name": "web", "port": {"number": 80}}
    cases: list[tuple[Obj, int, str]] = [
        (ingress("b", _path(path="relative")), 422, "must be an absolute path"),
        (ingress("b", _path(path="/a/../b")), 422, "paths[0].path"),
        (ingress("b", _path(path="/a//b")), 422, "paths[0].path"),
        (ingress("b", _path(path="/a%2Fb")), 422, "paths[0].path"),
        (ingress("b", _path(pathType="Bogus")), 422, 'Unsupported value: "Bogus"'),
        (ingress("b", _path(pathType=None)), 422, "pathType"),
        (ingress("b", _path(backend={})), 422, "backend"),
        (ingress("b", _path(backend={"service": svc_port, "resource": {
            "kind": "Bucket", "name": "x", "apiGroup": "s3.example.com"}})), 422,
         "cannot set both"),
        (ingress("b", _path(backend={"resource": {"kind": "Bucket"}})), 422, "resource.name"),
        (ingress("b", _path(backend={"service": {"name": "web"}})), 422, "port"),
        (ingress("b", _path(backend={"service": {"name": "web", "port": {
            "name": "http", "number": 80}}})), 422, "cannot set both"),
        (ingress("b", _path(backend={"service": {"name": "web", "port": {"number": 70000}}})),
         422, "port.number"),
        (ingress("b", _path(backend={"service": {"name": "web", "port": {"number": 2**31}}})),
         400, ""),
        (ingress("b", _path(backend={"service": {"name": "web", "port": {"name": "Bad_1"}}})),
         422, "IANA_SVC_NAME"),
        (ingress("b", _path(backend={"service": {"name": "Web!", "port": {"number": 80}}})),
         422, "service.name"),
        (ingress("b", _path(backend={"service": {"name": "", "port": {"number": 80}}})), 422,
         "service.name"),
        (ingress("b", _path() * 3000 + _path(pathType="Bogus")), 422, "paths[3000]"),
        (ingress("b", []), 422, "paths"),
        (ingress("b") | {"spec": {}}, 422, "either `defaultBackend` or `rules`"),
        (ingress("b") | {"spec": {"ingressClassName": "Bad Class", "defaultBackend": {
            "service": svc_port}}}, 422, "ingressClassName"),
        (ingress("b") | {"spec": {"rules": [{"host": "1.2.3.4"}]}}, 422, "not an IP"),
        (ingress("b") | {"spec": {"rules": [{"host": "*.*.example.com"}]}}, 422, "wildcard"),
        (ingress("b") | {"spec": {"rules": [{"host": "Example.com"}]}}, 422, "host"),
        (ingress("b") | {"spec": {"rules": "x"}}, 400, ""),
        (ingress("B"), 422, "metadata.name"),
    ]
    for body, code, says in cases:
        refused(kube, "POST", ING, body, code, says)
    assert "b" not in names(kube, ING)
    r = kube.call("POST", ING, ingress("keep", ingressClassName=None) | {"spec": {
        "ingressClassName": "nothing-takes-it", "defaultBackend": {"service": svc_port}}})
    assert r.status_code == 201, r.text
    before = kube.get(ING + "/keep")
    for ctype, patch in ((MERGE, {"spec": {"rules": [{"host": "1.2.3.4"}]}}),
                         (MERGE, {"spec": None}),
                         (STRATEGIC, {"spec": {"defaultBackend": {"resource": {
                             "kind": "K", "name": "n"}}}}),
                         (JSONP, [{"op": "remove", "path": "/spec/defaultBackend"}])):
        refused(kube, "PATCH", ING + "/keep", patch, 422, "", ctype=ctype)
        assert kube.get(ING + "/keep")["spec"] == before["spec"]
    cls = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
           "metadata": {"name": "hcls"}, "spec": {"controller": "example.com/ctl"}}
    for ctl, code in ((None, 422), ("nodomain", 422), ("Bad Domain/x", 422),
                      ("a.io/" + "x" * 300, 422), (7, 400)):
        refused(kube, "POST", CLASSES, _set(cls, "spec.controller", ctl), code, "")
    assert kube.call("POST", CLASSES, cls).status_code == 201
    refused(kube, "PATCH", CLASSES + "/hcls", {"spec": {"controller": "example.com/other"}},
            422, "immutable", ctype=MERGE)
    assert kube.get(CLASSES + "/hcls")["spec"]["controller"] == "example.com/ctl"
    assert kube.call("DELETE", CLASSES + "/hcls").status_code == 200
    assert kube.call("DELETE", ING + "/keep").status_code == 200


# ---- the AWS Load Balancer Controller's annotations: stored (the apiserver does not read
# them), refused by the controller with an event, and no load balancer is made.
def _events(kube: Kube, name: str) -> list[str]:
    return [e.get("message") or "" for e in kube.get(f"/api/v1/namespaces/{NS}/events")["items"]
            if (e.get("involvedObject") or {}).get("name") == name]


def test_conflicting_and_broken_annotations_make_no_load_balancer(world):
    kube = world.kube
    assert kube.call("POST", SVC, svc("web")).status_code == 201
    nlb = {S + "aws-load-balancer-type": "external",
           S + "aws-load-balancer-nlb-target-type": "ip"}
    services = {
        "nlb-instance": ({**nlb, S + "aws-load-balancer-nlb-target-type": "instance"},
                         "instance"),
        "nlb-scheme": ({**nlb, S + "aws-load-balancer-scheme": "outer-space"}, "scheme"),
        "nlb-tags": ({**nlb, S + "aws-load-balancer-additional-resource-tags": "novalue"},
                     "stringMap"),
        "nlb-int": ({**nlb, S + "aws-load-balancer-healthcheck-interval": "9" * 40},
                    "healthcheck-interval"),
        "nlb-legacy": ({}, "aws-load-balancer-type"),
        "nlb-udp": (nlb, "protocol UDP"),
    }
    for name, (ann, _) in services.items():
        body = svc(name, type="LoadBalancer")
        body["metadata"]["annotations"] = ann
        if name == "nlb-udp":
            body["spec"]["ports"][0]["protocol"] = "UDP"
        r = kube.call("POST", SVC, body)
        assert r.status_code == 201, (name, r.text)
    # A refused LoadBalancer Service is never seen by the controller.
    bad = svc("nlb-bad", type="LoadBalancer")
    bad["metadata"]["annotations"] = nlb
    bad["spec"]["ports"][0]["port"] = 0
    refused(kube, "POST", SVC, bad, 422, "spec.ports[0].port")
    deep = "[" * 100000 + "]" * 100000
    ingresses = {
        "ing-instance": ({A + "target-type": "instance"}, "instance"),
        "ing-default": ({}, "instance"),  # target-type defaults to instance
        "ing-scheme": ({A + "target-type": "ip", A + "scheme": "sideways"}, "scheme"),
        "ing-ports": ({A + "target-type": "ip", A + "listen-ports": "{not json"}, "json"),
        "ing-deep": ({A + "target-type": "ip", A + "listen-ports": deep}, "listen-ports"),
        "ing-bool": ({A + "target-type": "ip", A + "listen-ports": '[{"HTTP": true}]'},
                     "listen"),
        "ing-https": ({A + "target-type": "ip", A + "listen-ports": '[{"HTTPS": 443}]'},
                      "HTTPS"),
        "ing-group": ({A + "target-type": "ip", A + "group.name": "../../etc"}, "group name"),
        "ing-group2": ({A + "target-type": "ip", A + "group.name": "x" * 64}, "group name"),
        "ing-order": ({A + "target-type": "ip", A + "group.name": "g1",
                       A + "group.order": "1e9"}, "group.order"),
        "ing-cert": ({A + "target-type": "ip", A + "certificate-arn": "arn:x"}, "not supported"),
        "ing-missing": ({A + "target-type": "ip"}, "not found"),
        "ing-port": ({A + "target-type": "ip"}, "unable to find port"),
        "ing-res": ({A + "target-type": "ip"}, "resource backends"),
    }
    for name, (ann, _) in ingresses.items():
        paths = None
        if name == "ing-missing":
            paths = _path(backend={"service": {"name": "absent", "port": {"number": 80}}})
        elif name == "ing-port":
            paths = _path(backend={"service": {"name": "web", "port": {"number": 81}}})
        elif name == "ing-res":
            paths = _path(backend={"resource": {"kind": "Bucket", "name": "b",
                                                "apiGroup": "s3.example.com"}})
        r = kube.call("POST", ING, ingress(name, paths, annotations=ann))
        assert r.status_code == 201, (name, r.text)
    refused(kube, "POST", ING, ingress("ing-bad", _path(pathType="Bogus"), annotations={
        A + "target-type": "ip"}), 422, "pathType")
    wanted = {**{n: w for n, (_, w) in services.items()},
              **{n: w for n, (_, w) in ingresses.items()}}
    deadline = time.time() + 20
    missing = dict(wanted)
    while missing and time.time() < deadline:
        for name, word in list(missing.items()):
            if any(word in m for m in _events(kube, name)):
                del missing[name]
        time.sleep(0.3)
    assert not missing, {n: _events(kube, n) for n in missing}
    lbs = world.elbv2.describe_load_balancers()["LoadBalancers"]
    assert lbs == [], [lb["LoadBalancerName"] for lb in lbs]
    assert world.elbv2.describe_target_groups()["TargetGroups"] == []
    for name in ingresses:
        assert kube.call("DELETE", f"{ING}/{name}").status_code == 200
    for name in [*services, "web"]:
        assert kube.call("DELETE", f"{SVC}/{name}").status_code == 200
    deadline = time.time() + 10
    while (names(kube, ING) & set(ingresses) or names(kube, SVC) & set(services)) and \
            time.time() < deadline:
        time.sleep(0.2)
    assert not names(kube, ING) & set(ingresses), "finalizers kept refused Ingresses"
    assert not names(kube, SVC) & set(services), "finalizers kept refused Services"


# ---- NetworkPolicy and SecurityGroupPolicy
def netpol(name: str, ingress_rules: list[Obj] | None = None, **spec: Any) -> Obj:
    body: Obj = {"podSelector": {}, "ingress": ingress_rules or []}
    body.update(spec)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name}, "spec": body}


def _from(peer: Obj) -> list[Obj]:
    return [{"from": [peer]}]


def _ports(*ports: Obj) -> list[Obj]:
    return [{"ports": list(ports)}]


def test_network_policy_refusals(world):
    kube = world.kube
    block = lambda cidr, *ex: {"ipBlock": {"cidr": cidr, **({"except": list(ex)} if ex  # noqa
                                                            else {})}}
    cases: list[tuple[Obj, int, str]] = [
        (netpol("b", _from(block("10.0.0.0/33"))), 422, "cidr"),
        (netpol("b", _from(block("bogus"))), 422, "valid CIDR"),
        (netpol("b", _from(block("10.0.0.1"))), 422, "valid CIDR"),
        (netpol("b", _from(block(""))), 422, "cidr"),
        (netpol("b", _from(block("10.0.0.0/8", "192.168.0.0/16"))), 422, "strict subset"),
        (netpol("b", _from(block("10.0.0.0/8", "10.0.0.0/8"))), 422, "strict subset"),
        (netpol("b", _from(block("10.0.0.0/8", "fd00::/64"))), 422, "except[0]"),
        (netpol("b", _from(block("10.0.0.0/8", "x"))), 422, "except[0]"),
        (netpol("b", _from({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}})), 422,
         "both ipBlock"),
        (netpol("b", _from({})), 422, "must specify a peer"),
        (netpol("b", _from({"podSelector": {"matchExpressions": [
            {"key": "a", "operator": "Bogus", "values": ["x"]}]}})), (400, 422), ""),
        (netpol("b", _from({"podSelector": {"matchExpressions": [
            {"key": "a", "operator": "In", "values": []}]}})), 422, ""),
        (netpol("b", _from({"podSelector": {"matchExpressions": [
            {"key": "a", "operator": "Exists", "values": ["x"]}]}})), 422, ""),
        (netpol("b", _from({"namespaceSelector": {"matchLabels": {"A B": "c"}}})), 422, ""),
        (netpol("b", podSelector={"matchLabels": {"a": "x" * 64}}), 422, "podSelector"),
        (netpol("b", _ports({"port": 100, "endPort": 99})), 422, "endPort"),
        (netpol("b", _ports({"port": "http", "endPort": 99})), 422, "endPort"),
        (netpol("b", _ports({"endPort": 99})), 422, "endPort"),
        (netpol("b", _ports({"port": 0})), 422, "ports[0].port"),
        (netpol("b", _ports({"port": 65536})), 422, "ports[0].port"),
        (netpol("b", _ports({"port": 80, "endPort": 65536})), 422, "endPort"),
        (netpol("b", _ports({"port": 2**31})), 400, ""),
        (netpol("b", _ports({"port": "Bad_Name"})), 422, "ports[0].port"),
        (netpol("b", _ports({"port": "x" * 16})), 422, "ports[0].port"),
        (netpol("b", _ports({"port": 80, "protocol": "ICMP"})), 422, "protocol"),
        (netpol("b", policyTypes=["Ingress", "Egress", "Ingress"]), 422, "policyTypes"),
        (netpol("b", policyTypes=["Sideways"]), 422, "policyTypes[0]"),
        (netpol("b", _from(block("10.0.0.0/8")) * 5000 + _from({})), 422, "ingress[5000]"),
        (netpol("b") | {"spec": "x"}, 400, ""),
        (netpol("B"), 422, "metadata.name"),
    ]
    for body, code, says in cases:
        refused(kube, "POST", NETPOL, body, code, says)
    assert "b" not in names(kube, NETPOL)
    assert kube.call("POST", NETPOL, netpol("keep", _from(block("10.0.0.0/8", "10.1.0.0/16")
                                                          ))).status_code == 201
    before = kube.get(NETPOL + "/keep")
    for ctype, patch in (
            (MERGE, {"spec": {"ingress": [{"from": [{"ipBlock": {"cidr": "1.2.3.4/40"}}]}]}}),
            (STRATEGIC, {"spec": {"podSelector": {"matchLabels": {"-x": "y"}}}}),
            (JSONP, [{"op": "replace", "path": "/spec/ingress/0/from/0/ipBlock/except/0",
                      "value": "11.0.0.0/16"}]),
            (JSONP, [{"op": "add", "path": "/spec/policyTypes/-", "value": "Bogus"}])):
        refused(kube, "PATCH", NETPOL + "/keep", patch, 422, "", ctype=ctype)
        assert kube.get(NETPOL + "/keep")["spec"] == before["spec"]
    assert kube.call("DELETE", NETPOL + "/keep").status_code == 200


def test_security_group_policy_refusals(world):
    kube = world.kube
    sgp = {"apiVersion": "vpcresources.k8s.aws/v1beta1", "kind": "SecurityGroupPolicy",
           "metadata": {"name": "s"},
           "spec": {"podSelector": {"matchLabels": {"role": "db"}},
                    "securityGroups": {"groupIds": ["sg-0123456789abcdef0"]}}}
    for where, value, code in (("spec.securityGroups.groupIds", [], 422),
                               ("spec.securityGroups.groupIds", ["sg-1"] * 17, 422),
                               ("spec.securityGroups.groupIds", [1], (400, 422)),
                               ("spec.securityGroups.groupIds", "sg-1", 400),
                               ("spec.securityGroups", [], 400),
                               ("spec.podSelector", {"matchLabels": {"A B": "x"}}, 422),
                               ("spec.podSelector", {"matchExpressions": [
                                   {"key": "a", "operator": "In"}]}, 422),
                               ("spec", "x", 400), ("metadata.name", "S!", 422)):
        refused(kube, "POST", SGP, _set(sgp, where, value), code, "")
    # Ids no group has, even hostile ones, are the controller's business: stored as upstream.
    odd = _set(sgp, "spec.securityGroups.groupIds", ["sg-nope", "../../x", "x" * 300])
    assert kube.call("POST", SGP, odd).status_code == 201
    before = kube.get(SGP + "/s")
    refused(kube, "PATCH", SGP + "/s", {"spec": {"securityGroups": {"groupIds": []}}}, 422, "",
            ctype=MERGE)
    refused(kube, "PATCH", SGP + "/s", [{"op": "replace", "path": "/spec/securityGroups/"
                                         "groupIds/0", "value": 5}], (400, 422), "",
            ctype=JSONP)
    assert kube.get(SGP + "/s")["spec"] == before["spec"]
    assert kube.call("DELETE", SGP + "/s").status_code == 200


# ---- kubectl
needs_kubectl = pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl is not installed")


@needs_kubectl
def test_kubectl_meets_the_same_refusals(world, tmp_path):
    kube = world.kube

    def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([KUBECTL, "--kubeconfig", str(kube.config), "-n", NS, *args],
                              capture_output=True, text=True, input=stdin, timeout=30)
    before = sorted(cluster_ips(kube))
    for args, says in (
            (("create", "service", "clusterip", "kb1", "--tcp=80:80",
              "--clusterip=10.9.9.9"), "not in the valid range"),
            (("create", "service", "clusterip", "kb2", "--tcp=80:80",
              "--clusterip=172.20.0.10"), "already allocated"),
            (("create", "service", "nodeport", "kb3", "--tcp=80:80"), "NodePort"),
            (("create", "ingress", "kb5", "--class=alb", "--rule=1.2.3.4/=web:80"), "")):
        r = kubectl(*args)
        assert r.returncode != 0 and says in r.stderr, (args, r.stderr)
    manifest = yaml.safe_dump_all([
        svc("kb6", type="LoadBalancer", clusterIP="None"),
        netpol("kb7", [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8",
                                              "except": ["11.0.0.0/16"]}}]}]),
        _slice("kb8", endpoints=[{"addresses": ["169.254.169.254"]}]),
    ])
    for flags in ((), ("--server-side",)):
        r = kubectl("apply", *flags, "-f", "-", stdin=manifest)
        assert r.returncode != 0, r.stdout
        for says in ("None", "strict subset", "link-local"):
            assert says in r.stderr, (flags, says, r.stderr)
    assert kube.call("POST", SVC, svc("kbok")).status_code == 201
    r = kubectl("patch", "svc", "kbok", "-p", '{"spec":{"clusterIP":"172.20.55.55",'
                '"clusterIPs":["172.20.55.55"]}}')
    assert r.returncode != 0 and "may not change once set" in r.stderr, r.stderr
    r = kubectl("patch", "svc", "kbok", "--type=json", "-p",
                '[{"op":"replace","path":"/spec/ports/0/port","value":0}]')
    assert r.returncode != 0 and "spec.ports[0].port" in r.stderr, r.stderr
    r = kubectl("expose", "service", "kbok", "--name=kbexp", "--port=70000")
    assert r.returncode != 0, r.stdout
    assert not names(kube, SVC) & {"kb1", "kb2", "kb3", "kb4", "kb6", "kbexp"}
    assert sorted(cluster_ips(kube)) == sorted(before + [kube.get(SVC + "/kbok")[
        "spec"]["clusterIP"]])
    assert kubectl("delete", "svc", "kbok").returncode == 0


def test_an_ingress_and_a_load_balancer_service_of_one_name_get_one_each(world):
    """The controller tells the stacks apart by their tag (ingress.k8s.aws/stack or
    service.k8s.aws/stack): an Ingress nh/dual and an NLB Service nh/dual are two load
    balancers, and each goes with its object."""
    kube = world.kube
    assert kube.call("POST", SVC, svc("dualweb")).status_code == 201
    body = svc("dual", type="LoadBalancer")
    body["metadata"]["annotations"] = {S + "aws-load-balancer-type": "external",
                                       S + "aws-load-balancer-nlb-target-type": "ip"}
    assert kube.call("POST", SVC, body).status_code == 201
    paths = _path(path="/", backend={"service": {"name": "dualweb", "port": {"number": 80}}})
    assert kube.call("POST", ING, ingress("dual", paths, annotations={
        A + "target-type": "ip"})).status_code == 201

    def kinds() -> list[str]:
        return sorted(lb["Type"] for lb in world.elbv2.describe_load_balancers()[
            "LoadBalancers"])
    deadline = time.time() + 20
    while kinds() != ["application", "network"] and time.time() < deadline:
        time.sleep(0.3)
    assert kinds() == ["application", "network"]
    assert kube.call("DELETE", SVC + "/dual").status_code == 200
    deadline = time.time() + 20
    while ("dual" in names(kube, SVC) or kinds() != ["application"]) and \
            time.time() < deadline:
        time.sleep(0.3)
    assert "dual" not in names(kube, SVC) and kinds() == ["application"], kinds()
    assert kube.call("DELETE", ING + "/dual").status_code == 200
    deadline = time.time() + 20
    while ("dual" in names(kube, ING) or kinds()) and time.time() < deadline:
        time.sleep(0.3)
    assert "dual" not in names(kube, ING) and kinds() == []
    assert kube.call("DELETE", SVC + "/dualweb").status_code == 200


def test_more_service_refusals(world):
    kube = world.kube
    two = [{"name": "a", "port": 80, "nodePort": 30555},
           {"name": "b", "port": 81, "nodePort": 30555}]
    refused(kube, "POST", SVC, svc("np", type="LoadBalancer", ports=two), 422,
            "spec.ports[1].nodePort")
    # The same port number over TCP and UDP may share its nodePort, as upstream.
    both = [{"name": "a", "port": 53, "protocol": "TCP", "nodePort": 30556},
            {"name": "b", "port": 53, "protocol": "UDP", "nodePort": 30556}]
    r = kube.call("POST", SVC + "?dryRun=All", svc("np2", type="LoadBalancer", ports=both))
    assert r.status_code == 201, r.text
    cls = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
           "metadata": {"name": "pcls"}, "spec": {"controller": "example.com/ctl"}}
    for params in ({"kind": "K"}, {"name": "n"}, {"kind": "K", "name": "n", "scope": "Bogus"},
                   {"kind": "K", "name": "n", "scope": "Namespace"},
                   {"kind": "K", "name": "n", "scope": "Cluster", "namespace": "x"}):
        refused(kube, "POST", CLASSES, _set(cls, "spec.parameters", params), 422,
                "spec.parameters")
    ok = _set(cls, "spec.parameters", {"apiGroup": "elbv2.k8s.aws", "kind": "IngressClassParams",
                                       "name": "p"})
    ok["spec"]["controller"] = "ingress.k8s.aws/alb"
    r = kube.call("POST", CLASSES, ok)
    assert r.status_code == 201 and r.json()["spec"]["parameters"]["scope"] == "Cluster", r.text
    # The controller does not read IngressClassParams: refused by name, no load balancer.
    assert kube.call("POST", ING, ingress("pclsing", annotations={A + "target-type": "ip"}) | {
        "spec": {"ingressClassName": "pcls", "defaultBackend": {"service": {
            "name": "web", "port": {"number": 80}}}}}).status_code == 201
    deadline = time.time() + 10
    while not any("spec.parameters" in m for m in _events(kube, "pclsing")) and \
            time.time() < deadline:
        time.sleep(0.2)
    assert any("IngressClassParams" in m for m in _events(kube, "pclsing"))
    assert world.elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert kube.call("DELETE", ING + "/pclsing").status_code == 200
    assert kube.call("DELETE", CLASSES + "/pcls").status_code == 200


def test_type_changes_free_and_check_addresses(world):
    kube = world.kube
    a = kube.call("POST", SVC, svc("tca")).json()["spec"]["clusterIP"]
    b = kube.call("POST", SVC, svc("tcb")).json()["spec"]["clusterIP"]
    r = kube.call("PATCH", SVC + "/tca", {"spec": {"type": "ExternalName",
                                                   "externalName": "db.example.com"}},
                  ctype=MERGE)
    assert r.status_code == 200 and "clusterIP" not in r.json()["spec"], r.text
    assert a not in cluster_ips(kube)
    before = kube.get(SVC + "/tca")
    refused(kube, "PATCH", SVC + "/tca", {"spec": {"type": "ClusterIP", "clusterIP": b,
                                                   "clusterIPs": [b]}}, 422,
            "already allocated", ctype=MERGE)
    _same(kube, SVC + "/tca", before)
    refused(kube, "PATCH", SVC + "/tca", {"spec": {"type": "LoadBalancer", "clusterIP": "None",
                                                   "clusterIPs": ["None"]}}, 422, "None",
            ctype=MERGE)
    _same(kube, SVC + "/tca", before)
    r = kube.call("PATCH", SVC + "/tca", {"spec": {"type": "ClusterIP", "clusterIP": a,
                                                   "clusterIPs": [a]}}, ctype=MERGE)
    assert r.status_code == 200 and r.json()["spec"]["clusterIP"] == a, r.text
    ips = cluster_ips(kube)
    assert len(ips) == len(set(ips))
    for n in ("tca", "tcb"):
        assert kube.call("DELETE", f"{SVC}/{n}").status_code == 200


def test_cluster_ips_are_unique_across_clusters_sharing_a_range(world):
    """Another cluster of the server has the same service range: an address held here is
    held there, but each cluster's kube-dns has the DNS address."""
    kube = world.kube
    held = kube.call("POST", SVC, svc("xc", clusterIP="172.20.8.8"))
    assert held.status_code == 201, held.text
    eks = world.eks
    other = "o" + uuid.uuid4().hex[:8]
    eks.create_cluster(name=other, roleArn="arn:aws:iam::000000000000:role/eks",
                       resourcesVpcConfig={"subnetIds": world.subnets})
    k2 = world.kube_of(other)
    deadline = time.time() + 10
    while k2.call("GET", "/api/v1/namespaces/kube-system/services/kube-dns").status_code \
            != 200 and time.time() < deadline:
        time.sleep(0.2)
    dns = k2.get("/api/v1/namespaces/kube-system/services/kube-dns")["spec"]["clusterIP"]
    assert dns == "172.20.0.10"
    p2 = "/api/v1/namespaces/default/services"
    refused(k2, "POST", p2, svc("xc", clusterIP="172.20.8.8"), 422, "already allocated")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: (k2 if i % 2 else kube).call(
            "POST", p2 if i % 2 else SVC, svc(f"xr{i}", clusterIP="172.20.8.9")).status_code,
            range(8)))
    assert sorted(got) == [201] + [422] * 7, got
    everywhere = cluster_ips(kube) + [ip for ip in cluster_ips(k2) if ip != dns]
    assert len(everywhere) == len(set(everywhere)), sorted(everywhere)
    for n in [f"xr{i}" for i in range(8)]:
        (k2 if int(n[2:]) % 2 else kube).call("DELETE", f"{p2 if int(n[2:]) % 2 else SVC}/{n}")
    assert kube.call("DELETE", SVC + "/xc").status_code == 200
    eks.delete_cluster(name=other)


def test_annotations_elbv2_refuses_are_events_and_leave_nothing(world):
    """What passes the controller's parsing and ELBv2 refuses (a name, subnets, groups,
    tags, attributes): an event on the object, nothing left once the objects go."""
    kube = world.kube
    assert kube.call("POST", SVC, svc("web2")).status_code == 201
    nlb = {S + "aws-load-balancer-type": "external",
           S + "aws-load-balancer-nlb-target-type": "ip"}
    services = {
        "an-name": {S + "aws-load-balancer-name": "bad_name!" + "x" * 40},
        "an-subnets": {S + "aws-load-balancer-subnets": "subnet-nope,../x"},
        "an-groups": {S + "aws-load-balancer-security-groups": "sg-nope"},
        "an-tags": {S + "aws-load-balancer-additional-resource-tags": "aws:owned=x"},
        "an-attrs": {S + "aws-load-balancer-target-group-attributes": "bogus.key=1"},
    }
    for name, ann in services.items():
        body = svc(name, type="LoadBalancer")
        body["metadata"]["annotations"] = {**nlb, **ann}
        assert kube.call("POST", SVC, body).status_code == 201, name
    alb = {A + "target-type": "ip"}
    paths = _path(path="/", backend={"service": {"name": "web2", "port": {"number": 80}}})
    ingresses = {
        "ai-attrs": {A + "load-balancer-attributes": "bogus.attribute=1"},
        "ai-path": {A + "healthcheck-path": "/" + "x" * 2000},
        "ai-codes": {A + "success-codes": "abc"},
        "ai-name": {A + "load-balancer-name": "-" * 40},
    }
    for name, ann in ingresses.items():
        r = kube.call("POST", ING, ingress(name, paths, annotations={**alb, **ann}))
        assert r.status_code == 201, (name, r.text)
    deadline = time.time() + 20
    missing = set(services) | set(ingresses)
    while missing and time.time() < deadline:
        missing = {n for n in missing if not any(
            "Failed" in m or "failed" in m for m in _events(kube, n))}
        time.sleep(0.3)
    assert not missing, {n: _events(kube, n) for n in missing}
    for name in ingresses:
        assert kube.call("DELETE", f"{ING}/{name}").status_code == 200
    for name in [*services, "web2"]:
        assert kube.call("DELETE", f"{SVC}/{name}").status_code == 200
    deadline = time.time() + 20
    while time.time() < deadline and (
            world.elbv2.describe_load_balancers()["LoadBalancers"] or
            world.elbv2.describe_target_groups()["TargetGroups"] or
            names(kube, SVC) & set(services) or names(kube, ING) & set(ingresses)):
        time.sleep(0.3)
    assert world.elbv2.describe_load_balancers()["LoadBalancers"] == []
    assert world.elbv2.describe_target_groups()["TargetGroups"] == []
    assert not names(kube, SVC) & set(services) and not names(kube, ING) & set(ingresses)


def test_the_server_logged_no_traceback(world):
    kube = world.kube
    for path in (SVC, EPS, SLICES, ING, CLASSES, NETPOL, SGP):
        assert kube.call("GET", path).status_code == 200
    ips = cluster_ips(kube)
    assert len(ips) == len(set(ips))
    assert tracebacks(kube.log) == []
