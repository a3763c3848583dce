"""A small Secrets Manager: where `repositoryCredentials` point, as on AWS. The rules and the
store calls; api/secrets.py parses the requests and renders the answers."""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..model.errors import ApiError
from ..model.names import ACCOUNT
from ..store.sqlite import Store

_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_SUFFIX = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_SECRET = 65536


def _invalid(message: str) -> ApiError:
    return ApiError(message, code="InvalidParameterException")


def _not_found() -> ApiError:
    return ApiError("Secrets Manager can't find the specified secret.",
                    code="ResourceNotFoundException")


@dataclass
class Secret:
    arn: str
    name: str
    value: str  # SecretString: fargo keeps no binary secrets
    version_id: str
    created: float
    changed: float
    description: str = ""
    tags: list[dict[str, str]] = field(default_factory=list)  # [{"Key": .., "Value": ..}]

    # The store keeps the document under the API's own member names, as it always has.
    def to_doc(self) -> dict[str, object]:
        return {"ARN": self.arn, "Name": self.name, "Description": self.description,
                "SecretString": self.value, "VersionId": self.version_id,
                "CreatedDate": self.created, "LastChangedDate": self.changed,
                "Tags": self.tags}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Secret:
        return cls(arn=doc["ARN"], name=doc["Name"], value=doc["SecretString"],
                   version_id=doc["VersionId"], created=doc["CreatedDate"],
                   changed=doc["LastChangedDate"], description=doc.get("Description", ""),
                   tags=doc.get("Tags") or [])


def _checked_value(value: str | None, binary: str | bytes | None) -> str:
    if binary is not None:
        raise _invalid("fargo keeps only SecretString values.")
    if value is None:
        raise _invalid("You must provide SecretString.")
    if len(value.encode()) > MAX_SECRET:
        raise _invalid("SecretString is larger than 65536 bytes.")
    return value


class Secrets:
    def __init__(self, store: Store):
        self.store = store

    def find(self, secret_id: str) -> Secret:
        """By name or by ARN (whose name carries a 6-character suffix)."""
        if secret_id.startswith("arn:"):
            for doc in self.store.list_secrets():
                if doc["ARN"] == secret_id or doc["ARN"].startswith(secret_id + "-"):
                    return Secret.from_doc(doc)
            raise _not_found()
        found = self.store.get_secret(secret_id) if _NAME.match(secret_id) else None
        if found is None:
            raise _not_found()
        return Secret.from_doc(found)

    def create_secret(self, name: str, region: str, *, value: str | None,
                      binary: str | bytes | None = None, description: str = "",
                      client_token: str | None = None,
                      tags: list[dict[str, str]] | None = None) -> Secret:
        if not _NAME.match(name):
            raise _invalid("Invalid name. Must be 1-512 characters of letters, digits and /_+=.@-")
        if self.store.get_secret(name):
            raise ApiError(f"The operation failed because the secret {name} already exists.",
                           code="ResourceExistsException")
        suffix = "".join(secrets.choice(_SUFFIX) for _ in range(6))
        now = time.time()
        secret = Secret(arn=f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{name}-{suffix}",
                        name=name, description=description,
                        value=_checked_value(value, binary),
                        version_id=client_token or str(uuid.uuid4()),
                        created=now, changed=now, tags=tags or [])
        self.store.put_secret(secret.to_doc())
        return secret

    def put_secret_value(self, secret_id: str, *, value: str | None,
                         binary: str | bytes | None = None,
                         client_token: str | None = None) -> Secret:
        secret = self.find(secret_id)
        secret.value = _checked_value(value, binary)
        secret.version_id = client_token or str(uuid.uuid4())
        secret.changed = time.time()
        self.store.put_secret(secret.to_doc())
        return secret

    def list_secrets(self) -> list[Secret]:
        return [Secret.from_doc(d) for d in self.store.list_secrets()]

    def delete_secret(self, secret_id: str) -> tuple[Secret, float]:
        """The secret as it was, and when it went (fargo deletes at once)."""
        secret = self.find(secret_id)
        self.store.delete_secret(secret.name)
        return secret, time.time()

    def registry_credentials(self, secret_id: str) -> tuple[str, str]:
        """The (username, password) a task's repositoryCredentials name."""
        secret = self.find(secret_id)
        try:
            value = json.loads(secret.value)
            return str(value["username"]), str(value["password"])
        except (ValueError, KeyError, TypeError):
            raise _invalid("The secret does not hold JSON with 'username' and "
                           "'password'.") from None
