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


# The new mount API (Linux 5.2); these numbers are the same on every architecture.
_SYS_MOVE_MOUNT, _SYS_FSOPEN, _SYS_FSCONFIG, _SYS_FSMOUNT = 429, 430, 431, 432
_FSCONFIG_SET_FLAG, _FSCONFIG_SET_STRING, _FSCONFIG_CMD_CREATE = 0, 1, 6
_CLOEXEC = 1  # FSOPEN_CLOEXEC, FSMOUNT_CLOEXEC
_MOVE_MOUNT_F_EMPTY_PATH = 4
MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x2, 0x4


def mount_detached(fstype: str, source: str, options: list[str], attrs: int) -> int:
    """A filesystem mounted nowhere yet (fsopen, fsconfig, fsmount): the fd of its mount,
    which attach() puts in place. Until then no mount table lists it, and closing the fd
    unmounts it, also when the process dies. options are flag options ("discard"); raises
    OSError (EINVAL for an option the filesystem does not know, ENOSYS on old kernels)."""
    fs = libc.syscall(_SYS_FSOPEN, os.fsencode(fstype), _CLOEXEC)
    if fs < 0:
        raise OSError(last_errno(), f"fsopen {fstype}: {os.strerror(last_errno())}")
    try:
        steps: list[tuple[int, bytes | None, bytes | None]] = [
            (_FSCONFIG_SET_STRING, b"source", os.fsencode(source))]
        steps += [(_FSCONFIG_SET_FLAG, os.fsencode(o), None) for o in options]
        steps.append((_FSCONFIG_CMD_CREATE, None, None))
        for cmd, key, value in steps:
            if libc.syscall(_SYS_FSCONFIG, fs, cmd, key, value, 0) < 0:
                err = last_errno()
                raise OSError(err, f"fsconfig {fstype} {key!r}: {os.strerror(err)}")
        fd = libc.syscall(_SYS_FSMOUNT, fs, _CLOEXEC, attrs)
        if fd < 0:
            raise OSError(last_errno(), f"fsmount {fstype}: {os.strerror(last_errno())}")
        return int(fd)
    finally:
        os.close(fs)


def attach(mount_fd: int, target: PathLike) -> int:
    """move_mount(2) of a detached mount's fd onto target: 0 when done, else the errno."""
    if libc.syscall(_SYS_MOVE_MOUNT, mount_fd, b"", -100, _c(target),
                    _MOVE_MOUNT_F_EMPTY_PATH) == 0:
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
