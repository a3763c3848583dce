"""Property: whatever random mutation of a valid object of any kind a client sends to the
Kubernetes face, as a create, an update (PUT) or a patch (merge, strategic merge, JSON
patch), or as garbage bytes, the answer is a Status or a valid object of the kind, never a
5xx; a refused write leaves the stored object as it was; afterwards every kind still lists,
the namespace holding what was made goes with all of it, and the server log holds no
traceback (issue 15, item 6).

The mutations: a member of the sample replaced, removed or joined by another, a value
anywhere in the kind's schema set, values of every JSON type (numbers past int32 and int64,
hostile strings, deep or empty containers), strategic directives, JSON patch operations on
real and missing paths with indices Python would take. A seeded generator and a fixed number
of cases; FARGO_FUZZ_EXAMPLES and FARGO_FUZZ_SEED hunt further. One server for the module."""

from __future__ import annotations

import copy
import json
import os
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fargo.api.kube import resources
from fargo.model import kubeschema
from tests.test_kube_hardening import (
    APPLY,
    FG,
    JSONP,
    MERGE,
    PROTOBUF,
    STRATEGIC,
    Kube,
    _fields,
    _set,
    kube_world,
    path_of,
    sample,
    served,
    tracebacks,
)

EXAMPLES = int(os.environ.get("FARGO_FUZZ_EXAMPLES", "2000"))
SEED = int(os.environ.get("FARGO_FUZZ_SEED", "15"))
FZ = "fz"  # no profile: what is made stays Pending
Obj = dict[str, Any]

# Small numbers only among those an int32 takes: a mutated replicas or parallelism never
# asks for more than a handful of pods.
INTS = [-1, 0, 1, 2, 2**31, -2**31 - 1, 2**63, 10**30]
FLOATS = [1.5, -0.0, 1e308, 0.1]
STRINGS = ["", " ", "x" * 300, "../../etc/passwd", "a\x00b", "\u00e9\U0001f600", "A", "-1",
           "1e400", "NaN", "true", "null", "a/b", "a=b", "*", "\n", "100Gi", "500m",
           "Always", "Never", "TCP", "RollingUpdate", "Recreate", "OrderedReady", "Forbid",
           "*/5 * * * *", "@hourly", "bad cron", "America", "Etc/UTC", "$patch", "delete"]
KEYS = ["$patch", "$retainKeys", "$setElementOrder/containers", "$deleteFromPrimitiveList/x",
        "x", "", "metadata", "spec", "status", "kind", "apiVersion", "name", "a/b", "_fargo"]


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.25:
        return rng.choice(INTS)
    if roll < 0.35:
        return rng.choice(FLOATS)
    if roll < 0.65:
        return rng.choice(STRINGS)
    if roll < 0.72:
        return rng.choice([True, False, None])
    if depth > 2:
        return rng.choice([[], {}])
    if roll < 0.86:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(KEYS): _value(rng, depth + 1) for _ in range(rng.randrange(3))}


def _paths(node: Any, at: tuple = ()) -> list[tuple]:
    out = [at]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*at, i))
    return out


def _at(node: Any, path: tuple) -> Any:
    for k in path:
        node = node[k]
    return node


def mutate(rng: random.Random, obj: Obj, fields: list[tuple]) -> Obj:
    """One to three changes to a copy of obj."""
    out = copy.deepcopy(obj)
    for _ in range(rng.randint(1, 3)):
        roll = rng.random()
        if roll < 0.35 and fields:  # anywhere in the schema, made on the way if absent
            path = rng.choice(fields)[0]
            out = _set(out, path, _value(rng))
            continue
        path = rng.choice(_paths(out)[1:] or [("metadata",)])
        parent = _at(out, path[:-1]) if len(path) > 1 else out
        key = path[-1]
        if roll < 0.6:
            parent[key] = _value(rng)
        elif roll < 0.75 and isinstance(parent, dict):
            parent.pop(key, None)
        elif roll < 0.85 and isinstance(parent, list):
            parent.insert(rng.randrange(len(parent) + 1), copy.deepcopy(parent[key]))
        elif isinstance(parent[key], dict):
            parent[key][rng.choice(KEYS)] = _value(rng)
        else:
            parent[key] = [parent[key]] if rng.random() < 0.5 else {"x": parent[key]}
    return out


def _pointer(rng: random.Random, obj: Obj) -> str:
    path = rng.choice(_paths(obj))
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    roll = rng.random()
    if roll < 0.15:
        parts.append(rng.choice(["-", "-1", "01", "99999999999999999999", "x", ""]))
    elif roll < 0.25:
        parts.append("nope")
    text = "/" + "/".join(parts) if parts else ""
    return text if rng.random() > 0.05 else text.lstrip("/")


def json_patch(rng: random.Random, obj: Obj) -> list[Any]:
    ops: list[Any] = []
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["add", "remove", "replace", "test", "move", "copy", "bogus"])
        item: dict[str, Any] = {"op": op, "path": _pointer(rng, obj)}
        if op in ("add", "replace", "test"):
            item["value"] = _value(rng)
        if op in ("move", "copy"):
            item["from"] = _pointer(rng, obj)
        if rng.random() < 0.05:
            item = rng.choice([{"op": op}, {"path": "/x"}, [], "x", None])
        ops.append(item)
    return ops


def partial(rng: random.Random, obj: Obj, fields: list[tuple]) -> Any:
    """A merge or strategic patch: a mutated slice of the object (nulls delete)."""
    changed = mutate(rng, obj, fields)
    keys = [k for k in changed if rng.random() < 0.6] or ["metadata"]
    out = {k: changed.get(k) for k in keys}
    if rng.random() < 0.1:
        out = rng.choice([[], "x", 1, None, {"$patch": rng.choice(["delete", "replace", "x"])}])
    return out


def valid_answer(res: resources.Resource, r: Any, dry: bool = False) -> Obj | None:
    """The object a 2xx carries (checked to be one of the kind), None for a Status; a dry
    run's has no resourceVersion (nothing was written)."""
    assert r.status_code < 500, r.text[:400]
    if r.status_code >= 400:
        return None
    obj = r.json()
    assert obj["kind"] == res.kind and obj["apiVersion"] == res.api_version, r.text[:300]
    meta = obj["metadata"]
    assert isinstance(meta["name"], str) and meta["name"] and (dry or meta["resourceVersion"])
    assert kubeschema.check(obj, kubeschema.kind_schema(
        res.group, res.version, res.kind) or {}).types == [], r.text[:300]
    return obj


@pytest.fixture(scope="module")
def kube(tmp_path_factory) -> Iterator[Kube]:
    with kube_world(tmp_path_factory.mktemp("kube-fuzz")) as k:
        k.call("POST", "/api/v1/namespaces", {"metadata": {"name": FZ}})
        yield k


def _target(kube: Kube, res: resources.Resource) -> Obj:
    """The kind's object the updates and patches aim at (made again if a mutation's owner
    reference had the collector take it)."""
    name = "target" if res.namespaced else FZ
    r = kube.call("GET", path_of(res, FZ, name))
    if r.status_code == 404 and res.plural != "namespaces":  # IngressClass: one named FZ
        r = kube.call("POST", path_of(res, FZ), sample(res, name))
        assert r.status_code == 201, r.text
        return r.json()
    assert r.status_code == 200, r.text
    return r.json()


def test_random_mutations_of_valid_objects(kube):
    rng = random.Random(SEED)
    kinds = served()
    fields = {}
    for res in kinds:
        schema = kubeschema.kind_schema(res.group, res.version, res.kind)
        fields[res.plural] = _fields(schema, set()) if schema else []
    answered: dict[str, int] = {}
    for i in range(EXAMPLES):
        res = rng.choice(kinds)
        base = sample(res, f"fz-{i}")
        verb = rng.choice(["create", "create", "put", "merge", "strategic", "json", "apply",
                           "raw"])
        fz = [f for f in fields[res.plural] if f[0][:1] != ("status",)]
        if verb == "create":
            body = mutate(rng, base, fz)
            ns = FG if res.plural == "pods" and rng.random() < 0.5 else FZ
            dry = "?dryRun=All" if ns == FG or not res.namespaced else ""
            r = kube.call("POST", path_of(res, ns) + dry, body)
            valid_answer(res, r, dry=bool(dry))
        elif verb == "raw":
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
            ctype = rng.choice(["application/json", "application/yaml", PROTOBUF, MERGE])
            r = kube.call(rng.choice(["POST", "PUT", "PATCH"]),
                          path_of(res, FZ, None if rng.random() < 0.5 else "target"),
                          raw=rng.choice([raw, b"k8s\x00" + raw]),
                          headers={"Content-Type": ctype})
            assert r.status_code >= 400 or r.status_code == 200, r.text[:300]
        else:
            old = _target(kube, res)
            name = old["metadata"]["name"]
            if verb == "put":
                r = kube.call("PUT", path_of(res, FZ, name), mutate(rng, old, fz))
            elif verb == "apply":  # server-side apply of a mutated configuration
                config = mutate(rng, sample(res, name), fz)
                manager = rng.choice(["fz", "fz", "other", "", "x" * 200, "a\x00"])
                force = rng.choice(["", "&force=true", "&force=maybe"])
                r = kube.call("PATCH", f"{path_of(res, FZ, name)}?fieldManager={manager}"
                              f"{force}", config, ctype=APPLY)
            elif verb == "json":
                r = kube.call("PATCH", path_of(res, FZ, name), json_patch(rng, old),
                              ctype=JSONP)
            else:
                r = kube.call("PATCH", path_of(res, FZ, name), partial(rng, old, fz),
                              ctype=MERGE if verb == "merge" else STRATEGIC)
            obj = valid_answer(res, r)
            after = kube.call("GET", path_of(res, FZ, name))
            if obj is None and after.status_code == 200:  # refused: nothing changed
                assert after.json()["metadata"]["resourceVersion"] == \
                    old["metadata"]["resourceVersion"] or after.json().get("spec") == \
                    old.get("spec"), (res.plural, verb, r.text[:300])
        answered[r.status_code // 100] = answered.get(r.status_code // 100, 0) + 1
    assert answered.get(2, 0) > EXAMPLES // 10 and answered.get(4, 0) > EXAMPLES // 10, \
        answered


def test_afterwards_every_kind_serves_and_the_namespace_goes(kube):
    for res in resources.RESOURCES:
        assert kube.call("GET", path_of(res, FZ)).status_code == 200
    # Finalizers the mutations left would hold the namespace (as they would upstream).
    for res in served():
        if not res.namespaced:
            continue
        for obj in kube.get(path_of(res, FZ))["items"]:
            if obj["metadata"].get("finalizers"):
                kube.call("PATCH", path_of(res, FZ, obj["metadata"]["name"]),
                          {"metadata": {"finalizers": None}}, ctype=MERGE)
    ns = next(r for r in served() if r.plural == "namespaces")
    assert kube.call("DELETE", path_of(ns, name=FZ)).status_code == 200
    deadline = time.time() + 30
    while kube.call("GET", path_of(ns, name=FZ)).status_code != 404:
        assert time.time() < deadline, "the fuzz namespace never went"
        time.sleep(0.2)
    for res in served():
        if res.namespaced:
            assert kube.get(path_of(res, FZ))["items"] == [], res.plural
    found = tracebacks(kube.log)
    assert not found, "\n\n".join(found[:3])


@pytest.mark.pure
def test_the_generator_is_deterministic():
    a, b = random.Random(1), random.Random(1)
    obj = sample(served()[0], "x")
    assert json.dumps(mutate(a, obj, [])) == json.dumps(mutate(b, obj, []))
