"""What OCI and Docker manifests look like: media types, telling an index from a manifest,
and picking this host's platform out of an index."""

from __future__ import annotations

import platform
from typing import Any

from ...port.errors import PullError
from .reference import DIGEST_RE

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = {OCI_INDEX, DOCKER_LIST}
MANIFEST_TYPES = {OCI_MANIFEST, DOCKER_MANIFEST}
ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

GO_ARCH = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm", "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
    "riscv64": "riscv64",
}  # fmt: skip


def host_arch() -> str:
    machine = platform.machine().lower()
    return GO_ARCH.get(machine, machine)


def media_type(doc: dict[str, Any], header: str = "") -> str:
    media = doc.get("mediaType") or header.split(";")[0].strip()
    if media not in INDEX_TYPES | MANIFEST_TYPES:
        # Some registries omit mediaType; the shape tells an index from a manifest.
        media = OCI_INDEX if "manifests" in doc else OCI_MANIFEST if "layers" in doc else media
    return str(media)


def well_formed(doc: dict[str, Any]) -> bool:
    """Config and layers carry sha256 digests, so later lookups cannot raise KeyError."""
    try:
        descriptors = [doc["config"], *doc.get("layers", [])]
        return all(DIGEST_RE.match(d["digest"]) for d in descriptors)
    except (KeyError, TypeError):
        return False


def select_platform(index: dict[str, Any], shown: str) -> str:
    """The digest of the index's linux manifest for this host's architecture."""
    arch = host_arch()
    for entry in index.get("manifests", []):
        plat = entry.get("platform") or {}
        if plat.get("os") == "linux" and plat.get("architecture") == arch:
            return str(entry["digest"])
    raise PullError(f"failed to pull {shown}: no linux/{arch} image in manifest list")
