"""apps/v1 Deployments and ReplicaSets without a server: their checks and defaults, the rollout
arithmetic (fenceposts, proportional scaling, revisions), which pods go first, and the two
controllers driven together over a real store with simulated pods (they become ready when
the test says so), checking maxSurge and maxUnavailable at every step."""

from __future__ import annotations

import copy
import time

import pytest

from fargo.control.deployments import Deployments
from fargo.control.gc import GarbageCollector
from fargo.control.kubestate import KubeState, now_rfc3339
from fargo.control.objects import DeleteOptions, Objects
from fargo.control.replicasets import ReplicaSets
from fargo.model import deployment as dm
from fargo.model import kubeobj, objmeta
from fargo.model import replicaset as rsm
from fargo.model.kubeerrors import KubeError
from fargo.store.kube import KubeTables
from fargo.store.sqlite import Store

pytestmark = pytest.mark.pure
C, NS = "c1", "apps"


def deployment(name: str = "web", replicas: int | None = 3, **spec) -> dict:
    body: dict = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                  "spec": {"selector": {"matchLabels": {"app": name}},
                           "template": {"metadata": {"labels": {"app": name},
                                                     "creationTimestamp": None},
                                        "spec": {"containers": [{"name": "app",
                                                                 "image": "busybox:1.36"}]}},
                           **spec}}
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    return body


def replicaset(name: str = "rs", replicas: int = 2, labels: dict | None = None) -> dict:
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels)},
                                  "spec": {"containers": [{"name": "a", "image": "x:1"}]}}}}


def refusal(fn, *args) -> KubeError:
    with pytest.raises(KubeError) as got:
        fn(*args)
    return got.value


# ---- checks and defaults
def test_defaults_are_the_apiservers() -> None:
    d = deployment(replicas=None, strategy={})
    dm.default_deployment(d)
    spec = d["spec"]
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    t = spec["template"]
    assert "creationTimestamp" not in t["metadata"]  # kubectl's null is dropped
    assert t["spec"]["restartPolicy"] == "Always" and t["spec"]["dnsPolicy"] == "ClusterFirst"
    assert t["spec"]["terminationGracePeriodSeconds"] == 30
    assert t["spec"]["schedulerName"] == "default-scheduler"
    assert "serviceAccountName" not in t["spec"]  # a pod's admission default, not a template's
    c = t["spec"]["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent" and c["resources"] == {}
    assert c["terminationMessagePath"] == "/dev/termination-log"
    recreate = deployment(strategy={"type": "Recreate"})
    dm.default_deployment(recreate)
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}
    for image, policy in (("busybox", "Always"), ("busybox:latest", "Always"),
                          ("r:5000/busybox:1", "IfNotPresent"), ("b@sha256:ab", "IfNotPresent")):
        assert rsm._pull_policy(image) == policy, image


@pytest.mark.parametrize("change,field,words", [
    ({"replicas": -1}, "spec.replicas", "must be greater than or equal to 0"),
    ({"selector": None}, "spec.selector", "Required value"),
    ({"selector": {}}, "spec.selector", "empty selector is invalid"),
    ({"selector": {"matchLabels": {"app": "other"}}}, "spec.template.metadata.labels",
     "`selector` does not match template `labels`"),
    ({"strategy": {"type": "Blue"}}, "spec.strategy.type", 'Unsupported value: "Blue"'),
    ({"strategy": {"type": "Recreate", "rollingUpdate": {}}}, "spec.strategy.rollingUpdate",
     "may not be specified when strategy `type` is 'Recreate'"),
    ({"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}},
     "spec.strategy.rollingUpdate.maxUnavailable", "may not be 0 when `maxSurge` is 0"),
    ({"strategy": {"rollingUpdate": {"maxUnavailable": "120%"}}},
     "spec.strategy.rollingUpdate.maxUnavailable", "must not be greater than 100%"),
    ({"strategy": {"rollingUpdate": {"maxSurge": "1.5"}}},
     "spec.strategy.rollingUpdate.maxSurge", "a valid percent string"),
    ({"minReadySeconds": 10, "progressDeadlineSeconds": 5}, "spec.progressDeadlineSeconds",
     "must be greater than minReadySeconds"),
    ({"revisionHistoryLimit": -2}, "spec.revisionHistoryLimit", "greater than or equal"),
])
def test_deployment_refusals(change, field, words) -> None:
    d = deployment()
    d["spec"].update(change)
    if d["spec"].get("selector") is None:
        del d["spec"]["selector"]
    dm.default_deployment(d)
    err = refusal(dm.check_deployment, d, None)
    assert err.code == 422 and err.reason == "Invalid"
    causes = {c["field"]: c["message"] for c in err.details["causes"]}
    assert field in causes and words in causes[field], causes


def test_template_refusals_name_the_template_fields() -> None:
    d = deployment()
    d["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    d["spec"]["template"]["spec"]["containers"].append({"name": "app"})
    d["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 5
    err = refusal(dm.check_deployment, d, None)
    fields = [c["field"] for c in err.details["causes"]]
    assert "spec.template.spec.restartPolicy" in fields
    assert "spec.template.spec.containers[1].name" in fields
    assert "spec.template.spec.containers[1].image" in fields
    assert "spec.template.spec.activeDeadlineSeconds" in fields
    wrong = deployment()
    wrong["spec"]["replicas"] = "3"
    err = refusal(dm.check_deployment, wrong, None)
    assert err.code == 400 and "cannot unmarshal string" in err.message
    paused = deployment(paused="yes")
    assert refusal(dm.check_deployment, paused, None).code == 400


def test_selector_is_immutable_and_replicaset_rules() -> None:
    old = deployment()
    dm.default_deployment(old)
    new = copy.deepcopy(old)
    new["spec"]["selector"]["matchLabels"]["tier"] = "x"
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    err = refusal(dm.check_deployment, new, old)
    assert "spec.selector: Invalid value: field is immutable" in err.message
    rs = replicaset()
    rsm.default_replicaset(rs)
    rsm.check_replicaset(rs, None)
    rs["spec"]["replicas"] = -3
    assert "spec.replicas" in refusal(rsm.check_replicaset, rs, None).message


# ---- rollout arithmetic
@pytest.mark.parametrize("replicas,surge,unavailable,want", [
    (10, "25%", "25%", (3, 2)), (1, "25%", "25%", (1, 0)), (4, 1, 0, (1, 0)),
    (5, 0, "10%", (0, 1)), (3, "50%", "50%", (2, 1)), (0, "25%", "25%", (0, 1)),
])
def test_fenceposts_round_surge_up_and_unavailable_down(replicas, surge, unavailable,
                                                        want) -> None:
    d = deployment(replicas=replicas, strategy={"rollingUpdate": {
        "maxSurge": surge, "maxUnavailable": unavailable}})
    dm.default_deployment(d)
    assert dm.fenceposts(d) == want
    assert dm.max_unavailable(d) == (0 if replicas == 0 else min(want[1], replicas))


def test_hash_is_stable_and_ignores_nothing_but_the_collision_count() -> None:
    d = deployment()
    dm.default_deployment(d)
    t = d["spec"]["template"]
    h = dm.template_hash(t, None)
    assert len(h) == 10 and set(h) <= set(objmeta.NAME_ALPHABET)
    assert h == dm.template_hash(copy.deepcopy(t), None) != dm.template_hash(t, 1)
    body = dm.new_rs_body(d, h, 2)
    assert body["metadata"]["name"] == f"web-{h}"
    assert body["spec"]["template"]["metadata"]["labels"] == {"app": "web",
                                                              "pod-template-hash": h}
    assert body["spec"]["selector"]["matchLabels"]["pod-template-hash"] == h
    assert dm.equal_ignore_hash(body["spec"]["template"], t)


def _rs(name: str, size: int, created: str, **ann: str) -> dict:
    return {"metadata": {"name": name, "creationTimestamp": created,
                         "annotations": {k.replace("_", "-"): v for k, v in ann.items()}},
            "spec": {"replicas": size}, "status": {}}


def test_proportional_scaling_shares_out_by_size() -> None:
    # 10 replicas mid-rollout (6 old, 4 new, max 13) scaled to 20: surge 5, room 25.
    d = deployment(replicas=20)
    dm.default_deployment(d)
    old = _rs("old", 6, "2024-01-01T00:00:00Z")
    new = _rs("new", 4, "2024-01-01T00:01:00Z")
    for rs in (old, new):
        rs["metadata"]["annotations"][dm.MAX_REPLICAS] = "13"
    sizes = dm.proportional(d, [old, new])
    # old: round(6 × 25 / 13) = 12, new: round(4 × 25 / 13) = 8; the leftover 5 to the larger
    assert sizes == {"old": 17, "new": 8}
    d["spec"]["replicas"] = 5  # down: surge 2, room 7
    sizes = dm.proportional(d, [old, new])
    # old: round(6 × 7 / 13) − 6 = −3 takes the whole −3; the new one keeps its 4
    assert sizes == {"old": 3, "new": 4}


def test_revision_annotations_keep_a_history_on_rollback() -> None:
    d = deployment()
    d["metadata"]["annotations"] = {"kubernetes.io/change-cause": "v2", dm.LAST_APPLIED: "{}",
                                    dm.REVISION: "9"}
    dm.default_deployment(d)
    rs = _rs("a", 1, "t")
    assert dm.set_new_rs_annotations(d, rs, 1, exists=False)
    ann = rs["metadata"]["annotations"]
    assert ann[dm.REVISION] == "1" and ann["kubernetes.io/change-cause"] == "v2"
    assert dm.LAST_APPLIED not in ann and dm.REVISION_HISTORY not in ann
    assert ann[dm.DESIRED] == "3" and ann[dm.MAX_REPLICAS] == "4"
    assert dm.set_new_rs_annotations(d, rs, 3, exists=True)
    assert ann[dm.REVISION] == "3" and ann[dm.REVISION_HISTORY] == "1"
    assert not dm.set_new_rs_annotations(d, rs, 2, exists=True)


def _pod(name: str, phase: str = "Running", ready: str | None = None, node: str = "n",
         created: str = "2024-01-01T00:00:00Z", restarts: int = 0) -> dict:
    conds = [] if ready is None else [{"type": "Ready", "status": "True",
                                       "lastTransitionTime": ready}]
    return {"metadata": {"name": name, "uid": name, "creationTimestamp": created},
            "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": conds,
                       "containerStatuses": [{"restartCount": restarts}]}}


def test_surplus_pods_go_unscheduled_pending_unready_newest_first() -> None:
    now = time.time()
    old, newer = now_rfc3339(now - 5000), now_rfc3339(now - 10)
    pods = [_pod("ready-old", ready=old, node="a", created=old),
            _pod("ready-new", ready=newer, node="b", created=newer),
            _pod("running-unready", node="c"),
            _pod("pending", phase="Pending", node="d"),
            _pod("unscheduled", phase="Pending", node=""),
            _pod("crashy", node="e", restarts=4)]
    order = [p["metadata"]["name"] for p in rsm.deletion_order(pods, pods, now)]
    assert order[:4] == ["unscheduled", "pending", "crashy", "running-unready"]
    assert order[4:] == ["ready-new", "ready-old"]


# ---- the controllers over a store, with simulated pods
class FakePods:
    """Pods as control/pods.py keeps them, minus the tasks: created Pending, made Ready by
    the test, and deleted gracefully (gone at the next `settle`)."""

    def __init__(self, state: KubeState, refuse: str | None = None):
        self.state = state
        self.refuse = refuse
        self.made = 0

    def create(self, cluster: str, ns: str, body: dict, dry_run: bool = False) -> dict:
        if self.refuse:
            raise KubeError(400, "BadRequest", self.refuse)
        pod = copy.deepcopy(body)
        kubeobj.check_pod(pod)
        pod["status"] = {"phase": "Pending"}
        self.made += 1
        return self.state.create(cluster, "pods", ns, pod)

    def replace(self, cluster: str, ns: str, name: str, new: dict, dry_run: bool = False) -> dict:
        old = self.state.get(cluster, "pods", ns, name)
        old["metadata"] = objmeta.updated_metadata(old["metadata"], new["metadata"], "pods")
        return self.state.update(cluster, "pods", ns, old)

    def delete(self, cluster: str, ns: str, name: str, grace: int | None) -> dict:
        pod = self.state.get(cluster, "pods", ns, name)
        if not pod["metadata"].get("deletionTimestamp"):
            pod["metadata"]["deletionTimestamp"] = now_rfc3339()
            pod["metadata"]["deletionGracePeriodSeconds"] = 30
            pod = self.state.update(cluster, "pods", ns, pod)
        return pod


class World:
    def __init__(self, tmp_path):
        self.store = Store(tmp_path / "state.db")
        tables = KubeTables(self.store)
        tables.put_cluster({"name": C})
        self.state = KubeState(tables)
        self.state.create(C, "namespaces", "", kubeobj.namespace(NS))
        self.objects = Objects(self.state)
        self.pods = FakePods(self.state)
        self.rsc = ReplicaSets(self.state, self.objects, self.pods)
        self.dc = Deployments(self.state, self.objects)
        self.gc = GarbageCollector(self.state, self.objects, {
            "pods": lambda c, _, ns, name: self.pods.delete(c, ns, name, None)})

    def passes(self, n: int = 1) -> None:
        for _ in range(n):
            self.dc.reconcile(C)
            self.rsc.reconcile(C)
            self.gc.reconcile(C)

    def pods_of(self, prefix: str = "") -> list[dict]:
        return [p for p in self.state.list(C, "pods", NS)
                if p["metadata"]["name"].startswith(prefix)]

    def ready(self, limit: int | None = None) -> int:
        """Make pending pods Running and Ready (at most `limit`); finish deleted ones."""
        made = 0
        for pod in self.pods_of():
            if pod["metadata"].get("deletionTimestamp"):
                self.state.delete(C, "pods", NS, pod["metadata"]["name"])
            elif pod["status"].get("phase") == "Pending" and (limit is None or made < limit):
                pod["spec"]["nodeName"] = "node-" + pod["metadata"]["name"]
                pod["status"] = {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now_rfc3339()}]}
                self.state.update(C, "pods", NS, pod)
                made += 1
        return made

    def get(self, plural: str, name: str) -> dict:
        return self.state.get(C, plural, NS, name)

    def apply(self, body: dict) -> dict:
        name = body["metadata"]["name"]
        if self.state.find(C, "deployments", NS, name) is None:
            return self.objects.create(C, "deployments", NS, body)
        old = self.get("deployments", name)
        new = copy.deepcopy(old)
        new["spec"] = body["spec"]
        return self.objects.update(C, "deployments", NS, name, new)


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.store.close()


def available(w: World) -> int:
    return sum(1 for p in w.pods_of() if rsm.ready_since(p) is not None
               and not p["metadata"].get("deletionTimestamp"))


def test_a_deployment_comes_up_with_revision_conditions_and_events(world) -> None:
    d = world.apply(deployment(replicas=3))
    assert d["metadata"]["generation"] == 1
    world.passes()
    rss = world.state.list(C, "replicasets", NS)
    assert len(rss) == 1
    rs = rss[0]
    h = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{h}"
    assert rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    assert rs["metadata"]["annotations"][dm.REVISION] == "1"
    pods = world.pods_of()
    assert len(pods) == 3 and all(p["metadata"]["name"].startswith(f"web-{h}-") for p in pods)
    assert all(len(p["metadata"]["name"]) == len(f"web-{h}-") + 5 for p in pods)
    assert all(p["metadata"]["labels"]["pod-template-hash"] == h for p in pods)
    d = world.get("deployments", "web")
    assert d["metadata"]["annotations"][dm.REVISION] == "1"
    conds = {c["type"]: c for c in d["status"]["conditions"]}
    assert conds["Progressing"]["reason"] == "NewReplicaSetCreated"
    assert conds["Available"]["status"] == "False"
    world.ready()
    world.passes(2)
    d = world.get("deployments", "web")
    st = d["status"]
    assert (st["replicas"], st["updatedReplicas"], st["readyReplicas"],
            st["availableReplicas"]) == (3, 3, 3, 3)
    assert st["observedGeneration"] == 1 and "unavailableReplicas" not in st
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Available"]["reason"] == "MinimumReplicasAvailable"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert conds["Progressing"]["message"] == f'ReplicaSet "web-{h}" has successfully progressed.'
    events = [e["message"] for e in world.state.list(C, "events", NS)
              if e["reason"] == "ScalingReplicaSet"]
    assert events == [f"Scaled up replica set web-{h} from 0 to 3"]
    rs = world.get("replicasets", f"web-{h}")
    assert rs["status"] == {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 3,
                            "availableReplicas": 3, "observedGeneration": 1}


def _rollout(world: World, replicas: int, body: dict, ready_per_step: int) -> tuple[int, int]:
    """Drive a rolling update; the most pods ever at once and the fewest available."""
    most, fewest = 0, replicas
    world.apply(body)
    for _ in range(200):
        world.passes()
        live = [p for p in world.pods_of() if not p["metadata"].get("deletionTimestamp")]
        most = max(most, len(live))
        fewest = min(fewest, available(world))
        d = world.get("deployments", "web")
        st = d["status"]
        if st.get("updatedReplicas") == replicas == st.get("availableReplicas") == \
                st.get("replicas") and st.get("observedGeneration") == \
                d["metadata"]["generation"]:
            return most, fewest
        world.ready(ready_per_step)
    raise AssertionError(world.get("deployments", "web")["status"])


def test_rolling_update_stays_within_surge_and_unavailable(world) -> None:
    world.apply(deployment(replicas=10))
    for _ in range(3):
        world.passes()
        world.ready()
    changed = deployment(replicas=10)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:1.37"
    most, fewest = _rollout(world, 10, changed, ready_per_step=1)
    assert most <= 13 and fewest >= 8, (most, fewest)
    rss = {rs["metadata"]["name"]: rs for rs in world.state.list(C, "replicasets", NS)}
    assert len(rss) == 2
    revs = sorted((rs["metadata"]["annotations"][dm.REVISION], rs["spec"]["replicas"])
                  for rs in rss.values())
    assert revs == [("1", 0), ("2", 10)]
    assert world.get("deployments", "web")["metadata"]["annotations"][dm.REVISION] == "2"
    msgs = [e["message"] for e in world.state.list(C, "events", NS)
            if e["reason"] == "ScalingReplicaSet"]
    assert any(m.startswith("Scaled down replica set") and m.endswith("to 0") for m in msgs)
    # Back to the first template: its ReplicaSet comes back as revision 3.
    _rollout(world, 10, deployment(replicas=10), ready_per_step=3)
    revs = sorted((rs["metadata"]["annotations"][dm.REVISION], rs["spec"]["replicas"],
                   rs["metadata"]["annotations"].get(dm.REVISION_HISTORY))
                  for rs in world.state.list(C, "replicasets", NS))
    assert revs == [("2", 0, None), ("3", 10, "1")]


def test_max_surge_zero_takes_one_away_first(world) -> None:
    body = deployment(replicas=4, strategy={"rollingUpdate": {"maxSurge": 0,
                                                              "maxUnavailable": 1}})
    world.apply(body)
    for _ in range(3):
        world.passes()
        world.ready()
    changed = copy.deepcopy(body)
    changed["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    most, fewest = _rollout(world, 4, changed, ready_per_step=1)
    assert most <= 4 and fewest >= 3


def test_recreate_waits_for_old_pods_to_be_gone(world) -> None:
    body = deployment(replicas=2, strategy={"type": "Recreate"})
    world.apply(body)
    for _ in range(3):
        world.passes()
        world.ready()
    changed = copy.deepcopy(body)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
    world.apply(changed)
    world.passes(3)
    old_hash = dm.template_hash(world.get("deployments", "web")["spec"]["template"], None)
    assert len(world.state.list(C, "replicasets", NS)) == 1  # not before the old pods go
    assert all(p["metadata"].get("deletionTimestamp") for p in world.pods_of())
    world.ready()  # the terminating pods finish
    world.passes(2)
    rss = world.state.list(C, "replicasets", NS)
    assert len(rss) == 2 and any(rs["metadata"]["name"].endswith(old_hash) for rs in rss)
    assert len(world.pods_of()) == 2


def test_scale_and_pause(world) -> None:
    body = deployment(replicas=2)
    world.apply(body)
    world.passes()
    world.ready()
    world.passes(2)
    paused = copy.deepcopy(body)
    paused["spec"]["paused"] = True
    world.apply(paused)
    world.passes()
    d = world.get("deployments", "web")
    cond = dm.get_condition(d["status"], "Progressing")
    assert (cond["status"], cond["reason"]) == ("Unknown", "DeploymentPaused")
    # A template change waits; a scale does not.
    paused["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:9"
    paused["spec"]["replicas"] = 4
    world.apply(paused)
    world.passes(2)
    rss = world.state.list(C, "replicasets", NS)
    assert len(rss) == 1 and rss[0]["spec"]["replicas"] == 4
    assert len(world.pods_of()) == 4
    resumed = copy.deepcopy(paused)
    resumed["spec"]["paused"] = False
    world.apply(resumed)
    for _ in range(10):
        world.passes()
        world.ready()
    d = world.get("deployments", "web")
    assert len(world.state.list(C, "replicasets", NS)) == 2
    assert d["status"]["updatedReplicas"] == 4 and d["status"]["availableReplicas"] == 4
    assert dm.get_condition(d["status"], "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_revision_history_limit_prunes_old_replicasets(world) -> None:
    body = deployment(replicas=1, revisionHistoryLimit=1)
    for i in range(4):
        body["spec"]["template"]["spec"]["containers"][0]["image"] = f"busybox:{i}"
        world.apply(copy.deepcopy(body))
        for _ in range(6):
            world.passes()
            world.ready()
    revs = sorted(rs["metadata"]["annotations"][dm.REVISION]
                  for rs in world.state.list(C, "replicasets", NS))
    assert revs == ["3", "4"]


def test_progress_deadline_and_replica_failure(world) -> None:
    world.pods.refuse = ('admission webhook "0500-amazon-eks-fargate-mutation.amazonaws.com" '
                         "denied the request: Pod not supported on Fargate: fields not "
                         "supported: HostNetwork")
    world.apply(deployment(replicas=2, progressDeadlineSeconds=1))
    world.passes(2)
    rs = world.state.list(C, "replicasets", NS)[0]
    cond = rs["status"]["conditions"][0]
    assert (cond["type"], cond["reason"]) == ("ReplicaFailure", "FailedCreate")
    assert "HostNetwork" in cond["message"]
    warnings = [e for e in world.state.list(C, "events", NS) if e["reason"] == "FailedCreate"]
    assert warnings and warnings[0]["message"].startswith("Error creating: admission webhook")
    d = world.get("deployments", "web")
    assert dm.get_condition(d["status"], "ReplicaFailure")["reason"] == "FailedCreate"
    # Past the deadline with no progress: ProgressDeadlineExceeded.
    st = copy.deepcopy(d["status"])
    for c in st["conditions"]:
        if c["type"] == "Progressing":
            c["lastUpdateTime"] = now_rfc3339(time.time() - 5)
    world.objects.write_status(C, "deployments", NS, d, st)
    world.passes()
    cond = dm.get_condition(world.get("deployments", "web")["status"], "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
    # Once pods may be made, the failure goes.
    world.pods.refuse = None
    for _ in range(4):
        world.passes()
        world.ready()
    d = world.get("deployments", "web")
    assert dm.get_condition(d["status"], "ReplicaFailure") is None
    assert d["status"]["availableReplicas"] == 2


def test_replicaset_adopts_orphans_releases_strays_and_counts(world) -> None:
    for i in range(3):
        world.state.create(C, "pods", NS, {"metadata": {"name": f"orphan-{i}",
                                                        "labels": {"app": "rs"}},
                                           "spec": {"containers": [{"name": "a", "image": "x"}]},
                                           "status": {"phase": "Pending"}})
    rs = world.objects.create(C, "replicasets", NS, replicaset(replicas=2))
    world.passes()
    pods = world.pods_of("orphan-")
    owned = [p for p in pods if objmeta.controller_of(p)
             and not p["metadata"].get("deletionTimestamp")]
    assert len(owned) == 2 and world.pods.made == 0
    assert all(objmeta.controller_of(p)["uid"] == rs["metadata"]["uid"] for p in owned)
    assert sum(1 for p in pods if p["metadata"].get("deletionTimestamp")) == 1
    # A pod whose labels stop matching is let go, and a new one replaces it.
    stray = copy.deepcopy(owned[0])
    stray["metadata"]["labels"] = {"app": "elsewhere"}
    world.pods.replace(C, NS, stray["metadata"]["name"], stray)
    world.passes()
    assert objmeta.controller_of(world.get("pods", stray["metadata"]["name"])) is None
    assert world.pods.made == 1
    got = world.get("replicasets", "rs")["status"]
    assert got["replicas"] == 2 and got["observedGeneration"] == 1


def test_deleting_a_deployment_takes_its_replicasets_and_pods(world) -> None:
    world.apply(deployment(replicas=2))
    world.passes()
    world.objects.delete(C, "deployments", NS, "web", DeleteOptions())
    for _ in range(3):
        world.passes()
        world.ready()
    assert world.state.list(C, "replicasets", NS) == [] and world.pods_of() == []


def test_a_pass_cut_short_is_finished_without_duplicates(world) -> None:
    """Whatever the pass did before a crash, the next pass counts from the store."""
    world.apply(deployment(replicas=3))
    world.dc.reconcile(C)  # the ReplicaSet is made; its pods are not, yet
    rs = world.state.list(C, "replicasets", NS)[0]
    # Half a pass: one pod made, then the "crash".
    body = rsm.pod_from_template(rs, objmeta.owner_reference(rs))
    objmeta.assign_name(body, "zzzzz")
    world.pods.create(C, NS, body)
    world.dc.reconcile(C)  # a second Deployment pass finds the same ReplicaSet
    world.passes(2)
    assert len(world.state.list(C, "replicasets", NS)) == 1
    assert len(world.pods_of()) == 3


# ---- protobuf, as `kubectl create deployment` posts it
def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _f(num: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _entry(num: int, key: str, value: str) -> bytes:
    return _f(num, _f(1, key) + _f(2, value))


def test_protobuf_deployment_reads_as_json() -> None:
    from fargo.api.kube import protobuf

    labels = _entry(11, "app", "web")
    meta = _f(1, "web") + _f(2, "") + _f(3, "apps") + _f(7, 0) + _f(8, b"") + labels
    container = (_f(1, "busybox") + _f(2, "busybox:1") + _f(3, "sh") + _f(3, "-c")
                 + _f(3, "sleep 1") + _f(5, "") + _f(8, b"") + _f(16, 0))
    pod = _f(2, container) + _f(3, "") + _f(11, 0)
    template = _f(1, _f(8, b"") + labels) + _f(2, pod)
    strategy = _f(1, "RollingUpdate") + _f(2, _f(1, _f(1, 1) + _f(3, "30%"))
                                            + _f(2, _f(1, 0) + _f(2, 2)))
    spec = (_f(1, 0) + _f(2, _entry(1, "app", "web")) + _f(3, template) + _f(4, strategy)
            + _f(5, 0) + _f(7, 0))
    status = _f(1, 0) + _f(2, 0)
    body = _f(1, meta) + _f(2, spec) + _f(3, status)
    raw = protobuf.MAGIC + _f(1, _f(1, "apps/v1") + _f(2, "Deployment")) + _f(2, body)
    assert protobuf.decode(raw) == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps", "labels": {"app": "web"}},
        "spec": {"replicas": 0,  # a pointer: its zero is kept
                 "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "busybox", "image": "busybox:1",
                                                       "command": ["sh", "-c", "sleep 1"],
                                                       "resources": {}}]}},
                 "strategy": {"type": "RollingUpdate",
                              "rollingUpdate": {"maxUnavailable": "30%", "maxSurge": 2}}}}
    # A field fargo does not read is refused by name, never dropped.
    bad = protobuf.MAGIC + _f(1, _f(1, "apps/v1") + _f(2, "Deployment")) + _f(
        2, _f(2, _f(3, _f(2, _f(18, b"")))))  # spec.template.spec.affinity
    with pytest.raises(ValueError, match="field 18 of PodSpec"):
        protobuf.decode(bad)
