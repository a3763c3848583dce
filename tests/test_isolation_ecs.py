"""The sandbox tier as an ECS user chooses it, with boto3 against a real server started with
`--isolation gvisor`: the platform version picks the tier ("1.4.0" runc, "1.4.0-gvisor"
gVisor, LATEST or none the server's default), DescribeTasks and DescribeServices show it, what
gVisor cannot give is refused at start, and the tier survives a SIGKILL of the server."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator

import botocore.exceptions
import pytest

from tests.conftest import FargoServer, FargoServers, wait_status
from tests.test_tasks import logs

RUNC, GVISOR = "1.4.0", "1.4.0-gvisor"
GVISOR_RELEASE = "4.4.0"  # the kernel version gVisor's sentry reports
IDLE = ["sh", "-c", "echo uname=$(uname -r); trap 'exit 0' TERM; sleep 600 & wait"]

pytestmark = pytest.mark.skipif(shutil.which("runsc") is None,
                                reason="needs runsc (scripts/setup.sh installs it)")


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Iterator[FargoServer]:
    with FargoServers(tmp_path_factory.mktemp("isolation-ecs")) as servers:
        yield servers("--isolation", "gvisor", name="gvisor")


@pytest.fixture(scope="module")
def ecs(srv):
    return srv.client()


@pytest.fixture(scope="module")
def subnet(srv) -> str:
    return srv.client("ec2").describe_subnets()["Subnets"][0]["SubnetId"]


def register(ecs, image: str, command: list[str], *extra: dict) -> str:
    fam = "iso" + uuid.uuid4().hex[:10]
    ecs.register_task_definition(
        family=fam, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256",
        memory="512", containerDefinitions=[
            {"name": "app", "image": image, "command": command, "stopTimeout": 2}, *extra])
    return fam


def run(ecs, fam: str, subnet: str, version: str | None) -> dict:
    kw = {"platformVersion": version} if version else {}
    out = ecs.run_task(taskDefinition=fam, launchType="FARGATE", networkConfiguration={
        "awsvpcConfiguration": {"subnets": [subnet]}}, **kw)
    assert out["failures"] == [], out["failures"]
    return out["tasks"][0]


def uname_of(srv, arn: str) -> str:
    deadline = time.time() + 15
    while True:
        for line in logs(srv, arn).splitlines():
            if line.startswith("uname="):
                return line.removeprefix("uname=")
        assert time.time() < deadline, f"no uname line in {arn}'s log"
        time.sleep(0.2)


def refused(call) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        call()
    err = exc.value.response["Error"]
    return err["Code"], err["Message"]


def test_the_platform_version_picks_the_tier_and_survives_a_sigkill(srv, ecs, subnet,
                                                                     busybox_image):
    fam = register(ecs, busybox_image, IDLE)
    given = {"none": None, "LATEST": "LATEST", RUNC: RUNC, GVISOR: GVISOR}
    made = {k: run(ecs, fam, subnet, v) for k, v in given.items()}
    # The server's default (--isolation gvisor) for LATEST and none, as RunTask answers.
    want = {"none": GVISOR, "LATEST": GVISOR, RUNC: RUNC, GVISOR: GVISOR}
    assert {k: t["platformVersion"] for k, t in made.items()} == want
    arns = {k: t["taskArn"] for k, t in made.items()}
    for arn in arns.values():
        wait_status(ecs, arn, "RUNNING")
    host = os.uname().release
    assert host != GVISOR_RELEASE
    unames = {k: uname_of(srv, arn) for k, arn in arns.items()}
    assert unames == {k: GVISOR_RELEASE if v == GVISOR else host for k, v in want.items()}

    srv.kill()  # SIGKILL: the tasks run on; the restarted server re-adopts them
    srv.start()
    seen = {t["taskArn"]: t for t in ecs.describe_tasks(tasks=list(arns.values()))["tasks"]}
    assert {k: seen[a]["platformVersion"] for k, a in arns.items()} == want
    assert all(t["lastStatus"] == "RUNNING" for t in seen.values()), seen
    for arn in arns.values():
        ecs.stop_task(task=arn)
    for k, arn in arns.items():
        t = wait_status(ecs, arn, "STOPPED")
        assert t["platformVersion"] == want[k]
        assert t["containers"][0]["exitCode"] == 0, (k, t)  # its TERM trap ran, in its tier


def test_gvisor_refuses_a_container_memory_limit_below_the_tasks(srv, ecs, subnet,
                                                                busybox_image):
    side = {"name": "side", "image": busybox_image, "command": ["sleep", "600"],
            "memory": 128, "essential": False, "stopTimeout": 2}
    fam = register(ecs, busybox_image, IDLE, side)
    t = wait_status(ecs, run(ecs, fam, subnet, GVISOR)["taskArn"], "STOPPED")
    assert t["stopCode"] == "TaskFailedToStart"
    assert t["stoppedReason"].startswith(
        "ResourceInitializationError: the gvisor sandbox cannot limit one container's memory "
        "apart from the others"), t["stoppedReason"]
    assert t["stoppedReason"].endswith("use runc (platform version 1.4.0)")
    assert "container side" in t["stoppedReason"] and len(t["stoppedReason"]) <= 255
    assert t["platformVersion"] == GVISOR
    assert all("exitCode" not in c for c in t["containers"])  # none of them ever ran
    # LATEST is gvisor on this server: refused alike; on runc the same definition runs.
    t = wait_status(ecs, run(ecs, fam, subnet, "LATEST")["taskArn"], "STOPPED")
    assert t["stopCode"] == "TaskFailedToStart"
    arn = run(ecs, fam, subnet, RUNC)["taskArn"]
    wait_status(ecs, arn, "RUNNING")
    ecs.stop_task(task=arn)
    wait_status(ecs, arn, "STOPPED")


def test_other_platform_versions_are_refused(ecs, subnet, busybox_image):
    fam = register(ecs, busybox_image, IDLE)
    net = {"awsvpcConfiguration": {"subnets": [subnet]}}
    for version in ("1.3.0", "1.4.0-kata", "gvisor"):
        code, message = refused(lambda v=version: ecs.run_task(
            taskDefinition=fam, networkConfiguration=net, platformVersion=v))
        assert code == "InvalidParameterException" and f"Platform version {version}" in message
        code, message = refused(lambda v=version: ecs.create_service(
            serviceName="bad", taskDefinition=fam, desiredCount=0, networkConfiguration=net,
            platformVersion=v))
        assert code == "InvalidParameterException" and "Platform version" in message
    assert "bad" not in str(ecs.list_services()["serviceArns"])
    assert ecs.list_tasks(family=fam)["taskArns"] == []


def _deployments(ecs, name: str) -> tuple[dict, list[dict]]:
    svc = ecs.describe_services(services=[name])["services"][0]
    return svc, svc["deployments"]


def _service_tasks(ecs, name: str, want: int, timeout: float = 30) -> list[dict]:
    deadline = time.time() + timeout
    while True:
        arns = ecs.list_tasks(serviceName=name)["taskArns"]
        tasks = ecs.describe_tasks(tasks=arns)["tasks"] if arns else []
        running = [t for t in tasks if t["lastStatus"] == "RUNNING"]
        if len(running) == want and len(tasks) == want:
            return running
        assert time.time() < deadline, tasks
        time.sleep(0.2)


def test_a_service_resolves_latest_per_deployment_and_redeploys_on_another_version(
        srv, ecs, subnet, busybox_image):
    fam = register(ecs, busybox_image, IDLE)
    name = "svc" + uuid.uuid4().hex[:6]
    ecs.create_service(serviceName=name, taskDefinition=fam, desiredCount=1,
                       networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}},
                       deploymentConfiguration={"minimumHealthyPercent": 0,
                                                "maximumPercent": 100})
    try:
        svc, [dep] = _deployments(ecs, name)
        # The service shows what was given (none: LATEST), its deployment what it runs.
        assert svc["platformVersion"] == "LATEST" and dep["platformVersion"] == GVISOR
        [task] = _service_tasks(ecs, name, 1)
        assert task["platformVersion"] == GVISOR and task["startedBy"] == dep["id"]
        ecs.update_service(service=name, platformVersion=RUNC)
        svc, deps = _deployments(ecs, name)
        assert svc["platformVersion"] == RUNC
        assert [(d["status"], d["platformVersion"]) for d in deps] == [
            ("PRIMARY", RUNC), ("ACTIVE", GVISOR)]
        primary = deps[0]["id"]
        deadline = time.time() + 30
        while True:
            [task] = _service_tasks(ecs, name, 1)
            if task["startedBy"] == primary:
                break
            assert time.time() < deadline
            time.sleep(0.2)
        assert task["platformVersion"] == RUNC
        assert uname_of(srv, task["taskArn"]) == os.uname().release
        # The same version again is no new deployment.
        ecs.update_service(service=name, platformVersion=RUNC)
        assert len(_deployments(ecs, name)[1]) <= 2
        assert _deployments(ecs, name)[1][0]["id"] == primary
    finally:
        ecs.delete_service(service=name, force=True)
    deadline = time.time() + 30
    while ecs.list_tasks(family=fam)["taskArns"]:
        assert time.time() < deadline
        time.sleep(0.2)
