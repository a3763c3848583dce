"""The content-addressed store on disk: verified blobs, extracted layers, and the names it
knows. Writers go through tmp/ and a rename, so a reader only ever sees complete entries;
per-digest locks keep two threads from fetching or extracting the same thing at once.

    blobs/sha256/<hex>   verified manifests and configs (layer blobs are dropped once extracted)
    layers/<hex>/        one extracted layer per layer-blob digest, whiteouts in overlayfs form
    refs.json            names this store knows: imported ones resolve without a registry
    tmp/                 downloads and extractions in progress; renamed into place when complete
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from ...port.data import Image
from ...port.errors import PullError
from .layers import LayerError, extract_layer
from .manifest import INDEX_TYPES, media_type, select_platform, well_formed
from .reference import digest_hex

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


_CACHED_BLOBS = 256  # manifests, indexes and configs: a few KiB each
_CACHED_BLOB_MAX = 1 << 20


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"
        self.layers_dir = self.root / "layers"
        self.tmp = self.root / "tmp"
        for d in (self.blobs, self.layers_dir, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self.refs_file = self.root / "refs.json"
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._refs_lock = threading.Lock()
        # Blobs are named by their content's digest and never rewritten: one read serves
        # every later start from the same image (each start loads its image again).
        self._blob_cache: dict[str, bytes] = {}
        # refs.json as last read, by the file's identity (another process may replace it).
        self._refs_seen: tuple[tuple[int, int, int], dict[str, dict[str, str]]] | None = None

    def lock(self, digest: str) -> threading.Lock:
        """The one lock for digest: held while its blob or layer is being made."""
        with self._locks_guard:
            return self._locks.setdefault(digest, threading.Lock())

    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest_hex(digest)

    def layer_path(self, digest: str) -> Path:
        return self.layers_dir / digest_hex(digest)

    # -- blobs and layers --

    def write_blob_bytes(self, digest: str, data: bytes) -> None:
        path = self.blob_path(digest)
        if path.exists():
            return
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp_name, path)

    def read_json_blob(self, digest: str) -> dict[str, Any] | None:
        data = self._blob_cache.get(digest)
        try:
            if data is None:
                data = self.blob_path(digest).read_bytes()
                if len(data) <= _CACHED_BLOB_MAX and len(self._blob_cache) < _CACHED_BLOBS:
                    self._blob_cache[digest] = data
            doc: dict[str, Any] = json.loads(data)  # a fresh copy for each caller
            return doc
        except (FileNotFoundError, ValueError):
            return None

    def install_layer(self, blob: Path, digest: str, shown: str) -> None:
        """Extract a layer blob into layers/<hex>; the caller holds the digest's lock."""
        dest = self.layer_path(digest)
        staging = Path(tempfile.mkdtemp(dir=self.tmp, prefix="extract-"))
        try:
            extract_layer(blob, staging)
            os.chmod(staging, 0o755)
            try:
                os.rename(staging, dest)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                # Another process installed the same layer first; its copy is as good.
        except LayerError as exc:
            raise PullError(f"failed to pull {shown}: {exc}") from exc
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def import_blob(self, src: Path, digest: str) -> None:
        """Copy a local file in as a blob, after checking it is what its digest says."""
        if sha256_file(src) != digest:
            raise PullError(f"archive blob {digest} does not match its digest")
        dest = self.blob_path(digest)
        if not dest.exists():
            tmp = self.tmp / f"import-{digest_hex(digest)}-{os.getpid()}-{threading.get_ident()}"
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)

    def import_layer(self, src: Path, digest: str, shown: str) -> None:
        """Extract a local layer file, after checking it is what its digest says."""
        if self.layer_path(digest).exists():
            return
        if sha256_file(src) != digest:
            raise PullError(f"archive layer {digest} does not match its digest")
        with self.lock(digest):
            if not self.layer_path(digest).exists():
                self.install_layer(src, digest, shown)

    def empty_layer(self) -> Path:
        """A lower dir for an image of no layers: overlayfs needs at least one."""
        empty = self.root / "empty-layer"
        empty.mkdir(exist_ok=True)
        return empty

    def load(self, shown: str, digest: str) -> Image | None:
        """Assemble an Image from local blobs and layers; None if anything is missing."""
        doc = self.read_json_blob(digest)
        if doc is not None and media_type(doc) in INDEX_TYPES:
            try:
                doc = self.read_json_blob(select_platform(doc, shown))
            except (PullError, KeyError):
                return None
        if doc is None or not well_formed(doc):
            return None
        config = self.read_json_blob(doc["config"]["digest"])
        layers = [self.layer_path(layer["digest"]) for layer in doc.get("layers", [])]
        if config is None or not all(p.is_dir() for p in layers):
            return None
        return Image(ref=shown, digest=digest, config=config.get("config") or {}, layers=layers)

    # -- names --

    def refs(self) -> dict[str, dict[str, str]]:
        """name -> {"digest", "source": "pull" | "import"}, as last written."""
        try:
            st = os.stat(self.refs_file)
            seen = self._refs_seen
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            if seen is None or seen[0] != key:
                refs: dict[str, dict[str, str]] = json.loads(self.refs_file.read_text())
                seen = self._refs_seen = (key, refs)
            return {name: dict(entry) for name, entry in seen[1].items()}  # callers' own
        except (FileNotFoundError, ValueError):
            return {}

    def record(self, name: str, digest: str, source: str) -> None:
        with self._refs_lock:
            refs = self.refs()
            if refs.get(name, {}).get("source") == "import" and source == "pull":
                return  # a local import stays authoritative for its name
            if refs.get(name) == {"digest": digest, "source": source}:
                return  # unchanged (a tag pulled again): no rewrite
            refs[name] = {"digest": digest, "source": source}
            # A unique temp name: `fargo image import` may write while the server pulls.
            fd, tmp = tempfile.mkstemp(dir=self.tmp, prefix="refs-")
            with os.fdopen(fd, "w") as out:
                json.dump(refs, out, indent=1, sort_keys=True)
            os.replace(tmp, self.refs_file)
            self._refs_seen = None  # read again next time: a stat alone cannot tell writes
            # within one clock tick apart
