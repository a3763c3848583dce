"""NetworkPolicy and SecurityGroupPolicy, enforced in the kernel, driven by the real kubectl:
busybox httpd pods and client pods that wget them from their own netns. Default deny blocks;
a podSelector rule on a named port, a namespaceSelector+podSelector rule on a port range and
an ipBlock (with except) egress rule admit exactly what they say; an egress deny stops a
client while its own metadata endpoint (inside its netns) still answers; the host still
reaches a pod (a policy never judges its node). A SecurityGroupPolicy puts a pod in an EC2
security group whose rules then decide; an unknown group keeps its pod Pending with an event
that says so. Bad objects get the apiserver's 422."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FargoServer, FargoServers
from tests.test_kubectl import KUBECTL, eks_cluster, kubectl, kubectl_run, wait_for

pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")
A, B = "np-a", "np-b"
SERVE = "httpd -p 9090 -h /www; exec httpd -f -p 8080 -h /www"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with FargoServers(tmp_path_factory.mktemp("np-state")) as servers:
        yield servers("--overcommit", "8")


@pytest.fixture(scope="module")
def cfg(srv: FargoServer, tmp_path_factory) -> Path:
    path = eks_cluster(srv, tmp_path_factory.mktemp("np-kube"),
                       [{"namespace": A}, {"namespace": B}], [A, B], "n")[1]
    kubectl_run(path, "label", "namespace", B, "team=blue")
    yield path
    for ns in (A, B):
        kubectl(path, "delete", "namespace", ns, "--wait=false")


def pod(name: str, ns: str, labels: dict[str, str], image: str, serve: bool) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "app", "image": image,
                         "command": ["sh", "-c", SERVE if serve else "sleep 3600"]}
    if serve:
        c["ports"] = [{"name": "http", "containerPort": 8080},
                      {"name": "alt", "containerPort": 9090}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [c]}}


def apply(cfg: Path, *objs: dict[str, Any]) -> None:
    kubectl_run(cfg, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                           "items": list(objs)}))


def netpol(name: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


LAST: list[str] = [""]  # the last wget's output, for a failure's message


def reaches(cfg: Path, ns: str, client: str, url: str) -> bool:
    # busybox's own wget -T crashes (Debian's static build): timeout bounds it instead.
    out = kubectl(cfg, "exec", "-n", ns, client, "--", "timeout", "1", "wget", "-q", "-O-",
                  url)
    LAST[0] = f"{out.returncode} {out.stdout[-200:]} {out.stderr[-300:]}"
    return out.returncode == 0 and "hello from fargo" in out.stdout


def expect(cfg: Path, ns: str, client: str, url: str, ok: bool, within: float = 6) -> None:
    """The controller applies within a pass: wait until the answer is the one wanted."""
    deadline = time.time() + within
    while reaches(cfg, ns, client, url) != ok:
        assert time.time() < deadline, \
            f"{ns}/{client} -> {url}: never {'open' if ok else 'shut'}: {LAST[0]}"


@pytest.fixture(scope="module")
def pods(cfg: Path, busybox_image: str) -> dict[str, str]:
    apply(cfg, pod("web", A, {"app": "web"}, busybox_image, True),
          pod("client", A, {"app": "client"}, busybox_image, False),
          pod("outsider", B, {"app": "client"}, busybox_image, False))
    ips = {}
    for name, ns in (("web", A), ("client", A), ("outsider", B)):
        got = wait_for(cfg, name, "status.phase", "Running", ns=ns, timeout=60)
        ips[name] = got["status"]["podIP"]
    return ips


def test_network_policies_are_enforced(cfg: Path, pods: dict[str, str]) -> None:
    web, web9 = f"http://{pods['web']}:8080/", f"http://{pods['web']}:9090/"
    expect(cfg, A, "client", web, True, within=10)  # no policy (and httpd up)
    assert reaches(cfg, B, "outsider", web)
    apply(cfg, netpol("deny", A, {"podSelector": {}}))
    expect(cfg, A, "client", web, False)
    assert not reaches(cfg, B, "outsider", web)
    # The node is never a policy's business: the host still reaches the pod.
    with urllib.request.urlopen(web, timeout=5) as answer:
        assert b"hello from fargo" in answer.read()
    # podSelector (this namespace only) on the named port "http" (8080 on web).
    apply(cfg, netpol("from-clients", A, {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                     "ports": [{"port": "http"}]}]}))
    expect(cfg, A, "client", web, True)
    assert not reaches(cfg, A, "client", web9)
    assert not reaches(cfg, B, "outsider", web)  # app=client too, but of another namespace
    # namespaceSelector and podSelector together, on a port range.
    apply(cfg, netpol("from-blue", A, {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}},
                               "podSelector": {"matchLabels": {"app": "client"}}}],
                     "ports": [{"port": 9000, "endPort": 9100}]}]}))
    expect(cfg, B, "outsider", web9, True)
    assert not reaches(cfg, B, "outsider", web)
    assert reaches(cfg, A, "client", web)  # replies of admitted flows come back
    listed = kubectl_run(cfg, "get", "netpol", "-n", A)
    assert "POD-SELECTOR" in listed and "app=web" in listed and "from-blue" in listed
    described = kubectl_run(cfg, "describe", "netpol", "from-blue", "-n", A)
    assert "app=web" in described and "9000" in described, described
    # Egress: the client may send nothing, yet its own metadata endpoint answers (it never
    # leaves the pod's netns).
    apply(cfg, netpol("client-out", A, {"podSelector": {"matchLabels": {"app": "client"}},
                                        "policyTypes": ["Egress"]}))
    expect(cfg, A, "client", web, False)
    meta = kubectl(cfg, "exec", "-n", A, "client", "--", "timeout", "2", "wget", "-O-",
                   "http://169.254.170.2/")
    assert "server returned error" in meta.stderr or meta.returncode == 0, meta.stderr
    # ipBlock with except: every address but web's shuts web out...
    vpc = "10.0.0.0/8"
    apply(cfg, netpol("client-out", A, {
        "podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": vpc, "except": [f"{pods['web']}/32"]}}]}]}))
    time.sleep(0.5)
    assert not reaches(cfg, A, "client", web)
    # ...and web's /32 on port 8080 only lets that port through.
    apply(cfg, netpol("client-out", A, {
        "podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": f"{pods['web']}/32"}}],
                    "ports": [{"protocol": "TCP", "port": 8080}]}]}))
    expect(cfg, A, "client", web, True)
    # 9090: the egress rule shuts it even though from-blue-style ingress is not for client.
    assert not reaches(cfg, A, "client", web9)
    # All the policies gone: everything is open again.
    kubectl_run(cfg, "delete", "netpol", "-n", A, "--all")
    expect(cfg, B, "outsider", web, True)


def test_bad_policies_get_the_apiservers_422(cfg: Path) -> None:
    bad = netpol("bad", A, {"podSelector": {}, "ingress": [{"ports": [{"protocol": "ICMP"}]}]})
    out = kubectl(cfg, "apply", "-f", "-", stdin=json.dumps(bad))
    assert out.returncode != 0
    assert ('The NetworkPolicy "bad" is invalid: spec.ingress[0].ports[0].protocol: '
            'Unsupported value: "ICMP"') in out.stderr
    sgp = {"apiVersion": "vpcresources.k8s.aws/v1beta1", "kind": "SecurityGroupPolicy",
           "metadata": {"name": "bad", "namespace": A},
           "spec": {"podSelector": {}, "securityGroups": {"groupIds": []}}}
    out = kubectl(cfg, "apply", "-f", "-", stdin=json.dumps(sgp))
    assert out.returncode != 0 and "should have at least 1 items" in out.stderr, out.stderr
    explained = kubectl_run(cfg, "explain", "sgp.spec.securityGroups")
    assert "groupIds" in explained, explained
    sgp["spec"]["bogus"] = 1
    out = kubectl(cfg, "create", "--validate=strict", "-f", "-", stdin=json.dumps(sgp))
    assert out.returncode != 0 and 'unknown field "spec.bogus"' in out.stderr, out.stderr


def test_security_group_policy_places_pods_in_groups(srv: FargoServer, cfg: Path,
                                                     pods: dict[str, str],
                                                     busybox_image: str) -> None:
    ec2 = srv.client("ec2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    sg = ec2.create_security_group(GroupName="np-guarded-" + uuid.uuid4().hex[:6],
                                   Description="8080 only", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
         "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    sgp = {"apiVersion": "vpcresources.k8s.aws/v1beta1", "kind": "SecurityGroupPolicy",
           "metadata": {"name": "guarded", "namespace": B},
           "spec": {"podSelector": {"matchLabels": {"app": "guarded"}},
                    "securityGroups": {"groupIds": [sg]}}}
    lost = {**sgp, "metadata": {"name": "lost", "namespace": B},
            "spec": {"podSelector": {"matchLabels": {"app": "lost"}},
                     "securityGroups": {"groupIds": ["sg-0000000000000dead"]}}}
    apply(cfg, sgp, lost, pod("guarded", B, {"app": "guarded"}, busybox_image, True),
          pod("lost", B, {"app": "lost"}, busybox_image, False))
    assert sg in kubectl_run(cfg, "get", "sgp", "-n", B)
    ip = wait_for(cfg, "guarded", "status.phase", "Running", ns=B, timeout=60)["status"][
        "podIP"]
    # Its group's rules decide: 8080 from anywhere, nothing else (the default group, which
    # admits its own members on every port, is not its group).
    expect(cfg, B, "outsider", f"http://{ip}:8080/", True)
    assert not reaches(cfg, B, "outsider", f"http://{ip}:9090/")
    enis = ec2.describe_network_interfaces(Filters=[
        {"Name": "addresses.private-ip-address", "Values": [ip]}])["NetworkInterfaces"]
    assert [g["GroupId"] for g in enis[0]["Groups"]] == [sg]  # its interface, as EC2 says
    # A group that does not exist: the pod stays Pending, and its event says why.
    deadline = time.time() + 15
    while True:
        events = json.loads(kubectl_run(cfg, "get", "events", "-n", B, "-o", "json",
                                        "--field-selector", "involvedObject.name=lost"))
        said = [e["message"] for e in events["items"] if e["reason"] == "FailedScheduling"]
        if any("sg-0000000000000dead" in m and "does not exist" in m for m in said):
            break
        assert time.time() < deadline, said
        time.sleep(0.2)
    got = json.loads(kubectl_run(cfg, "get", "pod", "lost", "-n", B, "-o", "json"))
    assert got["status"]["phase"] == "Pending" and not got["spec"].get("nodeName")
    kubectl_run(cfg, "delete", "pod", "guarded", "lost", "-n", B, "--wait=false")


def test_a_pod_is_judged_from_its_first_packet(cfg: Path, pods: dict[str, str],
                                               busybox_image: str) -> None:
    apply(cfg, netpol("early-out", A, {"podSelector": {"matchLabels": {"app": "early"}},
                                       "policyTypes": ["Egress"]}))
    probe = (f"if timeout 1 wget -q -O- http://{pods['web']}:8080/ >/dev/null; then echo "
             "REACHED; else echo BLOCKED; fi; sleep 3600")
    early = pod("early", A, {"app": "early"}, busybox_image, False)
    free = pod("free", A, {"app": "free"}, busybox_image, False)  # the same, unselected
    for p in (early, free):
        p["spec"]["containers"][0]["command"] = ["sh", "-c", probe]
    apply(cfg, early, free)
    said = {}
    deadline = time.time() + 60
    while len(said) < 2:
        for name in ("early", "free"):
            out = kubectl(cfg, "logs", "-n", A, name).stdout
            if "REACHED" in out or "BLOCKED" in out:
                said[name] = "REACHED" if "REACHED" in out else "BLOCKED"
        assert time.time() < deadline, said
        time.sleep(0.2)
    assert said == {"early": "BLOCKED", "free": "REACHED"}
    kubectl_run(cfg, "delete", "pod", "early", "free", "-n", A, "--wait=false")
    kubectl_run(cfg, "delete", "netpol", "early-out", "-n", A)


def test_policies_converge_after_a_crash(srv: FargoServer, cfg: Path,
                                         pods: dict[str, str]) -> None:
    web = f"http://{pods['web']}:8080/"
    apply(cfg, netpol("deny", A, {"podSelector": {"matchLabels": {"app": "web"}}}))
    expect(cfg, A, "client", web, False)
    srv.kill()  # SIGKILL; and the kernel forgets the policies' table meanwhile
    subprocess.run(["nft", "delete", "table", "inet", f"fargo_{srv.prefix}_np"], check=True)
    srv.start()  # re-applied from the store before anything else is served
    assert not reaches(cfg, A, "client", web)
    assert pods["web"] in subprocess.run(["nft", "list", "table", "inet",
                                          f"fargo_{srv.prefix}_np"], capture_output=True,
                                         text=True, check=True).stdout
    kubectl_run(cfg, "delete", "netpol", "deny", "-n", A)
    expect(cfg, A, "client", web, True)
