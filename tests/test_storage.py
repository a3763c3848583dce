"""Task filesystems on loop devices, the warm ones made ahead, and nftables run in-process."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from fargo.agent import nftlib
from fargo.agent.storage import DEFAULT_GIB, TaskStorage


def _loops_of(root: Path) -> list[str]:
    """Loop devices backed by files of this storage root (deleted ones included)."""
    out = subprocess.run(["losetup", "-l", "-n", "-O", "NAME,BACK-FILE"], capture_output=True,
                         text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if str(root) in line]


def _wait(cond, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_warm_filesystems_are_taken_and_remade(tmp_path: Path) -> None:
    storage = TaskStorage(tmp_path / "storage")
    target = tmp_path / "task"
    try:
        storage.warm(1)
        _wait(lambda: len(storage._ready) == 1)
        ready_device = storage._ready[0].device
        # Ready and mounted, where the kernel can, yet in no mount table: runc, which reads
        # the host's for every container it makes, does not pay for the pool.
        assert storage._ready[0].mounted
        assert f"{ready_device} " not in Path("/proc/self/mountinfo").read_text()
        storage.mount("t1", DEFAULT_GIB, target)
        assert os.path.ismount(target)
        source = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(target)],
                                capture_output=True, text=True, check=True).stdout.strip()
        assert source == ready_device  # the start took the warm one...
        # ...whose allocator was warmed by a directory made and dropped: none is left.
        assert sorted(os.listdir(target)) == ["lost+found"]
        options = subprocess.run(["findmnt", "-n", "-o", "OPTIONS", str(target)],
                                 capture_output=True, text=True, check=True).stdout
        # No background work per task filesystem: no jbd2 thread, no inode table zeroing,
        # no bitmap prefetch (ext4 lists these options when they are in effect).
        assert {"noinit_itable", "no_prefetch_block_bitmaps"} <= set(options.strip().split(","))
        features = subprocess.run(["dumpe2fs", "-h", source], capture_output=True,
                                  text=True).stdout
        assert "has_journal" not in features and "Filesystem features" in features
        # The next is made once asked (after the start: HostRuntime.start_container), not
        # beside the start that took the last one.
        time.sleep(0.3)
        assert not storage._ready
        storage.refill()
        _wait(lambda: len(storage._ready) == 1)
        assert storage._ready[0].device != ready_device
        stat = os.statvfs(target)
        assert stat.f_blocks * stat.f_frsize > (DEFAULT_GIB - 1) << 30  # the full size
        (target / "hello").write_text("hi")
        assert len(_loops_of(tmp_path)) == 2  # the mounted one and the waiting one
    finally:
        storage.close()
        storage.unmount(target)
    _wait(lambda: not _loops_of(tmp_path))  # unused warm devices detach themselves


def test_other_sizes_are_made_on_demand(tmp_path: Path) -> None:
    storage = TaskStorage(tmp_path / "storage")
    target = tmp_path / "task"
    storage.warm(1)
    try:
        _wait(lambda: len(storage._ready) == 1)
        storage.mount("t2", 21, target)
        stat = os.statvfs(target)
        assert 20 << 30 < stat.f_blocks * stat.f_frsize <= 21 << 30
        assert len(storage._ready) == 1  # the default-size one still waits
    finally:
        storage.close()
        storage.unmount(target)
    _wait(lambda: not _loops_of(tmp_path))


def test_warm_pool_retries_after_a_failure_without_spinning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = TaskStorage(tmp_path / "storage")
    real = storage._fresh_device
    attempts: list[str] = []
    failing = [True]

    def flaky(name: str, size_gib: int) -> tuple[str, int]:
        if name == "warm":
            attempts.append(name)
            if failing[0]:
                raise OSError("no free loop device (injected)")
        return real(name, size_gib)

    monkeypatch.setattr(storage, "_fresh_device", flaky)
    targets = [tmp_path / "t1", tmp_path / "t2"]
    try:
        storage.warm(1)
        _wait(lambda: len(attempts) == 1)
        storage.mount("t1", DEFAULT_GIB, targets[0])  # none ready: made on the spot
        assert os.path.ismount(targets[0])
        _wait(lambda: len(attempts) == 2)  # the take woke the refill: one retry...
        time.sleep(0.3)
        assert len(attempts) == 2  # ...and then it waits, it does not spin
        failing[0] = False
        storage.mount("t2", DEFAULT_GIB, targets[1])
        _wait(lambda: len(storage._ready) == 1)  # the pool fills again
    finally:
        storage.close()
        for target in targets:
            storage.unmount(target)
    _wait(lambda: not _loops_of(tmp_path))


def test_nft_in_process_applies_and_reports_errors() -> None:
    table = f"fargo_t{uuid.uuid4().hex[:8]}"
    nftlib.run(f"add table inet {table}\nadd set inet {table} s {{ type ipv4_addr; }}\n"
               f"add element inet {table} s {{ 10.9.9.9 }}\n")
    try:
        listed = subprocess.run(["nft", "list", "set", "inet", table, "s"], capture_output=True,
                                text=True, check=True).stdout
        assert "10.9.9.9" in listed
        with pytest.raises(nftlib.NftError, match="No such file or directory"):
            nftlib.run(f"add element inet {table} nosuchset {{ 10.9.9.9 }}\n")
        with pytest.raises(nftlib.NftError, match="syntax error"):
            nftlib.run("this is not nft\n")
    finally:
        nftlib.run(f"delete table inet {table}\n")
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert table not in tables


def test_older_templates_of_a_size_are_replaced(tmp_path: Path) -> None:
    """A template made with other options (an older server's) is dropped, not kept beside."""
    templates = tmp_path / "storage" / "templates"
    templates.mkdir(parents=True)
    for name in ("20.img", "20-2.img", "20-3.img", "21-2.img"):
        (templates / name).write_bytes(b"old")
    made = TaskStorage(tmp_path / "storage")._template(DEFAULT_GIB)
    assert sorted(p.name for p in templates.iterdir()) == sorted([made.name, "21-2.img"])
    assert made.stat().st_size == DEFAULT_GIB << 30  # sparse, full size
