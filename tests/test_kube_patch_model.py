"""Strategic merge patch (model/strategic.py) as kube-apiserver applies it, by the kinds'
merge keys and the patch's directives."""

from __future__ import annotations

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
