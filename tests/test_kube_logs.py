"""`kubectl logs` against fargo: -c, --all-containers, --prefix, -l, --tail, --since,
--since-time, --timestamps, --limit-bytes, -f over one run, --previous, and PodLogOptions'
checks."""

from __future__ import annotations

import json
import subprocess

import requests
import yaml

from tests.test_kube_probes import wait_until
from tests.test_kubectl import (  # noqa: F401 - the fixtures, shared
    KUBECTL,
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


def logs(config, *args: str) -> str:
    return kubectl_run(config, "logs", "-n", "apps", *args)


def test_logs_flags(kubeconfig, srv, cluster, busybox_image):  # noqa: F811
    talk = json.loads(pod_yaml("talk", busybox_image, labels={"tier": "web", "app": "talk"},
                               script="echo a-first; sleep 1; echo a-second; sleep 3600"))
    talk["spec"]["containers"].append({
        "name": "b", "image": busybox_image, "command": ["sh", "-c", (
            "i=0; while true; do echo b $i; i=$((i+1)); sleep 0.2; done")]})
    # crash: each run prints once, lives 3 s and fails; restarted every time.
    crash = pod_yaml("crash", busybox_image,
                     script='echo "run $(cat /proc/sys/kernel/random/uuid)"; sleep 3; exit 3')
    kubectl_run(kubeconfig, "apply", "-f", "-", stdin=json.dumps(talk))
    kubectl_run(kubeconfig, "apply", "-f", "-", stdin=crash)
    wait_for(kubeconfig, "talk", "status.phase", "Running")
    wait_until(lambda: "a-second" in logs(kubeconfig, "talk", "-c", "app"), "no a-second")

    assert logs(kubeconfig, "talk", "-c", "app") == "a-first\na-second\n"
    out = kubectl(kubeconfig, "logs", "-n", "apps", "talk")  # kubectl picks the first
    assert out.stdout == "a-first\na-second\n" and 'Defaulted container "app"' not in out.stdout
    both = logs(kubeconfig, "talk", "--all-containers", "--prefix").splitlines()
    assert "[pod/talk/app] a-first" in both and "[pod/talk/b] b 0" in both
    tail = logs(kubeconfig, "talk", "-c", "b", "--tail=3").splitlines()
    assert len(tail) == 3 and all(line.startswith("b ") for line in tail)
    numbers = [int(line.split()[1]) for line in tail]
    assert numbers == sorted(numbers) and numbers[-1] - numbers[0] == 2
    assert logs(kubeconfig, "talk", "-c", "b", "--tail=0") == ""
    # -l: kubectl lists the pods itself and asks each.
    selected = logs(kubeconfig, "-l", "app=talk", "-c", "app")
    assert selected == "a-first\na-second\n"
    stamped = logs(kubeconfig, "talk", "-c", "app", "--timestamps").splitlines()
    stamp = stamped[1].split(" ", 1)[0]
    assert stamped[1].endswith(" a-second") and stamp.endswith("Z") and "T" in stamp
    assert logs(kubeconfig, "talk", "-c", "app", f"--since-time={stamp}") == "a-second\n"
    # b writes every 0.2 s: the last second holds about 5 of its lines, the latest ones.
    recent = [int(line.split()[1]) for line in logs(kubeconfig, "talk", "-c", "b",
                                                     "--since=1s").splitlines()]
    assert 3 <= len(recent) <= 8 and recent == list(range(recent[0], recent[0] + len(recent)))
    assert recent[0] > 0
    assert logs(kubeconfig, "talk", "-c", "app", "--limit-bytes=5") == "a-fir"
    out = kubectl(kubeconfig, "logs", "-n", "apps", "talk", "-c", "app", "--previous")
    assert out.returncode != 0 and 'previous terminated container "app" in pod "talk" not ' \
        "found" in out.stderr
    out = kubectl(kubeconfig, "logs", "-n", "apps", "talk", "-c", "nope")
    assert out.returncode != 0 and "container nope is not valid for pod talk" in out.stderr

    # PodLogOptions are checked (kubectl checks most of them itself first).
    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    base = f"{srv.endpoint}/eks/{cluster}/api/v1/namespaces/apps/pods/talk/log?container=b&"
    for query, code in (("sinceSeconds=0", 422), ("tailLines=-1", 422), ("limitBytes=0", 422),
                        ("sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z", 422),
                        ("sinceTime=yesterday", 400), ("follow=maybe", 400)):
        r = requests.get(base + query, headers={"Authorization": f"Bearer {token}"},
                         timeout=10)
        assert r.status_code == code, (query, r.text)
        assert r.json()["kind"] == "Status"

    # -f follows the current run and ends with it; --previous is the run before.
    wait_until(lambda: "running" in json.loads(kubectl_run(
        kubeconfig, "get", "pod", "crash", "-n", "apps", "-o", "json"))["status"].get(
        "containerStatuses", [{}])[0].get("state", {}), "crash never ran")
    follow = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "logs", "-f", "-n",
                             "apps", "crash"], capture_output=True, text=True, timeout=20)
    assert follow.returncode == 0 and follow.stdout.count("run ") == 1, follow

    def status() -> dict:
        return json.loads(kubectl_run(kubeconfig, "get", "pod", "crash", "-n", "apps", "-o",
                                      "json"))["status"]["containerStatuses"][0]

    def again() -> tuple[dict, str, str] | None:
        """Running once more: its current and previous runs, read while the same run
        went on (each lives 3 s; a slow kubectl can see the next restart between them)."""
        before = status()
        if before["restartCount"] < 1 or "running" not in before["state"]:
            return None
        current = logs(kubeconfig, "crash")
        previous = logs(kubeconfig, "crash", "--previous")
        return (before, current, previous) if status() == before else None

    seen = wait_until(again, "crash was not restarted")
    assert seen is not None
    before, current, previous = seen
    assert previous.count("run ") == 1 and current.count("run ") == 1, (previous, current)
    assert previous != current
    assert before["restartCount"] > 1 or previous == follow.stdout, (before, previous, follow)

    kubectl_run(kubeconfig, "delete", "pod", "talk", "crash", "-n", "apps",
                "--grace-period=0", "--force")
    for name in ("talk", "crash"):
        wait_deleted(kubeconfig, "pod", name)
