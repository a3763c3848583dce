"""ECS account settings: their names (botocore's SettingName), the values each takes, the
defaults AWS gives an account, and which principal's setting is in effect.

A principal's own setting wins; else the root user's (PutAccountSettingDefault sets that);
else AWS's default. fargo refuses the values it cannot live up to: short ARN formats (it
makes long ones only) and FIPS mode (its tasks run no FIPS-validated cryptography)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import InvalidParameterException
from .names import ACCOUNT

ROOT = f"arn:aws:iam::{ACCOUNT}:root"
_ON_OFF = ("enabled", "disabled")
# name -> (values it takes, AWS's default), in botocore's SettingName order.
SETTINGS: dict[str, tuple[tuple[str, ...], str]] = {
    "serviceLongArnFormat": (_ON_OFF, "enabled"),
    "taskLongArnFormat": (_ON_OFF, "enabled"),
    "containerInstanceLongArnFormat": (_ON_OFF, "enabled"),
    "awsvpcTrunking": (_ON_OFF, "disabled"),
    "containerInsights": (("enabled", "disabled", "enhanced"), "disabled"),
    "fargateFIPSMode": (_ON_OFF, "disabled"),
    "tagResourceAuthorization": (("on", "off"), "on"),
    "fargateTaskRetirementWaitPeriod": (("0", "7", "14"), "7"),
    "guardDutyActivate": (("on", "off"), "off"),
    "defaultLogDriverMode": (("blocking", "non-blocking"), "non-blocking"),
    "fargateEventWindows": (_ON_OFF, "disabled"),
}
AWS_MANAGED = frozenset({"guardDutyActivate"})  # read-only: GuardDuty sets it
ROOT_ONLY = frozenset({"fargateTaskRetirementWaitPeriod"})
_REFUSED = {
    ("serviceLongArnFormat", "disabled"): "fargo makes long ARNs only",
    ("taskLongArnFormat", "disabled"): "fargo makes long ARNs only",
    ("containerInstanceLongArnFormat", "disabled"): "fargo makes long ARNs only",
    ("fargateFIPSMode", "enabled"): "fargo's tasks run no FIPS-validated cryptography",
}
_PRINCIPAL = re.compile(r"^arn:aws:iam::([0-9]{12}):(root|(user|role)/[\w+=,.@/-]{1,512})$")


@dataclass(frozen=True)
class Setting:
    name: str
    value: str
    principal: str

    def to_wire(self) -> dict[str, str]:
        kind = "aws_managed" if self.name in AWS_MANAGED else "user"
        return {"name": self.name, "value": self.value, "principalArn": self.principal,
                "type": kind}


def check_name(name: object) -> str:
    if name not in SETTINGS:
        shown = str(name)[:64]
        raise InvalidParameterException(
            f"name {shown!r} is not an account setting: use one of {', '.join(SETTINGS)}.")
    return str(name)


def check_principal(principal: object | None) -> str:
    """The principal a call is for: a user, role or the root user of this account; none
    given: the caller, who in fargo signs with the account's root key."""
    if principal is None:
        return ROOT
    match = _PRINCIPAL.match(str(principal))
    if not match:
        raise InvalidParameterException(
            f"principalArn {str(principal)[:200]!r} is not the ARN of an IAM user, role or "
            "root user.")
    if match.group(1) != ACCOUNT:
        raise InvalidParameterException(
            f"principalArn {str(principal)[:200]!r} belongs to another account.")
    return str(principal)


def check_change(name: object, value: object, principal: str) -> Setting:
    """A setting to store (PutAccountSetting, PutAccountSettingDefault), checked."""
    name = check_name(name)
    values, _ = SETTINGS[name]
    if name in AWS_MANAGED:
        raise InvalidParameterException(
            f"{name} is managed by AWS (Amazon GuardDuty sets it) and can't be changed.")
    if value not in values:
        raise InvalidParameterException(
            f"value {str(value)[:64]!r} is not valid for {name}: use {', '.join(values)}.")
    refusal = _REFUSED.get((name, str(value)))
    if refusal:
        raise InvalidParameterException(
            f"The value {value!r} of the account setting {name} is not supported: {refusal}.")
    if name in ROOT_ONLY and principal != ROOT:
        raise InvalidParameterException(
            f"You must use the root user to set {name}: give the root user's principalArn "
            "or none.")
    return Setting(name, str(value), principal)


def check_delete(name: object) -> str:
    name = check_name(name)
    if name in AWS_MANAGED:
        raise InvalidParameterException(f"{name} is managed by AWS and can't be deleted.")
    return name


def effective(name: str, principal: str, explicit: Mapping[tuple[str, str], str]) -> Setting:
    """explicit: (principal, name) -> value as stored."""
    for who in (principal, ROOT):
        value = explicit.get((who, name))
        if value is not None:
            return Setting(name, value, who)
    return Setting(name, SETTINGS[name][1], ROOT)
