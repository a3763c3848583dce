"""The v1 Secret as kube-apiserver checks it: base64 data under config-key names, stringData
merged into data on every write (and never stored), the required keys of each built-in type,
the type fixed once made, `immutable` freezing data, and 1 MiB at most."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .configmap import IMMUTABLE, MAX_BYTES, key_error
from .kubeerrors import KubeError, invalid
from .kubekinds import KindRule, register

OPAQUE = "Opaque"
SA_TOKEN = "kubernetes.io/service-account-token"
DOCKERCFG = "kubernetes.io/dockercfg"
DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
BASIC_AUTH = "kubernetes.io/basic-auth"
SSH_AUTH = "kubernetes.io/ssh-auth"
TLS = "kubernetes.io/tls"
SA_NAME = "kubernetes.io/service-account.name"  # the annotation a token secret is bound by
SA_UID = "kubernetes.io/service-account.uid"
# The keys each built-in type must hold (one of them, for basic-auth).
_REQUIRED = {DOCKERCFG: (".dockercfg",), DOCKER_CONFIG_JSON: (".dockerconfigjson",),
             SSH_AUTH: ("ssh-privatekey",), TLS: ("tls.crt", "tls.key")}
_JSON_KEYS = {DOCKERCFG: ".dockercfg", DOCKER_CONFIG_JSON: ".dockerconfigjson"}


def decoded(secret: dict[str, Any]) -> dict[str, bytes]:
    """The secret's values as bytes (what a volume file or a variable gets)."""
    out = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError, TypeError):
            continue  # never stored: every write was checked
    return out


def _host(key: str) -> str:
    """A docker config's registry key as a host[:port] (it may be a URL with a path)."""
    key = key.split("://", 1)[-1]
    host = key.split("/", 1)[0].lower()
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host


def image_host(image: str) -> str:
    """The registry an image reference names (Docker's rule: the first part is a host when it
    holds a dot or a port, or is localhost; otherwise Docker Hub)."""
    first = image.split("/", 1)[0] if "/" in image else ""
    if first and ("." in first or ":" in first or first == "localhost"):
        return _host(first)
    return "docker.io"


def registry_auths(secret: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """(user, password) by registry host, from a dockerconfigjson or dockercfg secret."""
    values = decoded(secret)
    raw = values.get(".dockerconfigjson") or values.get(".dockercfg")
    try:
        doc = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    if not isinstance(doc, dict):
        return {}
    auths = doc.get("auths", doc) if ".dockerconfigjson" in values else doc
    out: dict[str, tuple[str, str]] = {}
    for key, entry in (auths if isinstance(auths, dict) else {}).items():
        if not isinstance(entry, dict):
            continue
        user, password = entry.get("username"), entry.get("password")
        if not (user and password) and isinstance(entry.get("auth"), str):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                continue
        if user and password:
            out.setdefault(_host(str(key)), (str(user), str(password)))
    return out


def pull_credentials(image: str, secrets: list[dict[str, Any]]) -> tuple[str, str] | None:
    """What kubelet pulls an image with from a pod's imagePullSecrets: the first secret
    holding its registry (none: an anonymous pull)."""
    host = image_host(image)
    for s in secrets:
        found = registry_auths(s).get(host)
        if found:
            return found
    return None


def merge_string_data(obj: dict[str, Any]) -> None:
    """stringData's plain values into data (each one wins over data's), as the apiserver's
    conversion does on every write; stringData itself is never kept."""
    if "stringData" not in obj:
        return
    given = obj.pop("stringData")
    if given is None:
        return
    name = str((obj.get("metadata") or {}).get("name", ""))
    if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
        raise invalid("Secret", name, [("stringData", "Invalid value: must be a map of "
                                        "strings")])
    data = obj.get("data")
    if data is None:
        data = obj["data"] = {}
    if isinstance(data, dict):
        for key, value in given.items():
            data[key] = base64.b64encode(value.encode()).decode()


def default_secret(obj: dict[str, Any]) -> None:
    merge_string_data(obj)
    if not obj.get("type"):
        obj["type"] = OPAQUE


def _errors(obj: dict[str, Any]) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    data = obj.get("data")
    values: dict[str, bytes] = {}
    if data is not None and not isinstance(data, dict):
        errors.append(("data", "Invalid value: must be a map of base64 strings"))
        data = {}
    for key, value in (data or {}).items():
        err = key_error(key)
        if err:
            errors.append((f"data[{key}]", err))
        if not isinstance(value, str):
            errors.append((f"data[{key}]", "Invalid value: must be a base64 string"))
            continue
        try:
            values[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            # The apiserver cannot even decode such a body: a 400, not a 422.
            raise KubeError(400, "BadRequest", 'Secret in version "v1" cannot be handled as '
                            f"a Secret: illegal base64 data in data[{key[:253]}]") from None
    if sum(len(v) for v in values.values()) > MAX_BYTES:
        errors.append(("data", f"Too long: must have at most {MAX_BYTES} bytes"))
    kind = obj.get("type")
    if not isinstance(kind, str):
        errors.append(("type", "Invalid value: must be a string"))
        return errors
    if kind == SA_TOKEN:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if not annotations.get(SA_NAME):
            errors.append((f"metadata.annotations[{SA_NAME}]", "Required value"))
    for key in _REQUIRED.get(kind, ()):
        if key not in values:
            errors.append((f"data[{key}]", "Required value"))
    if kind == BASIC_AUTH and "username" not in values and "password" not in values:
        errors += [("data[username]", "Required value"), ("data[password]", "Required value")]
    json_key = _JSON_KEYS.get(kind)
    if json_key and json_key in values:
        try:
            json.loads(values[json_key])
        except ValueError as err:
            errors.append((f"data[{json_key}]", 'Invalid value: "<secret contents '
                           f'redacted>": {str(err)[:120]}'))
    if "immutable" in obj and not isinstance(obj["immutable"], bool | None):
        errors.append(("immutable", "Invalid value: must be a boolean"))
    return errors


def check_secret(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """A Secret's own rules on create and update: its type stays, an immutable one keeps
    its data."""
    errors = _errors(obj)
    if old is not None:
        if obj.get("type") != old.get("type"):
            errors.append(("type", f'Invalid value: "{str(obj.get("type"))[:253]}": field is '
                           "immutable"))
        if old.get("immutable"):
            if (obj.get("data") or {}) != (old.get("data") or {}):
                errors.append(("data", IMMUTABLE))
            if not obj.get("immutable"):
                errors.append(("immutable", IMMUTABLE))
    if errors:
        raise invalid("Secret", obj["metadata"]["name"], errors)


register(KindRule("secrets", "Secret", check=check_secret, default=default_secret))
