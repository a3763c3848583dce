"""The spawn helper: children started from a process that holds almost no descriptors, with
the argv, environment, cwd and descriptors the server gives them, and the helper gone with
the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fargo.agent.runfiles import alive
from fargo.agent.spawner import Child, Spawner
from tests.conftest import ROOT


def _read_all(fd: int) -> str:
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    return data.decode()


@pytest.fixture
def null() -> Iterator[int]:
    fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    yield fd
    os.close(fd)


def _child(argv: list[str], out: int, null: int, extra: tuple[int, ...] = (),
           env: dict[str, str] | None = None, cwd: object = "/",
           fd_env: dict[str, int] | None = None) -> Child:
    return Child(argv=argv, env=env or {"PATH": os.environ["PATH"]}, cwd=str(cwd),
                 stdin=null, stdout=out, stderr=out, pass_fds=extra, fd_env=fd_env)


def test_a_child_gets_what_it_is_given_and_nothing_else(tmp_path: Path, null: int) -> None:
    spawner = Spawner()
    many = [os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC) for _ in range(50)]
    out_r, out_w = os.pipe()
    sync_r, sync_w = os.pipe()
    try:
        script = ('echo "cwd=$(pwd) x=$X sid=$(cut -d" " -f6 /proc/self/stat)"; '
                  'ls /proc/self/fd | sort -n | tr "\\n" " "; echo; echo via-sync >&$SYNC')
        child = _child(["sh", "-c", script], out_w, null, (sync_w,), cwd=tmp_path,
                       env={"PATH": os.environ["PATH"], "X": "given"}, fd_env={"SYNC": 0})
        pid = spawner.spawn(child)
        assert pid is not None and pid > 0
        for fd in (out_w, sync_w):
            os.close(fd)
        first, fds = _read_all(out_r).splitlines()[:2]
        assert first == f"cwd={tmp_path} x=given sid={pid}"  # a session of its own
        # stdio, the one descriptor passed, and ls's own: none of the 50 held here.
        assert len(fds.split()) == 5, fds
        assert _read_all(sync_r) == "via-sync\n"
    finally:
        for fd in (*many, out_r, sync_r):
            os.close(fd)
        spawner.close()


def test_an_idle_child_is_at_idle_priority_and_the_next_is_not(null: int) -> None:
    spawner = Spawner()
    out_r, out_w = os.pipe()
    try:
        script = "cut -d' ' -f41 /proc/self/stat"  # the scheduling policy (SCHED_IDLE is 5)
        for idle in (True, False):
            child = Child(argv=["sh", "-c", script], env={"PATH": os.environ["PATH"]},
                          cwd="/", stdin=null, stdout=out_w, stderr=out_w, idle=idle)
            assert spawner.spawn(child) is not None
        os.close(out_w)
        out_w = -1
        assert _read_all(out_r).split() == [str(os.SCHED_IDLE), str(os.SCHED_OTHER)]
    finally:
        for fd in (out_r, out_w):
            if fd >= 0:
                os.close(fd)
        spawner.close()


def test_a_child_that_cannot_start_is_an_oserror_as_popen_gives(null: int) -> None:
    spawner = Spawner()
    out_r, out_w = os.pipe()
    try:
        with pytest.raises(FileNotFoundError):
            spawner.spawn(_child(["/nonexistent/fargo-binary"], out_w, null))
        with pytest.raises(OSError):
            spawner.spawn(_child(["true"], out_w, null, cwd="/nonexistent-dir"))
        # The helper is still there for the next one.
        child = _child(["sh", "-c", "echo ok"], out_w, null)
        assert spawner.spawn(child) is not None
        os.close(out_w)
        out_w = -1
        assert _read_all(out_r) == "ok\n"
    finally:
        os.close(out_r)
        if out_w >= 0:
            os.close(out_w)
        spawner.close()


def test_without_a_helper_the_caller_is_told_to_start_it_itself(null: int) -> None:
    spawner = Spawner()
    out_r, out_w = os.pipe()
    try:
        assert spawner.spawn(_child(["true"], out_w, null)) is not None
        helper = spawner._helper
        assert helper is not None
        helper.kill()
        helper.wait()
        assert spawner.spawn(_child(["true"], out_w, null)) is None  # noticed, and not retried
        assert spawner.spawn(_child(["true"], out_w, null)) is None
    finally:
        os.close(out_r)
        os.close(out_w)
        spawner.close()


def test_the_helper_ends_with_its_server_and_its_children_live_on() -> None:
    server = textwrap.dedent("""
        import os, signal, subprocess
        from fargo.agent.spawner import Child, Spawner
        s = Spawner()
        null = os.open(os.devnull, os.O_RDWR)
        pid = s.spawn(Child(argv=["sleep", "30"], env={"PATH": os.environ["PATH"]}, cwd="/",
                            stdin=null, stdout=null, stderr=null))
        print(s._helper.pid, pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", server], capture_output=True, text=True,
                          cwd=ROOT, timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    helper, child = map(int, proc.stdout.split())
    try:
        deadline = time.monotonic() + 10
        while alive(helper) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not alive(helper)
        assert alive(child)  # what it started is its own
    finally:
        os.kill(child, signal.SIGKILL)
