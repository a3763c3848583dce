"""Label selectors (`a=b,c!=d,e in (f,g),!h`) and field selectors (`spec.nodeName=x`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any

from .kubeerrors import bad_request

Matcher = Callable[[dict[str, Any]], bool]
_SET = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s+\(([^()]*)\)\s*$")
_CMP = re.compile(r"^\s*([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=()]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*$")
# What a label's key (an optional DNS subdomain prefix, a name) and value may be.
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _split(text: str) -> list[str]:
    """Commas split requirements except inside a set's parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


LabelTest = Callable[[dict[str, str]], bool]


def _label_in(key: str, values: set[str], inside: bool) -> LabelTest:
    return lambda labels: (labels.get(key) in values) == inside


def _label_is(key: str, value: str, equal: bool) -> LabelTest:
    return lambda labels: (labels.get(key) == value) == equal


def _label_set(key: str, present: bool) -> LabelTest:
    return lambda labels: (key in labels) == present


def _checked(part: str, key: str, values: set[str]) -> None:
    """A requirement's key and values as labels take them (the apiserver refuses a
    selector that no label could ever match by its shape)."""
    prefix, _, name = key.rpartition("/")
    if len(name) > 63 or not _NAME.match(name) or (
            "/" in key and (len(prefix) > 253 or not _PREFIX.match(prefix))):
        raise bad_request(f"unable to parse requirement: {part.strip()[:100]!r}: invalid "
                          f"label key {key[:80]!r}")
    for v in values:
        if len(v) > 63 or not _VALUE.match(v):
            raise bad_request(f"unable to parse requirement: {part.strip()[:100]!r}: invalid "
                              f"label value {v[:80]!r}: must be 63 characters or less, "
                              "alphanumeric with '-', '_' or '.' inside")


def label_selector(text: str | None) -> LabelTest:
    reqs: list[LabelTest] = []
    for part in _split(text or ""):
        if m := _SET.match(part):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if values == {""}:
                raise bad_request(f"unable to parse requirement: {part.strip()[:100]!r}: "
                                  "for 'in', 'notin' operators, values set can't be empty")
            _checked(part, key, values)
            reqs.append(_label_in(key, values, op == "in"))
        elif m := _CMP.match(part):
            key, op, value = m.groups()
            _checked(part, key, {value})
            reqs.append(_label_is(key, value, op != "!="))
        elif m := _EXISTS.match(part):
            neg, key = m.groups()
            _checked(part, key, set())
            reqs.append(_label_set(key, not neg))
        else:
            raise bad_request(f"unable to parse requirement: {part.strip()[:100]!r}")
    return lambda labels: all(r(labels) for r in reqs)


_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def selector_errors(sel: Any, field: str) -> list[tuple[str, str]]:
    """A metav1.LabelSelector's shape, as validation words it."""
    if sel is None:
        return []
    if not isinstance(sel, dict):
        return [(field, "Invalid value: must be an object")]
    out = []
    labels = sel.get("matchLabels")
    if labels is not None and (not isinstance(labels, dict) or not all(
            isinstance(v, str) for v in labels.values())):
        out.append((f"{field}.matchLabels", "Invalid value: must be a map of strings"))
    for i, e in enumerate(sel.get("matchExpressions") or []):
        at = f"{field}.matchExpressions[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("key"), str) or not e["key"]:
            out.append((f"{at}.key", "Required value"))
            continue
        op, values = e.get("operator"), e.get("values") or []
        if op not in _OPERATORS:
            out.append((f"{at}.operator", f"Unsupported value: {str(op)[:40]!r}: supported "
                        'values: "In", "NotIn", "Exists", "DoesNotExist"'))
        elif not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            out.append((f"{at}.values", "Invalid value: must be a list of strings"))
        elif op in ("In", "NotIn") and not values:
            out.append((f"{at}.values", "Required value: must be specified when `operator` "
                        "is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist") and values:
            out.append((f"{at}.values", "Forbidden: may not be specified when `operator` is "
                        "'Exists' or 'DoesNotExist'"))
    return out


def selector_matcher(sel: dict[str, Any] | None) -> LabelTest:
    """A LabelSelector object (matchLabels, matchExpressions) as a test of labels; an
    empty selector matches everything, None nothing (as the apiserver reads them)."""
    if sel is None:
        return lambda labels: False
    reqs: list[LabelTest] = [_label_is(k, v, True)
                             for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or []:
        op, key = e.get("operator"), e.get("key", "")
        if op in ("In", "NotIn"):
            reqs.append(_label_in(key, set(e.get("values") or []), op == "In"))
        else:
            reqs.append(_label_set(key, op == "Exists"))
    return lambda labels: all(r(labels) for r in reqs)


def selector_text(sel: dict[str, Any]) -> str:
    """A LabelSelector object as the text form (`a=b,c in (d,e),!f`), as a Scale's
    status.selector and kubectl show it."""
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op, key, values = e.get("operator"), e.get("key", ""), sorted(e.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def _get(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for key in path.split("."):
        cur = cur.get(key) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur)


def field_selector(text: str | None, allowed: AbstractSet[str]) -> Matcher:
    reqs: list[Matcher] = []
    for part in _split(text or ""):
        m = _CMP.match(part)
        if not m:
            raise bad_request(f"invalid selector: {part.strip()[:100]!r}; can't understand it")
        key, op, value = m.groups()
        if key not in allowed:
            raise bad_request(f'field label not supported: {key[:100]}')
        reqs.append(_field_is(key, value, op != "!="))
    return lambda obj: all(r(obj) for r in reqs)


def _field_is(path: str, value: str, equal: bool) -> Matcher:
    return lambda obj: (_get(obj, path) == value) == equal


FIELDS = {
    "pods": {"metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy",
             "spec.schedulerName", "spec.serviceAccountName", "status.phase", "status.podIP",
             "status.nominatedNodeName"},
    "nodes": {"metadata.name", "spec.unschedulable"},
    "namespaces": {"metadata.name", "status.phase"},
    "events": {"metadata.name", "metadata.namespace", "involvedObject.kind",
               "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
               "involvedObject.apiVersion", "involvedObject.resourceVersion",
               "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"},
    "configmaps": {"metadata.name", "metadata.namespace"},
    "secrets": {"metadata.name", "metadata.namespace", "type"},
    "replicasets": {"metadata.name", "metadata.namespace", "status.replicas"},
}
