"""A SIGKILL of the server while tasks run and start: after the restart every task is where
its desired status says (starts cut short are made again), and nothing is left behind."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.conftest import http_body
from tests.holderpaths import pinned_names, storage_left
from tests.test_tasks import WEB, detail, register, run


def _settled(ecs, arns: list[str], timeout: float = 60) -> list[dict]:
    """DescribeTasks until every task is RUNNING or STOPPED."""
    deadline = time.time() + timeout
    tasks: list[dict] = []
    while time.time() < deadline:
        tasks = ecs.describe_tasks(tasks=arns)["tasks"]
        if all(t["lastStatus"] in ("RUNNING", "STOPPED") for t in tasks):
            return tasks
        time.sleep(0.1)
    raise AssertionError(f"not settled: {[(t['taskArn'], t['lastStatus']) for t in tasks]}")


def _left_behind(prefix: str, state_dir: Path) -> list[str]:
    """What of this server's tasks is still on the host: netns pins, veths, rootfs and
    task filesystem mounts."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return ([f"netns {name}" for name in pinned_names() if name.startswith(prefix + "-")]
            + [f"link {line.split(':')[1].strip()}" for line in links.splitlines()
               if line.split(":")[1].strip().startswith(prefix + "v")]
            + [f"mount {p}" for p in points
               if p.startswith(f"/run/{prefix}-rootfs/") or p.startswith(f"{state_dir}/rootfs/")]
            + [f"storage {tid}" for tid in storage_left(state_dir)])


def test_a_crash_mid_start_is_resumed_and_leaks_nothing(fargo_servers, busybox_image):
    srv = fargo_servers("--start-concurrency", "1", name="crash")
    ecs = srv.client()
    subnet = srv.client("ec2").describe_subnets()["Subnets"][0]["SubnetId"]
    web = register(ecs, busybox_image, command=WEB)
    first = run(ecs, web, subnet)["taskArn"]
    _settled(ecs, [first])
    burst = ecs.run_task(taskDefinition=web, count=6, networkConfiguration={
        "awsvpcConfiguration": {"subnets": [subnet]}})["tasks"]
    srv.kill()  # at once: one task of the burst is starting, the rest wait for their turn
    srv.start()
    arns = [first] + [t["taskArn"] for t in burst]
    tasks = _settled(ecs, arns)
    running = [t for t in tasks if t["lastStatus"] == "RUNNING"]
    refused = [t for t in tasks if t["lastStatus"] == "STOPPED"]
    # A start whose containers had begun is not run twice; every other start is redone.
    assert len(refused) <= 1, refused
    for t in refused:
        assert t["stopCode"] == "TaskFailedToStart"
        assert "a start is not run twice" in t["stoppedReason"]
    ips = [detail(t, "privateIPv4Address") for t in running]
    assert len(set(ips)) == len(ips)  # no address handed out twice across the restart
    for ip in ips:
        assert http_body(f"http://{ip}:8080/") == "hello from fargo\n"
    for t in running:
        ecs.stop_task(task=t["taskArn"])
    deadline = time.time() + 60
    while time.time() < deadline:
        if all(t["lastStatus"] == "STOPPED" for t in ecs.describe_tasks(tasks=arns)["tasks"]):
            break
        time.sleep(0.1)
    assert all(t["lastStatus"] == "STOPPED" for t in ecs.describe_tasks(tasks=arns)["tasks"])
    assert _left_behind(srv.prefix, srv.state_dir) == []
