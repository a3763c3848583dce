"""`kubectl top pods` and `kubectl top nodes` against fargo's metrics.k8s.io."""

from __future__ import annotations

import json

from tests.test_kube_probes import wait_until
from tests.test_kubectl import (  # noqa: F401 - the fixtures, shared
    cluster,
    eks,
    kubeconfig,
    kubectl,
    kubectl_run,
    pod_yaml,
    srv,
    subnets,
    wait_deleted,
    wait_for,
)


def millicores(cell: str) -> int:
    return int(cell.removesuffix("m"))


def test_kubectl_top(kubeconfig, cluster, busybox_image):  # noqa: F811
    busy = json.loads(pod_yaml("busy", busybox_image, labels={"tier": "web", "load": "high"},
                               script="while true; do :; done"))
    busy["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "500m", "memory": "256Mi"}}
    idle = pod_yaml("idle", busybox_image, script="sleep 3600")
    kubectl_run(kubeconfig, "apply", "-f", "-", stdin=json.dumps(busy))
    kubectl_run(kubeconfig, "apply", "-f", "-", stdin=idle)
    for name in ("busy", "idle"):
        wait_for(kubeconfig, name, "status.phase", "Running")
    assert "metrics.k8s.io/v1beta1" in kubectl_run(kubeconfig, "api-versions")

    def rows() -> dict[str, list[str]]:
        out = kubectl_run(kubeconfig, "top", "pods", "-n", "apps").splitlines()
        assert out[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"], out
        return {line.split()[0]: line.split()[1:] for line in out[1:]}

    # A second on, the busy pod has used about its half core.
    got = wait_until(lambda: (r := rows()) and {"busy", "idle"} <= set(r)
                     and millicores(r["busy"][0]) > 200 and r, "no CPU figures for busy")
    # The busy one is not past its limit; the idle one is far below it (its window may hold
    # its own start on a loaded machine, so only well under the busy one's is asked).
    assert millicores(got["busy"][0]) <= 800
    assert millicores(got["idle"][0]) < min(150, millicores(got["busy"][0]) // 2)
    assert got["idle"][1].endswith("Mi")
    one = kubectl_run(kubeconfig, "top", "pod", "busy", "-n", "apps", "--containers")
    assert one.splitlines()[1].split()[:2] == ["busy", "app"]
    labelled = kubectl_run(kubeconfig, "top", "pods", "-n", "apps", "-l", "load=high")
    assert [line.split()[0] for line in labelled.splitlines()[1:]] == ["busy"]
    assert "busy" in kubectl_run(kubeconfig, "top", "pods", "-A")
    # --raw takes the whole path (kubectl drops the server URL's own).
    base = f"/eks/{cluster}/apis/metrics.k8s.io/v1beta1/namespaces/apps/pods"
    raw = json.loads(kubectl_run(kubeconfig, "get", "--raw", f"{base}/busy"))
    assert raw["kind"] == "PodMetrics" and raw["containers"][0]["usage"]["cpu"].endswith("n")
    assert raw["window"].endswith("s") and raw["metadata"]["labels"]["load"] == "high"
    printed = kubectl_run(kubeconfig, "get", "pods.metrics.k8s.io", "-n", "apps")
    assert printed.split()[:4] == ["NAME", "CPU", "MEMORY", "WINDOW"] and "busy" in printed
    missing = kubectl(kubeconfig, "get", "--raw", f"{base}/nope")
    assert missing.returncode != 0 and 'pods.metrics.k8s.io "nope" not found' in missing.stderr

    # Nodes: one per pod, its task's whole usage, as a share of the node's capacity.
    node = wait_for(kubeconfig, "busy", "spec.nodeName", "*")["spec"]["nodeName"]
    nodes = kubectl_run(kubeconfig, "top", "nodes").splitlines()
    assert nodes[0].split()[:3] == ["NAME", "CPU(cores)", "CPU(%)"], nodes
    row = next(line.split() for line in nodes if line.startswith(node))
    assert millicores(row[1]) > 200 and row[2].endswith("%")

    kubectl_run(kubeconfig, "delete", "pod", "busy", "idle", "-n", "apps", "--grace-period=0",
                "--force")
    for name in ("busy", "idle"):
        wait_deleted(kubeconfig, "pod", name)
