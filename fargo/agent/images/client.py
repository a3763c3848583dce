"""The OCI distribution API as one pull speaks it to one repository: GETs with the registry's
auth dance (anonymous, then Basic or a Bearer token from the challenge's realm), tokens kept
for their lifetime, and every transport failure turned into a PullError a user can read."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

from ...port.errors import PullError
from .manifest import ACCEPT
from .reference import ImageRef, digest_hex, registry_base_url

TIMEOUT = (5, 60)  # (connect, read) seconds for every registry request
CHUNK = 1 << 20

Credentials = tuple[str, str]


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
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def manifest(self, reference: str) -> Manifest:
        """GET a manifest by tag or digest; a digest must match what came back."""
        resp = self.get(f"manifests/{reference}", accept=ACCEPT)
        with resp:
            if resp.status_code == 404:
                raise PullError(f"failed to resolve {self.shown}: {self.shown} not found")
            if resp.status_code != 200:
                raise PullError(
                    f"failed to resolve {self.shown}: registry answered {resp.status_code}"
                )
            body = resp.content
            content_type = resp.headers.get("Content-Type", "")
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise PullError(f"failed to pull {self.shown}: manifest digest mismatch")
        return Manifest(digest, body, content_type)

    def download_blob(self, digest: str, dest: Path, tmp_dir: Path) -> None:
        """Stream a blob to a temp file in tmp_dir, verify its digest, then rename it to dest."""
        expected = digest_hex(digest)
        resp = self.get(f"blobs/{digest}", stream=True)
        with resp:
            if resp.status_code == 404:
                raise PullError(f"failed to pull {self.shown}: blob {digest} not found")
            if resp.status_code != 200:
                raise PullError(
                    f"failed to pull {self.shown}: blob {digest}: HTTP {resp.status_code}"
                )
            fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="blob-")
            try:
                h = hashlib.sha256()
                with os.fdopen(fd, "wb") as out:
                    for chunk in resp.iter_content(CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                if h.hexdigest() != expected:
                    raise PullError(f"failed to pull {self.shown}: blob {digest} is corrupt")
                os.replace(tmp_name, dest)
            except requests.RequestException as exc:
                raise PullError(f"failed to pull {self.shown}: {_short(exc)}") from exc
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_name)

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
            host = urlparse(url).netloc
            raise PullError(
                f"failed to pull {self.shown}: registry {host} is unreachable ({_why(exc)})"
            ) from exc
        except requests.Timeout as exc:
            raise PullError(f"failed to pull {self.shown}: request to {url} timed out") from exc
        except requests.RequestException as exc:
            raise PullError(f"failed to pull {self.shown}: {_short(exc)}") from exc

    def _authorize(self, challenge: str, key: tuple[str, ...]) -> None:
        scheme, params = parse_challenge(challenge)
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
