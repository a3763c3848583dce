"""The C library, loaded once for every module of the agent that makes a system call Python
does not wrap (mount, umount2, unshare, setns, statfs, mount_setattr, ...)."""

from __future__ import annotations

import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)


def errno_message(what: str) -> str:
    """`what: <strerror of the last errno>`, read right after a failed call."""
    err = ctypes.get_errno()
    return f"{what}: {os.strerror(err)}"


def last_errno() -> int:
    return ctypes.get_errno()
