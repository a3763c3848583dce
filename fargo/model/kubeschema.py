"""The structure of the Kubernetes kinds, as kube-apiserver 1.32 knows them, and what follows
from it: which fields an object may have (fieldValidation's unknown and duplicate fields), the
types their values take, and where strategic merge patch and server-side apply merge lists by
key.

The structure is not written out here: it is read, at first use, from the Kubernetes 1.32 API
definitions that the `kubernetes-validate` package ships (the apiserver's OpenAPI definitions
as JSON schema; a data file, nothing of the package runs). What this module adds is fargo's
own table of how lists and structs merge (FIELD_RULES, ATOMIC): strategic.py and ssa.py merge
by it, and tests/test_kube_schema_model.py holds it to the definitions' own extensions.

Schemas are JSON-schema dicts as the definitions hold them: a property's type may be a list
with "null" (nullable), `$ref` names another definition as "#/$defs/NAME". Pure: the file is
read once and cached; nothing else is read or written."""

from __future__ import annotations

import functools
import importlib.metadata
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from .kubeerrors import KubeError, bad_request

SERVED_MINOR = 32  # discovery's version: the definitions of this release are used
Schema = dict[str, Any]
_REF = "#/$defs/"
_API = "io.k8s.api."
_META = "io.k8s.apimachinery.pkg.apis.meta."


class SchemaUnavailable(RuntimeError):
    """The definitions file is not installed (a broken install: it is a dependency)."""


def _definitions_file() -> str:
    try:
        dist = importlib.metadata.distribution("kubernetes-validate")
    except importlib.metadata.PackageNotFoundError:
        raise SchemaUnavailable("the kubernetes-validate package is not installed") from None
    base = dist.locate_file("kubernetes_validate/kubernetes-json-schema")
    versions = []
    for entry in base.iterdir():  # type: ignore[attr-defined]
        name = entry.name  # v1.32.0-local, v1.32.0-local-strict, ...
        parts = name.removeprefix("v").split("-", 1)
        nums = parts[0].split(".")
        if len(parts) == 2 and parts[1] == "local" and len(nums) == 3 and nums[1].isdigit():
            versions.append((int(nums[1]), str(entry)))
    if not versions:
        raise SchemaUnavailable("kubernetes-validate ships no definitions")
    # The served release, or the nearest after it (a later package may drop old releases).
    later = sorted(v for v in versions if v[0] >= SERVED_MINOR) or sorted(versions)[::-1]
    return f"{later[0][1]}/_definitions.json"


# Modules of this package whose DEFINITIONS add custom resources' schemas (a CRD's
# openAPIV3Schema in the definitions' form), as the apiserver serves them beside its own.
CRD_MODULES: tuple[str, ...] = ("sgpolicy",)


@functools.cache
def definitions() -> dict[str, Schema]:
    with open(_definitions_file(), encoding="utf-8") as f:
        defs = dict(json.load(f)["$defs"])
    import importlib
    for name in CRD_MODULES:
        defs.update(importlib.import_module(f"{__package__}.{name}").DEFINITIONS)
    return defs


@functools.cache
def _by_gvk() -> dict[tuple[str, str, str], str]:
    out: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or ():
            # meta/v1's WatchEvent, DeleteOptions, Status... are tagged for every group:
            # the kind's own package wins.
            key = (gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))
            if key not in out or not name.startswith(_META):
                out[key] = name
    return out


def kind_definition(group: str, version: str, kind: str) -> str | None:
    """The definition's name (io.k8s.api.apps.v1.Deployment) of a kind, None if unknown."""
    return _by_gvk().get((group, version, kind))


def short(name: str) -> str:
    """io.k8s.api.core.v1.PodSpec -> core.v1.PodSpec; meta's -> meta.v1.ObjectMeta."""
    if name.startswith(_API):
        return name[len(_API):]
    if name.startswith(_META):
        return "meta." + name[len(_META):]
    return name


def ref_name(schema: Schema) -> str | None:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF):
        return ref[len(_REF):]
    return None


def resolve(schema: Schema | None) -> Schema | None:
    """Follow a property's $ref to its definition."""
    seen = 0
    while schema is not None and seen < 8:
        name = ref_name(schema)
        if name is None:
            return schema
        schema = definitions().get(name)
        seen += 1
    return schema


def type_of(schema: Schema) -> str | None:
    """The JSON type a schema takes, "null" aside; None if any (or oneOf)."""
    t = schema.get("type")
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        return rest[0] if len(rest) == 1 else None
    return t if isinstance(t, str) else None


def one_of(schema: Schema) -> set[str]:
    """The types of a oneOf scalar (IntOrString: integer, string; Quantity: string, number)."""
    return {t for alt in schema.get("oneOf") or () for t in [type_of(alt)] if t}


def is_free(schema: Schema) -> bool:
    """Anything goes (RawExtension, FieldsV1, JSON): an object without declared members."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return True
    t = type_of(schema)
    return (t in (None, "object") and "properties" not in schema
            and "additionalProperties" not in schema and not schema.get("oneOf"))


def child(schema: Schema | None, key: str) -> tuple[str | None, Schema | None]:
    """(the struct's definition name or None, the schema of member `key`) of an object node;
    a map's values share one schema; (None, None) where nothing is declared."""
    node = resolve(schema)
    if node is None:
        return None, None
    props = node.get("properties")
    if isinstance(props, dict):
        return _owner(schema), props.get(key)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        return None, extra
    return None, None


def _owner(schema: Schema | None) -> str | None:
    return ref_name(schema) if schema is not None else None


def items(schema: Schema | None) -> Schema | None:
    node = resolve(schema)
    if node is None:
        return None
    it = node.get("items")
    return it if isinstance(it, dict) else None


def kind_schema(group: str, version: str, kind: str) -> Schema | None:
    """A node for the kind's root: a $ref, so child() knows whose members it reads."""
    name = kind_definition(group, version, kind)
    return {"$ref": _REF + name} if name else None


# ---- how lists and structs merge: fargo's table (strategic.py, ssa.py)

@dataclass(frozen=True)
class FieldRule:
    """One field's merge facts. strategy: strategic merge patch's patch strategy ("merge",
    "merge,retainKeys", "retainKeys", "replace"); merge_key: its items' key under it.
    list_type / map_keys: server-side apply's view of a list ("map" by map_keys, "set",
    "atomic"); map_type: of a map or struct ("atomic": owned and replaced whole)."""
    strategy: str = ""
    merge_key: str = ""
    list_type: str = ""
    map_keys: tuple[str, ...] = ()
    map_type: str = ""


def _keyed(key: str, *keys: str, strategy: str = "merge") -> FieldRule:
    return FieldRule(strategy, key, "map", (key, *keys) if keys else (key,))


_CONDITIONS = _keyed("type")
_CONTAINER = {"env": _keyed("name"), "ports": _keyed("containerPort", "protocol"),
              "volumeMounts": _keyed("mountPath"), "volumeDevices": _keyed("devicePath")}

# (definition, field) -> its rule, for every list Kubernetes merges by key or as a set and
# every field with a patch strategy of its own; any other list is atomic (replaced whole).
FIELD_RULES: dict[tuple[str, str], FieldRule] = {
    **{("core.v1.Container", f): r for f, r in _CONTAINER.items()},
    **{("core.v1.EphemeralContainer", f): r for f, r in _CONTAINER.items()},
    ("core.v1.ContainerStatus", "volumeMounts"): _keyed("mountPath"),
    ("core.v1.ContainerStatus", "allocatedResourcesStatus"): _keyed("name"),
    ("core.v1.PodSpec", "containers"): _keyed("name"),
    ("core.v1.PodSpec", "initContainers"): _keyed("name"),
    ("core.v1.PodSpec", "ephemeralContainers"): _keyed("name"),
    ("core.v1.PodSpec", "imagePullSecrets"): _keyed("name"),
    ("core.v1.PodSpec", "schedulingGates"): _keyed("name"),
    ("core.v1.PodSpec", "hostAliases"): _keyed("ip"),
    ("core.v1.PodSpec", "volumes"): _keyed("name", strategy="merge,retainKeys"),
    ("core.v1.PodSpec", "resourceClaims"): _keyed("name", strategy="merge,retainKeys"),
    ("core.v1.PodSpec", "topologySpreadConstraints"): _keyed("topologyKey",
                                                             "whenUnsatisfiable"),
    ("core.v1.PodSpec", "nodeSelector"): FieldRule(map_type="atomic"),
    ("core.v1.PodStatus", "conditions"): _CONDITIONS,
    ("core.v1.PodStatus", "podIPs"): _keyed("ip"),
    ("core.v1.PodStatus", "hostIPs"): FieldRule("merge", "ip", "atomic"),
    ("core.v1.PodStatus", "resourceClaimStatuses"): _keyed("name", strategy="merge,retainKeys"),
    ("core.v1.ResourceRequirements", "claims"): FieldRule("", "", "map", ("name",)),
    ("core.v1.ResourceStatus", "resources"): FieldRule("", "", "map", ("resourceID",)),
    ("core.v1.ServiceSpec", "ports"): _keyed("port", "protocol"),
    ("core.v1.ServiceSpec", "selector"): FieldRule(map_type="atomic"),
    ("core.v1.ServiceStatus", "conditions"): _CONDITIONS,
    ("core.v1.ServiceAccount", "secrets"): _keyed("name"),
    ("core.v1.NamespaceStatus", "conditions"): _CONDITIONS,
    ("core.v1.NodeSpec", "podCIDRs"): FieldRule("merge", "", "set"),
    ("core.v1.NodeStatus", "addresses"): _keyed("type"),
    ("core.v1.NodeStatus", "conditions"): _CONDITIONS,
    ("core.v1.ComponentStatus", "conditions"): _CONDITIONS,
    ("core.v1.PersistentVolumeClaimStatus", "conditions"): _CONDITIONS,
    ("core.v1.PersistentVolumeClaimStatus", "allocatedResourceStatuses"):
        FieldRule(map_type="granular"),
    ("core.v1.PersistentVolumeSpec", "claimRef"): FieldRule(map_type="granular"),
    ("core.v1.ReplicationControllerSpec", "selector"): FieldRule(map_type="atomic"),
    ("core.v1.ReplicationControllerStatus", "conditions"): _CONDITIONS,
    ("meta.v1.ObjectMeta", "finalizers"): FieldRule("merge", "", "set"),
    ("meta.v1.ObjectMeta", "ownerReferences"): _keyed("uid"),
    ("apps.v1.DeploymentSpec", "strategy"): FieldRule("retainKeys"),
    ("apps.v1.DeploymentStatus", "conditions"): _CONDITIONS,
    ("apps.v1.ReplicaSetStatus", "conditions"): _CONDITIONS,
    ("apps.v1.StatefulSetStatus", "conditions"): _CONDITIONS,
    ("apps.v1.DaemonSetStatus", "conditions"): _CONDITIONS,
    ("batch.v1.JobStatus", "conditions"): FieldRule("merge", "type", "atomic"),
    ("batch.v1.PodFailurePolicyOnExitCodesRequirement", "values"): FieldRule(list_type="set"),
    ("batch.v1.UncountedTerminatedPods", "failed"): FieldRule(list_type="set"),
    ("batch.v1.UncountedTerminatedPods", "succeeded"): FieldRule(list_type="set"),
    ("autoscaling.v2.HorizontalPodAutoscalerStatus", "conditions"): _CONDITIONS,
    ("discovery.v1.Endpoint", "addresses"): FieldRule(list_type="set"),
    ("node.v1.Scheduling", "nodeSelector"): FieldRule(map_type="atomic"),
    ("policy.v1.PodDisruptionBudgetSpec", "selector"): FieldRule("replace"),
    ("policy.v1.PodDisruptionBudgetStatus", "conditions"): _CONDITIONS,
    ("storage.v1.CSIDriverSpec", "volumeLifecycleModes"): FieldRule(list_type="set"),
    ("storage.v1.CSINodeSpec", "drivers"): _keyed("name"),
}

# Structs that are one value to server-side apply: whoever sets one owns all of it.
ATOMIC: frozenset[str] = frozenset({
    "meta.v1.LabelSelector", "meta.v1.OwnerReference", "autoscaling.v1.CrossVersionObjectReference",
    "core.v1.ConfigMapKeySelector", "core.v1.EndpointAddress", "core.v1.EndpointPort",
    "core.v1.LocalObjectReference", "core.v1.NodeSelector", "core.v1.NodeSelectorTerm",
    "core.v1.ObjectFieldSelector", "core.v1.ObjectReference", "core.v1.ResourceFieldSelector",
    "core.v1.ScopeSelector", "core.v1.SecretKeySelector", "core.v1.TopologySelectorTerm",
    "core.v1.TypedLocalObjectReference", "discovery.v1.EndpointPort",
    "networking.v1.ServiceBackendPort", "rbac.v1.RoleRef", "rbac.v1.Subject",
    "core.v1.SecretReference",
})

NO_RULE = FieldRule()


def rule(owner: str | None, key: str) -> FieldRule:
    """The merge facts of member `key` of the struct defined as `owner`."""
    if owner is None:
        return NO_RULE
    return FIELD_RULES.get((short(owner), key), NO_RULE)


def atomic_struct(schema: Schema | None) -> bool:
    name = ref_name(schema) if schema is not None else None
    return name is not None and short(name) in ATOMIC


# ---- decoding with the duplicates noted

class Members(dict[str, Any]):
    """A JSON object as decoded, with its members' keys in the body's order, duplicates
    included (a plain dict keeps only the last of each). Made only for objects that had a
    duplicate; plain dicts otherwise."""
    __slots__ = ("order", "lines")

    def __init__(self, pairs: list[tuple[str, Any]], lines: list[int] | None = None) -> None:
        super().__init__(pairs)
        self.order = [k for k, _ in pairs]
        self.lines = lines or []


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    return Members(pairs) if len(out) != len(pairs) else out


def _no_constant(word: str) -> Any:
    raise ValueError(f"{word} is not JSON")


def loads(raw: bytes | str) -> Any:
    """JSON as Go's decoder reads it (NaN and Infinity are not numbers), the last of a
    duplicated key winning, and the duplicates kept for field validation. Bytes are UTF-8
    (Python would also guess UTF-16 and UTF-32, which Go's decoder refuses)."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_pairs)


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but duplicate keys are noted (with their lines) as Go's yaml
    notes them, and aliases refused (their expansion is a bomb in a small body)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases are not accepted")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        self.flatten_mapping(node)
        pairs: list[tuple[str, Any]] = []
        lines: list[int] = []
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):  # JSON's keys are strings; YAML's 1: or true: too
                key = json.dumps(key) if isinstance(key, bool | None) else str(key)
            pairs.append((key, self.construct_object(value_node, deep=True)))
            lines.append(key_node.start_mark.line + 1)
        if len({k for k, _ in pairs}) != len(pairs):
            return Members(pairs, lines)
        return dict(pairs)


_YamlLoader.add_constructor("tag:yaml.org,2002:map", _YamlLoader.construct_mapping)


def _jsonable(value: Any) -> Any:
    """A YAML value as it would come through JSON (dates as strings, NaN refused)."""
    if isinstance(value, Members):
        out = Members([(k, _jsonable(value[k])) for k in dict.fromkeys(value.order)],
                      value.lines)
        out.order = value.order
        return out
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        raise ValueError("NaN and Infinity are not JSON")
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def loads_yaml(raw: bytes | str) -> Any:
    return _jsonable(yaml.load(raw, Loader=_YamlLoader))  # noqa: S506 - a safe loader


def plain(value: Any) -> Any:
    """The value with plain dicts only (Members dropped)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def duplicates(value: Any, path: str = "") -> Iterator[str]:
    """The duplicated keys of a decoded body, as field paths in the body's order."""
    if isinstance(value, dict):
        order = value.order if isinstance(value, Members) else list(value)
        seen: set[str] = set()
        for k in order:
            if k in seen:
                yield _join(path, k)
                continue
            seen.add(k)
            yield from duplicates(value[k], _join(path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from duplicates(v, f"{path}[{i}]")


def yaml_duplicates(value: Any) -> list[tuple[int, str]]:
    """(line, key) of a YAML body's duplicated keys, in line order."""
    out: list[tuple[int, str]] = []

    def walk(v: Any) -> None:
        if isinstance(v, Members):
            seen: set[str] = set()
            for k, line in zip(v.order, v.lines, strict=False):
                if k in seen:
                    out.append((line, k))
                seen.add(k)
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(value)
    return sorted(out)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# ---- field validation

_JSON_TYPE = {dict: "object", list: "array", str: "string", bool: "bool", int: "number",
              float: "number"}


Path = tuple[str | int, ...]


@dataclass
class Findings:
    """What a walk of an object against its schema found: strict decoding errors (unknown
    and duplicate fields, in the order the apiserver's decoder reports them), the unknown
    members' paths, and type errors (the decoder's own failures: never accepted)."""
    strict: list[str]
    types: list[str]
    unknown: list[Path]


def go_type(schema: Schema | None) -> str:
    """The Go type a schema stands for, as the apiserver's decode errors name it
    ([]v1.Container, map[string]string, int32, intstr.IntOrString)."""
    if schema is None:
        return "interface {}"
    name = ref_name(schema)
    node = resolve(schema) or {}
    if name is not None and (node.get("properties") or one_of(node)):
        parts = name.split(".")
        return f"{parts[-2]}.{parts[-1]}"
    t = type_of(node)
    if t == "array":
        return "[]" + go_type(items(schema))
    if t == "object" and isinstance(node.get("additionalProperties"), dict):
        return "map[string]" + go_type(node["additionalProperties"])
    return {"integer": str(node.get("format") or "int64"), "number": "float64",
            "boolean": "bool", "string": "string"}.get(t or "", "interface {}")


def _type_error(value: Any, schema: Schema, owner: str | None, path: str) -> str | None:
    node = resolve(schema) or {}
    if value is None or is_free(node):
        return None
    t = type_of(node)
    alts = one_of(node)
    if alts:
        ok = any(_fits(value, a) for a in alts)
    elif t is None:
        return None
    else:
        ok = _fits(value, t)
    if ok and _in_range(value, schema, node):
        return None
    got = _JSON_TYPE.get(type(value), "value")
    if ok:  # a number its Go type cannot hold, as Go's decoder words it
        got = f"number {str(value)[:40]}"
    where = f"{short(owner).rsplit('.', 1)[-1]}.{path}" if owner else path
    return f"json: cannot unmarshal {got} into Go struct field {where} of type {go_type(schema)}"


_INT_LIMITS = {"int32": 2**31, "int64": 2**63}


def _in_range(value: Any, schema: Schema, node: Schema) -> bool:
    """Whether a number fits the Go type it decodes into: int32 and int64 members (and
    IntOrString's int32) hold no more, a float64 no infinity (1e400 in JSON)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if not isinstance(value, int) or isinstance(value, bool):
        return True
    fmt = node.get("format")
    if fmt is None and (ref_name(schema) or "").endswith("intstr.IntOrString"):
        fmt = "int32"
    limit = _INT_LIMITS.get(fmt or "")
    return limit is None or -limit <= value < limit


def _fits(value: Any, t: str) -> bool:
    if t == "string":
        return isinstance(value, str)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    return True


def check(obj: Any, schema: Schema) -> Findings:
    """Walk `obj` against `schema` (kind_schema's root)."""
    found = Findings([], [], [])
    _walk(obj, schema, None, "", (), found)
    return found


def _walk(value: Any, schema: Schema, owner: str | None, path: str, at: Path,
          found: Findings) -> None:
    if path:
        err = _type_error(value, schema, owner, path)
        if err:
            found.types.append(err)
            return
    node = resolve(schema)
    if node is None or is_free(node) or value is None:
        return
    if isinstance(value, dict):
        order = value.order if isinstance(value, Members) else list(value)
        seen: set[str] = set()
        for key in order:
            struct, sub = child(schema, key)
            known = sub is not None or "properties" not in node
            if key in seen:
                if known:
                    found.strict.append(f'duplicate field "{_join(path, key)}"')
                continue
            seen.add(key)
            if sub is None:
                if "properties" in node:
                    found.strict.append(f'unknown field "{_join(path, key)}"')
                    found.unknown.append((*at, key))
                continue
            _walk(value[key], sub, struct, _join(path, key), (*at, key), found)
    elif isinstance(value, list):
        it = items(schema)
        if it is not None:
            for i, v in enumerate(value):
                _walk(v, it, owner, f"{path}[{i}]", (*at, i), found)


def path_text(path: Path) -> str:
    out = ""
    for seg in path:
        out = f"{out}[{seg}]" if isinstance(seg, int) else _join(out, seg)
    return out


def drop(value: Any, paths: list[Path]) -> Any:
    """A plain copy of the value without the members at `paths`."""
    out = plain(value)
    for path in paths:
        node = out
        for seg in path[:-1]:
            try:
                node = node[seg]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return out


# ---- fieldValidation: the request-level rules

DIRECTIVES = ("Ignore", "Warn", "Strict")


def directive(values: list[str]) -> str:
    """A request's fieldValidation: Warn when absent, as the apiserver's default."""
    if not values:
        return "Warn"
    if values[0] not in DIRECTIVES:
        raise bad_request(f'fieldValidation must be one of "Ignore", "Warn", or "Strict": '
                          f'got {values[0][:40]!r}')
    return values[0]


def _settle(errors: list[str], warnings: list[str], mode: str, prefix: str) -> list[str]:
    """Strict refuses what was found; Warn says it (a warning each); Ignore drops it."""
    if not errors or mode == "Ignore":
        return []
    if mode == "Strict":
        raise bad_request(f"{prefix}strict decoding error: {', '.join(errors)}")
    return warnings


def checked_body(body: Any, schema: Schema | None, kind: str, version: str, mode: str,
                 from_yaml: bool) -> tuple[Any, list[str]]:
    """A create or update body as the apiserver's typed decode leaves it: (the object
    without undeclared members, the warnings to send); 400 for a value of the wrong type, and
    under Strict for unknown or duplicate fields."""
    if schema is None or not isinstance(body, dict):
        return plain(body), []
    found = check(body, schema)
    prefix = f'{kind} in version "{version}" cannot be handled as a {kind}: '
    if found.types:
        raise bad_request(prefix + found.types[0])
    if from_yaml:
        lines = [f'line {n}: key "{k}" already set in map' for n, k in yaml_duplicates(body)]
        unknown = sorted(f'unknown field "{path_text(p)}"' for p in found.unknown)
        errors = (["yaml: unmarshal errors:\n  " + "\n  ".join(lines)] if lines else [])
        warnings = _settle(errors + unknown, lines + unknown, mode, prefix)
    else:
        warnings = _settle(found.strict, found.strict, mode, prefix)
    return drop(body, found.unknown), warnings


def checked_patch(patch: Any, old: Any, new: Any, schema: Schema | None,
                  mode: str) -> tuple[Any, list[str]]:
    """A patched object as the apiserver keeps it: duplicates in the patch body, then the
    members the patch added that the schema does not declare (sorted), refused under
    Strict, warned of under Warn, dropped unless Strict; 422 for a value of the wrong type."""
    dups = [f'duplicate field "{p}"' for p in duplicates(patch)]
    if isinstance(patch, list):  # a JSON patch: its operations' own members
        dups = _json_patch_fields(patch)
    if schema is None or not isinstance(new, dict):
        return plain(new), _settle(dups, dups, mode, "")
    found = check(new, schema)
    if found.types:
        raise KubeError(422, "Invalid", f"the patched object is invalid: {found.types[0]}")
    before = set(check(old, schema).unknown) if isinstance(old, dict) else set()
    added = [p for p in found.unknown if p not in before]
    unknown = sorted(f'unknown field "{path_text(p)}"' for p in added)
    warnings = _settle(dups + unknown, dups + unknown, mode, "")
    return drop(new, added), warnings


_OP_FIELDS = {"op", "path", "value", "from"}


def _json_patch_fields(ops: list[Any]) -> list[str]:
    out = []
    for i, op in enumerate(ops):
        if not isinstance(op, dict):
            continue
        order = op.order if isinstance(op, Members) else list(op)
        seen: set[str] = set()
        for key in order:
            if key not in _OP_FIELDS:
                if key not in seen:
                    out.append(f'json patch unknown field "[{i}].{key}"')
            elif key in seen:
                out.append(f'json patch duplicate field "[{i}].{key}"')
            seen.add(key)
    return out
