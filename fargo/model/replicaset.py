"""The apps/v1 ReplicaSet as kube-apiserver checks and defaults it, and the pure parts of
kube-controller-manager's replicaset controller: which pods it claims (adopts, releases),
the pod it makes from its template, which surplus pods go first, and its status.

The pod-template rules here (template_errors, default_template) are the Deployment's too.
Pure: times come in as arguments."""

from __future__ import annotations

import copy
import functools
import json
import math
from typing import Any

from . import downward, kubeobj, podvolumes, probes
from .kubeerrors import KubeError, bad_request, invalid
from .kubekinds import KindRule, register
from .objmeta import controller_of
from .selectors import selector_errors, selector_matcher

Obj = dict[str, Any]
Errors = list[tuple[str, str]]
GROUP, VERSION = "apps", "v1"
HASH_LABEL = "pod-template-hash"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
REPLICA_FAILURE = "ReplicaFailure"
_TIME = "%Y-%m-%dT%H:%M:%SZ"


# ---- shape: the types a spec's fields must decode to (the apiserver's decoder refuses
# others with a 400 before validation runs)
def _decode_error(kind: str, path: str, want: str, value: Any) -> KubeError:
    got = {bool: "bool", str: "string", int: "number", float: "number", list: "array",
           dict: "object"}.get(type(value), "null")
    return bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: json: cannot '
                       f"unmarshal {got} into Go struct field {path} of type {want}")


def int_field(obj: Obj, kind: str, path: str) -> int | None:
    """spec.x as an int32 (None when absent); a non-integer is the decoder's 400."""
    cur: Any = obj
    keys = path.split(".")
    for key in keys[:-1]:
        cur = cur.get(key) if isinstance(cur, dict) else None
    value = cur.get(keys[-1]) if isinstance(cur, dict) else None
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not \
            -(1 << 31) <= value < (1 << 31):
        raise _decode_error(kind, path, "int32", value)
    return value


def dict_field(obj: Obj, kind: str, path: str) -> Obj | None:
    cur: Any = obj
    for key in path.split("."):
        if cur is None:
            return None
        if not isinstance(cur, dict):
            raise _decode_error(kind, path, "struct", cur)
        cur = cur.get(key)
    if cur is not None and not isinstance(cur, dict):
        raise _decode_error(kind, path, "struct", cur)
    return cur


def go_map(labels: Any) -> str:
    """A label map as the apiserver prints a value in its messages."""
    if not isinstance(labels, dict):
        return "map[string]string(nil)"
    inner = ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
    return "map[string]string{" + inner + "}"


def nonnegative(errors: Errors, value: int | None, field: str) -> None:
    if value is not None and value < 0:
        errors.append((field, f"Invalid value: {value}: must be greater than or equal to 0"))


# ---- the pod template (ReplicaSets' and Deployments')
def _prune_nulls(value: Any) -> Any:
    """Typed decoding drops explicit nulls (kubectl sends `creationTimestamp: null` in every
    template it builds); the stored template must compare equal to the one it came from."""
    if isinstance(value, dict):
        return {k: _prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_nulls(v) for v in value]
    return value


def _pull_policy(image: str) -> str:
    """Always for :latest or no tag (a digest alone is a tag of sorts), else IfNotPresent."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    tag = name.split(":", 1)[1] if ":" in name else ("" if "@" in image else "latest")
    return "Always" if tag == "latest" else "IfNotPresent"


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                       ("failureThreshold", 3)):
        probe.setdefault(key, value)
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("scheme", "HTTP")
        probe["httpGet"].setdefault("path", "/")


def default_template(obj: Obj) -> None:
    """The defaults the apiserver gives a pod template (fewer than a pod's: no service
    account, priority or service links: admission sets those on the pod), in place."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    template = spec.get("template")
    if not isinstance(template, dict):
        return
    template = spec["template"] = _prune_nulls(template)
    pod = template.get("spec")
    if not isinstance(pod, dict):
        return
    pod.setdefault("restartPolicy", "Always")
    pod.setdefault("terminationGracePeriodSeconds", 30)
    pod.setdefault("dnsPolicy", "ClusterFirst")
    pod.setdefault("securityContext", {})
    pod.setdefault("schedulerName", "default-scheduler")
    for key in ("initContainers", "containers"):
        for c in pod.get(key) or []:
            if not isinstance(c, dict):
                continue
            if isinstance(c.get("image"), str) and c["image"]:
                c.setdefault("imagePullPolicy", _pull_policy(c["image"]))
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            for port in c.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                _default_probe(c.get(probe))
            for env in c.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(
                    env, dict) and isinstance(env.get("valueFrom"), dict) else None
                if isinstance(ref, dict):
                    ref.setdefault("apiVersion", "v1")


def _remap(field: str, at: str) -> str:
    """A pod's field path as the template's."""
    return f"{at}.{field}" if field.startswith(("spec", "metadata")) else f"{at}.spec.{field}"


def pod_spec_errors(pod_spec: Any) -> Errors:
    """The checks control/pods.py makes of a pod's spec beyond kubeobj.check_pod's, which
    a template must pass too: else it is stored and every pod stamped from it refused."""
    if not isinstance(pod_spec, dict):
        return []  # check_pod's to refuse
    return probes.spec_errors(pod_spec) + downward.env_errors(pod_spec) + \
        podvolumes.spec_errors(pod_spec)


def template_errors(spec: Obj, at: str = "spec.template") -> Errors:
    """A template a controller may stamp pods from: a valid pod (kubeobj's checks), labels the
    selector matches, restartPolicy Always, no activeDeadlineSeconds."""
    template = spec.get("template")
    if not isinstance(template, dict):
        return [(at, "Required value")]
    meta = template.get("metadata") or {}
    if not isinstance(meta, dict):
        return [(f"{at}.metadata", "Invalid value: must be an object")]
    pod_spec = template.get("spec")
    errors: Errors = []
    selector = spec.get("selector")
    labels = meta.get("labels") or {}
    if isinstance(selector, dict) and (selector.get("matchLabels") or
                                       selector.get("matchExpressions")) and \
            isinstance(labels, dict) and not selector_errors(selector, "s") and \
            not selector_matcher(selector)(labels):
        errors.append((f"{at}.metadata.labels", f"Invalid value: {go_map(labels)}: "
                       "`selector` does not match template `labels`"))
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "template", **{k: meta[k] for k in ("labels", "annotations")
                                               if k in meta}},
           "spec": pod_spec}
    try:
        kubeobj.check_pod(pod)
    except KubeError as err:
        causes = (err.details or {}).get("causes") or [{"field": "spec",
                                                         "message": err.message}]
        errors += [(_remap(c["field"], at), c["message"]) for c in causes]
    else:  # what a pod's create checks besides (probes, env sources, volumes)
        errors += [(_remap(f, at), m) for f, m in pod_spec_errors(pod_spec)]
    if isinstance(pod_spec, dict):
        policy = pod_spec.get("restartPolicy", "Always")
        if policy in kubeobj.RESTART_POLICIES and policy != "Always":
            errors.append((f"{at}.spec.restartPolicy", f'Unsupported value: "{policy}": '
                           'supported values: "Always"'))
        if pod_spec.get("activeDeadlineSeconds") is not None:
            errors.append((f"{at}.spec.activeDeadlineSeconds", "Forbidden: "
                           "activeDeadlineSeconds in ReplicaSet is not Supported"))
    return errors


def spec_selector_errors(spec: Obj, kind: str) -> Errors:
    sel = spec.get("selector")
    if sel is None:
        return [("spec.selector", "Required value")]
    errors = selector_errors(sel, "spec.selector")
    if isinstance(sel, dict):
        errors += kubeobj._label_errors(sel.get("matchLabels"), "spec.selector.matchLabels")
        if not sel.get("matchLabels") and not sel.get("matchExpressions"):
            errors.append(("spec.selector", "Invalid value: {}: empty selector is invalid for "
                           "deployment"))
    return errors


def selector_immutable(obj: Obj, old: Obj | None) -> Errors:
    if old is None or (obj.get("spec") or {}).get("selector") == \
            (old.get("spec") or {}).get("selector"):
        return []
    return [("spec.selector", "Invalid value: field is immutable")]


# ---- the kind
def default_replicaset(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    default_template(obj)


def check_replicaset(obj: Obj, old: Obj | None) -> None:
    name = obj["metadata"]["name"]
    spec = dict_field(obj, "ReplicaSet", "spec")
    if spec is None:
        raise invalid("ReplicaSet", name, [("spec.selector", "Required value"),
                                           ("spec.template", "Required value")])
    errors: Errors = []
    nonnegative(errors, int_field(obj, "ReplicaSet", "spec.replicas"), "spec.replicas")
    nonnegative(errors, int_field(obj, "ReplicaSet", "spec.minReadySeconds"),
                "spec.minReadySeconds")
    errors += spec_selector_errors(spec, "ReplicaSet")
    errors += template_errors(spec)
    errors += selector_immutable(obj, old)
    if errors:
        raise invalid("ReplicaSet", name, errors)


register(KindRule("replicasets", "ReplicaSet", group=GROUP, version=VERSION, status=True,
                  generation=True, scale=True, check=check_replicaset,
                  default=default_replicaset))


# ---- the controller's rules
def labels_of(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("labels") or {}


def is_active(pod: Obj) -> bool:
    """Counted by a ReplicaSet: not finished and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def ready_since(pod: Obj) -> str | None:
    """When the pod became Ready (its condition's transition), None if it is not ready."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("lastTransitionTime") or "" if c.get("status") == "True" else None
    return None


def parse_time(stamp: str | None) -> float | None:
    if not stamp:
        return None
    import calendar
    import time
    try:
        return float(calendar.timegm(time.strptime(stamp, _TIME)))
    except ValueError:
        return None


def is_available(pod: Obj, min_ready: int, now: float) -> bool:
    since = ready_since(pod)
    if since is None:
        return False
    if min_ready <= 0:
        return True
    at = parse_time(since)
    return at is not None and at + min_ready < now


def claim(owner: Obj, selector: Obj, objs: list[Obj]) -> tuple[list[Obj], list[Obj],
                                                                list[Obj]]:
    """What a controller's reference manager decides of `objs`: those it keeps, the orphans
    it adopts (they match and no controller holds them) and those it releases (it holds them
    and they no longer match). An owner being deleted adopts nothing and releases nothing."""
    match = selector_matcher(selector)
    uid = owner["metadata"]["uid"]
    deleting = bool(owner["metadata"].get("deletionTimestamp"))
    owned, adopt, release = [], [], []
    for obj in objs:
        ref = controller_of(obj)
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if match(labels_of(obj)):
                owned.append(obj)
            elif not deleting:
                release.append(obj)
            continue
        if deleting or obj["metadata"].get("deletionTimestamp") or not match(labels_of(obj)):
            continue
        adopt.append(obj)
    return owned, adopt, release


def adopted(obj: Obj, ref: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out["metadata"]["ownerReferences"] = [*(out["metadata"].get("ownerReferences") or []), ref]
    return out


def released(obj: Obj, uid: str) -> Obj:
    out = copy.deepcopy(obj)
    refs = [r for r in out["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
    if refs:
        out["metadata"]["ownerReferences"] = refs
    else:
        out["metadata"].pop("ownerReferences", None)
    return out


def pod_from_template(rs: Obj, ref: Obj) -> Obj:
    """The pod a ReplicaSet makes: its template's labels, annotations, finalizers and spec,
    generateName RSNAME- and the ReplicaSet as controller."""
    template = rs["spec"]["template"]
    meta = template.get("metadata") or {}
    out_meta: Obj = {"generateName": f"{rs['metadata']['name']}-",
                     "namespace": rs["metadata"]["namespace"], "ownerReferences": [ref]}
    for key in ("labels", "annotations", "finalizers"):
        if meta.get(key):
            out_meta[key] = copy.deepcopy(meta[key])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": out_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def _deletion_cost(pod: Obj) -> int:
    raw = (pod["metadata"].get("annotations") or {}).get(DELETION_COST, "0")
    try:
        return int(raw)
    except ValueError:
        return 0


def _restarts(pod: Obj) -> int:
    return max([s.get("restartCount", 0) for s in
                (pod.get("status") or {}).get("containerStatuses") or []] or [0])


def _log_rank(stamp: float | None, now: float) -> int:
    """The power-of-two age bucket (in nanoseconds, as upstream's) a time falls in."""
    age = (now - (stamp or 0.0)) * 1e9
    return int(math.log2(age)) if age > 0 else -1


def deletion_order(pods: list[Obj], related: list[Obj], now: float) -> list[Obj]:
    """Pods in the order a ReplicaSet deletes them when it has too many (upstream's
    ActivePodsWithRanks): unscheduled first, then Pending before Running, not ready before
    ready, lower deletion cost, more pods on the same node, ready for less time, more
    restarts, newer (times compared in logarithmic buckets, ties broken by uid)."""
    on_node: dict[str, int] = {}
    for p in related:
        if is_active(p):
            node = p["spec"].get("nodeName") or ""
            on_node[node] = on_node.get(node, 0) + 1

    def cmp(a: Obj, b: Obj) -> int:
        na, nb = a["spec"].get("nodeName") or "", b["spec"].get("nodeName") or ""
        if na != nb and (not na or not nb):
            return -1 if not na else 1
        pa = _PHASE_ORDER.get((a.get("status") or {}).get("phase") or "", 0)
        pb = _PHASE_ORDER.get((b.get("status") or {}).get("phase") or "", 0)
        if pa != pb:
            return -1 if pa < pb else 1
        ra, rb = ready_since(a) is not None, ready_since(b) is not None
        if ra != rb:
            return -1 if not ra else 1
        ca, cb = _deletion_cost(a), _deletion_cost(b)
        if ca != cb:
            return -1 if ca < cb else 1
        ka, kb = on_node.get(na, 0), on_node.get(nb, 0)
        if ka != kb:
            return -1 if ka > kb else 1
        uid_a, uid_b = a["metadata"].get("uid", ""), b["metadata"].get("uid", "")
        if ra and rb:
            ta, tb = parse_time(ready_since(a)), parse_time(ready_since(b))
            if ta != tb:
                if ta is None or tb is None:
                    return -1 if ta is None else 1
                diff = _log_rank(ta, now) - _log_rank(tb, now)
                if diff == 0:
                    return -1 if uid_a < uid_b else (1 if uid_a > uid_b else 0)
                return -1 if diff < 0 else 1
        xa, xb = _restarts(a), _restarts(b)
        if xa != xb:
            return -1 if xa > xb else 1
        sa = parse_time(a["metadata"].get("creationTimestamp"))
        sb = parse_time(b["metadata"].get("creationTimestamp"))
        if sa != sb:
            if sa is None or sb is None:
                return -1 if sa is None else 1
            diff = _log_rank(sa, now) - _log_rank(sb, now)
            if diff == 0:
                return -1 if uid_a < uid_b else (1 if uid_a > uid_b else 0)
            return -1 if diff < 0 else 1
        return 0

    return sorted(pods, key=functools.cmp_to_key(cmp))


def condition(kind: str, status: str, reason: str, message: str, now: str) -> Obj:
    return {"type": kind, "status": status, "lastTransitionTime": now, "reason": reason,
            "message": message}


def rs_status(rs: Obj, pods: list[Obj], failure: tuple[str, str] | None, now: float,
              stamp: str) -> Obj:
    """A ReplicaSet's status from the active pods it owns; `failure` (reason, message) when
    its last create or delete was refused (the ReplicaFailure condition, kept until a pass
    succeeds)."""
    old = rs.get("status") or {}
    spec = rs["spec"]
    template = selector_matcher({"matchLabels": (spec["template"].get("metadata") or {})
                                 .get("labels") or {}})
    min_ready = int(spec.get("minReadySeconds") or 0)
    conditions = [c for c in old.get("conditions") or [] if c.get("type") != REPLICA_FAILURE]
    prev = next((c for c in old.get("conditions") or [] if c.get("type") == REPLICA_FAILURE),
                None)
    if failure is not None:
        conditions.append(prev or condition(REPLICA_FAILURE, "True", failure[0], failure[1],
                                            stamp))
    status: Obj = {
        "replicas": len(pods),
        "fullyLabeledReplicas": sum(1 for p in pods if template(labels_of(p))),
        "readyReplicas": sum(1 for p in pods if ready_since(p) is not None),
        "availableReplicas": sum(1 for p in pods if is_available(p, min_ready, now)),
        "observedGeneration": rs["metadata"].get("generation", 1),
    }
    if conditions:
        status["conditions"] = conditions
    # Upstream leaves zero counts out of the JSON (omitempty); replicas is always there.
    return {k: v for k, v in status.items() if v or k == "replicas"}


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
