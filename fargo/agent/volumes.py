"""A task's volumes on this host, shared by its containers.

Each volume is a mount at <task run dir>/.volumes/<name> (a path the task's unprivileged ids
can traverse: runc binds from inside the container's user namespace), owned by the task's
root:

- `scratch`: a directory of the task's ephemeral storage (its own ext4), bound there;
- `memory`: a tmpfs of its own size; its pages are charged to the writer's cgroup, the
  container's, so they count against the task's memory, as kubelet's emptyDir in memory;
- `files`: a small tmpfs whose content control hands in (write), laid out as kubelet's
  atomic writer lays it out: the files under `..<timestamp>/`, `..data` a symlink to it, and
  each top-level name a symlink through `..data`; a new set is written beside the old and
  `..data` swapped by one rename, so a reader sees one set or the other, never a mix.
  Secrets so never touch a disk.

A container's mount of a path inside a volume (subPath) is resolved here, never followed
out of the volume (a symlink a container planted must not lead a later mount to the host):
the resolved object is opened, checked to lie in the volume, and bound from its descriptor
to a staging path of the task's, which runc then binds. A mount of what the image holds at
a path (Docker's VOLUME rule, which ECS bind mounts keep) copies that content into the empty
volume first, resolving the path inside the container's rootfs only."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..port.data import ContainerSpec, VolumeFile, VolumeMount, VolumeSpec
from ..port.errors import SandboxError
from .libc import (
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOSUID,
    MS_PRIVATE,
    attach,
    mount,
    umount2,
)

MS_REMOUNT = 0x20
DATA = "..data"
MIN_FILES_BYTES = 4 << 20  # a files volume's tmpfs; grown when a set needs more
_PAGE = 4096


def _safe_parts(rel: str) -> list[str]:
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if rel.startswith("/") or ".." in parts or not parts:
        raise SandboxError(f"path {rel[:200]!r} leaves its volume")
    return parts


def _private(target: Path) -> None:
    try:
        mount(None, target, None, MS_PRIVATE, what=f"making {target} private",
              error=SandboxError)
    except SandboxError:
        umount2(target, MNT_DETACH)
        raise


def _unmount_all(path: Path) -> None:
    """Detach whatever is mounted at path (stacked mounts too), then drop it."""
    for _ in range(8):
        if umount2(path, MNT_DETACH) != 0:
            break
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
            return
    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
        path.unlink()


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def resolve_in_root(root: Path, rel: str) -> Path:
    """rel resolved as if root were `/` (symlinks, absolute ones too, stay inside root), as
    a chroot would see it; the path need not exist."""
    parts = [p for p in rel.split("/") if p]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        here = root.joinpath(*done, part)
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            done.append(part)
            done += [p for p in parts if p not in (".", "..")]
            break
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > 40:
                raise SandboxError(f"too many symlinks resolving {rel[:200]!r}")
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        done.append(part)
    return root.joinpath(*done)


class TaskVolumes:
    def __init__(self, task_dir: Callable[[str], Path], storage_dir: Callable[[str], Path],
                 storage_mount: Callable[[str, str], Callable[[], int] | None] | None = None):
        """task_dir: a task's runtime directory (traversable by its ids); storage_dir: where
        its ephemeral storage is reached; storage_mount(tid, sub): what hands back a
        detached mount of its directory sub to bind from (None: bound by path), for storage
        mounted in another mount namespace (agent/holder.py)."""
        self.task_dir = task_dir
        self.storage_dir = storage_dir
        self.storage_mount = storage_mount
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def root(self, tid: str) -> Path:
        return self.task_dir(tid) / ".volumes"

    def _staging(self, tid: str) -> Path:
        return self.task_dir(tid) / ".subpaths"

    def _lock(self, tid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(tid, threading.Lock())

    # ---- made with the sandbox
    def make(self, tid: str, specs: tuple[VolumeSpec, ...] | list[VolumeSpec],
             id_base: int) -> None:
        """Each volume mounted at its place (already there: left as it is)."""
        if not specs:
            return
        task_dir = self.task_dir(tid)
        task_dir.chmod(task_dir.stat().st_mode | 0o111)  # traversable, never listable
        root = self.root(tid)
        root.mkdir(mode=0o711, exist_ok=True)
        for spec in specs:
            _safe_parts(spec.name)
            target = root / spec.name
            if os.path.ismount(target):
                continue
            target.mkdir(mode=0o700, exist_ok=True)
            ids = f"uid={id_base},gid={id_base}"
            if spec.kind == "scratch":
                source = self.storage_dir(tid) / ".volumes" / spec.name
                source.mkdir(parents=True, exist_ok=True)
                os.chown(source, id_base, id_base)
                os.chmod(source, spec.mode)
                self._bind_scratch(tid, spec.name, source, target)
            elif spec.kind == "memory":
                size = max(_PAGE, spec.size_bytes or 0)
                mount("fargo-volume", target, "tmpfs", MS_NOSUID | MS_NODEV,
                      f"size={size},mode={spec.mode:o},{ids}",
                      what=f"mounting volume {spec.name}", error=SandboxError)
            elif spec.kind == "files":
                mount("fargo-volume", target, "tmpfs", MS_NOSUID | MS_NODEV,
                      f"size={MIN_FILES_BYTES},mode={spec.mode:o},{ids}",
                      what=f"mounting volume {spec.name}", error=SandboxError)
            else:
                raise SandboxError(f"volume {spec.name}: unknown kind {spec.kind!r}")
            _private(target)

    def _bind_scratch(self, tid: str, name: str, source: Path, target: Path) -> None:
        detached = self.storage_mount(tid, f".volumes/{name}") if self.storage_mount else None
        if detached is None:
            mount(source, target, None, MS_BIND, what=f"binding volume {name}",
                  error=SandboxError)
            return
        fd = detached()
        try:
            err = attach(fd, target)
        finally:
            os.close(fd)
        if err:
            raise SandboxError(f"binding volume {name}: {os.strerror(err)}")

    # ---- a files volume's content
    def write(self, tid: str, name: str, files: list[VolumeFile], id_base: int) -> bool:
        target = self.root(tid) / name
        _safe_parts(name)
        if not os.path.ismount(target):
            raise SandboxError(f"volume {name} of task {tid} does not exist")
        wanted = {"/".join(_safe_parts(f.path)): f for f in files}
        with self._lock(tid):
            if self._current(target) == {p: (f.data, f.mode & 0o7777)
                                         for p, f in wanted.items()}:
                return False
            self._room(target, files)
            stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime())
            new = target / f"..{stamp}.{time.time_ns() % 1_000_000_000:09d}"
            new.mkdir(mode=0o755)
            os.chown(new, id_base, id_base)
            for rel, f in sorted(wanted.items()):
                path = new
                for part in rel.split("/")[:-1]:
                    path = path / part
                    if not path.exists():
                        path.mkdir(mode=0o755)
                        os.chown(path, id_base, id_base)
                fd = os.open(path / rel.split("/")[-1],
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(f.data)
                    os.fchown(out.fileno(), id_base, id_base)
                    os.fchmod(out.fileno(), f.mode & 0o7777)
            tmp = target / "..data_tmp"
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(new.name, tmp)
            os.lchown(tmp, id_base, id_base)
            os.replace(tmp, target / DATA)  # the swap: one rename
            tops = {rel.split("/")[0] for rel in wanted}
            for top in tops:
                link = target / top
                if os.path.islink(link) and os.readlink(link) == f"{DATA}/{top}":
                    continue
                tmp = target / f"..{top}_tmp"
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                os.symlink(f"{DATA}/{top}", tmp)
                os.lchown(tmp, id_base, id_base)
                os.replace(tmp, link)
            for entry in os.listdir(target):
                path = target / entry
                stale = entry not in (DATA, new.name) if entry.startswith("..") else \
                    entry not in tops and path.is_symlink()
                if not stale:
                    continue
                if path.is_symlink() or not path.is_dir():
                    path.unlink()
                else:
                    shutil.rmtree(path, ignore_errors=True)
            return True

    @staticmethod
    def _current(target: Path) -> dict[str, tuple[bytes, int]] | None:
        data = target / DATA
        if not data.is_symlink():
            return None
        base = target / os.readlink(data)
        out = {}
        for dirpath, _, names in os.walk(base):
            for n in names:
                p = Path(dirpath) / n
                st = os.lstat(p)
                if not stat.S_ISREG(st.st_mode):
                    return None
                out[str(p.relative_to(base))] = (p.read_bytes(), st.st_mode & 0o7777)
        return out

    @staticmethod
    def _room(target: Path, files: list[VolumeFile]) -> None:
        """The tmpfs holds the old set and the new one at once: grown when it could not."""
        need = 2 * sum(-(-len(f.data) // _PAGE) * _PAGE + _PAGE for f in files) + (1 << 20)
        st = os.statvfs(target)
        if st.f_blocks * st.f_frsize < need:
            size = max(need, MIN_FILES_BYTES)
            mount(None, target, None, MS_REMOUNT | MS_NOSUID | MS_NODEV, f"size={size}",
                  what=f"growing volume {target.name}", error=SandboxError)

    def usage(self, tid: str, name: str) -> int:
        """A scratch volume's blocks on the task's storage, as du counts them (hard links
        once), never following symlinks."""
        _safe_parts(name)
        base = self.storage_dir(tid) / ".volumes" / name
        total, seen = 0, set()
        for dirpath, dirs, names in os.walk(base):
            for n in [*dirs, *names]:
                try:
                    st = os.lstat(os.path.join(dirpath, n))
                except OSError:
                    continue  # gone meanwhile
                if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
        return total

    # ---- a container's mounts
    def oci_mounts(self, tid: str, spec: ContainerSpec, rootfs: Path,
                   id_base: int) -> list[dict[str, Any]]:
        out = []
        root = self.root(tid)
        for i, m in enumerate(spec.volume_mounts):
            base = root / m.volume
            if not os.path.ismount(base):
                raise SandboxError(f"container {spec.name}: volume {m.volume} does not exist")
            if m.seed:
                self._seed(base, rootfs, m.path)
            source = self._subpath(tid, spec.name, i, base, m, id_base) if m.sub_path else base
            out.append({"destination": m.path, "type": "bind", "source": str(source),
                        "options": ["rbind", "rprivate", "nosuid", "nodev",
                                    "ro" if m.readonly else "rw"]})
        return out

    def _subpath(self, tid: str, container: str, index: int, base: Path, m: VolumeMount,
                 id_base: int) -> Path:
        real_base = os.path.realpath(base)
        parts = _safe_parts(m.sub_path)
        here = real_base
        for part in parts:  # made as directories when missing (kubelet's rule)
            nxt = os.path.realpath(os.path.join(here, part))
            if not _inside(real_base, nxt):
                raise SandboxError(f"subPath {m.sub_path[:200]!r} leads out of volume "
                                   f"{m.volume}")
            if not os.path.lexists(nxt):
                try:
                    os.mkdir(nxt, 0o750)
                    os.chown(nxt, id_base, id_base, follow_symlinks=False)
                except FileExistsError:
                    pass
                except OSError as err:
                    if err.errno != errno.EROFS:
                        raise SandboxError(f"making subPath {m.sub_path[:200]!r}: {err}") \
                            from None
            here = nxt
        fd = os.open(here, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            # What was opened is what is bound: it must still lie in the volume.
            if not _inside(real_base, os.readlink(f"/proc/self/fd/{fd}")):
                raise SandboxError(f"subPath {m.sub_path[:200]!r} leads out of volume "
                                   f"{m.volume}")
            is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
            staging = self._staging(tid)
            staging.mkdir(mode=0o711, exist_ok=True)
            target = staging / f"{container}.{index}"
            _unmount_all(target)  # a re-created container's, from before
            if is_dir:
                target.mkdir(mode=0o700)
            else:
                target.touch(mode=0o600)
            mount(f"/proc/self/fd/{fd}", target, None, MS_BIND,
                  what=f"binding subPath {m.sub_path[:200]!r}", error=SandboxError)
            _private(target)
            return target
        finally:
            os.close(fd)

    @staticmethod
    def _seed(base: Path, rootfs: Path, path: str) -> None:
        """An empty volume takes what the image holds at path, owners and modes kept."""
        if any(os.scandir(base)):
            return
        source = resolve_in_root(rootfs, path)
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            return
        for entry in os.scandir(source):
            src, dst = Path(entry.path), base / entry.name
            if entry.is_dir(follow_symlinks=False):
                shutil.copytree(src, dst, symlinks=True)
            else:
                shutil.copy2(src, dst, follow_symlinks=False)
        for dirpath, dirs, names in os.walk(source):
            for n in [*dirs, *names]:
                s = Path(dirpath) / n
                info = os.lstat(s)
                os.chown(base / s.relative_to(source), info.st_uid, info.st_gid,
                         follow_symlinks=False)
        os.chown(base, st.st_uid, st.st_gid)
        os.chmod(base, stat.S_IMODE(st.st_mode))

    # ---- gone with the sandbox
    def remove(self, tid: str) -> None:
        for path in (self._staging(tid), self.root(tid)):
            if not path.is_dir():
                continue
            for entry in os.listdir(path):
                _unmount_all(path / entry)
            with contextlib.suppress(OSError):
                path.rmdir()
        with self._guard:
            self._locks.pop(tid, None)
