"""AWS STS in the query protocol (botocore's `sts` model): GetCallerIdentity and AssumeRole.
A form of `Action=...&Version=2011-06-15` in (read against the operation's input shape by
api/queryform.py's reader, in ELBv2's words), `<OpResponse><OpResult>` XML out (queryform's
writer), `<ErrorResponse>` for errors.
Requests come here when their signature is scoped to `sts` (or, unsigned, by Version).

AssumeRole's credentials are fargo's temporary keys (control/iam.py): they sign other calls
as `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`, and like a task role's they may only
describe and list (fargo has no IAM policies); EKS maps them through aws-auth's mapRoles.
fargo keeps no IAM roles: any role ARN of its account may be assumed, by a long-lived key."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aiohttp import web
from botocore.model import OperationModel

from ..control.iam import ROOT, Iam
from ..model import ekstoken
from ..model.errors import ApiError
from ..model.names import ACCOUNT
from . import queryform, shapes
from .auth import permit
from .body import BodyError
from .errors import HttpError, http_status
from .keys import IAM
from .sigv4 import Caller

SERVICE = "sts"
VERSION = "2011-06-15"
XMLNS = f"https://sts.amazonaws.com/doc/{VERSION}/"
MAX_SESSION = 3600  # seconds: a role's default MaxSessionDuration, and fargo's roles'
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
# The words STS uses for what api/auth.py names in the JSON protocols' terms.
_CODES = {"MissingAuthenticationTokenException": ("MissingAuthenticationToken", 403),
          "UnrecognizedClientException": ("InvalidClientTokenId", 403),
          "InvalidSignatureException": ("SignatureDoesNotMatch", 403),
          "ExpiredTokenException": ("ExpiredToken", 400),
          "AccessDeniedException": ("AccessDenied", 403)}
# AssumeRole's members that need what fargo lacks: session policies, tags, MFA, trust
# policies (ExternalId is a condition of one), trusted context providers.
_UNSUPPORTED = {"Policy": "session policies", "PolicyArns": "session policies",
                "Tags": "session tags", "TransitiveTagKeys": "session tags",
                "ExternalId": "trust policies", "SerialNumber": "MFA", "TokenCode": "MFA",
                "ProvidedContexts": "trusted context providers"}


def invalid(message: str) -> ApiError:
    return ApiError(message, code="ValidationError")


async def addressed(request: web.Request) -> bool:
    """Whether a query-protocol request is STS's: signed for `sts`, or unsigned and of
    Version 2011-06-15."""
    return await queryform.addressed(request, SERVICE, VERSION)


# ---- the operations
def _caller_identity(iam: Iam, caller: Caller | None, p: dict[str, Any]) -> dict[str, Any]:
    who = ekstoken.identity(caller.key.principal, caller.key.id) if caller else \
        ekstoken.identity(ROOT, "")
    return {"UserId": who.user_id, "Account": who.account, "Arn": who.arn}


def _assume_role(iam: Iam, caller: Caller | None, p: dict[str, Any]) -> dict[str, Any]:
    for name, what in _UNSUPPORTED.items():
        if name in p:
            raise invalid(f"{name} is not supported by fargo: it has no {what}.")
    role, session = p["RoleArn"], p["RoleSessionName"]
    found = ekstoken.parse_role_arn(role)
    if found is None:
        raise invalid(f"{role[:200]} is invalid: RoleArn must be an IAM role's ARN, "
                      "arn:aws:iam::ACCOUNT:role/NAME")
    signer = ekstoken.identity(caller.key.principal, caller.key.id).arn if caller else ROOT
    if found[0] != ACCOUNT:
        raise HttpError(f"User: {signer} is not authorized to perform: sts:AssumeRole on "
                        f"resource: {role[:200]}", "AccessDenied", 403)
    if not _SESSION_NAME.fullmatch(session):
        raise invalid(f"1 validation error detected: Value '{session[:64]}' at "
                      "'roleSessionName' failed to satisfy constraint: Member must satisfy "
                      r"regular expression pattern: [\w+=,.@-]*")
    source = p.get("SourceIdentity")
    if source is not None and not _SESSION_NAME.fullmatch(source):
        raise invalid(f"1 validation error detected: Value '{source[:64]}' at "
                      "'sourceIdentity' failed to satisfy constraint: Member must satisfy "
                      r"regular expression pattern: [\w+=,.@-]*")
    duration = p.get("DurationSeconds", MAX_SESSION)
    if duration > MAX_SESSION:
        raise invalid("The requested DurationSeconds exceeds the MaxSessionDuration set for "
                      "this role.")
    arn = ekstoken.assumed_role_arn(role, session)
    key = iam.issue_role_credentials(arn, ttl=float(duration))
    who = ekstoken.identity(arn, key.id)
    out: dict[str, Any] = {
        "Credentials": {"AccessKeyId": key.id, "SecretAccessKey": key.secret,
                        "SessionToken": key.token, "Expiration": key.expires},
        "AssumedRoleUser": {"AssumedRoleId": who.user_id, "Arn": arn}}
    if source is not None:
        out["SourceIdentity"] = source
    return out


Handler = Callable[[Iam, Caller | None, dict[str, Any]], dict[str, Any]]
HANDLERS: dict[str, Handler] = {"GetCallerIdentity": _caller_identity,
                                "AssumeRole": _assume_role}


# ---- the wire
def parse(op: OperationModel, form: dict[str, str]) -> dict[str, Any]:
    dialect = queryform.VALIDATION
    return queryform.validated(op, queryform.parse(op, form, dialect), dialect.code)


def error_response(err: ApiError) -> web.Response:
    code, status = _CODES.get(err.code, (err.code, http_status(err, SERVICE)))
    if isinstance(err, HttpError) and err.code not in _CODES:
        status = err.status
    return queryform.error_response(XMLNS, code, err.message, status)


async def serve(request: web.Request) -> web.Response:
    """One STS request: the body within its limit, the signature, the form, the action and
    its parameters checked against botocore's shape, the handler, the answer."""
    try:
        caller, form = await queryform.received(request, SERVICE, "json", "ValidationError")
        action, version = form.get("Action", ""), form.get("Version")
        if version is not None and version != VERSION:
            raise ApiError(f"Could not find operation {action[:100]} for version "
                           f"{version[:40]}", code="InvalidAction")
        op = shapes.operation(SERVICE, action)
        if op is None:
            raise ApiError(f"Could not find operation {action[:100]} for version {VERSION}",
                           code="InvalidAction")
        handler = HANDLERS.get(action)
        if handler is None:
            raise ApiError(f"{action} is not supported by fargo: its STS serves "
                           f"{' and '.join(HANDLERS)}.", code="InvalidAction")
        if action != "GetCallerIdentity":  # which needs no permission, in AWS too
            permit(request, action, "json")
        result = handler(request.app[IAM], caller, parse(op, form))
        return queryform.response(op, XMLNS, result)
    except ApiError as err:
        return error_response(err)
    except BodyError as err:
        return error_response(HttpError(err.message, "InvalidRequest", 400))
