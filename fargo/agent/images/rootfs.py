"""A container's root filesystem: its image's shared layers, read-only, under a writable
layer of its own, as one overlay mount; for a task in a user namespace the layers are seen
through idmapped mounts so the mapped root owns what it reads."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ...port.data import Image
from ...port.errors import RootfsError
from .. import userns
from ..libc import MNT_DETACH, mount, umount2
from .content import ContentStore

MAX_OPTIONS = 4000  # the kernel takes one page of mount data


class RootfsMounter:
    def __init__(self, content: ContentStore) -> None:
        self.content = content

    def mount(self, image: Image, workdir: Path, id_base: int | None = None,
              target: Path | None = None, workdir_mount: Callable[[], int] | None = None
              ) -> Path:
        """Mount image's layers under a fresh writable layer (workdir/upper) at target
        (default workdir/rootfs). workdir_mount, if given, hands back an fd of a detached
        mount of workdir, where the upper and work dirs are then taken from: a workdir in
        another mount namespace (agent/holder.py) is reached by path, but overlayfs takes
        no mount of another namespace for its upper dir.

        With id_base, the rootfs is for a user namespace mapping ids 0..65535 to id_base..:
        the shared layers are seen through idmapped mounts and the writable layer belongs to
        the mapped root, so the container's root owns its files and the host's does not.
        """
        workdir = Path(workdir)
        rootfs = Path(target) if target else workdir / "rootfs"
        if os.path.ismount(rootfs):  # an overlay has a device of its own: a stat, not a scan
            raise RootfsError(f"{rootfs} is already mounted")
        upper, work = workdir / "upper", workdir / "work"
        for d in (rootfs, upper, work):
            d.mkdir(parents=True, exist_ok=True)
        if id_base is not None:
            # The overlay's root directory is the upper dir itself: it must be the mapped root's.
            os.chown(upper, id_base, id_base)
        lowers = [p.resolve() for p in reversed(image.layers)] or [self.content.empty_layer()]
        fds: list[int] = []
        try:
            for layer in lowers:
                fds.append(userns.idmapped_tree(layer, id_base) if id_base is not None
                           else _path_fd(layer))
            if workdir_mount is None:
                up, wk = _path_fd(upper), _path_fd(work)
            else:
                base = workdir_mount()
                fds.append(base)
                up, wk = _path_fd(Path("upper"), base), _path_fd(Path("work"), base)
            fds += [up, wk]
            # Every layer is named by an fd of ours: overlayfs resolves the link at mount time
            # and shows the names as given, so a container reading its mountinfo sees
            # /proc/self/fd/N and nothing of the host's paths (state dir, server pid).
            options = (f"lowerdir={':'.join(_fd_name(fd) for fd in fds[:len(lowers)])},"
                       f"upperdir={_fd_name(up)},workdir={_fd_name(wk)}")
            if len(options) >= MAX_OPTIONS:
                raise RootfsError(f"too many layers to mount ({len(lowers)})")
            mount("overlay", rootfs.resolve(), "overlay", 0, options,
                  what="overlay mount failed", error=RootfsError)
        finally:
            for fd in fds:  # overlayfs holds its own references to the layers
                os.close(fd)
        return rootfs

    def unmount(self, workdir: Path, target: Path | None = None) -> None:
        """Unmount the rootfs at target (default workdir/rootfs; lazily if busy) and drop the
        writable layer. Idempotent."""
        workdir = Path(workdir)
        rootfs = Path(target) if target else workdir / "rootfs"
        if os.path.ismount(rootfs):
            _umount(rootfs)
        for name in ("upper", "work"):
            shutil.rmtree(workdir / name, ignore_errors=True)
        # rmdir, never rmtree: should the unmount have failed we must not recurse into a rootfs.
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(rootfs)


def _path_fd(path: Path, dir_fd: int | None = None) -> int:
    return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)


def _fd_name(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _umount(path: Path) -> None:
    target = path.resolve()
    err = umount2(target, 0)
    if err in (0, errno.EINVAL):
        return  # done, or not mounted after all
    # Busy (a process still has its cwd there): detach now, the kernel frees it later.
    err = umount2(target, MNT_DETACH)
    if err:
        raise RootfsError(f"umount {path}: {os.strerror(err)}")
