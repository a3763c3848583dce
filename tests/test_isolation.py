"""Attacks from inside a task, started through the real API: each must fail for the attacker
and leave the host as it was. Where it makes sense the same step with the permission present
shows that the refusal came from the sandbox, not from a broken test."""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from fargo.agent import userns
from fargo.agent.cgroups import pids_limit
from fargo.agent.ocispec import DEFAULT_CAPS
from tests.conftest import http_body, wait_status
from tests.holderpaths import task_storage
from tests.test_tasks import detail, logs, register, run

# Linux capability numbers of Docker's default set.
CAP_BITS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4,
            "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
            "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18,
            "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31}
CAP_SYS_PTRACE = 19

# The tests that apply to both sandbox tiers run on each (platform version; None: the
# server's default, runc). The gVisor tier's own proof is tests/test_gvisor_isolation.py.
both_tiers = pytest.mark.parametrize("platform", [None, "1.4.0-gvisor"], ids=["runc", "gvisor"])


def _tier(platform: str | None) -> dict:
    return {"platformVersion": platform} if platform else {}


def finished(ecs, fargo, image: str, subnet: str, script: str, platform: str | None = None,
             **kw) -> tuple[str, int | None]:
    """Run `sh -c script` as a one-container task to its end: (its output, its exit code)."""
    fam = register(ecs, image, command=["sh", "-c", script], **kw)
    t = wait_status(ecs, run(ecs, fam, subnet, **_tier(platform))["taskArn"], "STOPPED",
                    timeout=120)
    return logs(fargo, t["taskArn"]), t["containers"][0].get("exitCode")


def running(ecs, fargo, image: str, subnet: str, script: str, **kw) -> dict:
    """Start `sh -c "script; echo READY; sleep"` and wait until it printed READY."""
    fam = register(ecs, image, command=["sh", "-c", script + "; echo READY; exec sleep 600"],
                   **kw)
    t = wait_status(ecs, run(ecs, fam, subnet)["taskArn"], "RUNNING", timeout=60)
    deadline = time.time() + 60
    while "READY" not in logs(fargo, t["taskArn"]):
        assert time.time() < deadline, logs(fargo, t["taskArn"])
        time.sleep(0.2)
    return t


def stop(ecs, task: dict) -> None:
    ecs.stop_task(task=task["taskArn"])
    wait_status(ecs, task["taskArn"], "STOPPED", timeout=60)


def task_dir(fargo, task: dict) -> Path:
    return fargo.run_dir / task["taskArn"].rsplit("/", 1)[-1]


def host_pid(fargo, task: dict) -> int:
    return int((task_dir(fargo, task) / "app" / "pid").read_text())


def status_field(pid: int, name: str) -> list[str]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split()[1:]
    raise AssertionError(f"no {name} in /proc/{pid}/status")


# ---------------------------------------------------------------- the host's files and processes


@both_tiers
def test_host_files_and_processes_invisible(ecs, fargo, busybox_image, subnet_id, platform):
    marker = Path(f"/tmp/fargo-host-secret-{uuid.uuid4().hex}")
    marker.write_text("host only\n")
    sleeper = subprocess.Popen(["sleep", "1234.5"])  # a host process the task must not see
    try:
        # One stream: conmon reads stdout and stderr apart, so a cat's error could land
        # in the log after "procs" and be read as part of ps's list.
        script = (f"exec 2>&1; cat /etc/shadow; cat {marker}; cat /proc/1/root{marker}; "
                  f"for p in /proc/[0-9]*; do cat $p/root{marker}; done 2>/dev/null; "
                  "echo procs; ps -o pid,comm; echo mounts; cat /proc/self/mountinfo | wc -l; "
                  "echo links; ip -o link | cut -d: -f2; echo sysnet; ls /sys/class/net")
        out, code = finished(ecs, fargo, busybox_image, subnet_id, script, platform)
    finally:
        sleeper.kill()
        sleeper.wait()
        marker.unlink()
    assert Path("/etc/shadow").exists()  # the host has one; the task sees its image's files
    assert "cat: can't open '/etc/shadow': No such file or directory" in out
    assert f"can't open '{marker}'" in out and "host only" not in out
    procs = out.split("procs\n")[1].split("mounts\n")[0]
    assert "1234.5" not in procs and "fargo" not in procs
    assert len(procs.strip().splitlines()) <= 4, procs  # header, sh, ps (and the for's cat)
    assert procs.splitlines()[1].split()[0] == "1"  # the task's own init is pid 1
    links = [name.split("@")[0] for name in out.split("links\n")[1].split("sysnet\n")[0].split()]
    assert sorted(links) == ["eth0", "lo"], links  # no host interface, no other task's veth
    # nor through sysfs (gVisor's own sysfs lists the task's interfaces, runc's none)
    assert out.split("sysnet\n")[1].split() == ([] if platform is None else ["eth0", "lo"])
    assert code == 0


# ---------------------------------------------------------------- privileged operations


def test_mount_module_clock_reboot_refused(ecs, fargo, busybox_image, subnet_id):
    modules = Path("/proc/modules")  # absent when the kernel has no module support at all
    before = modules.read_text() if modules.exists() else None
    host_time = time.time()
    script = (
        "mount -t tmpfs x /mnt && echo MOUNTED; grep ' /mnt ' /proc/mounts; "
        "busybox unshare -m -r true && echo UNSHARED; "
        "busybox unshare -U true && echo USERNS; "
        "echo junk > /tmp/evil.ko; busybox insmod /tmp/evil.ko && echo LOADED; "
        "date -s '2001-02-03 04:05:06'; echo year=$(date +%Y); "
        "busybox hwclock -w && echo RTC; "
        "busybox reboot -f && echo REBOOTED; sleep 0.5; echo still here")
    out, code = finished(ecs, fargo, busybox_image, subnet_id, script)
    for success in ("MOUNTED", "UNSHARED", "USERNS", "LOADED", "RTC", "REBOOTED"):
        assert success not in out, out
    assert "mount: permission denied (are you root?)" in out  # busybox's words for EPERM
    assert "unshare: unshare(0x10020000): Operation not permitted" in out
    assert "unshare: unshare(0x10000000): Operation not permitted" in out
    assert "insmod: can't insert '/tmp/evil.ko': Operation not permitted" in out
    assert "date: can't set date: Operation not permitted" in out
    assert f"year={time.strftime('%Y')}" in out  # (busybox date exits 0 all the same)
    assert "reboot: (null): Operation not permitted" in out
    assert "still here" in out and code == 0  # reboot(2) did not even end the task
    assert (modules.read_text() if modules.exists() else None) == before
    assert abs(time.time() - host_time) < 60  # the host clock did not jump to 2001


def test_kernel_paths_masked_and_readonly(ecs, fargo, busybox_image, subnet_id):
    # Paths this kernel lacks (kcore, sched_debug, scsi here) are simply absent; those
    # present must read as empty, and the writable-looking ones must refuse writes.
    masked = [f for f in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug")
              if Path(f).exists()]
    dirs = [d for d in ("/sys/firmware", "/proc/acpi", "/proc/scsi") if Path(d).exists()]
    script = (
        f"for f in {' '.join(masked)}; do echo $f=$(wc -c < $f); done; "
        f"echo listed=$(ls {' '.join(dirs)} | grep -v : | grep -c .); "
        "echo 1 > /proc/sys/vm/drop_caches && echo WROTE_PROC_SYS; "
        "echo 1 > /proc/sys/net/ipv4/ip_forward && echo WROTE_FORWARD; "
        "touch /sys/kernel/x && echo WROTE_SYS; "
        "echo 1 > /sys/kernel/mm/ksm/run && echo WROTE_KSM; "
        "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status")
    out, code = finished(ecs, fargo, busybox_image, subnet_id, script)
    assert masked and dirs
    for f in masked:
        assert f"{f}=0" in out, out
    assert "listed=0" in out, out  # the masked directories are empty
    for success in ("WROTE_PROC_SYS", "WROTE_FORWARD", "WROTE_SYS", "WROTE_KSM"):
        assert success not in out, out
    assert out.count("Read-only file system") >= 3, out
    assert re.search(r"NoNewPrivs:\s+1", out) and re.search(r"Seccomp:\s+2", out)
    assert code == 0


# ---------------------------------------------------------------- users and capabilities


def test_root_in_task_is_not_root_on_host(ecs, fargo, busybox_image, subnet_id):
    t = running(ecs, fargo, busybox_image, subnet_id,
                "id -u; touch /made-by-root; cat /proc/self/uid_map")
    try:
        out = logs(fargo, t["taskArn"])
        assert out.splitlines()[0] == "0"  # root inside
        pid = host_pid(fargo, t)
        uids = [int(u) for u in status_field(pid, "Uid")]
        gids = [int(g) for g in status_field(pid, "Gid")]
        base = uids[0]
        # ... an unprivileged uid outside: every id of the task lies in its own range.
        assert base >= userns.FIRST_ID and (base - userns.FIRST_ID) % userns.RANGE == 0
        assert uids == [base] * 4 and gids == [base] * 4
        assert re.search(rf"^\s*0\s+{base}\s+65536$", out, re.M), out
        # What root creates inside belongs to that uid on the host's disk.
        tid = t["taskArn"].rsplit("/", 1)[-1]
        made = task_storage(fargo.state_dir, tid) / "app" / "upper" / "made-by-root"
        assert made.stat().st_uid == base and made.stat().st_gid == base
    finally:
        stop(ecs, t)


def test_capabilities_default_set(ecs, fargo, busybox_image, subnet_id):
    script = ("grep CapEff /proc/self/status; ip link add evil0 type dummy && echo ADDED; "
              "ip addr add 10.9.9.9/32 dev eth0 && echo READDRESSED; "
              "busybox su -s /bin/sh nobody -c 'exec sleep 30' & sleep 0.3; "
              "cat /proc/$!/environ > /dev/null && echo TRACED; kill $!")
    out, code = finished(ecs, fargo, busybox_image, subnet_id, script)
    eff = int(re.search(r"CapEff:\s+([0-9a-f]+)", out).group(1), 16)
    assert eff == sum(1 << CAP_BITS[c] for c in DEFAULT_CAPS), hex(eff)
    assert "ADDED" not in out and "READDRESSED" not in out
    assert "Operation not permitted" in out
    assert "TRACED" not in out and "Permission denied" in out
    # Positive control: with SYS_PTRACE added (the one addable capability), the same read of
    # another user's process works.
    out, code = finished(ecs, fargo, busybox_image, subnet_id, script,
                         linuxParameters={"capabilities": {"add": ["SYS_PTRACE"]}})
    eff = int(re.search(r"CapEff:\s+([0-9a-f]+)", out).group(1), 16)
    assert eff & (1 << CAP_SYS_PTRACE) and "TRACED" in out, out
    assert "ADDED" not in out
    # Dropping works as Docker's --cap-drop: one capability, or ALL of them.
    out, _ = finished(ecs, fargo, busybox_image, subnet_id, "grep CapEff /proc/self/status",
                      linuxParameters={"capabilities": {"drop": ["NET_RAW", "chown"]}})
    eff = int(re.search(r"CapEff:\s+([0-9a-f]+)", out).group(1), 16)
    assert eff == sum(1 << CAP_BITS[c] for c in DEFAULT_CAPS
                      if c not in ("CAP_NET_RAW", "CAP_CHOWN")), hex(eff)
    out, _ = finished(ecs, fargo, busybox_image, subnet_id, "grep CapEff /proc/self/status",
                      linuxParameters={"capabilities": {"drop": ["ALL"], "add": ["SYS_PTRACE"]}})
    eff = int(re.search(r"CapEff:\s+([0-9a-f]+)", out).group(1), 16)
    assert eff == 1 << CAP_SYS_PTRACE, hex(eff)


# ---------------------------------------------------------------- limits


def test_fork_bomb_stops_at_pids_limit(ecs, fargo, busybox_image, subnet_id):
    limit = pids_limit(512)
    # Fork until refused, in a child shell (a shell dies when fork fails). At the limit only
    # builtins can run: read the count, kill everything, then fork again.
    script = (
        "sleep 0 & wait && echo fork ok\n"
        "( while :; do sleep 300 & done ) 2>/tmp/err &\n"
        "wait $!\n"
        "read live < /sys/fs/cgroup/pids/pids.current; echo live=$live\n"
        "read err < /tmp/err; echo \"refused: $err\"\n"
        "kill -9 -1; wait\n"
        "sleep 0 & wait && echo fork ok again")
    t0 = time.time()
    fam = register(ecs, busybox_image, cpu="256", memory="512",
                   # The shell stays pid 1 and keeps reaping: killed orphans that die after
                   # its last wait are its zombies, and an exec'd sleep would never reap them.
                   command=["sh", "-c", script + "; echo READY; trap 'exit 0' TERM; "
                            "while :; do sleep 1 & wait; done"])
    t = wait_status(ecs, run(ecs, fam, subnet_id)["taskArn"], "RUNNING", timeout=60)
    try:
        deadline = time.time() + 120
        while "fork ok again" not in (out := logs(fargo, t["taskArn"])):
            assert time.time() < deadline, out
            # The host keeps forking while the task cannot.
            assert subprocess.run(["true"]).returncode == 0
            time.sleep(0.3)
        live = int(re.search(r"live=(\d+)", out).group(1))
        assert limit - 10 <= live <= limit, out  # it got to the limit, and no further
        assert "refused: sh: can't fork: Resource temporarily unavailable" in out
        assert out.startswith("fork ok") and "fork ok again" in out  # the task lives on
        pids_dir = Path(next(p for k, p in _cgroups(fargo, t).items() if "pids" in k.split(",")))
        assert int((pids_dir / "pids.max").read_text()) == limit
        # v1 counts refused forks in the cgroup of the forker: the container's.
        assert int((pids_dir / "app" / "pids.events").read_text().split()[1]) >= 1
        # All gone again (the kernel may still be reaping the killed ones for a moment).
        deadline = time.time() + 10
        while int((pids_dir / "pids.current").read_text()) >= 10 and time.time() < deadline:
            time.sleep(0.1)
        assert int((pids_dir / "pids.current").read_text()) < 10, out
        print(f"\npids limit {limit}: reached {live} in {time.time() - t0:.1f}s")
    finally:
        stop(ecs, t)


def _cgroups(fargo, task: dict) -> dict[str, str]:
    import json

    return json.loads((task_dir(fargo, task) / "task.json").read_text())["cgroups"]


@both_tiers
def test_ephemeral_storage_limit(ecs, fargo, busybox_image, subnet_id, platform):
    host_free = os.statvfs(fargo.state_dir).f_bavail * os.statvfs(fargo.state_dir).f_frsize
    # Fill the real 20 GiB cheaply: fallocate reserves all but 64 MiB without writing data
    # (unwritten extents), then dd writes real bytes until the filesystem refuses.
    script = (
        "df -k / | tail -1; avail=$(df -k / | tail -1 | awk '{print $4}'); "
        "busybox fallocate -l $(( (avail - 65536) * 1024 )) /big && echo reserved; "
        "dd if=/dev/zero of=/fill bs=1M count=256; echo dd=$?; ls -l /fill; "
        "df -k / | tail -1; rm /big /fill; echo again > /after && cat /after")
    out, code = finished(ecs, fargo, busybox_image, subnet_id, script, platform)
    first = out.splitlines()[0].split()
    size_kib = int(first[1])
    # ext4 keeps ~2% for its own metadata and journal; the task gets the rest of 20 GiB.
    assert 0.95 * 20 * 2**20 < size_kib <= 20 * 2**20, out
    assert "reserved" in out
    assert "No space left on device" in out and "dd=1" in out
    written = int(re.search(r"-rw\S+\s+\d+\s+\S+\s+\S+\s+(\d+)", out).group(1))
    assert 0 < written < 80 * 2**20, out  # stopped at the limit, not at 256 MiB
    assert "again" in out.splitlines()[-1] and code == 0  # freed space is usable again
    # The host lost no 20 GiB: the fallocated space was never really written.
    after = os.statvfs(fargo.state_dir).f_bavail * os.statvfs(fargo.state_dir).f_frsize
    assert host_free - after < 2**30


def test_ephemeral_storage_size_from_task_definition(ecs, fargo, busybox_image, subnet_id):
    family = "t" + uuid.uuid4().hex[:10]
    ecs.register_task_definition(
        family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256",
        memory="512", ephemeralStorage={"sizeInGiB": 21},
        containerDefinitions=[{"name": "app", "image": busybox_image,
                               "command": ["sh", "-c", "df -k / | tail -1"]}])
    t = wait_status(ecs, run(ecs, family, subnet_id)["taskArn"], "STOPPED", timeout=60)
    assert t["ephemeralStorage"] == {"sizeInGiB": 21}
    size_kib = int(logs(fargo, t["taskArn"]).split()[1])
    assert 0.95 * 21 * 2**20 < size_kib <= 21 * 2**20


# ---------------------------------------------------------------- networking still works


@both_tiers
def test_low_port_served_by_namespaced_root(ecs, fargo, busybox_image, subnet_id, platform):
    """Container root holds no capability over the task's netns (the host's user namespace
    owns it); the netns lets every uid bind low ports instead."""
    fam = register(ecs, busybox_image, portMappings=[{"containerPort": 80}],
                   command=["httpd", "-f", "-p", "80", "-h", "/www"])
    t = wait_status(ecs, run(ecs, fam, subnet_id, **_tier(platform))["taskArn"], "RUNNING",
                    timeout=60)
    try:
        ip = detail(t, "privateIPv4Address")
        assert http_body(f"http://{ip}:80/") == "hello from fargo\n"
    finally:
        stop(ecs, t)
