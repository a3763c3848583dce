"""Fargate tasks end to end: boto3 against a real `fargo server` running real runc sandboxes
from an image in a real registry."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import botocore.exceptions
import pytest
import requests

from tests.conftest import ROOT, http_body, wait_status
from tests.holderpaths import pinned_names, task_storage


def register(ecs, image: str, *, cpu: str = "256", memory: str = "512", family: str | None = None,
             **container) -> str:
    family = family or "t" + uuid.uuid4().hex[:10]
    c = {"name": "app", "image": image}
    c.update(container)
    ecs.register_task_definition(family=family, networkMode="awsvpc",
                                 requiresCompatibilities=["FARGATE"], cpu=cpu, memory=memory,
                                 containerDefinitions=[c])
    return family


def run(ecs, family: str, subnet: str, **kw) -> dict:
    out = ecs.run_task(taskDefinition=family, launchType="FARGATE",
                       networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}}, **kw)
    assert out["failures"] == [], out["failures"]
    return out["tasks"][0]


def detail(task: dict, name: str) -> str:
    return next(d["value"] for d in task["attachments"][0]["details"] if d["name"] == name)


def logs(fargo, task_arn: str, *extra: str) -> str:
    out = subprocess.run([sys.executable, "-m", "fargo", "logs", task_arn.rsplit("/", 1)[-1],
                          "--endpoint", fargo.endpoint, *extra], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env=fargo.env())
    assert out.returncode == 0, out.stderr
    return out.stdout


WEB = ["sh", "-c", "echo starting web; trap 'echo stopping; exit 0' TERM; "
       "httpd -f -v -p 8080 -h /www & wait"]


def test_web_task_serves_logs_and_stops(ecs, fargo, busybox_image, subnet_id):
    fam = register(ecs, busybox_image, command=WEB, portMappings=[{"containerPort": 8080}])
    t = run(ecs, fam, subnet_id, startedBy="tester", tags=[{"key": "k", "value": "v"}])
    assert t["lastStatus"] == "PROVISIONING" and t["desiredStatus"] == "RUNNING"
    assert t["group"] == f"family:{fam}"
    t = wait_status(ecs, t["taskArn"], "RUNNING")
    ip = detail(t, "privateIPv4Address")
    assert t["attachments"][0]["status"] == "ATTACHED"
    assert detail(t, "subnetId") == subnet_id
    assert detail(t, "macAddress").count(":") == 5
    assert detail(t, "networkInterfaceId").startswith("eni-")
    assert t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"] == ip
    assert t["containers"][0]["imageDigest"].startswith("sha256:")
    for stamp in ("createdAt", "pullStartedAt", "pullStoppedAt", "startedAt"):
        assert stamp in t, stamp
    assert t["pullStartedAt"] <= t["pullStoppedAt"] <= t["startedAt"]
    # The host reaches the task at its private IP.
    assert http_body(f"http://{ip}:8080/") == "hello from fargo\n"
    tagged = ecs.describe_tasks(tasks=[t["taskArn"]], include=["TAGS"])["tasks"][0]
    assert tagged["tags"] == [{"key": "k", "value": "v"}]
    assert ecs.list_tags_for_resource(resourceArn=t["taskArn"])["tags"] == tagged["tags"]
    assert t["taskArn"] in ecs.list_tasks(startedBy="tester")["taskArns"]
    assert t["taskArn"] in ecs.list_tasks(family=fam)["taskArns"]
    v_running = t["version"]
    ecs.stop_task(task=t["taskArn"], reason="done here")
    t = wait_status(ecs, t["taskArn"], "STOPPED")
    assert t["stopCode"] == "UserInitiated" and t["stoppedReason"] == "done here"
    assert t["desiredStatus"] == "STOPPED" and t["version"] > v_running
    assert t["attachments"][0]["status"] == "DELETED"
    for stamp in ("stoppingAt", "executionStoppedAt", "stoppedAt"):
        assert stamp in t, stamp
    # httpd dies on SIGTERM; busybox httpd as PID 1 gets the signal's default exit code.
    assert t["containers"][0]["lastStatus"] == "STOPPED"
    assert "exitCode" in t["containers"][0]
    out = logs(fargo, t["taskArn"])
    assert "starting web" in out and "stopping" in out
    assert t["containers"][0]["exitCode"] == 0
    assert t["taskArn"] in ecs.list_tasks(family=fam, desiredStatus="STOPPED")["taskArns"]
    assert t["taskArn"] not in ecs.list_tasks(family=fam)["taskArns"]
    # The IP went back to the pool: no netns remains for the task.
    tid = t["taskArn"].rsplit("/", 1)[-1]
    assert f"{fargo.prefix}-{tid}" not in pinned_names()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{ip}:8080/", timeout=1)


def test_essential_exit_codes_and_sizes(ecs, busybox_image, subnet_id):
    fam = register(ecs, busybox_image, cpu="512", memory="1GB",
                   command=["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; exit 3"])
    t = run(ecs, fam, subnet_id)
    t = wait_status(ecs, t["taskArn"], "STOPPED")
    assert t["stopCode"] == "EssentialContainerExited"
    assert t["stoppedReason"] == "Essential container in task exited"
    assert t["containers"][0]["exitCode"] == 3
    assert (t["cpu"], t["memory"]) == ("512", "1024")


def test_sandbox_is_sized_and_env_set(ecs, fargo, busybox_image, subnet_id):
    import json

    # The trap first: the test stops the task as soon as it runs, and a PID 1 shell ignores
    # a SIGTERM that comes before it (the stop would then wait out stopTimeout's 30 s).
    script = ("trap 'exit 0' TERM; "
              "echo region=$AWS_REGION env=$AWS_EXECUTION_ENV greeting=$GREETING; "
              "echo ip=$(ip -4 -o addr show eth0 | awk '{print $4}'); echo nofile=$(ulimit -n); "
              "sleep 60 & wait")
    fam = register(ecs, busybox_image, cpu="1024", memory="2048",
                   command=["sh", "-c", script], environment=[{"name": "GREETING", "value": "a"}])
    t = run(ecs, fam, subnet_id, overrides={"containerOverrides": [
        {"name": "app", "environment": [{"name": "GREETING", "value": "hi"}]}]})
    tid = t["taskArn"].rsplit("/", 1)[-1]
    t = wait_status(ecs, t["taskArn"], "RUNNING")
    # The task's cgroup holds exactly the task's size: 1 vCPU of quota, 2048 MiB of memory.
    cgroups = json.loads((fargo.run_dir / tid / "task.json").read_text())["cgroups"]
    cpu_dir = next(Path(p) for k, p in cgroups.items() if "cpu" in k.split(","))
    mem_dir = next(Path(p) for k, p in cgroups.items() if "memory" in k.split(","))
    quota = int((cpu_dir / "cpu.cfs_quota_us").read_text())
    period = int((cpu_dir / "cpu.cfs_period_us").read_text())
    assert quota / period == 1.0
    assert int((mem_dir / "memory.limit_in_bytes").read_text()) == 2048 * 1024 * 1024
    # The container's own cgroup sits inside the task's.
    assert (mem_dir / "app").is_dir()
    ecs.stop_task(task=t["taskArn"])
    t = wait_status(ecs, t["taskArn"], "STOPPED")
    out = logs(fargo, t["taskArn"])
    assert "region=us-east-1 env=AWS_ECS_FARGATE greeting=hi" in out
    ip = detail(t, "privateIPv4Address")
    assert f"ip={ip}/" in out
    assert not cpu_dir.exists() and not mem_dir.exists()


def test_missing_image_fails_to_start(ecs, registry, subnet_id):
    fam = register(ecs, f"{registry.address}/does-not-exist:1")
    t = run(ecs, fam, subnet_id)
    t = wait_status(ecs, t["taskArn"], "STOPPED")
    assert t["stopCode"] == "TaskFailedToStart"
    assert t["stoppedReason"].startswith("CannotPullContainerError:")
    assert t["containers"][0]["reason"].startswith("CannotPullContainerError:")


def test_oom_kill(ecs, busybox_image, subnet_id):
    fam = register(ecs, busybox_image, command=["sh", "-c", "dd if=/dev/zero of=/dev/null bs=900M count=1"])
    t = run(ecs, fam, subnet_id)
    t = wait_status(ecs, t["taskArn"], "STOPPED")
    c = t["containers"][0]
    assert c["exitCode"] == 137
    assert c["reason"] == "OutOfMemoryError: Container killed due to memory usage"


def test_stop_timeout_then_sigkill(ecs, busybox_image, subnet_id):
    # PID 1 with no handler ignores SIGTERM, so only SIGKILL after stopTimeout ends it.
    fam = register(ecs, busybox_image, command=["sleep", "1000"], stopTimeout=1)
    t = run(ecs, fam, subnet_id)
    wait_status(ecs, t["taskArn"], "RUNNING")
    start = time.time()
    ecs.stop_task(task=t["taskArn"])
    t = wait_status(ecs, t["taskArn"], "STOPPED")
    took = time.time() - start
    assert 0.9 <= took < 10, took
    assert t["containers"][0]["exitCode"] == 137


def test_graceful_sigterm(ecs, fargo, busybox_image, subnet_id):
    script = "trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done"
    fam = register(ecs, busybox_image, command=["sh", "-c", script])
    t = run(ecs, fam, subnet_id)
    wait_status(ecs, t["taskArn"], "RUNNING")
    ecs.stop_task(task=t["taskArn"])
    t = wait_status(ecs, t["taskArn"], "STOPPED")
    assert t["containers"][0]["exitCode"] == 0
    assert "got TERM" in logs(fargo, t["taskArn"])


def test_two_containers_share_localhost_and_depends_on(ecs, fargo, busybox_image, subnet_id):
    fam = "d" + uuid.uuid4().hex[:10]
    ecs.register_task_definition(
        family=fam, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256",
        memory="512", containerDefinitions=[
            {"name": "init", "image": busybox_image, "essential": False,
             "command": ["sh", "-c", "echo init ran"]},
            {"name": "server", "image": busybox_image, "essential": False,
             "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}],
             "command": ["sh", "-c", "echo pong | nc -l -p 7000"]},
            {"name": "client", "image": busybox_image,
             "dependsOn": [{"containerName": "server", "condition": "START"}],
             "command": ["sh", "-c", "sleep 0.3; echo ping | nc 127.0.0.1 7000"]},
        ])
    t = run(ecs, fam, subnet_id)
    t = wait_status(ecs, t["taskArn"], "STOPPED")
    by = {c["name"]: c for c in t["containers"]}
    assert by["init"]["exitCode"] == 0
    assert by["client"]["exitCode"] == 0, logs(fargo, t["taskArn"])
    assert t["stopCode"] == "EssentialContainerExited"
    assert "pong" in logs(fargo, t["taskArn"], "--container", "client")
    assert "init ran" in logs(fargo, t["taskArn"], "--container", "init")


def test_tasks_reach_each_other(ecs, busybox_image, subnet_id):
    server = register(ecs, busybox_image, command=WEB)
    a = wait_status(ecs, run(ecs, server, subnet_id)["taskArn"], "RUNNING")
    ip = detail(a, "privateIPv4Address")
    client = register(ecs, busybox_image, command=["sh", "-c", f"wget -q -O - http://{ip}:8080/"])
    b = wait_status(ecs, run(ecs, client, subnet_id)["taskArn"], "STOPPED")
    assert b["containers"][0]["exitCode"] == 0
    assert detail(b, "privateIPv4Address") != ip
    ecs.stop_task(task=a["taskArn"])
    wait_status(ecs, a["taskArn"], "STOPPED")


def test_run_task_arguments_and_idempotency(ecs, busybox_image, subnet_id):
    fam = register(ecs, busybox_image, command=["sleep", "30"], stopTimeout=0)
    net = {"awsvpcConfiguration": {"subnets": [subnet_id]}}
    first = ecs.run_task(taskDefinition=fam, count=2, clientToken="tok-" + fam,
                         networkConfiguration=net,
                         capacityProviderStrategy=[{"capacityProvider": "FARGATE"}])
    assert len(first["tasks"]) == 2
    assert first["tasks"][0]["capacityProviderName"] == "FARGATE"
    again = ecs.run_task(taskDefinition=fam, count=2, clientToken="tok-" + fam,
                         networkConfiguration=net,
                         capacityProviderStrategy=[{"capacityProvider": "FARGATE"}])
    assert {t["taskArn"] for t in again["tasks"]} == {t["taskArn"] for t in first["tasks"]}
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.run_task(taskDefinition=fam, count=1, clientToken="tok-" + fam,
                     networkConfiguration=net)
    assert exc.value.response["Error"]["Code"] == "ConflictException"
    cases = [
        (dict(count=11), "InvalidParameterException"),
        (dict(launchType="FARGATE", capacityProviderStrategy=[{"capacityProvider": "FARGATE"}]),
         "InvalidParameterException"),
        (dict(networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-nope"]}}),
         "InvalidParameterException"),
        (dict(networkConfiguration=None), "InvalidParameterException"),
        (dict(overrides={"cpu": "256", "memory": "8192"}), "ClientException"),
        (dict(overrides={"containerOverrides": [{"name": "ghost"}]}), "InvalidParameterException"),
        (dict(overrides={"containerOverrides": [{"name": "app", "environment": [{"value": "x"}]}]}),
         "ClientException"),
        (dict(tags=[{"key": f"k{i}", "value": "v"} for i in range(51)]),
         "InvalidParameterException"),
    ]
    for extra, code in cases:
        kw = {"taskDefinition": fam, "networkConfiguration": net}
        kw.update(extra)
        kw = {k: v for k, v in kw.items() if v is not None}
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ecs.run_task(**kw)
        assert exc.value.response["Error"]["Code"] == code, extra
    # None of the refused calls started anything or held on to an address.
    assert len(ecs.list_tasks(family=fam)["taskArns"]) == 2
    ids = [t["taskArn"] for t in first["tasks"]]
    described = ecs.describe_tasks(tasks=ids, include=["TAGS"])["tasks"]
    assert len(described) == 2
    for arn in ids:
        ecs.stop_task(task=arn)
    for arn in ids:
        wait_status(ecs, arn, "STOPPED")


def test_capacity_failures(fargo_servers, busybox_image):
    srv = fargo_servers("--cpu", "512", "--memory", "1024", name="small")
    ecs = srv.client()
    subnet = srv.client("ec2").describe_subnets()["Subnets"][0]["SubnetId"]
    fam = register(ecs, busybox_image, cpu="512", memory="1024", command=["sleep", "60"],
                   stopTimeout=0)
    out = ecs.run_task(taskDefinition=fam, count=2, launchType="FARGATE",
                       networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}})
    assert len(out["tasks"]) == 1 and len(out["failures"]) == 1
    assert "Capacity is unavailable" in out["failures"][0]["reason"]
    ecs.stop_task(task=out["tasks"][0]["taskArn"])
    wait_status(ecs, out["tasks"][0]["taskArn"], "STOPPED")
    assert "512 CPU units" in srv.log.read_text()


def test_starts_take_turns(fargo_servers, busybox_image):
    """--start-concurrency 1: a burst starts one task after the other, each to its end; the
    rest wait in PROVISIONING, and one stopped while it waits never starts at all. The
    runtime dirs of the server are tmpfs mounts of its own, gone after the purge."""
    srv = fargo_servers("--start-concurrency", "1", name="turns")
    runtime = [Path(f"/run/{srv.prefix}-{d}") for d in ("runc", "tasks", "rootfs")]
    assert all(os.path.ismount(p) for p in runtime)
    ecs = srv.client()
    subnet = srv.client("ec2").describe_subnets()["Subnets"][0]["SubnetId"]
    fam = register(ecs, busybox_image, command=["sleep", "600"], stopTimeout=2)
    out = ecs.run_task(taskDefinition=fam, launchType="FARGATE", count=5, networkConfiguration={
        "awsvpcConfiguration": {"subnets": [subnet]}})
    arns = [t["taskArn"] for t in out["tasks"]]
    ecs.stop_task(task=arns[-1], reason="changed my mind")
    tasks = [wait_status(ecs, a, "RUNNING") for a in arns[:-1]]
    last = wait_status(ecs, arns[-1], "STOPPED")
    assert "pullStartedAt" not in last and "startedAt" not in last  # never began
    assert last["stopCode"] == "UserInitiated"
    assert f"{srv.prefix}-{arns[-1].rsplit('/', 1)[-1]}" not in pinned_names()
    tasks.sort(key=lambda t: t["pullStartedAt"])
    # StopTask woke it in the queue: it did not wait for a turn to find out.
    assert last["stoppedAt"] < tasks[-1]["startedAt"]
    for before, after in zip(tasks, tasks[1:], strict=False):
        # The next start began only once the one before had its container created.
        assert after["pullStartedAt"] >= before["startedAt"] - timedelta(milliseconds=10)
    for arn in arns[:-1]:
        ecs.stop_task(task=arn)
    for arn in arns[:-1]:
        wait_status(ecs, arn, "STOPPED")
    srv.purge()
    assert not any(os.path.ismount(p) or p.exists() for p in runtime)


def test_slow_pull_gives_up_its_turn(fargo_servers, busybox_image):
    """A start stuck on a registry that does not answer lets the next task start, and stops
    at once when asked. The two stuck tasks send one request between them (their call shares
    its pulls, and overlapping pulls of one reference share one resolution)."""
    silent = socket.socket()  # accepts connections (the kernel does), never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    srv = fargo_servers("--start-concurrency", "1", name="slow")  # purged after the finally
    accepted: list[socket.socket] = []
    try:
        ecs = srv.client()
        subnet = srv.client("ec2").describe_subnets()["Subnets"][0]["SubnetId"]
        stuck = register(ecs, f"127.0.0.1:{silent.getsockname()[1]}/slow:latest",
                         command=["true"])
        good = register(ecs, busybox_image, command=["sleep", "600"], stopTimeout=2)
        out = ecs.run_task(taskDefinition=stuck, launchType="FARGATE", count=2,
                           networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}})
        slow = [t["taskArn"] for t in out["tasks"]]
        t0 = time.time()
        ok = wait_status(ecs, run(ecs, good, subnet)["taskArn"], "RUNNING", timeout=20)
        print(f"\nstarted beside a stuck pull in {time.time() - t0:.1f}s")
        time.sleep(2.5)  # the second stuck task has had its turn by now
        for task in ecs.describe_tasks(tasks=slow)["tasks"]:
            assert task["lastStatus"] in ("PROVISIONING", "PENDING", "ACTIVATING"), task
        silent.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                accepted.append(silent.accept()[0])
        assert len(accepted) == 1, len(accepted)
        # Stopped while the pull still hangs: they stop now, not at the pull's timeout.
        t1 = time.time()
        for arn in (*slow, ok["taskArn"]):
            ecs.stop_task(task=arn)
        for arn in slow:
            stopped = wait_status(ecs, arn, "STOPPED", timeout=20)
            assert stopped["stopCode"] == "UserInitiated", stopped
        assert time.time() - t1 < 10
        wait_status(ecs, ok["taskArn"], "STOPPED", timeout=20)
    finally:
        for conn in accepted:  # the hung pull fails now: nothing waits for its timeout
            conn.close()
        silent.close()


def test_tasks_outlive_the_server(fargo_servers, busybox_image):
    srv = fargo_servers(name="restart")
    ecs = srv.client()
    subnet = srv.client("ec2").describe_subnets()["Subnets"][0]["SubnetId"]
    web = register(ecs, busybox_image, command=WEB)
    quick = register(ecs, busybox_image, command=["sh", "-c", "sleep 1; exit 7"])
    stubborn = register(ecs, busybox_image, command=["sleep", "1000"], stopTimeout=2)
    a = wait_status(ecs, run(ecs, web, subnet)["taskArn"], "RUNNING")
    b = wait_status(ecs, run(ecs, quick, subnet)["taskArn"], "RUNNING")
    c = wait_status(ecs, run(ecs, stubborn, subnet)["taskArn"], "RUNNING")
    ecs.stop_task(task=c["taskArn"])  # c ignores SIGTERM: its stop takes stopTimeout
    wait_status(ecs, c["taskArn"], "STOPPING")
    srv.kill()  # SIGKILL: no chance to tidy up
    ip = detail(a, "privateIPv4Address")
    assert requests.get(f"http://{ip}:8080/", timeout=2).ok  # still serving, no server
    time.sleep(1.5)  # b's container exits while nobody watches
    srv.start()
    b = wait_status(ecs, b["taskArn"], "STOPPED")
    assert b["containers"][0]["exitCode"] == 7
    # The stop that was under way when the server died is finished properly.
    c = wait_status(ecs, c["taskArn"], "STOPPED")
    assert c["containers"][0]["exitCode"] == 137 and c["stopCode"] == "UserInitiated"
    assert b["stopCode"] == "EssentialContainerExited"
    a = ecs.describe_tasks(tasks=[a["taskArn"]])["tasks"][0]
    assert a["lastStatus"] == "RUNNING"
    ecs.stop_task(task=a["taskArn"])
    wait_status(ecs, a["taskArn"], "STOPPED")
    # The state survived in SQLite: the definitions are still there.
    assert ecs.describe_task_definition(taskDefinition=web)["taskDefinition"]["revision"] == 1


def test_cluster_with_tasks_cannot_be_deleted(ecs, busybox_image, subnet_id):
    name = "busy" + uuid.uuid4().hex[:6]
    ecs.create_cluster(clusterName=name)
    fam = register(ecs, busybox_image, command=["sleep", "60"], stopTimeout=0)
    t = ecs.run_task(cluster=name, taskDefinition=fam, networkConfiguration={
        "awsvpcConfiguration": {"subnets": [subnet_id]}})["tasks"][0]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.delete_cluster(cluster=name)
    assert exc.value.response["Error"]["Code"] == "ClusterContainsTasksException"
    ecs.stop_task(cluster=name, task=t["taskArn"])
    wait_status(ecs, t["taskArn"], "STOPPED", cluster=name)
    assert ecs.delete_cluster(cluster=name)["cluster"]["status"] == "INACTIVE"


def test_lost_monitor_stops_the_task(ecs, fargo, busybox_image, subnet_id):
    """If a container's conmon dies (killed, or the host rebooted), nobody would ever report
    its end: the task is stopped rather than left RUNNING forever."""
    import os
    import signal

    fam = register(ecs, busybox_image, command=["sleep", "1000"], stopTimeout=1)
    t = wait_status(ecs, run(ecs, fam, subnet_id)["taskArn"], "RUNNING")
    tid = t["taskArn"].rsplit("/", 1)[-1]
    pid = int((fargo.run_dir / tid / "app" / "conmon.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    t = wait_status(ecs, t["taskArn"], "STOPPED")
    assert t["stopCode"] == "EssentialContainerExited"
    assert t["containers"][0]["reason"].startswith("CannotInspectContainerError")
    assert not task_storage(fargo.state_dir, tid).exists()
    assert not (fargo.state_dir / "rootfs" / tid).exists()


def test_aws_cli_flow(fargo, busybox_image, subnet_id, tmp_path):
    import json

    env = fargo.env()

    def aws(*args: str) -> dict:
        out = subprocess.run(["aws", "--endpoint-url", fargo.endpoint, *args, "--output", "json"],
                             capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    fam = "cli" + uuid.uuid4().hex[:8]
    spec = {"family": fam, "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
            "cpu": "256", "memory": "512",
            "containerDefinitions": [{"name": "web", "image": busybox_image, "command": WEB}]}
    path = Path(tmp_path / "td.json")
    path.write_text(json.dumps(spec))
    aws("ecs", "register-task-definition", "--cli-input-json", f"file://{path}")
    arn = aws("ecs", "run-task", "--launch-type", "FARGATE", "--task-definition", fam,
              "--network-configuration",
              f"awsvpcConfiguration={{subnets=[{subnet_id}]}}")["tasks"][0]["taskArn"]
    def until(status: str) -> dict:
        deadline = time.time() + 30
        while time.time() < deadline:
            t = aws("ecs", "describe-tasks", "--tasks", arn)["tasks"][0]
            if t["lastStatus"] == status:
                return t
            time.sleep(0.2)
        raise AssertionError(f"never {status}: {t}")

    until("RUNNING")
    aws("ecs", "stop-task", "--task", arn)
    assert until("STOPPED")["stopCode"] == "UserInitiated"
