"""Fargate Spot interruptions on purpose: `fargo spot interrupt` against a real server. The
task gets its stop signal now, SIGKILL only after its stopTimeout, and stops with stopCode
SpotInterruption; tasks not on FARGATE_SPOT are refused."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import requests

from tests.conftest import ROOT, wait_status
from tests.test_tasks import register

# Exits 0 on SIGTERM after saying so: a SIGKILL would leave exit code 137.
GRACEFUL = ["sh", "-c", "trap 'echo got SIGTERM; sleep 1; exit 0' TERM; "
            "while true; do sleep 0.2; done"]
SPOT = [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]


def spot(fargo, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fargo", "spot", "interrupt", *args,
                           "--endpoint", fargo.endpoint], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=fargo.env())


def run(ecs, fam: str, subnet_id: str, **kw) -> dict:
    out = ecs.run_task(taskDefinition=fam, networkConfiguration={
        "awsvpcConfiguration": {"subnets": [subnet_id]}}, **kw)
    assert out["failures"] == []
    return out["tasks"][0]


def test_interrupt_delivers_sigterm_then_spot_interruption(fargo, ecs, busybox_image,
                                                           subnet_id):
    fam = register(ecs, busybox_image, command=GRACEFUL, stopTimeout=20)
    t = run(ecs, fam, subnet_id, capacityProviderStrategy=SPOT)
    assert t["capacityProviderName"] == "FARGATE_SPOT"
    wait_status(ecs, t["taskArn"], "RUNNING")
    began = time.monotonic()
    out = spot(fargo, t["taskArn"])
    assert out.returncode == 0, out.stderr
    assert "SpotInterruption: Your Spot Task was interrupted." in out.stdout
    # Told at once: desired STOPPED with the code and reason while the container winds down.
    now = ecs.describe_tasks(tasks=[t["taskArn"]])["tasks"][0]
    assert now["desiredStatus"] == "STOPPED" and now["stopCode"] == "SpotInterruption"
    assert now["stoppedReason"] == "Your Spot Task was interrupted."
    done = wait_status(ecs, t["taskArn"], "STOPPED", timeout=30)
    assert time.monotonic() - began < 15  # it left on SIGTERM, long before its stopTimeout
    assert done["stopCode"] == "SpotInterruption"
    assert done["containers"][0]["exitCode"] == 0  # SIGTERM, not SIGKILL
    # Once stopping, it is not interrupted again.
    again = spot(fargo, t["taskArn"].rsplit("/", 1)[-1])
    assert again.returncode == 1 and "already stopping" in again.stderr


def test_only_spot_tasks_can_be_interrupted(fargo, ecs, busybox_image, subnet_id):
    fam = register(ecs, busybox_image, command=GRACEFUL, stopTimeout=2)
    plain = run(ecs, fam, subnet_id, launchType="FARGATE")
    on_demand = run(ecs, fam, subnet_id,
                    capacityProviderStrategy=[{"capacityProvider": "FARGATE"}])
    try:
        out = spot(fargo, plain["taskArn"], on_demand["taskArn"], uuid.uuid4().hex, "nope")
        assert out.returncode == 1
        assert "launch type FARGATE: only FARGATE_SPOT tasks can be interrupted" in out.stderr
        assert "capacity provider FARGATE: only FARGATE_SPOT" in out.stderr
        assert "was not found" in out.stderr and "Invalid task identifier" in out.stderr
        for t in (plain, on_demand):
            assert ecs.describe_tasks(tasks=[t["taskArn"]])["tasks"][0]["desiredStatus"] == \
                "RUNNING"
    finally:
        for t in (plain, on_demand):
            ecs.stop_task(task=t["taskArn"])
        for t in (plain, on_demand):
            wait_status(ecs, t["taskArn"], "STOPPED")


def test_admin_path_refuses_unsigned_and_malformed(fargo):
    url = fargo.endpoint + "/fargo/v1/spot/interruptions"
    r = requests.post(url, data=b'{"tasks": ["x"]}', timeout=10)
    assert r.status_code == 403 and r.json()["__type"] == "MissingAuthenticationTokenException"

    def signed(body: bytes) -> requests.Response:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        req = AWSRequest(method="POST", url=url, data=body)
        SigV4Auth(Credentials(fargo.key_id, fargo.secret), "fargo", "us-east-1").add_auth(req)
        return requests.post(url, data=body, headers=dict(req.headers.items()), timeout=10)

    for body, code in ((b"{", "SerializationException"),
                       (b"[]", "InvalidParameterException"),
                       (b'{"tasks": []}', "InvalidParameterException"),
                       (b'{"tasks": [1]}', "InvalidParameterException"),
                       (json.dumps({"tasks": ["a"] * 101}).encode(), "InvalidParameterException"),
                       (b'{"tasks": ["a"], "rate": 1}', "InvalidParameterException")):
        r = signed(body)
        assert r.status_code == 400 and r.json()["__type"] == code, (body, r.text)
    r = requests.get(url, timeout=10)
    assert r.status_code == 405


def test_cli_needs_a_task(fargo):
    out = spot(fargo)
    assert out.returncode != 0 and "Missing argument" in out.stderr


def test_service_replaces_an_interrupted_spot_task(fargo, ecs, busybox_image, subnet_id):
    cluster = "spot" + uuid.uuid4().hex[:8]
    ecs.create_cluster(clusterName=cluster, capacityProviders=["FARGATE", "FARGATE_SPOT"])
    fam = register(ecs, busybox_image, command=GRACEFUL, stopTimeout=2)
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=fam, desiredCount=1,
                       capacityProviderStrategy=SPOT, networkConfiguration={
                           "awsvpcConfiguration": {"subnets": [subnet_id]}})

    def running() -> list[dict]:
        arns = ecs.list_tasks(cluster=cluster, serviceName="web")["taskArns"]
        found = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
        return [t for t in found if t["lastStatus"] == "RUNNING"]

    def until(check, timeout: float = 60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if out := check():
                return out
            time.sleep(0.2)
        raise AssertionError("timed out")

    try:
        (first,) = until(running)
        assert first["capacityProviderName"] == "FARGATE_SPOT"
        out = spot(fargo, first["taskArn"])
        assert out.returncode == 0, out.stderr
        (second,) = until(lambda: [t for t in running() if t["taskArn"] != first["taskArn"]])
        assert second["capacityProviderName"] == "FARGATE_SPOT"
        old = wait_status(ecs, first["taskArn"], "STOPPED", cluster=cluster)
        assert old["stopCode"] == "SpotInterruption"
    finally:
        ecs.delete_service(cluster=cluster, service="web", force=True)
        for arn in ecs.list_tasks(cluster=cluster, desiredStatus="STOPPED")["taskArns"] + \
                ecs.list_tasks(cluster=cluster)["taskArns"]:
            wait_status(ecs, arn, "STOPPED", cluster=cluster)
        until(lambda: ecs.describe_services(cluster=cluster, services=["web"])["services"][0][
            "status"] == "INACTIVE")
        ecs.delete_cluster(cluster=cluster)
