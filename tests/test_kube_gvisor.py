"""Pods on the gVisor tier, driven with kubectl: every cluster's RuntimeClasses, a pod with
runtimeClassName gvisor whose kernel is gVisor's (its log, kubectl exec in it), a Fargate
profile whose tag makes gvisor its pods' default, a runc pod beside them on the host kernel,
and the refusals: a pod naming a class that does not exist, RuntimeClasses fargo cannot run."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import FargoServers
from tests.test_kubectl import KUBECTL, ROLE, eks_cluster, kubectl, kubectl_run

NS, TAGGED = "sandboxed", "defaulted"
pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")
SHOW = "uname -r; trap 'exit 0' TERM; sleep 3600 & wait"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with FargoServers(tmp_path_factory.mktemp("kgv-state")) as servers:
        yield servers("--overcommit", "8")


@pytest.fixture(scope="module")
def cfg(srv, tmp_path_factory) -> Path:
    name, path = eks_cluster(srv, tmp_path_factory.mktemp("kgv"), [{"namespace": NS}],
                             [NS, TAGGED], "gv")
    eks = srv.client("eks")
    subnets = [s["SubnetId"] for s in srv.client("ec2").describe_subnets()["Subnets"]]
    eks.create_fargate_profile(clusterName=name, fargateProfileName="tagged",
                               podExecutionRoleArn=ROLE, subnets=subnets[:1],
                               selectors=[{"namespace": TAGGED}],
                               tags={"fargo.io/runtime-class": "gvisor"})
    deadline = time.time() + 10
    while eks.describe_fargate_profile(clusterName=name, fargateProfileName="tagged")[
            "fargateProfile"]["status"] != "ACTIVE":
        assert time.time() < deadline
        time.sleep(0.05)
    return path


def pod(name: str, image: str, ns: str = NS, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": image,
                                     "command": ["sh", "-c", SHOW]}], **spec}}


def running(cfg: Path, ns: str, name: str, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while True:
        obj = json.loads(kubectl_run(cfg, "get", "pod", "-n", ns, name, "-o", "json"))
        if (obj.get("status") or {}).get("phase") == "Running":
            return obj
        assert time.time() < deadline, obj.get("status")
        time.sleep(0.3)


def first_log_line(cfg: Path, ns: str, name: str) -> str:
    deadline = time.time() + 20
    while True:
        out = kubectl(cfg, "logs", "-n", ns, name).stdout.strip()
        if out:
            return out.splitlines()[0]
        assert time.time() < deadline
        time.sleep(0.2)


def test_runtime_classes_and_pods_in_each_tier(cfg, busybox_image) -> None:
    table = kubectl_run(cfg, "get", "runtimeclass")
    rows = {line.split()[0]: line.split()[1] for line in table.splitlines()[1:]}
    assert rows == {"gvisor": "runsc", "runc": "runc"}, table
    kubectl_run(cfg, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
        "items": [pod("boxed", busybox_image, runtimeClassName="gvisor"),
                  pod("plain", busybox_image, runtimeClassName="runc"),
                  pod("bydefault", busybox_image, ns=TAGGED)]}))
    host = os.uname().release
    boxed = running(cfg, NS, "boxed")
    assert boxed["metadata"]["annotations"]["fargo.io/sandbox"] == "gvisor"
    assert first_log_line(cfg, NS, "boxed") == "4.4.0" != host
    # kubectl exec reaches the container inside its own kernel.
    out = kubectl_run(cfg, "exec", "-n", NS, "boxed", "--", "sh", "-c",
                      "cat /proc/version; dmesg | head -1")
    assert "4.4.0" in out and "gVisor" in out, out
    plain = running(cfg, NS, "plain")
    assert plain["metadata"]["annotations"]["fargo.io/sandbox"] == "runc"
    assert first_log_line(cfg, NS, "plain") == host
    defaulted = running(cfg, TAGGED, "bydefault")
    assert defaulted["spec"]["runtimeClassName"] == "gvisor"
    assert defaulted["metadata"]["annotations"]["fargo.io/sandbox"] == "gvisor"
    assert first_log_line(cfg, TAGGED, "bydefault") == "4.4.0"
    kubectl_run(cfg, "delete", "pod", "-n", NS, "boxed", "plain", "--wait=false")
    kubectl_run(cfg, "delete", "pod", "-n", TAGGED, "bydefault", "--wait=false")


def test_refusals(cfg, busybox_image) -> None:
    out = kubectl(cfg, "apply", "-f", "-",
                  stdin=json.dumps(pod("nowhere", busybox_image, runtimeClassName="kata")))
    assert out.returncode != 0
    assert 'pods "nowhere" is forbidden: pod rejected: RuntimeClass "kata" not found' \
        in out.stderr, out.stderr
    for body, words in (
            ({"handler": "kata"}, 'Unsupported value: "kata"'),
            ({}, "handler: Required value"),
            ({"handler": "Not_A_Label"}, "a lowercase RFC 1123 label"),
            ({"handler": "runsc", "overhead": {"podFixed": {"memory": "64Mi"}}},
             "overhead: Forbidden: not supported on Fargate"),
            ({"handler": "runsc", "scheduling": {"nodeSelector": {"a": "b"}}},
             "scheduling: Forbidden")):
        out = kubectl(cfg, "apply", "-f", "-", stdin=json.dumps(
            {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
             "metadata": {"name": "mine"}, **body}))
        assert out.returncode != 0 and words in out.stderr, (body, out.stderr)
    # A class of the user's own naming a handler fargo runs is taken, and its handler stays.
    kubectl_run(cfg, "apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "mine"},
         "handler": "runsc"}))
    out = kubectl(cfg, "patch", "runtimeclass", "mine", "--type", "merge", "-p",
                  '{"handler": "runc"}')
    assert out.returncode != 0 and "field is immutable" in out.stderr, out.stderr
    kubectl_run(cfg, "delete", "runtimeclass", "mine")
