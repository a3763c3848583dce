"""Images: pulls over the OCI distribution API into a content-addressed layer cache, archive
imports, and overlay root filesystems built from the cached layers.

    reference.py  image references and digests (Docker's grammar, Docker Hub defaults)
    manifest.py   media types, index or manifest, this host's platform
    client.py     one pull's HTTP conversation with a registry, its auth and token cache
    layers.py     layer tar extraction: traversal-safe, whiteouts in overlayfs form
    content.py    blobs, extracted layers and refs.json on disk
    archive.py    `docker save` and OCI-layout tars
    rootfs.py     overlay (and idmapped) mounts of a container's root filesystem
    store.py      ImageStore, which the host calls: pull, resolve, import, mount
"""

from ...port.data import Image
from ...port.errors import PullError, RootfsError
from .layers import LayerError, extract_layer
from .manifest import OCI_INDEX, OCI_MANIFEST, host_arch
from .reference import ImageRef, registry_base_url
from .store import ImageStore

__all__ = [
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Image",
    "ImageRef",
    "ImageStore",
    "LayerError",
    "PullError",
    "RootfsError",
    "extract_layer",
    "host_arch",
    "registry_base_url",
]
