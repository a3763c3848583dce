"""Pods' volumes, ConfigMap and Secret consumption, Secrets and ServiceAccounts as kinds
(model/podvolumes.py, model/secret.py, model/serviceaccount.py): pure."""

from __future__ import annotations

import base64

import pytest

from fargo.model import admission, podtask, podvolumes, secret, serviceaccount
from fargo.model.downward import Placed
from fargo.model.kubeerrors import KubeError
from fargo.model.podvolumes import Missing, Sources
from fargo.port.data import VolumeFile, VolumeMount, VolumeSpec

pytestmark = pytest.mark.pure
PLACED = Placed("10.0.0.5", "fargate-ip-10-0-0-5", 1024, 2048)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def spec(*containers: dict, volumes: list | None = None) -> dict:
    out: dict = {"containers": [{"name": f"c{i}", "image": "x", **c}
                                for i, c in enumerate(containers)]}
    if volumes is not None:
        out["volumes"] = volumes
    return out


def fields(errors: list[tuple[str, str]]) -> dict[str, str]:
    return dict(errors)


# ---- Secret
def test_string_data_merges_into_data_and_is_never_kept():
    s = {"metadata": {"name": "s"}, "data": {"a": b64("old"), "b": b64("keep")},
         "stringData": {"a": "new"}}
    secret.default_secret(s)
    assert "stringData" not in s and s["type"] == "Opaque"
    assert secret.decoded(s) == {"a": b"new", "b": b"keep"}
    secret.check_secret(s, None)


@pytest.mark.parametrize("kind,data,field", [
    ("kubernetes.io/tls", {"tls.crt": "x"}, "data[tls.key]"),
    ("kubernetes.io/ssh-auth", {}, "data[ssh-privatekey]"),
    ("kubernetes.io/dockerconfigjson", {}, "data[.dockerconfigjson]"),
    ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": "{nope"}, "data[.dockerconfigjson]"),
    ("kubernetes.io/basic-auth", {"other": "x"}, "data[username]"),
    ("kubernetes.io/service-account-token", {},
     "metadata.annotations[kubernetes.io/service-account.name]"),
])
def test_built_in_types_need_their_keys(kind, data, field):
    s = {"metadata": {"name": "s"}, "type": kind, "stringData": data}
    secret.default_secret(s)
    with pytest.raises(KubeError) as err:
        secret.check_secret(s, None)
    assert err.value.code == 422 and field in err.value.message


def test_secret_rules():
    ok = {"metadata": {"name": "s"}, "type": "kubernetes.io/basic-auth",
          "data": {"password": b64("pw")}}
    secret.check_secret(ok, None)
    with pytest.raises(KubeError) as err:  # the type is fixed once made
        secret.check_secret({**ok, "type": "Opaque"}, ok)
    assert "type: Invalid value" in err.value.message
    frozen = {**ok, "immutable": True}
    with pytest.raises(KubeError) as err:
        secret.check_secret({**frozen, "data": {"password": b64("x")}}, frozen)
    assert "immutable" in err.value.message
    with pytest.raises(KubeError) as err:  # not base64: the apiserver cannot decode it
        secret.check_secret({"metadata": {"name": "s"}, "type": "Opaque",
                             "data": {"a": "%%%"}}, None)
    assert err.value.code == 400
    with pytest.raises(KubeError) as err:
        secret.check_secret({"metadata": {"name": "s"}, "type": "Opaque",
                             "data": {"..x": b64("a"), "k": b64("a" * (1 << 20))}}, None)
    assert "must not start with '..'" in err.value.message and "Too long" in err.value.message


def test_pull_credentials_from_docker_configs():
    config = {"auths": {"https://index.docker.io/v1/": {"auth": b64("hub:pw")},
                        "reg.example.com:5000": {"username": "u", "password": "p"}}}
    s = {"metadata": {"name": "r"}, "type": "kubernetes.io/dockerconfigjson",
         "stringData": {".dockerconfigjson": __import__("json").dumps(config)}}
    secret.default_secret(s)
    secret.check_secret(s, None)
    assert secret.pull_credentials("busybox:1", [s]) == ("hub", "pw")
    assert secret.pull_credentials("docker.io/library/busybox", [s]) == ("hub", "pw")
    assert secret.pull_credentials("reg.example.com:5000/a/b:1", [s]) == ("u", "p")
    assert secret.pull_credentials("other.example.com/a", [s]) is None
    assert secret.image_host("localhost/x") == "localhost"
    assert secret.image_host("team/app") == "docker.io"


# ---- ServiceAccount admission and tokens
def test_service_account_admission_mounts_kube_api_access():
    pod = {"metadata": {"name": "p"}, "spec": spec({}, {"volumeMounts": [
        {"name": "own", "mountPath": serviceaccount.API_ACCESS_PATH}]}, volumes=[
        {"name": "own", "emptyDir": {}}])}
    out = serviceaccount.admit(pod, {"metadata": {"name": "default"},
                                     "imagePullSecrets": [{"name": "reg"}]}, "x2b4z")
    s = out["spec"]
    assert s["serviceAccountName"] == s["serviceAccount"] == "default"
    assert s["imagePullSecrets"] == [{"name": "reg"}]
    assert s["volumes"][-1]["name"] == "kube-api-access-x2b4z"
    sources = s["volumes"][-1]["projected"]["sources"]
    assert sources[0]["serviceAccountToken"]["expirationSeconds"] == 3607
    assert s["containers"][0]["volumeMounts"] == [{"name": "kube-api-access-x2b4z",
                                                   "readOnly": True,
                                                   "mountPath": serviceaccount.API_ACCESS_PATH}]
    assert len(s["containers"][1]["volumeMounts"]) == 1  # its own mount at the path stays
    assert pod["spec"].get("serviceAccountName") is None  # a copy
    # Automount off (the pod's word first, then the account's): nothing mounted.
    off = serviceaccount.admit(pod, {"metadata": {"name": "default"},
                                     "automountServiceAccountToken": False}, "x2b4z")
    assert "kube-api-access-x2b4z" not in str(off)
    pod["spec"]["automountServiceAccountToken"] = True
    on = serviceaccount.admit(pod, {"metadata": {"name": "default"},
                                    "automountServiceAccountToken": False}, "x2b4z")
    assert "kube-api-access-x2b4z" in str(on)
    err = serviceaccount.missing_account({"metadata": {"name": "p"},
                                          "spec": {"serviceAccountName": "ghost"}}, "apps")
    assert err.code == 403 and "error looking up service account apps/ghost" in err.message


def test_token_requests_and_claims():
    assert serviceaccount.token_request({"spec": {}}, "sa") == (
        ["https://kubernetes.default.svc"], 3600, None)
    for expiry, words in ((599, "less than 10 minutes"), (1 << 33, "2^32 seconds")):
        with pytest.raises(KubeError) as err:
            serviceaccount.token_request({"spec": {"expirationSeconds": expiry}}, "sa")
        assert words in err.value.message
    with pytest.raises(KubeError):
        serviceaccount.token_request({"spec": {"boundObjectRef": {"kind": "Node"}}}, "sa")
    claims = serviceaccount.claims(
        iss="https://i", ns="apps", sa={"metadata": {"name": "b", "uid": "u"}},
        audiences=["a"], now=100, expiry=600, jti="j",
        bound={"kind": "Pod", "name": "p", "uid": "pu"})
    assert claims["sub"] == "system:serviceaccount:apps:b" and claims["exp"] == 700
    assert claims["kubernetes.io"]["pod"] == {"name": "p", "uid": "pu"}


# ---- checks
def test_volume_checks():
    s = spec({"volumeMounts": [{"name": "missing", "mountPath": "/a"},
                               {"name": "cm", "mountPath": "/a"},
                               {"name": "cm", "mountPath": "/b", "subPath": "../x"}]},
             volumes=[{"name": "cm", "configMap": {"name": "c", "items": [
                 {"key": "k", "path": "/abs"}, {"key": "k", "path": "a/../b", "mode": 0o1777}]}},
                 {"name": "cm", "emptyDir": {"medium": "HugePages"}},
                 {"name": "two", "emptyDir": {}, "secret": {"secretName": "s"}},
                 {"name": "none"},
                 {"name": "tok", "projected": {"sources": [
                     {"serviceAccountToken": {"path": "t", "expirationSeconds": 60}},
                     {"configMap": {"name": "c", "items": [{"key": "k", "path": "t"}]}}]}},
                 {"name": "dw", "downwardAPI": {"items": [
                     {"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}},
                     {"path": "cpu", "resourceFieldRef": {"resource": "limits.cpu"}}]}}])
    got = fields(podvolumes.spec_errors(s))
    assert got["spec.containers[0].volumeMounts[0].name"] == 'Not found: "missing"'
    assert "must be unique" in got["spec.containers[0].volumeMounts[1].mountPath"]
    assert "'..'" in got["spec.containers[0].volumeMounts[2].subPath"]
    assert "relative path" in got["spec.volumes[0].configMap.items[0].path"]
    assert "'..'" in got["spec.volumes[0].configMap.items[1].path"]
    assert "0777" in got["spec.volumes[0].configMap.items[1].mode"]
    assert got["spec.volumes[1].name"] == 'Duplicate value: "cm"'
    assert "Unsupported value" in got["spec.volumes[1].emptyDir.medium"]
    assert "more than 1" in got["spec.volumes[2].secret"]
    assert "must specify a volume type" in got["spec.volumes[3]"]
    assert "10 minutes" in got["spec.volumes[4].projected.sources[0].serviceAccountToken"
                               ".expirationSeconds"]
    assert "duplicate paths" in got["spec.volumes[4].projected.sources[1].configMap.items[0]"
                                    ".path"]
    assert "status.podIP" in got["spec.volumes[5].downwardAPI.items[0].fieldRef.fieldPath"]
    assert got["spec.volumes[5].downwardAPI.items[1].resourceFieldRef.containerName"] == \
        "Required value"


def test_env_checks():
    s = spec({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c"}}},
                      {"name": "B", "valueFrom": {"secretKeyRef": {"key": "bad/key"}}}],
              "envFrom": [{"configMapRef": {"name": "c"}, "secretRef": {"name": "s"}},
                          {"prefix": "A=B", "secretRef": {"name": "s"}}, {}]})
    got = fields(podvolumes.spec_errors(s))
    assert got["spec.containers[0].env[0].valueFrom.configMapKeyRef.key"] == "Required value"
    assert got["spec.containers[0].env[1].valueFrom.secretKeyRef.name"] == "Required value"
    assert "config key" in got["spec.containers[0].env[1].valueFrom.secretKeyRef.key"]
    assert "more than one" in got["spec.containers[0].envFrom[0]"]
    assert "'='" in got["spec.containers[0].envFrom[1].prefix"]
    assert "must specify one of" in got["spec.containers[0].envFrom[2]"]


def test_what_fargo_does_not_run_is_refused_by_name():
    pod = {"metadata": {"name": "p"}, "spec": spec(
        {"volumeMounts": [{"name": "e", "mountPath": "/e", "subPathExpr": "$(X)"},
                          {"name": "e", "mountPath": "/f", "mountPropagation": "None"}]},
        volumes=[{"name": "e", "emptyDir": {"sizeLimit": "1Gi"}},
                 {"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                 {"name": "pvc", "persistentVolumeClaim": {"claimName": "c"}}])}
    out = podvolumes.unimplemented(pod["spec"])
    assert out == ["spec.volumes[2].persistentVolumeClaim",
                   "spec.containers[0].volumeMounts[0].subPathExpr"]
    assert podvolumes.disk_limits(pod["spec"]) == {"e": (1 << 30, "1Gi")}
    pod["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}})
    msg = admission.verdict({**pod, "metadata": {"name": "p", "labels": {}}},
                            [{"fargateProfileName": "p", "status": "ACTIVE",
                              "selectors": [{"namespace": "apps"}]}], "apps") or ""
    assert "h is of an unsupported volume Type" in msg and "persistentVolumeClaim" in msg


# ---- the task's volumes and mounts
def test_volume_specs_and_mount_points():
    s = spec({"volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"},
                               {"name": "scratch", "mountPath": "/tmp/x", "subPath": "a"},
                               {"name": "mem", "mountPath": "/m", "readOnly": True}]},
             volumes=[{"name": "cfg", "configMap": {"name": "c"}},
                      {"name": "scratch", "emptyDir": {}},
                      {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                      {"name": "big", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}}])
    assert podvolumes.volume_specs(s, 2048) == (
        VolumeSpec("cfg", "files"), VolumeSpec("scratch", "scratch"),
        VolumeSpec("mem", "memory", size_bytes=64 << 20),
        VolumeSpec("big", "memory", size_bytes=2048 << 20))  # never more than the pod's
    plan, _ = podtask.pod_plan(s)
    assert plan[0]["mountPoints"] == [
        {"sourceVolume": "cfg", "containerPath": "/etc/cfg", "readOnly": True},
        {"sourceVolume": "scratch", "containerPath": "/tmp/x", "readOnly": False,
         "subPath": "a"},
        {"sourceVolume": "mem", "containerPath": "/m", "readOnly": True}]
    assert podvolumes.task_mounts(plan, plan[0]) == [  # parents before what they hold
        VolumeMount("mem", "/m", True), VolumeMount("cfg", "/etc/cfg", True),
        VolumeMount("scratch", "/tmp/x", False, "a")]


def test_ecs_bind_mounts():
    plan = [{"name": "db", "mountPoints": [{"sourceVolume": "data", "containerPath": "/var/db/"},
                                           {"sourceVolume": "logs", "containerPath": "/logs"}]},
            {"name": "side", "volumesFrom": [{"sourceContainer": "db", "readOnly": True}],
             "mountPoints": [{"sourceVolume": "data", "containerPath": "/logs"}]}]
    assert podvolumes.ecs_volume_specs(plan) == (VolumeSpec("data", "scratch", mode=0o755),
                                                 VolumeSpec("logs", "scratch", mode=0o755))
    assert podvolumes.task_mounts(plan, plan[0], {"/var/db": {}}) == [
        VolumeMount("logs", "/logs"), VolumeMount("data", "/var/db", seed=True)]
    # Its own mount at /logs wins over the inherited one; inherited ones are read-only.
    assert podvolumes.task_mounts(plan, plan[1]) == [
        VolumeMount("data", "/logs"), VolumeMount("data", "/var/db", readonly=True)]


# ---- contents
def sources(cms: dict, secrets: dict, token=None) -> Sources:
    return Sources("apps", cms.get, secrets.get, token)


CM = {"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"},
      "binaryData": {"bin": b64("\x00\x01")}}
SECRET = {"metadata": {"name": "s"}, "data": {"user": b64("admin"), "pw": b64("x")}}
POD = {"metadata": {"name": "p", "namespace": "apps", "uid": "u",
                    "labels": {"tier": "web", "app": 'say "hi"'}},
       "spec": spec({"resources": {"limits": {"memory": "64Mi"}}})}


def test_config_volume_files():
    src = sources({"c": CM}, {"s": SECRET})
    files = podvolumes.volume_files(POD, {"name": "v", "configMap": {"name": "c"}}, src,
                                    PLACED)
    assert files == [VolumeFile("a", b"1"), VolumeFile("b", b"2"), VolumeFile("bin", b"\0\1")]
    files = podvolumes.volume_files(POD, {"name": "v", "secret": {
        "secretName": "s", "defaultMode": 0o400,
        "items": [{"key": "user", "path": "d/u", "mode": 0o444}, {"key": "pw", "path": "p"}]}},
        src, PLACED)
    assert files == [VolumeFile("d/u", b"admin", 0o444), VolumeFile("p", b"x", 0o400)]
    with pytest.raises(Missing, match='configmap "nope" not found'):
        podvolumes.volume_files(POD, {"name": "v", "configMap": {"name": "nope"}}, src, PLACED)
    assert podvolumes.volume_files(POD, {"name": "v", "configMap": {
        "name": "nope", "optional": True}}, src, PLACED) == []
    with pytest.raises(Missing, match="non-existent config key: zz"):
        podvolumes.volume_files(POD, {"name": "v", "configMap": {
            "name": "c", "items": [{"key": "zz", "path": "z"}]}}, src, PLACED)


def test_projected_and_downward_files():
    minted = []

    def token(audience: str, expiry: int) -> str:
        minted.append((audience, expiry))
        return "tok"
    src = sources({"c": CM}, {"s": SECRET}, token)
    vol = {"name": "v", "projected": {"defaultMode": 0o600, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 7200, "audience": "x"}},
        {"configMap": {"name": "c", "items": [{"key": "a", "path": "ca.crt"}]}},
        {"secret": {"name": "s", "items": [{"key": "user", "path": "user"}]}},
        {"downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "tier", "fieldRef": {"fieldPath": "metadata.labels['tier']"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "c0",
                                                 "resource": "limits.memory",
                                                 "divisor": "1Mi"}}]}}]}}
    files = {f.path: f for f in podvolumes.volume_files(POD, vol, src, PLACED)}
    assert minted == [("x", 7200)] and files["token"] == VolumeFile("token", b"tok", 0o600)
    assert files["ca.crt"].data == b"1" and files["user"].data == b"admin"
    assert files["labels"].data == b'app="say \\"hi\\""\ntier="web"'
    assert files["tier"].data == b"web" and files["mem"].data == b"64"


def test_container_env():
    src = sources({"c": CM}, {"s": SECRET})
    c = {"name": "c0", "envFrom": [{"configMapRef": {"name": "c"}, "prefix": "CM_"},
                                   {"secretRef": {"name": "s"}},
                                   {"configMapRef": {"name": "gone", "optional": True}}],
         "env": [{"name": "user", "value": "plain wins"},
                 {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                 {"name": "CM_a", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                 {"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "no",
                                                                 "optional": True}}}]}
    assert podvolumes.container_env(c, src) == {"CM_b": "2", "user": "plain wins",
                                                "pw": "x", "X": "x"}
    for env, words in (
            ([{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "a"}}}],
             'configmap "gone" not found'),
            ([{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "zz"}}}],
             "couldn't find key zz in Secret apps/s")):
        with pytest.raises(Missing, match=words):
            podvolumes.container_env({"name": "c0", "env": env}, src)
    assert podvolumes.uses_objects(c) and not podvolumes.uses_objects({"env": [
        {"name": "A", "value": "b"}]})
