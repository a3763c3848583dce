"""EKS Fargate profiles (FARGATE.md section 6): request rules and which profile runs a pod."""

from __future__ import annotations

import re
from typing import Any

from .errors import ApiError

PIN_LABEL = "eks.amazonaws.com/fargate-profile"
MAX_SELECTORS = 5
MAX_LABELS = 5
_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")


class InvalidParameter(ApiError):
    code = "InvalidParameterException"


class InvalidRequest(ApiError):
    code = "InvalidRequestException"


def check_name(value: str, what: str) -> str:
    if not _NAME.match(value or ""):
        raise InvalidParameter(f"{what} can contain only alphanumeric characters, hyphens and "
                               "underscores, must start with an alphanumeric character and be "
                               "1-100 characters long.")
    return value


def check_selectors(selectors: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """At most five; each names a namespace; labels optional (at most five per selector)."""
    selectors = selectors or []
    if not selectors:
        raise InvalidParameter("Fargate profile must have at least one selector.")
    if len(selectors) > MAX_SELECTORS:
        raise InvalidParameter(f"Fargate profile can have at most {MAX_SELECTORS} selectors.")
    out = []
    for sel in selectors:
        ns = sel.get("namespace")
        if not ns:
            raise InvalidParameter("Fargate profile selector must include a namespace.")
        labels = sel.get("labels") or {}
        if len(labels) > MAX_LABELS:
            raise InvalidParameter(f"A Fargate profile selector can have at most {MAX_LABELS} "
                                   "labels.")
        for k, v in labels.items():
            if not k or v is None:
                raise InvalidParameter("Fargate profile selector labels need a key and a value.")
        out.append({"namespace": ns, "labels": dict(labels)} if labels else {"namespace": ns})
    return out


def _glob(pattern: str) -> re.Pattern[str]:
    """`*` any run of characters, `?` exactly one; everything else literal."""
    parts = [".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern]
    return re.compile("^" + "".join(parts) + "$", re.DOTALL)


def wildcard(pattern: str, value: str) -> bool:
    return bool(_glob(pattern).match(value))


def selector_matches(sel: dict[str, Any], namespace: str, labels: dict[str, str]) -> bool:
    if not wildcard(sel["namespace"], namespace):
        return False
    for key, want in (sel.get("labels") or {}).items():
        if not any(wildcard(key, k) and wildcard(want, v) for k, v in labels.items()):
            return False
    return True


def profile_matches(profile: dict[str, Any], namespace: str, labels: dict[str, str]) -> bool:
    return any(selector_matches(s, namespace, labels) for s in profile.get("selectors") or [])


def choose_profile(profiles: list[dict[str, Any]], namespace: str,
                   labels: dict[str, str]) -> dict[str, Any] | None:
    """The ACTIVE profile that runs the pod: the pinned one if the pod names one (it must
    still match), otherwise the first matching by alphanumeric order of name."""
    active = sorted((p for p in profiles if p.get("status") == "ACTIVE"),
                    key=lambda p: p["fargateProfileName"])
    pinned = labels.get(PIN_LABEL)
    if pinned is not None:
        active = [p for p in active if p["fargateProfileName"] == pinned]
    for p in active:
        if profile_matches(p, namespace, labels):
            return p
    return None
