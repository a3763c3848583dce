"""Hostile input to the Kubernetes face (issue 15, item 6), sent as a user or an attacker
would: over HTTPS with the cluster's bearer token from `fargo kubeconfig`, and with the real
kubectl where that is natural. Every answer is the Status the apiserver would give (never a
5xx), and what is stored survives: after each refusal the object reads back as before and the
server still serves. One server for the module; a Fargate profile selects namespace `fg`, in
which pods are only ever dry-run (nothing runs).

The pure tests at the end hold the rules the fixes put in model/ and control/."""

from __future__ import annotations

import base64
import concurrent.futures
import copy
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import yaml

from fargo.api.kube import resources
from fargo.model import kubeschema
from tests.conftest import ROOT, FargoServers

KUBECTL = "/usr/bin/kubectl"
NS = "hz"  # no profile selects it: pods stay Pending, nothing runs
FG = "fg"  # a profile selects it: pods meet Fargate admission (dry runs only)
IMAGE = "127.0.0.1:9/none:1"
PROTOBUF = "application/vnd.kubernetes.protobuf"
MERGE, JSONP = "application/merge-patch+json", "application/json-patch+json"
STRATEGIC, APPLY = "application/strategic-merge-patch+json", "application/apply-patch+yaml"

needs_kubectl = pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl is not installed")

Obj = dict[str, Any]


# ---- valid objects of each kind (replicas 0, suspended: nothing is made of them)
def _template(labels: dict[str, str], restart: str = "Always") -> Obj:
    return {"metadata": {"labels": dict(labels)},
            "spec": {"restartPolicy": restart,
                     "containers": [{"name": "c", "image": IMAGE}]}}


def _selected(name: str, labels: dict[str, str], **spec: Any) -> Obj:
    return {"selector": {"matchLabels": dict(labels)}, "template": _template(labels), **spec}


SAMPLES: dict[str, Any] = {
    "configmaps": lambda n: {"metadata": {"name": n}, "data": {"k": "v"}},
    "secrets": lambda n: {"metadata": {"name": n}, "type": "Opaque", "data": {"k": "dg=="}},
    "serviceaccounts": lambda n: {"metadata": {"name": n}},
    # Labels no controller's selector takes: a bare pod stays bare.
    "pods": lambda n: {"metadata": {"name": n, "labels": {"bare": n[:63]}},
                       "spec": {"containers": [{"name": "c", "image": IMAGE}]}},
    "deployments": lambda n: {"metadata": {"name": n},
                              "spec": _selected(n, {"d": n[:63]}, replicas=0)},
    "replicasets": lambda n: {"metadata": {"name": n},
                              "spec": _selected(n, {"r": n[:63]}, replicas=0)},
    "daemonsets": lambda n: {"metadata": {"name": n}, "spec": _selected(n, {"s": n[:63]})},
    "jobs": lambda n: {"metadata": {"name": n}, "spec": {
        "suspend": True, "template": {"spec": _template({}, "Never")["spec"]}}},
    "cronjobs": lambda n: {"metadata": {"name": n}, "spec": {
        "schedule": "*/5 * * * *", "suspend": True, "jobTemplate": {"spec": {
            "template": {"spec": _template({}, "Never")["spec"]}}}}},
    "namespaces": lambda n: {"metadata": {"name": n}},
    # Issue 16's kinds: no selector, no class the load balancer controller takes.
    "services": lambda n: {"metadata": {"name": n}, "spec": {"ports": [{"port": 80}]}},
    "endpointslices": lambda n: {"metadata": {"name": n}, "addressType": "IPv4",
                                 "endpoints": []},
    "ingresses": lambda n: {"metadata": {"name": n}, "spec": {"defaultBackend": {
        "service": {"name": "web", "port": {"number": 80}}}}},
    "ingressclasses": lambda n: {"metadata": {"name": n},
                                 "spec": {"controller": "example.com/none"}},
    "runtimeclasses": lambda n: {"metadata": {"name": n}, "handler": "runsc"},
    # A custom resource's spec takes what the schema prunes: the sample has one to keep.
    "securitygrouppolicies": lambda n: {"metadata": {"name": n}, "spec": {
        "podSelector": {"matchLabels": {"sgp": n[:63]}},
        "securityGroups": {"groupIds": ["sg-00000000000000000"]}}},
}


def sample(res: resources.Resource, name: str) -> Obj:
    """A valid object of the kind; a kind added since this file knows it gets a bare one."""
    make = SAMPLES.get(res.plural)
    body = make(name) if make else {"metadata": {"name": name}}
    return {"apiVersion": res.api_version, "kind": res.kind, **body}


def served() -> list[resources.Resource]:
    """The stored kinds a client may write, from the resource table."""
    return [r for r in resources.RESOURCES if r.read is None and not r.read_only]


def path_of(res: resources.Resource, ns: str = NS, name: str | None = None) -> str:
    base = "/api/v1" if not res.group else f"/apis/{res.group}/{res.version}"
    out = f"{base}/namespaces/{ns}/{res.plural}" if res.namespaced else f"{base}/{res.plural}"
    return out if name is None else f"{out}/{quote(name, safe='').replace('.', '%2E')}"


# ---- the client
@dataclass
class Kube:
    base: str
    token: str
    ca: str
    log: Path
    config: Path

    def __post_init__(self) -> None:
        self._local = threading.local()

    def _session(self) -> requests.Session:
        s = getattr(self._local, "s", None)
        if s is None:
            s = self._local.s = requests.Session()
            s.headers["Authorization"] = f"Bearer {self.token}"
        return s

    def call(self, method: str, path: str, body: Any = None, *, ctype: str = "application/json",
             raw: bytes | str | None = None, params: Any = None,
             headers: dict[str, str] | None = None, timeout: float = 20) -> requests.Response:
        """One request; asserts the answer is below 500 and, if an error, a Status whose
        code is the HTTP status."""
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        h = dict(headers or {})
        if data is not None:
            h.setdefault("Content-Type", ctype)
        r = self._session().request(method, self.base + path, data=data, headers=h,
                                    params=params, verify=self.ca, timeout=timeout)
        assert r.status_code < 500, (method, path, str(body)[:200], r.status_code, r.text[:400])
        if r.status_code >= 400:
            st = r.json()
            assert st.get("kind") == "Status" and st.get("status") == "Failure", r.text[:300]
            assert st.get("code") == r.status_code and isinstance(st.get("message"), str)
            assert isinstance(st.get("reason"), str) and st["reason"], r.text[:300]
        return r

    def get(self, path: str) -> Obj:
        r = self.call("GET", path)
        assert r.status_code == 200, r.text[:300]
        return r.json()

    def create(self, res: resources.Resource, body: Obj, ns: str = NS) -> Obj:
        r = self.call("POST", path_of(res, ns), body)
        assert r.status_code == 201, r.text[:400]
        return r.json()


@contextmanager
def kube_world(base: Path) -> Iterator[Kube]:
    """A server, an EKS cluster with a profile for FG, its kubeconfig, namespaces NS and FG."""
    with FargoServers(base) as servers:
        srv = servers()
        eks, ec2 = srv.client("eks"), srv.client("ec2")
        subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]]
        cluster = "k" + uuid.uuid4().hex[:8]
        eks.create_cluster(name=cluster, roleArn="arn:aws:iam::000000000000:role/eks",
                           resourcesVpcConfig={"subnetIds": subnets})
        eks.create_fargate_profile(clusterName=cluster, fargateProfileName="fg",
                                   podExecutionRoleArn="arn:aws:iam::000000000000:role/pods",
                                   subnets=subnets[:1], selectors=[{"namespace": FG}])
        deadline = time.time() + 10
        while eks.describe_fargate_profile(clusterName=cluster, fargateProfileName="fg")[
                "fargateProfile"]["status"] != "ACTIVE":
            assert time.time() < deadline
            time.sleep(0.05)
        out = subprocess.run([sys.executable, "-m", "fargo", "kubeconfig", cluster,
                              "--endpoint", srv.endpoint], capture_output=True, text=True,
                             cwd=ROOT, env=srv.env(), timeout=30, check=True).stdout
        config = base / "kubeconfig"
        config.write_text(out)
        doc = yaml.safe_load(out)
        ca = base / "ca.pem"
        ca.write_bytes(base64.b64decode(doc["clusters"][0]["cluster"][
            "certificate-authority-data"]))
        kube = Kube(doc["clusters"][0]["cluster"]["server"], doc["users"][0]["user"]["token"],
                    str(ca), srv.log, config)
        for ns in (NS, FG):
            kube.call("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
        yield kube


def tracebacks(log: Path) -> list[str]:
    """The server log's tracebacks, each with the line that announced it."""
    lines = log.read_text(errors="replace").splitlines()
    return ["\n".join(lines[max(i - 1, 0):i + 30]) for i, line in enumerate(lines)
            if line.startswith("Traceback")]


@pytest.fixture(scope="module")
def kube(tmp_path_factory) -> Iterator[Kube]:
    with kube_world(tmp_path_factory.mktemp("kube-hardening")) as k:
        yield k


@pytest.fixture(scope="module")
def stored(kube: Kube) -> dict[str, Obj]:
    """One object of each writable namespaced kind, in NS (the namespaces: NS itself)."""
    out = {}
    for res in served():
        if res.namespaced:
            out[res.plural] = kube.create(res, sample(res, "keep"))
        elif res.plural == "namespaces":
            out[res.plural] = kube.get(path_of(res, name=NS))
        else:  # another cluster-scoped kind (IngressClass): one named as the namespace
            out[res.plural] = kube.create(res, sample(res, NS))
    return out


def unchanged(kube: Kube, res: resources.Resource, before: Obj) -> None:
    """The object reads back as it was (a controller's status write aside)."""
    name = before["metadata"]["name"]
    now = kube.get(path_of(res, name=name))
    for key in ("spec", "data", "type", "metadata"):
        a, b = copy.deepcopy(now.get(key)), copy.deepcopy(before.get(key))
        if key == "metadata":
            for m in (a, b):
                for k in ("resourceVersion", "managedFields", "generation", "annotations"):
                    m.pop(k, None)
        assert a == b, (res.plural, key, a, b)


# ---- every spec field with the wrong type, or a number its Go type cannot hold
WRONG = {"integer": ["1", [], 1.5, True], "number": ["1", []], "string": [1, {}, []],
         "boolean": ["true", 1], "object": [[], "x"], "array": [{}, "x"],
         "integer|string": [[], 1.5], "number|string": [[], True]}
FIT = {"integer": [-1, 0], "string": ["", "x" * 300, "a\x00b", "../x"],
       "object": [{"": ""}, {"k": None}], "array": [[None], [{}]],
       "integer|string": [-1, "x" * 300], "number|string": ["-1", "abc", "1e400"]}
BEYOND = {"int32": [2**31, -2**31 - 1], "int64": [2**63]}


def _fields(plural_schema: kubeschema.Schema, seen: set[str]) -> list[tuple[tuple, str, str]]:
    """(path, JSON type, integer format) of every member reachable from a kind's root, each
    definition walked once (PodSpec under pods only, Probe once per Container...)."""
    out: list[tuple[tuple, str, str]] = []

    def walk(schema: kubeschema.Schema, path: tuple, depth: int) -> None:
        node = kubeschema.resolve(schema)
        if node is None or kubeschema.is_free(node):
            return
        ref = kubeschema.ref_name(schema)
        if ref in seen:
            return
        if ref:
            seen.add(ref)
        t = kubeschema.type_of(node) or "|".join(sorted(kubeschema.one_of(node)))
        if path:
            out.append((path, t, str(node.get("format") or "")))
        if depth > 12:
            return
        props = node.get("properties")
        if isinstance(props, dict):
            for key, sub in props.items():
                if (not path and key in ("apiVersion", "kind", "status")) or \
                        key == "managedFields":
                    continue
                walk(sub, (*path, key), depth + 1)
        elif isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], (*path, "k"), depth + 1)
        elif t == "array" and kubeschema.items(schema):
            walk(kubeschema.items(schema), (*path, 0), depth + 1)
    walk(plural_schema, (), 0)
    return out


def _set(obj: Obj, path: tuple, value: Any) -> Obj:
    """A copy of obj with `value` at `path` (an int: a list's first item), the containers on
    the way made (or remade) as the path needs them."""
    out = copy.deepcopy(obj)
    node: Any = out
    for key, nxt in zip(path, path[1:], strict=False):
        shape = list if isinstance(nxt, int) else dict
        if isinstance(key, int):
            if not node:
                node.append(shape())
            if not isinstance(node[0], shape):
                node[0] = shape()
            node = node[0]
        else:
            if not isinstance(node.get(key), shape):
                node[key] = shape()
            node = node[key]
    if isinstance(path[-1], int):
        node[:1] = [value]
    else:
        node[path[-1]] = value
    return out


def test_every_spec_field_with_wrong_types_and_hostile_values(kube):
    """Each member of each kind (from the kinds' schemas) given the wrong JSON type (400, as
    the apiserver's decoder says), a number past its int32/int64 (400), or a hostile value
    of its own type (an answer, never a 5xx); dry runs, in the profile's namespace for pods."""
    seen: set[str] = set()
    cases: list[tuple[resources.Resource, Obj, str, int | None]] = []
    # Pods first: their PodSpec is walked there, with Fargate admission on the path.
    for res in sorted(served(), key=lambda r: r.plural != "pods"):
        schema = kubeschema.kind_schema(res.group, res.version, res.kind)
        if schema is None:
            continue
        base = sample(res, "f")
        for path, t, fmt in _fields(schema, seen):
            if path[:2] in (("metadata", "name"), ("metadata", "namespace")):
                continue
            values = [(v, 400) for v in WRONG.get(t, [])]
            values += [(v, None) for v in FIT.get(t, [])]
            if t in ("integer", "integer|string"):
                values += [(v, 400) for v in BEYOND.get(fmt or "int32", [])]
            for value, want in values:
                cases.append((res, _set(base, path, value), ".".join(map(str, path)), want))

    def one(case: tuple[resources.Resource, Obj, str, int | None]) -> str | None:
        res, body, where, want = case
        ns = FG if res.plural == "pods" else NS
        r = kube.call("POST", path_of(res, ns) + "?dryRun=All", body)
        if want is not None and r.status_code != want:
            return f"{res.plural} {where}: {r.status_code} {r.text[:200]}"
        if r.status_code == 201:
            assert r.json()["kind"] == res.kind
        return None
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        wrong = [w for w in pool.map(one, cases) if w]
    assert len(cases) > 1000 and not wrong, wrong[:10]


def test_numbers_past_their_go_types_are_refused_by_name(kube):
    deploy = next(r for r in served() if r.plural == "deployments")
    body = sample(deploy, "big")
    body["spec"]["replicas"] = 2**31
    r = kube.call("POST", path_of(deploy), body)
    assert r.status_code == 400 and "number 2147483648" in r.json()["message"] and \
        "of type int32" in r.json()["message"]
    pods = next(r for r in served() if r.plural == "pods")
    body = sample(pods, "big")
    body["spec"]["activeDeadlineSeconds"] = 2**63
    assert kube.call("POST", path_of(pods), body).status_code == 400
    raw = json.dumps(sample(pods, "inf")).replace('"image"', '"resources": {"limits": '
                                                  '{"cpu": 1e400}}, "image"')
    assert kube.call("POST", path_of(pods), raw=raw).status_code == 400
    assert kube.get(path_of(deploy))["items"] == [] or all(
        i["metadata"]["name"] != "big" for i in kube.get(path_of(deploy))["items"])


# ---- names
NAMES = {"../x": 422, "..": 422, ".": 422, "a/b": None, "A": 422, "\u00e9": 422, "x" * 300: 422,
         "-a": 422, "a-": 422, "a_b": 422, " ": 422, "a%00b": 422, "a..b": 422,
         "\U0001f600": 422}


def test_hostile_names(kube, stored):
    for res in served():
        for name, want in NAMES.items():
            body = sample(res, name)
            r = kube.call("POST", path_of(res) + "?dryRun=All", body)
            assert r.status_code in ((want,) if want else (400, 422)), (res.plural, name)
            for method, payload, ctype in (("GET", None, "application/json"),
                                           ("DELETE", None, "application/json"),
                                           ("PUT", body, "application/json"),
                                           ("PATCH", {"metadata": {"labels": {"a": "b"}}},
                                            MERGE)):
                r = kube.call(method, path_of(res, name=name), payload, ctype=ctype)
                assert r.status_code in (400, 404, 422), (res.plural, method, name, r.text)
        for bad in (1, None, [], {"x": 1}):
            body = sample(res, "x")
            body["metadata"]["name"] = bad
            assert kube.call("POST", path_of(res) + "?dryRun=All", body).status_code in (400,
                                                                                       422)
        for gen in ("x" * 300, "A-", "../", 5):
            body = sample(res, "x")
            del body["metadata"]["name"]
            body["metadata"]["generateName"] = gen
            assert kube.call("POST", path_of(res) + "?dryRun=All", body).status_code in (400,
                                                                                       422)
        unchanged(kube, res, stored[res.plural])


# ---- selectors
BAD_SELECTORS = ["!!(", "a in (", "=b", "a notin b", "x" * 70 + "=b", "a=" + "x" * 70, "!",
                 "a,!", "a!=b!=c", "a=b\x00", "a>1x", "\u00e9=1", "a in (b" + ",c" * 3000]


def test_malformed_label_and_field_selectors(kube, stored):
    for res in served():
        for sel in BAD_SELECTORS:
            for key in ("labelSelector", "fieldSelector"):
                for method in ("GET", "DELETE"):
                    r = kube.call(method, path_of(res), params={key: sel})
                    assert r.status_code == 400, (res.plural, key, sel, r.text[:200])
        for fs in ("spec.nope=x", "metadata.name", "metadata.name=a=b", "status.phase>1"):
            assert kube.call("DELETE", path_of(res), params={"fieldSelector": fs}
                             ).status_code == 400
        r = kube.call("GET", path_of(res), params={"fieldSelector": "metadata.name=keep"})
        assert [i["metadata"]["name"] for i in r.json()["items"]] == (
            ["keep"] if res.namespaced else [])
        unchanged(kube, res, stored[res.plural])


# ---- patches
def _patches(res: resources.Resource) -> list[tuple[str, Any]]:
    return [
        (JSONP, [{"op": "remove", "path": "/spec/nope/x"}]),
        (JSONP, [{"op": "replace", "path": "/nope", "value": 1}]),
        (JSONP, [{"op": "add", "path": "/metadata/finalizers/99999999999999999999",
                  "value": "a.io/x"}]),
        (JSONP, [{"op": "add", "path": "/metadata/finalizers/-1", "value": "a.io/x"}]),
        (JSONP, [{"op": "add", "path": "x", "value": 1}]),
        (JSONP, [{"op": "test", "path": "/metadata/name", "value": "no"}]),
        (JSONP, [{"op": "bogus", "path": "/x"}]), (JSONP, [{"path": "/x"}]),
        (JSONP, [{"op": "add", "path": "/metadata/labels", "value": {"a": 1}}]),
        (JSONP, [{"op": "replace", "path": "/metadata/uid", "value": "x"}]),
        (JSONP, [{"op": "replace", "path": "/metadata/name", "value": "other"}]),
        (JSONP, [{"op": "replace", "path": "/kind", "value": "Other"}]),
        (JSONP, [{"op": "replace", "path": "", "value": 7}]),
        (JSONP, {"op": "add"}), (JSONP, "x"), (JSONP, [1, None]),
        (MERGE, {"metadata": {"name": "other"}}), (MERGE, {"metadata": {"labels": {"a": 1}}}),
        (MERGE, {"metadata": {"labels": {"A B": "c"}}}),
        (MERGE, {"metadata": {"finalizers": ["bad finalizer"]}}),
        (MERGE, {"metadata": {"resourceVersion": "1"}}), (MERGE, {"kind": "Other"}),
        (MERGE, {"metadata": {"uid": "x"}}), (MERGE, {"metadata": {"namespace": "other"}}),
        (MERGE, {"spec": {"replicas": -1}}), (MERGE, {"spec": {"replicas": "3"}}),
        (MERGE, {"spec": {"template": {"spec": {"containers": []}}}}),
        (MERGE, {"spec": {"containers": [{"name": "c"}]}}), (MERGE, {"data": {"../x": "y"}}),
        (MERGE, {"spec": {"schedule": "bogus"}}), (MERGE, []), (MERGE, "x"), (MERGE, 1),
        (STRATEGIC, {"$patch": "bogus"}),
        (STRATEGIC, {"spec": {"template": {"spec": {"containers": [
            {"$patch": "bogus", "name": "c"}]}}}}),
        (STRATEGIC, {"spec": {"$setElementOrder/containers": "x"}}),
        (STRATEGIC, {"$retainKeys": "x"}), (STRATEGIC, {"spec": {"$retainKeys": [1]}}),
        (STRATEGIC, {"metadata": {"$deleteFromPrimitiveList/finalizers": "x"}}),
        (STRATEGIC, {"spec": {"containers": "x"}}), (STRATEGIC, []), (STRATEGIC, "x"),
        (APPLY, {"apiVersion": res.api_version, "kind": res.kind,
                 "metadata": {"name": "keep"}}),  # no fieldManager
        ("text/plain", {}), ("application/x-www-form-urlencoded", {}),
    ]


def test_patches_of_each_type_with_garbage(kube, stored):
    """Refused patches change nothing; a JSON patch index Python would take (huge,
    negative) or a pointer without its leading slash is a 422, never a 500."""
    for res in served():
        for ctype, patch in _patches(res):
            r = kube.call("PATCH", path_of(res, name=stored[res.plural]["metadata"]["name"]),
                          patch, ctype=ctype)
            assert r.status_code in (200, 400, 409, 415, 422), (res.plural, ctype, patch)
            if r.status_code == 200:  # Warn drops what the schema does not know
                assert r.json()["kind"] == res.kind
        unchanged(kube, res, stored[res.plural])
    cm = next(r for r in served() if r.plural == "configmaps")
    for path in ("/metadata/finalizers/99999999999999999999", "/metadata/finalizers/-1",
                 "metadata/labels/x", "/metadata/finalizers/01"):
        r = kube.call("PATCH", path_of(cm, name="keep"), [
            {"op": "add", "path": "/metadata/finalizers", "value": []},
            {"op": "add", "path": path, "value": "a.io/x"}], ctype=JSONP)
        assert r.status_code == 422, (path, r.text)
    r = kube.call("PATCH", path_of(cm, name="keep"), {"metadata": {"name": "keep"}},
                  ctype=APPLY)
    assert r.status_code == 422 and "fieldManager" in r.json()["message"]


BOMB = "a: &a [" + ",".join(['"lol"'] * 9) + "]\n" + "".join(
    f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]\n" for p, c in zip("abcdefgh", "bcdefghi",
                                                                     strict=True))


def test_bodies_that_are_not_objects(kube, stored):
    """YAML bombs, nesting past any object, oversized bodies, protobuf and CBOR garbage,
    unknown and lying content types."""
    for res in served():
        coll, one = path_of(res), path_of(res, name=stored[res.plural]["metadata"]["name"])
        t0 = time.monotonic()
        for method, path, ctype in (("POST", coll, "application/yaml"),
                                    ("PATCH", one + "?fieldManager=x", APPLY),
                                    ("PUT", one, "application/yaml")):
            assert kube.call(method, path, raw=BOMB, headers={"Content-Type": ctype}
                             ).status_code == 400
        assert time.monotonic() - t0 < 5
        cases = [(b"k8s\x00" + bytes(range(256)) * 8, PROTOBUF, (400, 415)),
                 (b"k8s\x00\x0a\xff\xff\xff\xff\x0f", PROTOBUF, (400, 415)),
                 (b"\x00\x01", PROTOBUF, (400, 415)),
                 (b"\xa1\x01\x02", "application/cbor", (415,)),
                 (json.dumps(sample(res, "u16")).encode("utf-16"), "application/json", (400,)),
                 (b"{}", "text/plain", (415,)), (b"   ", "application/json", (400,)),
                 (b"\xff\xfe{", "application/json", (400,)),
                 (b'{"metadata": {"name": "n"}, "x": NaN}', "application/json", (400,))]
        if res.plural == "configmaps":  # what no kind parses differently: once
            cases += [(b"[" * 100000, "application/json", (400,)),
                      (b'{"a":' * 50000 + b"1" + b"}" * 50000, "application/json", (400,)),
                      (b"x: " + b"[" * 50000, "application/yaml", (400,)),
                      (b"x" * (4 * 1024 * 1024 + 1), "application/json", (413,))]
        for raw, ctype, want in cases:
            for method, path in (("POST", coll), ("PUT", one)):
                r = kube.call(method, path, raw=raw, headers={"Content-Type": ctype})
                assert r.status_code in want, (res.plural, method, ctype, raw[:20], r.text)
        unchanged(kube, res, stored[res.plural])


def test_put_with_a_stale_or_foreign_version(kube, stored):
    for res in served():
        name = stored[res.plural]["metadata"]["name"]
        fresh = kube.get(path_of(res, name=name))
        for change, want in ((("metadata", "resourceVersion", "1"), 409),
                             (("metadata", "resourceVersion", "abc"), 409),
                             (("metadata", "name", "other"), (400, 422)),
                             (("metadata", "namespace", "other"), (400, 422)),
                             (("metadata", "uid", "x"), 422),
                             (("metadata", "creationTimestamp", "x"), (400, 422)),
                             (("kind", None, "Other"), 400),
                             (("apiVersion", None, "v9"), 400)):
            if res.plural == "namespaces" and change[1] == "namespace":
                continue
            body = copy.deepcopy(fresh)
            key, sub, value = change
            if sub:
                body[key][sub] = value
            else:
                body[key] = value
            r = kube.call("PUT", path_of(res, name=name), body)
            assert r.status_code in (want if isinstance(want, tuple) else (want,)), (
                res.plural, change, r.text[:300])
        for body in ([fresh], None, "x", 1):
            assert kube.call("PUT", path_of(res, name=name), raw=json.dumps(body)
                             ).status_code == 400
        unchanged(kube, res, stored[res.plural])


def test_status_and_scale_subresources_with_wrong_bodies(kube, stored):
    bodies = [{}, [], "x", {"spec": {"replicas": "x"}}, {"spec": {"replicas": -1}},
              {"spec": {"replicas": 2**31}}, {"spec": {"replicas": 1.5}},
              {"status": {"replicas": "x"}}, {"status": []}, {"metadata": {"name": "other"}},
              {"metadata": {"resourceVersion": "1"}}, {"kind": "Other"},
              {"status": {"conditions": [{"type": 1}]}}, {"status": {"conditions": "x"}}]
    for res in served():
        name = stored[res.plural]["metadata"]["name"]
        for sub in ("status", "scale"):
            path = path_of(res, name=name) + f"/{sub}"
            served_sub = sub in res.subresources
            assert kube.call("GET", path).status_code == (200 if served_sub or sub == "status"
                                                          else 404)
            for body in bodies:
                for method, ctype in (("PUT", "application/json"), ("PATCH", MERGE),
                                      ("PATCH", STRATEGIC), ("PATCH", JSONP),
                                      ("PATCH", APPLY)):
                    r = kube.call(method, path, body, ctype=ctype)
                    if served_sub and sub == "scale" and body == {"spec": {"replicas": -1}} \
                            and ctype in ("application/json", MERGE, STRATEGIC):
                        assert r.status_code == 422, r.text
            for method in ("POST", "DELETE"):
                assert kube.call(method, path, {}).status_code in (404, 405)
        for odd in ("bogus", "status/x", "%2E%2E", "scale/status"):
            assert kube.call("GET", path_of(res, name=name) + "/" + odd).status_code == 404
        unchanged(kube, res, stored[res.plural])


def test_watch_with_bad_versions_and_timeouts(kube):
    for res in served():
        for q in ({"resourceVersion": "abc"}, {"resourceVersion": "-1"},
                  {"resourceVersion": "9" * 30}, {"timeoutSeconds": "abc"},
                  {"timeoutSeconds": "-5"}, {"timeoutSeconds": "1e3"},
                  {"timeoutSeconds": "9" * 30}, {"sendInitialEvents": "true"},
                  {"watch": "maybe"}, {"limit": "x"}):
            r = kube.call("GET", path_of(res), params={"watch": "true", **q}, timeout=10)
            assert r.status_code in (400, 422), (res.plural, q, r.text[:200])
    r = kube.call("GET", path_of(served()[0]), params={
        "watch": "true", "timeoutSeconds": "1", "resourceVersion": "1"}, timeout=10)
    assert r.status_code in (200, 410)


def test_delete_options_malformed(kube, stored):
    """A DeleteOptions body that asks for a dry run the server does not know, or names it
    as a string, is refused: it once deleted the object for real."""
    for res in served():
        path = path_of(res, name=stored[res.plural]["metadata"]["name"])
        for body, want in (('{"dryRun": ["Bogus"]}', 422), ('{"dryRun": "All"}', 400),
                           ('{"dryRun": [1]}', 400), ('{"gracePeriodSeconds": "x"}', 400),
                           ('{"gracePeriodSeconds": true}', 400),
                           ('{"gracePeriodSeconds": 1e30}', 400),
                           ('{"propagationPolicy": "Bogus"}', 422),
                           ('{"propagationPolicy": 1}', 400),
                           ('{"orphanDependents": "x"}', 400),
                           ('{"orphanDependents": true, "propagationPolicy": "Foreground"}',
                            422),
                           ('{"preconditions": "x"}', 400),
                           ('{"preconditions": {"uid": 1}}', 400),
                           ('{"preconditions": {"uid": "nope"}}', 409),
                           ('{"preconditions": {"resourceVersion": "1"}}', 409),
                           ("{", 400), ("[]", 400), ('"x"', 400)):
            r = kube.call("DELETE", path, raw=body)
            assert r.status_code == want, (res.plural, body, r.text[:300])
        for q in ("dryRun=all", "dryRun=", "dryRun=All,All", "gracePeriodSeconds=x",
                  "propagationPolicy=x"):
            assert kube.call("DELETE", f"{path}?{q}").status_code in (400, 422), q
        r = kube.call("DELETE", path_of(res) + "?dryRun=Bogus")
        assert r.status_code == 400
        unchanged(kube, res, stored[res.plural])
    r = kube.call("DELETE", path_of(served()[0], name=NS), raw='{"dryRun": ["All"]}')
    assert r.status_code == 200 and kube.get(path_of(served()[0], name=NS))[
        "status"]["phase"] == "Active"


def test_dry_run_values(kube, stored):
    for res in served():
        for value in ("all", "None", "", "true", "All&dryRun=x"):
            for method, path, body, ctype in (
                    ("POST", path_of(res), sample(res, "dry"), "application/json"),
                    ("PUT", path_of(res, name=stored[res.plural]["metadata"]["name"]),
                     stored[res.plural], "application/json"),
                    ("PATCH", path_of(res, name=stored[res.plural]["metadata"]["name"]), {},
                     MERGE)):
                r = kube.call(method, f"{path}?dryRun={value}", body, ctype=ctype)
                assert r.status_code == 400, (res.plural, method, value, r.text[:200])
        if res.namespaced:
            assert kube.call("GET", path_of(res, name="dry")).status_code == 404
        unchanged(kube, res, stored[res.plural])


# ---- ownership and finalizers
def _ref(obj: Obj, block: bool = True) -> Obj:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
            "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
            "blockOwnerDeletion": block}


def _names(kube: Kube, path: str) -> set[str]:
    return {i["metadata"]["name"] for i in kube.get(path)["items"]}


def _wait(what: Any, timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while not what():
        assert time.time() < deadline, "never happened"
        time.sleep(0.2)


def test_owner_reference_cycles_end(kube):
    """A owns B owns A: a foreground deletion takes both, the collector does not loop; an
    object that owns itself waits on its own foreground finalizer (as upstream's does) with
    no busy writes, and goes once that is taken away."""
    cm = next(r for r in served() if r.plural == "configmaps")
    coll = path_of(cm)
    a = kube.create(cm, sample(cm, "cyc-a"))
    b = kube.create(cm, {**sample(cm, "cyc-b"), "metadata": {
        "name": "cyc-b", "ownerReferences": [_ref(a)]}})
    kube.call("PATCH", path_of(cm, name="cyc-a"), {"metadata": {
        "ownerReferences": [_ref(b)]}}, ctype=MERGE)
    me = kube.create(cm, sample(cm, "cyc-self"))
    kube.call("PATCH", path_of(cm, name="cyc-self"), {"metadata": {
        "ownerReferences": [_ref(me)]}}, ctype=MERGE)
    kube.create(cm, {**sample(cm, "dangling"), "metadata": {"name": "dangling",
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                                     "name": "gone", "uid": "no-such-uid"}]}})
    _wait(lambda: "dangling" not in _names(kube, coll))  # its owner never was: collected
    assert {"cyc-a", "cyc-b", "cyc-self"} <= _names(kube, coll)  # owners alive: kept
    for name in ("cyc-a", "cyc-self"):
        kube.call("DELETE", path_of(cm, name=name), raw='{"propagationPolicy": "Foreground"}')
    _wait(lambda: not {"cyc-a", "cyc-b"} & _names(kube, coll))
    rv = kube.get(coll)["metadata"]["resourceVersion"]
    time.sleep(2.5)  # a collector pass at least
    assert kube.get(coll)["metadata"]["resourceVersion"] == rv
    held = kube.get(path_of(cm, name="cyc-self"))
    assert held["metadata"]["deletionTimestamp"]
    kube.call("PATCH", path_of(cm, name="cyc-self"), {"metadata": {"finalizers": None}},
              ctype=MERGE)
    _wait(lambda: "cyc-self" not in _names(kube, coll))


def test_namespace_deletion_waits_for_its_content(kube):
    """A namespace goes once what it holds is gone (it was removed at once, leaving its
    objects behind in a namespace that no longer was); a finalizer that never clears holds
    it Terminating, with no busy writes, refusing new content."""
    cm = next(r for r in served() if r.plural == "configmaps")
    ns_res = next(r for r in served() if r.plural == "namespaces")
    kube.call("POST", "/api/v1/namespaces", {"metadata": {"name": "gone"}})
    for res in served():
        if res.namespaced:
            kube.create(res, sample(res, "in"), ns="gone")
    kube.create(cm, {**sample(cm, "held"), "metadata": {
        "name": "held", "finalizers": ["example.com/never"]}}, ns="gone")
    r = kube.call("DELETE", path_of(ns_res, name="gone"))
    assert r.status_code == 200 and r.json()["status"]["phase"] == "Terminating"
    _wait(lambda: _names(kube, path_of(cm, "gone")) == {"held"} and all(
        not _names(kube, path_of(res, "gone")) for res in served()
        if res.namespaced and res.plural != "configmaps"))
    rv = kube.get("/api/v1/namespaces")["metadata"]["resourceVersion"]
    time.sleep(2.5)
    assert kube.get("/api/v1/namespaces")["metadata"]["resourceVersion"] == rv
    assert kube.get(path_of(ns_res, name="gone"))["status"]["phase"] == "Terminating"
    assert kube.call("POST", path_of(cm, "gone"), sample(cm, "late")).status_code == 403
    kube.call("PATCH", path_of(cm, "gone", "held"), {"metadata": {"finalizers": None}},
              ctype=MERGE)
    _wait(lambda: kube.call("GET", path_of(ns_res, name="gone")).status_code == 404)
    assert _names(kube, path_of(cm, "gone")) == set()


def test_pod_fields_the_apiserver_refuses(kube):
    """Pod values the apiserver's validation refuses, which fargo once stored and then
    failed to run (or, for a null port, answered with a 500)."""
    pods = next(r for r in served() if r.plural == "pods")
    cases = {("env", "name"): [{"name": "a\x00b", "value": "x"}, {"name": "A=B"}],
             ("ports",): [[None], [{"containerPort": -1}], [{"containerPort": 70000}],
                          [{"containerPort": 80, "protocol": "x" * 300}], [{}]],
             ("securityContext",): [{"runAsUser": -1}, {"runAsUser": 2**40},
                                    {"runAsUser": 1, "runAsGroup": 2**40},
                                    {"capabilities": {"drop": [None]}}]}
    for (key, *_), values in cases.items():
        for value in values:
            body = sample(pods, "p")
            body["spec"]["containers"][0][key] = [value] if key == "env" else value
            r = kube.call("POST", path_of(pods, FG) + "?dryRun=All", body)
            assert r.status_code == 422, (key, value, r.text[:300])
            assert r.json()["details"]["causes"], r.text
    for node in ("../a", "a\x00b", "A"):
        body = sample(pods, "p")
        body["spec"]["nodeName"] = node
        assert kube.call("POST", path_of(pods, FG) + "?dryRun=All", body).status_code == 422
    body = sample(pods, "p")
    body["spec"]["ephemeralContainers"] = [{"name": "e", "image": IMAGE}]
    assert kube.call("POST", path_of(pods) + "?dryRun=All", body).status_code == 422
    # A template is checked as its pods will be (probes, volumes too): else it is stored
    # and every pod stamped from it refused.
    for res in served():
        if res.plural not in ("deployments", "replicasets", "daemonsets", "jobs", "cronjobs"):
            continue
        for bad in ({"containers": [{"name": "c", "image": IMAGE, "readinessProbe": {
                        "periodSeconds": -1, "exec": {"command": ["true"]}}}]},
                    {"containers": [{"name": "c", "image": IMAGE}],
                     "volumes": [{"name": "v", "configMap": {"name": "x", "defaultMode": -1}}]},
                    {"containers": [{"name": "c", "image": IMAGE, "ports": [
                        {"containerPort": 0}]}]}):
            body = sample(res, "tpl")
            spec = body["spec"]["jobTemplate"]["spec"] if res.plural == "cronjobs" \
                else body["spec"]
            restart = spec["template"]["spec"].get("restartPolicy")
            spec["template"]["spec"] = {**copy.deepcopy(bad), **(
                {"restartPolicy": restart} if restart else {})}
            r = kube.call("POST", path_of(res) + "?dryRun=All", body)
            assert r.status_code == 422 and "template.spec." in r.text, (res.plural, r.text)
    for res in served():  # a whole-object write with null metadata keeps the stored one
        name = "keep" if res.namespaced else NS
        for body in ({"metadata": None}, {"metadata": None, "spec": None}):
            r = kube.call("PUT", path_of(res, name=name) + "?dryRun=All", body)
            assert r.status_code in (200, 400, 422), (res.plural, body)


def test_cron_time_zones_the_zone_database_cannot_open(kube):
    cron = next(r for r in served() if r.plural == "cronjobs")
    for zone in ("America", "x" * 300, "../etc/passwd", "zone.tab", "Etc/../UTC", "a\x00b"):
        body = sample(cron, "tz")
        body["spec"]["timeZone"] = zone
        r = kube.call("POST", path_of(cron) + "?dryRun=All", body)
        assert r.status_code == 422 and "spec.timeZone" in r.json()["message"], (zone, r.text)


@needs_kubectl
def test_kubectl_meets_the_same_refusals(kube, stored):
    def k(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([KUBECTL, "--kubeconfig", str(kube.config), "-n", NS, *args],
                              input=stdin, capture_output=True, text=True, timeout=30)
    out = k("patch", "configmap", "keep", "--type=json", "-p",
            '[{"op": "add", "path": "/metadata/finalizers", "value": []}, '
            '{"op": "add", "path": "/metadata/finalizers/99999999999999999999", '
            '"value": "a.io/x"}]')
    assert out.returncode == 1 and "out of bounds" in out.stderr, out.stderr
    out = k("delete", "configmap", "keep", "--dry-run=server")
    assert out.returncode == 0 and "(server dry run)" in out.stdout
    assert k("get", "configmap", "keep").returncode == 0
    out = k("get", "pods", "-l", "a in (")
    assert out.returncode == 1 and "unable to parse requirement" in out.stderr, out.stderr
    bad = sample(next(r for r in served() if r.plural == "deployments"), "kb")
    bad["spec"]["replicas"] = 2**31
    out = k("create", "--validate=false", "-f", "-", stdin=json.dumps(bad))
    assert out.returncode == 1 and "of type int32" in out.stderr, out.stderr
    out = k("apply", "-f", "-", stdin=BOMB)
    assert out.returncode == 1
    out = k("create", "cronjob", "tz", "--image", IMAGE, "--schedule", "* * * * *",
            "--dry-run=client", "-o", "json")
    cron = json.loads(out.stdout)
    cron["spec"]["timeZone"] = "America"
    out = k("create", "-f", "-", stdin=json.dumps(cron))
    assert out.returncode == 1 and "spec.timeZone" in out.stderr, out.stderr


def test_the_server_still_serves_and_logged_no_traceback(kube, stored):
    """Last: every kind still lists, the stored objects read back, the log is clean."""
    for res in resources.RESOURCES:
        assert kube.call("GET", path_of(res)).status_code == 200
    for res in served():
        unchanged(kube, res, stored[res.plural])
    found = tracebacks(kube.log)
    assert not found, "\n\n".join(found[:3])


# ---- the rules the fixes put in place, pure
@pytest.mark.pure
def test_json_patch_indices_and_pointers():
    from fargo.model.admission import apply_json_patch
    doc = {"l": [1, 2]}
    assert apply_json_patch(doc, [{"op": "add", "path": "/l/-", "value": 3}])["l"] == [1, 2, 3]
    assert apply_json_patch(doc, [{"op": "add", "path": "/l/2", "value": 3}])["l"] == [1, 2, 3]
    assert apply_json_patch(doc, [{"op": "remove", "path": "/l/1"}])["l"] == [1]
    for op, path in (("add", "/l/3"), ("remove", "/l/-1"), ("add", "/l/99999999999999999999"),
                     ("remove", "/l/01"), ("remove", "/l/-"), ("add", "l/0"),
                     ("replace", "/l/2")):
        with pytest.raises(ValueError):
            apply_json_patch(doc, [{"op": op, "path": path, "value": 0}])
    assert doc == {"l": [1, 2]}


@pytest.mark.pure
def test_numbers_beyond_their_go_type():
    schema = kubeschema.kind_schema("", "v1", "Pod")
    assert schema is not None

    def types(port: Any, deadline: Any = 1) -> list[str]:
        return kubeschema.check({"spec": {"activeDeadlineSeconds": deadline, "containers": [
            {"name": "a", "ports": [{"containerPort": port}],
             "livenessProbe": {"httpGet": {"port": port}}}]}}, schema).types
    assert types(2**31 - 1) == [] and types(-2**31) == []
    assert len(types(2**31)) == 2 and "number 2147483648" in types(2**31)[0]
    assert len(types(-2**31 - 1)) == 2
    assert types(1, 2**63 - 1) == [] and len(types(1, 2**63)) == 1
    inf = kubeschema.check({"spec": {"containers": [{"name": "a", "resources": {
        "limits": {"cpu": float("inf")}}}]}}, schema).types
    assert inf and "of type resource.Quantity" in inf[0]


@pytest.mark.pure
def test_time_zones_outside_the_database():
    from fargo.model import cronjobs
    for zone in ("America", "x" * 300, "a\x00b", "../x"):
        with pytest.raises(cronjobs.ScheduleError):
            cronjobs.zone(zone)


@pytest.mark.pure
def test_a_terminating_namespace_is_kept_until_removed(tmp_path):
    from fargo.control.kubestate import KubeState
    from fargo.model import kubeobj
    from fargo.store.kube import KubeTables
    from fargo.store.sqlite import Store
    store = Store(tmp_path / "state.db")
    try:
        tables = KubeTables(store)
        tables.put_cluster({"name": "c"})
        state = KubeState(tables)
        ns = state.create("c", "namespaces", "", kubeobj.namespace("x"))
        ns["metadata"]["deletionTimestamp"] = "2020-01-01T00:00:00Z"
        ns["status"] = {"phase": "Terminating"}
        state.update("c", "namespaces", "", ns)
        assert state.get("c", "namespaces", "", "x")["status"]["phase"] == "Terminating"
        state.delete("c", "namespaces", "", "x")
        assert state.find("c", "namespaces", "", "x") is None
    finally:
        store.close()
