"""ConfigMaps, Secrets and ServiceAccounts consumed by pods, driven by the real kubectl: env
from both, config volumes whose updates reach the files, emptyDir shared by containers
(memory medium too), a secret volume with items and modes, projected service account
tokens the Kubernetes face accepts, and pods that wait for what they name."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, FargoServer, FargoServers, wait_status
from tests.imagebuild import build_busybox_oci, push_layout
from tests.test_kubectl import (
    KUBECTL,
    kubeconfig,  # noqa: F401 - a fixture
    kubectl,
    kubectl_run,
    make_profile,
    wait_for,
)
from tests.tokenauth import TokenRegistry

pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")
NS = "cfg"


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Iterator[FargoServer]:
    with FargoServers(tmp_path_factory.mktemp("kube-config")) as servers:
        yield servers("--overcommit", "8")


@pytest.fixture(scope="module")
def subnets(srv) -> list[str]:
    return [s["SubnetId"] for s in srv.client("ec2").describe_subnets()["Subnets"]]


@pytest.fixture(scope="module")
def cluster(srv, subnets) -> str:
    eks = srv.client("eks")
    name = "c" + uuid.uuid4().hex[:8]
    eks.create_cluster(name=name, roleArn="arn:aws:iam::000000000000:role/eks",
                       resourcesVpcConfig={"subnetIds": subnets})
    make_profile(eks, name, "cfg", [{"namespace": NS}], subnets[:1])
    return name


@pytest.fixture(scope="module")
def kube(kubeconfig) -> Path:  # noqa: F811 - the fixture of test_kubectl, on this cluster
    kubectl_run(kubeconfig, "create", "namespace", NS)
    return kubeconfig


def apply(config: Path, *docs: dict) -> str:
    return kubectl_run(config, "apply", "-f", "-",
                       stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))


def pod(name: str, image: str, containers: list[dict], **spec) -> dict:
    for c in containers:
        c.setdefault("image", image)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": containers, **spec}}


def logs(config: Path, name: str, container: str | None = None) -> str:
    out = kubectl(config, "logs", "-n", NS, name, *(["-c", container] if container else []))
    return out.stdout


def wait_logs(config: Path, name: str, pattern: str, container: str | None = None,
              timeout: float = 30) -> str:
    deadline = time.time() + timeout
    while True:
        text = logs(config, name, container)
        if re.search(pattern, text, re.M):
            return text
        assert time.time() < deadline, f"{pattern!r} never showed in the logs of {name}: {text}"
        time.sleep(0.2)


def delete(config: Path, *what: str) -> None:
    kubectl(config, "delete", "-n", NS, "--ignore-not-found", "--wait=false", *what)


def test_env_from_configmaps_and_secrets(kube, busybox_image):
    apply(kube, {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "app-config", "namespace": NS},
                 "data": {"GREETING": "hello there", "MODE": "fast"}},
          {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-secret",
                                                               "namespace": NS},
           "stringData": {"PASSWORD": "s3cret", "TOKEN": "t0k"}})
    # The Secret as stored: stringData merged into data (base64), never kept itself.
    stored = json.loads(kubectl_run(kube, "get", "secret", "app-secret", "-n", NS, "-o",
                                    "json"))
    assert "stringData" not in stored and stored["type"] == "Opaque"
    assert base64.b64decode(stored["data"]["PASSWORD"]) == b"s3cret"
    row = kubectl_run(kube, "get", "secret", "app-secret", "-n", NS).splitlines()
    assert row[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert row[1].split()[:3] == ["app-secret", "Opaque", "2"]
    apply(kube, pod("env", busybox_image, [{
        "name": "app", "command": ["sh", "-c", "env | sort; sleep 3600"],
        "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {
                    "name": "app-config", "key": "GREETING"}}},
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {
                    "name": "app-secret", "key": "PASSWORD"}}},
                {"name": "ABSENT", "valueFrom": {"configMapKeyRef": {
                    "name": "no-such", "key": "x", "optional": True}}},
                {"name": "MODE", "value": "overridden"}],
        "envFrom": [{"configMapRef": {"name": "app-config"}, "prefix": "CFG_"},
                    {"secretRef": {"name": "app-secret"}}]}]))
    text = wait_logs(kube, "env", "^PASSWORD=")
    env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert env["GREETING"] == "hello there" and env["PASSWORD"] == "s3cret"
    assert env["CFG_GREETING"] == "hello there" and env["CFG_MODE"] == "fast"
    assert env["TOKEN"] == "t0k" and env["MODE"] == "overridden" and "ABSENT" not in env
    delete(kube, "pod/env", "configmap/app-config", "secret/app-secret")


def test_configmap_volume_update_reaches_the_file(kube, busybox_image):
    apply(kube, {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "live", "namespace": NS},
                 "data": {"greeting": "one", "other": "x"}})
    script = ("while true; do echo \"file=$(cat /etc/cfg/greeting) sub=$(cat /sub/g)\"; "
              "sleep 0.3; done")
    apply(kube, pod("live", busybox_image, [{
        "name": "app", "command": ["sh", "-c", script],
        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"},
                         {"name": "cfg", "mountPath": "/sub/g", "subPath": "greeting"}]}],
        volumes=[{"name": "cfg", "configMap": {"name": "live"}}]))
    wait_logs(kube, "live", "^file=one sub=one$")
    started = time.time()
    kubectl_run(kube, "patch", "configmap", "live", "-n", NS, "-p",
                json.dumps({"data": {"greeting": "two"}}))
    # The mounted file follows within seconds; a subPath mount keeps what it had (upstream).
    wait_logs(kube, "live", "^file=two sub=one$", timeout=15)
    assert time.time() - started < 15
    out = kubectl(kube, "exec", "-n", NS, "live", "--", "sh", "-c",
                  "ls -a /etc/cfg; readlink /etc/cfg/greeting; touch /etc/cfg/x")
    if out.returncode != 126 or "ls" in out.stderr:  # exec served: check kubelet's layout
        assert "..data" in out.stdout and "..data/greeting" in out.stdout
        assert "Read-only file system" in out.stderr
    delete(kube, "pod/live", "configmap/live")


def test_empty_dir_shared_by_two_containers(kube, busybox_image):
    writer = ("echo from-writer > /shared/note; df -k /mem | tail -1; "
              "grep ' /mem ' /proc/mounts; sleep 3600")
    reader = "while ! cat /data/note; do sleep 0.2; done; sleep 3600"
    apply(kube, pod("share", busybox_image, [
        {"name": "writer", "command": ["sh", "-c", writer],
         "volumeMounts": [{"name": "scratch", "mountPath": "/shared"},
                          {"name": "mem", "mountPath": "/mem"}]},
        {"name": "reader", "command": ["sh", "-c", reader],
         "securityContext": {"runAsUser": 1000},
         "volumeMounts": [{"name": "scratch", "mountPath": "/data", "readOnly": True}]}],
        volumes=[{"name": "scratch", "emptyDir": {}},
                 {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}]))
    wait_logs(kube, "share", "^from-writer$", container="reader")
    text = wait_logs(kube, "share", " /mem ", container="writer")
    assert "tmpfs" in text
    size_kib = int(next(line for line in text.splitlines() if line.endswith("/mem")).split()[1])
    assert size_kib == 16 * 1024
    delete(kube, "pod/share")


def test_empty_dir_past_its_size_limit_evicts_the_pod(kube, busybox_image):
    apply(kube, pod("greedy", busybox_image, [{
        "name": "app", "command": ["sh", "-c", "dd if=/dev/zero of=/cache/f bs=1M count=4; "
                                   "sleep 3600"],
        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}],
        volumes=[{"name": "cache", "emptyDir": {"sizeLimit": "1Mi"}}]))
    got = wait_for(kube, "greedy", "status.phase", "Failed", ns=NS, timeout=40)
    assert got["status"]["reason"] == "Evicted"
    assert got["status"]["message"] == 'Usage of EmptyDir volume "cache" exceeds the limit "1Mi". '
    events = kubectl_run(kube, "get", "events", "-n", NS, "--field-selector",
                         "involvedObject.name=greedy")
    assert "Evicted" in events
    delete(kube, "pod/greedy")


def test_secret_volume_with_items_and_modes(kube, busybox_image):
    apply(kube, {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
                 "metadata": {"name": "creds", "namespace": NS},
                 "stringData": {"username": "admin", "password": "pw"}})
    script = ("stat -L -c '%a %u %g %n' /s/sub/user.txt /s/pass; ls /s; cat /s/sub/user.txt; echo; "
              "id -u; cat /s/pass || echo unreadable; sleep 3600")
    apply(kube, pod("secretvol", busybox_image, [{
        "name": "app", "command": ["sh", "-c", script],
        "securityContext": {"runAsUser": 1000},
        "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
        volumes=[{"name": "s", "secret": {"secretName": "creds", "defaultMode": 0o400,
                                          "items": [{"key": "username",
                                                     "path": "sub/user.txt", "mode": 0o444},
                                                    {"key": "password", "path": "pass"}]}}]))
    text = wait_logs(kube, "secretvol", "unreadable|^pw$")
    assert "444 0 0 /s/sub/user.txt" in text and "400 0 0 /s/pass" in text
    assert "admin" in text and "unreadable" in text  # 0400 root's: not the user's to read
    names = text.splitlines()[2:4]
    assert "pass" in names[0] + names[1] and "sub" in names[0] + names[1]
    # A basic-auth secret needs its keys.
    bad = kubectl(kube, "create", "-n", NS, "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "bad"}, "stringData": {"tls.crt": "x"}}))
    assert bad.returncode != 0 and "data[tls.key]: Required value" in bad.stderr
    delete(kube, "pod/secretvol", "secret/creds")


def test_projected_service_account_token_opens_the_api(kube, busybox_image):
    # Every namespace has its default account; a pod gets kube-api-access mounted.
    assert "default" in kubectl_run(kube, "get", "serviceaccounts", "-n", NS)
    kubectl_run(kube, "create", "serviceaccount", "builder", "-n", NS)
    script = ("cat /var/run/secrets/kubernetes.io/serviceaccount/namespace; echo; "
              "head -c 27 /var/run/secrets/kubernetes.io/serviceaccount/ca.crt; echo; "
              "echo token=$(cat /var/run/secrets/kubernetes.io/serviceaccount/token); "
              "echo custom=$(cat /tokens/api); sleep 3600")
    apply(kube, pod("sa", busybox_image, [{
        "name": "app", "command": ["sh", "-c", script],
        "volumeMounts": [{"name": "tok", "mountPath": "/tokens"}]}],
        serviceAccountName="builder",
        volumes=[{"name": "tok", "projected": {"sources": [{"serviceAccountToken": {
            "path": "api", "expirationSeconds": 600}}]}}]))
    text = wait_logs(kube, "sa", "^custom=")
    lines = text.splitlines()
    assert lines[0] == NS and lines[1] == "-----BEGIN CERTIFICATE-----"
    token = next(line for line in lines if line.startswith("token="))[len("token="):]
    custom = next(line for line in lines if line.startswith("custom="))[len("custom="):]
    spec = json.loads(kubectl_run(kube, "get", "pod", "sa", "-n", NS, "-o", "json"))["spec"]
    assert any(v["name"].startswith("kube-api-access-") for v in spec["volumes"])
    for t in (token, custom):
        who = kubectl_run(kube, "--token", t, "auth", "whoami", "-o", "json")
        assert json.loads(who)["status"]["userInfo"]["username"] == \
            f"system:serviceaccount:{NS}:builder"
    assert "sa" in kubectl_run(kube, "--token", token, "get", "pods", "-n", NS)
    # kubectl create token: a TokenRequest's token opens the API too; a bad one does not.
    made = kubectl_run(kube, "create", "token", "builder", "-n", NS, "--duration", "15m")
    who = json.loads(kubectl_run(kube, "--token", made.strip(), "auth", "whoami", "-o",
                                 "json"))
    assert who["status"]["userInfo"]["groups"][:2] == ["system:serviceaccounts",
                                                      f"system:serviceaccounts:{NS}"]
    short = kubectl(kube, "create", "token", "builder", "-n", NS, "--duration", "1m")
    assert short.returncode != 0 and "less than 10 minutes" in short.stderr
    forged = made.strip()[:-4] + ("AAAA" if not made.strip().endswith("AAAA") else "BBBB")
    assert kubectl(kube, "--token", forged, "get", "pods", "-n", NS).returncode != 0
    # A pod of an account that does not exist is refused, as the apiserver does.
    refused = kubectl(kube, "apply", "-f", "-", stdin=json.dumps(
        pod("nosa", busybox_image, [{"name": "app"}], serviceAccountName="ghost")))
    assert refused.returncode != 0
    assert f"error looking up service account {NS}/ghost" in refused.stderr
    # The token bound to the pod stops working once the pod is gone.
    kubectl_run(kube, "delete", "pod", "sa", "-n", NS, "--wait=true")
    assert kubectl(kube, "--token", token, "get", "pods", "-n", NS).returncode != 0
    delete(kube, "serviceaccount/builder")


def test_missing_configmap_waits(kube, busybox_image):
    apply(kube, pod("waits", busybox_image, [{
        "name": "app", "command": ["sh", "-c", "echo value=$V; sleep 3600"],
        "env": [{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "late",
                                                                 "key": "v"}}}]}]))
    got = wait_for(kube, "waits", "status.containerStatuses", "*", ns=NS)
    deadline = time.time() + 20
    while True:
        state = got["status"]["containerStatuses"][0]["state"]
        if state.get("waiting", {}).get("reason") == "CreateContainerConfigError":
            break
        assert time.time() < deadline, state
        time.sleep(0.2)
        got = json.loads(kubectl_run(kube, "get", "pod", "waits", "-n", NS, "-o", "json"))
    assert state["waiting"]["message"] == 'configmap "late" not found'
    assert got["status"]["phase"] == "Pending"
    assert "CreateContainerConfigError" in kubectl_run(kube, "get", "pod", "waits", "-n", NS)
    # A volume of a missing ConfigMap: ContainerCreating, with kubelet's FailedMount event.
    apply(kube, pod("mounts", busybox_image, [{
        "name": "app", "command": ["sh", "-c", "cat /c/v; sleep 3600"],
        "volumeMounts": [{"name": "c", "mountPath": "/c"}]}],
        volumes=[{"name": "c", "configMap": {"name": "late"}}]))
    deadline = time.time() + 20
    while "FailedMount" not in (events := kubectl_run(kube, "get", "events", "-n", NS,
                                                      "--field-selector",
                                                      "involvedObject.name=mounts")):
        assert time.time() < deadline, events
        time.sleep(0.2)
    assert 'MountVolume.SetUp failed for volume "c" : configmap "late" not found' in events
    assert "ContainerCreating" in kubectl_run(kube, "get", "pod", "mounts", "-n", NS)
    # Once it exists, both start.
    apply(kube, {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "late", "namespace": NS}, "data": {"v": "here"}})
    wait_logs(kube, "waits", "^value=here$")
    wait_logs(kube, "mounts", "^here")
    delete(kube, "pod/waits", "pod/mounts", "configmap/late")


def test_ecs_bind_mount_volumes(srv, registry, subnets, tmp_path):
    """ECS's Fargate bind mounts, on the same machinery: a task's scratch volume shared by
    its containers (volumesFrom, read-only), and one seeded from the image's VOLUME."""
    layout = build_busybox_oci(tmp_path / "vol", extra_files={
        "seed/hello.txt": b"from the image\n"}, config={
        "Cmd": ["sh"], "Env": ["PATH=/bin"], "Volumes": {"/seed": {}}})
    image = f"{registry.address}/volimage:latest"
    push_layout(layout, registry.address, "volimage:latest")
    ecs = srv.client()
    family = "vol" + uuid.uuid4().hex[:6]
    writer = ("cat /seed/hello.txt; echo shared > /shared/f; stat -c 'mode=%a uid=%u' /shared; "
              "sleep 3600")
    reader = ("while ! cat /shared/f; do sleep 0.2; done; touch /shared/x 2>/dev/null "
              "|| echo read-only; sleep 3600")
    ecs.register_task_definition(
        family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256",
        memory="512", volumes=[{"name": "scratch"}, {"name": "seeded", "host": {}}],
        containerDefinitions=[
            {"name": "writer", "image": image, "command": ["sh", "-c", writer],
             "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/shared"},
                             {"sourceVolume": "seeded", "containerPath": "/seed"}]},
            {"name": "reader", "image": image, "command": ["sh", "-c", reader],
             "volumesFrom": [{"sourceContainer": "writer", "readOnly": True}]}])
    task = ecs.run_task(taskDefinition=family, launchType="FARGATE", networkConfiguration={
        "awsvpcConfiguration": {"subnets": subnets[:1]}})["tasks"][0]
    try:
        wait_status(ecs, task["taskArn"], "RUNNING")
        tid = task["taskArn"].rsplit("/", 1)[-1]
        deadline = time.time() + 20
        while True:
            out = subprocess.run([sys.executable, "-m", "fargo", "logs", tid, "--endpoint",
                                  srv.endpoint], capture_output=True, text=True, timeout=60,
                                 cwd=ROOT, env=srv.env()).stdout
            if "read-only" in out and "mode=" in out:
                break
            assert time.time() < deadline, out
            time.sleep(0.3)
        assert "from the image" in out and "mode=755 uid=0" in out and "shared" in out
    finally:
        ecs.stop_task(task=task["taskArn"])
    # A mount of an undeclared volume, or a relative path, is refused at registration.
    with pytest.raises(ecs.exceptions.ClientException, match="absolute path"):
        ecs.register_task_definition(
            family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
            cpu="256", memory="512", volumes=[{"name": "v"}], containerDefinitions=[
                {"name": "a", "image": image, "mountPoints": [
                    {"sourceVolume": "v", "containerPath": "rel"}]}])


def test_kubectl_create_and_token_secrets(kube):
    # kubectl's typed generators post protobuf.
    kubectl_run(kube, "create", "secret", "generic", "lit", "-n", NS, "--from-literal=a=1",
                "--from-literal=b=two")
    kubectl_run(kube, "create", "configmap", "conf", "-n", NS, "--from-literal=k=v")
    got = json.loads(kubectl_run(kube, "get", "secret", "lit", "-n", NS, "-o", "json"))
    assert {k: base64.b64decode(v) for k, v in got["data"].items()} == {"a": b"1", "b": b"two"}
    assert json.loads(kubectl_run(kube, "get", "cm", "conf", "-n", NS, "-o", "json"))[
        "data"] == {"k": "v"}
    assert kubectl_run(kube, "get", "sa", "default", "-n", NS).split()[:3] == [
        "NAME", "SECRETS", "AGE"]
    # A token secret gets its account's token (the tokens controller), which opens the API,
    # and goes when its account does.
    kubectl_run(kube, "create", "serviceaccount", "legacy", "-n", NS)
    apply(kube, {"apiVersion": "v1", "kind": "Secret",
                 "type": "kubernetes.io/service-account-token",
                 "metadata": {"name": "legacy-token", "namespace": NS, "annotations": {
                     "kubernetes.io/service-account.name": "legacy"}}})
    deadline = time.time() + 15
    while not (data := json.loads(kubectl_run(kube, "get", "secret", "legacy-token", "-n",
                                              NS, "-o", "json")).get("data") or {}).get(
            "token"):
        assert time.time() < deadline, data
        time.sleep(0.2)
    assert base64.b64decode(data["namespace"]) == NS.encode() and data["ca.crt"]
    token = base64.b64decode(data["token"]).decode()
    who = json.loads(kubectl_run(kube, "--token", token, "auth", "whoami", "-o", "json"))
    assert who["status"]["userInfo"]["username"] == f"system:serviceaccount:{NS}:legacy"
    kubectl_run(kube, "delete", "serviceaccount", "legacy", "-n", NS)
    deadline = time.time() + 15
    while kubectl(kube, "get", "secret", "legacy-token", "-n", NS).returncode == 0:
        assert time.time() < deadline
        time.sleep(0.2)
    assert kubectl(kube, "--token", token, "get", "pods", "-n", NS).returncode != 0
    delete(kube, "secret/lit", "configmap/conf")


def test_volumes_after_a_server_crash(srv, kube, busybox_image):
    """A SIGKILL of the server: the pod runs on, its files still follow their ConfigMap, and
    the token it was given still opens the API (the key is kept in the store)."""
    apply(kube, {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "kept", "namespace": NS}, "data": {"v": "before"}})
    script = ("echo token=$(cat /var/run/secrets/kubernetes.io/serviceaccount/token); "
              "while true; do echo \"v=$(cat /c/v)\"; sleep 0.3; done")
    apply(kube, pod("survivor", busybox_image, [{
        "name": "app", "command": ["sh", "-c", script],
        "volumeMounts": [{"name": "c", "mountPath": "/c"}]}],
        volumes=[{"name": "c", "configMap": {"name": "kept"}}]))
    text = wait_logs(kube, "survivor", "^v=before$")
    token = next(line for line in text.splitlines() if line.startswith("token="))[6:]
    srv.kill()
    srv.start()
    kubectl_run(kube, "patch", "configmap", "kept", "-n", NS, "-p",
                json.dumps({"data": {"v": "after"}}))
    wait_logs(kube, "survivor", "^v=after$", timeout=20)
    who = json.loads(kubectl_run(kube, "--token", token, "auth", "whoami", "-o", "json"))
    assert who["status"]["userInfo"]["username"] == f"system:serviceaccount:{NS}:default"
    delete(kube, "pod/survivor", "configmap/kept")


def test_sub_path_never_leads_out_of_its_volume(kube, busybox_image):
    """A symlink a container plants in an emptyDir must not lead a later subPath mount to the
    host: the mount is refused, and nothing of the host is seen."""
    apply(kube, pod("escape", busybox_image, [{
        "name": "app", "command": ["sh", "-c", "ls /host; sleep 3600"],
        "volumeMounts": [{"name": "e", "mountPath": "/host", "subPath": "evil"}]}],
        initContainers=[{"name": "plant", "image": busybox_image,
                         "command": ["sh", "-c", "ln -s / /e/evil"],
                         "volumeMounts": [{"name": "e", "mountPath": "/e"}]}],
        restartPolicy="Never", volumes=[{"name": "e", "emptyDir": {}}]))
    got = wait_for(kube, "escape", "status.phase", "Failed", ns=NS, timeout=30)
    assert "leads out of volume" in json.dumps(got["status"])
    assert "etc" not in logs(kube, "escape", "app")
    delete(kube, "pod/escape")


def test_image_pull_secrets_of_the_service_account(kube, tmp_path):
    """A service account's imagePullSecrets reach its pods (the admission copies them), and
    kubelet pulls with the dockerconfigjson that names the image's registry."""
    reg = TokenRegistry(tmp_path / "reg")
    reg.start()
    try:
        layout = build_busybox_oci(tmp_path / "layout")
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds",
                        f"{reg.auth.user}:{reg.auth.password}", f"oci:{layout}",
                        f"docker://{reg.address}/private/busybox:1"], check=True,
                       capture_output=True)
        image = f"{reg.address}/private/busybox:1"
        auth = base64.b64encode(f"{reg.auth.user}:{reg.auth.password}".encode()).decode()
        kubectl_run(kube, "create", "serviceaccount", "puller", "-n", NS)
        apply(kube, {"apiVersion": "v1", "kind": "Secret",
                     "type": "kubernetes.io/dockerconfigjson",
                     "metadata": {"name": "regcred", "namespace": NS},
                     "stringData": {".dockerconfigjson": json.dumps(
                         {"auths": {reg.address: {"auth": auth}}})}})
        kubectl_run(kube, "patch", "serviceaccount", "puller", "-n", NS, "-p",
                    json.dumps({"imagePullSecrets": [{"name": "regcred"}]}))
        apply(kube, pod("private", image, [{"name": "app", "command": [
            "sh", "-c", "echo pulled; sleep 3600"]}], serviceAccountName="puller"))
        wait_logs(kube, "private", "^pulled$")
        spec = json.loads(kubectl_run(kube, "get", "pod", "private", "-n", NS, "-o",
                                      "json"))["spec"]
        assert spec["imagePullSecrets"] == [{"name": "regcred"}]
        # Without the secret, the registry says no.
        apply(kube, pod("anonymous", image, [{"name": "app"}]))
        got = wait_for(kube, "anonymous", "status.phase", "Failed", ns=NS, timeout=30)
        assert "unauthorized" in json.dumps(got["status"]).lower()
    finally:
        delete(kube, "pod/private", "pod/anonymous", "secret/regcred", "serviceaccount/puller")
        reg.stop()
