"""A small Secrets Manager: where `repositoryCredentials` point, as on AWS."""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from typing import Any

from ..model.errors import ApiError
from ..model.names import ACCOUNT
from ..store.sqlite import Store

_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
MAX_SECRET = 65536


def _err(code: str, message: str) -> ApiError:
    return ApiError(message, code=code)


def _not_found() -> ApiError:
    return _err("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")


class Secrets:
    def __init__(self, store: Store):
        self.store = store

    def _find(self, secret_id: str) -> dict[str, Any]:
        """By name or by ARN (whose name carries a 6-character suffix)."""
        if secret_id.startswith("arn:"):
            for doc in self.store.list_secrets():
                if doc["ARN"] == secret_id or doc["ARN"].startswith(secret_id + "-"):
                    return doc
            raise _not_found()
        doc = self.store.get_secret(secret_id) if _NAME.match(secret_id) else None
        if doc is None:
            raise _not_found()
        return doc

    @staticmethod
    def _value(p: dict[str, Any]) -> str:
        if "SecretBinary" in p:
            raise _err("InvalidParameterException", "fargo keeps only SecretString values.")
        value = p.get("SecretString")
        if value is None:
            raise _err("InvalidParameterException", "You must provide SecretString.")
        if len(value.encode()) > MAX_SECRET:
            raise _err("InvalidParameterException", "SecretString is larger than 65536 bytes.")
        return value

    def create_secret(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        name = p["Name"]
        if not _NAME.match(name):
            raise _err("InvalidParameterException",
                       "Invalid name. Must be 1-512 characters of letters, digits and /_+=.@-")
        if self.store.get_secret(name):
            raise _err("ResourceExistsException",
                       f"The operation failed because the secret {name} already exists.")
        suffix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
                         for _ in range(6))
        now = time.time()
        doc = {"ARN": f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{name}-{suffix}",
               "Name": name, "Description": p.get("Description", ""),
               "SecretString": self._value(p),
               "VersionId": p.get("ClientRequestToken") or str(uuid.uuid4()),
               "CreatedDate": now, "LastChangedDate": now, "Tags": p.get("Tags") or []}
        self.store.put_secret(doc)
        return {"ARN": doc["ARN"], "Name": name, "VersionId": doc["VersionId"]}

    def put_secret_value(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        doc = self._find(p["SecretId"])
        doc["SecretString"] = self._value(p)
        doc["VersionId"] = p.get("ClientRequestToken") or str(uuid.uuid4())
        doc["LastChangedDate"] = time.time()
        self.store.put_secret(doc)
        return {"ARN": doc["ARN"], "Name": doc["Name"], "VersionId": doc["VersionId"],
                "VersionStages": ["AWSCURRENT"]}

    def get_secret_value(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        doc = self._find(p["SecretId"])
        return {"ARN": doc["ARN"], "Name": doc["Name"], "VersionId": doc["VersionId"],
                "SecretString": doc["SecretString"], "VersionStages": ["AWSCURRENT"],
                "CreatedDate": doc["CreatedDate"]}

    def describe_secret(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        return self._describe(self._find(p["SecretId"]))

    @staticmethod
    def _describe(doc: dict[str, Any]) -> dict[str, Any]:
        return {k: doc[k] for k in ("ARN", "Name", "Description", "LastChangedDate",
                                    "CreatedDate", "Tags")}

    def list_secrets(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        return {"SecretList": [self._describe(d) for d in self.store.list_secrets()]}

    def delete_secret(self, p: dict[str, Any], region: str) -> dict[str, Any]:
        doc = self._find(p["SecretId"])
        self.store.delete_secret(doc["Name"])
        return {"ARN": doc["ARN"], "Name": doc["Name"], "DeletionDate": time.time()}

    def registry_credentials(self, secret_id: str) -> tuple[str, str]:
        """The (username, password) a task's repositoryCredentials name."""
        doc = self._find(secret_id)
        try:
            value = json.loads(doc["SecretString"])
            return str(value["username"]), str(value["password"])
        except (ValueError, KeyError, TypeError):
            raise _err("InvalidParameterException", "The secret does not hold JSON with "
                       "'username' and 'password'.") from None

    def handlers(self) -> dict[str, Any]:
        return {"CreateSecret": self.create_secret, "GetSecretValue": self.get_secret_value,
                "PutSecretValue": self.put_secret_value, "DescribeSecret": self.describe_secret,
                "ListSecrets": self.list_secrets, "DeleteSecret": self.delete_secret}
