"""`kubectl apply -k` and `delete -k` (kubectl's built-in kustomize) of what an EKS user ships:
a ConfigMap from a generator (its name gets a content hash), a ServiceAccount and a
Deployment whose pods read the ConfigMap and expand `$(VAR)` references, rolled out on Fargate;
then all of it deleted, pods included."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import FargoServers
from tests.test_deployments import NS, make_cluster
from tests.test_kubectl import KUBECTL, kubectl, kubectl_run

pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    with FargoServers(tmp_path_factory.mktemp("kustomize-state")) as servers:
        srv = servers("--overcommit", "8")
        yield make_cluster(srv, tmp_path_factory.mktemp("kube"))[1]


def write_app(base: Path, image: str, greeting: str) -> Path:
    app = base / "app"
    app.mkdir(exist_ok=True)
    (app / "kustomization.yaml").write_text(json.dumps({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": NS, "commonLabels": {"tier": "web"},
        "configMapGenerator": [{"name": "settings", "literals": [f"GREETING={greeting}"]}],
        "resources": ["sa.yaml", "deploy.yaml"]}))
    (app / "sa.yaml").write_text(json.dumps({
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web"}}))
    (app / "deploy.yaml").write_text(json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "serviceAccountName": "web", "terminationGracePeriodSeconds": 2,
                     "containers": [{
                         "name": "app", "image": image,
                         "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {
                                     "name": "settings", "key": "GREETING"}}},
                                 {"name": "NAME", "valueFrom": {"fieldRef": {
                                     "fieldPath": "metadata.name"}}}],
                         "command": ["sh", "-c"],
                         "args": ["echo $(GREETING) from $(NAME); trap 'exit 0' TERM; "
                                  "sleep 3600 & wait"]}]}}}}))
    return app


def pods(cfg: Path) -> list[dict]:
    return json.loads(kubectl_run(cfg, "get", "pods", "-n", NS, "-l", "app=web",
                                  "-o", "json"))["items"]


def test_apply_k_rolls_out_and_delete_k_removes_it(cfg, busybox_image, tmp_path):
    app = write_app(tmp_path, busybox_image, "hello")
    out = kubectl(cfg, "apply", "-k", str(app))
    assert out.returncode == 0, out.stderr
    assert "serviceaccount/web created" in out.stdout and "deployment.apps/web created" in out.stdout
    cms = json.loads(kubectl_run(cfg, "get", "configmaps", "-n", NS, "-o", "json"))["items"]
    generated = [c["metadata"]["name"] for c in cms if c["metadata"]["name"].startswith("settings-")]
    assert len(generated) == 1  # kustomize's name-hash suffix
    status = kubectl(cfg, "rollout", "status", "deployment/web", "-n", NS, "--timeout", "90s",
                     timeout=100)
    assert status.returncode == 0, status.stderr + status.stdout
    deadline = time.time() + 30
    for pod in pods(cfg):
        name = pod["metadata"]["name"]
        while f"hello from {name}" not in kubectl(cfg, "logs", "-n", NS, name).stdout:
            assert time.time() < deadline, kubectl(cfg, "logs", "-n", NS, name).stdout
            time.sleep(0.2)
        assert pod["spec"]["serviceAccountName"] == "web"

    # A new literal is a new ConfigMap name, so the Deployment rolls to pods that read it.
    write_app(tmp_path, busybox_image, "again")
    assert kubectl(cfg, "apply", "-k", str(app)).returncode == 0
    status = kubectl(cfg, "rollout", "status", "deployment/web", "-n", NS, "--timeout", "90s",
                     timeout=100)
    assert status.returncode == 0, status.stderr + status.stdout
    deadline = time.time() + 30
    while not all("again from" in kubectl(cfg, "logs", "-n", NS, p["metadata"]["name"]).stdout
                  for p in pods(cfg) if not p["metadata"].get("deletionTimestamp")):
        assert time.time() < deadline
        time.sleep(0.2)

    out = kubectl(cfg, "delete", "-k", str(app))
    assert out.returncode == 0, out.stderr
    deadline = time.time() + 60
    while pods(cfg) or kubectl(cfg, "get", "replicasets", "-n", NS, "-o", "name").stdout.strip():
        assert time.time() < deadline, "the Deployment's ReplicaSets and pods are still there"
        time.sleep(0.3)
    assert kubectl(cfg, "get", "serviceaccount", "web", "-n", NS).returncode != 0
