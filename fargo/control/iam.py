"""Who may call fargo: access keys kept in the state, and short-lived role credentials."""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass

from ..model.names import ACCOUNT
from ..store.sqlite import Store

ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ROLE_CREDENTIAL_TTL = 6 * 3600.0  # what Fargate's task role credentials live, about
_UPPER = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class Key:
    id: str
    secret: str
    principal: str
    token: str | None = None
    expires: float | None = None


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_UPPER) for _ in range(16))


class Iam:
    def __init__(self, store: Store):
        self.store = store

    def ensure_root_key(self) -> Key:
        """The first start makes one long-lived key for the account's root."""
        keys = self.store.long_lived_keys()
        if keys:
            k = keys[0]
            return Key(k["id"], k["secret"], k["principal"])
        key = Key(_new_id("AKIA"), secrets.token_urlsafe(30), ROOT)
        self.store.put_key(key.id, key.secret, key.principal, None, None, time.time())
        return key

    def issue_role_credentials(self, role_arn: str, ttl: float = ROLE_CREDENTIAL_TTL) -> Key:
        """Temporary credentials for a task role: id, secret and session token, with expiry."""
        now = time.time()
        self.store.drop_expired_keys(now)
        key = Key(_new_id("ASIA"), secrets.token_urlsafe(30), role_arn,
                  secrets.token_urlsafe(96), now + ttl)
        self.store.put_key(key.id, key.secret, key.principal, key.token, key.expires, now)
        return key

    def kube_token(self, cluster_key: str, create: bool = True) -> str | None:
        """The bearer token of one EKS cluster's Kubernetes API. The key carries the cluster's
        creation time, so a cluster made again under the same name gets a new token."""
        meta = f"kube-token/{cluster_key}"
        token = self.store.get_meta(meta)
        if token is None and create:
            token = "fargo." + secrets.token_urlsafe(32)
            self.store.put_meta(meta, token)
        return token

    def current_role_credentials(self, role_arn: str, key_id: str | None) -> Key:
        """The role key a task holds, or a fresh one when it is missing or has less than a
        quarter of an hour left: handed out well before expiry, as Fargate does."""
        key = self.lookup(key_id) if key_id else None
        if key is None or key.principal != role_arn or (key.expires or 0) < time.time() + 900:
            key = self.issue_role_credentials(role_arn)
        return key

    def lookup(self, key_id: str) -> Key | None:
        k = self.store.get_key(key_id)
        if k is None:
            return None
        return Key(k["id"], k["secret"], k["principal"], k["token"], k["expires"])
