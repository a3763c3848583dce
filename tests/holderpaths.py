"""Tests' way into a task's netns and filesystem, wherever its server keeps them: the tasks'
netns pins and storage mounts are in the host's holder namespace (agent/holder.py), not
under /var/run/netns and the state dir."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from fargo.agent import holder


def netns_exec(name: str) -> list[str]:
    """The argv prefix that runs a command in the netns pinned as name (in this host's mount
    namespace: the host's /tmp and /sys, so read interfaces with `ip`, not /sys/class/net)."""
    return [shutil.which("nsenter") or "nsenter", f"--net={holder.path(name)}"]


def pinned_names() -> list[str]:
    """Every netns pin on the host: the holder's and those under /var/run/netns."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    host = [line.split()[0] for line in listed.splitlines() if line.strip()]
    return sorted({*host, *holder.names()})


def in_host_table(name: str) -> bool:
    """Whether a mount of the host's own table is the pin called name."""
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4].endswith("/" + name) for line in f)




def task_storage(state_dir: Path, tid: str) -> Path:
    """The task's filesystem (where its containers' upper dirs are), reached from here."""
    return Path(holder.outside(holder.storage_rel(state_dir, tid)))


def storage_left(state_dir: Path) -> list[str]:
    """The task filesystems the server of state_dir still has mounted (or their dirs)."""
    return holder.listing(os.path.dirname(holder.storage_rel(state_dir, "x")))
