"""The holder namespace: netns pins and task filesystems off the host's mount table, reached
by path from any process, kept when the process that made them is killed, and the holder
itself dropped only once nothing is in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from fargo.agent import holder, netsys
from fargo.agent.images.content import ContentStore
from fargo.agent.images.rootfs import RootfsMounter
from fargo.agent.storage import DEFAULT_GIB, TaskStorage
from fargo.port.data import Image
from fargo.port.errors import RootfsError
from tests.conftest import ROOT
from tests.holderpaths import in_host_table

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")


def _ino(what: str) -> int:
    return os.stat(f"/proc/thread-self/ns/{what}").st_ino


def _holder_mounts() -> list[str]:
    text = holder.inside(lambda: open("/proc/thread-self/mountinfo").read())
    return [line.split()[4] for line in text.splitlines()]


def test_a_pin_outlives_the_server_that_made_it() -> None:
    name = f"fgtest-{uuid.uuid4().hex[:10]}"
    made = textwrap.dedent(f"""
        import os, signal
        from fargo.agent import holder, netsys
        def pin():
            netsys.new_netns()
            holder.pin_here({name!r})
            return os.stat("/proc/thread-self/ns/net").st_ino
        print(netsys.run_in_thread(pin), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no clean-up of any kind
    """)
    proc = subprocess.run([sys.executable, "-c", made], capture_output=True, text=True,
                          cwd=ROOT, timeout=30)
    assert proc.returncode == -9, proc.stderr
    try:
        path = holder.path(name)
        assert holder.pinned(path) and name in holder.names()
        assert os.stat(path).st_ino == int(proc.stdout)  # the very netns, from another process
        assert not in_host_table(name)  # not a mount of the host's table
        # A thread of this process joins it by that path, as runc and nsenter do.
        inside = netsys.run_in_thread(lambda: (netsys.enter_netns(path), _ino("net"))[1])
        assert inside == int(proc.stdout)
    finally:
        holder.unpin(name)
    assert name not in holder.names() and not holder.pinned(holder.path(name))
    holder.unpin(name)  # idempotent


def test_the_holder_keeps_no_copy_of_the_hosts_other_mounts() -> None:
    name = f"fgtest-{uuid.uuid4().hex[:10]}"
    netsys.run_in_thread(lambda: (netsys.new_netns(), holder.pin_here(name)))
    try:
        points = _holder_mounts()
        assert f"/run/netns/{name}" in points
        others = {p for p in points if not p.startswith(("/run/netns/", "/run/storage/"))}
        assert others <= {"/", "/proc", "/dev", "/dev/pts", "/run"}, others
    finally:
        holder.unpin(name)


def test_a_worker_that_pinned_is_back_in_the_hosts_namespaces() -> None:
    host_mnt, host_net = _ino("mnt"), _ino("net")
    name = f"fgtest-{uuid.uuid4().hex[:10]}"
    netsys.run_in_thread(lambda: (netsys.new_netns(), holder.pin_here(name)))
    try:
        # Every kept worker (the one that pinned among them) is home for the next job, in
        # the process's cwd too (setns left it at the root).
        home = (host_mnt, host_net, os.getcwd())
        for _ in range(netsys.MAX_IDLE_WORKERS + 1):
            assert netsys.run_in_thread(lambda: (_ino("mnt"), _ino("net"), os.getcwd())) == home
    finally:
        holder.unpin(name)


def test_the_holder_goes_only_once_empty() -> None:
    name = f"fgtest-{uuid.uuid4().hex[:10]}"
    netsys.run_in_thread(lambda: (netsys.new_netns(), holder.pin_here(name)))
    try:
        assert not holder.drop_if_empty()  # it pins ours
        assert holder.pinned(holder.path(name))
    finally:
        holder.unpin(name)
    others = holder.names()  # another server's tasks, if any run now
    assert holder.drop_if_empty() == (not others)
    bound = any(line.split()[4] == holder.PIN for line in open("/proc/self/mountinfo"))
    assert bound == bool(others)


def test_a_task_filesystem_in_the_holder_backs_an_overlay_on_the_host(tmp_path: Path) -> None:
    """The task's ext4 is mounted in the holder only; the host's overlay takes its upper dir
    from a detached copy, and what the container writes lands on the task's filesystem."""
    storage = TaskStorage(tmp_path / "storage")
    rel = holder.storage_rel(tmp_path, "t1")
    base = Path(holder.outside(rel))  # the holder is made (if need be): one host mount
    before = _host_points()
    storage.mount("t1", DEFAULT_GIB, Path(holder.inner(rel)), there=holder.inside)
    rootfs = tmp_path / "rootfs"
    mounter = RootfsMounter(ContentStore(tmp_path / "content"))
    try:
        assert _host_points() == before  # not in the host's table
        assert os.statvfs(base).f_blocks * os.statvfs(base).f_frsize > (DEFAULT_GIB - 1) << 30
        lower = tmp_path / "layer"
        lower.mkdir()
        (lower / "from-image").write_text("image")
        image = Image(ref="x", digest="sha256:0", config={}, layers=[lower])
        mounter.mount(image, base / "app", target=rootfs,
                      workdir_mount=lambda: holder.clone(f"{rel}/app"))
        assert (rootfs / "from-image").read_text() == "image"
        (rootfs / "written").write_text("by the task")
        assert (base / "app" / "upper" / "written").read_text() == "by the task"
        assert _host_points() == [*before, str(rootfs)]  # only the overlay itself
        with pytest.raises(RootfsError):  # a path into the holder is no upper dir for overlayfs
            mounter.mount(image, base / "other", target=tmp_path / "rootfs2")
    finally:
        mounter.unmount(base / "app", target=rootfs)
        storage.unmount(Path(holder.inner(rel)), there=holder.inside)
        shutil.rmtree(base, ignore_errors=True)
        storage.close()
    # Other tests' mounts come and go meanwhile (a container's rootfs, until runc has it):
    # only this test's own must be gone.
    assert not base.exists() and str(rootfs) not in _host_points()
    holder.drop_if_empty()


def _host_points() -> list[str]:
    return [line.split()[4] for line in open("/proc/self/mountinfo")]


def test_the_holder_binds_where_run_is_a_shared_mount() -> None:
    """On a systemd host /run is shared with other mount namespaces, and the kernel copies
    no mount namespace's file to those (EINVAL): the holder's goes in a private bind of a
    directory of its own. A throwaway namespace with a shared tmpfs at /run, and a peer of
    it in another, stands for that host."""
    script = textwrap.dedent("""
        import errno, os
        from fargo.agent import holder, libc, netsys
        open("/run/direct", "w").close()
        os.mkdir("/run/private")
        libc.mount("/run/private", "/run/private", None, libc.MS_BIND, what="", error=OSError)
        libc.mount("none", "/run/private", None, libc.MS_PRIVATE, what="", error=OSError)
        open("/run/private/file", "w").close()
        def both(tid):  # the premise: where a private mount takes it, the shared one cannot
            ns = f"/proc/self/task/{tid}/ns/mnt"
            return (libc.try_mount(ns, "/run/private/file", None, libc.MS_BIND)
                    or 1000 + libc.try_mount(ns, "/run/direct", None, libc.MS_BIND))
        print(1000 + errno.EINVAL in [holder._build(both, cpu)
                                      for cpu in sorted(os.sched_getaffinity(0))])
        netsys.run_in_thread(lambda: (netsys.new_netns(), holder.pin_here("fgtest-shared")))
        print(holder.pinned(holder.path("fgtest-shared")))
        holder.unpin("fgtest-shared")
        print(holder.drop_if_empty(), os.path.exists(holder.PIN))
    """)
    shell = ("mount -t tmpfs fgtest /run && mount --make-shared /run && "
             "{ unshare --mount --propagation unchanged sleep 60 & } && peer=$! && "
             f"sleep 0.2; {sys.executable} -c '{script}'; code=$?; kill $peer; exit $code")
    proc = subprocess.run(["unshare", "--mount", "sh", "-c", shell], capture_output=True,
                          text=True, cwd=ROOT, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["True", "True", "True False"]


def test_task_filesystems_of_a_state_dir_that_is_gone_are_swept(tmp_path: Path) -> None:
    """A server SIGKILLed and never back, its state dir deleted: nothing would ever unmount
    its tasks' filesystems in the holder, so any server's clean-up sweeps them."""
    storage = TaskStorage(tmp_path / "storage")
    state, kept = tmp_path / "state", tmp_path / "kept"
    state.mkdir()
    kept.mkdir()
    try:
        for owner in (state, kept):
            rel = holder.storage_rel(owner, "t1")
            storage.mount("t1", DEFAULT_GIB, Path(holder.inner(rel)), there=lambda step, o=owner:
                          holder.inside(lambda: (holder.own_storage(o), step())[1]))
        assert holder.sweep() == []  # both state dirs are there
        state.rmdir()
        assert str(state) in holder.sweep()
        assert holder.listing(os.path.dirname(holder.storage_rel(state, "t1"))) == []
        assert holder.listing(os.path.dirname(holder.storage_rel(kept, "t1"))) == ["t1"]
    finally:
        storage.unmount(Path(holder.inner(holder.storage_rel(kept, "t1"))), there=holder.inside)
        holder.inside(lambda: os.rmdir(holder.inner(holder.storage_rel(kept, "t1"))))
        kept.rmdir()
        holder.sweep()
        storage.close()
    holder.drop_if_empty()
