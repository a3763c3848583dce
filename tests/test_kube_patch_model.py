"""Strategic merge patch (model/strategic.py) as kube-apiserver applies it, by the kinds'
merge keys and the patch's directives."""

from __future__ import annotations

import copy

import pytest

from fargo.model import kubeschema
from fargo.model.strategic import PatchError, apply

pytestmark = pytest.mark.pure

POD = kubeschema.kind_schema("", "v1", "Pod")
DEPLOYMENT = kubeschema.kind_schema("apps", "v1", "Deployment")


def pod(*containers: dict, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": list(containers), **spec}}


def test_maps_merge_and_nulls_delete():
    old = {"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}}
    new = apply(old, {"metadata": {"labels": {"b": None, "c": "3", "gone": None}}}, POD)
    assert new["metadata"]["labels"] == {"a": "1", "c": "3"}
    assert old["metadata"]["labels"] == {"a": "1", "b": "2"}  # not changed in place


def test_lists_merge_by_their_keys():
    old = pod({"name": "a", "image": "i1", "env": [{"name": "X", "value": "1"}],
               "ports": [{"containerPort": 80}]},
              {"name": "b", "image": "i2"}, tolerations=[{"key": "k"}])
    new = apply(old, {"spec": {
        "containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}],
                        "ports": [{"containerPort": 443}]},
                       {"name": "c", "image": "i3"}],
        "tolerations": [{"key": "other"}]}}, POD)
    # the patch's items in its order, the others placed by where they stood (the
    # apiserver's interleaving)
    a, c, b = new["spec"]["containers"]
    assert (a["name"], c["name"], b["name"]) == ("a", "c", "b")
    assert a["image"] == "i1" and a["env"] == [{"name": "Y", "value": "2"},
                                                {"name": "X", "value": "1"}]
    assert [p["containerPort"] for p in a["ports"]] == [443, 80]
    assert new["spec"]["tolerations"] == [{"key": "other"}]  # atomic: replaced


def test_list_directives():
    old = pod({"name": "a", "image": "i1"}, {"name": "b", "image": "i2"})
    gone = apply(old, {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}, POD)
    assert [c["name"] for c in gone["spec"]["containers"]] == ["b"]
    replaced = apply(old, {"spec": {"containers": [{"name": "z", "image": "i"},
                                                   {"$patch": "replace"}]}}, POD)
    assert replaced["spec"]["containers"] == [{"name": "z", "image": "i"}]
    with pytest.raises(PatchError) as err:
        apply(old, {"spec": {"containers": [{"image": "i"}]}}, POD)
    assert err.value.code == 400 and "does not contain declared merge key: name" in str(err.value)
    with pytest.raises(PatchError):
        apply(old, {"spec": {"containers": [{"name": "a", "$patch": "frobnicate"}]}}, POD)


def test_map_directives():
    old = {"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"nodeSelector": {"x": "1"}}}
    new = apply(old, {"metadata": {"labels": {"$patch": "replace", "b": "2"}}}, POD)
    assert new["metadata"]["labels"] == {"b": "2"}
    new = apply(old, {"spec": {"nodeSelector": {"$patch": "delete"}}}, POD)
    assert new["spec"]["nodeSelector"] == {}
    with pytest.raises(PatchError):
        apply(old, {"metadata": {"$patch": "nope"}}, POD)
    with pytest.raises(PatchError):
        apply(old, {"metadata": {"$frob": 1}}, POD)


def test_set_element_order():
    old = pod({"name": "a"}, {"name": "b"}, {"name": "c"})
    # kubectl apply's patch for a reorder plus a change
    new = apply(old, {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"},
                                                                {"name": "b"}],
                               "containers": [{"name": "a", "image": "x"}]}}, POD)
    assert [c["name"] for c in new["spec"]["containers"]] == ["c", "a", "b"]
    assert new["spec"]["containers"][1] == {"name": "a", "image": "x"}
    # the order alone; an item it does not name goes before the first named one that
    # stood after it
    new = apply(old, {"spec": {"$setElementOrder/containers": [{"name": "c"},
                                                                {"name": "a"}]}}, POD)
    assert [c["name"] for c in new["spec"]["containers"]] == ["b", "c", "a"]
    # a new item without an order goes first (it has no place in the live list)
    new = apply(old, {"spec": {"containers": [{"name": "d"}]}}, POD)
    assert [c["name"] for c in new["spec"]["containers"]] == ["d", "a", "b", "c"]


def test_primitive_lists():
    old = {"metadata": {"name": "p", "finalizers": ["a", "b"]}}
    new = apply(old, {"metadata": {"finalizers": ["b", "c"]}}, POD)
    assert new["metadata"]["finalizers"] == ["a", "b", "c"]
    new = apply(old, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, POD)
    assert new["metadata"]["finalizers"] == ["b"]
    new = apply(old, {"metadata": {"$setElementOrder/finalizers": ["b", "a"]}}, POD)
    assert new["metadata"]["finalizers"] == ["b", "a"]
    # a list without a merge strategy is replaced whole, and takes no directives
    old = pod({"name": "a", "args": ["1", "2"]})
    new = apply(old, {"spec": {"containers": [{"name": "a", "args": ["3"]}]}}, POD)
    assert new["spec"]["containers"][0]["args"] == ["3"]
    with pytest.raises(PatchError):
        apply(old, {"spec": {"containers": [{"name": "a",
                                             "$deleteFromPrimitiveList/args": ["1"]}]}}, POD)


def test_retain_keys():
    old = {"spec": {"strategy": {"type": "RollingUpdate",
                                 "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}
    new = apply(old, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
                DEPLOYMENT)
    assert new["spec"]["strategy"] == {"type": "Recreate"}
    vols = pod({"name": "a"}, volumes=[{"name": "v", "emptyDir": {}}])
    new = apply(vols, {"spec": {"volumes": [{"$retainKeys": ["configMap", "name"], "name": "v",
                                             "configMap": {"name": "c"}}]}}, POD)
    assert new["spec"]["volumes"] == [{"name": "v", "configMap": {"name": "c"}}]
    with pytest.raises(PatchError) as err:
        apply(old, {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}},
              DEPLOYMENT)
    assert err.value.code == 422


def test_nested_template_merges_by_the_pod_schema():
    old = {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "1"},
                                                         {"name": "b", "image": "2"}]}}}}
    new = apply(old, {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "containers": [{"name": "b", "image": "3"}]}}}}, DEPLOYMENT)
    assert new["spec"]["template"]["spec"]["containers"] == [{"name": "a", "image": "1"},
                                                             {"name": "b", "image": "3"}]


def test_new_values_drop_their_directives_and_nulls():
    new = apply({}, {"metadata": {"labels": {"a": None, "b": "1"}},
                     "spec": {"containers": [{"name": "a", "env": [
                         {"name": "X", "$patch": "delete"}, {"name": "Y"}]}]}}, POD)
    assert new == {"metadata": {"labels": {"b": "1"}},
                   "spec": {"containers": [{"name": "a", "env": [{"name": "Y"}]}]}}
    with pytest.raises(PatchError):
        apply({}, ["not", "a", "map"], POD)
    # without a schema every list is replaced
    assert apply({"a": [1, 2]}, {"a": [3]}, None) == {"a": [3]}


# ---- server-side apply and managedFields (model/ssa.py)
from fargo.model import ssa  # noqa: E402
from fargo.model.kubeerrors import KubeError  # noqa: E402


def deployment(replicas: int = 1, image: str = "i", **meta) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "n", **meta},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "a"}},
                     "template": {"metadata": {"labels": {"app": "a"}}, "spec": {
                         "containers": [{"name": "c", "image": image,
                                         "ports": [{"containerPort": 80}]}]}}}}


def owned(obj: dict, manager: str, operation: str = "Apply") -> dict:
    return next(m["fieldsV1"] for m in obj["metadata"]["managedFields"]
                if (m["manager"], m["operation"]) == (manager, operation))


def test_field_sets_as_fields_v1():
    sets = ssa.leaves(deployment(finalizers=["x/y"]), DEPLOYMENT)
    tree = ssa.to_fields_v1(sets)
    assert tree["f:metadata"] == {"f:finalizers": {"v:\"x/y\"": {}}}
    assert tree["f:spec"]["f:selector"] == {}  # a LabelSelector is atomic
    item = tree["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"c"}']
    assert list(item)[0] == "." and item["f:ports"] == {
        'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}
    assert ssa.from_fields_v1(tree) == set(sets)


def test_updates_own_what_they_change():
    first = deployment()
    first["metadata"]["managedFields"] = ssa.updated(None, first, DEPLOYMENT, "creator",
                                                      "apps/v1", "t1")
    second = copy.deepcopy(first)
    second["spec"]["replicas"] = 3
    del second["spec"]["template"]["spec"]["containers"][0]["ports"]
    second["metadata"]["managedFields"] = ssa.updated(first, second, DEPLOYMENT, "scaler",
                                                       "apps/v1", "t2")
    assert owned(second, "scaler", "Update") == {"f:spec": {"f:replicas": {}}}
    creator = owned(second, "creator", "Update")
    assert "f:replicas" not in creator["f:spec"]
    assert "f:ports" not in creator["f:spec"]["f:template"]["f:spec"]["f:containers"][
        'k:{"name":"c"}']
    # a write that sends managedFields starts from them; an empty list resets them
    third = copy.deepcopy(second)
    third["metadata"]["managedFields"] = []
    third["spec"]["replicas"] = 4
    fields = ssa.updated(second, third, DEPLOYMENT, "resetter", "apps/v1", "t3")
    assert [(m["manager"], m["fieldsV1"]) for m in fields] == [
        ("resetter", {"f:spec": {"f:replicas": {}}})]


def test_apply_conflicts_force_and_sharing():
    live = ssa.apply(None, deployment(), DEPLOYMENT, "ci", False, "apps/v1", "t1")
    assert live["metadata"]["managedFields"][0]["operation"] == "Apply"
    # the same values applied by another manager: shared, no conflict
    shared = ssa.apply(live, deployment(), DEPLOYMENT, "other", False, "apps/v1", "t2")
    assert owned(shared, "ci") == owned(shared, "other")
    with pytest.raises(KubeError) as err:
        ssa.apply(shared, deployment(replicas=2, image="j"), DEPLOYMENT, "ci", False,
                  "apps/v1", "t3")
    assert err.value.code == 409 and err.value.reason == "Conflict"
    assert err.value.message == (
        'Apply failed with 2 conflicts: conflicts with "other":\n- .spec.replicas\n'
        '- .spec.template.spec.containers[name="c"].image')
    assert {c["field"] for c in err.value.details["causes"]} == {
        ".spec.replicas", '.spec.template.spec.containers[name="c"].image'}
    forced = ssa.apply(shared, deployment(replicas=2, image="j"), DEPLOYMENT, "ci", True,
                       "apps/v1", "t3")
    assert forced["spec"]["replicas"] == 2
    assert "f:replicas" not in owned(forced, "other")["f:spec"]


def test_apply_removes_what_a_manager_stops_applying():
    config = deployment(labels={"a": "1", "b": "2"})
    live = ssa.apply(None, config, DEPLOYMENT, "ci", False, "apps/v1", "t1")
    # an updater takes label b
    changed = copy.deepcopy(live)
    changed["metadata"]["labels"]["b"] = "3"
    changed["metadata"]["managedFields"] = ssa.updated(live, changed, DEPLOYMENT, "ed",
                                                        "apps/v1", "t2")
    less = deployment()
    less["spec"]["template"]["spec"]["containers"][0].pop("ports")
    after = ssa.apply(changed, less, DEPLOYMENT, "ci", False, "apps/v1", "t3")
    assert after["metadata"]["labels"] == {"b": "3"}  # a went; b is ed's
    assert "ports" not in after["spec"]["template"]["spec"]["containers"][0]
    # a keyed list item merges with what others added
    two = deployment()
    two["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "s"})
    grown = ssa.apply(after, two, DEPLOYMENT, "ci", False, "apps/v1", "t4")
    assert [c["name"] for c in grown["spec"]["template"]["spec"]["containers"]] == [
        "c", "side"]


def test_apply_checks():
    with pytest.raises(KubeError) as err:
        ssa.apply_manager(None, False, True)
    assert err.value.code == 422 and "fieldManager: Required value" in err.value.message
    with pytest.raises(KubeError):
        ssa.apply_manager(None, True, False)
    assert ssa.manager_name(None, "kubectl/v1.32.0 (linux/amd64)") == "kubectl"
    with pytest.raises(KubeError):
        ssa.manager_name("x" * 200, "")
    with pytest.raises(KubeError) as err:
        ssa.checked_apply({"apiVersion": "v1", "kind": "Pod"}, DEPLOYMENT, "apps", "v1",
                          "Deployment", "d", "Strict")
    assert err.value.code == 400
    body = deployment()
    body["spec"]["surprise"] = 1
    with pytest.raises(KubeError) as err:
        ssa.checked_apply(body, DEPLOYMENT, "apps", "v1", "Deployment", "d", "Ignore")
    assert err.value.message == ("failed to create typed patch object (apps/v1, "
                                 "Kind=Deployment): .spec.surprise: field not declared in "
                                 "schema")
    dup = kubeschema.loads_yaml("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
                                "  name: d\nspec:\n  paused: true\n  paused: false\n")
    with pytest.raises(KubeError) as err:
        ssa.checked_apply(dup, DEPLOYMENT, "apps", "v1", "Deployment", "d", "Strict")
    assert err.value.message.endswith('line 7: key "paused" already set in map')
    assert ssa.checked_apply(dup, DEPLOYMENT, "apps", "v1", "Deployment", "d", "Warn")[1] == [
        'line 7: key "paused" already set in map']


def test_no_op_writes_keep_their_times():
    live = ssa.apply(None, deployment(), DEPLOYMENT, "ci", False, "apps/v1", "t1")
    again = ssa.apply(live, deployment(), DEPLOYMENT, "ci", False, "apps/v1", "t2")
    assert again == live
    same = copy.deepcopy(live)
    fields = ssa.updated(live, same, DEPLOYMENT, "ci", "apps/v1", "t3")
    assert [m["time"] for m in fields] == ["t1"]
