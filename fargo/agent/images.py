"""Images: pull over the OCI distribution API, a content-addressed layer cache, overlay rootfs.

Layout under the store root:
    blobs/sha256/<hex>   verified manifests and configs (layer blobs are dropped once extracted)
    layers/<hex>/        one extracted layer per layer-blob digest, whiteouts in overlayfs form
    refs.json            names this store knows: imported ones resolve without a registry
    tmp/                 downloads and extractions in progress; renamed into place when complete
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import errno
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from . import userns
from .layers import Extractor, LayerError, extract_layer

# --- media types ------------------------------------------------------------------------------

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

DOCKER_HUB = "registry-1.docker.io"
DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", DOCKER_HUB}
TIMEOUT = (5, 60)  # (connect, read) seconds for every registry request
CHUNK = 1 << 20

GO_ARCH = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm", "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
    "riscv64": "riscv64",
}  # fmt: skip


def host_arch() -> str:
    machine = platform.machine().lower()
    return GO_ARCH.get(machine, machine)


class PullError(Exception):
    """An image could not be pulled; str() reads well after "CannotPullContainerError: "."""


# --- references -------------------------------------------------------------------------------

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(
    r"^(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::[0-9]+)?$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


@dataclass
class ImageRef:
    registry: str
    repository: str
    reference: str  # a tag or a "sha256:..." digest

    @classmethod
    def parse(cls, s: str) -> ImageRef:
        """Parse a Docker-style image reference, filling in Docker Hub defaults."""
        if not s or s != s.strip() or len(s) > 4096:
            raise ValueError(f"invalid image reference {s!r}")
        name, digest = s, ""
        if "@" in s:
            name, digest = s.split("@", 1)
            if not _DIGEST_RE.match(digest):
                raise ValueError(f"invalid digest in image reference {s!r}")
        tag = ""
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name, tag = name.rsplit(":", 1)
            if not _TAG_RE.match(tag):
                raise ValueError(f"invalid tag in image reference {s!r}")
        registry, repository = _split_domain(name)
        if not _REPOSITORY_RE.match(repository) or len(repository) > 255:
            raise ValueError(f"invalid repository name in image reference {s!r}")
        return cls(registry, repository, digest or tag or "latest")

    @property
    def is_digest(self) -> bool:
        return self.reference.startswith("sha256:")

    def __str__(self) -> str:
        sep = "@" if self.is_digest else ":"
        return f"{self.registry}/{self.repository}{sep}{self.reference}"


def _split_domain(name: str) -> tuple[str, str]:
    first, _, rest = name.partition("/")
    # Docker's rule: the first component is a host only if it looks like one.
    if rest and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN_RE.match(first):
            raise ValueError(f"invalid registry host {first!r}")
        registry = DOCKER_HUB if first in DOCKER_HUB_ALIASES else first
    else:
        registry, rest = DOCKER_HUB, name
    if registry == DOCKER_HUB and "/" not in rest:
        rest = f"library/{rest}"
    return registry, rest


def _registry_host(registry: str) -> str:
    if registry.startswith("["):
        return registry[1 : registry.index("]")]
    return registry.rsplit(":", 1)[0]


def registry_base_url(registry: str) -> str:
    """Plain HTTP for loopback registries (our own "ECR"), HTTPS for everything else."""
    host = _registry_host(registry)
    loopback = host == "localhost" or host == "::1" or host.startswith("127.")
    return f"{'http' if loopback else 'https'}://{registry}"


# --- the image --------------------------------------------------------------------------------


@dataclass
class Image:
    ref: str  # as the user wrote it
    digest: str  # the manifest (or index) digest the reference resolved to
    config: dict[str, Any]  # the image config's "config" object (Entrypoint, Cmd, Env, ...)
    layers: list[Path] = field(default_factory=list)  # extracted layer dirs, bottom first


# --- registry client --------------------------------------------------------------------------


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="?([^",]*)"?', rest)}
    return scheme.lower(), params


class _AuthCache:
    """Authorization header values per (registry, repository, who asked), kept for the token's
    lifetime. Who asked is part of the key so one task's credentials never serve another's pull."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, ...], tuple[str, float]] = {}

    def get(self, key: tuple[str, ...]) -> str | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[1] < time.monotonic():
                self._entries.pop(key, None)
                return None
            return entry[0]

    def put(self, key: tuple[str, ...], value: str, lifetime: float) -> None:
        with self._lock:
            self._entries[key] = (value, time.monotonic() + lifetime)


class _Client:
    """One pull's conversation with one registry repository."""

    def __init__(
        self, ref: ImageRef, shown: str, creds: tuple[str, str] | None, auth: _AuthCache
    ) -> None:
        self.ref = ref
        self.shown = shown  # the reference as the user wrote it, for error messages
        self.creds = creds
        self.auth = auth
        self.base = f"{registry_base_url(ref.registry)}/v2/{ref.repository}"
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def get(self, path: str, accept: str | None = None, stream: bool = False) -> requests.Response:
        who = hashlib.sha256(repr(self.creds).encode()).hexdigest() if self.creds else ""
        key = (self.ref.registry, self.ref.repository, who)
        headers = {"Accept": accept} if accept else {}
        resp = self._send(path, headers, key, stream)
        if resp.status_code == 401:
            challenge = resp.headers.get("WWW-Authenticate", "")
            resp.close()
            self._authorize(challenge, key)
            resp = self._send(path, headers, key, stream)
        if resp.status_code in (401, 403):
            resp.close()
            raise PullError(f"pull access denied for {self.shown}: unauthorized")
        return resp

    def _send(
        self, path: str, headers: dict[str, str], key: tuple[str, ...], stream: bool
    ) -> requests.Response:
        auth = self.auth.get(key)
        if auth:
            headers = {**headers, "Authorization": auth}
        return self._request(f"{self.base}/{path}", headers=headers, stream=stream)

    def _request(self, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.get(url, timeout=TIMEOUT, **kwargs)
        except requests.ConnectionError as exc:
            host = requests.utils.urlparse(url).netloc
            raise PullError(
                f"failed to pull {self.shown}: registry {host} is unreachable ({_why(exc)})"
            ) from exc
        except requests.Timeout as exc:
            raise PullError(f"failed to pull {self.shown}: request to {url} timed out") from exc
        except requests.RequestException as exc:
            raise PullError(f"failed to pull {self.shown}: {_short(exc)}") from exc

    def _authorize(self, challenge: str, key: tuple[str, ...]) -> None:
        scheme, params = _parse_challenge(challenge)
        if scheme == "basic" and self.creds:
            user_pass = f"{self.creds[0]}:{self.creds[1]}".encode()
            self.auth.put(key, "Basic " + base64.b64encode(user_pass).decode(), 3600)
        elif scheme == "bearer" and params.get("realm"):
            token, lifetime = self._fetch_token(params)
            self.auth.put(key, f"Bearer {token}", lifetime)
        else:
            raise PullError(f"pull access denied for {self.shown}: unauthorized")

    def _fetch_token(self, params: dict[str, str]) -> tuple[str, float]:
        query = {"service": params.get("service", "")}
        query["scope"] = params.get("scope") or f"repository:{self.ref.repository}:pull"
        resp = self._request(params["realm"], params=query, auth=self.creds)
        with resp:
            if resp.status_code in (401, 403):
                raise PullError(f"pull access denied for {self.shown}: unauthorized")
            if resp.status_code != 200:
                raise PullError(
                    f"failed to pull {self.shown}: token server answered {resp.status_code}"
                )
            try:
                body = resp.json()
                token = body.get("token") or body["access_token"]
            except (ValueError, KeyError, AttributeError) as exc:
                raise PullError(f"failed to pull {self.shown}: bad token response") from exc
        # Renew a little early so a token never expires between check and use.
        lifetime = max(float(body.get("expires_in") or 60) - 10, 5)
        return str(token), lifetime


def _why(exc: requests.ConnectionError) -> str:
    """The useful part of urllib3's long connection error text."""
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "NameResolution" in text or "Name or service not known" in text:
        return "host name not resolved"
    if "timed out" in text:
        return "connection timed out"
    return _short(exc)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."


# --- the store --------------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _hex(digest: str) -> str:
    if not _DIGEST_RE.match(digest):
        raise PullError(f"unsupported or malformed digest {digest!r}")
    return digest.split(":", 1)[1]


def _well_formed(doc: dict[str, Any]) -> bool:
    """Config and layers carry sha256 digests, so later lookups cannot raise KeyError."""
    try:
        descriptors = [doc["config"], *doc.get("layers", [])]
        return all(_DIGEST_RE.match(d["digest"]) for d in descriptors)
    except (KeyError, TypeError):
        return False


def _media_type(doc: dict[str, Any], header: str = "") -> str:
    media = doc.get("mediaType") or header.split(";")[0].strip()
    if media not in INDEX_TYPES | MANIFEST_TYPES:
        # Some registries omit mediaType; the shape tells an index from a manifest.
        media = OCI_INDEX if "manifests" in doc else OCI_MANIFEST if "layers" in doc else media
    return media


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"
        self.layers_dir = self.root / "layers"
        self.tmp = self.root / "tmp"
        for d in (self.blobs, self.layers_dir, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self.refs_file = self.root / "refs.json"
        self.blob_downloads = 0  # network blob fetches, for tests and metrics
        self._auth = _AuthCache()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._refs_lock = threading.Lock()
        self._flights: dict[tuple[str, tuple[str, str] | None], Future[Image]] = {}
        self._flights_lock = threading.Lock()

    # -- public API --

    def pull(self, ref: str, credentials: tuple[str, str] | None = None) -> Image:
        """Resolve ref against its registry and make sure every layer is extracted locally.

        Names created by import_archive resolve locally and never touch a registry. Pulls of
        the same reference with the same credentials that overlap (the tasks of one RunTask
        with a count) share one resolution: the followers get the leader's result."""
        key = (ref, credentials)
        with self._flights_lock:
            flight = self._flights.get(key)
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = Future()
        if not leading:
            return flight.result()
        try:
            image = self._pull(ref, credentials)
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        else:
            flight.set_result(image)
            return image
        finally:
            with self._flights_lock:
                self._flights.pop(key, None)

    def _pull(self, ref: str, credentials: tuple[str, str] | None) -> Image:
        parsed = self._parse(ref)
        entry = self._refs().get(str(parsed))
        if entry and entry.get("source") == "import":
            image = self._load(ref, entry["digest"])
            if image:
                return image
        client = _Client(parsed, ref, credentials, self._auth)
        try:
            image = self._pull_remote(client, ref)
        finally:
            client.close()
        self._record(str(parsed), image.digest, "pull")
        return image

    def resolve(self, ref: str) -> Image | None:
        """The locally known image for ref (imported or pulled before), without any network."""
        parsed = self._parse(ref)
        if parsed.is_digest:
            return self._load(ref, parsed.reference)
        entry = self._refs().get(str(parsed))
        return self._load(ref, entry["digest"]) if entry else None

    def import_archive(self, archive: Path, name: str) -> Image:
        """Import a `docker save` tar or an OCI image-layout tar and name it `name`."""
        parsed = self._parse(name)
        with tempfile.TemporaryDirectory(dir=self.tmp, prefix="import-") as tmp:
            unpacked = Path(tmp)
            try:
                with tarfile.open(archive) as tar:
                    Extractor(unpacked, whiteouts=False).run(tar)
            except (tarfile.TarError, OSError, LayerError) as exc:
                raise PullError(f"cannot read image archive {archive}: {exc}") from exc
            if (unpacked / "index.json").exists():
                digest = self._import_oci_layout(unpacked, parsed)
            elif (unpacked / "manifest.json").exists():
                digest = self._import_docker_archive(unpacked)
            else:
                raise PullError(f"{archive} is neither an OCI layout nor a docker save archive")
        self._record(str(parsed), digest, "import")
        image = self._load(name, digest)
        assert image is not None
        return image

    def mount_rootfs(self, image: Image, workdir: Path, id_base: int | None = None,
                     target: Path | None = None) -> Path:
        """Mount image's layers under a fresh writable layer (workdir/upper) at target
        (default workdir/rootfs).

        With id_base, the rootfs is for a user namespace mapping ids 0..65535 to id_base..:
        the shared layers are seen through idmapped mounts and the writable layer belongs to
        the mapped root, so the container's root owns its files and the host's does not.
        """
        workdir = Path(workdir)
        rootfs = Path(target) if target else workdir / "rootfs"
        if os.path.ismount(rootfs):  # an overlay has a device of its own: a stat, not a scan
            raise RuntimeError(f"{rootfs} is already mounted")
        if id_base is not None:
            return self._mount_idmapped(image, workdir, id_base, rootfs)
        upper, work = workdir / "upper", workdir / "work"
        for d in (rootfs, upper, work):
            d.mkdir(parents=True, exist_ok=True)
        lowers = [p.resolve() for p in reversed(image.layers)] or [self._empty_layer()]
        # Layer dirs are named relative to layers/ (mount runs there) so the option string
        # stays short: the kernel caps mount data at one page.
        names = [p.name if p.parent == self.layers_dir.resolve() else str(p) for p in lowers]
        options = (
            f"lowerdir={':'.join(names)},upperdir={upper.resolve()},workdir={work.resolve()}"
        )
        if len(options) >= 4000:
            raise RuntimeError(f"too many layers to mount ({len(lowers)})")
        proc = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(rootfs.resolve())],
            cwd=self.layers_dir,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"overlay mount failed: {proc.stderr.strip()}")
        return rootfs

    def _mount_idmapped(self, image: Image, workdir: Path, id_base: int, rootfs: Path) -> Path:
        upper, work = workdir / "upper", workdir / "work"
        for d in (rootfs, upper, work):
            d.mkdir(parents=True, exist_ok=True)
        # The overlay's root directory is the upper dir itself: it must be the mapped root's.
        os.chown(upper, id_base, id_base)
        lowers = [p.resolve() for p in reversed(image.layers)] or [self._empty_layer()]
        fds: list[int] = []
        try:
            for layer in lowers:
                fds.append(userns.idmapped_tree(layer, id_base))
            # Detached mounts have no path but their fd's: overlayfs resolves that link.
            names = [f"/proc/{os.getpid()}/fd/{fd}" for fd in fds]
            options = (f"lowerdir={':'.join(names)},upperdir={upper.resolve()},"
                       f"workdir={work.resolve()}")
            if len(options) >= 4000:
                raise RuntimeError(f"too many layers to mount ({len(lowers)})")
            if _libc.mount(b"overlay", os.fsencode(rootfs.resolve()), b"overlay", 0,
                           options.encode()) != 0:
                err = ctypes.get_errno()
                raise RuntimeError(f"overlay mount failed: {os.strerror(err)}")
        finally:
            for fd in fds:  # overlayfs holds its own references to the layers
                os.close(fd)
        return rootfs

    def unmount_rootfs(self, workdir: Path, target: Path | None = None) -> None:
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

    # -- pulling --

    def _parse(self, ref: str) -> ImageRef:
        try:
            return ImageRef.parse(ref)
        except ValueError as exc:
            raise PullError(f"invalid reference format: {ref!r}") from exc

    def _pull_remote(self, client: _Client, shown: str) -> Image:
        top_digest, doc, media = self._fetch_manifest(client, client.ref.reference)
        if media in INDEX_TYPES:
            child = self._select_platform(doc, shown)
            _, doc, media = self._fetch_manifest(client, child)
        if media not in MANIFEST_TYPES:
            raise PullError(f"failed to pull {shown}: unsupported manifest type {media!r}")
        if not _well_formed(doc):
            raise PullError(f"failed to pull {shown}: malformed image manifest")
        self._ensure_blob(client, doc["config"]["digest"])
        for layer in doc.get("layers", []):
            self._ensure_layer(client, layer["digest"])
        image = self._load(shown, top_digest)
        if image is None:
            raise PullError(f"failed to pull {shown}: image incomplete after pull")
        return image

    def _fetch_manifest(self, client: _Client, reference: str) -> tuple[str, dict[str, Any], str]:
        resp = client.get(f"manifests/{reference}", accept=ACCEPT)
        with resp:
            if resp.status_code == 404:
                raise PullError(f"failed to resolve {client.shown}: {client.shown} not found")
            if resp.status_code != 200:
                raise PullError(
                    f"failed to resolve {client.shown}: registry answered {resp.status_code}"
                )
            body = resp.content
            content_type = resp.headers.get("Content-Type", "")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise PullError(f"failed to pull {client.shown}: manifest digest mismatch")
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise PullError(f"failed to pull {client.shown}: manifest is not JSON") from exc
        media = _media_type(doc, content_type)
        self._write_blob_bytes(digest, body)
        return digest, doc, media

    def _select_platform(self, index: dict[str, Any], shown: str) -> str:
        arch = host_arch()
        for entry in index.get("manifests", []):
            plat = entry.get("platform") or {}
            if plat.get("os") == "linux" and plat.get("architecture") == arch:
                return str(entry["digest"])
        raise PullError(f"failed to pull {shown}: no linux/{arch} image in manifest list")

    def _lock(self, digest: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(digest, threading.Lock())

    def _ensure_blob(self, client: _Client, digest: str) -> None:
        dest = self.blobs / _hex(digest)
        if dest.exists():
            return
        with self._lock(digest):
            if not dest.exists():
                self._download_blob(client, digest, dest)

    def _ensure_layer(self, client: _Client, digest: str) -> None:
        dest = self.layers_dir / _hex(digest)
        if dest.exists():
            return
        with self._lock(digest):
            if dest.exists():  # another thread finished it while we waited
                return
            with tempfile.TemporaryDirectory(dir=self.tmp, prefix="layer-") as tmp:
                blob = Path(tmp) / "blob"
                self._download_blob(client, digest, blob)
                self._install_layer(blob, digest, client.shown)

    def _install_layer(self, blob: Path, digest: str, shown: str) -> None:
        dest = self.layers_dir / _hex(digest)
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

    def _download_blob(self, client: _Client, digest: str, dest: Path) -> None:
        """Stream a blob to a temp file, verify its digest, then rename it to dest."""
        expected = _hex(digest)
        resp = client.get(f"blobs/{digest}", stream=True)
        with resp:
            if resp.status_code == 404:
                raise PullError(f"failed to pull {client.shown}: blob {digest} not found")
            if resp.status_code != 200:
                raise PullError(
                    f"failed to pull {client.shown}: blob {digest}: HTTP {resp.status_code}"
                )
            fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
            try:
                h = hashlib.sha256()
                with os.fdopen(fd, "wb") as out:
                    for chunk in resp.iter_content(CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                if h.hexdigest() != expected:
                    raise PullError(f"failed to pull {client.shown}: blob {digest} is corrupt")
                os.replace(tmp_name, dest)
            except requests.RequestException as exc:
                raise PullError(f"failed to pull {client.shown}: {_short(exc)}") from exc
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_name)
        with self._locks_guard:
            self.blob_downloads += 1

    def _write_blob_bytes(self, digest: str, data: bytes) -> None:
        path = self.blobs / _hex(digest)
        if path.exists():
            return
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp_name, path)

    # -- local state --

    def _read_json_blob(self, digest: str) -> dict[str, Any] | None:
        path = self.blobs / _hex(digest)
        try:
            return json.loads(path.read_bytes())
        except (FileNotFoundError, ValueError):
            return None

    def _load(self, shown: str, digest: str) -> Image | None:
        """Assemble an Image from local blobs and layers; None if anything is missing."""
        doc = self._read_json_blob(digest)
        if doc is not None and _media_type(doc) in INDEX_TYPES:
            try:
                doc = self._read_json_blob(self._select_platform(doc, shown))
            except (PullError, KeyError):
                return None
        if doc is None or not _well_formed(doc):
            return None
        config = self._read_json_blob(doc["config"]["digest"])
        layers = [self.layers_dir / _hex(layer["digest"]) for layer in doc.get("layers", [])]
        if config is None or not all(p.is_dir() for p in layers):
            return None
        return Image(ref=shown, digest=digest, config=config.get("config") or {}, layers=layers)

    def _refs(self) -> dict[str, dict[str, str]]:
        try:
            return json.loads(self.refs_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _record(self, name: str, digest: str, source: str) -> None:
        with self._refs_lock:
            refs = self._refs()
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

    def _empty_layer(self) -> Path:
        empty = self.root / "empty-layer"
        empty.mkdir(exist_ok=True)
        return empty

    # -- importing --

    def _import_blob(self, src: Path, digest: str) -> None:
        if _sha256_file(src) != digest:
            raise PullError(f"archive blob {digest} does not match its digest")
        dest = self.blobs / _hex(digest)
        if not dest.exists():
            tmp = self.tmp / f"import-{_hex(digest)}-{os.getpid()}-{threading.get_ident()}"
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)

    def _import_layer(self, src: Path, digest: str, shown: str) -> None:
        if (self.layers_dir / _hex(digest)).exists():
            return
        if _sha256_file(src) != digest:
            raise PullError(f"archive layer {digest} does not match its digest")
        with self._lock(digest):
            if not (self.layers_dir / _hex(digest)).exists():
                self._install_layer(src, digest, shown)

    def _import_oci_layout(self, layout: Path, parsed: ImageRef) -> str:
        def blob_path(digest: str) -> Path:
            return _inside(layout, layout / "blobs" / "sha256" / _hex(digest))

        index = json.loads((layout / "index.json").read_text())
        entries = index.get("manifests", [])
        if not entries:
            raise PullError("OCI archive has no manifests")
        digest = str(entries[0]["digest"])
        doc = json.loads(blob_path(digest).read_bytes())
        self._import_blob(blob_path(digest), digest)
        if _media_type(doc) in INDEX_TYPES:
            child = self._select_platform(doc, str(parsed))
            self._import_blob(blob_path(child), child)
            doc = json.loads(blob_path(child).read_bytes())
        self._import_blob(blob_path(doc["config"]["digest"]), doc["config"]["digest"])
        for layer in doc.get("layers", []):
            self._import_layer(blob_path(layer["digest"]), layer["digest"], str(parsed))
        return digest

    def _import_docker_archive(self, unpacked: Path) -> str:
        """`docker save` has no manifest; synthesize an OCI one so the image gets a digest."""
        entries = json.loads((unpacked / "manifest.json").read_text())
        if not entries:
            raise PullError("docker archive has no images")
        entry = entries[0]
        config_path = _inside(unpacked, unpacked / entry["Config"])
        config_digest = _sha256_file(config_path)
        self._import_blob(config_path, config_digest)
        layers = []
        for name in entry.get("Layers", []):
            path = _inside(unpacked, unpacked / name)
            digest = _sha256_file(path)
            self._import_layer(path, digest, name)
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
        self._write_blob_bytes(digest, body)
        return digest


def _inside(root: Path, path: Path) -> Path:
    """path resolved, refusing anything (e.g. a symlink in an archive) that leaves root."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise PullError(f"archive entry {path.name} points outside the archive")
    return resolved


# --- mounts -----------------------------------------------------------------------------------

MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _umount(path: Path) -> None:
    target = str(path.resolve()).encode()
    if _libc.umount2(target, 0) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.EINVAL:
        return  # not mounted after all
    # Busy (a process still has its cwd there): detach now, the kernel frees it later.
    if _libc.umount2(target, MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {path}: {os.strerror(err)}")
