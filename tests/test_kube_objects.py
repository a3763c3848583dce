"""Generic writes of Kubernetes kinds (control/objects.py) and the garbage collector
(control/gc.py) over a real store: generateName, dry runs, conflicts, finalizers, owner
references with background, foreground and orphan propagation."""

from __future__ import annotations

import pytest

from fargo.control.gc import GarbageCollector
from fargo.control.kubestate import KubeState
from fargo.control.objects import DeleteOptions, Objects
from fargo.model import kubeobj, objmeta
from fargo.model.kubeerrors import KubeError
from fargo.store.kube import KubeTables
from fargo.store.sqlite import Store

pytestmark = pytest.mark.pure
C = "c1"


@pytest.fixture
def world(tmp_path):
    store = Store(tmp_path / "state.db")
    tables = KubeTables(store)
    tables.put_cluster({"name": C})
    state = KubeState(tables)
    state.create(C, "namespaces", "", kubeobj.namespace("apps"))
    objects = Objects(state)
    yield state, objects, GarbageCollector(state, objects)
    store.close()


def cm(name: str, **meta) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta},
            "data": {"k": "v"}}


def names(state: KubeState) -> set[str]:
    return {o["metadata"]["name"] for o in state.list(C, "configmaps", "apps")}


def test_create_stamps_and_refuses(world):
    state, objects, _ = world
    made = objects.create(C, "configmaps", "apps", cm("a", uid="forged",
                                                       creationTimestamp="1999"))
    meta = made["metadata"]
    assert meta["uid"] != "forged" and meta["creationTimestamp"] != "1999"
    assert meta["namespace"] == "apps" and meta["resourceVersion"]
    with pytest.raises(KubeError) as err:
        objects.create(C, "configmaps", "apps", cm("a"))
    assert err.value.code == 409 and err.value.reason == "AlreadyExists"
    for body, code in ((cm("Bad_Name"), 422), ({"kind": "Pod", "metadata": {"name": "x"}}, 400),
                       (cm("b", namespace="other"), 400), ([1], 400),
                       (cm("c", finalizers=["nope"]), 422),
                       (cm("d", ownerReferences=[{"kind": "X"}]), 422)):
        with pytest.raises(KubeError) as err:
            objects.create(C, "configmaps", "apps", body)
        assert err.value.code == code, body
    with pytest.raises(KubeError) as err:
        objects.create(C, "configmaps", "missing", cm("e"))
    assert err.value.code == 404
    assert names(state) == {"a"}


def test_generate_name_and_dry_run(world):
    state, objects, _ = world
    body = {"metadata": {"generateName": "web-"}, "data": {}}
    objmeta.assign_name(body, "x2b4k")
    assert body["metadata"]["name"] == "web-x2b4k"
    before = state.current_rv
    dry = objects.create(C, "configmaps", "apps", cm("dry"), dry_run=True)
    assert dry["metadata"]["name"] == "dry" and state.current_rv == before
    assert "dry" not in names(state)
    objects.create(C, "configmaps", "apps", cm("real"))
    changed = cm("real")
    changed["data"] = {"k": "w"}
    objects.update(C, "configmaps", "apps", "real", changed, dry_run=True)
    assert state.get(C, "configmaps", "apps", "real")["data"] == {"k": "v"}
    objects.delete(C, "configmaps", "apps", "real", DeleteOptions(dry_run=True))
    assert "real" in names(state)


def test_update_conflicts_and_immutables(world):
    state, objects, _ = world
    made = objects.create(C, "configmaps", "apps", cm("a"))
    stale = cm("a", resourceVersion="1")
    with pytest.raises(KubeError) as err:
        objects.update(C, "configmaps", "apps", "a", stale)
    assert err.value.code == 409 and err.value.reason == "Conflict"
    fresh = cm("a", resourceVersion=made["metadata"]["resourceVersion"], labels={"x": "y"})
    out = objects.update(C, "configmaps", "apps", "a", fresh)
    assert out["metadata"]["labels"] == {"x": "y"}
    assert out["metadata"]["uid"] == made["metadata"]["uid"]
    with pytest.raises(KubeError) as err:
        objects.update(C, "configmaps", "apps", "a", cm("a", uid="other"))
    assert err.value.code == 422
    with pytest.raises(KubeError) as err:
        objects.update(C, "configmaps", "apps", "a", cm("b"))
    assert err.value.code == 400
    with pytest.raises(KubeError) as err:
        objects.delete(C, "configmaps", "apps", "a", DeleteOptions(uid="not-its-uid"))
    assert err.value.code == 409


def test_finalizers_hold_an_object_until_removed(world):
    state, objects, _ = world
    objects.create(C, "configmaps", "apps", cm("held", finalizers=["example.com/hold"]))
    objects.delete(C, "configmaps", "apps", "held")
    held = state.get(C, "configmaps", "apps", "held")
    assert held["metadata"]["deletionTimestamp"]
    with pytest.raises(KubeError) as err:  # nothing new may hold it once it is going
        objects.update(C, "configmaps", "apps", "held",
                       cm("held", finalizers=["example.com/hold", "example.com/more"]))
    assert err.value.code == 422
    objects.update(C, "configmaps", "apps", "held", cm("held"))
    assert "held" not in names(state)


def owned(name: str, owner: dict, block: bool = False) -> dict:
    return cm(name, ownerReferences=[objmeta.owner_reference(owner, block)])


def test_background_deletion_takes_dependents(world):
    state, objects, gc = world
    owner = objects.create(C, "configmaps", "apps", cm("owner"))
    objects.create(C, "configmaps", "apps", owned("dep1", owner))
    child = objects.create(C, "configmaps", "apps", owned("dep2", owner))
    objects.create(C, "configmaps", "apps", owned("grandchild", child))
    gc.reconcile(C)
    assert names(state) == {"owner", "dep1", "dep2", "grandchild"}  # owners alive: kept
    objects.delete(C, "configmaps", "apps", "owner")
    gc.reconcile(C)
    assert names(state) == {"grandchild"}
    gc.reconcile(C)
    assert names(state) == set()


def test_foreground_deletion_waits_for_blocking_dependents(world):
    state, objects, gc = world
    owner = objects.create(C, "configmaps", "apps", cm("owner"))
    objects.create(C, "configmaps", "apps",
                   cm("dep", ownerReferences=[objmeta.owner_reference(owner, True)],
                      finalizers=["example.com/slow"]))
    objects.delete(C, "configmaps", "apps", "owner", DeleteOptions(propagation="Foreground"))
    gc.reconcile(C)
    assert names(state) == {"owner", "dep"}  # dep is being deleted, still blocks its owner
    assert state.get(C, "configmaps", "apps", "dep")["metadata"]["deletionTimestamp"]
    objects.update(C, "configmaps", "apps", "dep", owned("dep", owner, True))  # unhold it
    gc.reconcile(C)
    assert names(state) == set()


def test_orphan_deletion_keeps_dependents(world):
    state, objects, gc = world
    owner = objects.create(C, "configmaps", "apps", cm("owner"))
    objects.create(C, "configmaps", "apps", owned("dep", owner))
    objects.delete(C, "configmaps", "apps", "owner", DeleteOptions(propagation="Orphan"))
    gc.reconcile(C)
    gc.reconcile(C)
    assert names(state) == {"dep"}
    assert "ownerReferences" not in state.get(C, "configmaps", "apps", "dep")["metadata"]
    with pytest.raises(KubeError) as err:
        objmeta.propagation("Sideways")
    assert err.value.code == 422
