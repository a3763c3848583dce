"""Load balancers from Kubernetes, as the AWS Load Balancer Controller makes them on EKS
Fargate, end to end: a 2048_full.yaml-style manifest (Namespace, Deployment of busybox httpd,
Service, Ingress of class alb with ip targets) applied with kubectl gets an ALB that `aws
elbv2` sees, whose targets are the pods' IPs and whose DNSName (from fargo's resolver) serves
the pods with curl; an Ingress naming a missing Service gets the controller's warning; a
Service of type LoadBalancer gets an NLB; deleting them removes the ELBv2 objects."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, FargoServer, FargoServers
from tests.test_dns import addresses, ask, host_dns_port
from tests.test_kubectl import KUBECTL, kubectl, kubectl_run, make_profile
from tests.test_services_lb import Load

NS = "game-2048"
ROLL = "roll"
pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")
SERVE = ("hostname > /tmp/index.html; echo ok > /tmp/health; trap 'exit 0' TERM; "
         "httpd -f -p 8080 -h /tmp & wait")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with FargoServers(tmp_path_factory.mktemp("ingress-state")) as servers:
        yield servers("--overcommit", "8")


@pytest.fixture(scope="module")
def cfg(srv: FargoServer, tmp_path_factory) -> Path:
    eks = srv.client("eks")
    subnets = [s["SubnetId"] for s in srv.client("ec2").describe_subnets()["Subnets"]]
    name = "ing" + srv.prefix
    eks.create_cluster(name=name, roleArn="arn:aws:iam::000000000000:role/eks",
                       resourcesVpcConfig={"subnetIds": subnets})
    make_profile(eks, name, "game", [{"namespace": NS}, {"namespace": ROLL}], subnets[:2])
    out = subprocess.run([sys.executable, "-m", "fargo", "kubeconfig", name, "--endpoint",
                          srv.endpoint], capture_output=True, text=True, cwd=ROOT,
                         env=srv.env(), timeout=30)
    assert out.returncode == 0, out.stderr
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(out.stdout)
    return path


def manifest(image: str) -> str:
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "deployment-2048", "namespace": NS},
         "spec": {"replicas": 2,
                  "selector": {"matchLabels": {"app.kubernetes.io/name": "app-2048"}},
                  "template": {
                      "metadata": {"labels": {"app.kubernetes.io/name": "app-2048"}},
                      "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
                          "name": "app-2048", "image": image,
                          "command": ["sh", "-c", SERVE],
                          "ports": [{"containerPort": 8080, "name": "http"}]}]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "service-2048", "namespace": NS},
         "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": "app-2048"},
                  "ports": [{"port": 80, "targetPort": "http", "protocol": "TCP"}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "ingress-2048", "namespace": NS, "annotations": {
             "alb.ingress.kubernetes.io/scheme": "internal",
             "alb.ingress.kubernetes.io/target-type": "ip",
             "alb.ingress.kubernetes.io/healthcheck-path": "/health",
             "alb.ingress.kubernetes.io/healthcheck-interval-seconds": "5",
             "alb.ingress.kubernetes.io/healthcheck-timeout-seconds": "2",
             "alb.ingress.kubernetes.io/target-group-attributes":
                 "deregistration_delay.timeout_seconds=2"}},
         "spec": {"ingressClassName": "alb", "rules": [{"http": {"paths": [
             {"path": "/", "pathType": "Prefix", "backend": {"service": {
                 "name": "service-2048", "port": {"number": 80}}}}]}}]}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "nlb-2048", "namespace": NS, "annotations": {
             "service.beta.kubernetes.io/aws-load-balancer-type": "external",
             "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
             "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
             "service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval": "5",
             "service.beta.kubernetes.io/aws-load-balancer-healthcheck-timeout": "2",
             "service.beta.kubernetes.io/aws-load-balancer-healthcheck-healthy-threshold":
                 "2"}},
         "spec": {"type": "LoadBalancer",
                  "selector": {"app.kubernetes.io/name": "app-2048"},
                  "ports": [{"port": 8081, "targetPort": 8080, "protocol": "TCP"}]}},
    ]
    return yaml.safe_dump_all(docs)


def until(check, timeout: float, what: str):
    deadline = time.time() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def get(cfg: Path, kind: str, name: str, ns: str = NS) -> dict:
    return json.loads(kubectl_run(cfg, "get", kind, name, "-n", ns, "-o", "json"))


def hostname(cfg: Path, kind: str, name: str, ns: str = NS) -> str | None:
    ingress = ((get(cfg, kind, name, ns).get("status") or {}).get("loadBalancer") or {}).get(
        "ingress") or []
    return ingress[0].get("hostname") if ingress else None


def aws(srv: FargoServer, *args: str) -> dict:
    out = subprocess.run(["aws", "--endpoint-url", srv.endpoint, "--output", "json", "elbv2",
                          *args], capture_output=True, text=True, env=srv.env(), timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else {}


def curl(url: str, host: str, ip: str, port: int) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-s", "--max-time", "3", "--resolve", f"{host}:{port}:{ip}",
                           url], capture_output=True, text=True, timeout=10)


def test_ingress_alb_and_nlb_service(srv, cfg, busybox_image):
    kubectl_run(cfg, "apply", "-f", "-", stdin=manifest(busybox_image))
    dns = until(lambda: hostname(cfg, "ingress", "ingress-2048"), 30, "the ALB's hostname")
    ing = get(cfg, "ingress", "ingress-2048")
    assert "ingress.k8s.aws/resources" in ing["metadata"]["finalizers"]
    lbs = [lb for lb in aws(srv, "describe-load-balancers")["LoadBalancers"]
           if lb["DNSName"] == dns]
    assert len(lbs) == 1 and lbs[0]["Type"] == "application" and lbs[0]["Scheme"] == "internal"
    alb = lbs[0]
    tags = {t["Key"]: t["Value"] for t in aws(srv, "describe-tags", "--resource-arns",
                                              alb["LoadBalancerArn"])["TagDescriptions"][0][
        "Tags"]}
    assert tags["ingress.k8s.aws/stack"] == f"{NS}/ingress-2048"
    assert tags["elbv2.k8s.aws/cluster"].startswith("ing")
    assert tags["ingress.k8s.aws/resource"] == "LoadBalancer"
    (tg,) = aws(srv, "describe-target-groups", "--load-balancer-arn",
                alb["LoadBalancerArn"])["TargetGroups"]
    assert tg["TargetType"] == "ip" and tg["HealthCheckPath"] == "/health"

    def pod_ips() -> set[str]:
        pods = json.loads(kubectl_run(cfg, "get", "pods", "-n", NS, "-o", "json"))["items"]
        return {p["status"].get("podIP") for p in pods
                if not p["metadata"].get("deletionTimestamp") and any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in p["status"].get("conditions") or [])}

    def healthy(arn: str) -> set[str]:
        found = aws(srv, "describe-target-health", "--target-group-arn", arn)[
            "TargetHealthDescriptions"]
        ips = {d["Target"]["Id"] for d in found if d["TargetHealth"]["State"] == "healthy"}
        want = pod_ips()
        return ips if len(want) == 2 and ips == want and len(found) == 2 else set()
    targets = until(lambda: healthy(tg["TargetGroupArn"]), 60, "two healthy pod targets")
    assert all(d["Target"]["Port"] == 8080 for d in aws(
        srv, "describe-target-health", "--target-group-arn", tg["TargetGroupArn"])[
        "TargetHealthDescriptions"])

    # The DNSName answers from fargo's resolver; curl reaches the pods through it.
    reply = addresses(ask(host_dns_port(srv), dns))
    assert reply == {a["LoadBalancerAddresses"][0]["PrivateIPv4Address"]
                     for a in alb["AvailabilityZones"]}
    seen = set()
    for _ in range(20):
        out = curl(f"http://{dns}/", dns, sorted(reply)[0], 80)
        assert out.returncode == 0 and out.stdout.strip(), out
        seen.add(out.stdout.strip())
    assert len(seen) == 2  # both pods answered (their hostnames)

    # The NLB Service: a TCP listener per port, ip targets, the hostname in its status.
    nlb_dns = until(lambda: hostname(cfg, "service", "nlb-2048"), 30, "the NLB's hostname")
    (nlb,) = [lb for lb in aws(srv, "describe-load-balancers")["LoadBalancers"]
              if lb["DNSName"] == nlb_dns]
    assert nlb["Type"] == "network"
    (listener,) = aws(srv, "describe-listeners", "--load-balancer-arn",
                      nlb["LoadBalancerArn"])["Listeners"]
    assert (listener["Protocol"], listener["Port"]) == ("TCP", 8081)
    (ntg,) = aws(srv, "describe-target-groups", "--load-balancer-arn",
                 nlb["LoadBalancerArn"])["TargetGroups"]
    assert until(lambda: healthy(ntg["TargetGroupArn"]), 60, "NLB targets") == targets
    nlb_ip = sorted(addresses(ask(host_dns_port(srv), nlb_dns)))[0]
    out = until(lambda: (lambda o: o if o.returncode == 0 and o.stdout.strip() else None)(
        curl(f"http://{nlb_dns}:8081/", nlb_dns, nlb_ip, 8081)), 20, "the NLB's answer")
    assert out.stdout.strip()

    # An Ingress naming a missing Service: the controller's warning, no load balancer.
    bad = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "broken", "namespace": NS, "annotations": {
               "alb.ingress.kubernetes.io/target-type": "ip"}},
           "spec": {"ingressClassName": "alb", "rules": [{"http": {"paths": [
               {"path": "/", "pathType": "Exact", "backend": {"service": {
                   "name": "nope", "port": {"number": 80}}}}]}}]}}
    kubectl_run(cfg, "apply", "-f", "-", stdin=json.dumps(bad))

    def warned() -> list[str]:
        events = json.loads(kubectl_run(cfg, "get", "events", "-n", NS, "-o", "json",
                                        "--field-selector", "involvedObject.name=broken"))
        return [e["message"] for e in events["items"] if e["reason"] == "FailedBuildModel"]
    assert until(warned, 20, "the warning") == [
        f'Failed build model due to ingress: {NS}/broken: Service "nope" not found']
    assert hostname(cfg, "ingress", "broken") is None
    kubectl_run(cfg, "delete", "ingress", "broken", "-n", NS)

    # Deleting them removes what they made (their finalizers held them until then).
    kubectl_run(cfg, "delete", "ingress", "ingress-2048", "-n", NS, "--timeout=30s")
    kubectl_run(cfg, "delete", "service", "nlb-2048", "-n", NS, "--timeout=30s")
    left = aws(srv, "describe-load-balancers")["LoadBalancers"]
    assert not [lb for lb in left if lb["DNSName"] in (dns, nlb_dns)]
    assert not aws(srv, "describe-target-groups")["TargetGroups"]
    kubectl(cfg, "delete", "namespace", NS, "--wait=false")


def roll_manifest(image: str, rev: str) -> list[dict]:
    ingress_meta = {"alb.ingress.kubernetes.io/target-type": "ip",
                    "alb.ingress.kubernetes.io/group.name": "roll-group",
                    "alb.ingress.kubernetes.io/healthcheck-path": "/health",
                    "alb.ingress.kubernetes.io/healthcheck-interval-seconds": "5",
                    "alb.ingress.kubernetes.io/healthcheck-timeout-seconds": "2",
                    "alb.ingress.kubernetes.io/target-group-attributes":
                        "deregistration_delay.timeout_seconds=2"}
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ROLL, "labels": {
            "elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ROLL},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "web", "namespace": ROLL, "annotations": ingress_meta},
         "spec": {"ingressClassName": "alb", "rules": [{"http": {"paths": [
             {"path": "/", "pathType": "Prefix", "backend": {"service": {
                 "name": "web", "port": {"number": 80}}}}]}}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": ROLL},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                  "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                  "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                      "terminationGracePeriodSeconds": 2, "containers": [{
                          "name": "app", "image": image, "env": [{"name": "REV", "value": rev}],
                          "command": ["sh", "-c", "echo rev $REV > /tmp/index.html; " + SERVE.split(
                              "; ", 1)[1]]}]}}}},
    ]
    return docs


def test_group_readiness_gates_a_rollout_losing_nothing_and_a_sigkill(srv, cfg, busybox_image):
    """Two Ingresses of one group.name share an ALB (the second made by `kubectl create
    ingress`, protobuf); pods in a namespace with the readiness gate label wait for their
    targets' health, so a rolling update under steady requests loses none; a SIGKILL of
    the server before it makes no second load balancer."""
    docs = roll_manifest(busybox_image, "1")  # the Deployment once its target group is made
    kubectl_run(cfg, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs[:3]))
    try:
        dns = until(lambda: hostname(cfg, "ingress", "web", ROLL), 30, "the group's ALB")
    except AssertionError as err:
        raise AssertionError(kubectl(cfg, "get", "events", "-n", ROLL).stdout) from err
    kubectl_run(cfg, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    kubectl_run(cfg, "create", "ingress", "api", "-n", ROLL, "--class=alb",
                "--rule=/api=web:80", "--annotation=alb.ingress.kubernetes.io/target-type=ip",
                "--annotation=alb.ingress.kubernetes.io/group.name=roll-group")
    assert until(lambda: hostname(cfg, "ingress", "api", ROLL), 30, "the second") == dns
    (alb,) = [lb for lb in aws(srv, "describe-load-balancers")["LoadBalancers"]
              if lb["DNSName"] == dns]
    assert alb["LoadBalancerName"].startswith("k8s-rollgroup-")
    (listener,) = aws(srv, "describe-listeners", "--load-balancer-arn",
                      alb["LoadBalancerArn"])["Listeners"]

    def rules() -> list:
        found = aws(srv, "describe-rules", "--listener-arn", listener["ListenerArn"])["Rules"]
        return [(r["Priority"], [v for c in r["Conditions"] for v in c["Values"]])
                for r in found]
    until(lambda: len(rules()) == 3, 10, "both Ingresses' rules")
    assert sorted(rules()) == [("1", ["/api"]), ("2", ["/*"]), ("default", [])]
    pods = json.loads(kubectl_run(cfg, "get", "pods", "-n", ROLL, "-o", "json"))["items"]
    tgs = {t["TargetGroupName"] for t in aws(srv, "describe-target-groups",
                                             "--load-balancer-arn", alb["LoadBalancerArn"])[
        "TargetGroups"]}
    assert len(tgs) == 2  # one per Ingress backend, as the controller makes them
    # Each pod has the gates of the target groups that held its Service when it was made
    # (as upstream's webhook): the first group's only, if made before the second Ingress's
    # group existed, or both; none if made before the controller bound any.
    assert all({g["conditionType"] for g in p["spec"].get("readinessGates") or []} <= {
        f"target-health.elbv2.k8s.aws/{t}" for t in tgs} for p in pods), (
        tgs, [(p["metadata"]["name"], p["spec"].get("readinessGates")) for p in pods])
    out = kubectl(cfg, "rollout", "status", "deployment/web", "-n", ROLL, "--timeout=60s",
                  timeout=70)
    assert out.returncode == 0, out.stderr

    address = alb["AvailabilityZones"][0]["LoadBalancerAddresses"][0]["PrivateIPv4Address"]
    load = Load(f"http://{address}/")
    load.start()
    try:
        until(lambda: load.sent > 20, 20, "the load")
        srv.kill()  # the load balancer keeps serving; the next server finds it by its tags
        srv.start()
        kubectl_run(cfg, "set", "env", "deployment/web", "-n", ROLL, "REV=2")
        out = kubectl(cfg, "rollout", "status", "deployment/web", "-n", ROLL,
                      "--timeout=80s", timeout=90)
        assert out.returncode == 0, out.stderr
        until(lambda: "rev 2" in load.answers, 10, "the new pods' answers")
        time.sleep(1)
    finally:
        load.halt.set()
        load.join(10)
    assert load.failed == 0, (load.failed, load.sent, load.errors[:5])
    assert load.answers == {"rev 1", "rev 2"} and load.sent > 100, load.answers
    mine = [lb for lb in aws(srv, "describe-load-balancers")["LoadBalancers"]
            if lb["LoadBalancerName"].startswith("k8s-rollgroup-")]
    assert len(mine) == 1
    kubectl_run(cfg, "delete", "namespace", ROLL, "--timeout=60s")
    assert not [lb for lb in aws(srv, "describe-load-balancers")["LoadBalancers"]
                if lb["DNSName"] == dns]
