"""Ephemeral storage: each task's writable layers live on an ext4 filesystem of its own size.

A task gets a sparse file of ephemeralStorage.sizeInGiB (20 by default, as Fargate), holding an
ext4 filesystem, attached to a loop device and mounted where the task's container directories
(overlay upper and work dirs) go. Writes past the size fail with ENOSPC inside the task and
nowhere else. The file only takes the host space really written (discard punches freed blocks
back out), so the size is a ceiling, not a reservation: the host disk can be overcommitted.

Cheap to make: `mkfs.ext4` runs once per size (no resize inode, no journal, two backup
superblocks, lazy inode table init: the image holds ~100 KiB of metadata) into templates/, and
each task gets a sparse copy of it (SEEK_DATA/SEEK_HOLE, under a ms). The loop device is set up
with LOOP_CONFIGURE and autoclear, and the file is unlinked once attached: unmounting the
filesystem frees the device and the space, so there is nothing else to clean up.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import fcntl
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..port.errors import StorageError
from .libc import (
    MNT_DETACH,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MS_NODEV,
    MS_NOSUID,
    attach,
    lift_fd,
    mount_detached,
    try_mount,
    umount2,
)

log = logging.getLogger("fargo.storage")
DEFAULT_GIB = 20
MAX_GIB = 200

_LOOP_CTL_GET_FREE = 0x4C82
_LOOP_CONFIGURE = 0x4C0A
_LO_FLAGS_AUTOCLEAR = 4
_LO_FLAGS_DIRECT_IO = 16

class _LoopInfo64(ctypes.Structure):
    _fields_ = [("lo_device", ctypes.c_uint64), ("lo_inode", ctypes.c_uint64),
                ("lo_rdevice", ctypes.c_uint64), ("lo_offset", ctypes.c_uint64),
                ("lo_sizelimit", ctypes.c_uint64), ("lo_number", ctypes.c_uint32),
                ("lo_encrypt_type", ctypes.c_uint32), ("lo_encrypt_key_size", ctypes.c_uint32),
                ("lo_flags", ctypes.c_uint32), ("lo_file_name", ctypes.c_uint8 * 64),
                ("lo_crypt_name", ctypes.c_uint8 * 64), ("lo_encrypt_key", ctypes.c_uint8 * 32),
                ("lo_init", ctypes.c_uint64 * 2)]


class _LoopConfig(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_uint32), ("block_size", ctypes.c_uint32),
                ("info", _LoopInfo64), ("reserved", ctypes.c_uint64 * 8)]


def _here(step: Callable[[], int]) -> int:
    return step()


_THERE = -1  # place(): the target has a filesystem already


class TaskStorage:
    """Per-task filesystems under root (templates/, and tasks' image files while attaching).

    With warm(), a few fresh filesystems of the default size wait ready (their files already
    unlinked): mounted but attached nowhere, so no mount table lists them and a task's start
    only moves one into place (the mount itself waits on the loop device: its superblock
    read and write). A background thread makes the next. Nothing else is kept idle: an unused
    one unmounts itself and frees its device when its fd closes, at close() or when the
    process ends. Where the kernel lacks the new mount API they wait attached to their loop
    device and the start mounts them."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._ready: list[_Ready] = []  # fresh DEFAULT_GIB systems
        self._want = 0
        self._refill = threading.Event()
        self._closed = False

    def warm(self, count: int) -> None:
        """Keep `count` fresh default-size filesystems attached and ready (0: none)."""
        self._want = max(0, count)
        if self._want:
            threading.Thread(target=self._refill_loop, name="fargo-storage", daemon=True).start()
            self._refill.set()

    def close(self) -> None:
        self._closed = True
        self._refill.set()
        with self._lock:
            ready, self._ready = self._ready, []
        for made in ready:
            os.close(made.fd)

    def _refill_loop(self) -> None:
        # The next filesystem is made between starts (refill), or beside the starts that came
        # faster than it: at idle priority, so its copy and loop set-up take what the starts
        # leave of the CPUs.
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # this thread only
        while not self._closed:
            self._refill.wait()
            self._refill.clear()
            while not self._closed and len(self._ready) < self._want:
                try:
                    made = _premount(*self._fresh_device("warm", DEFAULT_GIB))
                except Exception:  # noqa: BLE001 - starts fall back to making their own
                    log.exception("preparing a task filesystem (retrying in 10 s)")
                    self._refill.wait(10.0)  # a take or a close wakes it sooner
                    self._refill.clear()  # or a take's wake-up would turn this into a spin
                    continue
                with self._lock:
                    if self._closed:
                        os.close(made.fd)
                        return
                    self._ready.append(made)

    def _take_ready(self, size_gib: int) -> _Ready | None:
        if size_gib != DEFAULT_GIB:
            return None
        with self._lock:
            made = self._ready.pop() if self._ready else None
        if made is None:
            self.refill()  # behind (or failing to fill): the next is made now
        return made

    def refill(self) -> None:
        """Have the ready filesystems made up to their count. Asked once a start is done
        (HostRuntime.start_container) rather than as it takes one: made during the start,
        at idle priority still, the copy, loop device and mount slowed its runc."""
        if self._want:
            self._refill.set()

    def _fresh_device(self, name: str, size_gib: int) -> tuple[str, int]:
        """A sparse copy of the size's template on a loop device: (device, its fd)."""
        image = self.root / "tasks" / f"{name}-{threading.get_ident()}-{time.monotonic_ns()}.img"
        image.parent.mkdir(parents=True, exist_ok=True)
        try:
            _sparse_copy(self._template(size_gib), image)  # inside: a full disk leaves no file
            return _attach(image)
        finally:
            # The loop device holds the file open: it lives exactly as long as the device.
            image.unlink(missing_ok=True)

    def mount(self, task_id: str, size_gib: int, target: Path,
              there: Callable[[Callable[[], int]], int] = _here) -> None:
        """Mount a fresh, empty filesystem of size_gib GiB at target (made if missing).
        there runs the step that names target, in the mount namespace target is in (the
        holder's: agent/holder.py); the filesystem is made here."""
        if not 1 <= size_gib <= MAX_GIB:
            raise StorageError(f"ephemeral storage of {size_gib} GiB is out of range")
        made = self._take_ready(size_gib) or _Ready(*self._fresh_device(task_id, size_gib))

        def place() -> int:
            target.mkdir(parents=True, exist_ok=True)
            if os.path.ismount(target):
                return _THERE  # a retried start: the task's filesystem is there already
            if made.mounted:
                return attach(made.fd, target)
            _mount(made.device, target)
            return 0

        try:
            err = there(place)
        except BaseException:
            if not made.mounted:
                _detach(made.fd)
            raise
        finally:
            # Attached, the mount holds the filesystem (and autoclear, at the device's last
            # close, now waits for the mount); not attached, it goes with this fd.
            os.close(made.fd)
        if err and err != _THERE:
            raise StorageError(f"mounting {made.device} at {target}: {os.strerror(err)}")

    @staticmethod
    def unmount(target: Path, there: Callable[[Callable[[], int]], int] = _here) -> None:
        """Drop the task's filesystem (lazily if something still holds it). Idempotent."""
        def drop() -> int:
            if os.path.ismount(target) and umount2(target) == errno.EBUSY:
                return umount2(target, MNT_DETACH)
            return 0

        there(drop)

    def _template(self, size_gib: int) -> Path:
        # "-5": made with the options below; templates of older servers are not reused.
        path = self.root / "templates" / f"{size_gib}-5.img"
        with self._lock:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                # Older servers' templates of this size go (tasks hold copies, not these).
                for old in [*path.parent.glob(f"{size_gib}.img"),
                            *path.parent.glob(f"{size_gib}-*.img")]:
                    old.unlink(missing_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.unlink(missing_ok=True)
                # -m 0: no root reserve, the task gets its whole size. No resize inode (a
                # task's filesystem never grows) and lazy init: a few hundred KiB of metadata
                # to copy per task instead of several MB (the copy and the loop set-up then
                # take a third of the time). No journal: the filesystem ends with its task and
                # no crash leaves it to recover, and without one a mount makes no jbd2 thread.
                # Two backup superblocks (sparse_super2) and 32 groups' metadata per flex
                # group (-G): the image's data is then 10 extents, not 24, so a copy takes
                # fewer seeks and copies (each a syscall beside a start's threads). Not all
                # groups' in one (5 extents): their inode tables then fill the first groups,
                # and the first allocation (a start's first mkdir) read and scanned dozens of
                # bitmaps to get past them: 1.8 ms of CPU against 0.5, for 0.2 ms saved in
                # the copy.
                proc = subprocess.run(
                    ["mkfs.ext4", "-q", "-F", "-m", "0", "-G", "32",
                     "-O", "^resize_inode,^has_journal,sparse_super2",
                     "-E", "lazy_itable_init=1,nodiscard", str(tmp),
                     f"{size_gib}G"], capture_output=True, text=True)
                if proc.returncode != 0:
                    tmp.unlink(missing_ok=True)
                    raise StorageError(f"mkfs.ext4: {proc.stderr.strip()}")
                os.replace(tmp, path)
        return path


@dataclasses.dataclass(frozen=True)
class _Ready:
    """A fresh filesystem: fd is its loop device's, or once mounted (detached) its mount's."""
    device: str
    fd: int
    mounted: bool = False


def _premount(device: str, dev_fd: int) -> _Ready:
    """The filesystem on device mounted nowhere yet, holding the device (its fd closed); as
    it was (attached only) where the kernel cannot."""
    for options in _OPTIONS:
        try:
            fd = mount_detached("ext4", device, options.split(","),
                                MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
        except OSError as e:
            if e.errno == errno.EINVAL:
                continue
            if e.errno in (errno.ENOSYS, errno.EPERM):
                return _Ready(device, dev_fd)  # no new mount API: mounted at the start
            _detach(dev_fd)
            os.close(dev_fd)
            raise StorageError(f"mounting {device}: {e.strerror}") from e
        os.close(dev_fd)  # autoclear now waits for the mount
        _warm_allocator(fd)
        return _Ready(device, lift_fd(fd), mounted=True)
    return _Ready(device, dev_fd)


def _warm_allocator(root_fd: int) -> None:
    """Make and drop a directory in a fresh filesystem, so the start's first mkdir there (a
    container's directory) finds the group's bitmaps and inode table block already read from
    the loop device: ~0.5 ms on the start's path otherwise, paid here, off it."""
    with contextlib.suppress(OSError):  # only a warm-up: the start makes what it needs
        os.mkdir(".warm", 0o700, dir_fd=root_fd)
        os.rmdir(".warm", dir_fd=root_fd)


def _sparse_copy(src: Path, dst: Path) -> None:
    """Copy only src's data extents; the holes stay holes."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        size = os.fstat(fin.fileno()).st_size
        os.ftruncate(fout.fileno(), size)
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fin.fileno(), pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break  # only a hole is left
                raise
            end = os.lseek(fin.fileno(), start, os.SEEK_HOLE)
            offset = start
            while offset < end:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), end - offset, offset, offset)
                if n <= 0:
                    raise StorageError(f"short copy of {src}")
                offset += n
            pos = end


def _attach(image: Path) -> tuple[str, int]:
    """A free loop device backed by image, and an open fd of it; the device detaches itself
    when the last holder (fd or mount) lets go."""
    fd = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
        try:
            for _ in range(20):
                number = fcntl.ioctl(ctl, _LOOP_CTL_GET_FREE)
                device = f"/dev/loop{number}"
                # Direct I/O keeps the task's data out of the host's page cache a second time.
                for flags in (_LO_FLAGS_AUTOCLEAR | _LO_FLAGS_DIRECT_IO, _LO_FLAGS_AUTOCLEAR):
                    config = _LoopConfig(fd=fd, block_size=4096)
                    config.info.lo_flags = flags
                    try:
                        dev_fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
                    except FileNotFoundError:
                        time.sleep(0.001)  # udev-less hosts: the node appears a moment later
                        break
                    try:
                        fcntl.ioctl(dev_fd, _LOOP_CONFIGURE, bytes(config))
                        return device, dev_fd
                    except OSError as e:
                        os.close(dev_fd)
                        if e.errno == errno.EBUSY:
                            break  # another thread took this device: ask for a new one
                        if e.errno != errno.EINVAL:
                            raise
            raise StorageError("no free loop device")
        finally:
            os.close(ctl)
    finally:
        os.close(fd)


def _detach(dev_fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(dev_fd, 0x4C01)  # LOOP_CLR_FD


# discard: blocks freed in the task go back to the host as holes in the sparse file.
# noinit_itable: no kernel thread zeroing the fresh filesystem's inode tables behind it
# (CPU and I/O per task, for an fsck nobody runs on a filesystem that dies with the task);
# no_prefetch_block_bitmaps: nor one reading every block bitmap through the loop device
# after the mount (allocation reads the few it needs when it needs them).
# Kernels before 5.9 lack the last one of the first set.
_OPTIONS = ("discard,noinit_itable,no_prefetch_block_bitmaps", "discard,noinit_itable")


def _mount(device: str, target: Path) -> None:
    for options in _OPTIONS:
        err = try_mount(device, target, "ext4", MS_NOSUID | MS_NODEV, options)
        if not err:
            return
        if err != errno.EINVAL:
            break
    raise StorageError(f"mounting {device} at {target}: {os.strerror(err)}")
