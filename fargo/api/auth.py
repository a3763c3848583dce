"""The authentication gate every face passes through, and each protocol's words for refusal."""

from __future__ import annotations

from aiohttp import web

from .errors import HttpError
from .keys import IAM, SETTINGS
from .sigv4 import AuthError, Caller, verify

# AWS JSON protocols (ECS, Secrets Manager) name these failures so, with HTTP 400.
_JSON_CODES = {
    "missing": ("MissingAuthenticationTokenException", 400),
    "unknown_key": ("UnrecognizedClientException", 400),
    "bad_signature": ("InvalidSignatureException", 400),
    "expired_request": ("InvalidSignatureException", 400),
    "wrong_scope": ("InvalidSignatureException", 400),
    "expired_token": ("ExpiredTokenException", 400),
}
# The EC2 query protocol's names.
_EC2_CODES = {
    "missing": ("AuthFailure", 401),
    "unknown_key": ("AuthFailure", 401),
    "bad_signature": ("SignatureDoesNotMatch", 403),
    "expired_request": ("RequestExpired", 400),
    "wrong_scope": ("SignatureDoesNotMatch", 403),
    "expired_token": ("AuthFailure", 401),
}
# REST-JSON services (EKS) answer with 403 and these names.
_REST_CODES = {
    "missing": ("MissingAuthenticationTokenException", 403),
    "unknown_key": ("UnrecognizedClientException", 403),
    "bad_signature": ("InvalidSignatureException", 403),
    "expired_request": ("InvalidSignatureException", 403),
    "wrong_scope": ("InvalidSignatureException", 403),
    "expired_token": ("ExpiredTokenException", 403),
}
TABLES = {"json": _JSON_CODES, "ec2": _EC2_CODES, "rest": _REST_CODES}


def authenticate(request: web.Request, body: bytes, service: str, style: str) -> Caller | None:
    """Return the signer, None when the server runs with --no-auth; raise ApiError otherwise."""
    if not request.app[SETTINGS].auth:
        return None
    try:
        caller = verify(method=request.method, host=request.host, raw_path=request.raw_path,
                        headers={k.lower(): v for k, v in request.headers.items()}, body=body,
                        service=service, region=request.app[SETTINGS].region,
                        iam=request.app[IAM])
    except AuthError as err:
        code, status = TABLES[style][err.kind]
        raise HttpError(err.message, code, status) from None
    request["caller"] = caller
    return caller


# A task role's short-lived credentials read and change nothing. fargo has no IAM policies to
# say what a role may do, and every task with a role reaches the API (its VPC endpoint), so a
# role may only describe and list: no writes, no secret values, no Kubernetes tokens.
_READ_ONLY = ("Describe", "List")
_DENIED = {"json": ("AccessDeniedException", 400), "ec2": ("UnauthorizedOperation", 403),
           "rest": ("AccessDeniedException", 403)}


def permit(request: web.Request, action: str, style: str) -> None:
    """Raise the face's access-denied error when a task role's credentials ask for more than
    reading; a user's long-lived key (or --no-auth) may do anything."""
    caller = request.get("caller")
    if caller is None or caller.key.token is None or action.startswith(_READ_ONLY):
        return
    code, status = _DENIED[style]
    raise HttpError(f"{caller.key.principal} is not authorized to perform {action[:100]}: "
                    "fargo lets task role credentials describe and list only.", code, status)
