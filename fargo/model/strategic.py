"""Strategic merge patch, as kube-apiserver applies one (the patch type kubectl's apply, edit,
label, set and rollout send): a JSON merge patch whose lists merge item by item where the
kind's schema says so (model/kubeschema.py's FIELD_RULES: containers by name, env by name,
finalizers as a set...) and whose directives say what plain JSON cannot:

- `$patch: replace` in a map (the map becomes the patch's) or as a list item (the list does);
  `$patch: delete` in a map (it empties) or in a list item (the item with that key goes);
  `$patch: merge` (the default);
- `$setElementOrder/FIELD`: the order of a merged list's items (those it names first, in its
  order; the others where they were);
- `$deleteFromPrimitiveList/FIELD`: values taken out of a merged list of scalars;
- `$retainKeys`: the map keeps only these keys (a union's members: a Deployment's strategy,
  a volume's source).

A null deletes a key; a null for a key that is not there is dropped. A list without a merge
strategy is replaced whole. Pure."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Hashable
from typing import Any

from . import kubeschema
from .kubeschema import FieldRule, Schema

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_FROM = "$deleteFromPrimitiveList/"


class PatchError(ValueError):
    """A patch that cannot be applied: 400 for a malformed one, 422 for one that does not
    fit the object (as the apiserver tells them apart)."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


def apply(original: Any, patch: Any, schema: Schema | None) -> dict[str, Any]:
    """`original` with `patch` applied; `schema` is the kind's root (kubeschema.kind_schema;
    None merges every list by replacing it, as for a kind without a schema)."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    base = original if isinstance(original, dict) else {}
    return _merge_map(base, patch, schema)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 200 else text[:200] + "..."


def _merge_map(original: dict[str, Any], patch: dict[str, Any],
               schema: Schema | None) -> dict[str, Any]:
    patch = dict(patch)
    directive = patch.pop(DIRECTIVE, None)
    if directive == "replace":
        return _merge_map({}, patch, schema)
    if directive == "delete":
        return {}
    if directive not in (None, "merge"):
        raise PatchError(f"unknown patch type: {_short(directive)} in map: {_short(patch)}")
    out = copy.deepcopy(original)
    retain = patch.pop(RETAIN_KEYS, None)
    if retain is not None:
        if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
            raise PatchError(f"invalid patch: $retainKeys must be a list of strings: "
                             f"{_short(retain)}")
        for key in patch:
            if not key.startswith("$") and key not in retain and patch[key] is not None:
                raise PatchError(f"the patch has a field {key!r} that is not present in "
                                 f"$retainKeys {_short(retain)}", 422)
        out = {k: v for k, v in out.items() if k in retain}
    orders: dict[str, list[Any]] = {}
    deletes: dict[str, list[Any]] = {}
    for key in [k for k in patch if k.startswith("$")]:
        value = patch.pop(key)
        if key.startswith(SET_ORDER):
            if not isinstance(value, list):
                raise PatchError(f"invalid patch: {key} must be a list: {_short(value)}")
            orders[key[len(SET_ORDER):]] = value
        elif key.startswith(DELETE_FROM):
            if not isinstance(value, list):
                raise PatchError(f"invalid patch: {key} must be a list: {_short(value)}")
            deletes[key[len(DELETE_FROM):]] = value
        else:
            raise PatchError(f"unknown directive {key!r} in a strategic merge patch")
    for key, value in patch.items():
        owner, sub = kubeschema.child(schema, key)
        rule = kubeschema.rule(owner, key)
        if value is None:
            out.pop(key, None)
            continue
        current = out.get(key)
        if isinstance(value, dict):
            keep = current if isinstance(current, dict) and "replace" not in rule.strategy \
                else {}
            out[key] = _merge_map(keep, value, sub)
        elif isinstance(value, list):
            keep_list = current if isinstance(current, list) else []
            out[key] = _merge_list(keep_list, value, sub, rule, orders.pop(key, None),
                                   deletes.pop(key, None), key)
        else:
            out[key] = value
    # directives for lists the patch does not otherwise name
    for key in set(orders) | set(deletes):
        current = out.get(key)
        if isinstance(current, list):
            owner, sub = kubeschema.child(schema, key)
            out[key] = _merge_list(current, [], sub, kubeschema.rule(owner, key),
                                   orders.get(key), deletes.get(key), key)
    return out


def _fresh(value: Any, schema: Schema | None, rule: FieldRule, field: str) -> Any:
    """A patch value where nothing was: its directives applied to nothing."""
    if isinstance(value, dict):
        return _merge_map({}, value, schema)
    if isinstance(value, list):
        return _merge_list([], value, schema, rule, None, None, field)
    return value


def _merge_list(original: list[Any], patch: list[Any], schema: Schema | None,
                rule: FieldRule, order: list[Any] | None, delete: list[Any] | None,
                field: str) -> list[Any]:
    item_schema = kubeschema.items(schema)
    if "merge" not in rule.strategy:
        if order is not None or delete is not None:
            raise PatchError(f"invalid patch: {field} is not a list merged by the patch "
                             "($setElementOrder and $deleteFromPrimitiveList need one)")
        return [_fresh(v, item_schema, FieldRule(), field) for v in patch
                if not (isinstance(v, dict) and set(v) == {DIRECTIVE})]
    if any(isinstance(v, list) for v in [*original, *patch]):
        raise PatchError(f"lists of lists cannot be merged ({field})", 422)
    maps = any(isinstance(v, dict) for v in [*original, *patch])
    if not maps:
        return _merge_scalars(original, patch, order, delete)
    key = rule.merge_key
    if not key:
        raise PatchError(f"{field}: a list of objects merged without a merge key")
    if delete:
        raise PatchError(f"invalid patch: $deleteFromPrimitiveList/{field} names a list of "
                         "objects")
    if not all(isinstance(v, dict) for v in patch):
        raise PatchError(f"invalid patch: every item of {field} must be an object")
    if any(v.get(DIRECTIVE) == "replace" for v in patch):
        return [_merge_map({}, v, item_schema) for v in patch if v.get(DIRECTIVE) != "replace"]
    out = [copy.deepcopy(v) for v in original]
    merging: list[dict[str, Any]] = []
    for item in patch:
        directive = item.get(DIRECTIVE)
        if key not in item:
            raise PatchError(f"map: {_short(item)} does not contain declared merge key: {key}")
        if directive == "delete":
            out = [v for v in out if not (isinstance(v, dict) and v.get(key) == item[key])]
        elif directive in (None, "merge"):
            merging.append({k: v for k, v in item.items() if k != DIRECTIVE})
        else:
            raise PatchError(f"unknown patch type: {_short(directive)} in list: "
                             f"{_short(item)}")
    for item in merging:
        at = next((i for i, v in enumerate(out)
                   if isinstance(v, dict) and v.get(key) == item[key]), None)
        if at is None:
            out.append(_merge_map({}, item, item_schema))
        else:
            out[at] = _merge_map(out[at], item, item_schema)
    if order is not None:
        if not all(isinstance(v, dict) and key in v for v in order):
            raise PatchError(f"invalid patch: $setElementOrder/{field} items need the merge "
                             f"key {key}")
        wanted = [_hashable(v[key]) for v in order]
    else:
        wanted = [_hashable(v[key]) for v in merging]
    return _ordered(out, wanted, [_hashable(v.get(key)) for v in original
                                  if isinstance(v, dict)],
                    lambda v: _hashable(v.get(key)) if isinstance(v, dict) else None)


def _merge_scalars(original: list[Any], patch: list[Any], order: list[Any] | None,
                   delete: list[Any] | None) -> list[Any]:
    merged: list[Any] = []
    seen: set[Hashable] = set()
    gone = {_hashable(v) for v in delete or []}
    for v in [*original, *patch]:
        h = _hashable(v)
        if h not in seen and h not in gone:
            seen.add(h)
            merged.append(v)
    wanted = [_hashable(v) for v in (order if order is not None else patch)]
    return _ordered(merged, wanted, [_hashable(v) for v in original], _hashable)


def _hashable(value: Any) -> Hashable:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else \
        (type(value).__name__, value)


def _ordered(merged: list[Any], wanted: list[Hashable], server: list[Hashable],
             ident: Callable[[Any], Hashable]) -> list[Any]:
    """The apiserver's order for a merged list: the items the patch (or its
    $setElementOrder) names, in its order, interleaved with the others, which keep their
    places relative to what the live list had before them."""
    want_at = {k: i for i, k in reversed(list(enumerate(wanted)))}
    server_at = {k: i for i, k in reversed(list(enumerate(server)))}
    named = sorted((v for v in merged if ident(v) in want_at), key=lambda v: want_at[ident(v)])
    rest = sorted((v for v in merged if ident(v) not in want_at),
                  key=lambda v: server_at.get(ident(v), len(server)))
    out: list[Any] = []
    i = j = 0
    while i < len(rest) or j < len(named):
        if j >= len(named):
            out.append(rest[i])
            i += 1
        elif i >= len(rest):
            out.append(named[j])
            j += 1
        else:
            li, ri = server_at.get(ident(rest[i])), server_at.get(ident(named[j]))
            if li is not None and ri is not None and li < ri:
                out.append(rest[i])
                i += 1
            else:
                out.append(named[j])
                j += 1
    return out
