"""v1 Services, Endpoints and EndpointSlices driven by the real kubectl: create (typed
generators post protobuf), expose, get / -o wide / describe, ClusterIP allocation across
clusters, kube-system/kube-dns in every cluster, endpoints following pods' readiness and
named ports, type changes, and the apiserver's refusals. One server, two small pods."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import FargoServers
from tests.test_deployments import NS, deployment, make_cluster
from tests.test_kubectl import KUBECTL, kubectl, kubectl_run

pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with FargoServers(tmp_path_factory.mktemp("svc-state")) as servers:
        yield servers("--overcommit", "8")


@pytest.fixture(scope="module")
def clusters(srv, tmp_path_factory) -> tuple[Path, Path]:
    one = make_cluster(srv, tmp_path_factory.mktemp("kube1"))[1]
    two = make_cluster(srv, tmp_path_factory.mktemp("kube2"))[1]
    return one, two


def svc(cfg: Path, name: str, ns: str = NS) -> dict:
    return json.loads(kubectl_run(cfg, "get", "svc", name, "-n", ns, "-o", "json"))


def apply(cfg: Path, obj: dict) -> None:
    kubectl_run(cfg, "apply", "-f", "-", stdin=json.dumps(obj))


def service(name: str, **spec) -> dict:
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def until(what, timeout: float = 30.0, every: float = 0.3):
    end = time.time() + timeout
    while True:
        got = what()
        if got or time.time() > end:
            return got
        time.sleep(every)


def test_kube_dns_in_every_cluster(clusters):
    for cfg in clusters:
        dns = until(lambda cfg=cfg: kubectl(cfg, "get", "svc", "kube-dns", "-n", "kube-system",
                                            "-o", "json").stdout)
        assert dns, kubectl(cfg, "get", "svc", "-A").stderr
        obj = json.loads(dns)
        assert obj["spec"]["clusterIP"] == "172.20.0.10"
        assert [(p["name"], p["port"], p["protocol"]) for p in obj["spec"]["ports"]] == \
            [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]
        assert obj["spec"]["selector"] == {"k8s-app": "kube-dns"}
        assert obj["metadata"]["labels"]["eks.amazonaws.com/component"] == "kube-dns"
    # Deleted, it comes back (level-triggered), with the same address.
    kubectl_run(clusters[0], "delete", "svc", "kube-dns", "-n", "kube-system")
    back = until(lambda: kubectl(clusters[0], "get", "svc", "kube-dns", "-n", "kube-system",
                                 "-o", "jsonpath={.spec.clusterIP}").stdout)
    assert back == "172.20.0.10"


def test_create_get_describe_and_allocation(clusters):
    one, two = clusters
    apply(one, service("web", selector={"app": "web"},
                       ports=[{"name": "http", "port": 80, "targetPort": "http"},
                              {"name": "metrics", "port": 9100, "protocol": "TCP"}]))
    got = svc(one, "web")
    spec = got["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["clusterIP"].startswith("172.20.") and spec["clusterIP"] != "172.20.0.10"
    assert spec["ports"][1]["targetPort"] == 9100
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    # The address is taken across clusters; the DNS address is every cluster's own.
    taken = kubectl(two, "create", "-f", "-", stdin=json.dumps(
        service("copy", clusterIP=spec["clusterIP"])))
    assert taken.returncode != 0
    assert (f'spec.clusterIPs: Invalid value: []string{{"{spec["clusterIP"]}"}}: failed to '
            f'allocate IP {spec["clusterIP"]}: provided IP is already allocated') in taken.stderr
    outside = kubectl(two, "create", "-f", "-", stdin=json.dumps(
        service("copy", clusterIP="10.0.0.5")))
    assert "provided IP is not in the valid range. The range of valid IPs is 172.20.0.0/16" \
        in outside.stderr
    table = kubectl_run(one, "get", "svc", "web", "-n", NS, "-o", "wide")
    head, row = table.splitlines()[:2]
    assert head.split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE",
                            "SELECTOR"]
    assert row.split()[:5] == ["web", "ClusterIP", spec["clusterIP"], "<none>",
                               "80/TCP,9100/TCP"]
    assert row.split()[-1] == "app=web"
    desc = kubectl_run(one, "describe", "svc", "web", "-n", NS)
    fields = [line.split(None, 1) for line in desc.splitlines() if line.strip()]
    assert ["IP:", spec["clusterIP"]] in fields and ["TargetPort:", "http/TCP"] in fields
    assert ["Port:", "http  80/TCP"] in fields
    # clusterIP is immutable; a replace without it keeps it.
    changed = dict(got, spec=dict(spec, clusterIP="172.20.3.3", clusterIPs=["172.20.3.3"]))
    out = kubectl(one, "replace", "-f", "-", stdin=json.dumps(changed))
    assert out.returncode != 0 and "may not change once set" in out.stderr
    kept = service("web", selector={"app": "web"}, ports=spec["ports"])
    kubectl_run(one, "replace", "-f", "-", stdin=json.dumps(kept))
    assert svc(one, "web")["spec"]["clusterIP"] == spec["clusterIP"]


def test_endpoints_follow_pods(clusters, busybox_image):
    one = clusters[0]
    dep = deployment("web", busybox_image, replicas=2)
    dep["spec"]["template"]["spec"]["containers"][0]["ports"] = [
        {"name": "http", "containerPort": 8080}]
    apply(one, dep)

    def ready_slice():
        slices = json.loads(kubectl_run(one, "get", "endpointslices", "-n", NS, "-l",
                                        "kubernetes.io/service-name=web", "-o", "json"))
        eps = [e for s in slices["items"] for e in s["endpoints"] or []
               if e["conditions"]["ready"]]
        return slices["items"] if len(eps) == 2 else None
    slices = until(ready_slice, 60)
    assert slices, kubectl(one, "get", "endpointslices,pods", "-n", NS, "-o", "wide").stdout
    sl = slices[0]
    assert sl["addressType"] == "IPv4"
    assert sl["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslice-controller.k8s.io"
    assert sl["metadata"]["ownerReferences"][0]["kind"] == "Service"
    assert sorted((p["name"], p["port"]) for p in sl["ports"]) == [("http", 8080),
                                                                   ("metrics", 9100)]
    e = sl["endpoints"][0]
    assert e["targetRef"]["kind"] == "Pod" and e["nodeName"] and e["zone"]
    # The pods were made after the Service: kubelet's service variables are in their env.
    env = kubectl_run(one, "exec", e["targetRef"]["name"], "-n", NS, "--", "env").split()
    ip = svc(one, "web")["spec"]["clusterIP"]
    assert f"WEB_SERVICE_HOST={ip}" in env and "WEB_SERVICE_PORT_HTTP=80" in env
    assert f"WEB_PORT_9100_TCP=tcp://{ip}:9100" in env
    ep = json.loads(kubectl_run(one, "get", "endpoints", "web", "-n", NS, "-o", "json"))
    assert len(ep["subsets"][0]["addresses"]) == 2
    table = kubectl_run(one, "get", "endpoints", "web", "-n", NS)
    assert ":8080" in table and ":9100" in table
    head, row = kubectl_run(one, "get", "endpointslices", sl["metadata"]["name"], "-n",
                            NS).splitlines()[:2]
    assert head.split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    ips = sorted(e["addresses"][0] for e in sl["endpoints"])
    assert row.split()[1] == "IPv4" and sorted(row.split()[3].split(",")) == ips
    assert sorted(row.split()[2].split(",")) == ["8080", "9100"]
    desc = [line.split(None, 1) for line in
            kubectl_run(one, "describe", "svc", "web", "-n", NS).splitlines() if line.strip()]
    shown = next(v for k, *v in desc if k == "Endpoints:")
    assert all(f"{ip}:8080" in shown[0] for ip in ips), desc
    # kubectl expose makes a Service of the Deployment's selector and ports.
    kubectl_run(one, "expose", "deployment", "web", "-n", NS, "--name", "web-x",
                "--port", "80", "--target-port", "http")
    exposed = svc(one, "web-x")["spec"]
    assert exposed["selector"] == {"app": "web"} and exposed["ports"][0]["targetPort"] == "http"
    eps = until(lambda: json.loads(kubectl_run(one, "get", "endpoints", "web-x", "-n", NS,
                                               "-o", "json")).get("subsets"), 20)
    assert eps and eps[0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    # Deleting the Service takes its slices and Endpoints along.
    kubectl_run(one, "delete", "svc", "web", "web-x", "-n", NS)
    assert until(lambda: not json.loads(kubectl_run(
        one, "get", "endpointslices,endpoints", "-n", NS, "-o", "json"))["items"], 20)
    kubectl_run(one, "delete", "deployment", "web", "-n", NS, "--wait=false")


def test_generators_post_protobuf(clusters):
    one = clusters[0]
    kubectl_run(one, "create", "service", "clusterip", "gen-c", "-n", NS, "--tcp=5678:8080")
    got = svc(one, "gen-c")["spec"]
    assert got["ports"] == [{"name": "5678-8080", "port": 5678, "protocol": "TCP",
                             "targetPort": 8080}]
    assert got["selector"] == {"app": "gen-c"} and got["clusterIP"].startswith("172.20.")
    kubectl_run(one, "create", "service", "clusterip", "gen-h", "-n", NS, "--clusterip=None",
                "--tcp=80")
    headless = svc(one, "gen-h")["spec"]
    assert headless["clusterIP"] == "None" and headless["clusterIPs"] == ["None"]
    kubectl_run(one, "create", "service", "loadbalancer", "gen-lb", "-n", NS, "--tcp=80:8080")
    lb = svc(one, "gen-lb")["spec"]
    assert lb["type"] == "LoadBalancer" and lb["allocateLoadBalancerNodePorts"] is True
    assert 30000 <= lb["ports"][0]["nodePort"] <= 32767
    assert lb["externalTrafficPolicy"] == "Cluster"
    kubectl_run(one, "create", "service", "externalname", "gen-x", "-n", NS,
                "--external-name", "example.com")
    ext = svc(one, "gen-x")["spec"]
    assert ext["type"] == "ExternalName" and "clusterIP" not in ext
    rows = {line.split()[0]: line.split() for line in
            kubectl_run(one, "get", "svc", "-n", NS).splitlines()[1:]}
    assert rows["gen-x"][1:4] == ["ExternalName", "<none>", "example.com"]
    assert rows["gen-h"][2] == "None"
    assert rows["gen-lb"][3] == "<pending>" and rows["gen-lb"][4].startswith("80:")
    out = kubectl(one, "create", "service", "nodeport", "gen-np", "-n", NS, "--tcp=80")
    assert out.returncode != 0 and "NodePort Services are not supported on Fargate" in out.stderr
    # A port added to a LoadBalancer gets a nodePort; the others keep theirs.
    kubectl_run(one, "patch", "svc", "gen-lb", "-n", NS, "--type=json", "-p",
                '[{"op":"add","path":"/spec/ports/-","value":{"name":"b","port":81}}]')
    grown = svc(one, "gen-lb")["spec"]["ports"]
    assert grown[0]["nodePort"] == lb["ports"][0]["nodePort"]
    assert 30000 <= grown[1]["nodePort"] <= 32767
    assert grown[1]["nodePort"] != grown[0]["nodePort"]
    lb = svc(one, "gen-lb")["spec"]
    # Server-side apply, twice: the allocated address stays.
    body = service("gen-ssa", selector={"app": "a"})
    kubectl_run(one, "apply", "--server-side", "-f", "-", stdin=json.dumps(body))
    first = svc(one, "gen-ssa")["spec"]["clusterIP"]
    body["spec"]["selector"] = {"app": "b"}
    kubectl_run(one, "apply", "--server-side", "-f", "-", stdin=json.dumps(body))
    again = svc(one, "gen-ssa")["spec"]
    assert again["clusterIP"] == first and again["selector"] == {"app": "b"}
    kubectl_run(one, "delete", "svc", "gen-ssa", "-n", NS)
    # Type changes as upstream allows: LoadBalancer -> ClusterIP drops the nodePorts,
    # ClusterIP -> ExternalName drops the address, ExternalName -> ClusterIP gets one.
    kubectl_run(one, "patch", "svc", "gen-lb", "-n", NS, "-p", '{"spec":{"type":"ClusterIP"}}')
    back = svc(one, "gen-lb")["spec"]
    assert back["clusterIP"] == lb["clusterIP"] and "nodePort" not in back["ports"][0]
    assert "allocateLoadBalancerNodePorts" not in back
    kubectl_run(one, "patch", "svc", "gen-c", "-n", NS, "-p",
                '{"spec":{"type":"ExternalName","externalName":"db.example.com"}}')
    assert "clusterIP" not in svc(one, "gen-c")["spec"]
    out = kubectl(one, "patch", "svc", "gen-x", "-n", NS, "-p", '{"spec":{"type":"ClusterIP"}}')
    assert out.returncode != 0 and "spec.ports: Required value" in out.stderr
    kubectl_run(one, "patch", "svc", "gen-x", "-n", NS, "-p",
                '{"spec":{"type":"ClusterIP","ports":[{"port":80}]}}')
    assert svc(one, "gen-x")["spec"]["clusterIP"].startswith("172.20.")
    kubectl_run(one, "delete", "svc", "gen-c", "gen-h", "gen-lb", "gen-x", "-n", NS)


def test_affinity_and_refusals(clusters):
    one = clusters[0]
    apply(one, service("sticky", selector={"app": "x"}, sessionAffinity="ClientIP"))
    assert svc(one, "sticky")["spec"]["sessionAffinityConfig"] == {
        "clientIP": {"timeoutSeconds": 10800}}
    kubectl_run(one, "delete", "svc", "sticky", "-n", NS)
    bad = {
        "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive":
            service("b1", ports=[{"port": 0}]),
        'spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", '
        '"TCP", "UDP"': service("b2", ports=[{"port": 80, "protocol": "ICMP"}]),
        "spec.ports[1].name: Required value":
            service("b3", ports=[{"name": "a", "port": 80}, {"port": 81}]),
        'spec.ports[1].name: Duplicate value: "a"':
            service("b4", ports=[{"name": "a", "port": 80}, {"name": "a", "port": 81}]),
        "spec.ports: Required value": service("b5", ports=[]),
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0":
            service("b6", sessionAffinity="ClientIP",
                    sessionAffinityConfig={"clientIP": {"timeoutSeconds": 0}}),
        "spec.externalName: Required value": service("b7", type="ExternalName"),
        'metadata.name: Invalid value: "1abc": a DNS-1035 label': service("1abc"),
    }
    for want, body in bad.items():
        out = kubectl(one, "create", "-f", "-", stdin=json.dumps(body))
        assert out.returncode != 0 and want in out.stderr, (want, out.stderr)
        assert 'is invalid' in out.stderr


def test_a_sigkill_loses_and_duplicates_no_address(srv, clusters):
    """Last in the module: it restarts the module's server. The Services are the
    allocation record, so after a SIGKILL every address is still held exactly once."""
    one, two = clusters
    for i in range(3):
        kubectl_run(one, "create", "service", "clusterip", f"keep{i}", "-n", NS, "--tcp=80")
    before = {n: svc(one, f"keep{i}")["spec"]["clusterIP"]
              for i, n in enumerate(["keep0", "keep1", "keep2"])}
    srv.kill()
    srv.start()
    assert {n: svc(one, n)["spec"]["clusterIP"] for n in before} == before
    taken = kubectl(two, "create", "-f", "-", stdin=json.dumps(
        service("again", clusterIP=before["keep0"])))
    assert "provided IP is already allocated" in taken.stderr
    for i in range(4):
        kubectl_run(two, "create", "service", "clusterip", f"more{i}", "-n", NS, "--tcp=80")
    ips = [s["spec"]["clusterIP"] for cfg in clusters for s in json.loads(kubectl_run(
        cfg, "get", "svc", "-A", "-o", "json"))["items"]
        if s["spec"].get("clusterIP") not in (None, "None", "172.20.0.10")]
    assert len(ips) == len(set(ips)) and set(before.values()) <= set(ips)
    for cfg in clusters:
        assert kubectl_run(cfg, "get", "svc", "kube-dns", "-n", "kube-system", "-o",
                           "jsonpath={.spec.clusterIP}") == "172.20.0.10"
