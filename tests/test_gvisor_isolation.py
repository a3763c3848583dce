"""A gVisor task's kernel is its own, not the host's: the same probe runs in a task of each
tier through ECS RunTask (platformVersion "1.4.0" is runc, "1.4.0-gvisor" gVisor), and each
check that passes under gVisor is shown to fail under runc, so none of them could pass
whatever the sandbox. What both tiers must give alike (the task's netns, the metadata
endpoint, health checks run inside the container, the memory limit) is checked in both.

The host's side is read by the test itself: its kernel release and version, its ring buffer,
its boot id and uptime, and the host processes (a gVisor task's processes are the sentry's,
never the host kernel's)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import wait_status
from tests.test_tasks import logs, run

RUNC, GVISOR = "1.4.0", "1.4.0-gvisor"
MARK = "4242.5"  # the probe's last process: `sleep 4242.5`, looked for among the host's

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/runsc") and not os.path.exists(
    "/usr/sbin/runsc"), reason="needs runsc (scripts/setup.sh installs it)")

# key=value lines the test parses; each value is what the task's kernel answered.
PROBE = (
    "echo uname=$(uname -r); "  # uname(2)
    "echo version=$(cat /proc/version); "
    "echo dmesg=$(dmesg 2>&1 | head -1); "  # syslog(2): the kernel's own ring buffer
    "echo modules=$(cat /proc/modules 2>&1 | head -1); "
    "echo libmodules=$(ls /lib/modules/{release} 2>&1); "
    "echo bootid=$(cat /proc/sys/kernel/random/boot_id 2>&1); "
    "echo uptime=$(cut -d' ' -f1 /proc/uptime); "  # seconds since this kernel booted
    "echo links=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' '); "
    # nc, not busybox wget: wget reads its socket without waiting for it to turn readable,
    # which gVisor's host network stack answers with EAGAIN; nc polls first, as curl does.
    "echo meta=$( (printf 'GET %s/task HTTP/1.0\\r\\n\\r\\n' "
    "\"${{ECS_CONTAINER_METADATA_URI_V4#http://169.254.170.2}}\"; sleep 2) "
    "| nc 169.254.170.2 80 | tr -d '\\r' | sed '1,/^$/d' | head -c 4000); "
    f"echo READY; exec sleep {MARK}")

# Run inside the container by the health checker: healthy only on gVisor's kernel.
ON_GVISOR = ["CMD-SHELL", 'test "$(uname -r)" = 4.4.0']


def register(ecs, image: str, command: list[str], **kw) -> str:
    fam = "gv" + uuid.uuid4().hex[:10]
    ecs.register_task_definition(
        family=fam, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256",
        memory="512", containerDefinitions=[{"name": "app", "image": image, "command": command,
                                             "stopTimeout": 2, **kw}])
    return fam


def host_sleeps(task_id: str) -> list[int]:
    """Host pids in the task's cgroups whose argv is the probe's `sleep 4242.5`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            cgroup = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            continue
        if argv[:2] == [b"sleep", MARK.encode()] and task_id in cgroup:
            found.append(int(pid))
    return found


def host_ring() -> list[str]:
    """The host kernel's ring buffer, its messages without their timestamps."""
    out = subprocess.run(["dmesg"], capture_output=True, text=True).stdout.splitlines()
    return [re.sub(r"^\[[ 0-9.]+\]\s*", "", line) for line in out if line.strip()]


@pytest.fixture(scope="module")
def probed(ecs, fargo, busybox_image, subnet_id) -> dict[str, dict]:
    """The probe, in one running task of each tier at once: tier → what it saw and where."""
    release = os.uname().release
    fam = register(ecs, busybox_image, ["sh", "-c", PROBE.format(release=release)],
                   healthCheck={"command": ON_GVISOR, "interval": 5, "retries": 1})
    started = time.time()
    arns = {tier: run(ecs, fam, subnet_id, platformVersion=tier)["taskArn"]
            for tier in (RUNC, GVISOR)}
    seen: dict[str, dict] = {}
    try:
        for tier, arn in arns.items():
            task = wait_status(ecs, arn, "RUNNING", timeout=60)
            deadline = time.time() + 30
            while "READY" not in (out := logs(fargo, arn)):
                assert time.time() < deadline, out
                time.sleep(0.2)
            values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
            seen[tier] = {"out": values, "task": task, "sleeps": host_sleeps(arn.rsplit("/", 1)[-1]),
                          "started": started}
        deadline = time.time() + 30
        for tier, arn in arns.items():
            want = "HEALTHY" if tier == GVISOR else "UNHEALTHY"
            while (health := ecs.describe_tasks(tasks=[arn])["tasks"][0]["healthStatus"]) \
                    != want and time.time() < deadline:
                time.sleep(0.2)
            seen[tier]["health"] = health
        yield seen
    finally:
        for arn in arns.values():
            ecs.stop_task(task=arn)
        for arn in arns.values():
            wait_status(ecs, arn, "STOPPED", timeout=60)


def kernel_checks(seen: dict) -> dict[str, bool]:
    """Each is True when the task's kernel is not the host's, on that point."""
    out = seen["out"]
    host_version = Path("/proc/version").read_text().strip()
    host_boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    host_uptime = float(Path("/proc/uptime").read_text().split()[0])
    ring = set(host_ring())
    checks = {
        "uname": out["uname"] == "4.4.0" != os.uname().release,
        "version": out["version"].startswith("Linux version 4.4.0 ")
        and out["version"] != host_version,
        "dmesg": out["dmesg"].endswith("Starting gVisor...")
        and re.sub(r"^\[[ 0-9.]+\]\s*", "", out["dmesg"]) not in ring,
        "boot_id": host_boot_id not in out["bootid"],
        # A kernel booted for this task: up for less than the test has run.
        "uptime": float(out["uptime"]) < time.time() - seen["started"] + 1 < host_uptime,
        # The task's processes are not the host kernel's: none is found among the host's.
        "processes": not seen["sleeps"],
        "health": seen["health"] == "HEALTHY",
    }
    if Path("/proc/modules").exists():  # a host without module support has none to show
        checks["modules"] = "No such file" in out["modules"]
    return checks


def test_gvisor_kernel_is_not_the_hosts(probed):
    checks = kernel_checks(probed[GVISOR])
    assert all(checks.values()), (checks, probed[GVISOR]["out"])
    out = probed[GVISOR]["out"]
    assert "No such file" in out["modules"] and "No such file" in out["libmodules"]
    assert probed[GVISOR]["task"]["platformVersion"] == GVISOR


def test_runc_control_fails_every_kernel_check(probed):
    """The control: the same probe in a runc task talks to the host kernel, and every check
    above says so (none of them passes whatever the sandbox)."""
    checks = kernel_checks(probed[RUNC])
    assert not any(checks.values()), (checks, probed[RUNC]["out"])
    assert probed[RUNC]["task"]["platformVersion"] == RUNC
    assert len(probed[RUNC]["sleeps"]) == 1  # its sleep is a host process


@pytest.mark.parametrize("tier", [RUNC, GVISOR])
def test_both_tiers_keep_the_tasks_netns(probed, tier):
    out = probed[tier]["out"]
    assert sorted(out["links"].split()) == ["eth0", "lo"], out  # only the task's own
    assert out["libmodules"].endswith("No such file or directory")


@pytest.mark.parametrize("tier", [RUNC, GVISOR])
def test_both_tiers_reach_the_metadata_endpoint(probed, tier):
    out = probed[tier]["out"]
    assert out["meta"].startswith("{"), out["meta"]
    assert json.loads(out["meta"])["TaskARN"] == probed[tier]["task"]["taskArn"]


def test_gvisor_task_over_its_memory_stops_out_of_memory(ecs, busybox_image, subnet_id):
    """The sandbox runs in the task's cgroup: 900 MiB touched in a 512 MiB task is an OOM."""
    fam = register(ecs, busybox_image, ["dd", "if=/dev/zero", "of=/dev/null", "bs=900M",
                                        "count=1"])
    t = wait_status(ecs, run(ecs, fam, subnet_id, platformVersion=GVISOR)["taskArn"], "STOPPED",
                    timeout=60)
    c = t["containers"][0]
    assert c.get("reason") == "OutOfMemoryError: Container killed due to memory usage", t
    assert c.get("exitCode") == 137, t
