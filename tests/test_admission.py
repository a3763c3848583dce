"""The admission webhooks as a kube-apiserver calls them: AdmissionReview v1 in, a JSON patch
or a verdict out, decided by the EKS cluster's Fargate profiles."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
import requests

ROLE = "arn:aws:iam::000000000000:role/pods"


@pytest.fixture(scope="module")
def cluster(fargo, ec2) -> str:
    eks = fargo.client("eks")
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]]
    name = "a" + uuid.uuid4().hex[:8]
    eks.create_cluster(name=name, roleArn="arn:aws:iam::000000000000:role/eks",
                       resourcesVpcConfig={"subnetIds": subnets})
    for profile, selectors in (("b-web", [{"namespace": "apps", "labels": {"tier": "web"}}]),
                               ("a-any", [{"namespace": "prod-*"}])):
        eks.create_fargate_profile(clusterName=name, fargateProfileName=profile,
                                   podExecutionRoleArn=ROLE, selectors=selectors)
    deadline = time.time() + 10
    while any(eks.describe_fargate_profile(clusterName=name, fargateProfileName=p)[
            "fargateProfile"]["status"] != "ACTIVE" for p in ("b-web", "a-any")):
        assert time.time() < deadline
        time.sleep(0.05)
    yield name
    for p in ("b-web", "a-any"):  # one DELETING at a time, as EKS allows
        eks.delete_fargate_profile(clusterName=name, fargateProfileName=p)
        while p in eks.list_fargate_profiles(clusterName=name)["fargateProfileNames"]:
            time.sleep(0.05)
    eks.delete_cluster(name=name)


def review(pod: dict, namespace: str, operation: str = "CREATE") -> dict:
    """What kube-apiserver POSTs to a webhook."""
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "name": pod["metadata"].get("name", ""), "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
        "object": pod, "oldObject": None, "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}}}


def pod(labels: dict | None = None, **spec) -> dict:
    meta: dict = {"name": "p", "namespace": "apps"}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "app", "image": "busybox"}],
                     "schedulerName": "default-scheduler", **spec}}


def call(fargo, cluster: str, door: str, body: dict | bytes) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(f"{fargo.endpoint}/admission/{door}?cluster={cluster}", data=data,
                         headers={"Content-Type": "application/json"}, timeout=5)


def test_mutate_gives_fargate_patch(fargo, cluster):
    req = review(pod({"tier": "web"}), "apps")
    r = call(fargo, cluster, "mutate", req)
    assert r.status_code == 200
    out = r.json()
    assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
    resp = out["response"]
    assert resp["uid"] == req["request"]["uid"] and resp["allowed"] is True
    assert resp["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(resp["patch"])) == [
        {"op": "replace", "path": "/spec/schedulerName", "value": "fargate-scheduler"},
        {"op": "add", "path": "/metadata/labels/eks.amazonaws.com~1fargate-profile",
         "value": "b-web"}]
    # No labels at all, wildcard namespace: the labels map itself is added.
    resp = call(fargo, cluster, "mutate", review(pod(), "prod-eu")).json()["response"]
    patch = json.loads(base64.b64decode(resp["patch"]))
    assert patch[1] == {"op": "add", "path": "/metadata/labels",
                        "value": {"eks.amazonaws.com/fargate-profile": "a-any"}}


def test_mutate_leaves_other_pods_alone(fargo, cluster):
    for body in (review(pod({"tier": "db"}), "apps"), review(pod(), "dev"),
                 review(pod({"tier": "web"}), "apps", operation="UPDATE")):
        resp = call(fargo, cluster, "mutate", body).json()["response"]
        assert resp == {"uid": body["request"]["uid"], "allowed": True}


def test_pin_label_picks_the_profile(fargo, cluster):
    # Both profiles select prod-x; alphanumeric order picks a-any, the pin picks b-web only
    # if b-web matches (it does not select prod-x): then no profile runs it.
    resp = call(fargo, cluster, "mutate", review(pod({"tier": "web"}), "prod-x")).json()
    assert b"a-any" in base64.b64decode(resp["response"]["patch"])
    pinned = pod({"eks.amazonaws.com/fargate-profile": "b-web", "tier": "web"})
    resp = call(fargo, cluster, "mutate", review(pinned, "prod-x")).json()["response"]
    assert "patch" not in resp
    resp = call(fargo, cluster, "mutate", review(pinned, "apps")).json()["response"]
    assert json.loads(base64.b64decode(resp["patch"])) == [
        {"op": "replace", "path": "/spec/schedulerName", "value": "fargate-scheduler"}]


def test_validate_verdicts(fargo, cluster):
    ok = call(fargo, cluster, "validate", review(pod({"tier": "web"}), "apps")).json()
    assert ok["response"]["allowed"] is True
    bad = review(pod({"tier": "web"}, hostNetwork=True), "apps")
    resp = call(fargo, cluster, "validate", bad).json()["response"]
    assert resp["uid"] == bad["request"]["uid"] and resp["allowed"] is False
    assert resp["status"]["message"] == \
        "Pod not supported on Fargate: fields not supported: HostNetwork"
    assert resp["status"]["code"] == 403
    priv = pod({"tier": "web"})
    priv["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    priv["spec"]["volumes"] = [{"name": "root", "hostPath": {"path": "/"}}]
    msg = call(fargo, cluster, "validate", review(priv, "apps")).json()["response"]["status"][
        "message"]
    assert msg.startswith("Pod not supported on Fargate: ")
    assert "Privileged" in msg and "root is of an unsupported volume Type" in msg
    # A pod no profile selects is not Fargate's to refuse.
    other = review(pod({"tier": "db"}, hostNetwork=True), "apps")
    assert call(fargo, cluster, "validate", other).json()["response"]["allowed"] is True


def test_malformed_reviews_get_status_errors(fargo, cluster):
    for body in (b"{not json", b"[]", json.dumps({"kind": "AdmissionReview",
                                                   "apiVersion": "admission.k8s.io/v1beta1",
                                                   "request": {"uid": "u"}}).encode(),
                 json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"})
                 .encode()):
        for door in ("mutate", "validate"):
            r = call(fargo, cluster, door, body)
            assert r.status_code == 400 and r.json()["kind"] == "Status", r.text
    weird = review(pod(), "apps")
    weird["request"]["object"]["metadata"]["labels"] = ["not", "a", "map"]
    r = call(fargo, cluster, "mutate", weird)
    assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
    r = requests.post(f"{fargo.endpoint}/admission/mutate?cluster=nosuch",
                      data=json.dumps(review(pod(), "apps")), timeout=5,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 404 and r.json()["kind"] == "Status"


def test_odd_but_legal_reviews(fargo, cluster):
    """A review whose kind is not an object is about something else; `labels:` left empty
    (null) in a manifest still gets the whole label map added."""
    odd = review(pod(), "apps")
    odd["request"]["kind"] = "Pod"
    r = call(fargo, cluster, "mutate", odd)
    assert r.status_code == 200 and r.json()["response"]["allowed"] is True
    empty = pod()
    empty["metadata"]["labels"] = None
    empty["metadata"]["namespace"] = "other"
    r = call(fargo, cluster, "mutate", review(empty, "other"))
    assert r.status_code == 200
    bad_meta = review(pod({"tier": "web"}), "")
    bad_meta["request"]["object"]["metadata"] = ["not", "a", "map"]
    r = call(fargo, cluster, "mutate", bad_meta)
    assert r.status_code in (200, 400) and r.status_code != 500


def test_null_labels_get_a_whole_map_in_the_patch():
    from fargo.model import admission

    profile = {"fargateProfileName": "p1", "status": "ACTIVE",
               "selectors": [{"namespace": "apps"}]}
    body = pod()
    body["metadata"]["labels"] = None
    _, patch = admission.mutation(body, [profile], "apps")
    assert {"op": "add", "path": "/metadata/labels",
            "value": {"eks.amazonaws.com/fargate-profile": "p1"}} in patch


def test_backoff_never_overflows():
    from fargo.model import restarts

    assert restarts.backoff(1) > 0
    assert restarts.backoff(5000) == restarts.BACKOFF_MAX


@pytest.mark.pure
def test_restricted_pods_are_run_and_what_is_not_run_is_named():
    """A pod written to the "restricted" security standard is admitted: the default seccomp
    profile is what fargo applies anyway, dropped capabilities are dropped."""
    from fargo.model.admission import unimplemented
    from fargo.model.podtask import pod_plan

    restricted = {"runAsUser": 1000, "allowPrivilegeEscalation": False,
                  "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    good = {"spec": {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "app", "image": "x",
                                     "securityContext": restricted}]}}
    assert unimplemented(good) == []
    plan, _ = pod_plan(good["spec"])
    assert plan[0]["linuxParameters"] == {"capabilities": {"drop": ["ALL"]}}
    bad = {"spec": {"containers": [{"name": "app", "image": "x", "securityContext": {
        "runAsGroup": 5, "capabilities": {"add": ["NET_ADMIN"]},
        "seccompProfile": {"type": "Unconfined"}}}]}}
    at = "spec.containers[0].securityContext"
    assert set(unimplemented(bad)) == {f"{at}.runAsGroup", f"{at}.capabilities.add",
                                       f"{at}.seccompProfile"}
