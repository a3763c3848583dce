"""Pods on Fargate driven by the real kubectl: an EKS cluster and profile made with boto3, a
kubeconfig from `fargo kubeconfig`, pods running in real runc sandboxes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import pytest
import requests

from tests.conftest import ROOT, FargoServer, FargoServers

KUBECTL = "/usr/bin/kubectl"
ROLE = "arn:aws:iam::000000000000:role/pods"
pytestmark = pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl is not installed")


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Iterator[FargoServer]:
    # Its own server: a 2 vCPU pod must fit beside whatever else the suite runs.
    with FargoServers(tmp_path_factory.mktemp("kube-state")) as servers:
        yield servers("--overcommit", "8")


@pytest.fixture(scope="module")
def eks(srv):
    return srv.client("eks")


@pytest.fixture(scope="module")
def subnets(srv) -> list[str]:
    return [s["SubnetId"] for s in srv.client("ec2").describe_subnets()["Subnets"]]


@pytest.fixture(scope="module")
def cluster(eks, subnets) -> str:
    name = "k" + uuid.uuid4().hex[:8]
    eks.create_cluster(name=name, roleArn="arn:aws:iam::000000000000:role/eks",
                       resourcesVpcConfig={"subnetIds": subnets})
    make_profile(eks, name, "web", [{"namespace": "apps", "labels": {"tier": "web"}}],
                 subnets[:1])
    return name


def make_profile(eks, cluster: str, name: str, selectors: list, subnets: list) -> None:
    eks.create_fargate_profile(clusterName=cluster, fargateProfileName=name,
                               podExecutionRoleArn=ROLE, subnets=subnets, selectors=selectors)
    deadline = time.time() + 10
    while eks.describe_fargate_profile(clusterName=cluster, fargateProfileName=name)[
            "fargateProfile"]["status"] != "ACTIVE":
        assert time.time() < deadline
        time.sleep(0.05)


def write_kubeconfig(srv: FargoServer, cluster: str, path: Path) -> Path:
    """`fargo kubeconfig CLUSTER` written to path."""
    out = subprocess.run([sys.executable, "-m", "fargo", "kubeconfig", cluster, "--endpoint",
                          srv.endpoint], capture_output=True, text=True, cwd=ROOT,
                         env=srv.env(), timeout=30)
    assert out.returncode == 0, out.stderr
    path.write_text(out.stdout)
    return path


def eks_cluster(srv: FargoServer, base: Path, selectors: list, namespaces: list[str],
                prefix: str = "c", profile: str = "fargate") -> tuple[str, Path]:
    """A new EKS cluster over every subnet, one Fargate profile with these selectors on the
    first subnet, the namespaces made, and its kubeconfig at base/config."""
    eks = srv.client("eks")
    subnets = [s["SubnetId"] for s in srv.client("ec2").describe_subnets()["Subnets"]]
    name = prefix + uuid.uuid4().hex[:8]
    eks.create_cluster(name=name, roleArn="arn:aws:iam::000000000000:role/eks",
                       resourcesVpcConfig={"subnetIds": subnets})
    make_profile(eks, name, profile, selectors, subnets[:1])
    path = write_kubeconfig(srv, name, base / "config")
    for ns in namespaces:
        kubectl_run(path, "create", "namespace", ns)
    return name, path


@pytest.fixture(scope="module")
def kubeconfig(srv, cluster, tmp_path_factory) -> Path:
    path = write_kubeconfig(srv, cluster, tmp_path_factory.mktemp("kube") / "config")
    kubectl_run(path, "create", "namespace", "apps")
    return path


def kubectl(config: Path, *args: str, stdin: str | None = None,
            timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(config), *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def kubectl_run(config: Path, *args: str, stdin: str | None = None) -> str:
    out = kubectl(config, *args, stdin=stdin)
    assert out.returncode == 0, out.stderr
    return out.stdout


def pod_yaml(name: str, image: str, ns: str = "apps", labels: dict | None = None,
             script: str = "sleep 3600", **spec) -> str:
    body = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {"tier": "web"}},
            "spec": {"terminationGracePeriodSeconds": 3,
                     "containers": [{"name": "app", "image": image,
                                     "command": ["sh", "-c", script]}], **spec}}
    return json.dumps(body)


def wait_for(config: Path, name: str, path: str, want: str, ns: str = "apps",
             timeout: float = 30) -> dict:
    deadline = time.time() + timeout
    while True:
        got = json.loads(kubectl_run(config, "get", "pod", name, "-n", ns, "-o", "json"))
        value = got
        for key in path.split("."):
            value = value.get(key, {}) if isinstance(value, dict) else {}
        if value == want or (want == "*" and value not in ({}, None, "")):
            return got
        assert time.time() < deadline, f"{path} never became {want}: {got.get('status')}"
        time.sleep(0.1)


def wait_deleted(config: Path, kind: str, name: str, ns: str | None = "apps",
                 timeout: float = 30) -> None:
    deadline = time.time() + timeout
    args = ["get", kind, name] + (["-n", ns] if ns else [])
    while kubectl(config, *args).returncode == 0:
        assert time.time() < deadline, f"{kind} {name} still there"
        time.sleep(0.1)


TICKER = ("echo hello from pod; trap 'echo bye; exit 0' TERM; i=0; "
          "while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")


def test_pod_on_fargate_end_to_end(kubeconfig, busybox_image):
    watch = subprocess.Popen([KUBECTL, "--kubeconfig", str(kubeconfig), "get", "pods", "-n",
                              "apps", "-w"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    body = json.loads(pod_yaml("web", busybox_image, script=TICKER))
    body["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1", "memory": "8Gi"}}
    out = kubectl_run(kubeconfig, "apply", "-f", "-", stdin=json.dumps(body))
    assert "pod/web created" in out
    pod = wait_for(kubeconfig, "web", "status.phase", "Running")
    assert pod["spec"]["schedulerName"] == "fargate-scheduler"
    assert pod["metadata"]["labels"]["eks.amazonaws.com/fargate-profile"] == "web"
    ip, node = pod["status"]["podIP"], pod["spec"]["nodeName"]
    assert node == f"fargate-ip-{ip.replace('.', '-')}.us-east-1.compute.internal"
    assert pod["status"]["hostIP"] == ip
    assert pod["status"]["containerStatuses"][0]["state"]["running"]
    wide = kubectl_run(kubeconfig, "get", "pods", "-n", "apps", "-o", "wide")
    row = next(line for line in wide.splitlines() if line.startswith("web "))
    assert "Running" in row and node in row and ip in row and "1/1" in row
    assert kubectl_run(kubeconfig, "get", "pod", "web", "-n", "apps", "-o",
                       "jsonpath={.metadata.annotations.CapacityProvisioned}") == "2vCPU 9GB"
    # Its node: one per pod, Fargate's label and taint, capacity = what was provisioned.
    n = json.loads(kubectl_run(kubeconfig, "get", "node", node, "-o", "json"))
    assert n["metadata"]["labels"]["eks.amazonaws.com/compute-type"] == "fargate"
    assert n["spec"]["taints"] == [{"key": "eks.amazonaws.com/compute-type",
                                    "value": "fargate", "effect": "NoSchedule"}]
    assert n["status"]["capacity"]["cpu"] == "2" and n["status"]["capacity"]["memory"] == "9216Mi"
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    assert node in kubectl_run(kubeconfig, "get", "nodes", "-l",
                               "eks.amazonaws.com/compute-type=fargate")
    # Field selectors as `describe node` uses them.
    listed = kubectl_run(kubeconfig, "get", "pods", "-A", "--field-selector",
                         f"spec.nodeName={node},status.phase!=Failed", "-o", "name")
    assert listed.strip() == "pod/web"
    assert "No resources found" in kubectl(kubeconfig, "get", "pods", "-n", "apps",
                                           "--field-selector", "status.phase=Pending").stderr
    # Applying again changes nothing; a label change is a PATCH; a spec change is refused.
    assert "unchanged" in kubectl_run(kubeconfig, "apply", "-f", "-", stdin=json.dumps(body))
    body["metadata"]["labels"]["extra"] = "yes"
    assert "configured" in kubectl_run(kubeconfig, "apply", "-f", "-", stdin=json.dumps(body))
    assert "extra=yes" in kubectl_run(kubeconfig, "get", "pod", "web", "-n", "apps",
                                      "--show-labels")
    body["spec"]["containers"][0]["command"] = ["sh", "-c", "true"]
    refused = kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(body))
    assert refused.returncode != 0 and "is invalid" in refused.stderr
    described = kubectl_run(kubeconfig, "describe", "pod", "web", "-n", "apps")
    assert "Successfully assigned apps/web to " + node in described
    assert "fargate-scheduler" in described
    yaml_out = kubectl_run(kubeconfig, "get", "pod", "web", "-n", "apps", "-o", "yaml")
    assert "CapacityProvisioned: 2vCPU 9GB" in yaml_out
    # Logs: whole, tail, timestamps, and a follow that ends when the pod does.
    assert "hello from pod" in kubectl_run(kubeconfig, "logs", "-n", "apps", "web")
    tail = kubectl_run(kubeconfig, "logs", "-n", "apps", "web", "--tail=2")
    assert len(tail.splitlines()) == 2 and tail.startswith("tick")
    stamped = kubectl_run(kubeconfig, "logs", "-n", "apps", "web", "--timestamps",
                          "-c", "app").splitlines()[0]
    assert stamped.split(" ", 1)[0][:4].isdigit() and stamped.endswith("hello from pod")
    follow = subprocess.Popen([KUBECTL, "--kubeconfig", str(kubeconfig), "logs", "-f", "-n",
                               "apps", "web"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    out = kubectl_run(kubeconfig, "delete", "pod", "web", "-n", "apps")
    assert 'pod "web" deleted' in out
    followed, _ = follow.communicate(timeout=20)
    assert "hello from pod" in followed and followed.rstrip().endswith("bye")
    wait_deleted(kubeconfig, "pod", "web")
    wait_deleted(kubeconfig, "node", node, ns=None)
    watch.terminate()
    seen, _ = watch.communicate(timeout=10)
    states = [line.split()[2] for line in seen.splitlines()[1:] if line.startswith("web ")]
    assert "Running" in states and "Terminating" in states, seen


def test_unmatched_pod_waits_for_a_profile(kubeconfig, eks, cluster, subnets, busybox_image):
    kubectl_run(kubeconfig, "create", "namespace", "late")
    kubectl_run(kubeconfig, "apply", "-f", "-",
                stdin=pod_yaml("lonely", busybox_image, ns="late", labels={"app": "x"},
                               script="trap 'exit 0' TERM; sleep 3600 & wait"))
    deadline = time.time() + 10
    while "FailedScheduling" not in (ev := kubectl_run(kubeconfig, "get", "events", "-n",
                                                       "late")):
        assert time.time() < deadline, ev
        time.sleep(0.1)
    assert "Warning" in ev and "no ACTIVE Fargate profile" in ev
    time.sleep(0.5)
    assert wait_for(kubeconfig, "lonely", "status.phase", "Pending", ns="late")["spec"].get(
        "nodeName") is None
    # A profile made later picks it up.
    make_profile(eks, cluster, "late", [{"namespace": "la?e", "labels": {"app": "*"}}],
                 subnets[1:2])
    pod = wait_for(kubeconfig, "lonely", "status.phase", "Running", ns="late")
    assert pod["metadata"]["labels"]["eks.amazonaws.com/fargate-profile"] == "late"
    # Deleting the profile stops the pod; it goes back to Pending, its node away.
    node = pod["spec"]["nodeName"]
    eks.delete_fargate_profile(clusterName=cluster, fargateProfileName="late")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        make_profile(eks, cluster, "late2", [{"namespace": "late"}], subnets[:1])
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"
    pod = wait_for(kubeconfig, "lonely", "status.phase", "Pending", ns="late")
    assert not pod["spec"].get("nodeName")
    wait_deleted(kubeconfig, "node", node, ns=None)
    kubectl_run(kubeconfig, "delete", "pod", "lonely", "-n", "late", "--wait=false")
    wait_deleted(kubeconfig, "pod", "lonely", ns="late")


def test_restart_policies_init_containers_and_oom(kubeconfig, busybox_image):
    body = json.loads(pod_yaml("flaky", busybox_image, script="echo run; sleep 0.2; exit 1",
                               restartPolicy="OnFailure"))
    body["spec"]["initContainers"] = [
        {"name": "first", "image": busybox_image, "command": ["sh", "-c", "echo one"]},
        {"name": "second", "image": busybox_image, "command": ["sh", "-c", "echo two"]}]
    kubectl_run(kubeconfig, "apply", "-f", "-", stdin=json.dumps(body))
    never = json.loads(pod_yaml("once", busybox_image, script="exit 3", restartPolicy="Never"))
    oom = json.loads(pod_yaml("hog", busybox_image, restartPolicy="Never",
                              script="x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo $x"))
    oom["spec"]["containers"][0]["resources"] = {"limits": {"memory": "32Mi"}}
    done = json.loads(pod_yaml("done", busybox_image, script="echo fine", restartPolicy="Never"))
    for b in (never, oom, done):
        kubectl_run(kubeconfig, "apply", "-f", "-", stdin=json.dumps(b))
    deadline = time.time() + 40
    while True:
        pod = json.loads(kubectl_run(kubeconfig, "get", "pod", "flaky", "-n", "apps", "-o",
                                     "json"))
        cs = (pod["status"].get("containerStatuses") or [{}])[0]
        if cs.get("restartCount", 0) >= 2:
            break
        assert time.time() < deadline, pod["status"]
        time.sleep(0.2)
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    inits = pod["status"]["initContainerStatuses"]
    assert [s["state"]["terminated"]["reason"] for s in inits] == ["Completed", "Completed"]
    assert kubectl_run(kubeconfig, "logs", "flaky", "-n", "apps", "-c", "second") == "two\n"
    assert wait_for(kubeconfig, "done", "status.phase", "Succeeded")
    pod = wait_for(kubeconfig, "once", "status.phase", "Failed")
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    pod = wait_for(kubeconfig, "hog", "status.phase", "Failed")
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "OOMKilled"
    listed = kubectl_run(kubeconfig, "get", "pods", "-n", "apps")
    assert "Completed" in listed and "OOMKilled" in listed
    kubectl_run(kubeconfig, "delete", "pod", "flaky", "once", "hog", "done", "-n", "apps",
                "--grace-period=0", "--force")
    for name in ("flaky", "once", "hog", "done"):
        wait_deleted(kubeconfig, "pod", name)


def test_bad_input_gets_kubernetes_errors(kubeconfig, srv, cluster, busybox_image):
    bad_name = kubectl(kubeconfig, "apply", "-f", "-",
                       stdin=pod_yaml("Bad_Name", busybox_image))
    assert bad_name.returncode != 0 and "is invalid" in bad_name.stderr
    no_image = json.loads(pod_yaml("noimage", busybox_image))
    del no_image["spec"]["containers"][0]["image"]
    out = kubectl(kubeconfig, "create", "-f", "-", stdin=json.dumps(no_image))
    assert out.returncode != 0 and "spec.containers[0].image: Required value" in out.stderr
    host = pod_yaml("hostnet", busybox_image, hostNetwork=True)
    out = kubectl(kubeconfig, "apply", "-f", "-", stdin=host)
    assert "Pod not supported on Fargate: fields not supported: HostNetwork" in out.stderr
    kubectl_run(kubeconfig, "create", "-f", "-", stdin=pod_yaml("twice", busybox_image))
    out = kubectl(kubeconfig, "create", "-f", "-", stdin=pod_yaml("twice", busybox_image))
    assert out.returncode != 0 and "AlreadyExists" in out.stderr
    kubectl_run(kubeconfig, "delete", "pod", "twice", "-n", "apps", "--grace-period=0",
                "--force")
    out = kubectl(kubeconfig, "get", "pod", "nothere", "-n", "apps")
    assert 'pods "nothere" not found' in out.stderr
    out = kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}))
    assert out.returncode != 0
    base = f"{srv.endpoint}/eks/{cluster}"
    cases = [("GET", "/api/v1/widgets", None, 404, "NotFound"),
             ("GET", "/apis/apps/v1/widgets", None, 404, "NotFound"),
             ("GET", "/apis/example.com/v1", None, 404, "NotFound"),
             ("POST", "/api/v1/namespaces/apps/pods", b"{nope", 400, "BadRequest"),
             ("POST", "/api/v1/namespaces/apps/pods", b'{"kind": "Service"}', 400,
              "BadRequest"),
             ("POST", "/api/v1/namespaces/apps/pods", b"[1, 2]", 400, "BadRequest"),
             ("POST", "/api/v1/namespaces/apps/pods",
              b'{"metadata": {"name": "x"}, "spec": {"containers": "no"}}', 400,
              "BadRequest"),  # the apiserver's decode refuses it before validation
             ("PUT", "/api/v1/nodes/n1", b"{}", 405, "MethodNotAllowed"),
             ("PUT", "/api/v1/namespaces/apps/pods", b"{}", 405, "MethodNotAllowed"),
             ("GET", "/api/v1/pods?labelSelector=a%20in%20(", None, 400, "BadRequest"),
             ("GET", "/api/v1/pods?fieldSelector=spec.foo%3D1", None, 400, "BadRequest"),
             ("GET", "/api/v1/namespaces/apps/pods/x/log", None, 404, "NotFound"),
             ("PATCH", "/api/v1/namespaces/default", b"{}", 415, "UnsupportedMediaType")]
    import yaml

    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    for method, path, data, code, reason in cases:
        r = requests.request(method, base + path, data=data, timeout=5,
                             headers={"Content-Type": "application/json",
                                      "Authorization": f"Bearer {token}"})
        assert r.status_code == code, (method, path, r.text)
        body = r.json()
        assert body["kind"] == "Status" and body["reason"] == reason, body
    r = requests.get(f"{srv.endpoint}/eks/nosuch/api/v1/pods", timeout=5,
                     headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json()["kind"] == "Status"  # no token of its own
    # Nothing stored was lost on the way.
    assert "apps" in kubectl_run(kubeconfig, "get", "namespaces")


def test_kube_api_wants_the_clusters_bearer_token(srv, cluster, kubeconfig, tmp_path):
    """Without the token `fargo kubeconfig` wrote, kubectl and raw HTTP are refused with 401."""
    import requests
    import yaml

    doc = yaml.safe_load(kubeconfig.read_text())
    token = doc["users"][0]["user"]["token"]
    assert token.startswith("fargo.") and len(token) > 30
    doc["users"][0]["user"]["token"] = token[:-4] + "AAAA"
    forged = tmp_path / "forged"
    forged.write_text(yaml.safe_dump(doc))
    out = kubectl(forged, "get", "pods", "-n", "apps")
    assert out.returncode != 0 and "Unauthorized" in out.stderr
    import base64

    base = doc["clusters"][0]["cluster"]["server"]
    assert base.startswith("https://")  # kubectl sends tokens only over TLS
    ca = tmp_path / "ca.pem"
    ca.write_bytes(base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]))
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": token}):
        r = requests.get(f"{base}/api/v1/namespaces", headers=headers, timeout=10, verify=ca)
        assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"
    r = requests.get(f"{srv.endpoint}/eks/no-such-cluster/api/v1/namespaces",
                     headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 401  # another cluster's token opens nothing, not even a 404
    ok = requests.get(f"{base}/api/v1/namespaces", headers={"Authorization": f"Bearer {token}"},
                      timeout=10, verify=ca)
    assert ok.status_code == 200 and "apps" in ok.text
    # The token itself is only handed out on a signed request.
    r = requests.get(f"{srv.endpoint}/fargo/v1/eks/{cluster}/token", timeout=10)
    assert r.status_code == 403 and "token" not in r.json()
