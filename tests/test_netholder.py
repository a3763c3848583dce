"""Netns pins in the holder namespace: off the host's mount table, reached by path from any
process, kept when the process that made them is killed, and the holder itself dropped only
once nothing is pinned in it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from fargo.agent import netholder, netsys
from tests.conftest import ROOT
from tests.netpins import in_host_table

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")


def _ino(what: str) -> int:
    return os.stat(f"/proc/thread-self/ns/{what}").st_ino


def _holder_mounts() -> list[str]:
    netholder.path("x")  # the holder exists (made if need be)
    ns = netholder._holder.ns_fd()
    text = netsys.run_in_thread(lambda: netholder._in(
        ns, lambda: open("/proc/thread-self/mountinfo").read()))
    return [line.split()[4] for line in text.splitlines()]


def test_a_pin_outlives_the_server_that_made_it() -> None:
    name = f"fgtest-{uuid.uuid4().hex[:10]}"
    made = textwrap.dedent(f"""
        import os, signal
        from fargo.agent import netholder, netsys
        def pin():
            netsys.new_netns()
            netholder.pin_here({name!r})
            return os.stat("/proc/thread-self/ns/net").st_ino
        print(netsys.run_in_thread(pin), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind
    """)
    proc = subprocess.run([sys.executable, "-c", made], capture_output=True, text=True,
                          cwd=ROOT, timeout=30)
    assert proc.returncode == -9, proc.stderr
    try:
        path = netholder.path(name)
        assert netholder.pinned(path) and name in netholder.names()
        assert os.stat(path).st_ino == int(proc.stdout)  # the very netns, from another process
        assert not in_host_table(name)  # not a mount of the host's table
        # A thread of this process joins it by that path, as runc and nsenter do.
        inside = netsys.run_in_thread(lambda: (netsys.enter_netns(path), _ino("net"))[1])
        assert inside == int(proc.stdout)
    finally:
        netholder.unpin(name)
    assert name not in netholder.names() and not netholder.pinned(netholder.path(name))
    netholder.unpin(name)  # idempotent


def test_the_holder_keeps_no_copy_of_the_hosts_other_mounts() -> None:
    name = f"fgtest-{uuid.uuid4().hex[:10]}"
    netsys.run_in_thread(lambda: (netsys.new_netns(), netholder.pin_here(name)))
    try:
        points = _holder_mounts()
        assert f"/run/netns/{name}" in points
        others = {p for p in points if not p.startswith("/run/netns/")}
        assert others <= {"/", "/proc", "/dev", "/dev/pts", "/run"}, others
    finally:
        netholder.unpin(name)


def test_a_worker_that_pinned_is_back_in_the_hosts_namespaces() -> None:
    host_mnt, host_net = _ino("mnt"), _ino("net")
    name = f"fgtest-{uuid.uuid4().hex[:10]}"
    netsys.run_in_thread(lambda: (netsys.new_netns(), netholder.pin_here(name)))
    try:
        # Every kept worker (the one that pinned among them) is home for the next job.
        for _ in range(netsys.MAX_IDLE_WORKERS + 1):
            assert netsys.run_in_thread(lambda: (_ino("mnt"), _ino("net"))) == (host_mnt,
                                                                                host_net)
    finally:
        netholder.unpin(name)


def test_the_holder_goes_only_once_empty() -> None:
    name = f"fgtest-{uuid.uuid4().hex[:10]}"
    netsys.run_in_thread(lambda: (netsys.new_netns(), netholder.pin_here(name)))
    try:
        assert not netholder.drop_if_empty()  # it pins ours
        assert netholder.pinned(netholder.path(name))
    finally:
        netholder.unpin(name)
    others = netholder.names()  # another server's tasks, if any run now
    assert netholder.drop_if_empty() == (not others)
    bound = any(line.split()[4] == netholder.PIN for line in open("/proc/self/mountinfo"))
    assert bound == bool(others)
