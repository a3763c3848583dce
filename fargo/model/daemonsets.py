"""apps/v1 DaemonSet as kube-apiserver checks it (pure). On EKS Fargate a DaemonSet is
stored and never runs: each Fargate node carries one pod of its own and is not eligible for
any DaemonSet's (EKS: "Daemonsets aren't supported on Fargate"), so its status shows no pod
desired and an event on it says why (control/daemonsets.py)."""

from __future__ import annotations

import re
from typing import Any

from . import batchjobs, selectors
from .kubeerrors import invalid
from .kubekinds import KindRule, register

Obj = dict[str, Any]
Errors = list[tuple[str, str]]
STRATEGIES = ("OnDelete", "RollingUpdate")
_PERCENT = re.compile(r"^[0-9]+%$")
NOT_ON_FARGATE = ("DaemonSets aren't supported on Fargate: no Fargate node is eligible for "
                  "its pods (each Fargate node runs exactly one pod of its own); reconfigure "
                  "the daemon to run as a sidecar container in your Pods")


def default_daemonset(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("maxUnavailable", 1)
                rolling.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    batchjobs.default_template(spec.get("template"))


def _int_or_percent(v: Any, at: str) -> tuple[Errors, bool]:
    """Errors, and whether the value is zero."""
    if batchjobs._is_int(v):
        return ([(at, f"Invalid value: {v}: must be greater than or equal to 0")] if v < 0
                else []), v == 0
    if isinstance(v, str) and _PERCENT.match(v):
        pct = int(v[:-1])
        return ([(at, f"Invalid value: {v!r}: must not be greater than 100%")] if pct > 100
                else []), pct == 0
    return [(at, f"Invalid value: {str(v)[:40]!r}: a valid percent string must be a numeric "
             "string followed by an ending '%'")], False


def check_daemonset(obj: Obj, old: Obj | None) -> None:
    name = obj["metadata"]["name"]
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise invalid("DaemonSet", name, [("spec.selector", "Required value"),
                                          ("spec.template", "Required value")])
    errors: Errors = []
    sel = spec.get("selector")
    if sel is None:
        errors.append(("spec.selector", "Required value"))
    else:
        sel_errors = selectors.selector_errors(sel, "spec.selector")
        errors += sel_errors
        if isinstance(sel, dict) and not sel.get("matchLabels") and \
                not sel.get("matchExpressions"):
            errors.append(("spec.selector", "Invalid value: {}: empty selector is invalid for "
                           "daemonset"))
        elif not sel_errors:
            errors += batchjobs.selector_matches_template(sel, spec.get("template"), "spec")
    template = spec.get("template")
    errors += batchjobs.template_errors(template, "spec.template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        restart = template["spec"].get("restartPolicy", "Always")
        if restart != "Always":
            errors.append(("spec.template.spec.restartPolicy", f"Unsupported value: "
                           f"{str(restart)[:40]!r}: supported values: \"Always\""))
        if template["spec"].get("activeDeadlineSeconds") is not None:
            errors.append(("spec.template.spec.activeDeadlineSeconds", "Forbidden: "
                           "activeDeadlineSeconds in DaemonSet is not Supported"))
    for key in ("minReadySeconds", "revisionHistoryLimit"):
        errors += batchjobs._nonnegative(spec, key, "spec")
    strategy = spec.get("updateStrategy") or {}
    kind = strategy.get("type") if isinstance(strategy, dict) else None
    if kind not in STRATEGIES:
        errors.append(("spec.updateStrategy.type", f"Unsupported value: {str(kind)[:40]!r}: "
                       'supported values: "OnDelete", "RollingUpdate"'))
    elif kind == "OnDelete" and strategy.get("rollingUpdate") is not None:
        errors.append(("spec.updateStrategy.rollingUpdate", "Forbidden: may not be specified "
                       "when strategy `type` is 'OnDelete'"))
    elif kind == "RollingUpdate" and not isinstance(strategy.get("rollingUpdate") or {}, dict):
        errors.append(("spec.updateStrategy.rollingUpdate", "Invalid value: must be an object"))
    elif kind == "RollingUpdate":
        rolling = strategy.get("rollingUpdate") or {}
        at = "spec.updateStrategy.rollingUpdate"
        unavail, no_unavail = _int_or_percent(rolling.get("maxUnavailable", 1),
                                              f"{at}.maxUnavailable")
        surge, no_surge = _int_or_percent(rolling.get("maxSurge", 0), f"{at}.maxSurge")
        errors += unavail + surge
        if no_unavail and no_surge and not unavail and not surge:
            errors.append((f"{at}.maxUnavailable", "Invalid value: 0: may not be 0 when "
                           "`maxSurge` is 0"))
    if old is not None and isinstance(old.get("spec"), dict) and \
            spec.get("selector") != old["spec"].get("selector"):
        errors.append(("spec.selector", f"Invalid value: {spec.get('selector')}: field is "
                       "immutable"))
    if errors:
        raise invalid("DaemonSet", name, errors)


def status_of(ds: Obj) -> Obj:
    """No Fargate node is eligible: nothing desired, scheduled or ready."""
    return {"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
            "numberMisscheduled": 0, "numberReady": 0,
            "observedGeneration": int(ds["metadata"].get("generation") or 1)}


def node_selector_cell(ds: Obj) -> str:
    sel = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "nodeSelector") or {}
    if not isinstance(sel, dict):
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(sel.items(), key=str)) or "<none>"


register(KindRule("daemonsets", "DaemonSet", group="apps", status=True, generation=True,
                  check=check_daemonset, default=default_daemonset))
