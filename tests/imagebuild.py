"""Build small test images without a Docker engine or internet.

The image is Debian's static busybox packed as an OCI image layout; skopeo moves it into a
registry or an archive. Layer tars are deterministic (mtime 0, fixed owners, sorted entries)
so digests stay stable between runs.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib._bootstrap_external
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")

APPLETS = [
    "sh", "ls", "cat", "echo", "sleep", "httpd", "wget", "nc", "env", "id", "ps", "top",
    "hostname", "ip", "ifconfig", "dd", "head", "tail", "true", "false", "mkdir", "touch", "rm",
    "grep", "seq", "yes", "kill", "cp", "mv", "ln", "chmod", "wc", "stat", "mount", "uname",
    "whoami", "pwd", "printf", "test", "date", "df", "free", "cut", "sed", "awk", "timeout",
]  # fmt: skip

PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnobody:x:65534:\n"
INDEX_HTML = b"hello from fargo\n"

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def _info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = link
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


TarEntry = tuple[tarfile.TarInfo, bytes | None]


def dir_entry(name: str, mode: int = 0o755) -> TarEntry:
    return _info(name, tarfile.DIRTYPE, mode), None


def file_entry(name: str, data: bytes, mode: int = 0o644) -> TarEntry:
    return _info(name, tarfile.REGTYPE, mode, len(data)), data


def symlink_entry(name: str, target: str) -> TarEntry:
    return _info(name, tarfile.SYMTYPE, 0o777, link=target), None


def hardlink_entry(name: str, target: str) -> TarEntry:
    return _info(name, tarfile.LNKTYPE, 0o644, link=target), None


def make_tar(entries: list[TarEntry]) -> bytes:
    """A tar archive of the given entries, in the given order (parents before children)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    # mtime=0 and no file name keep the gzip header, and so the digest, reproducible.
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
        gz.write(data)
    return buf.getvalue()


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def busybox_entries(extra_files: dict[str, bytes] | None = None) -> list[TarEntry]:
    entries: list[TarEntry] = [
        dir_entry("bin"),
        file_entry("bin/busybox", BUSYBOX.read_bytes(), 0o755),
    ]
    entries += [symlink_entry(f"bin/{a}", "busybox") for a in APPLETS]
    entries += [
        dir_entry("etc"),
        file_entry("etc/passwd", PASSWD),
        file_entry("etc/group", GROUP),
        dir_entry("tmp", 0o1777),
        dir_entry("root", 0o700),
        dir_entry("proc"),
        dir_entry("sys"),
        dir_entry("dev"),
        dir_entry("www"),
        file_entry("www/index.html", INDEX_HTML),
    ]
    seen = {info.name for info, _ in entries}
    for name, data in sorted((extra_files or {}).items()):
        name = name.lstrip("/")
        for parent in _parents(name):
            if parent not in seen:
                seen.add(parent)
                entries.append(dir_entry(parent))
        entries.append(file_entry(name, data, 0o755 if data.startswith(b"#!") else 0o644))
    return entries


def _write_blob(layout: Path, data: bytes) -> str:
    hexdigest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / hexdigest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"sha256:{hexdigest}"


def _json_bytes(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def write_oci_layout(
    dest_dir: Path,
    layers: list[tuple[bytes, str]],
    config: dict | None = None,
    tag: str = "latest",
) -> Path:
    """Write an OCI layout with the given (blob, media type) layers, bottom first."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    (dest_dir / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    diff_ids, descriptors = [], []
    for blob, media_type in layers:
        raw = gzip.decompress(blob) if media_type.endswith("+gzip") else blob
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        digest = _write_blob(dest_dir, blob)
        descriptors.append({"mediaType": media_type, "digest": digest, "size": len(blob)})
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": config if config is not None else {"Cmd": ["sh"], "Env": [DEFAULT_PATH]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "fargo imagebuild"}],
    }
    config_bytes = _json_bytes(image_config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {
            "mediaType": MEDIA_CONFIG,
            "digest": _write_blob(dest_dir, config_bytes),
            "size": len(config_bytes),
        },
        "layers": descriptors,
    }
    manifest_bytes = _json_bytes(manifest)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": MEDIA_MANIFEST,
                "digest": _write_blob(dest_dir, manifest_bytes),
                "size": len(manifest_bytes),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (dest_dir / "index.json").write_bytes(_json_bytes(index))
    return dest_dir


def build_busybox_oci(
    dest_dir: Path,
    *,
    extra_files: dict[str, bytes] | None = None,
    config: dict | None = None,
) -> Path:
    """An OCI image layout (tag "latest") with one gzip layer holding busybox and friends.

    `config` replaces the default image config object ({"Cmd": ["sh"], "Env": [PATH]}).
    """
    layer = gzip_bytes(make_tar(busybox_entries(extra_files)))
    return write_oci_layout(dest_dir, [(layer, MEDIA_LAYER_GZIP)], config)


def layout_manifest_digest(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    return str(index["manifests"][0]["digest"])


def push_layout(layout: Path, registry: str, name: str) -> str:
    """Push the layout to registry (plain HTTP) as NAME (may carry :tag); returns the digest."""
    digest_file = layout.parent / f".{layout.name}.pushed-digest"
    subprocess.run(
        [
            "skopeo", "copy", "--quiet", "--dest-tls-verify=false",
            "--digestfile", str(digest_file),
            f"oci:{layout}", f"docker://{registry}/{name}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    try:
        return digest_file.read_text().strip()
    finally:
        digest_file.unlink(missing_ok=True)


def save_archive(layout: Path, path: Path, name: str, *, docker: bool = False) -> Path:
    """Pack the layout into an OCI archive tar, or a `docker save`-style tar with docker=True.

    For the docker form `name` should look like "repo:tag" (skopeo requires a tag there).
    """
    path.unlink(missing_ok=True)  # skopeo refuses to overwrite an existing archive
    dest = f"docker-archive:{path}:{name}" if docker else f"oci-archive:{path}:{name}"
    subprocess.run(
        ["skopeo", "copy", "--quiet", f"oci:{layout}", dest], check=True, capture_output=True
    )
    return path


# ---------------------------------------------------------------- the host's python in a layer

PY_HOME = "usr/local"  # where the image's python lives (its prefix)
_TRACER = """
import json, sys
seen = set()
def hook(event, args):
    if event == "open" and isinstance(args[0], str):
        seen.add(args[0])
out, script = sys.argv[1], sys.argv[2]
sys.argv = sys.argv[2:]
sys.addaudithook(hook)
try:
    with open(script) as fh:
        exec(compile(fh.read(), script, "exec"), {"__name__": "__main__", "__file__": script})
finally:
    seen.update(m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None))
    with open(out, "w") as fh:
        json.dump(sorted(seen), fh)
"""


def trace_python(script: Path, env: dict[str, str]) -> list[str]:
    """Every file the host's python3 reads while it runs `script` (with `python3 -I` and only
    `env`): the modules it imports and the data files they open, as an audit hook sees them.
    The script must exercise every path it will take inside the image."""
    out = script.parent / f".{script.name}.trace.json"
    res = subprocess.run([sys.executable, "-I", "-c", _TRACER, str(out), str(script)],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"traced script failed: {res.stdout}{res.stderr}")
    try:
        return list(json.loads(out.read_text()))
    finally:
        out.unlink(missing_ok=True)


def _stripped(path: Path) -> bytes:
    """A shared object without its debug sections (pyenv's libpython: 23 MB -> 6 MB)."""
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "lib"
        subprocess.run(["strip", "--strip-debug", "-o", str(dest), str(path)], check=True,
                       capture_output=True)
        return dest.read_bytes()


def _needed(elf: Path) -> dict[str, Path]:
    """ldd's answer: soname (or the loader's own path) -> the host file."""
    out = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, check=False).stdout
    found: dict[str, Path] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "=>" and parts[2].startswith("/"):
            found[parts[0]] = Path(parts[2])
        elif parts and parts[0].startswith("/"):  # the dynamic loader, by absolute path
            found[parts[0]] = Path(parts[0])
    return found


def python_layer(files: list[str]) -> bytes:
    """A layer holding the host's python3 at /usr/local with just `files` (trace_python's)
    of its prefix, each module as a sourceless .pyc, and the shared libraries that python
    and its extension modules need (ldd), in /usr/local/lib (LD_LIBRARY_PATH) except the
    loader, which stays where ELF interpreters name it."""
    prefix = Path(sys.base_prefix)
    exe = Path(os.path.realpath(sys.executable))
    content: dict[str, tuple[bytes, int]] = {}
    elves = [exe]
    for name in files:
        path = Path(name)
        if prefix not in path.parents or "__pycache__" in path.parts or not path.is_file():
            continue
        rel = f"{PY_HOME}/{path.relative_to(prefix)}"
        if path.suffix == ".py":
            code = compile(path.read_bytes(), "/" + rel, "exec", dont_inherit=True)
            pyc = importlib._bootstrap_external._code_to_timestamp_pyc(code)  # type: ignore
            content[rel + "c"] = bytes(pyc), 0o644
        elif path.suffix == ".so" or ".so." in path.name:
            content[rel] = _stripped(path), 0o755
            elves.append(path)
        else:
            content[rel] = path.read_bytes(), 0o644
    content[f"{PY_HOME}/bin/{exe.name}"] = exe.read_bytes(), 0o755
    for elf in elves:
        for soname, lib in _needed(elf).items():
            dest = soname.lstrip("/") if soname.startswith("/") else f"{PY_HOME}/lib/{soname}"
            if dest not in content:
                content[dest] = _stripped(lib.resolve()), 0o755
    stdlib = f"{PY_HOME}/lib/python{sys.version_info.major}.{sys.version_info.minor}"
    entries: list[TarEntry] = []
    seen: set[str] = set()
    for name in sorted(content) + [f"{stdlib}/lib-dynload/"]:  # a landmark of the prefix
        for parent in _parents(name) + ([name.rstrip("/")] if name.endswith("/") else []):
            if parent not in seen:
                seen.add(parent)
                entries.append(dir_entry(parent))
        if not name.endswith("/"):
            data, mode = content[name]
            entries.append(file_entry(name, data, mode))
    entries.append(symlink_entry(f"{PY_HOME}/bin/python3", exe.name))
    return make_tar(entries)


PYTHON_ENV = [DEFAULT_PATH, f"LD_LIBRARY_PATH=/{PY_HOME}/lib"]


def build_python_oci(dest_dir: Path, files: list[str],
                     extra_files: dict[str, bytes] | None = None) -> Path:
    """busybox plus a second, uncompressed layer with python3 and the traced `files`."""
    busybox = gzip_bytes(make_tar(busybox_entries(extra_files)))
    return write_oci_layout(dest_dir, [(busybox, MEDIA_LAYER_GZIP),
                                       (python_layer(files), MEDIA_LAYER_TAR)],
                            {"Cmd": ["python3"], "Env": PYTHON_ENV})


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.imagebuild REGISTRY NAME:TAG`: build the busybox image and push it."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        raise SystemExit("usage: python -m tests.imagebuild REGISTRY NAME:TAG")
    with tempfile.TemporaryDirectory() as tmp:
        layout = build_busybox_oci(Path(tmp) / "layout")
        digest = push_layout(layout, args[0], args[1])
    print(f"{args[0]}/{args[1]} {digest}")


if __name__ == "__main__":
    main()
