"""Layer tar extraction: safe against traversal, whiteouts converted to overlayfs form."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import stat
import tarfile
import zlib
from pathlib import Path

from ...port.errors import ImageError

CHUNK = 1 << 20

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class LayerError(ImageError):
    """A layer archive is unsafe or unreadable."""


def _open_layer(path: Path) -> io.BufferedIOBase:
    """Open a layer blob for streaming tar reading; compression is sniffed from magic bytes."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if magic == _ZSTD_MAGIC:
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError as exc:
            raise LayerError("zstd-compressed layers need the zstandard module") from exc
        reader: io.BufferedIOBase = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))
        return reader
    return open(path, "rb")


def _safe_name(name: str) -> str:
    """The member path relative to the layer root; refuses absolute paths and '..'."""
    if name.startswith("/"):
        raise LayerError(f"absolute path in layer: {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerError(f"path traversal in layer: {name!r}")
    return "/".join(parts)


class Extractor:
    """Writes tar members under dest without ever following a symlink from the archive."""

    def __init__(self, dest: Path, whiteouts: bool) -> None:
        self.dest = dest
        self.whiteouts = whiteouts
        self.known_dirs: set[str] = {""}
        self.dir_meta: list[tuple[Path, tarfile.TarInfo]] = []

    def run(self, tar: tarfile.TarFile) -> None:
        for member in tar:
            self.member(tar, member)
        # Directory times and modes last: adding children would change the mtime again.
        for path, member in reversed(self.dir_meta):
            self._set_meta(path, member)

    def _parent(self, rel: str) -> Path:
        """Make sure every parent of rel is a real directory inside dest (never a symlink)."""
        parts = rel.split("/")[:-1]
        for i in range(len(parts)):
            sub = "/".join(parts[: i + 1])
            if sub in self.known_dirs:
                continue
            path = self.dest / sub
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
            else:
                if not stat.S_ISDIR(st.st_mode):
                    raise LayerError(f"layer path {rel!r} goes through a non-directory")
            self.known_dirs.add(sub)
        return self.dest.joinpath(*parts) if parts else self.dest

    def member(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = _safe_name(m.name)
        if not rel:
            return  # the root entry "./" carries nothing we keep
        parent = self._parent(rel)
        base = rel.rsplit("/", 1)[-1]
        if self.whiteouts and base.startswith(WHITEOUT):
            self._whiteout(parent, rel)
            return
        path = parent / base
        if not (m.isdir() and self._is_dir(path)):
            self._remove(path, rel)
        if m.isdir():
            if not self._is_dir(path):
                os.mkdir(path, 0o700)
            self.known_dirs.add(rel)
            self.dir_meta.append((path, m))
            return
        self._create(tar, m, path)
        if not m.islnk():
            self._set_meta(path, m)

    def _whiteout(self, parent: Path, rel: str) -> None:
        head, _, base = rel.rpartition("/")
        if base == OPAQUE:
            os.setxattr(parent, "trusted.overlay.opaque", b"y")
            return
        if base.startswith(WHITEOUT + WHITEOUT):
            return  # other ".wh..wh." entries are aufs bookkeeping (e.g. .wh..wh.plnk)
        name = base[len(WHITEOUT) :]
        self._remove(parent / name, f"{head}/{name}" if head else name)
        os.mknod(parent / name, stat.S_IFCHR | 0o000, os.makedev(0, 0))

    def _create(self, tar: tarfile.TarFile, m: tarfile.TarInfo, path: Path) -> None:
        if m.isreg():
            src = tar.extractfile(m)
            assert src is not None
            with src, open(path, "xb") as out:
                shutil.copyfileobj(src, out, CHUNK)
        elif m.issym():
            os.symlink(m.linkname, path)
        elif m.islnk():
            os.link(self._link_target(m), path, follow_symlinks=False)
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(path, kind | (m.mode & 0o7777), os.makedev(m.devmajor, m.devminor))
        elif m.isfifo():
            os.mkfifo(path, m.mode & 0o7777)
        else:
            raise LayerError(f"unsupported tar member type for {m.name!r}")

    def _link_target(self, m: tarfile.TarInfo) -> Path:
        """A hard link's target: an earlier non-directory of this layer, reached without symlinks."""
        rel = _safe_name(m.linkname)
        parts = rel.split("/")
        for i in range(1, len(parts)):
            if not self._is_dir(self.dest.joinpath(*parts[:i])):
                raise LayerError(f"hard link {m.name!r} to {m.linkname!r} leaves the layer")
        target = self.dest / rel
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            raise LayerError(f"hard link {m.name!r} to missing {m.linkname!r}") from None
        if not rel or stat.S_ISDIR(st.st_mode):
            raise LayerError(f"hard link {m.name!r} to a directory")
        return target

    @staticmethod
    def _is_dir(path: Path) -> bool:
        try:
            return stat.S_ISDIR(os.lstat(path).st_mode)
        except FileNotFoundError:
            return False

    def _remove(self, path: Path, rel: str) -> None:
        """A later entry replaces an earlier one with the same name."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
            gone = rel + "/"
            self.known_dirs = {d for d in self.known_dirs if d != rel and not d.startswith(gone)}
        else:
            os.unlink(path)

    @staticmethod
    def _set_meta(path: Path, m: tarfile.TarInfo) -> None:
        os.lchown(path, m.uid, m.gid)
        if not m.issym():
            os.chmod(path, m.mode & 0o7777)  # after chown, which clears setuid bits
        for key, value in m.pax_headers.items():
            if key.startswith("SCHILY.xattr.") and not key.startswith("SCHILY.xattr.trusted."):
                with contextlib.suppress(OSError):
                    raw = value.encode("utf-8", "surrogateescape")
                    os.setxattr(path, key[len("SCHILY.xattr.") :], raw, follow_symlinks=False)
        os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)


def extract_layer(blob: Path, dest: Path, *, whiteouts: bool = True) -> None:
    """Extract a (possibly compressed) layer tar into the empty directory dest.

    With whiteouts, OCI whiteout entries become overlayfs ones: ".wh.NAME" a 0:0 character
    device NAME, ".wh..wh..opq" the trusted.overlay.opaque=y xattr on its directory.
    """
    stream = _open_layer(blob)
    try:
        with stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            Extractor(dest, whiteouts).run(tar)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise LayerError(f"cannot extract layer {blob.name}: {exc}") from exc
