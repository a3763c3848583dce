"""The agent's small process and descriptor helpers: waits that wake on a pidfd rather than by
polling, and long-lived descriptors kept above FD_SETSIZE."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from fargo.agent.libc import FD_SETSIZE, lift_fd
from fargo.agent.netsys import lift
from fargo.agent.runc import process_start
from fargo.agent.runfiles import Pidfds, wait_child, wait_gone


def test_wait_child_sees_the_exit_as_it_happens() -> None:
    # Popen.wait(timeout) would see a 40 ms process end only at its 63.5 ms poll.
    proc = subprocess.Popen(["sleep", "0.04"])
    t0 = time.perf_counter()
    assert wait_child(proc, 5) == 0
    assert time.perf_counter() - t0 < 0.058


def test_pidfds_tell_a_running_process_from_an_ended_one() -> None:
    """The pidfd made at the first look names that process alone: later looks read the pid
    no more (a pid file rewritten meanwhile is not followed), and an end is seen at once."""
    proc = subprocess.Popen(["sleep", "30"])
    fds = Pidfds(lift_fd)
    asked: list[int] = []

    def pid_of() -> int:
        asked.append(1)
        return proc.pid

    try:
        assert fds.ended("a", pid_of) is False
        assert fds.ended("a", lambda: 1) is False and len(asked) == 1  # kept, not re-read
        assert fds.keys() == ["a"] and fds.ended("none", lambda: None) is None
        proc.kill()
        proc.wait()
        assert fds.ended("a", pid_of) is True
        assert fds.ended("b", lambda: proc.pid) is None  # reaped: no such process
        before = len(os.listdir("/proc/self/fd"))
        fds.forget(["a", "b"])
        assert fds.keys() == [] and len(os.listdir("/proc/self/fd")) == before - 1
    finally:
        proc.kill()
        proc.wait()


def test_wait_child_times_out_on_a_process_that_runs_on() -> None:
    proc = subprocess.Popen(["sleep", "5"])
    try:
        t0 = time.perf_counter()
        assert wait_child(proc, 0.1) is None
        assert 0.09 < time.perf_counter() - t0 < 1
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_wait_child_of_a_reaped_process_gives_its_code() -> None:
    proc = subprocess.Popen(["sh", "-c", "exit 3"])
    proc.wait()
    assert wait_child(proc, 1) == 3


def test_wait_gone_returns_at_exit_or_timeout() -> None:
    proc = subprocess.Popen(["sleep", "0.05"])
    t0 = time.perf_counter()
    wait_gone(proc.pid, 5)
    assert time.perf_counter() - t0 < 1
    proc.wait()
    runs = subprocess.Popen(["sleep", "5"])
    try:
        t0 = time.perf_counter()
        wait_gone(runs.pid, 0.1)
        assert time.perf_counter() - t0 < 1 and runs.poll() is None
    finally:
        runs.kill()
        runs.wait()


def test_process_start_is_the_kernels_start_time() -> None:
    proc = subprocess.Popen(["sleep", "5"])
    try:
        started = process_start(proc.pid)
        assert started is not None and started > 0
        assert process_start(proc.pid) == started  # stable for the process's life
    finally:
        proc.kill()
        proc.wait()
    assert process_start(proc.pid) is None  # reaped: nothing to compare


def test_lifted_descriptors_live_above_fd_setsize() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft <= FD_SETSIZE + 8:
        pytest.skip(f"RLIMIT_NOFILE {soft} leaves no room above {FD_SETSIZE}")
    fd = os.open("/dev/null", os.O_RDONLY)
    moved = lift_fd(fd)
    try:
        assert moved >= FD_SETSIZE
        with pytest.raises(OSError):
            os.fstat(fd)  # the low one is given back
        assert os.get_inheritable(moved) is False
    finally:
        os.close(moved)


def test_a_lifted_socket_keeps_working_and_its_blocking_mode() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft <= FD_SETSIZE + 8:
        pytest.skip(f"RLIMIT_NOFILE {soft} leaves no room above {FD_SETSIZE}")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.setblocking(False)
    moved = lift(srv)
    try:
        assert moved.fileno() >= FD_SETSIZE and srv.fileno() == -1
        assert moved.getblocking() is False
        with socket.create_connection(moved.getsockname(), timeout=2):
            time.sleep(0.05)
            conn, _ = moved.accept()
            conn.close()
    finally:
        moved.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="nftables needs root")
def test_libnftables_still_runs_with_a_thousand_lifted_listeners() -> None:
    """The server's failure this guards against: with every descriptor below 1024 held by
    tasks' listeners, libnftables' select() aborted the process ("bit out of range 0 -
    FD_SETSIZE on fd_set"). In a child, as that abort would take the test runner with it."""
    script = textwrap.dedent("""
        import socket
        import uuid
        from fargo.agent import nftlib
        from fargo.agent.netsys import lift
        held = []
        for _ in range(1100):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(lift(s))
        assert min(s.fileno() for s in held) >= 1024
        name = "fgprobe_" + uuid.uuid4().hex[:8]  # a commit: its netlink talk uses select()
        nftlib.run(f"add table inet {name}\\ndelete table inet {name}\\n")
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
