"""The kinds' schemas (model/kubeschema.py): fargo's merge table against the definitions'
own extensions, field validation as the apiserver reports it, decoding with duplicates."""

from __future__ import annotations

import json

import pytest

from fargo.model import kubeschema as ks
from fargo.model.kubeerrors import KubeError

pytestmark = pytest.mark.pure

SERVED_GROUPS = ("", "apps", "batch", "autoscaling", "discovery.k8s.io", "networking.k8s.io",
                 "policy", "rbac.authorization.k8s.io", "events.k8s.io", "coordination.k8s.io",
                 "scheduling.k8s.io", "storage.k8s.io", "node.k8s.io")


def _reachable() -> set[str]:
    defs = ks.definitions()
    roots = {n for n, d in defs.items()
             for g in d.get("x-kubernetes-group-version-kind") or ()
             if g["group"] in SERVED_GROUPS and "alpha" not in g["version"]
             and "beta" not in g["version"]}
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        stack = [defs[name]]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str) and ref.startswith("#/$defs/"):
                    todo.append(ref[len("#/$defs/"):])
                stack.extend(v for k, v in node.items() if k != "$ref")
            elif isinstance(node, list):
                stack.extend(node)
    return seen


def test_merge_table_is_the_definitions():
    """Every key-merged, set or atomic-map fact of the stable kinds is in fargo's table, and
    the table says nothing the definitions do not."""
    defs = ks.definitions()
    seen_rules = set()
    for name in _reachable():
        d = defs[name]
        mt = d.get("x-kubernetes-map-type")
        assert (mt == "atomic") == (ks.short(name) in ks.ATOMIC), name
        for field, prop in (d.get("properties") or {}).items():
            want = ks.FieldRule(prop.get("x-kubernetes-patch-strategy", ""),
                                prop.get("x-kubernetes-patch-merge-key", ""),
                                prop.get("x-kubernetes-list-type", ""),
                                tuple(prop.get("x-kubernetes-list-map-keys", ())),
                                prop.get("x-kubernetes-map-type", ""))
            got = ks.rule(name, field)
            if want.list_type == "atomic" and not want.strategy:
                want = ks.FieldRule()  # atomic is every list's default
            assert got == want, (name, field)
            if got != ks.NO_RULE:
                seen_rules.add((ks.short(name), field))
    assert seen_rules == set(ks.FIELD_RULES)


def test_kinds_and_walking():
    assert ks.kind_definition("apps", "v1", "Deployment") == "io.k8s.api.apps.v1.Deployment"
    assert ks.kind_definition("", "v1", "Pod") == "io.k8s.api.core.v1.Pod"
    assert ks.kind_definition("", "v1", "Nothing") is None
    pod = ks.kind_schema("", "v1", "Pod")
    owner, spec = ks.child(pod, "spec")
    assert owner == "io.k8s.api.core.v1.Pod"
    owner, containers = ks.child(spec, "containers")
    assert ks.rule(owner, "containers").merge_key == "name"
    _, labels = ks.child(ks.child(pod, "metadata")[1], "labels")
    assert ks.child(labels, "anything") == (None, {"type": ["string", "null"]})


DEPLOYMENT = """{"apiVersion": "apps/v1", "kind": "Deployment",
 "metadata": {"name": "dupename", "name": "d", "labels": {"app": "nginx"}, "unknownMeta": "m"},
 "spec": {"unknown1": "val1", "unknownDupe": "a", "unknownDupe": "b",
          "paused": true, "paused": false,
          "selector": {"matchLabels": {"app": "nginx"}},
          "template": {"metadata": {"labels": {"app": "nginx"}},
                       "spec": {"containers": [{"name": "nginx", "image": "nginx:latest",
                                                "unknownNested": "val1",
                                                "imagePullPolicy": "Always",
                                                "imagePullPolicy": "Never"}]}}}}"""
STRICT = ('strict decoding error: duplicate field "metadata.name", unknown field '
          '"metadata.unknownMeta", unknown field "spec.unknown1", unknown field '
          '"spec.unknownDupe", duplicate field "spec.paused", unknown field '
          '"spec.template.spec.containers[0].unknownNested", duplicate field '
          '"spec.template.spec.containers[0].imagePullPolicy"')


def test_create_body_as_the_apiserver_reports_it():
    schema = ks.kind_schema("apps", "v1", "Deployment")
    body = ks.loads(DEPLOYMENT)
    with pytest.raises(KubeError) as err:
        ks.checked_body(body, schema, "Deployment", "v1", "Strict", False)
    assert err.value.code == 400
    assert err.value.message == ('Deployment in version "v1" cannot be handled as a '
                                 'Deployment: ' + STRICT)
    obj, warnings = ks.checked_body(body, schema, "Deployment", "v1", "Warn", False)
    assert warnings == STRICT.removeprefix("strict decoding error: ").split(", ")
    assert "unknown1" not in obj["spec"] and "unknownMeta" not in obj["metadata"]
    assert obj["spec"]["paused"] is False and obj["metadata"]["name"] == "d"
    assert type(obj["spec"]) is dict  # plain, the duplicates' notes gone
    assert ks.checked_body(body, schema, "Deployment", "v1", "Ignore", False)[1] == []


def test_yaml_body_as_the_apiserver_reports_it():
    schema = ks.kind_schema("", "v1", "ConfigMap")
    body = ks.loads_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n"
                         "  colour: red\ndata:\n  k: v\n  k: w\nzeta: 1\n")
    with pytest.raises(KubeError) as err:
        ks.checked_body(body, schema, "ConfigMap", "v1", "Strict", True)
    assert err.value.message.endswith(
        'strict decoding error: yaml: unmarshal errors:\n  line 5: key "name" already set in '
        'map\n  line 9: key "k" already set in map, unknown field "metadata.colour", '
        'unknown field "zeta"')
    _, warnings = ks.checked_body(body, schema, "ConfigMap", "v1", "Warn", True)
    assert warnings[:2] == ['line 5: key "name" already set in map',
                            'line 9: key "k" already set in map']


def test_types_are_never_accepted():
    schema = ks.kind_schema("apps", "v1", "Deployment")
    for spec, said in (({"replicas": "3"}, "of type int32"), ({"paused": "yes"}, "bool"),
                       ({"template": []}, "PodTemplateSpec")):
        with pytest.raises(KubeError) as err:
            ks.checked_body({"metadata": {"name": "d"}, "spec": spec}, schema,
                            "Deployment", "v1", "Ignore", False)
        assert err.value.code == 400 and "cannot unmarshal" in err.value.message
        assert said in err.value.message
    svc = ks.kind_schema("", "v1", "Service")
    ok = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "targetPort": "http"}]}}
    assert ks.checked_body(ok, svc, "Service", "v1", "Strict", False)[1] == []
    ok["spec"]["ports"][0]["targetPort"] = 8080
    assert ks.checked_body(ok, svc, "Service", "v1", "Strict", False)[1] == []
    free = {"metadata": {"name": "r"}, "data": {"anything": [1, {"goes": True}]}}
    assert ks.checked_body(free, ks.kind_schema("apps", "v1", "ControllerRevision"),
                           "ControllerRevision", "v1", "Strict", False)[1] == []


def test_patch_findings():
    schema = ks.kind_schema("", "v1", "ConfigMap")
    old = {"metadata": {"name": "c"}, "data": {"a": "1"}}
    patch = ks.loads('{"data": {"b": "2", "b": "3"}, "zz": 1, "aa": 2}')
    new = {**old, "data": {"a": "1", "b": "3"}, "zz": 1, "aa": 2}
    with pytest.raises(KubeError) as err:
        ks.checked_patch(patch, old, new, schema, "Strict")
    assert err.value.message == ('strict decoding error: duplicate field "data.b", unknown '
                                 'field "aa", unknown field "zz"')
    obj, warnings = ks.checked_patch(patch, old, new, schema, "Warn")
    assert obj == {"metadata": {"name": "c"}, "data": {"a": "1", "b": "3"}}
    assert len(warnings) == 3
    ops = ks.loads('[{"op": "add", "path": "/data/x", "value": "1", "foo": "bar"},'
                   '{"op": "add", "path": "/a", "path": "/data/y", "value": "1"}]')
    _, warnings = ks.checked_patch(ops, old, old, schema, "Warn")
    assert warnings == ['json patch unknown field "[0].foo"',
                        'json patch duplicate field "[1].path"']


def test_directive_and_decoding():
    assert ks.directive([]) == "Warn"
    assert ks.directive(["Strict"]) == "Strict"
    with pytest.raises(KubeError):
        ks.directive(["strict"])
    with pytest.raises(ValueError):
        ks.loads('{"a": NaN}')
    assert json.dumps(ks.loads_yaml("a: 2024-01-01\nb: [1, true]\n1: x\n")) == \
        '{"a": "2024-01-01", "b": [1, true], "1": "x"}'
