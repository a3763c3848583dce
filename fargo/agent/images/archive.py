"""Image archives for machines without a registry: an OCI image-layout tar, or what
`docker save` writes (which has no manifest of its own, so one is made for it)."""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
from pathlib import Path

from ...port.errors import PullError
from .content import ContentStore, sha256_file
from .layers import Extractor, LayerError
from .manifest import (
    INDEX_TYPES,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
    media_type,
    select_platform,
)
from .reference import digest_hex


def import_archive(content: ContentStore, archive: Path, shown: str) -> str:
    """Load archive's image into content; returns its manifest (or index) digest."""
    with tempfile.TemporaryDirectory(dir=content.tmp, prefix="import-") as tmp:
        unpacked = Path(tmp)
        try:
            with tarfile.open(archive) as tar:
                Extractor(unpacked, whiteouts=False).run(tar)
        except (tarfile.TarError, OSError, LayerError) as exc:
            raise PullError(f"cannot read image archive {archive}: {exc}") from exc
        if (unpacked / "index.json").exists():
            return _import_oci_layout(content, unpacked, shown)
        if (unpacked / "manifest.json").exists():
            return _import_docker_archive(content, unpacked)
        raise PullError(f"{archive} is neither an OCI layout nor a docker save archive")


def _import_oci_layout(content: ContentStore, layout: Path, shown: str) -> str:
    def blob_path(digest: str) -> Path:
        return _inside(layout, layout / "blobs" / "sha256" / digest_hex(digest))

    index = json.loads((layout / "index.json").read_text())
    entries = index.get("manifests", [])
    if not entries:
        raise PullError("OCI archive has no manifests")
    digest = str(entries[0]["digest"])
    doc = json.loads(blob_path(digest).read_bytes())
    content.import_blob(blob_path(digest), digest)
    if media_type(doc) in INDEX_TYPES:
        child = select_platform(doc, shown)
        content.import_blob(blob_path(child), child)
        doc = json.loads(blob_path(child).read_bytes())
    content.import_blob(blob_path(doc["config"]["digest"]), doc["config"]["digest"])
    for layer in doc.get("layers", []):
        content.import_layer(blob_path(layer["digest"]), layer["digest"], shown)
    return digest


def _import_docker_archive(content: ContentStore, unpacked: Path) -> str:
    """`docker save` has no manifest; synthesize an OCI one so the image gets a digest."""
    entries = json.loads((unpacked / "manifest.json").read_text())
    if not entries:
        raise PullError("docker archive has no images")
    entry = entries[0]
    config_path = _inside(unpacked, unpacked / entry["Config"])
    config_digest = sha256_file(config_path)
    content.import_blob(config_path, config_digest)
    layers = []
    for name in entry.get("Layers", []):
        path = _inside(unpacked, unpacked / name)
        digest = sha256_file(path)
        content.import_layer(path, digest, name)
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        media = OCI_LAYER_GZIP if gz else OCI_LAYER_TAR
        layers.append({"mediaType": media, "digest": digest, "size": path.stat().st_size})
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": config_digest,
            "size": config_path.stat().st_size,
        },
        "layers": layers,
    }
    body = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    content.write_blob_bytes(digest, body)
    return digest


def _inside(root: Path, path: Path) -> Path:
    """path resolved, refusing anything (e.g. a symlink in an archive) that leaves root."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise PullError(f"archive entry {path.name} points outside the archive")
    return resolved
