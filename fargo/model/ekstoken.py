"""EKS's IAM bearer tokens, read and checked as EKS reads them: `k8s-aws-v1.` and the
unpadded base64url of an STS GetCallerIdentity URL presigned with SigV4 query parameters,
its signed `x-k8s-aws-id` header naming the cluster. EKS hands such a URL to STS; fargo is
the STS that holds the keys, so it checks the signature itself (botocore computes it, as the
signer did). Also the callers' identities as STS names them (GetCallerIdentity, EKS's
mappings): pure functions, no I/O."""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .names import ACCOUNT

PREFIX = "k8s-aws-v1."
CLUSTER_HEADER = "x-k8s-aws-id"
STS_VERSION = "2011-06-15"
LIFETIME = datetime.timedelta(minutes=15)  # what an EKS token lives from its X-Amz-Date
AHEAD = datetime.timedelta(minutes=5)  # how far a signer's clock may run ahead of ours
MAX_EXPIRES = 900  # X-Amz-Expires may not claim more than the token's 15 minutes
MAX_TOKEN = 4096  # characters; aws-iam-authenticator's bound too
_REQUIRED = ("Action", "Version", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
             "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature")
_ALLOWED = frozenset((*_REQUIRED, "X-Amz-Security-Token"))
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_SIGNATURE = re.compile(r"^[0-9a-f]{64}$")
_STAMP = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
_STS_HOST = re.compile(r"^sts(-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com$")
GLOBAL_STS = "sts.amazonaws.com"  # signs for us-east-1


class TokenError(ValueError):
    """Why a token is refused (for the log: the client only ever hears 401 Unauthorized)."""


@dataclass(frozen=True)
class Presigned:
    """A token's presigned URL, its parts checked for form only."""
    scheme: str
    host: str  # the URL's netloc, as the signer's Host header had it
    params: tuple[tuple[str, str], ...]  # decoded, without X-Amz-Signature
    key_id: str
    day: str
    region: str
    stamp: str
    when: datetime.datetime
    expires: int
    signature: str
    session_token: str | None


def _decode(token: str) -> str:
    if not token.startswith(PREFIX):
        raise TokenError("not an EKS token (no k8s-aws-v1. prefix)")
    if len(token) > MAX_TOKEN:
        raise TokenError(f"token longer than {MAX_TOKEN} characters")
    body = token[len(PREFIX):]
    if not _B64URL.fullmatch(body):
        raise TokenError("token is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise TokenError("token is not unpadded base64url of a UTF-8 URL") from None


def parse(token: str) -> Presigned:
    """The token's presigned GetCallerIdentity URL, or TokenError for anything else."""
    url = _decode(token)
    try:
        parts = urlsplit(url)
        host = parts.netloc
    except ValueError:
        raise TokenError("token does not hold a URL") from None
    if parts.scheme not in ("https", "http") or not host or "@" in host:
        raise TokenError("token URL is not http(s)://HOST/")
    if parts.path != "/" or parts.fragment:
        raise TokenError("token URL's path is not /")
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True,
                          errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise TokenError("token URL's query is malformed") from None
    query: dict[str, str] = {}
    for key, value in pairs:
        if key not in _ALLOWED:
            raise TokenError(f"token URL has parameter {key[:40]!r}")
        if key in query:
            raise TokenError(f"token URL repeats {key}")
        query[key] = value
    missing = [k for k in _REQUIRED if k not in query]
    if missing:
        raise TokenError(f"token URL lacks {', '.join(missing)}")
    if query["Action"] != "GetCallerIdentity":
        raise TokenError(f"token URL's Action is {query['Action'][:40]!r}, not "
                         "GetCallerIdentity")
    if query["Version"] != STS_VERSION:
        raise TokenError(f"token URL's Version is not {STS_VERSION}")
    if query["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
        raise TokenError("token URL is not signed with AWS4-HMAC-SHA256")
    cred = query["X-Amz-Credential"].split("/")
    if len(cred) != 5 or cred[3] != "sts" or cred[4] != "aws4_request" or not cred[0]:
        raise TokenError("token URL's credential is not scoped KEY/DAY/REGION/sts/aws4_request")
    signed = query["X-Amz-SignedHeaders"].split(";")
    # Headers other than these two would carry values the token does not hold.
    if sorted(signed) != ["host", CLUSTER_HEADER] or signed != sorted(signed):
        raise TokenError(f"token URL's SignedHeaders are not host;{CLUSTER_HEADER}")
    stamp = query["X-Amz-Date"]
    if not _STAMP.fullmatch(stamp):
        raise TokenError("token URL's X-Amz-Date is malformed")
    try:
        when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.UTC)
    except ValueError:
        raise TokenError("token URL's X-Amz-Date is malformed") from None
    if cred[1] != stamp[:8]:
        raise TokenError("token URL's credential day is not its X-Amz-Date's")
    expires = query["X-Amz-Expires"]
    if not re.fullmatch(r"[0-9]{1,6}", expires) or not 0 < int(expires) <= MAX_EXPIRES:
        raise TokenError(f"token URL's X-Amz-Expires is not 1 to {MAX_EXPIRES} seconds")
    signature = query.pop("X-Amz-Signature")
    if not _SIGNATURE.fullmatch(signature):
        raise TokenError("token URL's X-Amz-Signature is not 64 hex digits")
    return Presigned(scheme=parts.scheme, host=host, params=tuple(query.items()),
                     key_id=cred[0], day=cred[1], region=cred[2], stamp=stamp, when=when,
                     expires=int(expires), signature=signature,
                     session_token=query.get("X-Amz-Security-Token"))


def sts_host(host: str) -> bool:
    """One of AWS's STS endpoints (where `aws eks get-token` presigns by default)."""
    return host == GLOBAL_STS or _STS_HOST.fullmatch(host) is not None


def check(p: Presigned, *, now: datetime.datetime, region: str, own_host: bool) -> None:
    """Time, region and endpoint: the token lives 15 minutes from its date, as EKS's do;
    it is scoped to this server's region (the global STS endpoint signs for us-east-1); it
    was presigned for AWS's STS or for fargo's own endpoint (own_host)."""
    if p.when - now > AHEAD:
        raise TokenError(f"token dated {p.stamp} is ahead of this server's clock")
    if now - p.when > LIFETIME:
        raise TokenError(f"token dated {p.stamp} is expired (tokens live 15 minutes)")
    if not (sts_host(p.host) or own_host):
        raise TokenError(f"token URL's host {p.host[:100]!r} is not an STS endpoint")
    if p.region != region and not (p.host == GLOBAL_STS and p.region == "us-east-1"):
        raise TokenError(f"token is scoped to region {p.region[:40]!r}, not {region}")


def signature(p: Presigned, cluster: str, secret: str) -> str:
    """The signature the URL must carry, presigned by this key's secret with the cluster's
    name in x-k8s-aws-id: botocore's SigV4 over the parameters as they were signed."""
    request = AWSRequest(method="GET", url=f"{p.scheme}://{p.host}/",
                         headers={CLUSTER_HEADER: cluster})
    request.params = dict(p.params)  # canonical query string from the decoded values
    request.context["timestamp"] = p.stamp
    signer = SigV4QueryAuth(Credentials(p.key_id, secret, p.session_token), "sts", p.region,
                            expires=p.expires)
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))


def verify_signature(p: Presigned, cluster: str, secret: str) -> None:
    if not hmac.compare_digest(signature(p, cluster, secret), p.signature):
        raise TokenError(f"token signature does not match (a forged token, or one for "
                         f"another cluster than {cluster[:100]})")


# ---- identities, as STS names them
_ROLE = re.compile(r"^arn:aws:iam::(?P<account>[0-9]{12}):role/(?:[\w+=,.@-]+/)*"
                   r"(?P<name>[\w+=,.@-]{1,64})$")
_ASSUMED = re.compile(r"^arn:aws:sts::(?P<account>[0-9]{12}):assumed-role/"
                      r"(?P<name>[\w+=,.@-]{1,64})/(?P<session>[\w+=,.@-]{2,64})$")
_USER = re.compile(r"^arn:aws:iam::(?P<account>[0-9]{12}):user/(?:[\w+=,.@-]+/)*"
                   r"[\w+=,.@-]{1,64}$")
_ROOT = re.compile(r"^arn:aws:iam::(?P<account>[0-9]{12}):root$")


@dataclass(frozen=True)
class Identity:
    """Who signed: arn as GetCallerIdentity answers it; canonical_arn as EKS matches it
    (a role without its path and session, a user or root as is)."""
    arn: str
    canonical_arn: str
    account: str
    user_id: str
    session: str | None = None
    access_key: str = ""


def unique_id(prefix: str, arn: str) -> str:
    """A stable IAM unique ID (AROA..., AIDA...: 21 characters) for an ARN."""
    digest = base64.b32encode(hashlib.sha256(arn.encode()).digest()).decode()
    return prefix + digest[:17]


def role_arn(account: str, name: str) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def assumed_role_arn(role: str, session: str) -> str:
    """The principal of AssumeRole's credentials; `role` is a role ARN (its path dropped)."""
    m = _ROLE.fullmatch(role)
    if m is None:
        raise ValueError(f"not a role ARN: {role[:200]}")
    return f"arn:aws:sts::{m['account']}:assumed-role/{m['name']}/{session}"


def parse_role_arn(value: str) -> tuple[str, str] | None:
    """(account, name) of an IAM role ARN, None for anything else."""
    m = _ROLE.fullmatch(value)
    return (m["account"], m["name"]) if m else None


def identity(principal: str, key_id: str) -> Identity:
    """A key's principal as STS answers it. A task role's key (its principal is the role)
    speaks as a session of that role named by the key, as an assumed role always does."""
    if m := _ASSUMED.fullmatch(principal):
        role = role_arn(m["account"], m["name"])
        return Identity(principal, role, m["account"],
                        f"{unique_id('AROA', role)}:{m['session']}", m["session"], key_id)
    if m := _ROLE.fullmatch(principal):
        role = role_arn(m["account"], m["name"])
        return Identity(assumed_role_arn(principal, key_id), role, m["account"],
                        f"{unique_id('AROA', role)}:{key_id}", key_id, key_id)
    if m := _ROOT.fullmatch(principal):
        return Identity(principal, principal, m["account"], m["account"], None, key_id)
    if m := _USER.fullmatch(principal):
        return Identity(principal, principal, m["account"], unique_id("AIDA", principal),
                        None, key_id)
    # A principal fargo did not make: speak for it as is, in fargo's account.
    return Identity(principal, principal, ACCOUNT, unique_id("AIDA", principal), None, key_id)


def canonical(arn: str) -> str:
    """An ARN as EKS compares principals: a role's (or a session of it) without path or
    session, lower-cased; anything else lower-cased."""
    if m := _ASSUMED.fullmatch(arn):
        return role_arn(m["account"], m["name"]).lower()
    if m := _ROLE.fullmatch(arn):
        return role_arn(m["account"], m["name"]).lower()
    return arn.lower()
