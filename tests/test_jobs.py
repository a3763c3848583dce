"""Jobs, CronJobs and DaemonSets driven by the real kubectl against a real fargo server, their
pods running in runc sandboxes on Fargate nodes: completions with parallelism, a Job that
runs out of backoffLimit (and goes at its ttlSecondsAfterFinished), an Indexed Job, the Jobs and
CronJobs `kubectl create job` (also --from=cronjob) and `create cronjob` post as protobuf, a
DaemonSet that never runs, and a Job that finishes, counted exactly, across a server SIGKILL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FargoServer, FargoServers
from tests.test_kubectl import KUBECTL, eks_cluster, kubectl, kubectl_run, wait_deleted

pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")
NS = "batch"


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Iterator[FargoServer]:
    with FargoServers(tmp_path_factory.mktemp("jobs-state")) as servers:
        yield servers("--overcommit", "8")


@pytest.fixture(scope="module")
def kubeconfig(srv, tmp_path_factory) -> Path:
    return eks_cluster(srv, tmp_path_factory.mktemp("kube"), [{"namespace": NS}], [NS], "j")[1]


def job_body(name: str, image: str, script: str, **spec) -> str:
    template = {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 3,
                         "containers": [{"name": "main", "image": image,
                                         "command": ["sh", "-c", script]}]}}
    return json.dumps({"apiVersion": "batch/v1", "kind": "Job",
                       "metadata": {"name": name, "namespace": NS},
                       "spec": {"template": template, **spec}})


def get(config: Path, kind: str, name: str) -> dict:
    return json.loads(kubectl_run(config, "get", kind, name, "-n", NS, "-o", "json"))


def job_pods(config: Path, job: str) -> list[dict]:
    out = kubectl_run(config, "get", "pods", "-n", NS, "-l", f"job-name={job}", "-o", "json")
    return json.loads(out)["items"]


def wait_job(config: Path, name: str, condition: str, timeout: int = 90) -> dict:
    out = kubectl(config, "wait", f"--for=condition={condition}", f"job/{name}", "-n", NS,
                  f"--timeout={timeout}s", timeout=timeout + 10)
    assert out.returncode == 0, (out.stderr, get(config, "job", name).get("status"))
    return get(config, "job", name)


def row(config: Path, kind: str, name: str, *args: str) -> list[str]:
    out = kubectl_run(config, "get", kind, "-n", NS, *args)
    header = out.splitlines()[0].split()
    line = next(line for line in out.splitlines() if line.startswith(name + " "))
    return header + ["|"] + line.split()


def test_completions_with_parallelism(kubeconfig, busybox_image):
    body = job_body("three", busybox_image, "echo hello from $HOSTNAME; exit 0",
                    completions=3, parallelism=2)
    assert "job.batch/three created" in kubectl_run(kubeconfig, "apply", "-f", "-",
                                                    stdin=body)
    job = wait_job(kubeconfig, "three", "complete")
    st = job["status"]
    assert st["succeeded"] == 3 and "failed" not in st and "active" not in st
    assert st["uncountedTerminatedPods"] == {} and st["completionTime"] and st["startTime"]
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Complete"]["status"] == "True" and conds["SuccessCriteriaMet"]
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {
        "batch.kubernetes.io/controller-uid": uid}}
    pods = job_pods(kubeconfig, "three")
    assert len(pods) == 3
    for p in pods:
        assert p["metadata"]["name"].startswith("three-") and len(p["metadata"]["name"]) == 11
        assert p["status"]["phase"] == "Succeeded"
        assert not p["metadata"].get("finalizers")  # counted: the tracking finalizer is gone
        assert p["metadata"]["ownerReferences"][0]["uid"] == uid
    # kubectl's printers, logs through the job's selector, events
    cells = row(kubeconfig, "jobs", "three")
    assert cells[:5] == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert cells[6:9] == ["three", "Complete", "3/3"]
    wide = row(kubeconfig, "jobs", "three", "-o", "wide")
    assert wide[5:8] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[-3:] == ["main", busybox_image, f"batch.kubernetes.io/controller-uid={uid}"]
    assert kubectl_run(kubeconfig, "logs", "job/three", "-n", NS).startswith("hello from ")
    events = kubectl_run(kubeconfig, "get", "events", "-n", NS,
                         "--field-selector", "involvedObject.name=three")
    assert "SuccessfulCreate" in events and "Completed" in events
    described = kubectl_run(kubeconfig, "describe", "job", "three", "-n", NS)
    assert "Pods Statuses:" in described and "3 Succeeded" in described
    assert "job.batch/three" in kubectl_run(kubeconfig, "get", "all", "-n", NS)
    # deleting the Job takes its pods along (the garbage collector)
    kubectl_run(kubeconfig, "delete", "job", "three", "-n", NS)
    for p in pods:
        wait_deleted(kubeconfig, "pod", p["metadata"]["name"], NS)


def test_backoff_limit_then_ttl(kubeconfig, busybox_image):
    body = job_body("fails", busybox_image, "echo failing; exit 3", backoffLimit=1,
                    ttlSecondsAfterFinished=8)
    kubectl_run(kubeconfig, "apply", "-f", "-", stdin=body)
    job = wait_job(kubeconfig, "fails", "failed", timeout=60)
    st = job["status"]
    assert st["failed"] == 2 and "succeeded" not in st  # the first try and one retry
    failed = next(c for c in st["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert "completionTime" not in st
    assert row(kubeconfig, "jobs", "fails")[6:9] == ["fails", "Failed", "0/1"]
    pods = job_pods(kubeconfig, "fails")
    assert len(pods) == 2 and all(p["status"]["phase"] == "Failed" for p in pods)
    # ttlSecondsAfterFinished: the Job and its pods go
    wait_deleted(kubeconfig, "job", "fails", NS, timeout=20)
    for p in pods:
        wait_deleted(kubeconfig, "pod", p["metadata"]["name"], NS)


def test_indexed_job(kubeconfig, busybox_image):
    body = job_body("idx", busybox_image, "echo index=$JOB_COMPLETION_INDEX",
                    completions=3, parallelism=3, completionMode="Indexed")
    kubectl_run(kubeconfig, "apply", "-f", "-", stdin=body)
    job = wait_job(kubeconfig, "idx", "complete")
    assert job["status"]["completedIndexes"] == "0-2" and job["status"]["succeeded"] == 3
    pods = job_pods(kubeconfig, "idx")
    seen = set()
    for p in pods:
        index = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == index
        assert p["metadata"]["name"].startswith(f"idx-{index}-")
        log = kubectl_run(kubeconfig, "logs", p["metadata"]["name"], "-n", NS)
        assert log.strip() == f"index={index}"
        seen.add(index)
    assert seen == {"0", "1", "2"}
    kubectl_run(kubeconfig, "delete", "job", "idx", "-n", NS)


def test_cronjob_and_create_job_from_it(kubeconfig, busybox_image):
    cron = {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": NS},
            "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Berlin", "suspend": True,
                     "jobTemplate": {"metadata": {"labels": {"app": "nightly"}},
                                     "spec": json.loads(job_body(
                                         "x", busybox_image, "echo nightly run"))["spec"]}}}
    kubectl_run(kubeconfig, "apply", "-f", "-", stdin=json.dumps(cron))
    cells = row(kubeconfig, "cronjobs", "nightly")
    assert cells[:8] == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST",
                         "SCHEDULE", "AGE"]
    assert cells[9:16] == ["nightly", "0", "3", "*", "*", "*", "Europe/Berlin"]
    assert cells[16:19] == ["True", "0", "<none>"]
    # kubectl builds the Job from the CronJob client-side (its stored jobTemplate, defaults
    # and all) and posts it as protobuf, with no fallback to JSON.
    out = kubectl_run(kubeconfig, "create", "job", "by-hand", "--from=cronjob/nightly",
                      "-n", NS)
    assert "job.batch/by-hand created" in out
    job = wait_job(kubeconfig, "by-hand", "complete")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["labels"]["app"] == "nightly"
    cj = get(kubeconfig, "cronjob", "nightly")
    assert job["metadata"]["ownerReferences"][0]["uid"] == cj["metadata"]["uid"]
    assert kubectl_run(kubeconfig, "logs", "job/by-hand", "-n", NS).strip() == "nightly run"
    # an unknown zone, a bad schedule: 422 with the field
    bad = dict(cron, metadata={"name": "bad", "namespace": NS})
    bad["spec"] = dict(cron["spec"], timeZone="Mars/Olympus", schedule="61 * * * *")
    out = kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(bad))
    assert out.returncode != 0
    assert "spec.timeZone" in out.stderr and "unknown time zone Mars/Olympus" in out.stderr
    assert "spec.schedule" in out.stderr and "above maximum (59)" in out.stderr
    # the CronJob's deletion takes its Jobs along
    kubectl_run(kubeconfig, "delete", "cronjob", "nightly", "-n", NS)
    wait_deleted(kubeconfig, "job", "by-hand", NS)


def test_kubectl_create_job_and_cronjob(kubeconfig, busybox_image):
    # kubectl's generators post protobuf and do not fall back to JSON on a 415.
    out = kubectl_run(kubeconfig, "create", "job", "made", f"--image={busybox_image}", "-n", NS,
                      "--", "sh", "-c", "echo made by kubectl")
    assert "job.batch/made created" in out
    job = wait_job(kubeconfig, "made", "complete")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["name"] == "made"
    assert pod["containers"][0]["command"] == ["sh", "-c", "echo made by kubectl"]
    assert job["spec"]["backoffLimit"] == 6 and job["spec"]["completions"] == 1  # defaulted
    assert kubectl_run(kubeconfig, "logs", "job/made", "-n", NS).strip() == "made by kubectl"
    kubectl_run(kubeconfig, "delete", "job", "made", "-n", NS)
    out = kubectl_run(kubeconfig, "create", "cronjob", "tick", f"--image={busybox_image}",
                      "--schedule=*/5 * * * *", "-n", NS, "--", "echo", "tick")
    assert "cronjob.batch/tick created" in out
    cj = get(kubeconfig, "cronjob", "tick")
    assert cj["spec"]["schedule"] == "*/5 * * * *"
    assert cj["spec"]["concurrencyPolicy"] == "Allow" and cj["spec"]["suspend"] is False
    template = cj["spec"]["jobTemplate"]
    assert template["metadata"]["name"] == "tick"
    assert template["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert template["spec"]["template"]["spec"]["containers"][0]["command"] == ["echo", "tick"]
    assert row(kubeconfig, "cronjobs", "tick")[9:16] == ["tick", "*/5", "*", "*", "*", "*",
                                                         "<none>"]
    # the two together: a Job from the CronJob kubectl made, its owner
    kubectl_run(kubeconfig, "create", "job", "tick-now", "--from=cronjob/tick", "-n", NS)
    job = wait_job(kubeconfig, "tick-now", "complete")
    assert job["metadata"]["ownerReferences"][0]["uid"] == cj["metadata"]["uid"]
    assert kubectl_run(kubeconfig, "logs", "job/tick-now", "-n", NS).strip() == "tick"
    # a kind fargo does not serve stays refused
    out = kubectl(kubeconfig, "create", "quota", "q", "--hard=pods=1", "-n", NS)
    assert out.returncode != 0 and "could not find the requested resource" in out.stderr
    kubectl_run(kubeconfig, "delete", "cronjob", "tick", "-n", NS)
    wait_deleted(kubeconfig, "job", "tick-now", NS)


def test_daemonset_is_stored_and_never_runs(kubeconfig, busybox_image):
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": "agent", "namespace": NS},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}},
                                "spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                         "containers": [{"name": "agent",
                                                         "image": busybox_image}]}}}}
    kubectl_run(kubeconfig, "apply", "-f", "-", stdin=json.dumps(ds))
    deadline = time.time() + 15
    while "status" not in get(kubeconfig, "daemonset", "agent"):
        assert time.time() < deadline
        time.sleep(0.2)
    cells = row(kubeconfig, "ds", "agent")
    assert cells[:9] == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                         "NODE", "SELECTOR", "AGE"]
    assert cells[10:17] == ["agent", "0", "0", "0", "0", "0", "kubernetes.io/os=linux"]
    events = kubectl_run(kubeconfig, "get", "events", "-n", NS,
                         "--field-selector", "involvedObject.name=agent")
    assert "DaemonSets aren't supported on Fargate" in events
    assert not json.loads(kubectl_run(kubeconfig, "get", "pods", "-n", NS, "-l", "app=agent",
                                      "-o", "json"))["items"]
    ds["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    out = kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(ds))
    assert out.returncode != 0 and "`selector` does not match template `labels`" in out.stderr
    kubectl_run(kubeconfig, "delete", "daemonset", "agent", "-n", NS)


def test_job_survives_a_server_sigkill(srv, kubeconfig, busybox_image):
    body = job_body("steady", busybox_image, "sleep 2; exit 0", completions=4, parallelism=2)
    kubectl_run(kubeconfig, "apply", "-f", "-", stdin=body)
    deadline = time.time() + 60
    while not get(kubeconfig, "job", "steady").get("status", {}).get("succeeded"):
        assert time.time() < deadline
        time.sleep(0.2)
    srv.kill()  # mid-run: a result counted, others running or about to start
    srv.start()
    job = wait_job(kubeconfig, "steady", "complete")
    assert job["status"]["succeeded"] == 4 and "failed" not in job["status"]
    pods = job_pods(kubeconfig, "steady")
    assert len(pods) == 4 and all(p["status"]["phase"] == "Succeeded" for p in pods)
    kubectl_run(kubeconfig, "delete", "job", "steady", "-n", NS)
