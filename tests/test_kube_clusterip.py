"""ClusterIP Services through the host's kernel (kube-proxy, agent/serviceproxy.py), driven by
the real kubectl: a VIP reached from a pod (busybox wget) and from the host, a named
targetPort, a pod through its own VIP, headless Services without a VIP, security groups
judging what a VIP translates, sessionAffinity ClientIP, an endpoint dropped while not ready,
a rolling update of a 3-replica Deployment behind the VIP under steady load losing no
request, a restart re-applying the table, purge removing it. Pods are real runc sandboxes on
one subnet's bridge."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from fargo.agent import nftlib
from tests.conftest import FargoServers
from tests.test_deployments import NS, make_cluster
from tests.test_kubectl import KUBECTL, kubectl, kubectl_run

pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")
# Serves its own name on the named port; on SIGTERM it keeps serving a moment (a drain, as
# a preStop sleep gives) so connections that were already open end well.
SERVE = ("mkdir -p /www && echo ${NAME:-$(hostname)} > /www/index.html && echo ok > /www/ready && "
         "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait")
# (busybox 1.35's `wget -T` segfaults: `timeout` bounds each attempt instead.)
SLEEPER = "trap 'exit 0' TERM; sleep 3600 & wait"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with FargoServers(tmp_path_factory.mktemp("clusterip-state")) as servers:
        yield servers("--overcommit", "8")


@pytest.fixture(scope="module")
def cfg(srv, tmp_path_factory) -> Path:
    return make_cluster(srv, tmp_path_factory.mktemp("kube"))[1]


def web(image: str, replicas: int, version: str = "1") -> dict:
    probe = {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1,
             "failureThreshold": 1}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                     "template": {
                         "metadata": {"labels": {"app": "web", "tier": "web"},
                                      "annotations": {"version": version}},
                         "spec": {"terminationGracePeriodSeconds": 3, "containers": [{
                             "name": "app", "image": image, "command": ["sh", "-c", SERVE],
                             "env": [{"name": "NAME", "valueFrom": {
                                 "fieldRef": {"fieldPath": "metadata.name"}}}],
                             "ports": [{"name": "http", "containerPort": 8080}],
                             "readinessProbe": probe}]}}}}


def service(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "web", "port": 80, "targetPort": "http"}], **spec}}


def apply(cfg: Path, obj: dict) -> None:
    kubectl_run(cfg, "apply", "-f", "-", stdin=json.dumps(obj))


def get(cfg: Path, kind: str, name: str) -> dict:
    return json.loads(kubectl_run(cfg, "get", kind, name, "-n", NS, "-o", "json"))


def ready_pods(cfg: Path) -> dict[str, str]:
    """name -> IP of the web pods that are Ready and not being deleted."""
    pods = json.loads(kubectl_run(cfg, "get", "pods", "-n", NS, "-l", "app=web", "-o",
                                  "json"))["items"]
    return {p["metadata"]["name"]: p["status"]["podIP"] for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in p["status"].get("conditions", []))}


def wait_for(what, timeout: float = 30, every: float = 0.2):
    deadline = time.time() + timeout
    while True:
        got = what()
        if got:
            return got
        assert time.time() < deadline, "timed out"
        time.sleep(every)


def fetch(url: str, timeout: float = 2) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode().strip()


def spread(url: str, n: int) -> Counter:
    return Counter(fetch(url) for _ in range(n))


@pytest.fixture(scope="module")
def vip(cfg, busybox_image) -> str:
    apply(cfg, web(busybox_image, 2))
    apply(cfg, service("web"))
    kubectl_run(cfg, "run", "client", "-n", NS, "--image", busybox_image, "--labels",
                "tier=web", "--restart=Never", "--command", "--", "sh", "-c", SLEEPER)
    ip = get(cfg, "service", "web")["spec"]["clusterIP"]
    assert ip.startswith("172.20.")
    wait_for(lambda: len(ready_pods(cfg)) == 2, 40)
    # kube-proxy follows the EndpointSlices, which follow the pods' readiness a pass later
    wait_for(lambda: len(slice_ready(cfg, "web")) == 2, 10)
    kubectl_run(cfg, "wait", "-n", NS, "--for=condition=Ready", "pod/client", "--timeout=30s")
    return ip


def slice_ready(cfg: Path, svc: str) -> list[str]:
    slices = json.loads(kubectl_run(cfg, "get", "endpointslices", "-n", NS, "-l",
                                    f"kubernetes.io/service-name={svc}", "-o", "json"))["items"]
    return [a for s in slices for e in s.get("endpoints") or []
            if e["conditions"].get("ready") for a in e["addresses"]]


def test_clusterip_from_the_host_reaches_every_ready_pod(cfg, vip):
    names = set(ready_pods(cfg))
    got = spread(f"http://{vip}/", 30)
    assert set(got) == names, (got, names)
    assert min(got.values()) >= 5  # a random choice, not one backend mostly


def test_clusterip_from_a_pod_with_named_target_port(cfg, vip):
    names = set(ready_pods(cfg))
    out = kubectl_run(cfg, "exec", "-n", NS, "client", "--", "sh", "-c",
                      f"for i in 1 2 3 4 5 6 7 8 9 10 11 12; do timeout 2 wget -q -O - "
                      f"http://{vip}/; done")
    got = set(out.split())
    assert got <= names and len(got) == 2  # both endpoints, through port 80 -> http (8080)
    # the targetPort the slice resolved, by the container port's name
    slices = json.loads(kubectl_run(cfg, "get", "endpointslices", "-n", NS, "-l",
                                    "kubernetes.io/service-name=web", "-o", "json"))["items"]
    assert [p["port"] for s in slices for p in s["ports"]] == [8080]
    # a port the Service does not have is refused at once, not routed anywhere
    bad = kubectl(cfg, "exec", "-n", NS, "client", "--", "timeout", "3", "wget", "-q", "-O",
                  "-", f"http://{vip}:81/")
    assert bad.returncode != 0 and "refused" in bad.stderr + bad.stdout


def test_a_pod_reaches_itself_through_its_vip(cfg, vip, busybox_image):
    """Hairpin: the one endpoint of a Service is the pod asking."""
    kubectl_run(cfg, "run", "solo", "-n", NS, "--image", busybox_image, "--labels",
                "tier=web,app=solo", "--restart=Never", "--command", "--", "sh", "-c",
                SERVE)
    apply(cfg, {**service("solo"), "spec": {"selector": {"app": "solo"},
                                            "ports": [{"port": 80, "targetPort": 8080}]}})
    ip = get(cfg, "service", "solo")["spec"]["clusterIP"]
    kubectl_run(cfg, "wait", "-n", NS, "--for=condition=Ready", "pod/solo", "--timeout=30s")

    own = fetch(f"http://{get(cfg, 'pod', 'solo')['status']['podIP']}:8080/")

    def through() -> str:
        out = kubectl(cfg, "exec", "-n", NS, "solo", "--", "timeout", "2", "wget", "-q", "-O",
                      "-", f"http://{ip}/")
        return out.stdout.strip()
    assert wait_for(through, 10) == own
    kubectl_run(cfg, "delete", "pod", "solo", "-n", NS, "--grace-period=0", "--wait=false")
    kubectl_run(cfg, "delete", "service", "solo", "-n", NS)


def test_headless_service_has_no_vip(cfg, vip):
    apply(cfg, service("headless", clusterIP="None"))
    assert get(cfg, "service", "headless")["spec"]["clusterIP"] == "None"
    kubectl_run(cfg, "delete", "service", "headless", "-n", NS)


def test_security_groups_judge_what_a_vip_translates(srv, cfg, vip, busybox_image):
    """After the DNAT the forward path's security groups judge the real addresses: a pod
    whose group admits no 8080 is out of reach through its VIP until a rule admits it."""
    ec2 = srv.client("ec2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    sg = ec2.create_security_group(GroupName="guarded", Description="no 8080",
                                   VpcId=vpc)["GroupId"]
    apply(cfg, {"apiVersion": "vpcresources.k8s.aws/v1beta1", "kind": "SecurityGroupPolicy",
                "metadata": {"name": "guarded", "namespace": NS},
                "spec": {"podSelector": {"matchLabels": {"app": "guarded"}},
                         "securityGroups": {"groupIds": [sg]}}})
    kubectl_run(cfg, "run", "guarded", "-n", NS, "--image", busybox_image, "--labels",
                "tier=web,app=guarded", "--restart=Never", "--command", "--", "sh", "-c",
                SERVE)
    apply(cfg, {**service("guarded"), "spec": {"selector": {"app": "guarded"},
                                               "ports": [{"port": 80, "targetPort": 8080}]}})
    ip = get(cfg, "service", "guarded")["spec"]["clusterIP"]
    kubectl_run(cfg, "wait", "-n", NS, "--for=condition=Ready", "pod/guarded", "--timeout=30s")
    wait_for(lambda: slice_ready(cfg, "guarded"), 10)

    def reaches() -> bool:
        return kubectl(cfg, "exec", "-n", NS, "client", "--", "timeout", "2", "wget", "-q",
                       "-O", "-", f"http://{ip}/").returncode == 0
    assert not reaches()
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
         "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    assert wait_for(reaches, 10)
    kubectl_run(cfg, "delete", "pod", "guarded", "-n", NS, "--grace-period=0", "--wait=false")
    kubectl_run(cfg, "delete", "service", "guarded", "-n", NS)
    kubectl_run(cfg, "delete", "sgp", "guarded", "-n", NS)


def test_client_ip_affinity(cfg, vip):
    patch = {"spec": {"sessionAffinity": "ClientIP",
                      "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}}
    kubectl_run(cfg, "patch", "service", "web", "-n", NS, "-p", json.dumps(patch))
    # one client, one backend (15 random picks of one of two: 2**-14), once a pass applied it
    assert wait_for(lambda: len(spread(f"http://{vip}/", 15)) == 1, 5)
    kubectl_run(cfg, "patch", "service", "web", "-n", NS, "-p",
                json.dumps({"spec": {"sessionAffinity": "None",
                                         "sessionAffinityConfig": None}}))
    assert wait_for(lambda: len(spread(f"http://{vip}/", 20)) == 2, 10)


def test_an_endpoint_that_stops_being_ready_is_dropped(cfg, vip):
    names = sorted(ready_pods(cfg))
    sick, well = names
    kubectl_run(cfg, "exec", "-n", NS, sick, "--", "rm", "/www/ready")
    wait_for(lambda: sick not in ready_pods(cfg), 15)
    assert wait_for(lambda: set(spread(f"http://{vip}/", 20)) == {well}, 10)
    kubectl_run(cfg, "exec", "-n", NS, sick, "--", "sh", "-c", "echo ok > /www/ready")
    assert wait_for(lambda: set(spread(f"http://{vip}/", 20)) == {sick, well}, 15)


def test_rolling_update_behind_the_vip_loses_no_request(cfg, vip, busybox_image):
    apply(cfg, web(busybox_image, 3))
    wait_for(lambda: len(ready_pods(cfg)) == 3 and len(slice_ready(cfg, "web")) == 3, 40)
    old = set(ready_pods(cfg))
    results: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                results.append(fetch(f"http://{vip}/", timeout=3))
            except OSError as err:
                failures.append(repr(err))
            time.sleep(0.01)
    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        apply(cfg, web(busybox_image, 3, version="2"))
        out = kubectl(cfg, "rollout", "status", "deployment/web", "-n", NS, "--timeout=60s",
                      timeout=70)
        assert out.returncode == 0, out.stderr
        new = wait_for(lambda: (lambda r: r if len(r) == 3 and not r.keys() & old else None)(
            ready_pods(cfg)), 30)
        # the load reaches the new pods only, once the old are gone
        wait_for(lambda: results[-5:] and set(results[-5:]) <= set(new), 15)
    finally:
        stop.set()
        thread.join(10)
    print(f"rolling update: {len(results)} requests, {len(failures)} failed, "
          f"{len(set(results))} pods answered")
    assert not failures, f"{len(failures)} of {len(results) + len(failures)}: {failures[:3]}"
    assert len(results) > 50 and set(results) & old and set(results) & set(new)


def _table_exists(prefix: str) -> bool:
    try:
        nftlib.run(f"list table ip fargo_{prefix}_svc\n")
    except nftlib.NftError:
        return False
    return True


def test_a_restart_reapplies_the_table_from_the_store(srv, cfg, vip):
    srv.kill()  # SIGKILL
    nftlib.run(f"delete table ip fargo_{srv.prefix}_svc\n")  # as if the host had lost it
    srv.start()
    names = set(ready_pods(cfg))
    assert len(names) == 3
    assert wait_for(lambda: set(spread(f"http://{vip}/", 30)) == names, 15)


def test_purge_removes_the_table(srv, vip):
    assert _table_exists(srv.prefix)
    srv.purge()
    assert not _table_exists(srv.prefix)
