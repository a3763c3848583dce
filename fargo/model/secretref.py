"""A container definition's `secrets`: where each value comes from (a Secrets Manager secret,
with its json-key, version-stage and version-id suffixes, or an SSM parameter), checked as
RegisterTaskDefinition checks them; the values themselves are fetched at each start
(control/tasks/starter.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, ClientException
from .params import parse_selector

_MEMBERS = frozenset({"name", "valueFrom"})
MAX_VALUE_FROM = 2048
# arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME[-AbCdEf] then up to three fields
_SM_ARN = re.compile(r"(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:"
                     r"[A-Za-z0-9/_+=.@-]{1,512})((?::[^:]*){0,3})")
_STAGE = re.compile(r"[^\x00-\x1f]{1,256}")
_VERSION_ID = re.compile(r"[A-Za-z0-9-]{32,64}")


@dataclass(frozen=True)
class SecretsManagerRef:
    """A Secrets Manager secret, by its full or partial ARN, and what of it to take."""

    secret_id: str  # the ARN up to the secret's name (with or without its 6-character suffix)
    json_key: str | None = None  # a key of the secret's JSON object, else the whole string
    version_stage: str | None = None
    version_id: str | None = None


@dataclass(frozen=True)
class ParameterRef:
    """An SSM parameter, by name ("/a/b", "name", optionally ":version") or by ARN."""

    given: str  # as valueFrom has it: what GetParameters would be sent


SecretSource = SecretsManagerRef | ParameterRef


@dataclass(frozen=True)
class ContainerSecret:
    name: str  # the environment variable
    source: SecretSource
    value_from: str


def parse_value_from(text: str, region: str = "us-east-1") -> SecretSource:
    """What a valueFrom names; ClientException if it is neither a Secrets Manager secret's
    ARN nor an SSM parameter's name or ARN."""
    if not isinstance(text, str) or not text or len(text) > MAX_VALUE_FROM or "\x00" in text:
        raise ClientException(f"valueFrom must be 1-{MAX_VALUE_FROM} characters.")
    if text.startswith("arn:") and text.split(":")[2:3] == ["secretsmanager"]:
        return _secrets_manager(text)
    try:  # a name, a name:version or an ARN: the rules GetParameters applies
        parse_selector(text, region)
    except ApiError as err:
        raise ClientException(f"valueFrom '{text[:300]}' is neither a Secrets Manager secret "
                              f"ARN nor an SSM parameter name or ARN: {err.message}") from None
    return ParameterRef(text)


def _secrets_manager(text: str) -> SecretsManagerRef:
    m = _SM_ARN.fullmatch(text)
    if not m:
        raise ClientException(f"valueFrom '{text[:300]}' is not a Secrets Manager secret ARN "
                              "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME, optionally "
                              "followed by :json-key:version-stage:version-id).")
    key, stage, version = ([*m.group(2).split(":")[1:], "", "", ""])[:3]
    if stage and not _STAGE.fullmatch(stage):
        raise ClientException(f"valueFrom '{text[:300]}': invalid version-stage.")
    if version and not _VERSION_ID.fullmatch(version):
        raise ClientException(f"valueFrom '{text[:300]}': invalid version-id (32 to 64 "
                              "letters, digits and hyphens).")
    return SecretsManagerRef(m.group(1), key or None, stage or None, version or None)


def parse_secrets(secrets: Any, container: str, region: str = "us-east-1") -> list[ContainerSecret]:
    """The secrets of one container definition, or ClientException naming what is wrong."""
    where = f"Container '{container[:255]}'"
    if secrets is None:
        return []
    if not isinstance(secrets, list):
        raise ClientException(f"{where}: secrets must be a list of {{name, valueFrom}}.")
    out: list[ContainerSecret] = []
    seen: set[str] = set()
    for item in secrets:
        if not isinstance(item, dict):
            raise ClientException(f"{where}: every secret is an object {{name, valueFrom}}.")
        unknown = sorted(set(item) - _MEMBERS)
        if unknown:
            raise ClientException(f"{where}: unknown secret member '{str(unknown[0])[:100]}'.")
        name, value_from = item.get("name"), item.get("valueFrom")
        if not isinstance(name, str) or not name or not isinstance(value_from, str) \
                or not value_from:
            raise ClientException(f"{where}: every secret needs a name and a valueFrom.")
        if "=" in name or "\x00" in name or len(name) > 255:
            raise ClientException(f"{where}: secret name '{name[:255]}' is no environment "
                                  "variable name (1-255 characters, no '=' or NUL).")
        if name in seen:
            raise ClientException(f"{where}: secret name '{name[:255]}' is given twice.")
        seen.add(name)
        try:
            source = parse_value_from(value_from, region)
        except ClientException as err:
            raise ClientException(f"{where}: secret '{name[:255]}': {err.message}") from None
        out.append(ContainerSecret(name, source, value_from))
    return out


def check_secrets(secrets: Any, container: str) -> None:
    """ClientException naming the field for a secrets list ECS would refuse."""
    parse_secrets(secrets, container)
