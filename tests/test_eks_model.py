"""Unit tests for the EKS rules in fargo/model: profiles, pod sizing, admission, selectors,
patches, pod validation and the pod's view of its task."""

from __future__ import annotations

import pytest

from fargo.model import (
    admission,
    kubeobj,
    kubeschema,
    podsize,
    podtask,
    profiles,
    quantity,
    restarts,
    strategic,
)
from fargo.model.errors import ApiError
from fargo.model.kubeerrors import KubeError
from fargo.model.selectors import FIELDS, field_selector, label_selector
from fargo.model.taskrecord import Container, ContainerRun, Interface, RestartPolicy, Task


def prof(name, *selectors, status="ACTIVE"):
    return {"fargateProfileName": name, "status": status, "selectors": list(selectors),
            "subnets": ["subnet-1"]}


def pod(name="p", ns="apps", labels=None, **spec):
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec}}
    if labels is not None:
        body["metadata"]["labels"] = labels
    return body


# ---- profiles
@pytest.mark.parametrize("pattern,value,ok", [
    ("apps", "apps", True), ("app*", "apps-prod", True), ("a?ps", "apps", True),
    ("a?ps", "aps", False), ("*", "", True), ("prod-*-web", "prod-eu-web", True),
    ("a.c", "abc", False), ("apps", "Apps", False)])
def test_wildcards(pattern, value, ok):
    assert profiles.wildcard(pattern, value) is ok


def test_selector_labels_all_must_match_with_wildcards():
    sel = {"namespace": "apps", "labels": {"tier": "web", "env": "p*"}}
    assert profiles.selector_matches(sel, "apps", {"tier": "web", "env": "prod", "x": "y"})
    assert not profiles.selector_matches(sel, "apps", {"tier": "web"})
    assert not profiles.selector_matches(sel, "other", {"tier": "web", "env": "prod"})
    assert profiles.selector_matches({"namespace": "apps", "labels": {"t?er": "*"}}, "apps",
                                     {"tier": "db"})


def test_choose_profile_alphanumeric_first_and_pin():
    ps = [prof("zeta", {"namespace": "apps"}), prof("alpha", {"namespace": "app*"}),
          prof("beta", {"namespace": "apps"}, status="CREATING")]
    assert profiles.choose_profile(ps, "apps", {})["fargateProfileName"] == "alpha"
    pinned = {profiles.PIN_LABEL: "zeta"}
    assert profiles.choose_profile(ps, "apps", pinned)["fargateProfileName"] == "zeta"
    # A pin must still match a selector, and only ACTIVE profiles count.
    assert profiles.choose_profile(ps, "other", {profiles.PIN_LABEL: "zeta"}) is None
    assert profiles.choose_profile(ps, "apps", {profiles.PIN_LABEL: "beta"}) is None
    assert profiles.choose_profile(ps, "db", {}) is None


@pytest.mark.parametrize("selectors,message", [
    ([], "at least one selector"),
    ([{"namespace": f"n{i}"} for i in range(6)], "at most 5 selectors"),
    ([{"labels": {"a": "b"}}], "must include a namespace"),
    ([{"namespace": "a", "labels": {f"k{i}": "v" for i in range(6)}}], "at most 5 labels"),
])
def test_selector_rules(selectors, message):
    with pytest.raises(ApiError, match=message) as err:
        profiles.check_selectors(selectors)
    assert err.value.code == "InvalidParameterException"


# ---- sizing (FARGATE.md section 7)
def res(cpu=None, mem=None):
    r = {}
    if cpu:
        r["cpu"] = cpu
    if mem:
        r["memory"] = mem
    return {"resources": {"requests": r}}


@pytest.mark.parametrize("apps,inits,size,text", [
    ([res("1", "8Gi")], [], (2048, 9216), "2vCPU 9GB"),
    ([{}], [], (256, 512), "0.25vCPU 0.5GB"),
    ([res("250m", "256Mi")], [], (256, 512), "0.25vCPU 0.5GB"),
    ([res("250m", "300Mi")], [], (256, 1024), "0.25vCPU 1GB"),
    ([res("500m", "1Gi"), res("500m", "1Gi")], [], (1024, 3072), "1vCPU 3GB"),
    # init containers: the largest of them against the sum of the app containers
    ([res("250m", "512Mi")], [res("2", "4Gi"), res("1", "1Gi")], (2048, 5120), "2vCPU 5GB"),
    ([res("4", "1Gi")], [], (4096, 8192), "4vCPU 8GB"),
])
def test_pod_size(apps, inits, size, text):
    spec = {"containers": [dict(name=f"a{i}", image="x", **a) for i, a in enumerate(apps)],
            "initContainers": [dict(name=f"i{i}", image="x", **c) for i, c in enumerate(inits)]}
    assert podsize.pod_size(spec) == size
    assert podsize.capacity_provisioned(*size) == text


def test_limits_stand_in_for_missing_requests_and_quantities():
    spec = {"containers": [{"name": "a", "image": "x",
                            "resources": {"limits": {"cpu": "2", "memory": "2G"}}}]}
    assert podsize.pod_size(spec) == (2048, 4096)
    assert quantity.mebibytes("1Gi") == 1024 and quantity.cpu_units("100m") == 103
    with pytest.raises(ValueError):
        quantity.parse("12zz")


# ---- admission
def test_mutation_patch_and_verdicts():
    ps = [prof("web", {"namespace": "apps", "labels": {"tier": "web"}})]
    matched, patch = admission.mutation(pod(labels={"tier": "web"}), ps, "apps")
    assert matched["fargateProfileName"] == "web"
    assert patch == [
        {"op": "add", "path": "/spec/schedulerName", "value": "fargate-scheduler"},
        {"op": "add", "path": "/metadata/labels/eks.amazonaws.com~1fargate-profile",
         "value": "web"}]
    patched = admission.apply_json_patch(pod(labels={"tier": "web"}), patch)
    assert patched["spec"]["schedulerName"] == "fargate-scheduler"
    assert admission.mutation(pod(labels={"tier": "db"}), ps, "apps") == (None, [])
    bad = pod(labels={"tier": "web"}, hostNetwork=True)
    assert admission.verdict(bad, ps, "apps") == \
        "Pod not supported on Fargate: fields not supported: HostNetwork"
    # Not Fargate's pod: not Fargate's to refuse.
    assert admission.verdict(pod(labels={"tier": "db"}, hostNetwork=True), ps, "apps") is None


def test_unsupported_fields_are_named():
    p = pod(hostPID=True, volumes=[{"name": "h", "hostPath": {"path": "/"}}])
    p["spec"]["containers"][0].update(
        securityContext={"privileged": True}, ports=[{"containerPort": 80, "hostPort": 80}],
        resources={"limits": {"nvidia.com/gpu": "1"}})
    p["metadata"]["ownerReferences"] = [{"kind": "DaemonSet", "name": "ds", "uid": "u"}]
    text = "; ".join(admission.unsupported(p))
    for word in ("HostPID", "Privileged", "HostPort", "h is of an unsupported volume Type",
                 "nvidia.com/gpu", "DaemonSet"):
        assert word in text


# ---- selectors
def test_label_and_field_selectors():
    sel = label_selector("tier=web,env!=dev,zone in (a, b),!legacy,app")
    assert sel({"tier": "web", "env": "prod", "zone": "a", "app": "x"})
    assert not sel({"tier": "web", "env": "dev", "zone": "a", "app": "x"})
    assert not sel({"tier": "web", "zone": "c", "app": "x"})
    assert not sel({"tier": "web", "zone": "a", "app": "x", "legacy": "1"})
    f = field_selector("spec.nodeName=n1,status.phase!=Failed", FIELDS["pods"])
    assert f({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})
    assert not f({"spec": {"nodeName": "n1"}, "status": {"phase": "Failed"}})
    with pytest.raises(KubeError) as err:
        field_selector("spec.bogus=1", FIELDS["pods"])
    assert err.value.code == 400


# ---- objects and patches
def test_pod_validation_errors_are_422():
    with pytest.raises(KubeError) as err:
        kubeobj.check_pod(pod(name="Bad_Name"))
    assert err.value.code == 422 and err.value.reason == "Invalid"
    broken = pod()
    broken["spec"]["containers"] = [{"name": "a"}, {"name": "a", "image": "x"}]
    broken["spec"]["restartPolicy"] = "Sometimes"
    with pytest.raises(KubeError) as err:
        kubeobj.check_pod(broken)
    fields = {c["field"] for c in err.value.details["causes"]}
    assert fields == {"spec.containers[0].image", "spec.containers[1].name",
                      "spec.restartPolicy"}
    with pytest.raises(KubeError) as err:
        kubeobj.check_pod({**pod(), "kind": "Service"})
    assert err.value.code == 400


def test_strategic_merge_patch():
    old = {"metadata": {"labels": {"a": "1", "b": "2"}},
           "spec": {"containers": [{"name": "x", "image": "i1", "env": [{"name": "E"}]},
                                   {"name": "y", "image": "i2"}]}}
    patch = {"metadata": {"labels": {"b": None, "c": "3"}},
             "spec": {"$setElementOrder/containers": [{"name": "x"}, {"name": "y"}],
                      "containers": [{"name": "y", "image": "i3"},
                                     {"name": "x", "$patch": "delete"}]}}
    new = strategic.apply(old, patch, kubeschema.kind_schema("", "v1", "Pod"))
    assert new["metadata"]["labels"] == {"a": "1", "c": "3"}
    assert new["spec"]["containers"] == [{"name": "y", "image": "i3"}]
    # Plain merge patch replaces lists whole.
    assert kubeobj.merge_patch(old, {"spec": {"containers": []}})["spec"]["containers"] == []


# ---- the pod's view of its task
def test_plan_and_restart_rules():
    spec = {"containers": [{"name": "app", "image": "x", "command": ["sh"], "args": ["-c", "x"],
                            "env": [{"name": "A", "value": "1"}],
                            "resources": {"limits": {"memory": "64Mi"}}}],
            "initContainers": [{"name": "i1", "image": "x"}, {"name": "i2", "image": "x"}],
            "restartPolicy": "OnFailure"}
    plan, policy = podtask.pod_plan(spec)
    assert [c["name"] for c in plan] == ["i1", "i2", "app"]
    assert plan[1]["dependsOn"] == [{"containerName": "i1", "condition": "SUCCESS"}]
    assert plan[2]["dependsOn"] == [{"containerName": "i2", "condition": "SUCCESS"}]
    assert plan[2]["entryPoint"] == ["sh"] and plan[2]["command"] == ["-c", "x"]
    assert plan[2]["memory"] == 64 and plan[2]["environment"] == [{"name": "A", "value": "1"}]
    assert policy == RestartPolicy("OnFailure", ["i1", "i2"])
    assert restarts.restart_wanted(RestartPolicy("Always", []), "app", 0)
    assert not restarts.restart_wanted(RestartPolicy("OnFailure", []), "app", 0)
    assert restarts.restart_wanted(RestartPolicy("OnFailure", []), "app", 2)
    assert not restarts.restart_wanted(RestartPolicy("Never", []), "app", 2)
    assert not restarts.restart_wanted(RestartPolicy("Always", ["i"]), "i", 0)
    assert restarts.backoff(1) < restarts.backoff(3) <= restarts.BACKOFF_MAX


def test_pod_status_from_task():
    p = pod()
    app = Container("app", "arn:c", "busybox", last_status="STOPPED", exit_code=137,
                    reason="OutOfMemoryError: Container killed due to memory usage",
                    run=ContainerRun(restart_count=2, oom=True))
    task = Task(id="t", arn="arn:t", cluster_arn="arn:c", task_definition_arn="arn:td:1",
                family="f", region="us-east-1", cpu=256, memory=512, created_at=1.0,
                availability_zone="us-east-1a", containers=[app], plan=[],
                interface=Interface("att", "eni-1", "subnet-1", "10.0.0.5", "ip-10-0-0-5"),
                last_status="STOPPED", desired_status="STOPPED",
                stop_code="EssentialContainerExited", started_at=2.0)
    st = podtask.pod_status(p, task, 3.0)
    assert st["phase"] == "Failed"
    cs = st["containerStatuses"][0]
    assert cs["state"]["terminated"]["reason"] == "OOMKilled" and cs["restartCount"] == 2
    app.last_status, app.exit_code = "RUNNING", None
    task.last_status, task.desired_status = "RUNNING", "RUNNING"
    st = podtask.pod_status(p, task, 3.0)
    assert st["phase"] == "Running" and st["podIP"] == "10.0.0.5"
    assert "running" in st["containerStatuses"][0]["state"]
    assert podtask.display_status({**p, "status": st}) == "Running"


def test_namespace_documents():
    ns = kubeobj.new_namespace({"metadata": {"name": "apps", "labels": {"team": "a"},
                                             "annotations": {"note": "x"}}})
    assert ns["metadata"] == {"name": "apps", "annotations": {"note": "x"},
                              "labels": {"team": "a", "kubernetes.io/metadata.name": "apps"}}
    assert ns["spec"] == {"finalizers": ["kubernetes"]} and ns["status"] == {"phase": "Active"}
    with pytest.raises(KubeError) as err:
        kubeobj.new_namespace({"metadata": {"name": "Bad_Name"}})
    assert err.value.code == 422
    merged = kubeobj.replaced_namespace(ns, {"metadata": {"labels": {"b": "2"}}}, "apps")
    assert merged["metadata"]["labels"] == {"b": "2", "kubernetes.io/metadata.name": "apps"}
    assert "annotations" not in merged["metadata"] and merged["spec"] == ns["spec"]
    with pytest.raises(KubeError) as err:
        kubeobj.replaced_namespace(ns, {"metadata": {"name": "other"}}, "apps")
    assert err.value.code == 422 and "immutable" in err.value.message


def test_kube_route_table():
    from fargo.api.kube import discovery, verbs
    from fargo.api.kube.routes import parse_target

    t = parse_target("", "v1", ["namespaces", "apps", "pods", "web", "log"])
    assert (t.res.plural, t.ns, t.name, t.sub) == ("pods", "apps", "web", "log")
    t = parse_target("", "v1", ["namespaces", "apps", "status"])
    assert (t.res.plural, t.ns, t.name, t.sub) == ("namespaces", None, "apps", "status")
    assert parse_target("", "v1", ["pods"]).name is None  # every namespace's pods
    for segs in (["pods", "web"], ["bogus"], ["namespaces", "a", "pods", "p", "log", "x"]):
        with pytest.raises(KubeError) as err:
            parse_target("", "v1", segs)
        assert err.value.code == 404
    with pytest.raises(KubeError) as err:
        verbs.verb(parse_target("", "v1", ["namespaces", "a", "pods", "p", "status"]), "PUT")
    assert err.value.code == 405
    for segs in (["nodes", "n", "log"], ["namespaces", "apps", "nodes"]):
        with pytest.raises(KubeError) as err:  # no such subresource
            verbs.verb(parse_target("", "v1", segs), "GET")
        assert err.value.code == 404
    listed = {r["name"]: r["verbs"] for r in discovery.resource_list()["resources"]}
    assert listed["nodes"] == ["get", "list", "watch"] and listed["pods/log"] == ["get"]
    assert listed["namespaces"] == ["create", "delete", "get", "list", "patch", "update", "watch"]
