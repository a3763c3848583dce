"""SSM Parameter Store's rules for parameter names, selectors, types and values, as AWS
states them (the user guide's "parameter name requirements" and the API reference); pure,
shared by control/ssm.py and by task definitions' `secrets` (model/secretref.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ApiError
from .names import ACCOUNT

TYPES = ("String", "StringList", "SecureString")
TIERS = ("Standard", "Advanced", "Intelligent-Tiering")
MAX_VALUE = {"Standard": 4096, "Advanced": 8192}  # bytes
MAX_NAME = 1011  # counted with the ARN before it (AWS keeps the rest of 2048 for itself)
MAX_LEVELS = 15
MAX_VERSIONS = 100  # a parameter's history; the oldest goes first
DEFAULT_KEY = "alias/aws/ssm"

_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")
_LABEL = re.compile(r"[A-Za-z_.-][A-Za-z0-9_.-]{0,99}")
_ARN = re.compile(r"arn:aws[a-z-]*:ssm:([a-z0-9-]+):([0-9]{12}):parameter(/[^:]*)(:.*)?")
BAD_NAME = ("Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive). If "
            "formed as a path, it can consist of sub-paths divided by slash symbol; each "
            "sub-path can be formed as a mix of letters, numbers and the following 3 symbols "
            ".-_")


def invalid(message: str) -> ApiError:
    return ApiError(message, code="ValidationException")


def constraint(field: str, value: object, rule: str) -> ApiError:
    """AWS's wording for a member that breaks its model's constraint."""
    shown = str(value)
    shown = shown if len(shown) <= 100 else shown[:100] + "…"
    return invalid(f"1 validation error detected: Value '{shown}' at '{field}' failed to "
                   f"satisfy constraint: {rule}")


def parameter_arn(region: str, name: str) -> str:
    return f"arn:aws:ssm:{region}:{ACCOUNT}:parameter/{name.removeprefix('/')}"


def reserved(name: str) -> bool:
    """A name under aws or ssm: AWS's own (public parameters), never a user's to write."""
    return name.removeprefix("/").lower().startswith(("aws", "ssm"))


def name_problem(name: str, region: str) -> ApiError | None:
    """Why no parameter may have this name (aws/ssm prefixes aside: reading them is fine,
    `reserved` tells writes apart), or None."""
    if not name:
        return constraint("name", name, "Member must have length greater than or equal to 1")
    if len(name) > 2048:
        return constraint("name", name, "Member must have length less than or equal to 2048")
    if "/" in name and not name.startswith("/"):
        return invalid("Parameter name must be a fully qualified name: a name with '/' "
                       "begins with '/'.")
    segments = name[1:].split("/") if name.startswith("/") else [name]
    if not all(_SEGMENT.fullmatch(s) for s in segments):
        return invalid(BAD_NAME)
    if len(segments) > MAX_LEVELS:
        return ApiError(f"A hierarchy can have a maximum of {MAX_LEVELS} levels.",
                        code="HierarchyLevelLimitExceededException")
    if len(parameter_arn(region, name)) > MAX_NAME:
        return invalid(f"Parameter name is too long: with its ARN it may have at most "
                       f"{MAX_NAME} characters.")
    return None


def check_name(name: str, region: str, *, write: bool = False) -> None:
    problem = name_problem(name, region)
    if problem is None and write and reserved(name):
        problem = invalid(BAD_NAME)
    if problem is not None:
        raise problem


def check_path(path: str, region: str) -> str:
    """A GetParametersByPath path ("/" or "/a/b", a trailing "/" allowed), without its
    trailing "/" (so "/" becomes "")."""
    if not path.startswith("/"):
        raise invalid("The parameter doesn't meet the parameter name requirements. The "
                      "parameter name must begin with a forward slash \"/\".")
    trimmed = path.rstrip("/")
    if trimmed:
        check_name(trimmed, region)
    return trimmed


@dataclass(frozen=True)
class Selector:
    """A name as GetParameter(s) take it: the name (or an ARN's candidates), then
    optionally ":version" or ":label"."""

    names: tuple[str, ...]  # the name, or for an ARN of one level both "x" and "/x"
    given: str  # as the request had it
    version: int | None = None
    label: str | None = None

    @property
    def suffix(self) -> str | None:
        if self.version is not None:
            return f":{self.version}"
        return f":{self.label}" if self.label is not None else None


def names_from_arn(arn: str, region: str) -> tuple[str, ...] | None:
    """The parameter names an ARN may stand for here: "parameter/a/b" is "/a/b";
    "parameter/x" is "x" or "/x" (the ARN does not tell them apart); none for another
    region's or account's. None if it is no parameter ARN."""
    m = _ARN.fullmatch(arn)
    if not m or m.group(4):
        return None
    if (m.group(1), m.group(2)) != (region, ACCOUNT):
        return ()
    path = m.group(3)
    if path.count("/") > 1:
        return (path,)
    return (path[1:], path)


def parse_selector(given: str, region: str) -> Selector:
    """ValidationException for a name no parameter may have; the selector otherwise."""
    text, label = given, None
    if given.startswith("arn:"):
        body, sep, tail = given.partition(":parameter/")
        text = body + sep + tail.split(":", 1)[0]
        label = tail.split(":", 1)[1] if ":" in tail else None
        names = names_from_arn(text, region)
        if names is None:
            raise invalid(f"Invalid parameter ARN: {given[:300]}")
    else:
        if ":" in given:
            text, label = given.split(":", 1)
        check_name(text, region)
        names = (text,)
    for n in names:
        check_name(n, region)
    if label is None:
        return Selector(names, given)
    if label.isascii() and label.isdigit() and len(label) <= 18:
        return Selector(names, given, version=int(label))
    if not _LABEL.fullmatch(label) or reserved(label):
        raise invalid(f"Invalid parameter selector ':{label[:100]}': a version number or a "
                      "label.")
    return Selector(names, given, label=label)


def check_value(value: str, tier: str) -> None:
    if not value:
        raise constraint("value", value, "Member must have length greater than or equal to 1")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_VALUE["Advanced"]:
        raise invalid(f"Parameter values may have at most {MAX_VALUE['Advanced']} bytes "
                      f"(advanced tier); this one has {size}.")
    if size > MAX_VALUE["Standard"] and tier == "Standard":
        raise invalid(f"Standard tier parameters support a maximum parameter value of "
                      f"{MAX_VALUE['Standard']} bytes. To create a larger parameter value, "
                      "upgrade the parameter to use the advanced-parameter tier.")


def tier_for(asked: str | None, current: str | None, value: str) -> str:
    """The tier a write lands in: Intelligent-Tiering picks the smallest that holds the
    value; an advanced parameter never goes back to standard."""
    if asked is not None and asked not in TIERS:
        raise constraint("tier", asked, f"Member must satisfy enum value set: {list(TIERS)}")
    big = len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE["Standard"]
    if asked is None:
        tier = current or "Standard"
    elif asked == "Intelligent-Tiering":
        tier = "Advanced" if big or current == "Advanced" else "Standard"
    else:
        tier = asked
    if current == "Advanced" and tier == "Standard":
        raise invalid("This parameter uses the advanced-parameter tier. You can't downgrade a "
                      "parameter from the advanced-parameter tier to the standard-parameter "
                      "tier. If necessary, you can delete the advanced parameter and recreate "
                      "it as a standard parameter.")
    return tier


def under_path(name: str, path: str, recursive: bool) -> bool:
    """Whether a parameter lies below path (as check_path returns it: "" for "/")."""
    if not name.startswith(path + "/"):
        return False
    return recursive or "/" not in name[len(path) + 1:]
