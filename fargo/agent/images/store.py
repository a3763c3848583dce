"""The images of one host as the agent uses them: pull, resolve locally, import an archive,
mount and unmount a rootfs."""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...port.data import Image
from ...port.errors import InvalidSpec, PullError
from .archive import import_archive
from .client import AuthCache, Credentials, RegistryClient
from .content import ContentStore
from .manifest import INDEX_TYPES, MANIFEST_TYPES, media_type, select_platform, well_formed
from .reference import ImageRef
from .rootfs import RootfsMounter


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.content = ContentStore(root)
        self.root = self.content.root
        self.layers_dir = self.content.layers_dir
        self.tmp = self.content.tmp
        self.blob_downloads = 0  # network blob fetches, for tests and metrics
        self._downloads_lock = threading.Lock()
        self._auth = AuthCache()
        self._rootfs = RootfsMounter(self.content)

    # -- public API --

    def pull(self, ref: str, credentials: Credentials | None = None) -> Image:
        """Resolve ref against its registry and make sure every layer is extracted locally.

        Names created by import_archive resolve locally and never touch a registry. Pulls
        that overlap are merged above this, by the task engine (control/tasks/pulls.py): the
        one place that de-duplicates them."""
        return self._pull(ref, credentials)

    def resolve(self, ref: str) -> Image | None:
        """The locally known image for ref (imported or pulled before), without any network."""
        parsed = self._parse(ref)
        if parsed.is_digest:
            return self.content.load(ref, parsed.reference)
        entry = self.content.refs().get(str(parsed))
        return self.content.load(ref, entry["digest"]) if entry else None

    def import_archive(self, archive: Path, name: str) -> Image:
        """Import a `docker save` tar or an OCI image-layout tar and name it `name`."""
        parsed = self._parse(name)
        digest = import_archive(self.content, archive, str(parsed))
        self.content.record(str(parsed), digest, "import")
        image = self.content.load(name, digest)
        assert image is not None
        return image

    def mount_rootfs(self, image: Image, workdir: Path, id_base: int | None = None,
                     target: Path | None = None,
                     workdir_mount: Callable[[], int] | None = None) -> Path:
        """See RootfsMounter.mount: image's layers under a fresh writable layer."""
        return self._rootfs.mount(image, workdir, id_base, target, workdir_mount)

    def unmount_rootfs(self, workdir: Path, target: Path | None = None) -> None:
        """See RootfsMounter.unmount: idempotent, lazy if busy."""
        self._rootfs.unmount(workdir, target)

    # -- pulling --

    def _parse(self, ref: str) -> ImageRef:
        try:
            return ImageRef.parse(ref)
        except InvalidSpec as exc:
            raise PullError(f"invalid reference format: {ref!r}") from exc

    def _pull(self, ref: str, credentials: Credentials | None) -> Image:
        parsed = self._parse(ref)
        entry = self.content.refs().get(str(parsed))
        if entry and entry.get("source") == "import":
            image = self.content.load(ref, entry["digest"])
            if image:
                return image
        image = self._pull_remote(RegistryClient(parsed, ref, credentials, self._auth), ref)
        self.content.record(str(parsed), image.digest, "pull")
        return image

    def _pull_remote(self, client: RegistryClient, shown: str) -> Image:
        top_digest, doc, media = self._fetch_manifest(client, client.ref.reference)
        if media in INDEX_TYPES:
            child = select_platform(doc, shown)
            _, doc, media = self._fetch_manifest(client, child)
        if media not in MANIFEST_TYPES:
            raise PullError(f"failed to pull {shown}: unsupported manifest type {media!r}")
        if not well_formed(doc):
            raise PullError(f"failed to pull {shown}: malformed image manifest")
        self._ensure_blob(client, doc["config"]["digest"])
        for layer in doc.get("layers", []):
            self._ensure_layer(client, layer["digest"])
        image = self.content.load(shown, top_digest)
        if image is None:
            raise PullError(f"failed to pull {shown}: image incomplete after pull")
        return image

    def _fetch_manifest(
        self, client: RegistryClient, reference: str
    ) -> tuple[str, dict[str, Any], str]:
        got = client.manifest(reference)
        try:
            doc: dict[str, Any] = json.loads(got.body)
        except ValueError as exc:
            raise PullError(f"failed to pull {client.shown}: manifest is not JSON") from exc
        media = media_type(doc, got.content_type)
        self.content.write_blob_bytes(got.digest, got.body)
        return got.digest, doc, media

    def _ensure_blob(self, client: RegistryClient, digest: str) -> None:
        dest = self.content.blob_path(digest)
        if dest.exists():
            return
        with self.content.lock(digest):
            if not dest.exists():
                self._download(client, digest, dest)

    def _ensure_layer(self, client: RegistryClient, digest: str) -> None:
        dest = self.content.layer_path(digest)
        if dest.exists():
            return
        with self.content.lock(digest):
            if dest.exists():  # another thread finished it while we waited
                return
            with tempfile.TemporaryDirectory(dir=self.tmp, prefix="layer-") as tmp:
                blob = Path(tmp) / "blob"
                self._download(client, digest, blob)
                self.content.install_layer(blob, digest, client.shown)

    def _download(self, client: RegistryClient, digest: str, dest: Path) -> None:
        client.download_blob(digest, dest, self.tmp)
        with self._downloads_lock:
            self.blob_downloads += 1
