"""The OCI distribution API as one pull speaks it to one repository: GETs with the registry's
auth dance (anonymous, then Basic or a Bearer token from the challenge's realm), tokens kept
for their lifetime, and every transport failure turned into a PullError a user can read.

Requests go through urllib3 connection pools kept for the whole process: every start checks
its image's tag against the registry, and a fresh requests.Session per pull cost ~1.1 ms of
Python for that one GET (its per-request environment, proxy and netrc look-ups) where a kept
urllib3 connection costs ~0.2, on the start's path, beside the sandbox being made."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import re
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import certifi
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationValueError,
    MaxRetryError,
    NewConnectionError,
    ReadTimeoutError,
)

from ...port.errors import PullError
from .manifest import ACCEPT
from .reference import ImageRef, digest_hex, registry_base_url

TIMEOUT = urllib3.Timeout(connect=5, read=60)  # for every registry request
CHUNK = 1 << 20
# No retries (as requests' default), redirects followed (blob stores often answer with one;
# urllib3 drops the Authorization header when one leads to another host).
RETRIES = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=10)
POOL_SIZE = 16  # connections kept per registry: a launch pulls several images at once

Credentials = tuple[str, str]
Response = urllib3.BaseHTTPResponse


class _Pools:
    """The process's connection pools: one direct, one per proxy the environment names
    (HTTP(S)_PROXY and NO_PROXY, as requests honoured them; read once per registry host, as
    the server's environment does not change under it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_proxy: dict[str | None, urllib3.PoolManager] = {}

    def for_url(self, url: str) -> urllib3.PoolManager:
        proxy = _proxy_for(url)
        with self._lock:
            pool = self._by_proxy.get(proxy)
            if pool is None:
                opts: dict[str, Any] = dict(maxsize=POOL_SIZE, retries=RETRIES,
                                            timeout=TIMEOUT, ca_certs=certifi.where())
                pool = (urllib3.ProxyManager(proxy, **opts) if proxy
                        else urllib3.PoolManager(**opts))
                self._by_proxy[proxy] = pool
            return pool


def _proxy_for(url: str) -> str | None:
    parts = urlparse(url)
    return _proxy_of(parts.scheme, parts.hostname or "")


@functools.lru_cache(maxsize=256)
def _proxy_of(scheme: str, host: str) -> str | None:
    # (getproxies walks the whole environment: ~0.1 ms a pull when asked each time)
    proxy = urllib.request.getproxies().get(scheme)
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


POOLS = _Pools()


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """A WWW-Authenticate header as (scheme, params), both lower-cased where case is free."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="?([^",]*)"?', rest)}
    return scheme.lower(), params


class AuthCache:
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


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as the registry sent it, its bytes checked against its digest."""

    digest: str
    body: bytes
    content_type: str


class RegistryClient:
    """One pull's conversation with one registry repository."""

    def __init__(
        self, ref: ImageRef, shown: str, creds: Credentials | None, auth: AuthCache
    ) -> None:
        self.ref = ref
        self.shown = shown  # the reference as the user wrote it, for error messages
        self.creds = creds
        self.auth = auth
        self.base = f"{registry_base_url(ref.registry)}/v2/{ref.repository}"

    def manifest(self, reference: str) -> Manifest:
        """GET a manifest by tag or digest; a digest must match what came back."""
        with _answer(self.get(f"manifests/{reference}", accept=ACCEPT)) as resp:
            if resp.status == 404:
                raise PullError(f"failed to resolve {self.shown}: {self.shown} not found")
            if resp.status != 200:
                raise PullError(
                    f"failed to resolve {self.shown}: registry answered {resp.status}"
                )
            body = self._read(resp)
            content_type = resp.headers.get("Content-Type", "")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise PullError(f"failed to pull {self.shown}: manifest digest mismatch")
        return Manifest(digest, body, content_type)

    def download_blob(self, digest: str, dest: Path, tmp_dir: Path) -> None:
        """Stream a blob to a temp file in tmp_dir, verify its digest, then rename it to dest."""
        expected = digest_hex(digest)
        with _answer(self.get(f"blobs/{digest}")) as resp:
            if resp.status == 404:
                raise PullError(f"failed to pull {self.shown}: blob {digest} not found")
            if resp.status != 200:
                raise PullError(f"failed to pull {self.shown}: blob {digest}: HTTP {resp.status}")
            fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="blob-")
            try:
                h = hashlib.sha256()
                with os.fdopen(fd, "wb") as out:
                    for chunk in resp.stream(CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                if h.hexdigest() != expected:
                    raise PullError(f"failed to pull {self.shown}: blob {digest} is corrupt")
                os.replace(tmp_name, dest)
            except HTTPError as exc:  # the body broke off or stalled
                raise PullError(f"failed to pull {self.shown}: {_short(exc)}") from exc
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_name)

    def get(self, path: str, accept: str | None = None) -> Response:
        """The registry's answer, its body not read yet: the caller releases it."""
        who = hashlib.sha256(repr(self.creds).encode()).hexdigest() if self.creds else ""
        key = (self.ref.registry, self.ref.repository, who)
        headers = {"Accept": accept} if accept else {}
        resp = self._send(path, headers, key)
        if resp.status == 401:
            challenge = resp.headers.get("WWW-Authenticate", "")
            _release(resp)
            self._authorize(challenge, key)
            resp = self._send(path, headers, key)
        if resp.status in (401, 403):
            _release(resp)
            raise PullError(f"pull access denied for {self.shown}: unauthorized")
        return resp

    def _send(self, path: str, headers: dict[str, str], key: tuple[str, ...]) -> Response:
        auth = self.auth.get(key)
        if auth:
            headers = {**headers, "Authorization": auth}
        return self._request(f"{self.base}/{path}", headers=headers)

    def _request(self, url: str, headers: dict[str, str] | None = None,
                 fields: dict[str, str] | None = None) -> Response:
        try:
            return POOLS.for_url(url).request("GET", url, headers=headers, fields=fields,
                                              preload_content=False)
        except MaxRetryError as exc:
            reason = exc.reason
            if isinstance(reason, ReadTimeoutError):
                raise PullError(f"failed to pull {self.shown}: request to {url} timed out"
                                ) from exc
            if isinstance(reason, (NewConnectionError, ConnectTimeoutError)):
                host = urlparse(url).netloc
                raise PullError(f"failed to pull {self.shown}: registry {host} is "
                                f"unreachable ({_why(reason)})") from exc
            raise PullError(f"failed to pull {self.shown}: {_short(reason or exc)}") from exc
        except ReadTimeoutError as exc:
            raise PullError(f"failed to pull {self.shown}: request to {url} timed out") from exc
        except (HTTPError, LocationValueError, ValueError) as exc:
            raise PullError(f"failed to pull {self.shown}: {_short(exc)}") from exc

    def _read(self, resp: Response) -> bytes:
        try:
            return resp.read()
        except HTTPError as exc:
            raise PullError(f"failed to pull {self.shown}: {_short(exc)}") from exc

    def _authorize(self, challenge: str, key: tuple[str, ...]) -> None:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic" and self.creds:
            self.auth.put(key, "Basic " + _basic(self.creds), 3600)
        elif scheme == "bearer" and params.get("realm"):
            token, lifetime = self._fetch_token(params)
            self.auth.put(key, f"Bearer {token}", lifetime)
        else:
            raise PullError(f"pull access denied for {self.shown}: unauthorized")

    def _fetch_token(self, params: dict[str, str]) -> tuple[str, float]:
        query = {"service": params.get("service", "")}
        query["scope"] = params.get("scope") or f"repository:{self.ref.repository}:pull"
        headers = {"Authorization": "Basic " + _basic(self.creds)} if self.creds else None
        with _answer(self._request(params["realm"], headers=headers, fields=query)) as resp:
            if resp.status in (401, 403):
                raise PullError(f"pull access denied for {self.shown}: unauthorized")
            if resp.status != 200:
                raise PullError(
                    f"failed to pull {self.shown}: token server answered {resp.status}"
                )
            try:
                body = json.loads(self._read(resp))
                token = body.get("token") or body["access_token"]
            except (ValueError, KeyError, AttributeError) as exc:
                raise PullError(f"failed to pull {self.shown}: bad token response") from exc
        # Renew a little early so a token never expires between check and use.
        lifetime = max(float(body.get("expires_in") or 60) - 10, 5)
        return str(token), lifetime


@contextlib.contextmanager
def _answer(resp: Response) -> Iterator[Response]:
    """resp, its connection released however the block ends."""
    try:
        yield resp
    finally:
        _release(resp)


def _release(resp: Response) -> None:
    """Hand the connection back to its pool; one whose answer was not read to the end (the
    response is closed once it was) is closed first: the rest of that answer would be read as
    the next one's."""
    if not resp.closed:
        resp.close()
    resp.release_conn()


def _basic(creds: Credentials) -> str:
    return base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()


def _why(exc: BaseException) -> str:
    """The useful part of urllib3's long connection error text (it has no error codes)."""
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
