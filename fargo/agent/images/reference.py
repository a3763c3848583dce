"""Names of images and their parts: Docker's reference grammar
(`[host[:port]/]repository[:tag][@digest]`) with Docker Hub's defaults, sha256 digests, and
which registries are spoken to over plain HTTP."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...port.errors import InvalidSpec, PullError

DOCKER_HUB = "registry-1.docker.io"
DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", DOCKER_HUB}

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(
    r"^(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::[0-9]+)?$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


@dataclass
class ImageRef:
    registry: str
    repository: str
    reference: str  # a tag or a "sha256:..." digest

    @classmethod
    def parse(cls, s: str) -> ImageRef:
        """Parse a Docker-style image reference, filling in Docker Hub defaults."""
        if not s or s != s.strip() or len(s) > 4096:
            raise InvalidSpec(f"invalid image reference {s!r}")
        name, digest = s, ""
        if "@" in s:
            name, digest = s.split("@", 1)
            if not DIGEST_RE.match(digest):
                raise InvalidSpec(f"invalid digest in image reference {s!r}")
        tag = ""
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name, tag = name.rsplit(":", 1)
            if not _TAG_RE.match(tag):
                raise InvalidSpec(f"invalid tag in image reference {s!r}")
        registry, repository = _split_domain(name)
        if not _REPOSITORY_RE.match(repository) or len(repository) > 255:
            raise InvalidSpec(f"invalid repository name in image reference {s!r}")
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
            raise InvalidSpec(f"invalid registry host {first!r}")
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


def digest_hex(digest: str) -> str:
    """The hex part of a sha256 digest: the file name of its blob or layer. Anything else
    (another algorithm, a path) is refused before it can name a file."""
    if not DIGEST_RE.match(digest):
        raise PullError(f"unsupported or malformed digest {digest!r}")
    return digest.split(":", 1)[1]
