"""Nothing of the host's layout shows inside a task: its mount table, cgroup paths and host
name name no state dir, runtime dir, temporary dir or pid of the server."""

from __future__ import annotations

import re
import socket

from tests.conftest import wait_status
from tests.test_tasks import logs, register, run

SCRIPT = ("cat /proc/self/mounts; echo '-- mountinfo'; cat /proc/self/mountinfo; "
          "echo '-- cgroup'; cat /proc/self/cgroup; echo '-- hostname'; hostname; "
          "echo '-- tasks'; cat /sys/fs/cgroup/pids/tasks")


def test_task_sees_no_host_paths(ecs, fargo, busybox_image, subnet_id):
    fam = register(ecs, busybox_image, command=["sh", "-c", SCRIPT])
    t = run(ecs, fam, subnet_id)
    done = wait_status(ecs, t["taskArn"], "STOPPED", timeout=60)
    assert done["containers"][0].get("exitCode") == 0, done
    out = logs(fargo, t["taskArn"])
    mounts, rest = out.split("-- mountinfo\n")
    mountinfo, rest = rest.split("-- cgroup\n")
    cgroup, rest = rest.split("-- hostname\n")
    hostname, tasks = rest.split("-- tasks\n")
    assert " / overlay " in mounts and "lowerdir=" in mountinfo  # the output is what we think
    state = str(fargo.state_dir.resolve())
    for text in (mounts, mountinfo, cgroup):
        for host_path in (state, str(fargo.state_dir), f"/run/{fargo.prefix}-", "/tmp/",
                          "pytest-of-", f"/proc/{fargo.proc.pid}/"):
            assert host_path not in text, (host_path, text)
        assert not re.search(r"/proc/\d+/", text), text  # no pid of a host process at all
    # Its own cgroup namespace: the container's cgroup is the root of every hierarchy.
    assert all(line.endswith(":/") for line in cgroup.split()), cgroup
    # /sys/fs/cgroup shows each v1 hierarchy's directory of the container itself, as the root,
    # read-only: the pids one holds the cat (pid 1: the shell execs its last command).
    cgroup_mounts = [line.split() for line in mountinfo.splitlines() if " - cgroup " in line]
    assert len(cgroup_mounts) == len([c for c in cgroup.split() if not c.startswith("0::")])
    assert all(f[3] == "/" and f[4].startswith("/sys/fs/cgroup/") and f[5].startswith("ro,")
               for f in cgroup_mounts), cgroup_mounts
    assert tasks.split() == ["1"], tasks
    host = socket.gethostname()
    if host != "localhost":
        assert hostname.strip() != host
