"""Container health checks end to end: boto3 against a real server whose checks run inside
real runc containers (`runc exec`). Intervals are ECS's least (5 s), so the cases are few."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import botocore.exceptions
import pytest

SLEEP = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


def _register(ecs, containers: list[dict]) -> str:
    family = "h" + uuid.uuid4().hex[:10]
    ecs.register_task_definition(family=family, networkMode="awsvpc",
                                 requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
                                 containerDefinitions=containers)
    return family


def _run(ecs, family: str, subnet: str) -> str:
    out = ecs.run_task(taskDefinition=family, launchType="FARGATE",
                       networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}})
    assert out["failures"] == [], out["failures"]
    return out["tasks"][0]["taskArn"]


def _containers(task: dict) -> dict[str, dict]:
    return {c["name"]: c for c in task["containers"]}


def _sleeps_in(task_id: str) -> list[int]:
    """Host pids of `sleep 30` processes in the task's cgroups."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            cgroup = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            continue
        if argv[:2] == [b"sleep", b"30"] and task_id in cgroup:
            found.append(int(pid))
    return found


def test_checks_pass_fail_time_out_and_order_a_start(ecs, busybox_image, subnet_id):
    # db's check passes only as its own process runs: its user, environment and cwd.
    ordered = _register(ecs, [
        {"name": "db", "image": busybox_image, "command": SLEEP, "user": "1000",
         "workingDirectory": "/www", "environment": [{"name": "MINE", "value": "yes"}],
         "healthCheck": {"command": ["CMD-SHELL", 'test "$(id -u)" = 1000 && '
                                     'test "$PWD" = /www && test "$MINE" = yes'],
                         "interval": 5, "retries": 1}},
        {"name": "app", "image": busybox_image, "command": SLEEP,
         "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}]}])
    # CMD runs directly; each check outlives its timeout and is killed.
    failing = _register(ecs, [
        {"name": "app", "image": busybox_image, "command": SLEEP,
         "healthCheck": {"command": ["CMD", "sleep", "30"], "interval": 5, "timeout": 2,
                         "retries": 2}}])
    arn_ok, arn_bad = _run(ecs, ordered, subnet_id), _run(ecs, failing, subnet_id)
    waited_on = False
    deadline = time.time() + 40
    ok = bad = None
    while time.time() < deadline:
        ok, bad = ecs.describe_tasks(tasks=[arn_ok, arn_bad])["tasks"]
        if ok["taskArn"] != arn_ok:
            ok, bad = bad, ok
        c = _containers(ok)
        if c["app"]["lastStatus"] == "PENDING" and c["db"]["lastStatus"] == "RUNNING":
            waited_on = True
            # UNKNOWN until its first check; HEALTHY in the moment before app starts
            assert c["db"]["healthStatus"] in ("UNKNOWN", "HEALTHY")
        if c["app"]["lastStatus"] != "PENDING":
            assert c["db"]["healthStatus"] == "HEALTHY", c  # started only once db was
        if ok["lastStatus"] == "RUNNING" and bad["healthStatus"] == "UNHEALTHY":
            break
        assert "STOPPED" not in (ok["lastStatus"], bad["lastStatus"]), (ok, bad)
        time.sleep(0.2)
    assert ok is not None and bad is not None
    assert waited_on, "app was never seen waiting on db"
    assert ok["healthStatus"] == "HEALTHY"  # app has no check: db decides
    assert _containers(ok)["app"]["healthStatus"] == "UNKNOWN"
    assert bad["healthStatus"] == "UNHEALTHY", bad
    assert _containers(bad)["app"]["healthStatus"] == "UNHEALTHY"
    # A task run on its own stays running, unhealthy; its timed-out checks were killed.
    assert bad["lastStatus"] == "RUNNING" and bad["desiredStatus"] == "RUNNING"
    assert _sleeps_in(arn_bad.rsplit("/", 1)[-1]) == []
    for arn in (arn_ok, arn_bad):
        ecs.stop_task(task=arn)
    deadline = time.time() + 30
    while time.time() < deadline:
        tasks = ecs.describe_tasks(tasks=[arn_ok, arn_bad])["tasks"]
        if all(t["lastStatus"] == "STOPPED" for t in tasks):
            break
        time.sleep(0.2)
    by_arn = {t["taskArn"]: t for t in tasks}
    assert by_arn[arn_ok]["lastStatus"] == by_arn[arn_bad]["lastStatus"] == "STOPPED"
    assert by_arn[arn_ok]["healthStatus"] == "HEALTHY"  # a stopped task keeps its last
    assert by_arn[arn_bad]["healthStatus"] == "UNHEALTHY"


def test_checks_go_on_across_a_server_restart(fargo_servers, busybox_image):
    srv = fargo_servers(name="health")
    ecs = srv.client()
    subnet = srv.client("ec2").describe_subnets()["Subnets"][0]["SubnetId"]
    family = _register(ecs, [
        {"name": "app", "image": busybox_image, "command": SLEEP,
         "healthCheck": {"command": ["CMD-SHELL", "test ! -e /tmp/sick"], "interval": 5,
                         "retries": 1}}])
    arn = _run(ecs, family, subnet)

    def until_health(wanted: str, timeout: float) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            task = ecs.describe_tasks(tasks=[arn])["tasks"][0]
            assert task["lastStatus"] != "STOPPED", task
            if task["healthStatus"] == wanted:
                return task
            time.sleep(0.2)
        raise AssertionError(f"never {wanted}: {task}")

    until_health("HEALTHY", 20)
    srv.kill()
    srv.start()
    task = ecs.describe_tasks(tasks=[arn])["tasks"][0]
    assert task["lastStatus"] == "RUNNING" and task["healthStatus"] == "HEALTHY"  # as recorded
    # The container falls sick (its rootfs, as its own init sees it: the host keeps no mount
    # of it once runc has made the container): the restarted server's checks notice.
    pid = int((srv.run_dir / arn.rsplit("/", 1)[-1] / "app" / "pid").read_text())
    rootfs = Path(f"/proc/{pid}/root")
    assert (rootfs / "tmp").is_dir(), rootfs
    (rootfs / "tmp" / "sick").write_text("")
    task = until_health("UNHEALTHY", 15)
    assert _containers(task)["app"]["healthStatus"] == "UNHEALTHY"
    ecs.stop_task(task=arn)


def test_registration_fills_defaults_and_refuses_bad_checks_by_name(ecs):
    family = _register(ecs, [{"name": "app", "image": "busybox",
                              "healthCheck": {"command": ["CMD-SHELL", "true"]}}])
    stored = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    assert stored["containerDefinitions"][0]["healthCheck"] == {
        "command": ["CMD-SHELL", "true"], "interval": 30, "timeout": 5, "retries": 3}
    bad = [({"command": ["CMD", "true"], "interval": 4}, "healthCheck.interval"),
           ({"command": ["NONE"]}, "healthCheck.command")]
    for check, field in bad:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            _register(ecs, [{"name": "app", "image": "busybox", "healthCheck": check}])
        assert exc.value.response["Error"]["Code"] == "ClientException"
        assert field in exc.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        _register(ecs, [{"name": "db", "image": "busybox"},
                        {"name": "app", "image": "busybox",
                         "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}]}])
    assert exc.value.response["Error"]["Code"] == "ClientException"
    assert "has no healthCheck" in exc.value.response["Error"]["Message"]
