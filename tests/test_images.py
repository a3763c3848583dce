"""Image pulls against a real docker-registry, the layer cache, overlay rootfs, imports, auth."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import stat
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fargo.agent.images import (
    OCI_INDEX,
    Image,
    ImageRef,
    ImageStore,
    PullError,
    RootfsError,
    host_arch,
)
from fargo.agent.images.layers import LayerError, extract_layer
from fargo.agent.registry import LocalRegistry, free_port
from fargo.control.tasks.pulls import SharedPulls
from fargo.port.errors import InvalidSpec
from tests.imagebuild import (
    MEDIA_LAYER_GZIP,
    MEDIA_LAYER_TAR,
    build_busybox_oci,
    dir_entry,
    file_entry,
    gzip_bytes,
    hardlink_entry,
    layout_manifest_digest,
    make_tar,
    push_layout,
    save_archive,
    symlink_entry,
    write_oci_layout,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts, chown, mknod)")


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as reg:  # port 0: picks one
        yield reg


@pytest.fixture(scope="module")
def busybox_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_oci(tmp_path_factory.mktemp("layout") / "busybox")


@pytest.fixture(scope="module")
def pushed(local_registry: LocalRegistry, busybox_layout: Path) -> tuple[str, str]:
    """(reference, digest skopeo reported) for busybox:1 in the local registry."""
    digest = push_layout(busybox_layout, local_registry.address, "busybox:1")
    return f"{local_registry.address}/busybox:1", digest


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


@pytest.fixture
def mounts(store: ImageStore, tmp_path: Path) -> Iterator[list[Path]]:
    """Workdirs to unmount at teardown, whatever the test did."""
    used: list[Path] = []
    yield used
    for workdir in used:
        store.unmount_rootfs(workdir)


def mounted(path: Path) -> bool:
    return str(path) in Path("/proc/mounts").read_text()


def mount(store: ImageStore, image: Image, workdir: Path, used: list[Path]) -> Path:
    used.append(workdir)
    return store.mount_rootfs(image, workdir)


# --- references and the registry process ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "registry", "repository", "reference"),
    [
        ("busybox", "registry-1.docker.io", "library/busybox", "latest"),
        ("docker.io/library/nginx:1.25", "registry-1.docker.io", "library/nginx", "1.25"),
        ("someone/app:v2", "registry-1.docker.io", "someone/app", "v2"),
        ("127.0.0.1:5000/busybox:1", "127.0.0.1:5000", "busybox", "1"),
        ("localhost/a/b", "localhost", "a/b", "latest"),
        ("[::1]:5000/x", "[::1]:5000", "x", "latest"),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:" + "a" * 64,
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "web",
            "sha256:" + "a" * 64,
        ),
    ],
)
def test_parse_ref(text: str, registry: str, repository: str, reference: str) -> None:
    assert ImageRef.parse(text) == ImageRef(registry, repository, reference)


@pytest.mark.parametrize(
    "text",
    ["", "Busybox", "busybox:", "busybox@sha256:abc", "a//b", "-x", "x:tag!", " busybox", "a:b:c"],
)
def test_parse_ref_rejects(text: str) -> None:
    with pytest.raises(InvalidSpec):
        ImageRef.parse(text)


def test_registry_stop(tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path / "reg")
    reg.start()
    port = reg.port
    assert port and (tmp_path / "reg" / "config.yml").exists()
    reg.stop()
    reg.stop()  # idempotent
    with pytest.raises(PullError, match="unreachable"):
        ImageStore(tmp_path / "images").pull(f"127.0.0.1:{port}/busybox:1")


# --- pulling ----------------------------------------------------------------------------------


def test_pull(store: ImageStore, pushed: tuple[str, str]) -> None:
    ref, digest = pushed
    image = store.pull(ref)
    assert image.ref == ref
    assert image.digest == digest
    assert image.config["Cmd"] == ["sh"]
    assert any(e.startswith("PATH=") for e in image.config["Env"])
    assert len(image.layers) == 1
    layer = image.layers[0]
    assert os.access(layer / "bin" / "busybox", os.X_OK)
    assert os.readlink(layer / "bin" / "sh") == "busybox"
    assert stat.S_IMODE(os.stat(layer / "tmp").st_mode) == 0o1777
    assert (layer / "www" / "index.html").read_bytes() == b"hello from fargo\n"
    assert store.resolve(ref) == image
    assert store.resolve(ref.split(":1")[0] + "@" + digest) is not None


def test_second_pull_uses_cached_layers(
    store: ImageStore, pushed: tuple[str, str], local_registry: LocalRegistry, tmp_path: Path
) -> None:
    ref, _ = pushed
    first = store.pull(ref)
    assert store.blob_downloads == 2  # config and the one layer
    mtime = first.layers[0].stat().st_mtime_ns
    assert store.pull(ref) == first
    assert store.blob_downloads == 2  # only the manifest was fetched again
    assert first.layers[0].stat().st_mtime_ns == mtime
    # Same layer, new config: only the config blob is new.
    other = build_busybox_oci(tmp_path / "other", config={"Cmd": ["httpd", "-f"]})
    push_layout(other, local_registry.address, "busybox:httpd")
    image = store.pull(f"{local_registry.address}/busybox:httpd")
    assert image.config["Cmd"] == ["httpd", "-f"]
    assert image.layers == first.layers
    assert store.blob_downloads == 3


def test_concurrent_pulls(store: ImageStore, pushed: tuple[str, str]) -> None:
    ref, digest = pushed
    results: list[Image | BaseException] = []

    def pull() -> None:
        try:
            results.append(store.pull(ref))
        except BaseException as exc:  # reported by the assert below
            results.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, Image) and r.digest == digest for r in results), results
    assert store.blob_downloads == 2  # per-digest locks: each blob fetched once
    assert os.listdir(store.tmp) == []


def test_missing_tag(store: ImageStore, pushed: tuple[str, str]) -> None:
    ref, _ = pushed
    missing = ref.replace(":1", ":nope")
    with pytest.raises(PullError, match="not found") as info:
        store.pull(missing)
    assert missing in str(info.value)
    with pytest.raises(PullError, match="not found"):
        store.pull(ref.replace("busybox", "nosuchrepo"))


def _shared_pulls_at_once(store: ImageStore, ref: str, n: int) -> list[Any]:
    """n tasks of one RunTask call pull ref at the same time, through the engine's sharing."""

    async def run() -> list[Any]:
        pulls = SharedPulls(store)
        tids = [f"t{i}" for i in range(n)]
        pulls.share_call(tids)
        futs = [pulls.pull(t, ref, None) for t in tids]
        out = await asyncio.gather(*futs, return_exceptions=True)
        assert pulls._inflight == {}  # nothing left in flight once all are done
        return out

    return asyncio.run(run())


def test_overlapping_pulls_share_one_resolution(
        store: ImageStore, pushed: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The tasks of one RunTask pull the same image at once: one resolution serves them all."""
    ref, digest = pushed
    leaders: list[str] = []
    gate = threading.Event()
    real = store._pull

    def held(r: str, creds: Any) -> Image:
        leaders.append(r)
        gate.wait(10)  # keep the first pull in flight while the others arrive
        return real(r, creds)

    monkeypatch.setattr(store, "_pull", held)
    threading.Timer(0.3, gate.set).start()
    results = _shared_pulls_at_once(store, ref, 4)
    assert leaders == [ref]
    assert len(results) == 4
    assert all(isinstance(r, Image) and r.digest == digest for r in results), results
    gate.clear()
    threading.Timer(0.05, gate.set).start()
    assert store.pull(ref).digest == digest and leaders == [ref, ref]  # later: a pull anew


def test_overlapping_failed_pulls_all_fail(store: ImageStore) -> None:
    results = _shared_pulls_at_once(store, f"127.0.0.1:{free_port()}/busybox:1", 3)
    assert len(results) == 3 and all(isinstance(r, PullError) for r in results), results


def test_unreachable_registry(store: ImageStore) -> None:
    with pytest.raises(PullError, match="unreachable") as info:
        store.pull(f"127.0.0.1:{free_port()}/busybox:1")
    assert "connection refused" in str(info.value)


def test_invalid_reference(store: ImageStore) -> None:
    with pytest.raises(PullError, match="invalid reference"):
        store.pull("UPPER/case")


# --- rootfs -----------------------------------------------------------------------------------


def test_mount_rootfs_independent_layers(
    store: ImageStore, pushed: tuple[str, str], tmp_path: Path, mounts: list[Path]
) -> None:
    image = store.pull(pushed[0])
    a = mount(store, image, tmp_path / "a", mounts)
    b = mount(store, image, tmp_path / "b", mounts)
    assert a == tmp_path / "a" / "rootfs" and mounted(a) and mounted(b)
    (a / "tmp" / "only-in-a").write_text("x")
    assert not (b / "tmp" / "only-in-a").exists()
    assert not (image.layers[0] / "tmp" / "only-in-a").exists()
    out = subprocess.run(
        ["chroot", str(b), "/bin/sh", "-c", "cat /www/index.html; id -un"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == "hello from fargo\nroot\n"
    with pytest.raises(RootfsError, match="already mounted"):
        store.mount_rootfs(image, tmp_path / "a")

    store.unmount_rootfs(tmp_path / "a")
    assert not mounted(a) and mounted(b)
    assert os.listdir(tmp_path / "a") == []
    store.unmount_rootfs(tmp_path / "a")  # idempotent


def test_unmount_busy_rootfs_lazily(
    store: ImageStore, pushed: tuple[str, str], tmp_path: Path, mounts: list[Path]
) -> None:
    image = store.pull(pushed[0])
    rootfs = mount(store, image, tmp_path / "w", mounts)
    holder = subprocess.Popen(["sleep", "30"], cwd=rootfs)  # keeps the mount busy
    try:
        store.unmount_rootfs(tmp_path / "w")
        assert not mounted(rootfs)
        assert not (tmp_path / "w" / "upper").exists()
    finally:
        holder.kill()
        holder.wait()


# --- whiteouts and unsafe layers --------------------------------------------------------------


def push_layers(
    registry: LocalRegistry, tmp_path: Path, name: str, layers: list[list[Any]], gz: bool = False
) -> str:
    blobs = [
        (gzip_bytes(make_tar(e)), MEDIA_LAYER_GZIP) if gz else (make_tar(e), MEDIA_LAYER_TAR)
        for e in layers
    ]
    layout = write_oci_layout(tmp_path / name, blobs)
    push_layout(layout, registry.address, f"{name}:1")
    return f"{registry.address}/{name}:1"


def test_whiteouts_convert_to_overlay_form(
    store: ImageStore,
    local_registry: LocalRegistry,
    tmp_path: Path,
    mounts: list[Path],
) -> None:
    lower = [
        dir_entry("a"),
        file_entry("a/file", b"gone"),
        file_entry("a/keep", b"kept"),
        dir_entry("o"),
        file_entry("o/old", b"old"),
        dir_entry("o/sub"),
        file_entry("o/sub/deep", b"old"),
    ]
    upper = [
        dir_entry("a"),
        file_entry("a/.wh.file", b""),
        dir_entry("o"),
        file_entry("o/.wh..wh..opq", b""),
        file_entry("o/new", b"new"),
    ]
    ref = push_layers(local_registry, tmp_path, "whiteout", [lower, upper])
    image = store.pull(ref)
    top = image.layers[1]
    st = os.lstat(top / "a" / "file")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert not (top / "a" / ".wh.file").exists()
    assert os.getxattr(top / "o", "trusted.overlay.opaque") == b"y"
    assert not (top / "o" / ".wh..wh..opq").exists()

    rootfs = mount(store, image, tmp_path / "w", mounts)
    assert sorted(os.listdir(rootfs / "a")) == ["keep"]
    assert sorted(os.listdir(rootfs / "o")) == ["new"]
    assert (rootfs / "a" / "keep").read_text() == "kept"


def test_metadata_and_links_preserved(tmp_path: Path) -> None:
    entries = [dir_entry("d", 0o750), file_entry("d/f", b"data", 0o4755)]
    entries[1][0].uid, entries[1][0].gid = 65534, 65534
    entries[1][0].pax_headers = {"SCHILY.xattr.user.note": "hi"}
    entries += [hardlink_entry("d/h", "d/f"), symlink_entry("abs", "/etc/passwd")]
    blob = tmp_path / "layer.tar.gz"
    blob.write_bytes(gzip_bytes(make_tar(entries)))
    dest = tmp_path / "out"
    dest.mkdir()
    extract_layer(blob, dest)
    st = os.lstat(dest / "d" / "f")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o4755)
    assert st.st_nlink == 2 and os.lstat(dest / "d" / "h").st_ino == st.st_ino
    assert stat.S_IMODE(os.stat(dest / "d").st_mode) == 0o750
    assert os.readlink(dest / "abs") == "/etc/passwd"
    assert os.getxattr(dest / "d" / "f", "user.note") == b"hi"


@pytest.mark.parametrize(
    "entries",
    [
        [file_entry("../escape", b"x")],
        [file_entry("/abs", b"x")],
        [file_entry("a/../../escape", b"x")],
        [symlink_entry("link", "/tmp"), file_entry("link/escape", b"x")],
        [symlink_entry("link", ".."), file_entry("link/escape", b"x")],
        [hardlink_entry("h", "../../etc/passwd")],
        [symlink_entry("link", "/etc"), hardlink_entry("h", "link/passwd")],
    ],
    ids=["dotdot", "absolute", "nested-dotdot", "via-symlink", "via-rel-symlink", "hardlink-out",
         "hardlink-via-symlink"],
)  # fmt: skip
def test_unsafe_layers_refused(tmp_path: Path, entries: list[Any]) -> None:
    blob = tmp_path / "layer.tar"
    blob.write_bytes(make_tar(entries))
    dest = tmp_path / "deep" / "out"
    dest.mkdir(parents=True)
    with pytest.raises(LayerError):
        extract_layer(blob, dest)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "deep" / "escape").exists()


def test_unsafe_layer_fails_pull(
    store: ImageStore, local_registry: LocalRegistry, tmp_path: Path
) -> None:
    ref = push_layers(local_registry, tmp_path, "evil", [[file_entry("../x", b"x")]], gz=True)
    with pytest.raises(PullError, match="path traversal"):
        store.pull(ref)
    assert os.listdir(store.layers_dir) == [] and os.listdir(store.tmp) == []


# --- archives ---------------------------------------------------------------------------------


@pytest.mark.parametrize("docker", [False, True], ids=["oci-archive", "docker-archive"])
def test_import_archive(
    store: ImageStore, busybox_layout: Path, tmp_path: Path, mounts: list[Path], docker: bool
) -> None:
    archive = save_archive(busybox_layout, tmp_path / "img.tar", "imported:1", docker=docker)
    image = store.import_archive(archive, "imported:1")
    if not docker:
        assert image.digest == layout_manifest_digest(busybox_layout)
    assert image.config["Cmd"] == ["sh"]
    # The name resolves locally; as a Docker Hub name it could never be pulled here.
    assert store.pull("imported:1") == Image("imported:1", image.digest, image.config, image.layers)
    assert store.resolve("docker.io/library/imported:1") is not None
    rootfs = mount(store, image, tmp_path / "w", mounts)
    assert os.access(rootfs / "bin" / "busybox", os.X_OK)


def test_import_garbage(store: ImageStore, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(make_tar([file_entry("hello", b"x")]))
    with pytest.raises(PullError, match="neither"):
        store.import_archive(junk, "junk:1")


# --- authentication and manifest lists, against a small fake registry -------------------------


class FakeRegistry(ThreadingHTTPServer):
    """Serves blobs and manifests from memory behind Bearer (or Basic) authentication."""

    def __init__(self, mode: str, user: str = "alice", password: str = "s3cret") -> None:
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.mode = mode
        self.basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.blobs: dict[str, bytes] = {}
        self.tags: dict[str, str] = {}
        self.token_requests: list[dict[str, str]] = []
        self.connections = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def add_layout(self, layout: Path, tag: str) -> str:
        for blob in (layout / "blobs" / "sha256").iterdir():
            self.blobs[f"sha256:{blob.name}"] = blob.read_bytes()
        self.tags[tag] = layout_manifest_digest(layout)
        return self.tags[tag]

    def add_manifest(self, doc: dict[str, Any], tag: str) -> str:
        body = json.dumps(doc).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        self.blobs[digest] = body
        self.tags[tag] = digest
        return digest


class FakeHandler(BaseHTTPRequestHandler):
    server: FakeRegistry
    protocol_version = "HTTP/1.1"  # connections kept, as a real registry keeps them

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/token":
            return self._token(query)
        if not self._authorized():
            return
        m = re.fullmatch(r"/v2/[a-z0-9/]+/(manifests|blobs)/([^/]+)", path)
        digest = m and self.server.tags.get(m.group(2), m.group(2))
        body = self.server.blobs.get(digest or "")
        if body is None:
            return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
        media = json.loads(body).get("mediaType", "") if m and m.group(1) == "manifests" else ""
        self._send(200, body, {"Content-Type": media or "application/octet-stream"})

    def _authorized(self) -> bool:
        got = self.headers.get("Authorization", "")
        if self.server.mode == "basic":
            if got == self.server.basic:
                return True
            challenge = 'Basic realm="fake"'
        else:
            if got == "Bearer tok-123":
                return True
            realm = f"http://{self.server.address}/token"
            challenge = f'Bearer realm="{realm}",service="fake",scope="repository:busybox:pull"'
        self._send(401, b"{}", {"WWW-Authenticate": challenge})
        return False

    def _token(self, query: str) -> None:
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        self.server.token_requests.append(params)
        if self.headers.get("Authorization") != self.server.basic:
            return self._send(401, b"{}")
        self._send(200, json.dumps({"access_token": "tok-123", "expires_in": 300}).encode())

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(params=["bearer", "basic"])
def fake_registry(request: pytest.FixtureRequest, busybox_layout: Path) -> Iterator[FakeRegistry]:
    server = FakeRegistry(request.param)
    server.add_layout(busybox_layout, "1")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_auth_flow(fake_registry: FakeRegistry, tmp_path: Path) -> None:
    ref = f"{fake_registry.address}/busybox:1"
    with pytest.raises(PullError, match="unauthorized"):
        ImageStore(tmp_path / "anon").pull(ref)
    with pytest.raises(PullError, match="unauthorized"):
        ImageStore(tmp_path / "wrong").pull(ref, ("alice", "wrong"))
    store = ImageStore(tmp_path / "ok")
    image = store.pull(ref, ("alice", "s3cret"))
    assert image.config["Cmd"] == ["sh"] and store.blob_downloads == 2
    store.pull(ref, ("alice", "s3cret"))
    if fake_registry.mode == "bearer":
        # One token per store: manifest, config and layer requests reuse the cached one.
        assert fake_registry.token_requests[-1] == {
            "service": "fake",
            "scope": "repository%3Abusybox%3Apull",
        }
        assert len(fake_registry.token_requests) == 3  # anon, wrong, then one for "ok"


def test_pulls_keep_their_registry_connection(fake_registry: FakeRegistry,
                                              tmp_path: Path) -> None:
    ref, creds = f"{fake_registry.address}/busybox:1", ("alice", "s3cret")
    store = ImageStore(tmp_path / "s")
    store.pull(ref, creds)
    first = fake_registry.connections
    assert store.pull(ref, creds).digest == fake_registry.tags["1"]
    assert fake_registry.connections == first  # the tag's check went over a kept connection
    with pytest.raises(PullError, match="not found"):
        store.pull(ref.replace(":1", ":nope"), creds)
    # The 404's body was never read: that connection is closed, not handed to the next pull
    # (which would read the rest of that answer as its own).
    assert store.pull(ref, creds).digest == fake_registry.tags["1"]
    assert fake_registry.connections == first + 1


def test_manifest_list_picks_host_platform(
    fake_registry: FakeRegistry, busybox_layout: Path, tmp_path: Path
) -> None:
    native = fake_registry.tags["1"]
    size = len(fake_registry.blobs[native])
    other = "s390x" if host_arch() != "s390x" else "arm64"
    decoy = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": size}
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {**decoy, "digest": "sha256:" + "0" * 64, "platform": {"os": "linux", "architecture": other}},
            {**decoy, "digest": native, "platform": {"os": "linux", "architecture": host_arch()}},
        ],
    }  # fmt: skip
    index_digest = fake_registry.add_manifest(index, "multi")
    store = ImageStore(tmp_path / "images")
    image = store.pull(f"{fake_registry.address}/busybox:multi", ("alice", "s3cret"))
    assert image.digest == index_digest  # users see the digest the tag resolved to
    assert image.config["Cmd"] == ["sh"]
    assert store.resolve(f"{fake_registry.address}/busybox:multi") == image


@pytest.mark.pure
def test_the_content_stores_caches_never_hand_out_a_shared_or_stale_record(
        tmp_path: Path) -> None:
    from fargo.agent.images.content import ContentStore

    content = ContentStore(tmp_path / "store")
    digest = "sha256:" + hashlib.sha256(b'{"config": {"Env": ["A=1"]}}').hexdigest()
    content.write_blob_bytes(digest, b'{"config": {"Env": ["A=1"]}}')
    first = content.read_json_blob(digest)
    assert first is not None
    first["config"]["Env"].append("B=2")  # a caller's change stays its own
    assert content.read_json_blob(digest) == {"config": {"Env": ["A=1"]}}

    content.record("busybox:latest", digest, "pull")
    assert content.refs()["busybox:latest"]["digest"] == digest
    content.refs()["busybox:latest"]["digest"] = "changed"  # a copy, not the cache
    assert content.refs()["busybox:latest"]["digest"] == digest
    # Another process (`fargo image import`) replaces the file: the next read sees it.
    other = tmp_path / "refs.new"
    other.write_text(json.dumps({"busybox:latest": {"digest": "sha256:" + "0" * 64,
                                                    "source": "import"}}))
    os.replace(other, content.refs_file)
    assert content.refs()["busybox:latest"] == {"digest": "sha256:" + "0" * 64,
                                                "source": "import"}
