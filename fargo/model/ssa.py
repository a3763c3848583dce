"""Server-side apply and the managedFields every write keeps, as kube-apiserver's field
manager does them (structured-merge-diff's rules, written here over the kinds' schemas and
model/kubeschema.py's list and struct rules).

An object's fields are a set of paths: a struct's or map's member is `f:NAME`, an item of a
list merged by keys `k:{"name":"web"}` (its key fields, as JSON), a value of a set-list
`v:"value"`; an atomic list or struct, and any scalar, is one leaf. Each manager (a name, and
whether it applied or updated) owns a set, kept in metadata.managedFields as FieldsV1 (the
paths as a tree, "." marking a node that is itself owned).

- An update (create, PUT, a patch) gives its manager what it added or changed and takes
  that from every other manager; what it removed nobody owns any more.
- An apply merges the applied configuration into the object (maps and keyed lists merged,
  sets unioned, the rest replaced), then removes what the manager applied last time and
  not now, unless another manager owns it. Changing a field another manager owns is a
  conflict (409) unless forced, which takes it over. Applying the value a field already has
  shares it.

Pure: the time of a write comes in."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import kubeschema
from .kubeerrors import KubeError
from .kubeschema import NO_RULE, FieldRule, Schema

CONTENT_TYPE = "application/apply-patch+yaml"
MAX_MANAGER = 128

Path = tuple[str, ...]
_ITEM = "\x00item"  # the value of a list item's own path: it is there, or not
# What no manager owns: the object's identity and the server's stamps.
IGNORED: frozenset[Path] = frozenset({
    ("f:apiVersion",), ("f:kind",),
    *(("f:metadata", f"f:{k}") for k in (
        "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName",
        "generation", "managedFields", "resourceVersion", "deletionTimestamp",
        "deletionGracePeriodSeconds", "generateName")),
})
# Key fields the apiserver defaults where an item leaves them out.
_KEY_DEFAULTS = {"protocol": "TCP"}


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _item_key(item: Any, rule: FieldRule) -> str | None:
    if not isinstance(item, dict):
        return None
    keys = {}
    for k in sorted(rule.map_keys):
        if k in item and item[k] is not None:
            keys[k] = item[k]
        elif k in _KEY_DEFAULTS:
            keys[k] = _KEY_DEFAULTS[k]
    return "k:" + _compact(keys) if keys else None


def _atomic(value: Any, schema: Schema | None, rule: FieldRule) -> bool:
    node = kubeschema.resolve(schema)
    return (node is None or kubeschema.is_free(node) or kubeschema.atomic_struct(schema)
            or rule.map_type == "atomic")


def leaves(obj: Any, schema: Schema | None,
           maps: set[Path] | None = None) -> dict[Path, Any]:
    """Every owned path of an object (its leaves, list items and empty maps) -> the value
    there (_ITEM for an item), the identity and stamps left out; `maps` collects the paths
    of its maps (labels, data: not structs)."""
    out: dict[Path, Any] = {}
    _leaves(obj, schema, NO_RULE, (), out, maps)
    for path in IGNORED:
        out.pop(path, None)
    out.pop(("f:metadata",), None)
    return out


def _leaves(value: Any, schema: Schema | None, rule: FieldRule, path: Path,
            out: dict[Path, Any], maps: set[Path] | None = None) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        if path and (not value or _atomic(value, schema, rule)):
            out[path] = value
            return
        if maps is not None and path and "additionalProperties" in (
                kubeschema.resolve(schema) or {}):
            maps.add(path)
        for key, sub in value.items():
            owner, sub_schema = kubeschema.child(schema, key)
            _leaves(sub, sub_schema, kubeschema.rule(owner, key), (*path, f"f:{key}"), out,
                    maps)
        return
    if isinstance(value, list) and rule.list_type in ("map", "set"):
        item_schema = kubeschema.items(schema)
        keyed = [_item_key(v, rule) if rule.list_type == "map" else "v:" + _compact(v)
                 for v in value]
        if None not in keyed and len(set(keyed)) == len(keyed):
            for key, item in zip(keyed, value, strict=True):
                at = (*path, str(key))
                out[at] = _ITEM
                if rule.list_type == "map":
                    for k, v in item.items():
                        owner, sub = kubeschema.child(item_schema, k)
                        _leaves(v, sub, kubeschema.rule(owner, k), (*at, f"f:{k}"), out,
                                maps)
            return
    out[path] = value


# ---- FieldsV1
def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    members = set(paths)
    for path in sorted(members):
        node = tree
        for el in path:
            node = node.setdefault(el, {})
    # "." marks an owned node that has owned children too
    for path in members:
        node = tree
        for el in path:
            node = node[el]
        if node:
            node["."] = {}
    return _sorted(tree)


def _sorted(tree: dict[str, Any]) -> dict[str, Any]:
    return {k: _sorted(tree[k]) for k in sorted(tree)}  # "." first, as the apiserver's


def from_fields_v1(tree: Any, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(tree, dict):
        return out
    for key, sub in tree.items():
        if key == ".":
            if prefix:
                out.add(prefix)
            continue
        at = (*prefix, str(key))
        if isinstance(sub, dict) and sub:
            out |= from_fields_v1(sub, at)
        else:
            out.add(at)
    return out


@dataclass
class Manager:
    manager: str
    operation: str  # Apply or Update
    api_version: str
    time: str
    fields: set[Path] = field(default_factory=set)
    subresource: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation,
                               "apiVersion": self.api_version, "time": self.time,
                               "fieldsType": "FieldsV1",
                               "fieldsV1": to_fields_v1(self.fields)}
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def managers(obj: Any) -> list[Manager]:
    """The managers an object's metadata.managedFields names (malformed entries dropped)."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    entries = meta.get("managedFields") if isinstance(meta, dict) else None
    out: list[Manager] = []
    for e in entries if isinstance(entries, list) else []:
        if not isinstance(e, dict) or not isinstance(e.get("manager"), str):
            continue
        out.append(Manager(e["manager"], str(e.get("operation") or "Update"),
                           str(e.get("apiVersion") or ""), str(e.get("time") or ""),
                           from_fields_v1(e.get("fieldsV1")), str(e.get("subresource") or "")))
    return out


def _encoded(mgrs: list[Manager]) -> list[dict[str, Any]]:
    return [m.entry() for m in mgrs if m.fields]


def check_manager(name: str) -> None:
    if len(name) > MAX_MANAGER or not name.isprintable():
        raise KubeError(422, "Invalid", f"fieldManager: Invalid value: {name[:140]!r}: must "
                        f"be printable and at most {MAX_MANAGER} characters",
                        {"causes": [{"reason": "FieldValueInvalid", "field": "fieldManager",
                                     "message": "Invalid value"}]})


def manager_name(field_manager: str | None, user_agent: str) -> str:
    """An update's manager: the request's fieldManager, else its User-Agent's program (the
    part before the first "/"), as the apiserver names one."""
    if field_manager:
        check_manager(field_manager)
        return field_manager
    program = "".join(c for c in user_agent.split("/", 1)[0] if c.isprintable())
    return program[:MAX_MANAGER]


def _compare(old: dict[Path, Any], new: dict[Path, Any]) -> tuple[set[Path], set[Path]]:
    """(added or modified, removed) between two objects' leaves."""
    changed = {p for p, v in new.items() if p not in old or old[p] != v}
    return changed, set(old) - set(new)


def _status_free(paths: set[Path], reset: Path | None) -> set[Path]:
    return {p for p in paths if reset is None or p[:1] != reset}


def updated(old: Any, new: dict[str, Any], schema: Schema | None, manager: str,
            api_version: str, now: str, subresource: str = "",
            status: bool = False) -> list[dict[str, Any]]:
    """The managedFields an update (or a create: old None) leaves on `new`. A request that
    sets managedFields itself starts from those (an empty list resets them)."""
    given = (new.get("metadata") or {}).get("managedFields")
    mgrs = managers(new) if given is not None else managers(old)
    old_maps: set[Path] = set()
    new_maps: set[Path] = set()
    changed, removed = _compare(leaves(old, schema, old_maps) if old else {},
                                leaves(new, schema, new_maps))
    changed |= new_maps - old_maps  # a map the write made is its own (".") as well
    removed |= old_maps - new_maps - set(leaves(new, schema))
    # A write to the object leaves status to the status subresource, and back.
    reset: Path | None = None
    if status:
        reset = ("f:spec",) if subresource == "status" else ("f:status",)
        changed, removed = _status_free(changed, reset), _status_free(removed, reset)
    mine = next((m for m in mgrs if m.key == (manager, "Update", subresource)), None)
    for m in mgrs:
        if m is not mine:
            m.fields -= changed | removed
    if mine is None:
        mine = Manager(manager, "Update", api_version, now, set(), subresource)
        mgrs.append(mine)
    mine.fields = (mine.fields | changed) - removed
    if changed:  # a write that changed nothing leaves its manager's time as it was
        mine.time, mine.api_version = now, api_version
    return _encoded(mgrs)


# ---- apply
def merge(live: Any, applied: Any, schema: Schema | None, rule: FieldRule = NO_RULE,
          root: bool = True) -> Any:
    """The applied configuration merged into the live object."""
    if isinstance(applied, dict) and isinstance(live, dict) and (
            root or not _atomic(applied, schema, rule)):
        out = copy.deepcopy(live)
        for key, value in applied.items():
            if value is None:
                continue
            owner, sub = kubeschema.child(schema, key)
            out[key] = merge(live.get(key), value, sub, kubeschema.rule(owner, key), False)
        return out
    if isinstance(applied, list) and isinstance(live, list) and rule.list_type in ("map",
                                                                                   "set"):
        if rule.list_type == "set":
            seen = {_compact(v) for v in live}
            return copy.deepcopy(live) + [copy.deepcopy(v) for v in applied
                                          if _compact(v) not in seen]
        keys = [_item_key(v, rule) for v in live]
        out_list = copy.deepcopy(live)
        item_schema = kubeschema.items(schema)
        for item in applied:
            key = _item_key(item, rule)
            if key is not None and key in keys:
                at = keys.index(key)
                out_list[at] = merge(live[at], item, item_schema, NO_RULE, False)
            else:
                out_list.append(_clean(item))
                keys.append(key)
        return out_list
    return _clean(applied)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _step(node: Any, el: str) -> Any:
    if el.startswith("f:") and isinstance(node, dict):
        return node.get(el[2:])
    if isinstance(node, list):
        for item in node:
            if _matches(item, el):
                return item
    return None


def _matches(item: Any, el: str) -> bool:
    if el.startswith("v:"):
        return _compact(item) == el[2:]
    if el.startswith("k:") and isinstance(item, dict):
        try:
            keys = json.loads(el[2:])
        except ValueError:
            return False
        return isinstance(keys, dict) and all(
            item.get(k, _KEY_DEFAULTS.get(k)) == v for k, v in keys.items())
    return False


def remove(obj: Any, paths: Iterable[Path]) -> Any:
    """A copy of obj without the members at `paths`; maps and lists a removal empties go
    with it, as an omitted field reads back (the object's own top-level members stay)."""
    out = copy.deepcopy(obj)
    for path in sorted(paths, key=len):  # a removed item takes its fields with it
        trail = [out]  # trail[d]: the node at path[:d]
        for el in path[:-1]:
            trail.append(_step(trail[-1], el))
            if trail[-1] is None:
                break
        if trail[-1] is None:
            continue
        _remove_one(trail[-1], path[-1])
        for depth in range(len(path) - 1, 1, -1):
            if trail[depth] in ({}, []) and path[depth - 1].startswith("f:"):
                _remove_one(trail[depth - 1], path[depth - 1])
            else:
                break
    return out


def _remove_one(node: Any, el: str) -> None:
    if el.startswith("f:") and isinstance(node, dict):
        node.pop(el[2:], None)
    elif isinstance(node, list):
        node[:] = [item for item in node if not _matches(item, el)]


def _key_of_kept(path: Path, kept: set[Path]) -> bool:
    """A key field of a list item that stays (someone owns something in it) stays too."""
    if len(path) < 2 or not path[-2].startswith("k:") or not path[-1].startswith("f:"):
        return False
    try:
        keys = json.loads(path[-2][2:])
    except ValueError:
        return False
    item = path[:-1]
    return path[-1][2:] in keys and any(q[:len(item)] == item for q in kept)


def _manager_text(m: Manager) -> str:
    text = json.dumps(m.manager)
    if m.subresource:
        text += f" with subresource {json.dumps(m.subresource)}"
    if m.operation == "Update":
        text += f" using {m.api_version}"
    return text


def _path_text(path: Path) -> str:
    out = ""
    for el in path:
        kind, _, rest = el.partition(":")
        if kind == "f":
            out += f".{rest}"
        elif kind == "k":
            try:
                keys = json.loads(rest)
            except ValueError:
                keys = {}
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        elif kind == "v":
            out += f"[={rest}]"
        else:
            out += f"[{rest}]"
    return out


def conflict_error(conflicts: list[tuple[Manager, Path]]) -> KubeError:
    """409 Conflict naming each field and who owns it, as the apiserver's apply says it."""
    causes = [{"type": "FieldManagerConflict", "message": f"conflict with {_manager_text(m)}",
               "field": _path_text(p)} for m, p in conflicts]
    if len(conflicts) == 1:
        m, p = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {_manager_text(m)}: " \
                  f"{_path_text(p)}"
    else:
        lines = []
        for text in sorted({_manager_text(m) for m, _ in conflicts}):
            lines.append(f"conflicts with {text}:")
            lines += [f"- {_path_text(p)}" for m, p in conflicts if _manager_text(m) == text]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return KubeError(409, "Conflict", message, {"causes": causes})


def apply(live: dict[str, Any] | None, applied: dict[str, Any], schema: Schema | None,
          manager: str, force: bool, api_version: str, now: str,
          status: bool = False) -> dict[str, Any]:
    """The object an apply leaves (with its managedFields); `live` None creates it. Raises
    the 409 of a conflict unless `force`."""
    applied = _clean(copy.deepcopy(applied))
    if status:
        applied.pop("status", None)  # the status subresource's, not an apply's to the object
    mgrs = managers(live) if live is not None else []
    mine = next((m for m in mgrs if m.key == (manager, "Apply", "")), None)
    last = set(mine.fields) if mine else set()
    mine_set = set(leaves(applied, schema))
    others = [m for m in mgrs if m is not mine]
    merged = merge(live or {}, applied, schema)
    # What this manager applied last time and not now goes, if no one else owns it (or
    # anything inside it).
    kept = mine_set.union(*(m.fields for m in others))
    gone = [p for p in last - kept
            if not any(q[:len(p)] == p for q in kept) and not _key_of_kept(p, kept)]
    merged = remove(merged, gone)
    changed, removed = _compare(leaves(live, schema) if live else {}, leaves(merged, schema))
    if status:
        changed = _status_free(changed, ("f:status",))
    conflicts = [(m, p) for m in others for p in sorted(m.fields & changed)]
    if conflicts and not force:
        raise conflict_error(conflicts)
    for m in others:
        m.fields -= changed | removed
    before = _encoded(managers(live)) if live is not None else []
    if mine is None:
        mine = Manager(manager, "Apply", api_version, now)
        mgrs.append(mine)
    mine.fields = mine_set
    if live is not None and not changed and not removed and \
            _encoded(mgrs) == before:
        return copy.deepcopy(live)  # a no-op apply writes nothing, not even a new time
    mine.time, mine.api_version = now, api_version
    merged.setdefault("metadata", {})["managedFields"] = _encoded(mgrs)
    return merged


def _invalid(field_name: str, message: str, reason: str = "FieldValueRequired") -> KubeError:
    return KubeError(422, "Invalid", f'PatchOptions.meta.k8s.io "" is invalid: {field_name}: '
                     f"{message}", {"causes": [{"reason": reason, "field": field_name,
                                                "message": message}]})


def apply_manager(field_manager: str | None, force: bool, is_apply: bool) -> str | None:
    """The manager of an apply (its fieldManager is required); a non-apply patch may not
    ask for force."""
    if not is_apply:
        if force:
            raise _invalid("force", "Forbidden: may not be specified for non-apply patch",
                           "FieldValueForbidden")
        return None
    if not field_manager:
        raise _invalid("fieldManager", "Required value: is required for apply patch")
    check_manager(field_manager)
    return field_manager


def checked_apply(body: Any, schema: Schema | None, group: str, version: str, kind: str,
                  name: str, mode: str) -> tuple[dict[str, Any], list[str]]:
    """An apply's configuration, checked as the apiserver's field manager checks it: its
    apiVersion, kind and name those of the URL; every member declared by the schema (an
    apply refuses unknown fields whatever fieldValidation says); duplicated keys refused
    under Strict, warned of under Warn. (The configuration, the warnings.)"""
    if not isinstance(body, dict):
        raise KubeError(400, "BadRequest", "error decoding YAML: an apply patch must be an "
                        "object")
    gv = f"{group}/{version}" if group else version
    gvk = f"{gv if group else '/' + version}, Kind={kind}"
    if body.get("apiVersion") != gv or body.get("kind") != kind:
        raise KubeError(400, "BadRequest", f"the apply patch's apiVersion and kind "
                        f"({str(body.get('apiVersion'))[:60]}, {str(body.get('kind'))[:60]}) "
                        f"must be those of the URL ({gv}, {kind})")
    meta = body.get("metadata")
    if isinstance(meta, dict) and meta.get("name") not in (None, "", name):
        raise KubeError(400, "BadRequest", f"the name of the object "
                        f"({str(meta['name'])[:253]}) does not match the name on the URL "
                        f"({name})")
    lines = [f'line {n}: key "{k}" already set in map'
             for n, k in kubeschema.yaml_duplicates(body)]
    dups = lines or [f'duplicate field "{p}"' for p in kubeschema.duplicates(body)]
    warnings: list[str] = []
    if dups and mode == "Strict":
        raise KubeError(400, "BadRequest", "error strict decoding YAML: error converting YAML "
                        "to JSON: yaml: unmarshal errors:\n  " + "\n  ".join(dups))
    if dups and mode == "Warn":
        warnings = dups
    if schema is not None:
        found = kubeschema.check(body, schema)
        problems = [f".{kubeschema.path_text(p)}: field not declared in schema"
                    for p in found.unknown] + found.types
        if problems:
            raise KubeError(400, "BadRequest", f"failed to create typed patch object ({gvk}): "
                            + "; ".join(problems[:20]))
    return kubeschema.plain(body), warnings
