"""The host mounts the runtime makes for itself: a tmpfs for its small, short-lived files, a
flat bind of sysfs for containers to bind, and rootfs binds where runc can reach them."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from ..port.errors import SandboxError
from .libc import (
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOSUID,
    MS_PRIVATE,
    MS_REC,
    TMPFS_MAGIC,
    fs_type,
    mount,
    umount2,
)

RUNTIME_TMPFS_MIB = 256  # runtime files of a few hundred tasks take a few MiB
_FLAT_SYSFS_LOCK = threading.Lock()


def on_tmpfs(path: Path) -> bool:
    return fs_type(path) == TMPFS_MAGIC


def mount_tmpfs(path: Path) -> bool:
    """Give path a tmpfs of its own (made if missing), unless it is on one already or holds
    files (a server that ran before left them on disk: they stay as they were). True when
    it mounted one."""
    path.mkdir(mode=0o711, parents=True, exist_ok=True)
    if on_tmpfs(path) or any(path.iterdir()):
        return False
    mount("fargo-run", path, "tmpfs", MS_NOSUID | MS_NODEV,
          f"mode=0711,size={RUNTIME_TMPFS_MIB}m", what=f"mounting a tmpfs at {path}",
          error=SandboxError)
    return True


def remove_if_empty(path: Path) -> None:
    """rmdir path once empty, unmounting first the tmpfs mount_tmpfs may have put there;
    a path that still holds something (another server's tasks) stays."""
    with contextlib.suppress(OSError):
        if os.path.ismount(path) and not any(path.iterdir()):
            umount2(path, MNT_DETACH)
        path.rmdir()


def flat_sysfs(path: Path) -> str:
    """A bind of sysfs alone (none of the mounts below /sys) at path, made once."""
    with _FLAT_SYSFS_LOCK:
        if not os.path.ismount(path):
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
            mount("/sys", path, None, MS_BIND, what=f"binding /sys at {path}",
                  error=SandboxError)
            # Private: nothing mounted here later spreads to other namespaces, or back.
            # (Where /run is a shared mount, its peers got a copy of the bind as it was
            # made: one per server start, as with the netns and rootfs binds there.)
            try:
                mount(None, path, None, MS_PRIVATE, what=f"making {path} private",
                      error=SandboxError)
            except SandboxError:
                umount2(path, MNT_DETACH)
                raise
    return str(path)


def drop_flat_sysfs(path: Path) -> None:
    if os.path.ismount(path):
        umount2(path, MNT_DETACH)
    with contextlib.suppress(OSError):
        path.rmdir()


def bind_rootfs(target: Path, rootfs: Path) -> Path:
    """Bind a rootfs mounted elsewhere at target (a fresh directory), for runc to mount."""
    unbind(target)
    target.mkdir(mode=0o700)
    try:
        mount(rootfs.resolve(), target, None, MS_BIND | MS_REC,
              what=f"bind-mounting rootfs {rootfs}", error=SandboxError)
    except SandboxError:
        target.rmdir()
        raise
    return target


def unbind(target: Path) -> None:
    """Detach whatever is mounted at target (nothing is fine), then drop the directory.
    rmdir, never rmtree: if the unmount failed we must not recurse into a rootfs."""
    umount2(target, MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        target.rmdir()
