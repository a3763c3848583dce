"""The netlink threads: kept between jobs, always back in the host's netns for the next."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from fargo.agent import netsys
from fargo.agent.netnames import NETNS_DIR

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for netns")


def _netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def test_a_kept_thread_leaves_no_job_in_a_task_netns() -> None:
    host = _netns_inode()
    path = f"{NETNS_DIR}/fgtest-{uuid.uuid4().hex[:10]}"

    def make() -> tuple[int, int]:
        netsys.enter_new_netns(path)  # this job ends inside the new netns
        return threading.get_ident(), _netns_inode()

    try:
        made_on, inside = netsys.run_in_thread(make)
        assert inside != host
        # The next job runs on the same kept thread, back in the host's netns.
        second_on, there = netsys.run_in_thread(lambda: (threading.get_ident(), _netns_inode()))
        assert (second_on, there) == (made_on, host)
        assert netsys.run_in_thread(_netns_inode) == host
        assert _netns_inode() == host  # and the caller never left it
    finally:
        netsys.run_in_thread(lambda: netsys.remove_netns(path))
    assert not os.path.lexists(path)


def test_errors_reach_the_caller_and_the_thread_is_kept() -> None:
    def fail() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        netsys.run_in_thread(fail)
    assert netsys.run_in_thread(lambda: 7) == 7


def test_a_thread_that_cannot_get_back_to_the_host_is_let_go(
        monkeypatch: pytest.MonkeyPatch) -> None:
    first = netsys.run_in_thread(threading.current_thread)

    class NoSetns:  # all the kept thread calls after a job: its way back to the host's netns
        @staticmethod
        def setns(fd: int, kind: int) -> int:
            return -1

    real = netsys.libc
    monkeypatch.setattr(netsys, "libc", NoSetns())
    assert netsys.run_in_thread(threading.current_thread) is first  # ran, could not return
    monkeypatch.setattr(netsys, "libc", real)
    first.join(5)
    assert not first.is_alive()  # it ended...
    assert netsys.run_in_thread(threading.current_thread) is not first  # ...and a fresh one runs
