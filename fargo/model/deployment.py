"""The apps/v1 Deployment as kube-apiserver checks and defaults it, and the pure rules of
kube-controller-manager's deployment controller: the pod-template hash, which ReplicaSet is
the new one, how far a rolling update may surge and how many pods it may have unavailable,
proportional scaling, revisions and their annotations, the status and its conditions
(Available, Progressing, ReplicaFailure), and which old ReplicaSets the history limit prunes.

control/deployments.py reads the store, asks these, and writes. Pure: times come in."""

from __future__ import annotations

import calendar
import copy
import hashlib
import re
import time
from typing import Any

from . import replicaset as rsm
from .kubeerrors import invalid
from .kubekinds import KindRule, register
from .objmeta import NAME_ALPHABET
from .replicaset import HASH_LABEL, Errors, Obj

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
# A Deployment's annotations its new ReplicaSet does not copy (the controller's own, and
# kubectl's record of what was applied).
SKIP_ANNOTATIONS = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED, MAX_REPLICAS,
                              ROLLBACK_TO})
MAX_HISTORY_CHARS = 2000
NO_DEADLINE = (1 << 31) - 1  # progressDeadlineSeconds of MaxInt32: never times out
RECREATE, ROLLING = "Recreate", "RollingUpdate"

# Condition types and reasons, as upstream words them.
AVAILABLE, PROGRESSING, REPLICA_FAILURE = "Available", "Progressing", "ReplicaFailure"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
RS_UPDATED = "ReplicaSetUpdated"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
RS_CREATE_ERROR = "ReplicaSetCreateError"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

_PERCENT = re.compile(r"^[0-9]+%$")
_PERCENT_MSG = ("a valid percent string must be a numeric string followed by an ending '%' "
                "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")
_TIME = "%Y-%m-%dT%H:%M:%SZ"


# ---- the kind
def default_deployment(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = spec.get("strategy")
    if strategy is None:
        strategy = spec["strategy"] = {}
    if isinstance(strategy, dict):
        if not strategy.get("type"):
            strategy["type"] = ROLLING
        if strategy["type"] == ROLLING:
            ru = strategy.get("rollingUpdate")
            if ru is None:
                ru = strategy["rollingUpdate"] = {}
            if isinstance(ru, dict):
                if ru.get("maxUnavailable") is None:
                    ru["maxUnavailable"] = "25%"
                if ru.get("maxSurge") is None:
                    ru["maxSurge"] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    rsm.default_template(obj)


def _int_or_percent(errors: Errors, value: Any, field: str) -> None:
    if isinstance(value, str):
        if not _PERCENT.match(value):
            errors.append((field, f'Invalid value: "{value[:40]}": {_PERCENT_MSG}'))
    elif isinstance(value, int) and not isinstance(value, bool):
        rsm.nonnegative(errors, value, field)
    elif value is not None:
        errors.append((field, "Invalid value: must be an integer or a percentage"))


def _amount(value: Any) -> int:
    """The number an int-or-percent holds (25 of "25%")."""
    if isinstance(value, str) and _PERCENT.match(value):
        return int(value[:-1])
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _strategy_errors(strategy: Any) -> Errors:
    if not isinstance(strategy, dict):
        return [("spec.strategy", "Invalid value: must be an object")]
    kind = strategy.get("type")
    ru = strategy.get("rollingUpdate")
    if kind == RECREATE:
        if ru is not None:
            return [("spec.strategy.rollingUpdate", "Forbidden: may not be specified when "
                     "strategy `type` is 'Recreate'")]
        return []
    if kind != ROLLING:
        return [("spec.strategy.type", f'Unsupported value: "{str(kind)[:40]}": supported '
                 'values: "Recreate", "RollingUpdate"')]
    if not isinstance(ru, dict):
        return [("spec.strategy.rollingUpdate", "Required value: this should be defaulted "
                 "and never be nil")]
    errors: Errors = []
    at = "spec.strategy.rollingUpdate"
    _int_or_percent(errors, ru.get("maxUnavailable"), f"{at}.maxUnavailable")
    _int_or_percent(errors, ru.get("maxSurge"), f"{at}.maxSurge")
    if _amount(ru.get("maxUnavailable")) == 0 and _amount(ru.get("maxSurge")) == 0:
        shown = ru.get("maxUnavailable")
        errors.append((f"{at}.maxUnavailable", f"Invalid value: "
                       f"{shown if isinstance(shown, int) else repr(shown)}: may not be 0 "
                       "when `maxSurge` is 0"))
    mu = ru.get("maxUnavailable")
    if isinstance(mu, str) and _PERCENT.match(mu) and int(mu[:-1]) > 100:
        errors.append((f"{at}.maxUnavailable", f'Invalid value: "{mu}": must not be greater '
                       "than 100%"))
    return errors


def check_deployment(obj: Obj, old: Obj | None) -> None:
    name = obj["metadata"]["name"]
    spec = rsm.dict_field(obj, "Deployment", "spec")
    if spec is None:
        raise invalid("Deployment", name, [("spec.selector", "Required value"),
                                           ("spec.template", "Required value")])
    errors: Errors = []
    kind = "Deployment"
    rsm.nonnegative(errors, rsm.int_field(obj, kind, "spec.replicas"), "spec.replicas")
    errors += rsm.spec_selector_errors(spec, kind)
    errors += rsm.template_errors(spec)
    errors += _strategy_errors(spec.get("strategy"))
    min_ready = rsm.int_field(obj, kind, "spec.minReadySeconds")
    rsm.nonnegative(errors, min_ready, "spec.minReadySeconds")
    rsm.nonnegative(errors, rsm.int_field(obj, kind, "spec.revisionHistoryLimit"),
                    "spec.revisionHistoryLimit")
    deadline = rsm.int_field(obj, kind, "spec.progressDeadlineSeconds")
    if deadline is not None:
        rsm.nonnegative(errors, deadline, "spec.progressDeadlineSeconds")
        if deadline <= (min_ready or 0):
            errors.append(("spec.progressDeadlineSeconds", f"Invalid value: {deadline}: must "
                           "be greater than minReadySeconds"))
    paused = spec.get("paused")
    if paused is not None and not isinstance(paused, bool):
        raise rsm._decode_error(kind, "spec.paused", "bool", paused)
    errors += rsm.selector_immutable(obj, old)
    if errors:
        raise invalid("Deployment", name, errors)


register(KindRule("deployments", "Deployment", group=rsm.GROUP, version=rsm.VERSION,
                  status=True, generation=True, scale=True, check=check_deployment,
                  default=default_deployment))


# ---- reading objects
def replicas(obj: Obj) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return value if isinstance(value, int) else 1


def status_count(obj: Obj, key: str) -> int:
    return int((obj.get("status") or {}).get(key) or 0)


def annots(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}


def revision(obj: Obj) -> int | None:
    """The revision annotation's number (0 without one; None if it is not a number)."""
    raw = annots(obj).get(REVISION)
    if raw is None:
        return 0
    try:
        return int(raw)
    except ValueError:
        return None


def rolling(d: Obj) -> bool:
    return ((d["spec"].get("strategy") or {}).get("type") or ROLLING) == ROLLING


def has_deadline(d: Obj) -> bool:
    value = d["spec"].get("progressDeadlineSeconds")
    return isinstance(value, int) and value != NO_DEADLINE


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """An int-or-percent of `total` (a percentage rounds up or down)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _PERCENT.match(value):
        share = int(value[:-1]) * total
        return -(-share // 100) if round_up else share // 100
    return 0


def fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods; both 0 resolves unavailable to 1 (a percentage
    may round down to 0 even though validation refuses both 0)."""
    ru = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    want = replicas(d)
    surge = scaled_value(ru.get("maxSurge", 0), want, True)
    unavailable = scaled_value(ru.get("maxUnavailable", 0), want, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Obj) -> int:
    return fenceposts(d)[0] if rolling(d) else 0


def max_unavailable(d: Obj) -> int:
    if not rolling(d) or replicas(d) == 0:
        return 0
    return min(fenceposts(d)[1], replicas(d))


# ---- the pod-template hash and the new ReplicaSet
def template_hash(template: Obj, collisions: int | None) -> str:
    """A stable hash of the template (and the collision count, when there is one), in the
    apiserver's safe alphabet: the new ReplicaSet's name suffix and its pods' label."""
    text = rsm.canonical(template) + ("" if collisions is None else f"/{collisions}")
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(NAME_ALPHABET[b % len(NAME_ALPHABET)] for b in digest[:10])


def _without_hash(template: Any) -> Any:
    t = copy.deepcopy(template) if isinstance(template, dict) else {}
    meta = t.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("labels"), dict):
        meta["labels"].pop(HASH_LABEL, None)
        if not meta["labels"]:
            del meta["labels"]
    if isinstance(meta, dict) and not meta:
        del t["metadata"]
    return t


def equal_ignore_hash(a: Any, b: Any) -> bool:
    return bool(_without_hash(a) == _without_hash(b))


def by_creation(rss: list[Obj]) -> list[Obj]:
    return sorted(rss, key=lambda r: (r["metadata"].get("creationTimestamp") or "",
                                      r["metadata"]["name"]))


def find_new(d: Obj, rss: list[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template is the Deployment's (ignoring the hash label)."""
    return next((rs for rs in by_creation(rss)
                 if equal_ignore_hash(rs["spec"].get("template"), d["spec"]["template"])), None)


def max_revision(rss: list[Obj]) -> int:
    return max([r for rs in rss if (r := revision(rs)) is not None] or [0])


def new_rs_body(d: Obj, rs_hash: str, count: int) -> Obj:
    """The new ReplicaSet a Deployment creates (named NAME-HASH, so a retry after a crash
    finds it rather than making a second)."""
    template = copy.deepcopy(d["spec"]["template"])
    meta = template.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), HASH_LABEL: rs_hash}
    selector = copy.deepcopy(d["spec"]["selector"])
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: rs_hash}
    spec: Obj = {"replicas": count, "selector": selector, "template": template}
    if d["spec"].get("minReadySeconds"):
        spec["minReadySeconds"] = d["spec"]["minReadySeconds"]
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{d['metadata']['name']}-{rs_hash}",
                         "namespace": d["metadata"].get("namespace", ""),
                         "labels": dict(meta["labels"])},
            "spec": spec}


def new_rs_replicas(d: Obj, all_rss: list[Obj], new: Obj) -> int:
    """What the new ReplicaSet may be scaled to now: under RollingUpdate, up to
    replicas + maxSurge pods in all; under Recreate, all of them."""
    if not rolling(d):
        return replicas(d)
    current = sum(replicas(rs) for rs in all_rss)
    ceiling = replicas(d) + max_surge(d)
    if current >= ceiling:
        return replicas(new)
    return replicas(new) + min(ceiling - current, replicas(d) - replicas(new))


# ---- annotations
def copy_annotations(d: Obj, rs: Obj) -> bool:
    """The Deployment's annotations onto its new ReplicaSet (but the skipped ones)."""
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in annots(d).items():
        if key in SKIP_ANNOTATIONS or ann.get(key) == value:
            continue
        ann[key] = value
        changed = True
    return changed


def replicas_annotations_stale(rs: Obj, desired: int, most: int) -> bool:
    ann = annots(rs)
    return ann.get(DESIRED) != str(desired) or ann.get(MAX_REPLICAS) != str(most)


def set_replicas_annotations(rs: Obj, desired: int, most: int) -> bool:
    if not replicas_annotations_stale(rs, desired, most):
        return False
    ann = rs["metadata"].setdefault("annotations", {})
    ann[DESIRED], ann[MAX_REPLICAS] = str(desired), str(most)
    return True


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """Copy the Deployment's annotations, raise the revision (keeping the ones it had in
    revision-history when a rollback brings it back), and on a new one the replicas
    annotations. True if any changed."""
    changed = copy_annotations(d, rs)
    ann = rs["metadata"].setdefault("annotations", {})
    old_raw = ann.get(REVISION)
    try:
        old = int(old_raw) if old_raw is not None else 0
    except ValueError:
        return False
    if old < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old_raw is not None:
            history = ann.get(REVISION_HISTORY, "")
            kept = history.split(",") if history else []
            total = len(history) + len(old_raw) + 1
            while kept and total > MAX_HISTORY_CHARS:
                total -= len(kept.pop(0)) + 1
            if total <= MAX_HISTORY_CHARS:
                ann[REVISION_HISTORY] = ",".join([*kept, old_raw])
    if not exists and set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


def set_deployment_revision(d: Obj, value: str) -> bool:
    ann = d["metadata"].setdefault("annotations", {})
    if ann.get(REVISION) == value:
        return False
    ann[REVISION] = value
    return True


# ---- scaling
def active(rss: list[Obj]) -> list[Obj]:
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


def active_or_latest(new: Obj | None, olds: list[Obj]) -> Obj | None:
    """The one ReplicaSet with pods (or the newest when none has any); None when several
    have pods."""
    if new is None and not olds:
        return None
    newest_first = by_creation(olds)[::-1]
    live = active(newest_first + ([new] if new is not None else []))
    if not live:
        return new if new is not None else newest_first[0]
    return live[0] if len(live) == 1 else None


def saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    try:
        desired = int(annots(rs).get(DESIRED, ""))
    except ValueError:
        return False
    return replicas(rs) == replicas(d) == desired and \
        status_count(rs, "availableReplicas") == replicas(d)


def _fraction(rs: Obj, d: Obj) -> int:
    if replicas(d) == 0:
        return -replicas(rs)
    total = replicas(d) + max_surge(d)
    try:
        annotated = int(annots(rs).get(MAX_REPLICAS, ""))
    except ValueError:
        annotated = status_count(d, "replicas")
    if annotated == 0:
        return 0
    exact = replicas(rs) * total / annotated
    rounded = int(exact + 0.5) if exact >= 0 else -int(-exact + 0.5)  # half away from zero
    return rounded - replicas(rs)


def proportional(d: Obj, rss: list[Obj]) -> dict[str, int]:
    """The sizes a rolling Deployment's active ReplicaSets scale to when its replicas change
    mid-rollout: the change shared out in proportion to each one's size (its max-replicas
    annotation), larger ones first, leftovers to the first."""
    live = active(rss)
    total = sum(replicas(rs) for rs in live)
    allowed = replicas(d) + max_surge(d) if replicas(d) > 0 else 0
    to_add = allowed - total
    newest_first = {id(rs): i for i, rs in enumerate(by_creation(live)[::-1])}
    if to_add > 0:  # larger first; among equals the newer
        live.sort(key=lambda rs: (-replicas(rs), newest_first[id(rs)]))
    elif to_add < 0:  # larger first; among equals the older
        live.sort(key=lambda rs: (-replicas(rs), -newest_first[id(rs)]))
    sizes: dict[str, int] = {}
    added = 0
    for rs in live:
        name = rs["metadata"]["name"]
        share = 0
        if to_add != 0 and replicas(rs) != 0 and to_add != added:
            frac, left = _fraction(rs, d), to_add - added
            share = min(frac, left) if to_add > 0 else max(frac, left)
        sizes[name] = replicas(rs) + share
        added += share
    if live and to_add != 0:
        first = live[0]["metadata"]["name"]
        sizes[first] = max(sizes[first] + to_add - added, 0)
    return sizes


# ---- history
def by_revision(rss: list[Obj]) -> list[Obj]:
    order = {id(rs): i for i, rs in enumerate(by_creation(rss))}
    return sorted(rss, key=lambda rs: (revision(rs) or 0, order[id(rs)]))


def prunable(d: Obj, olds: list[Obj]) -> list[Obj]:
    """The old ReplicaSets beyond revisionHistoryLimit, oldest revision first, that may go:
    no pods, none wanted, their latest spec observed."""
    limit = d["spec"].get("revisionHistoryLimit")
    if not isinstance(limit, int):
        return []
    alive = [rs for rs in olds if not rs["metadata"].get("deletionTimestamp")]
    extra = len(alive) - limit
    if extra <= 0:
        return []
    out = []
    for rs in by_revision(alive)[:extra]:
        if status_count(rs, "replicas") or replicas(rs) or rs["metadata"].get(
                "generation", 1) > status_count(rs, "observedGeneration"):
            continue
        out.append(rs)
    return out


# ---- status and conditions
def get_condition(status: Obj, kind: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def new_condition(kind: str, status: str, reason: str, message: str, stamp: str) -> Obj:
    return {"type": kind, "status": status, "lastUpdateTime": stamp,
            "lastTransitionTime": stamp, "reason": reason, "message": message}


def set_condition(status: Obj, cond: Obj) -> None:
    """Replace the condition of cond's type unless it says the same (status and reason);
    the transition time stays while the status does."""
    current = get_condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] and \
            current.get("reason") == cond["reason"]:
        return
    if current is not None and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    status["conditions"] = [c for c in status.get("conditions") or []
                            if c.get("type") != cond["type"]] + [cond]


def remove_condition(status: Obj, kind: str) -> None:
    kept = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def calculate_status(all_rss: list[Obj], new: Obj | None, d: Obj, stamp: str) -> Obj:
    live = [rs for rs in all_rss if rs is not None]
    available = sum(status_count(rs, "availableReplicas") for rs in live)
    total = sum(replicas(rs) for rs in live)
    old = d.get("status") or {}
    status: Obj = {
        "observedGeneration": d["metadata"].get("generation", 1),
        "replicas": sum(status_count(rs, "replicas") for rs in live),
        "updatedReplicas": status_count(new, "replicas") if new is not None else 0,
        "readyReplicas": sum(status_count(rs, "readyReplicas") for rs in live),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if available >= replicas(d) - max_unavailable(d):
        set_condition(status, new_condition(AVAILABLE, "True", MIN_AVAILABLE,
                                            "Deployment has minimum availability.", stamp))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.",
                                            stamp))
    return status


def compact(status: Obj) -> Obj:
    """As the apiserver serializes it: counts of zero left out (omitempty)."""
    return {k: v for k, v in status.items() if v not in (0, None)}


def count(status: Obj, key: str) -> int:
    return int(status.get(key) or 0)


def complete(d: Obj, status: Obj) -> bool:
    want = replicas(d)
    return count(status, "updatedReplicas") == want and count(status, "replicas") == want and \
        count(status, "availableReplicas") == want and \
        count(status, "observedGeneration") >= d["metadata"].get("generation", 1)


def progressing(d: Obj, status: Obj) -> bool:
    old = d.get("status") or {}
    old_olds = count(old, "replicas") - count(old, "updatedReplicas")
    new_olds = count(status, "replicas") - count(status, "updatedReplicas")
    return count(status, "updatedReplicas") > count(old, "updatedReplicas") or \
        new_olds < old_olds or \
        count(status, "readyReplicas") > count(old, "readyReplicas") or \
        count(status, "availableReplicas") > count(old, "availableReplicas")


def parse_time(stamp: Any) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        return float(calendar.timegm(time.strptime(stamp, _TIME)))
    except ValueError:
        return None


def timed_out(d: Obj, status: Obj, now: float) -> bool:
    if not has_deadline(d):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + d["spec"]["progressDeadlineSeconds"] < now


def rollout_status(all_rss: list[Obj], new: Obj | None, d: Obj, now: float,
                   stamp: str) -> Obj:
    """The status after a rollout step: counts, Available, and Progressing as far as the
    step got (complete, progressing, or past its deadline), ReplicaFailure carried over
    from the ReplicaSets (the new one's first)."""
    status = calculate_status(all_rss, new, d, stamp)
    if not has_deadline(d):
        remove_condition(status, PROGRESSING)
    current = get_condition(d.get("status") or {}, PROGRESSING)
    done = count(status, "replicas") == count(status, "updatedReplicas") and \
        current is not None and current.get("reason") == NEW_RS_AVAILABLE
    name = d["metadata"]["name"]
    what = f'ReplicaSet "{new["metadata"]["name"]}"' if new is not None else \
        f'Deployment "{name}"'
    if has_deadline(d) and not done:
        if complete(d, status):
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE,
                                                f"{what} has successfully progressed.", stamp))
        elif progressing(d, status):
            cond = new_condition(PROGRESSING, "True", RS_UPDATED, f"{what} is progressing.",
                                 stamp)
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif timed_out(d, status, now):
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT,
                                                f"{what} has timed out progressing.", stamp))
    failures = replica_failures(all_rss, new)
    if failures:
        set_condition(status, failures[0])
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status


def replica_failures(all_rss: list[Obj], new: Obj | None) -> list[Obj]:
    def of(rs: Obj) -> list[Obj]:
        return [{"type": REPLICA_FAILURE, "status": c.get("status"),
                 "lastUpdateTime": c.get("lastTransitionTime"),
                 "lastTransitionTime": c.get("lastTransitionTime"),
                 "reason": c.get("reason"), "message": c.get("message")}
                for c in (rs.get("status") or {}).get("conditions") or []
                if c.get("type") == REPLICA_FAILURE]
    if new is not None and (found := of(new)):
        return found
    return [c for rs in all_rss if rs is not None for c in of(rs)]


def paused_condition(d: Obj, stamp: str) -> bool:
    """Progressing Unknown (DeploymentPaused / DeploymentResumed) as the Deployment is
    paused or resumed; True if the status changed. A timed-out rollout keeps saying so."""
    if not has_deadline(d):
        return False
    status = d.setdefault("status", {})
    cond = get_condition(status, PROGRESSING)
    if cond is not None and cond.get("reason") == TIMED_OUT:
        return False
    was_paused = cond is not None and cond.get("reason") == PAUSED
    if d["spec"].get("paused") and not was_paused:
        set_condition(status, new_condition(PROGRESSING, "Unknown", PAUSED,
                                            "Deployment is paused", stamp))
        return True
    if not d["spec"].get("paused") and was_paused:
        set_condition(status, new_condition(PROGRESSING, "Unknown", RESUMED,
                                            "Deployment is resumed", stamp))
        return True
    return False


def scaling_event(d: Obj, rss: list[Obj]) -> bool:
    """Whether the replicas changed since the active ReplicaSets were sized (their
    desired-replicas annotation): then the Deployment scales rather than rolls."""
    for rs in active(rss):
        raw = annots(rs).get(DESIRED)
        try:
            desired = int(raw) if raw is not None else None
        except ValueError:
            desired = None
        if desired is not None and desired != replicas(d):
            return True
    return False
