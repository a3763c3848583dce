"""Tests' way into a task's netns, wherever its server pinned it (agent/netholder.py): the
tasks' pins are in the host's holder namespace, not under /var/run/netns."""

from __future__ import annotations

import shutil
import subprocess

from fargo.agent import netholder


def netns_exec(name: str) -> list[str]:
    """The argv prefix that runs a command in the netns pinned as name (in this host's mount
    namespace: the host's /tmp and /sys, so read interfaces with `ip`, not /sys/class/net)."""
    return [shutil.which("nsenter") or "nsenter", f"--net={netholder.path(name)}"]


def pinned_names() -> list[str]:
    """Every netns pin on the host: the holder's and those under /var/run/netns."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    host = [line.split()[0] for line in listed.splitlines() if line.strip()]
    return sorted({*host, *netholder.names()})


def in_host_table(name: str) -> bool:
    """Whether a mount of the host's own table is the pin called name."""
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4].endswith("/" + name) for line in f)


__all__ = ["in_host_table", "netns_exec", "pinned_names"]
