"""apps/v1 Deployments and ReplicaSets on Fargate driven by the real kubectl: create, apply,
get (and -o wide), rollout status/history/undo/restart/pause/resume, scale, set image, a
label patch that moves the pods onto a Fargate profile, refusals, and a SIGKILL of the
server mid-rollout. Pods are real runc sandboxes; replicas stay small, grace periods short."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import FargoServer, FargoServers
from tests.imagebuild import build_busybox_oci, push_layout
from tests.test_kubectl import KUBECTL, eks_cluster, kubectl, kubectl_run

NS = "apps"
SLEEPER = "trap 'exit 0' TERM; sleep 3600 & wait"
pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with FargoServers(tmp_path_factory.mktemp("deploy-state")) as servers:
        yield servers("--overcommit", "8")


def make_cluster(srv: FargoServer, base: Path) -> tuple[str, Path]:
    """An EKS cluster with a profile for namespace apps, tier=web, and its kubeconfig."""
    return eks_cluster(srv, base, [{"namespace": NS, "labels": {"tier": "web"}}], [NS], "d",
                       "web")


@pytest.fixture(scope="module")
def cfg(srv, tmp_path_factory) -> Path:
    return make_cluster(srv, tmp_path_factory.mktemp("kube"))[1]


@pytest.fixture(scope="module")
def second_image(registry, busybox_image, tmp_path_factory) -> str:
    """The same busybox under another tag: `kubectl set image` needs a second image."""
    layout = build_busybox_oci(tmp_path_factory.mktemp("layout2") / "busybox")
    push_layout(layout, registry.address, "busybox:v2")
    return f"{registry.address}/busybox:v2"


def deployment(name: str, image: str, replicas: int = 2, labels: dict | None = None,
               **spec) -> dict:
    labels = labels or {"app": name, "tier": "web"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 2,
                                           "containers": [{"name": "app", "image": image,
                                                           "command": ["sh", "-c", SLEEPER]}]}},
                     **spec}}


def get(cfg: Path, kind: str, name: str) -> dict:
    return json.loads(kubectl_run(cfg, "get", kind, name, "-n", NS, "-o", "json"))


def items(cfg: Path, kind: str, *selector: str) -> list[dict]:
    return json.loads(kubectl_run(cfg, "get", kind, "-n", NS, "-o", "json", *selector))["items"]


def rollout_status(cfg: Path, name: str, timeout: int = 90) -> str:
    out = kubectl(cfg, "rollout", "status", f"deployment/{name}", "-n", NS,
                  f"--timeout={timeout}s", timeout=timeout + 10)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f'deployment "{name}" successfully rolled out' in out.stdout
    return out.stdout


def live_pods(cfg: Path, name: str) -> list[dict]:
    return [p for p in items(cfg, "pods", "-l", f"app={name}")
            if not p["metadata"].get("deletionTimestamp")]


def delete_deployment(cfg: Path, name: str) -> None:
    kubectl_run(cfg, "delete", "deployment", name, "-n", NS)
    deadline = time.time() + 60
    while items(cfg, "pods", "-l", f"app={name}") or items(cfg, "rs", "-l", f"app={name}"):
        assert time.time() < deadline, "the deployment's pods and replica sets stay"
        time.sleep(0.2)


def test_create_move_onto_a_profile_scale_and_print(cfg, busybox_image):
    # `kubectl create deployment`: app=mover only, which no Fargate profile selects.
    kubectl_run(cfg, "create", "deployment", "mover", "-n", NS, f"--image={busybox_image}",
                "--replicas=2", "--", "sh", "-c", SLEEPER)
    d = get(cfg, "deployment", "mover")
    assert d["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": "25%", "maxUnavailable": "25%"}}
    assert d["spec"]["revisionHistoryLimit"] == 10 and d["spec"]["progressDeadlineSeconds"] == 600
    deadline = time.time() + 20
    while len(items(cfg, "pods", "-l", "app=mover")) < 2:
        assert time.time() < deadline
        time.sleep(0.1)
    assert {p["status"]["phase"] for p in items(cfg, "pods", "-l", "app=mover")} == {"Pending"}
    waiting = kubectl(cfg, "rollout", "status", "deployment/mover", "-n", NS, "--timeout=2s")
    assert waiting.returncode != 0 and "0 of 2 updated replicas are available" in waiting.stdout
    # The label that the profile selects, patched into the template: a new ReplicaSet, whose
    # pods run; the old (Pending) ones go.
    kubectl_run(cfg, "patch", "deployment", "mover", "-n", NS, "-p", json.dumps(
        {"spec": {"template": {"metadata": {"labels": {"tier": "web"}},
                               "spec": {"terminationGracePeriodSeconds": 2}}}}))
    rollout_status(cfg, "mover")
    pods = live_pods(cfg, "mover")
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)
    assert all(p["metadata"]["labels"]["eks.amazonaws.com/fargate-profile"] == "web"
               for p in pods)
    rss = items(cfg, "rs", "-l", "app=mover")
    new = next(r for r in rss if r["spec"]["replicas"] == 2)
    h = new["metadata"]["labels"]["pod-template-hash"]
    assert new["metadata"]["name"] == f"mover-{h}"
    assert all(p["metadata"]["name"].startswith(f"mover-{h}-") and
               p["metadata"]["labels"]["pod-template-hash"] == h for p in pods)
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    # kubectl scale, through the scale subresource.
    kubectl_run(cfg, "scale", "deployment", "mover", "-n", NS, "--replicas=3")
    rollout_status(cfg, "mover")
    d = get(cfg, "deployment", "mover")
    st = d["status"]
    assert (st["replicas"], st["updatedReplicas"], st["readyReplicas"],
            st["availableReplicas"]) == (3, 3, 3, 3)
    assert st["observedGeneration"] == d["metadata"]["generation"]
    assert {c["type"]: c["reason"] for c in st["conditions"]} == {
        "Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}
    # Printing, as upstream's columns.
    wide = kubectl_run(cfg, "get", "deploy,rs", "-n", NS, "-o", "wide").splitlines()
    head = next(line for line in wide if line.startswith("NAME") and "UP-TO-DATE" in line)
    assert head.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS",
                            "IMAGES", "SELECTOR"]
    row = next(line for line in wide if line.startswith("deployment.apps/mover "))
    assert row.split()[1:4] == ["3/3", "3", "3"] and row.split()[-1] == "app=mover"
    assert busybox_image in row
    rs_head = next(line for line in wide if line.startswith("NAME") and "DESIRED" in line)
    assert rs_head.split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS",
                               "IMAGES", "SELECTOR"]
    row = next(line for line in wide if line.startswith(f"replicaset.apps/mover-{h} "))
    assert row.split()[1:4] == ["3", "3", "3"]
    assert row.split()[-1] == f"app=mover,pod-template-hash={h}"
    described = kubectl_run(cfg, "describe", "deployment", "mover", "-n", NS)
    assert f"Scaled up replica set mover-{h} from 2 to 3" in described
    assert "ScalingReplicaSet" in described
    names = kubectl_run(cfg, "get", "all", "-n", NS, "-o", "name").split()
    assert "deployment.apps/mover" in names and f"replicaset.apps/mover-{h}" in names
    delete_deployment(cfg, "mover")


def revisions(cfg: Path, name: str) -> dict[str, dict]:
    """The Deployment's ReplicaSets by revision."""
    return {r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: r
            for r in items(cfg, "rs", "-l", f"app={name}")}


def image_of(obj: dict) -> str:
    return obj["spec"]["template"]["spec"]["containers"][0]["image"]


def test_apply_set_image_history_undo_restart_pause(cfg, busybox_image, second_image):
    body = deployment("web", busybox_image, replicas=2, strategy={
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    body["metadata"]["annotations"] = {"kubernetes.io/change-cause": "first"}
    assert "deployment.apps/web created" in kubectl_run(cfg, "apply", "-f", "-",
                                                        stdin=json.dumps(body))
    rollout_status(cfg, "web")
    # kubectl set image: revision 2, rolled with one surge pod and none unavailable.
    # (The change-cause goes onto the new ReplicaSet: annotated after the change, as the
    # deployment controller copies a Deployment's annotations to its newest ReplicaSet.)
    kubectl_run(cfg, "set", "image", "deployment/web", "-n", NS, f"app={second_image}")
    kubectl_run(cfg, "annotate", "deployment", "web", "-n", NS, "--overwrite",
                "kubernetes.io/change-cause=to v2")
    rollout_status(cfg, "web")
    revs = revisions(cfg, "web")
    assert set(revs) == {"1", "2"} and image_of(revs["2"]) == second_image
    assert revs["2"]["spec"]["replicas"] == 2 and revs["1"]["spec"]["replicas"] == 0
    assert revs["2"]["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "3"
    history = kubectl_run(cfg, "rollout", "history", "deployment/web", "-n", NS)
    rows = [line.split(None, 1) for line in history.splitlines()[2:] if line.strip()]
    assert rows == [["1", "first"], ["2", "to v2"]], history
    assert second_image in kubectl_run(cfg, "rollout", "history", "deployment/web", "-n", NS,
                                       "--revision=2")
    # kubectl rollout undo patches the old template back: its ReplicaSet comes back as 3.
    assert "rolled back" in kubectl_run(cfg, "rollout", "undo", "deployment/web", "-n", NS)
    rollout_status(cfg, "web")
    revs = revisions(cfg, "web")
    assert set(revs) == {"2", "3"} and image_of(revs["3"]) == busybox_image
    assert revs["3"]["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] \
        == "1"
    d = get(cfg, "deployment", "web")
    assert image_of(d) == busybox_image
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert d["metadata"]["annotations"]["kubernetes.io/change-cause"] == "first"
    kubectl_run(cfg, "rollout", "undo", "deployment/web", "-n", NS, "--to-revision=2")
    rollout_status(cfg, "web")
    assert image_of(get(cfg, "deployment", "web")) == second_image
    assert set(revisions(cfg, "web")) == {"3", "4"}
    # restart: a template annotation, so a new ReplicaSet and new pods.
    before = {p["metadata"]["name"] for p in live_pods(cfg, "web")}
    kubectl_run(cfg, "rollout", "restart", "deployment/web", "-n", NS)
    rollout_status(cfg, "web")
    after = live_pods(cfg, "web")
    assert len(after) == 2 and not before & {p["metadata"]["name"] for p in after}
    assert all("kubectl.kubernetes.io/restartedAt" in p["metadata"]["annotations"]
               for p in after)
    # pause: a template change waits (no new ReplicaSet); a scale does not. resume rolls.
    kubectl_run(cfg, "rollout", "pause", "deployment/web", "-n", NS)
    kubectl_run(cfg, "set", "env", "deployment/web", "-n", NS, "MODE=paused")
    kubectl_run(cfg, "scale", "deployment/web", "-n", NS, "--replicas=3")
    deadline = time.time() + 30
    while len(live_pods(cfg, "web")) < 3:
        assert time.time() < deadline
        time.sleep(0.2)
    d = get(cfg, "deployment", "web")
    prog = next(c for c in d["status"]["conditions"] if c["type"] == "Progressing")
    assert (prog["status"], prog["reason"]) == ("Unknown", "DeploymentPaused")
    assert set(revisions(cfg, "web")) == {"3", "4", "5"}
    undo = kubectl(cfg, "rollout", "undo", "deployment/web", "-n", NS)
    assert undo.returncode != 0 and "cannot rollback a paused deployment" in undo.stderr
    kubectl_run(cfg, "rollout", "resume", "deployment/web", "-n", NS)
    rollout_status(cfg, "web")
    revs = revisions(cfg, "web")
    assert "6" in revs and revs["6"]["spec"]["replicas"] == 3
    env = revs["6"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "MODE", "value": "paused"}]
    # revisionHistoryLimit prunes what is past it (once old ReplicaSets are empty).
    kubectl_run(cfg, "patch", "deployment", "web", "-n", NS, "--type=merge", "-p",
                '{"spec": {"revisionHistoryLimit": 1}}')
    deadline = time.time() + 30
    while set(revisions(cfg, "web")) != {"5", "6"}:
        assert time.time() < deadline, set(revisions(cfg, "web"))
        time.sleep(0.2)
    # kubectl apply of the Recreate strategy (its patch's $retainKeys drops rollingUpdate),
    # then a Recreate rollout: every old pod is gone before a new one is made.
    old_hash = revisions(cfg, "web")["6"]["metadata"]["labels"]["pod-template-hash"]
    body["spec"]["strategy"] = {"type": "Recreate"}
    kubectl_run(cfg, "apply", "-f", "-", stdin=json.dumps(body))
    deadline = time.time() + 60
    while True:
        pods = items(cfg, "pods", "-l", "app=web")
        hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in pods}
        assert len(hashes) <= 1, "old and new pods at once under Recreate"
        if hashes and hashes != {old_hash} and len(live_pods(cfg, "web")) == 2:
            break
        assert time.time() < deadline, hashes
        time.sleep(0.05)
    rollout_status(cfg, "web")
    assert get(cfg, "deployment", "web")["spec"]["strategy"] == {"type": "Recreate"}
    delete_deployment(cfg, "web")


def test_a_replicaset_of_its_own(cfg, busybox_image):
    body = deployment("solo", busybox_image, replicas=2)
    body["kind"] = "ReplicaSet"
    kubectl_run(cfg, "apply", "-f", "-", stdin=json.dumps(body))

    def wait_ready(n: int) -> list[dict]:
        deadline = time.time() + 30
        while True:
            rs = get(cfg, "rs", "solo")
            pods = live_pods(cfg, "solo")
            if (rs.get("status") or {}).get("readyReplicas", 0) == n == len(pods) and \
                    rs["status"].get("observedGeneration") == rs["metadata"]["generation"]:
                return pods
            assert time.time() < deadline, rs.get("status")
            time.sleep(0.1)

    pods = wait_ready(2)
    uid = get(cfg, "rs", "solo")["metadata"]["uid"]
    for pod in pods:
        assert pod["metadata"]["name"].startswith("solo-") and \
            len(pod["metadata"]["name"]) == len("solo-") + 5
        assert pod["metadata"]["ownerReferences"] == [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "solo", "uid": uid,
            "controller": True, "blockOwnerDeletion": True}]
    # A pod deleted is replaced; kubectl scale goes through the scale subresource.
    kubectl_run(cfg, "delete", "pod", pods[0]["metadata"]["name"], "-n", NS, "--wait=false")
    replaced = wait_ready(2)
    assert pods[0]["metadata"]["name"] not in {p["metadata"]["name"] for p in replaced}
    kubectl_run(cfg, "scale", "rs", "solo", "-n", NS, "--replicas=1")
    wait_ready(1)
    row = kubectl_run(cfg, "get", "rs", "solo", "-n", NS, "--no-headers").split()
    assert row[:4] == ["solo", "1", "1", "1"]
    events = kubectl_run(cfg, "get", "events", "-n", NS, "--field-selector",
                         "involvedObject.name=solo,involvedObject.kind=ReplicaSet")
    assert "SuccessfulCreate" in events and "SuccessfulDelete" in events
    kubectl_run(cfg, "delete", "rs", "solo", "-n", NS)
    deadline = time.time() + 30
    while items(cfg, "pods", "-l", "app=solo"):
        assert time.time() < deadline
        time.sleep(0.2)


def test_refusals_replica_failure_and_progress_deadline(cfg, busybox_image):
    def refused(body: dict, words: str) -> None:
        out = kubectl(cfg, "apply", "-f", "-", stdin=json.dumps(body))
        assert out.returncode != 0 and words in out.stderr, out.stderr

    mismatch = deployment("bad", busybox_image, labels={"app": "other"})
    refused(mismatch, "spec.template.metadata.labels: Invalid value: "
            'map[string]string{"app":"other"}: `selector` does not match template `labels`')
    frozen = deployment("bad", busybox_image, strategy={
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}})
    refused(frozen, "may not be 0 when `maxSurge` is 0")
    never = deployment("bad", busybox_image)
    never["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    refused(never, 'spec.template.spec.restartPolicy: Unsupported value: "Never"')
    # Fargate's admission refuses the pods, not the Deployment: the ReplicaSet says so.
    host = deployment("hostnet", busybox_image, replicas=1)
    host["spec"]["template"]["spec"]["hostNetwork"] = True
    kubectl_run(cfg, "apply", "-f", "-", stdin=json.dumps(host))
    deadline = time.time() + 20
    while True:
        rss = items(cfg, "rs", "-l", "app=hostnet")
        conds = (rss[0].get("status") or {}).get("conditions") or [] if rss else []
        if conds:
            break
        assert time.time() < deadline, rss
        time.sleep(0.2)
    assert conds[0]["type"] == "ReplicaFailure" and conds[0]["reason"] == "FailedCreate"
    assert "Pod not supported on Fargate: fields not supported: HostNetwork" in \
        conds[0]["message"]
    events = kubectl_run(cfg, "get", "events", "-n", NS, "--field-selector",
                         f"involvedObject.name={rss[0]['metadata']['name']}")
    assert "FailedCreate" in events and "Error creating: admission webhook" in events
    deadline = time.time() + 10
    while not any(c["type"] == "ReplicaFailure" for c in
                  get(cfg, "deployment", "hostnet")["status"].get("conditions") or []):
        assert time.time() < deadline
        time.sleep(0.2)
    # The selector may not change.
    moved = json.loads(json.dumps(host))
    moved["spec"]["selector"]["matchLabels"]["extra"] = "x"
    moved["spec"]["template"]["metadata"]["labels"]["extra"] = "x"
    refused(moved, "spec.selector: Invalid value: field is immutable")
    delete_deployment(cfg, "hostnet")
    # Pods no profile selects stay Pending: past progressDeadlineSeconds, rollout status
    # says the deadline passed.
    stuck = deployment("stuck", busybox_image, replicas=1, labels={"app": "stuck"},
                       progressDeadlineSeconds=2)
    kubectl_run(cfg, "apply", "-f", "-", stdin=json.dumps(stuck))
    out = kubectl(cfg, "rollout", "status", "deployment/stuck", "-n", NS, "--timeout=30s",
                  timeout=40)
    assert out.returncode != 0 and 'deployment "stuck" exceeded its progress deadline' in \
        out.stderr, out.stdout + out.stderr
    prog = next(c for c in get(cfg, "deployment", "stuck")["status"]["conditions"]
                if c["type"] == "Progressing")
    assert (prog["status"], prog["reason"]) == ("False", "ProgressDeadlineExceeded")
    kubectl_run(cfg, "delete", "deployment", "stuck", "-n", NS)


def test_a_sigkill_mid_rollout_leaves_no_duplicate_and_finishes(fargo_servers, busybox_image,
                                                                second_image, tmp_path):
    srv = fargo_servers("--overcommit", "8", name="crash")
    _, config = make_cluster(srv, tmp_path)
    kubectl_run(config, "apply", "-f", "-",
                stdin=json.dumps(deployment("crash", busybox_image, replicas=3)))
    rollout_status(config, "crash")
    kubectl_run(config, "set", "image", "deployment/crash", "-n", NS, f"app={second_image}")
    deadline = time.time() + 30
    while True:  # mid-rollout: the new ReplicaSet has made a pod, old pods still run
        pods = items(config, "pods", "-l", "app=crash")
        hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in pods}
        if len(hashes) == 2:
            break
        assert time.time() < deadline
        time.sleep(0.05)
    srv.kill()
    srv.start()
    rollout_status(config, "crash", timeout=120)
    new = next(r for r in items(config, "rs", "-l", "app=crash") if image_of(r) == second_image)
    deadline = time.time() + 30
    while True:  # the old pods finish terminating
        pods = items(config, "pods", "-l", "app=crash")
        if len(pods) == 3:
            break
        assert time.time() < deadline, [p["metadata"]["name"] for p in pods]
        time.sleep(0.2)
    time.sleep(2.5)  # a pass or more later, still exactly the three
    pods = items(config, "pods", "-l", "app=crash")
    assert len(pods) == 3
    for pod in pods:
        refs = pod["metadata"]["ownerReferences"]
        assert [r["uid"] for r in refs if r.get("controller")] == [new["metadata"]["uid"]]
        assert pod["status"]["phase"] == "Running"
    assert len(items(config, "rs", "-l", "app=crash")) == 2
    assert get(config, "deployment", "crash")["status"]["replicas"] == 3
    delete_deployment(config, "crash")
