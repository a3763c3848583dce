"""The downward API in env (model/downward.py): checks, defaults and values."""

from __future__ import annotations

import pytest

from fargo.model import admission, downward

pytestmark = pytest.mark.pure


def env(*entries, resources=None) -> dict:
    c = {"name": "app", "image": "x", "env": list(entries)}
    if resources:
        c["resources"] = resources
    return {"metadata": {"name": "web", "namespace": "apps", "uid": "u-1",
                         "labels": {"tier": "web"}, "annotations": {"a/b": "c"}},
            "spec": {"serviceAccountName": "default", "containers": [c]}}


def field(name: str, path: str) -> dict:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def res(name: str, resource: str, divisor=None, container=None) -> dict:
    ref = {"resource": resource}
    if divisor is not None:
        ref["divisor"] = divisor
    if container is not None:
        ref["containerName"] = container
    return {"name": name, "valueFrom": {"resourceFieldRef": ref}}


PLACED = downward.Placed("10.0.1.7", "fargate-ip-10-0-1-7.us-east-1.compute.internal",
                         cpu_units=512, memory_mib=1024)


def values(pod: dict) -> dict[str, str]:
    out = downward.resolved_spec(pod, PLACED)["containers"][0]["env"]
    assert all("valueFrom" not in e for e in out)
    return {e["name"]: e["value"] for e in out}


def test_field_refs():
    pod = env({"name": "PLAIN", "value": "x"}, field("N", "metadata.name"),
              field("NS", "metadata.namespace"), field("UID", "metadata.uid"),
              field("L", "metadata.labels['tier']"), field("A", "metadata.annotations['a/b']"),
              field("MISSING", "metadata.labels['nope']"), field("NODE", "spec.nodeName"),
              field("SA", "spec.serviceAccountName"), field("IP", "status.podIP"),
              field("IPS", "status.podIPs"), field("HOST", "status.hostIP"))
    assert downward.env_errors(pod["spec"]) == []
    assert values(pod) == {"PLAIN": "x", "N": "web", "NS": "apps", "UID": "u-1", "L": "web",
                           "A": "c", "MISSING": "", "NODE": PLACED.node, "SA": "default",
                           "IP": "10.0.1.7", "IPS": "10.0.1.7", "HOST": "10.0.1.7"}
    assert list(values(pod)) == ["PLAIN", "N", "NS", "UID", "L", "A", "MISSING", "NODE", "SA",
                                 "IP", "IPS", "HOST"]  # in their places


def test_resource_refs():
    pod = env(res("CPU_LIMIT", "limits.cpu"), res("CPU_M", "requests.cpu", "1m"),
              res("MEM", "limits.memory", "1Mi"), res("MEM_REQ", "requests.memory"),
              res("DISK", "limits.ephemeral-storage", "1Gi"),
              resources={"limits": {"memory": "128Mi"}, "requests": {"cpu": "250m"}})
    assert downward.env_errors(pod["spec"]) == []
    # No CPU limit: the node's (0.5 vCPU), rounded up to a whole core; the memory request
    # defaults to its limit.
    assert values(pod) == {"CPU_LIMIT": "1", "CPU_M": "250", "MEM": "128",
                           "MEM_REQ": str(128 * 2**20), "DISK": "20"}
    bare = env(res("C", "requests.cpu"), res("M", "limits.memory", "1Mi"))
    assert values(bare) == {"C": "0", "M": "1024"}


@pytest.mark.parametrize("entry,want", [
    (field("X", "status.phase"), ("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath",
                                  "Unsupported value: 'status.phase': supported values: "
                                  '"metadata.name", "metadata.namespace", "metadata.uid", '
                                  '"spec.nodeName", "spec.serviceAccountName", '
                                  '"status.hostIP", "status.hostIPs", "status.podIP", '
                                  '"status.podIPs"')),
    ({"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name",
                                              "apiVersion": "v2"}}},
     ("spec.containers[0].env[0].valueFrom.fieldRef.apiVersion",
      "Unsupported value: 'v2': supported values: \"v1\"")),
    (res("X", "limits.gpu"), ("spec.containers[0].env[0].valueFrom.resourceFieldRef.resource",
                              "Unsupported value: 'limits.gpu': supported values: "
                              '"limits.cpu", "limits.ephemeral-storage", "limits.memory", '
                              '"requests.cpu", "requests.ephemeral-storage", '
                              '"requests.memory"')),
    (res("X", "limits.cpu", "2"), ("spec.containers[0].env[0].valueFrom.resourceFieldRef."
                                   "divisor", "Invalid value: '2': only divisor's values 1m, 1 "
                                   "are supported with the cpu resource")),
    (res("X", "limits.cpu", container="other"),
     ("spec.containers[0].env[0].valueFrom.resourceFieldRef.containerName",
      "Invalid value: 'other': must be the name of one of the pod's containers")),
    ({"name": "X", "value": "v", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
     ("spec.containers[0].env[0].valueFrom",
      'Invalid value: "": may not be specified when `value` is not empty')),
    ({"name": "X", "valueFrom": {}}, ("spec.containers[0].env[0].valueFrom",
                                      'Invalid value: "": must specify one of: `fieldRef`, '
                                      "`resourceFieldRef`, `configMapKeyRef` or "
                                      "`secretKeyRef`")),
])
def test_refused_refs(entry, want):
    assert want in downward.env_errors(env(entry)["spec"])


def test_defaults_and_admission():
    pod = env(field("N", "metadata.name"), res("C", "limits.cpu"))
    downward.default_env(pod["spec"])
    assert pod["spec"]["containers"][0]["env"] == [
        {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name",
                                                 "apiVersion": "v1"}}},
        {"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu",
                                                         "divisor": "0"}}}]
    assert admission.unimplemented(pod) == []
