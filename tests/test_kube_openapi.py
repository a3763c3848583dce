"""The API machinery kubectl leans on, driven by the real kubectl against a fargo server:
OpenAPI v3 for `kubectl explain` and server-side field validation, strategic merge patches,
and server-side apply. ConfigMaps carry the writes (no pod has to run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, FargoServer, FargoServers

KUBECTL = "/usr/bin/kubectl"
pytestmark = pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl is not installed")


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Iterator[FargoServer]:
    with FargoServers(tmp_path_factory.mktemp("kube-openapi")) as servers:
        yield servers()


@pytest.fixture(scope="module")
def cluster(srv) -> str:
    eks = srv.client("eks")
    subnets = [s["SubnetId"] for s in srv.client("ec2").describe_subnets()["Subnets"]]
    name = "o" + uuid.uuid4().hex[:8]
    eks.create_cluster(name=name, roleArn="arn:aws:iam::000000000000:role/eks",
                       resourcesVpcConfig={"subnetIds": subnets})
    yield name
    for profile in eks.list_fargate_profiles(clusterName=name)["fargateProfileNames"]:
        eks.delete_fargate_profile(clusterName=name, fargateProfileName=profile)
    deadline = time.time() + 60
    while eks.list_fargate_profiles(clusterName=name)["fargateProfileNames"]:
        assert time.time() < deadline
        time.sleep(0.2)
    eks.delete_cluster(name=name)


@pytest.fixture(scope="module")
def kubeconfig(srv, cluster, tmp_path_factory) -> Path:
    out = subprocess.run([sys.executable, "-m", "fargo", "kubeconfig", cluster, "--endpoint",
                          srv.endpoint], capture_output=True, text=True, cwd=ROOT,
                         env=srv.env(), timeout=30)
    assert out.returncode == 0, out.stderr
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(out.stdout)
    return path


@pytest.fixture
def ns(kubeconfig) -> Iterator[str]:
    name = "t" + uuid.uuid4().hex[:8]
    run(kubeconfig, "create", "namespace", name)
    yield name
    kubectl(kubeconfig, "delete", "namespace", name, "--wait=false")


def kubectl(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(config), *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def run(config: Path, *args: str, stdin: str | None = None) -> str:
    out = kubectl(config, *args, stdin=stdin)
    assert out.returncode == 0, out.stderr
    return out.stdout


def configmap(name: str, ns: str, data: dict, **meta) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": name, "namespace": ns, **meta}, "data": data})


def test_openapi_v3_documents(srv, cluster, kubeconfig):
    token = [ln.split("token:")[1].strip() for ln in kubeconfig.read_text().splitlines()
             if "token:" in ln]
    headers = {"Authorization": f"Bearer {token[0]}"} if token else {}
    base = f"{srv.endpoint}/eks/{cluster}"
    index = requests.get(f"{base}/openapi/v3", headers=headers, verify=False, timeout=10)
    assert index.status_code == 200, index.text
    url = index.json()["paths"]["api/v1"]["serverRelativeURL"]
    assert url.startswith(f"/eks/{cluster}/openapi/v3/api/v1?hash=")
    doc = requests.get(srv.endpoint + url, headers=headers, verify=False, timeout=10).json()
    pod = doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod",
                                                       "version": "v1"}]
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"]
    assert {"fieldValidation", "dryRun", "fieldManager", "force"} <= {
        p["name"] for p in patch["parameters"]}
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    missing = requests.get(f"{base}/openapi/v3/apis/nothing/v1", headers=headers,
                           verify=False, timeout=10)
    assert missing.status_code == 404 and missing.json()["kind"] == "Status"


def test_explain(kubeconfig):
    out = run(kubeconfig, "explain", "pods.spec.containers")
    assert "KIND:       Pod" in out and "VERSION:    v1" in out
    assert "FIELD: containers <[]Container>" in out
    assert "image\t<string>" in out and "name\t<string> -required-" in out
    out = run(kubeconfig, "explain", "pods.spec.containers.resources.limits")
    assert "<map[string]Quantity>" in out
    out = run(kubeconfig, "explain", "configmap")
    assert "data\t<map[string]string>" in out
    refused = kubectl(kubeconfig, "explain", "pods.spec.nothing")
    assert refused.returncode != 0 and 'field "nothing" does not exist' in refused.stderr


def test_explain_deployment(kubeconfig):
    if "deployments" not in run(kubeconfig, "api-resources", "--api-group=apps", "-o", "name"):
        pytest.skip("apps/v1 Deployment is not served yet")
    out = run(kubeconfig, "explain", "deployment.spec.strategy")
    assert "GROUP:      apps" in out and "FIELD: strategy <DeploymentStrategy>" in out
    assert "rollingUpdate\t<RollingUpdateDeployment>" in out


def test_apply_validates_on_the_server(kubeconfig, ns):
    body = json.loads(configmap("v", ns, {"a": "1"}))
    body["spec"] = {"x": 1}
    body["metadata"]["colour"] = "red"
    refused = kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(body))
    assert refused.returncode != 0
    assert ('ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding '
            'error: unknown field "metadata.colour", unknown field "spec"') in refused.stderr
    assert "failed to download openapi" not in refused.stderr
    assert kubectl(kubeconfig, "get", "configmap", "v", "-n", ns).returncode != 0
    # Warn: created without the unknown fields, and the warnings printed
    out = kubectl(kubeconfig, "apply", "--validate=warn", "-f", "-", stdin=json.dumps(body))
    assert out.returncode == 0, out.stderr
    assert 'Warning: unknown field "metadata.colour"' in out.stderr
    got = json.loads(run(kubeconfig, "get", "configmap", "v", "-n", ns, "-o", "json"))
    assert "spec" not in got and "colour" not in got["metadata"]
    # a wrong type is never accepted
    body = json.loads(configmap("w", ns, {"a": "1"}))
    body["data"] = ["a"]
    refused = kubectl(kubeconfig, "apply", "--validate=false", "-f", "-",
                      stdin=json.dumps(body))
    assert refused.returncode != 0 and "cannot unmarshal array" in refused.stderr
    # a patch that adds an unknown field: kubectl patch asks for nothing, so the
    # apiserver's default (Warn) drops it and says so
    out = kubectl(kubeconfig, "patch", "configmap", "v", "-n", ns, "-p",
                  '{"data": {"b": "2"}, "extra": 1}')
    assert out.returncode == 0 and 'Warning: unknown field "extra"' in out.stderr
    got = json.loads(run(kubeconfig, "get", "configmap", "v", "-n", ns, "-o", "json"))
    assert got["data"] == {"a": "1", "b": "2"} and "extra" not in got


def test_strategic_merge_patch_by_kubectl(kubeconfig, ns):
    run(kubeconfig, "apply", "-f", "-", stdin=configmap(
        "s", ns, {"a": "1"}, finalizers=["example.com/a"], labels={"x": "1"}))
    run(kubeconfig, "patch", "configmap", "s", "-n", ns, "-p",
        '{"metadata": {"finalizers": ["example.com/b"], "labels": {"x": null, "y": "2"}}}')
    got = json.loads(run(kubeconfig, "get", "configmap", "s", "-n", ns, "-o", "json"))
    # merged as a set; the patch's items first, as the apiserver orders them
    assert got["metadata"]["finalizers"] == ["example.com/b", "example.com/a"]
    assert got["metadata"]["labels"] == {"y": "2"}
    run(kubeconfig, "patch", "configmap", "s", "-n", ns, "-p",
        '{"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a", '
        '"example.com/b"]}}')
    got = json.loads(run(kubeconfig, "get", "configmap", "s", "-n", ns, "-o", "json"))
    assert not got["metadata"].get("finalizers")
    # client-side apply computes its patch from the served OpenAPI
    run(kubeconfig, "apply", "-f", "-", stdin=configmap("s", ns, {"a": "2"}))
    got = json.loads(run(kubeconfig, "get", "configmap", "s", "-n", ns, "-o", "json"))
    assert got["data"] == {"a": "2"}


def _managers(obj: dict) -> dict[tuple[str, str], dict]:
    return {(m["manager"], m["operation"]): m["fieldsV1"]
            for m in obj["metadata"].get("managedFields") or []}


def test_server_side_apply(kubeconfig, ns):
    cm = configmap("ssa", ns, {"a": "1", "b": "2"}, labels={"team": "x"})
    out = run(kubeconfig, "apply", "--server-side", "-f", "-", stdin=cm)
    assert "serverside-applied" in out
    got = json.loads(run(kubeconfig, "get", "cm", "ssa", "-n", ns, "-o", "json",
                         "--show-managed-fields"))
    owned = _managers(got)[("kubectl", "Apply")]
    assert owned == {"f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {
        "f:team": {}}}}
    # another manager changes a field kubectl applied: it takes it over
    run(kubeconfig, "patch", "cm", "ssa", "-n", ns, "--field-manager=editor", "-p",
        '{"data": {"a": "changed"}}')
    got = json.loads(run(kubeconfig, "get", "cm", "ssa", "-n", ns, "-o", "json",
                         "--show-managed-fields"))
    assert _managers(got)[("editor", "Update")] == {"f:data": {"f:a": {}}}
    # applying the old value again is a conflict naming the field and the manager
    out = kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=cm)
    assert out.returncode != 0
    assert ('Apply failed with 1 conflict: conflict with "editor" using v1: .data.a'
            in out.stderr), out.stderr
    # forced, kubectl owns it again; a field it stops applying goes
    cm2 = configmap("ssa", ns, {"a": "1"}, labels={"team": "x"})
    run(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=cm2)
    got = json.loads(run(kubeconfig, "get", "cm", "ssa", "-n", ns, "-o", "json",
                         "--show-managed-fields"))
    assert got["data"] == {"a": "1"}
    assert ("editor", "Update") not in _managers(got)
    # a field another manager set survives an apply that never named it
    run(kubeconfig, "patch", "cm", "ssa", "-n", ns, "--field-manager=editor", "-p",
        '{"data": {"c": "3"}}')
    run(kubeconfig, "apply", "--server-side", "-f", "-",
        stdin=configmap("ssa", ns, {"a": "1"}))
    got = json.loads(run(kubeconfig, "get", "cm", "ssa", "-n", ns, "-o", "json"))
    assert got["data"] == {"a": "1", "c": "3"} and "labels" not in got["metadata"]
    # server-side dry run writes nothing
    run(kubeconfig, "apply", "--server-side", "--dry-run=server", "-f", "-",
        stdin=configmap("ssa", ns, {"a": "dry"}))
    got = json.loads(run(kubeconfig, "get", "cm", "ssa", "-n", ns, "-o", "json"))
    assert got["data"]["a"] == "1"
    # unknown fields are refused whatever fieldValidation says
    body = json.loads(configmap("ssa", ns, {"a": "1"}))
    body["extra"] = True
    out = kubectl(kubeconfig, "apply", "--server-side", "--validate=false", "-f", "-",
                  stdin=json.dumps(body))
    assert out.returncode != 0 and ".extra: field not declared in schema" in out.stderr


def test_managed_fields_on_every_write(kubeconfig, ns):
    run(kubeconfig, "create", "-f", "-", stdin=configmap("mf", ns, {"a": "1"}))
    got = json.loads(run(kubeconfig, "get", "cm", "mf", "-n", ns, "-o", "json",
                         "--show-managed-fields"))
    entry = got["metadata"]["managedFields"][0]
    assert entry["manager"] == "kubectl-create" and entry["operation"] == "Update"
    assert entry["fieldsType"] == "FieldsV1" and entry["apiVersion"] == "v1"
    assert entry["fieldsV1"] == {"f:data": {".": {}, "f:a": {}}}
    assert entry["time"].endswith("Z")
    # client-side apply over it, then server-side apply takes the fields over
    run(kubeconfig, "apply", "-f", "-", stdin=configmap("mf", ns, {"a": "1", "b": "2"}))
    got = json.loads(run(kubeconfig, "get", "cm", "mf", "-n", ns, "-o", "json",
                         "--show-managed-fields"))
    assert ("kubectl-client-side-apply", "Update") in _managers(got)
    run(kubeconfig, "apply", "--server-side", "-f", "-",
        stdin=configmap("mf", ns, {"a": "1", "b": "2"}))
    got = json.loads(run(kubeconfig, "get", "cm", "mf", "-n", ns, "-o", "json",
                         "--show-managed-fields"))
    assert ("kubectl", "Apply") in _managers(got)
    assert got["data"] == {"a": "1", "b": "2"}


def test_openapi_v2_for_lists(kubeconfig, ns):
    """A `kind: List` (what `kubectl get -o yaml` writes) is validated client-side from
    OpenAPI v2, which kubectl reads as protobuf."""
    items = [json.loads(configmap(f"l{i}", ns, {"a": str(i)})) for i in range(2)]
    body = {"apiVersion": "v1", "kind": "List", "items": items}
    out = run(kubeconfig, "apply", "-f", "-", stdin=json.dumps(body))
    assert "configmap/l0 created" in out and "configmap/l1 created" in out
    items[1]["datum"] = {}
    refused = kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(body))
    assert refused.returncode != 0 and 'unknown field "datum"' in refused.stderr
    out = run(kubeconfig, "explain", "pods.spec.restartPolicy",
              "--output=plaintext-openapiv2")
    assert "FIELD:    restartPolicy <string>" in out


def deployment(ns: str, image: str, *extra: dict, replicas: int = 1) -> str:
    containers = [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}, *extra]
    return json.dumps({"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": "web", "namespace": ns},
                       "spec": {"replicas": replicas,
                                "selector": {"matchLabels": {"app": "web"}},
                                "template": {"metadata": {"labels": {"app": "web"}},
                                             "spec": {"containers": containers}}}})


def test_deployments_patched_and_applied(kubeconfig, ns):
    if "deployments" not in run(kubeconfig, "api-resources", "--api-group=apps", "-o", "name"):
        pytest.skip("apps/v1 Deployment is not served yet")
    run(kubeconfig, "apply", "-f", "-", stdin=deployment(ns, "nginx:1"))
    # client-side apply: a strategic merge patch built from the served schema
    side = {"name": "side", "image": "busybox"}
    run(kubeconfig, "apply", "-f", "-", stdin=deployment(ns, "nginx:2", side))
    got = json.loads(run(kubeconfig, "get", "deploy", "web", "-n", ns, "-o", "json"))
    containers = got["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("web", "nginx:2"),
                                                             ("side", "busybox")]
    run(kubeconfig, "set", "image", "deployment/web", "-n", ns, "side=busybox:2")
    got = json.loads(run(kubeconfig, "get", "deploy", "web", "-n", ns, "-o", "json"))
    assert got["spec"]["template"]["spec"]["containers"][1]["image"] == "busybox:2"
    assert got["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
    # server-side apply takes over from client-side apply; scale's write is its own manager
    run(kubeconfig, "apply", "--server-side", "-f", "-",
        stdin=deployment(ns, "nginx:2", {"name": "side", "image": "busybox:2"}))
    run(kubeconfig, "scale", "deployment/web", "-n", ns, "--replicas=2")
    out = kubectl(kubeconfig, "apply", "--server-side", "-f", "-",
                  stdin=deployment(ns, "nginx:2", {"name": "side", "image": "busybox:2"}))
    assert out.returncode != 0 and "conflict with" in out.stderr and ".spec.replicas" in \
        out.stderr, out.stderr
    run(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", "-",
        stdin=deployment(ns, "nginx:3"))
    got = json.loads(run(kubeconfig, "get", "deploy", "web", "-n", ns, "-o", "json"))
    assert got["spec"]["replicas"] == 1
    # the side container stays: `kubectl set image` made its image kubectl-set's
    containers = got["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("web", "nginx:3"),
                                                             ("side", "busybox:2")]
    run(kubeconfig, "delete", "deployment", "web", "-n", ns)


def test_served_objects_are_what_their_schemas_say(srv, cluster, kubeconfig, ns,
                                                    busybox_image):
    """What fargo serves reads back under Strict: no member the apiserver would not have
    (kubectl get -o json | kubectl replace -f - must work)."""
    from fargo.model import kubeschema
    from tests.test_kubectl import make_profile

    subnets = [s["SubnetId"] for s in srv.client("ec2").describe_subnets()["Subnets"]]
    make_profile(srv.client("eks"), cluster, f"p-{ns}", [{"namespace": ns}], subnets[:1])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns},
           "spec": {"containers": [{"name": "c", "image": busybox_image,
                                    "command": ["sleep", "3600"],
                                    "ports": [{"containerPort": 80}]}]}}
    run(kubeconfig, "apply", "-f", "-", stdin=json.dumps(pod))
    served = run(kubeconfig, "api-resources", "-o", "name").split()
    if "deployments.apps" in served:
        run(kubeconfig, "apply", "-f", "-", stdin=deployment(ns, busybox_image).replace(
            '"ports"', '"command": ["sleep", "3600"], "ports"'))
        run(kubeconfig, "rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    run(kubeconfig, "wait", "--for=jsonpath={.status.phase}=Running", "pod/p", "-n", ns,
        "--timeout=60s")
    kinds = [k for k in ("pods", "nodes", "events", "namespaces", "serviceaccounts",
                         "configmaps", "secrets", "deployments.apps", "replicasets.apps")
             if k in served]
    for kind in kinds:
        listed = json.loads(run(kubeconfig, "get", kind, "-A", "-o", "json"))
        for obj in listed["items"]:
            group, _, version = obj["apiVersion"].rpartition("/")
            schema = kubeschema.kind_schema(group, version, obj["kind"])
            assert schema is not None, obj["kind"]
            found = kubeschema.check(obj, schema)
            assert found.strict == [] and found.types == [], (kind, found)
    got = run(kubeconfig, "get", "pod", "p", "-n", ns, "-o", "json")
    assert "pod/p replaced" in run(kubeconfig, "replace", "-f", "-", stdin=got)
    run(kubeconfig, "delete", "pod", "p", "-n", ns, "--grace-period=0", "--force")
