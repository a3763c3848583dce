"""Checking AWS Signature Version 4 on incoming requests, with botocore doing the signing
arithmetic, so fargo computes exactly what the SDKs compute."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ..control.iam import Iam, Key

MAX_SKEW = datetime.timedelta(minutes=15)
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<sig>[0-9a-f]{64})$")


class AuthError(Exception):
    """kind: missing | unknown_key | bad_signature | expired_request | expired_token |
    wrong_scope; each face maps it to its service's own error code."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Caller:
    key: Key
    region: str
    service: str


def verify(*, method: str, host: str, raw_path: str, headers: dict[str, str], body: bytes,
           service: str, region: str, iam: Iam, now: datetime.datetime | None = None) -> Caller:
    """Verify the request's Authorization header; return who signed it. A fargo server is one
    regional endpoint, so a signature scoped to another region is refused, as AWS does."""
    auth = headers.get("authorization")
    if not auth:
        raise AuthError("missing", "Missing Authentication Token")
    m = _AUTH.match(auth.strip())
    if not m:
        raise AuthError("bad_signature", "Authorization header is not AWS4-HMAC-SHA256 with "
                        "Credential, SignedHeaders and Signature.")
    parts = m.group("cred").split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise AuthError("bad_signature", "Credential should be scoped to a valid region, "
                        "service and 'aws4_request'.")
    key_id, day, scope_region, scope_service, _ = parts
    if scope_service != service:
        raise AuthError("wrong_scope", f"Credential should be scoped to correct service: "
                        f"'{service}'.")
    if scope_region != region:
        raise AuthError("wrong_scope", f"Credential should be scoped to a valid region, "
                        f"not '{scope_region[:64]}'. This endpoint serves '{region}'.")
    stamp = headers.get("x-amz-date", "")
    try:
        when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.UTC)
    except ValueError:
        raise AuthError("bad_signature", "X-Amz-Date is missing or malformed.") from None
    if stamp[:8] != day:
        raise AuthError("bad_signature", "Credential date does not match X-Amz-Date.")
    now = now or datetime.datetime.now(datetime.UTC)
    if abs(now - when) > MAX_SKEW:
        raise AuthError("expired_request", f"Signature expired: {stamp} is now earlier than "
                        f"{(now - MAX_SKEW).strftime('%Y%m%dT%H%M%SZ')} "
                        f"({now.strftime('%Y%m%dT%H%M%SZ')} - 15 min.)")
    key = iam.lookup(key_id)
    if key is None:
        raise AuthError("unknown_key", "The security token included in the request is invalid.")
    if key.token is not None:
        if not hmac.compare_digest(headers.get("x-amz-security-token", ""), key.token):
            raise AuthError("unknown_key",
                            "The security token included in the request is invalid.")
        if key.expires is not None and key.expires < now.timestamp():
            raise AuthError("expired_token",
                            "The security token included in the request is expired")
    # The signature covers the body only through this hash: it must be the body's own.
    digest = hashlib.sha256(body).hexdigest()
    if headers.get("x-amz-content-sha256", digest) != digest:
        raise AuthError("bad_signature", "The provided 'x-amz-content-sha256' header does not "
                        "match what was computed.")
    signed = m.group("signed").split(";")
    if "host" not in signed:
        raise AuthError("bad_signature", "The host header must be signed.")
    wanted = {name: headers.get(name, "") for name in signed}
    if "host" in wanted and not wanted["host"]:
        wanted["host"] = host
    request = AWSRequest(method=method, url=f"http://{wanted['host']}{raw_path}", data=body,
                         headers=wanted)
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(key.id, key.secret, key.token), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, m.group("sig")):
        raise AuthError("bad_signature", "The request signature we calculated does not match "
                        "the signature you provided. Check your AWS Secret Access Key and "
                        "signing method.")
    return Caller(key, region, service)
