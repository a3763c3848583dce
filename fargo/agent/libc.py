"""The C library, loaded once for every module of the agent that makes a system call Python
does not wrap (mount, umount2, unshare, setns, statfs, mount_setattr, ...).

Besides the handle, typed wrappers of the calls several modules make: they take str, bytes
or Path and report failure as an errno (or as the port error the caller names), so no caller
repeats the ctypes plumbing."""

from __future__ import annotations

import ctypes
import fcntl
import os
from pathlib import Path

from ..port.errors import AgentError

libc = ctypes.CDLL(None, use_errno=True)

MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000
MNT_DETACH = 2
TMPFS_MAGIC = 0x01021994

PathLike = str | bytes | Path
FD_SETSIZE = 1024


def lift_fd(fd: int) -> int:
    """fd moved to a descriptor above FD_SETSIZE (the old one closed). What lives as long as a
    task (its listeners, its user namespace) would otherwise take every descriptor below 1024
    once a few hundred tasks run, and C code of this process that still waits with select()
    (libnftables' netlink talk, in each start) aborts the server on a descriptor past 1024:
    the low ones are kept for such short-lived use. fd itself when there is no room above."""
    try:
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, FD_SETSIZE)
    except OSError:  # a low RLIMIT_NOFILE
        return fd
    os.close(fd)
    return moved


def errno_message(what: str) -> str:
    """`what: <strerror of the last errno>`, read right after a failed call."""
    err = ctypes.get_errno()
    return f"{what}: {os.strerror(err)}"


def last_errno() -> int:
    return ctypes.get_errno()


def _c(value: PathLike | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def try_mount(source: PathLike | None, target: PathLike, fstype: str | None, flags: int,
              data: str | None = None) -> int:
    """mount(2): 0 when done, else the errno (for callers that retry on some of them)."""
    if libc.mount(_c(source), _c(target), _c(fstype), flags, _c(data)) == 0:
        return 0
    return ctypes.get_errno()


def mount(source: PathLike | None, target: PathLike, fstype: str | None, flags: int,
          data: str | None = None, *, what: str, error: type[AgentError]) -> None:
    """mount(2), raising `error("<what>: <strerror>")` when refused."""
    err = try_mount(source, target, fstype, flags, data)
    if err:
        raise error(f"{what}: {os.strerror(err)}")


def umount2(target: PathLike, flags: int = 0) -> int:
    """umount2(2): 0 when done, else the errno (nothing mounted there is EINVAL)."""
    if libc.umount2(_c(target), flags) == 0:
        return 0
    return ctypes.get_errno()


class _Statfs(ctypes.Structure):
    # Only f_type is read; the rest of struct statfs (120 bytes on x86-64) is room.
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 112)]


def fs_type(path: PathLike) -> int | None:
    """statfs(2)'s f_type of the filesystem holding path (TMPFS_MAGIC, ...); None on failure."""
    buf = _Statfs()
    if libc.statfs(_c(path), ctypes.byref(buf)) != 0:
        return None
    return int(buf.f_type)
