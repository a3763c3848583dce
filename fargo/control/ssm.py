"""A small SSM Parameter Store: String, StringList and SecureString parameters with their
versions, where task definitions' `secrets` may point. The rules and the store calls;
api/ssm.py parses the requests and renders the answers.

SecureString values are kept as given in the state file (owner-only, 0600), as Secrets
Manager's are: fargo has no KMS. Without WithDecryption they read as an opaque token made at
each write, never as the value."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from ..model.errors import ApiError
from ..model.params import (
    DEFAULT_KEY,
    MAX_VERSIONS,
    TIERS,
    TYPES,
    Selector,
    check_name,
    check_path,
    check_value,
    constraint,
    invalid,
    parameter_arn,
    parse_selector,
    tier_for,
    under_path,
)
from ..store.params import ParamTables
from ..store.sqlite import Store

MAX_PARAMETERS = 10000
MAX_TAGS = 50
_TAG_PUNCT = set("_.:/=+-@")
_DATA_TYPES = ("text", "aws:ssm:integration", "aws:ec2:image")


@dataclass
class ParameterVersion:
    """One version of a parameter, as the store keeps it."""

    name: str
    arn: str
    type: str
    value: str
    version: int
    modified: float
    description: str = ""
    tier: str = "Standard"
    data_type: str = "text"
    key_id: str | None = None  # SecureString only
    sealed: str | None = None  # what a SecureString reads as without WithDecryption

    def to_doc(self) -> dict[str, Any]:
        return {"Name": self.name, "ARN": self.arn, "Type": self.type, "Value": self.value,
                "Version": self.version, "LastModifiedDate": self.modified,
                "Description": self.description, "Tier": self.tier,
                "DataType": self.data_type, "KeyId": self.key_id, "Sealed": self.sealed}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ParameterVersion:
        return cls(name=doc["Name"], arn=doc["ARN"], type=doc["Type"], value=doc["Value"],
                   version=doc["Version"], modified=doc["LastModifiedDate"],
                   description=doc.get("Description", ""), tier=doc.get("Tier", "Standard"),
                   data_type=doc.get("DataType", "text"), key_id=doc.get("KeyId"),
                   sealed=doc.get("Sealed"))

    def shown(self, decrypt: bool) -> str:
        if self.type == "SecureString" and not decrypt:
            return self.sealed or ""
        return self.value


@dataclass
class Found:
    """What GetParameter(s) answer: a version, its value as asked, the selector given."""

    version: ParameterVersion
    value: str
    selector: str | None = None


@dataclass
class Described:
    version: ParameterVersion
    tags: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Filter:
    """One ParameterStringFilter (or a legacy Filters entry, translated)."""

    key: str
    option: str
    values: tuple[str, ...]


def _not_found(name: str) -> ApiError:
    return ApiError(f"Parameter {name[:300]} not found.", code="ParameterNotFound")


def _token(after: str) -> str:
    return base64.urlsafe_b64encode(after.encode()).decode()


def _after(token: str | None) -> str | None:
    """The name a NextToken continues after; InvalidNextToken for any other string."""
    if token is None:
        return None
    try:
        name = base64.urlsafe_b64decode(token.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        name = ""
    if not name or _token(name) != token:
        raise ApiError("The specified token isn't valid.", code="InvalidNextToken")
    return name


def _tag_text_ok(text: str) -> bool:
    return all(ch.isalnum() or ch in _TAG_PUNCT or unicodedata.category(ch).startswith("Z")
               for ch in text)


def check_tags(tags: list[dict[str, str]] | None) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for i, tag in enumerate(tags or []):
        key, value = tag["Key"], tag["Value"]
        if not 1 <= len(key) <= 128 or not _tag_text_ok(key):
            raise constraint(f"tags.{i + 1}.member.key", key, "Member must have length "
                             "between 1 and 128 and be letters, digits, spaces or _.:/=+-@")
        if len(value) > 256 or not _tag_text_ok(value):
            raise constraint(f"tags.{i + 1}.member.value", value, "Member must have length "
                             "at most 256 and be letters, digits, spaces or _.:/=+-@")
        if key.lower().startswith("aws:"):
            raise invalid(f"Tag keys beginning with 'aws:' are reserved: {key[:128]}")
        if key in seen:
            raise invalid(f"Tag key {key[:128]} is given twice.")
        seen.add(key)
        out.append({"Key": key, "Value": value})
    if len(out) > MAX_TAGS:
        raise invalid(f"A parameter may have at most {MAX_TAGS} tags.")
    return out


def _check_max(field_name: str, value: int | None, most: int) -> int:
    if value is None:
        return most
    if value > most:
        raise constraint(field_name, value, f"Member must have value less than or equal to "
                         f"{most}")
    return value


# Which filter keys each operation takes, and their options (the first is the default).
_DESCRIBE_KEYS: dict[str, tuple[str, ...]] = {
    "Name": ("Equals", "BeginsWith", "Contains"), "Path": ("OneLevel", "Recursive"),
    "Type": ("Equals",), "KeyId": ("Equals",), "Tier": ("Equals",), "DataType": ("Equals",),
    "tag": ("Equals",)}
_BY_PATH_KEYS: dict[str, tuple[str, ...]] = {
    "Type": ("Equals",), "KeyId": ("Equals",), "tag": ("Equals",)}


def parse_filters(given: list[dict[str, Any]] | None, allowed: dict[str, tuple[str, ...]],
                  op: str, region: str) -> list[Filter]:
    out: list[Filter] = []
    keys: set[str] = set()
    for f in given or []:
        key, values = f["Key"], tuple(f.get("Values") or ())
        kind = "tag" if key.startswith("tag:") and len(key) > 4 else key
        if kind == "Label":
            raise ApiError("The Label filter key is not supported by fargo: it keeps no "
                           "parameter labels.", code="InvalidFilterKey")
        if kind not in allowed:
            raise ApiError(f"The following filter key is not valid for {op}: {key[:132]}. "
                           f"Valid filter keys include: {sorted(allowed)}.",
                           code="InvalidFilterKey")
        if key in keys:
            raise ApiError(f"The following filter key is given twice: {key[:132]}.",
                           code="InvalidFilterKey")
        keys.add(key)
        option = f.get("Option") or allowed[kind][0]
        if option not in allowed[kind]:
            raise ApiError(f"The following filter option is not valid: {option[:10]}. Valid "
                           f"options include: {list(allowed[kind])}.",
                           code="InvalidFilterOption")
        if not values and kind != "tag":
            raise ApiError(f"The filter {key} needs at least one value.",
                           code="InvalidFilterValue")
        for v in values:
            if len(v) > 1024:
                raise ApiError(f"A value of the filter {key} is longer than 1024 characters.",
                               code="InvalidFilterValue")
            if kind == "Type" and v not in TYPES:
                raise ApiError(f"The following filter value is not valid: {v[:100]}. Valid "
                               f"values include: {list(TYPES)}.", code="InvalidFilterValue")
            if kind == "Tier" and v not in TIERS:
                raise ApiError(f"The following filter value is not valid: {v[:100]}. Valid "
                               f"values include: {list(TIERS)}.", code="InvalidFilterValue")
        if kind == "Path":
            try:
                values = tuple(check_path(v, region) for v in values)
            except ApiError as err:
                raise ApiError(f"Invalid Path filter value: {err.message}",
                               code="InvalidFilterValue") from None
        out.append(Filter(key, option, values))
    return out


def legacy_filters(given: list[dict[str, Any]] | None) -> list[Filter]:
    """DescribeParameters' older Filters: Name (a prefix), Type, KeyId."""
    out = []
    for f in given or []:
        if f["Key"] not in ("Name", "Type", "KeyId"):
            raise ApiError(f"The following filter key is not valid: {str(f['Key'])[:100]}. "
                           "Valid filter keys include: [Name, Type, KeyId].",
                           code="InvalidFilterKey")
        option = "BeginsWith" if f["Key"] == "Name" else "Equals"
        out.append(Filter(f["Key"], option, tuple(f["Values"])))
    return out


def _matches(p: Described, f: Filter) -> bool:
    v = p.version
    if f.key.startswith("tag:"):
        tags = {t["Key"]: t["Value"] for t in p.tags}
        key = f.key[4:]
        return key in tags and (not f.values or tags[key] in f.values)
    if f.key == "Name":
        name = v.name
        if f.option == "Contains":
            return any(x in name for x in f.values)
        if f.option == "BeginsWith":
            return any(name.startswith(x) for x in f.values)
        return name in f.values
    if f.key == "Path":
        return any(under_path(v.name, x, f.option == "Recursive") for x in f.values)
    field_of = {"Type": v.type, "KeyId": v.key_id, "Tier": v.tier, "DataType": v.data_type}
    return field_of[f.key] in f.values


class Ssm:
    def __init__(self, store: Store):
        self.tables = ParamTables(store)

    # ---- reading
    def _current(self, names: tuple[str, ...]) -> Described | None:
        for name in names:
            found = self.tables.current(name)
            if found:
                return Described(ParameterVersion.from_doc(found[0]), found[1])
        return None

    def _select(self, sel: Selector) -> ParameterVersion:
        """ParameterNotFound, ParameterVersionNotFound, or the version a selector names."""
        found = self._current(sel.names)
        if found is None:
            raise _not_found(sel.given)
        current = found.version
        if sel.label is not None:
            raise ApiError(f"fargo keeps no parameter labels: the selector :{sel.label[:100]} "
                           f"names no version of {current.name}.",
                           code="ParameterVersionNotFound")
        if sel.version is None or sel.version == current.version:
            return current
        doc = self.tables.version(current.name, sel.version)
        if doc is None:
            raise ApiError(f"Systems Manager could not find version {sel.version} of "
                           f"{current.name}. Verify the version and try again.",
                           code="ParameterVersionNotFound")
        return ParameterVersion.from_doc(doc)

    def get_parameter(self, name: str, region: str, decrypt: bool = False) -> Found:
        sel = parse_selector(name, region)
        version = self._select(sel)
        return Found(version, version.shown(decrypt), sel.suffix)

    def get_parameters(self, names: list[str], region: str,
                       decrypt: bool = False) -> tuple[list[Found], list[str]]:
        """The parameters found, and the names (as given) that name none."""
        if len(names) > 10:
            raise constraint("names", names, "Member must have length less than or equal "
                             "to 10")
        found: list[Found] = []
        missing: list[str] = []
        for name in dict.fromkeys(names):  # each once, in the order given
            try:
                found.append(self.get_parameter(name, region, decrypt))
            except ApiError:
                missing.append(name)
        return found, missing

    def task_value(self, given: str, region: str) -> str:
        """A parameter's value, decrypted, for a task's `secrets` (ApiError if none)."""
        return self.get_parameter(given, region, decrypt=True).value

    def get_parameters_by_path(self, path: str, region: str, *, recursive: bool = False,
                               filters: list[dict[str, Any]] | None = None,
                               decrypt: bool = False, max_results: int | None = None,
                               token: str | None = None) -> tuple[list[Found], str | None]:
        base = check_path(path, region)
        wanted = parse_filters(filters, _BY_PATH_KEYS, "GetParametersByPath", region)
        size = _check_max("maxResults", max_results, 10)
        after = _after(token)
        out: list[Found] = []
        for doc, tags in self.tables.listing(base + "/", after):
            p = Described(ParameterVersion.from_doc(doc), tags)
            if not under_path(p.version.name, base, recursive):
                continue
            if all(_matches(p, f) for f in wanted):
                if len(out) == size:
                    return out, _token(out[-1].version.name)
                out.append(Found(p.version, p.version.shown(decrypt)))
        return out, None

    def describe_parameters(self, region: str, *, filters: list[dict[str, Any]] | None = None,
                            parameter_filters: list[dict[str, Any]] | None = None,
                            max_results: int | None = None, token: str | None = None,
                            shared: bool = False) -> tuple[list[Described], str | None]:
        if filters and parameter_filters:
            raise invalid("You can use either Filters or ParameterFilters in a single "
                          "request.")
        if shared:
            raise invalid("Shared is not supported by fargo: it shares no parameters "
                          "between accounts.")
        wanted = legacy_filters(filters) + parse_filters(parameter_filters, _DESCRIBE_KEYS,
                                                         "DescribeParameters", region)
        size = _check_max("maxResults", max_results, 50)
        after = _after(token)
        out: list[Described] = []
        for doc, tags in self.tables.listing("", after):
            p = Described(ParameterVersion.from_doc(doc), tags)
            if all(_matches(p, f) for f in wanted):
                if len(out) == size:
                    return out, _token(out[-1].version.name)
                out.append(p)
        return out, None

    def list_tags(self, resource_type: str, resource_id: str,
                  region: str) -> list[dict[str, str]]:
        if resource_type != "Parameter":
            raise ApiError(f"fargo keeps tags of parameters only, not of {resource_type[:50]}.",
                           code="InvalidResourceType")
        try:
            found = self._current(parse_selector(resource_id, region).names)
        except ApiError:
            found = None
        if found is None:
            raise ApiError(f"The resource ID {resource_id[:300]} is not valid.",
                           code="InvalidResourceId")
        return found.tags

    # ---- writing
    def put_parameter(self, name: str, region: str, *, value: str, type: str | None = None,
                      overwrite: bool = False, description: str | None = None,
                      tier: str | None = None, key_id: str | None = None,
                      allowed_pattern: str | None = None, policies: str | None = None,
                      data_type: str | None = None,
                      tags: list[dict[str, str]] | None = None) -> ParameterVersion:
        check_name(name, region, write=True)
        if type is not None and type not in TYPES:
            raise constraint("type", type, f"Member must satisfy enum value set: {list(TYPES)}")
        if description is not None and len(description) > 1024:
            raise constraint("description", description, "Member must have length less "
                             "than or equal to 1024")
        if allowed_pattern:
            raise invalid("AllowedPattern is not supported by fargo.")
        if policies:
            raise invalid("Parameter policies (Policies) are not supported by fargo.")
        if data_type not in (None, "text"):
            if data_type in _DATA_TYPES:
                raise invalid(f"DataType {data_type} is not supported by fargo: only text.")
            raise invalid(f"The following data type is not supported: {str(data_type)[:128]}. "
                          f"Supported data types: {', '.join(_DATA_TYPES)}")
        if tags and overwrite:
            raise invalid("Invalid request: tags and overwrite can't be used together. To "
                          "create a parameter with tags, please remove overwrite flag. To "
                          "update tags for an existing parameter, please use AddTagsToResource "
                          "or RemoveTagsFromResource.")
        checked_tags = check_tags(tags)
        existing = self._current((name,))
        if existing and not overwrite:
            raise ApiError("The parameter already exists. To overwrite this value, set the "
                           "overwrite option in the request to true.",
                           code="ParameterAlreadyExists")
        old = existing.version if existing else None
        if old is None and type is None:
            raise invalid("A parameter type is required when you create a parameter.")
        kind = type or (old.type if old else "String")
        if key_id is not None and kind != "SecureString":
            raise invalid("KeyId is required for SecureString type parameter only.")
        if key_id is not None and key_id != DEFAULT_KEY:
            raise ApiError(f"fargo has no KMS keys: SecureString parameters use "
                           f"{DEFAULT_KEY}, not {key_id[:256]}.", code="InvalidKeyId")
        landed = tier_for(tier, old.tier if old else None, value)
        check_value(value, landed)
        if old is None and self.tables.count() >= MAX_PARAMETERS:
            raise ApiError(f"You have exceeded the number of parameters fargo keeps "
                           f"({MAX_PARAMETERS}). Delete unnecessary parameters and try again.",
                           code="ParameterLimitExceeded")
        secure = kind == "SecureString"
        version = ParameterVersion(
            name=name, arn=old.arn if old else parameter_arn(region, name), type=kind,
            value=value, version=(old.version if old else 0) + 1, modified=time.time(),
            description=description if description is not None else
            (old.description if old else ""), tier=landed,
            key_id=(key_id or DEFAULT_KEY) if secure else None,
            sealed=base64.b64encode(secrets.token_bytes(48)).decode() if secure else None)
        self.tables.write(name, version.version, version.to_doc(),
                          existing.tags if existing else checked_tags, MAX_VERSIONS)
        return version

    def _plain(self, name: str, region: str) -> tuple[str, ...]:
        """The names a Delete* name may stand for (no selector)."""
        sel = parse_selector(name, region)
        if sel.suffix is not None:
            raise invalid(f"Parameter name {name[:300]}: a version or label selector cannot "
                          "be deleted; delete the parameter by its name.")
        return sel.names

    def delete_parameter(self, name: str, region: str) -> None:
        names = self._plain(name, region)
        found = self._current(names)
        if found is None:
            raise _not_found(name)
        self.tables.delete(found.version.name)

    def delete_parameters(self, names: list[str], region: str) -> tuple[list[str], list[str]]:
        """The names deleted, and those (as given) that named no parameter."""
        if len(names) > 10:
            raise constraint("names", names, "Member must have length less than or equal "
                             "to 10")
        deleted: list[str] = []
        missing: list[str] = []
        for name in dict.fromkeys(names):
            try:
                self.delete_parameter(name, region)
            except ApiError:
                missing.append(name)
            else:
                deleted.append(name)
        return deleted, missing
