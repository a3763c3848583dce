"""batch/v1 Job as kube-apiserver checks it and as kube-controller-manager's job controller
runs it (pure: the store's view and the time come in, a plan goes out).

The apiserver's part: defaults (completions and parallelism 1, backoffLimit 6, NonIndexed),
the generated selector (`batch.kubernetes.io/controller-uid`, with the legacy
`controller-uid` and the `job-name` labels on the template), and the checks, with the
template fixed once made except as upstream allows.

The controller's part, `plan`: which pods to make (up to parallelism at once, Indexed ones
each with its completion index) and to delete, what the status says, and when the Job has
succeeded (SuccessCriteriaMet, then Complete) or failed (FailureTarget, then Failed:
BackoffLimitExceeded or DeadlineExceeded). Each pod carries the `job-tracking` finalizer
until its result is counted: a finished pod's uid goes into status.uncountedTerminatedPods
(written first), then its finalizer goes, then the uid moves into the counts, so a result is
neither lost (the pod cannot vanish before it is counted) nor counted twice after a crash."""

from __future__ import annotations

import calendar
import copy
import time
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from . import kubeobj, objmeta, selectors
from . import replicaset as rsm
from .kubeerrors import KubeError, invalid
from .kubekinds import KindRule, register

Obj = dict[str, Any]
Errors = list[tuple[str, str]]

TRACKING = "batch.kubernetes.io/job-tracking"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
LEGACY_UID = "controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_NAME = "job-name"
INDEX = "batch.kubernetes.io/job-completion-index"
INDEX_ENV = "JOB_COMPLETION_INDEX"
JOB_CONTROLLER = "kubernetes.io/job-controller"
# The pause before a failed pod is replaced: 10 s, doubled per failure since the last
# success, at most 6 min (kube-controller-manager's).
BACKOFF = 10.0
BACKOFF_MAX = 360.0
MAX_PER_PASS = 500  # pods made or deleted in one pass, as upstream caps a sync
MAX_INDEXED_PARALLELISM = 100000
BACKOFF_MESSAGE = "Job has reached the specified backoff limit"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"
COMPLETE_MESSAGE = "Reached expected number of succeeded pods"
# Fields fargo's job controller does not act on: refused by name, never stored unheeded.
_UNSUPPORTED = ("podFailurePolicy", "successPolicy", "backoffLimitPerIndex", "maxFailedIndexes")
TIME = "%Y-%m-%dT%H:%M:%SZ"


def rfc3339(at: float) -> str:
    return time.strftime(TIME, time.gmtime(min(max(at, 0.0), 253402300799.0)))


def parse_time(stamp: Any) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        return float(calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def _is_int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _nonnegative(spec: Obj, key: str, at: str) -> Errors:
    v = spec.get(key)
    if v is None:
        return []
    if not _is_int(v):
        return [(f"{at}.{key}", f"Invalid value: {str(v)[:40]!r}: must be an integer")]
    if v < 0:
        return [(f"{at}.{key}", f"Invalid value: {v}: must be greater than or equal to 0")]
    if v > 2**31 - 1 and key != "activeDeadlineSeconds":
        return [(f"{at}.{key}", f"Invalid value: {v}: must be at most 2147483647")]
    return []


# ---- the pod template (shared with DaemonSets)
def default_template(template: Any) -> None:
    """The pod spec defaults the apiserver fills into a template, so `-o yaml` shows them."""
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        return
    spec = template["spec"]
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        if isinstance(c, dict) and isinstance(c.get("image"), str):
            c.setdefault("imagePullPolicy", "Always" if c["image"].endswith(":latest")
                         or ":" not in c["image"].rsplit("/", 1)[-1] else "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})


def template_errors(template: Any, at: str) -> Errors:
    """A PodTemplateSpec checked as a pod is (its causes under `at`)."""
    if not isinstance(template, dict):
        return [(at, "Required value")]
    meta = template.get("metadata") or {}
    if not isinstance(meta, dict):
        return [(f"{at}.metadata", "Invalid value: must be an object")]
    pod = {"apiVersion": "v1", "kind": "Pod", "spec": template.get("spec"),
           "metadata": {"name": "template", **{k: meta[k] for k in ("labels", "annotations")
                                               if k in meta}}}
    try:
        kubeobj.check_pod(pod)
    except KubeError as err:
        causes = (err.details or {}).get("causes") or [{"field": "", "message": err.message}]
        return [(f"{at}.{c['field']}" if c.get("field") else at, c["message"]) for c in causes]
    # What a pod's create checks besides: else every pod stamped from it is refused.
    return [(f"{at}.{f}", m) for f, m in rsm.pod_spec_errors(pod["spec"])]


def selector_matches_template(sel: Any, template: Any, at: str) -> Errors:
    """A selector (already found well-formed) must select the template's labels."""
    meta = template.get("metadata") if isinstance(template, dict) else None
    labels = (meta.get("labels") if isinstance(meta, dict) else None) or {}
    if isinstance(sel, dict) and isinstance(labels, dict) and \
            not selectors.selector_matcher(sel)(labels):
        return [(f"{at}.template.metadata.labels", f"Invalid value: {labels}: `selector` does "
                 "not match template `labels`")]
    return []


# ---- defaults, the generated selector, checks
def default_spec(spec: Obj) -> None:
    """A JobSpec's defaults (a Job's; a CronJob's jobTemplate gets them when its Job is
    made)."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    default_template(spec.get("template"))


def default_job(obj: Obj) -> None:
    if isinstance(obj.get("spec"), dict):
        default_spec(obj["spec"])


def generate_selector(obj: Obj) -> None:
    """On create, unless spec.manualSelector: the template gets the labels naming this Job
    (its uid and name; labels the user set are kept, and checked), the selector its uid."""
    spec = obj.get("spec")
    if not isinstance(spec, dict) or spec.get("manualSelector") is True:
        return
    meta = obj["metadata"]
    uid, name = meta.get("uid", ""), meta["name"]
    template = spec.get("template")
    if not isinstance(template, dict):
        return
    tmeta = template.setdefault("metadata", {})
    if not isinstance(tmeta, dict):
        return
    if tmeta.get("labels") is None:
        tmeta["labels"] = {}
    labels = tmeta["labels"]
    if isinstance(labels, dict):
        for key, value in ((LEGACY_UID, uid), (CONTROLLER_UID, uid), (LEGACY_NAME, name),
                           (JOB_NAME, name)):
            labels.setdefault(key, value)
    if spec.get("selector") is None:
        spec["selector"] = {}
    sel = spec["selector"]
    if isinstance(sel, dict):
        if sel.get("matchLabels") is None:
            sel["matchLabels"] = {}
        if isinstance(sel["matchLabels"], dict):
            sel["matchLabels"].setdefault(CONTROLLER_UID, uid)


def spec_errors(spec: Any, at: str) -> Errors:
    """validateJobSpec: what a Job's and a CronJob's jobTemplate spec share."""
    if not isinstance(spec, dict):
        return [(at, "Required value")]
    errors: Errors = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                "ttlSecondsAfterFinished"):
        errors += _nonnegative(spec, key, at)
    for key in ("suspend", "manualSelector"):
        if spec.get(key) is not None and not isinstance(spec[key], bool):
            errors.append((f"{at}.{key}", "Invalid value: must be a boolean"))
    mode = spec.get("completionMode", "NonIndexed")
    if mode not in ("NonIndexed", "Indexed"):
        errors.append((f"{at}.completionMode", f"Unsupported value: {str(mode)[:40]!r}: "
                       'supported values: "NonIndexed", "Indexed"'))
    elif mode == "Indexed":
        if spec.get("completions") is None:
            errors.append((f"{at}.completions", "Required value: when completion mode is "
                           "Indexed"))
        par = spec.get("parallelism")
        if _is_int(par) and par > MAX_INDEXED_PARALLELISM:
            errors.append((f"{at}.parallelism", f"Invalid value: {par}: must be less than or "
                           f"equal to {MAX_INDEXED_PARALLELISM} when completion mode is "
                           "Indexed"))
    for key in _UNSUPPORTED:
        if spec.get(key) is not None:
            errors.append((f"{at}.{key}", f"Forbidden: fargo's job controller does not "
                           f"implement {key}"))
    policy = spec.get("podReplacementPolicy")
    if policy not in (None, "TerminatingOrFailed"):
        errors.append((f"{at}.podReplacementPolicy", f"Unsupported value: "
                       f"{str(policy)[:40]!r}: supported values: \"TerminatingOrFailed\" "
                       "(fargo replaces a pod once it is terminating or failed)"))
    managed = spec.get("managedBy")
    if managed is not None and (not isinstance(managed, str) or not 0 < len(managed) <= 63
                                or "/" not in managed):
        errors.append((f"{at}.managedBy", f"Invalid value: {str(managed)[:80]!r}: must be a "
                       "domain-prefixed path of at most 63 characters"))
    template = spec.get("template")
    errors += template_errors(template, f"{at}.template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        restart = template["spec"].get("restartPolicy", "Always")
        if restart not in ("OnFailure", "Never"):
            errors.append((f"{at}.template.spec.restartPolicy", f"Unsupported value: "
                           f"{str(restart)[:40]!r}: supported values: \"OnFailure\", "
                           '"Never"'))
    return errors


def _generated_errors(obj: Obj) -> Errors:
    """ValidateGeneratedSelector: a generated selector stays the one naming this Job."""
    spec = obj["spec"]
    if spec.get("manualSelector") is True or not isinstance(spec.get("selector"), dict):
        return []
    meta = obj["metadata"]
    want = {LEGACY_UID: meta.get("uid", ""), CONTROLLER_UID: meta.get("uid", ""),
            LEGACY_NAME: meta["name"], JOB_NAME: meta["name"]}
    template = spec.get("template")
    tmeta = template.get("metadata") if isinstance(template, dict) else None
    labels = (tmeta.get("labels") if isinstance(tmeta, dict) else None) or {}
    errors: Errors = []
    if isinstance(labels, dict):
        for key, value in want.items():
            if labels.get(key) != value:
                errors.append((f"spec.template.metadata.labels[{key}]",
                               f"{'Invalid value' if key in labels else 'Required value'}: "
                               f"must be '{value}'"))
    if not selectors.selector_matcher(spec["selector"])(want):
        errors.append(("spec.selector", f"Invalid value: {spec['selector']}: `selector` not "
                       "auto-generated"))
    return errors


# What of a template may change on a suspended Job that never started (scheduling
# directives), as upstream allows.
_MUTABLE_WHEN_SUSPENDED = ("nodeSelector", "tolerations", "affinity", "schedulingGates")


def _template_change_allowed(old: Obj, new_t: Any, old_t: Any) -> bool:
    if new_t == old_t:
        return True
    if not (old["spec"].get("suspend") and not (old.get("status") or {}).get("startTime")):
        return False
    if not isinstance(new_t, dict) or not isinstance(old_t, dict):
        return False
    a, b = copy.deepcopy(new_t), copy.deepcopy(old_t)
    for t in (a, b):
        meta = t.get("metadata")
        for key in ("labels", "annotations"):
            if isinstance(meta, dict):
                meta.pop(key, None)
        for key in _MUTABLE_WHEN_SUSPENDED:
            if isinstance(t.get("spec"), dict):
                t["spec"].pop(key, None)
    return a == b


def _update_errors(spec: Obj, old: Obj) -> Errors:
    was = old["spec"]
    errors: Errors = []
    indexed = spec.get("completionMode") == "Indexed"
    if spec.get("completions") != was.get("completions"):
        # An Indexed Job may scale when completions and parallelism move together.
        elastic = indexed and was.get("completions") == was.get("parallelism") and \
            spec.get("completions") == spec.get("parallelism")
        if not elastic:
            errors.append(("spec.completions", f"Invalid value: {spec.get('completions')}: "
                           "field is immutable"))
    for key in ("selector", "completionMode", "manualSelector", "managedBy"):
        if spec.get(key) != was.get(key):
            errors.append((f"spec.{key}", f"Invalid value: {str(spec.get(key))[:200]}: field "
                           "is immutable"))
    if not _template_change_allowed(old, spec.get("template"), was.get("template")):
        errors.append(("spec.template", "Invalid value: field is immutable"))
    return errors


def check_job(obj: Obj, old: Obj | None) -> None:
    """A Job's own rules. On create this is where its selector is generated (upstream's
    PrepareForCreate, which runs once the uid is known), before the checks."""
    name = obj["metadata"]["name"]
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise invalid("Job", name, [("spec.template", "Required value")])
    if old is None:
        generate_selector(obj)
    errors = spec_errors(spec, "spec")
    sel = spec.get("selector")
    if sel is None:
        errors.append(("spec.selector", "Required value"))
    else:
        sel_errors = selectors.selector_errors(sel, "spec.selector")
        errors += sel_errors
        if not sel_errors:  # only a well-formed selector can be matched
            errors += selector_matches_template(sel, spec.get("template"), "spec")
            errors += _generated_errors(obj)
    if old is not None and isinstance(old.get("spec"), dict):
        errors += _update_errors(spec, old)
    if errors:
        raise invalid("Job", name, errors)


# ---- what the controller reads of pods and jobs
def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def terminal(pod: Obj) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def counts_failed(pod: Obj) -> bool:
    """Failed, or being deleted before it succeeded (TerminatingOrFailed: it is replaced
    at once, and counts as a failure)."""
    return phase(pod) == "Failed" or (objmeta.deleting(pod) and phase(pod) != "Succeeded")


def tracked(pod: Obj) -> bool:
    return TRACKING in objmeta.finalizers(pod)


def ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def index_of(pod: Obj) -> int | None:
    meta = pod["metadata"]
    raw = (meta.get("annotations") or {}).get(INDEX, (meta.get("labels") or {}).get(INDEX))
    if isinstance(raw, str) and raw.isdigit() and len(raw) < 10:
        return int(raw)
    return None


def condition(job: Obj, kind: str) -> Obj | None:
    """The job's condition of this type, if it is True."""
    return next((c for c in (job.get("status") or {}).get("conditions") or []
                 if c.get("type") == kind and c.get("status") == "True"), None)


def finished(job: Obj) -> Obj | None:
    """The Complete or Failed condition of a finished Job."""
    return condition(job, "Complete") or condition(job, "Failed")


def finished_at(job: Obj) -> float | None:
    cond = finished(job)
    return parse_time(cond.get("lastTransitionTime")) if cond else None


def ttl_expired(job: Obj, now: float) -> bool:
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    done = finished_at(job)
    return _is_int(ttl) and done is not None and now >= done + ttl


def managed_elsewhere(job: Obj) -> bool:
    return (job.get("spec") or {}).get("managedBy") not in (None, JOB_CONTROLLER)


# ---- completed indexes ("1,3-5,7": runs of three or more as ranges, as upstream writes)
def parse_indexes(text: Any) -> set[int]:
    out: set[int] = set()
    if not isinstance(text, str):
        return out
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            out.update(range(int(lo), int(hi or lo) + 1))
    return out


def format_indexes(indexes: set[int]) -> str:
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(_run_text(run))
        run = [i]
    if run:
        parts.append(_run_text(run))
    return ",".join(parts)


def _run_text(run: list[int]) -> str:
    if len(run) == 1:
        return str(run[0])
    if len(run) == 2:
        return f"{run[0]},{run[1]}"
    return f"{run[0]}-{run[-1]}"


# ---- the plan of one pass
@dataclass
class JobPlan:
    # The status to store before any tracking finalizer goes (new results as uncounted),
    # or None when there is nothing new.
    interim: Obj | None = None
    release: list[str] = field(default_factory=list)  # pods whose tracking finalizer goes
    delete: list[str] = field(default_factory=list)  # active pods to delete
    create: list[int | None] = field(default_factory=list)  # per new pod: its index or None
    status: Obj = field(default_factory=dict)  # afterwards (as if every create succeeds)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # type, reason, message


def _set_condition(conds: list[Obj], kind: str, status: str, reason: str, message: str,
                   stamp: str) -> bool:
    """Add or change a condition; False if it already says so."""
    for c in conds:
        if c.get("type") == kind:
            if c.get("status") == status and c.get("reason") == reason:
                return False
            c.update(status=status, reason=reason, message=message, lastProbeTime=stamp,
                     lastTransitionTime=stamp)
            return True
    conds.append({"type": kind, "status": status, "reason": reason, "message": message,
                  "lastProbeTime": stamp, "lastTransitionTime": stamp})
    return True


def _finish_time(pod: Obj) -> float:
    st = pod.get("status") or {}
    times = [parse_time(((s.get("state") or {}).get("terminated") or {}).get("finishedAt"))
             for s in st.get("containerStatuses") or []]
    known = [t for t in times if t is not None]
    if known:
        return max(known)
    return parse_time(pod["metadata"].get("deletionTimestamp")) or parse_time(
        pod["metadata"].get("creationTimestamp")) or 0.0


def backoff_left(pods: list[Obj], now: float, base: float = BACKOFF,
                 cap: float = BACKOFF_MAX) -> float:
    """Seconds until a failed pod may be replaced: base * 2^(failures since the last success
    - 1) after the last failure, at most `cap`."""
    done = sorted((_finish_time(p), counts_failed(p)) for p in pods
                  if terminal(p) or counts_failed(p))
    failures, last = 0, 0.0
    for at, failed in done:
        if failed:
            failures, last = failures + 1, at
        else:
            failures = 0
    if not failures:
        return 0.0
    delay = min(base * 2 ** min(failures - 1, 30), cap)
    return max(0.0, last + delay - now)


def past_backoff_on_failure(spec: Obj, pods: list[Obj]) -> bool:
    """restartPolicy OnFailure: the containers' restarts in pods still pending or running
    count against backoffLimit."""
    if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") != "OnFailure":
        return False
    restarts = sum(s.get("restartCount", 0) for p in pods if phase(p) in ("Pending", "Running")
                   for s in ((p.get("status") or {}).get("initContainerStatuses") or [])
                   + ((p.get("status") or {}).get("containerStatuses") or []))
    limit = spec.get("backoffLimit", 6)
    return restarts > 0 if limit == 0 else restarts >= limit


def _removal_order(pods: list[Obj]) -> list[Obj]:
    """Which active pods go first when there are too many: not ready before ready, then
    the newest."""
    return sorted(pods, key=lambda p: (ready(p), -(parse_time(
        p["metadata"].get("creationTimestamp")) or 0.0), p["metadata"]["name"]))


def plan(job: Obj, pods: list[Obj], now: float, base: float = BACKOFF) -> JobPlan:
    """One pass of the job controller over a Job and the pods it controls."""
    out = JobPlan()
    spec = job["spec"]
    old = job.get("status") or {}
    status = copy.deepcopy(old)
    stamp = rfc3339(now)
    if objmeta.deleting(job) or finished(job):
        out.release = [p["metadata"]["name"] for p in pods if tracked(p)]
        out.status = status
        return out
    indexed = spec.get("completionMode") == "Indexed"
    completions = spec.get("completions")
    # 1. Results: finished pods still tracked are counted, first as uncounted.
    unc = status.get("uncountedTerminatedPods") or {}
    unc_s, unc_f = list(unc.get("succeeded") or []), list(unc.get("failed") or [])
    done = parse_indexes(status.get("completedIndexes"))
    grown = set(done)
    new_s: list[str] = []
    new_f: list[str] = []
    for p in pods:
        if not tracked(p) or not (terminal(p) or counts_failed(p)):
            continue
        uid = p["metadata"]["uid"]
        ix = index_of(p)
        in_range = ix is not None and ix < (completions or 0)
        valid = not indexed or in_range
        if phase(p) == "Succeeded" and uid not in unc_f:
            if indexed:
                if ix is not None and in_range:
                    grown.add(ix)
            elif uid not in unc_s:
                new_s.append(uid)
        elif uid not in unc_f and uid not in unc_s and valid:
            new_f.append(uid)
        out.release.append(p["metadata"]["name"])
    if indexed:
        grown = {i for i in grown if i < (completions or 0)}
        if grown:
            status["completedIndexes"] = format_indexes(grown)
        else:
            status.pop("completedIndexes", None)
    if new_s or new_f or grown != done:
        status["uncountedTerminatedPods"] = {k: v for k, v in (
            ("succeeded", unc_s + new_s), ("failed", unc_f + new_f)) if v}
        if indexed:
            status["succeeded"] = len(grown)
        out.interim = copy.deepcopy(status)
    # Once their finalizers are gone (this pass), the uncounted are counted.
    succeeded = len(grown) if indexed else int(old.get("succeeded") or 0) + len(unc_s + new_s)
    failed = int(old.get("failed") or 0) + len(unc_f + new_f)
    status["uncountedTerminatedPods"] = {}
    # 2. The pods as they stand.
    active = [p for p in pods if not terminal(p) and not objmeta.deleting(p)]
    terminating = [p for p in pods if objmeta.deleting(p) and not terminal(p)]
    suspended = spec.get("suspend") is True
    conds: list[Obj] = status.setdefault("conditions", [])
    if not status.get("startTime") and not suspended:
        status["startTime"] = stamp
    if not (condition(job, "FailureTarget") or condition(job, "SuccessCriteriaMet")):
        start = parse_time(status.get("startTime"))
        deadline = spec.get("activeDeadlineSeconds")
        if failed > spec.get("backoffLimit", 6) or past_backoff_on_failure(spec, pods):
            _set_condition(conds, "FailureTarget", "True", "BackoffLimitExceeded",
                           BACKOFF_MESSAGE, stamp)
        elif _is_int(deadline) and start is not None and not suspended and \
                now - start >= deadline:
            _set_condition(conds, "FailureTarget", "True", "DeadlineExceeded",
                           DEADLINE_MESSAGE, stamp)
    failing = next((c for c in conds if c["type"] == "FailureTarget"
                    and c["status"] == "True"), None)
    deleted: list[Obj] = []
    if failing or condition(job, "SuccessCriteriaMet"):
        deleted = active[:MAX_PER_PASS]  # the job is over: what still runs goes
    else:
        deleted, made = _manage(out, spec, status, active, pods, succeeded, done=grown,
                                now=now, base=base)
        left = len(active) - len(deleted) + made
        complete = (succeeded > 0 and left == 0) if completions is None else \
            (succeeded >= completions and left == 0)
        if complete:
            _set_condition(conds, "SuccessCriteriaMet", "True", "CompletionsReached",
                           COMPLETE_MESSAGE, stamp)
        elif suspended:
            if _set_condition(conds, "Suspended", "True", "JobSuspended", "Job suspended",
                              stamp):
                out.events.append(("Normal", "Suspended", "Job suspended"))
            if not active and not terminating:
                status.pop("startTime", None)  # the deadline counts from the resume
        elif any(c["type"] == "Suspended" and c["status"] == "True" for c in conds):
            _set_condition(conds, "Suspended", "False", "JobResumed", "Job resumed", stamp)
            out.events.append(("Normal", "Resumed", "Job resumed"))
            status["startTime"] = stamp
    out.delete = [p["metadata"]["name"] for p in deleted]
    # 3. Over: the final condition once nothing is left running or terminating.
    still = len(terminating) + len(active) + len(out.create)  # deleted ones: terminating
    success = next((c for c in conds if c["type"] == "SuccessCriteriaMet"
                    and c["status"] == "True"), None)
    if (failing or success) and still == 0:
        if failing:
            _set_condition(conds, "Failed", "True", failing["reason"], failing["message"],
                           stamp)
            out.events.append(("Warning", failing["reason"], failing["message"]))
        else:
            _set_condition(conds, "Complete", "True", "CompletionsReached", COMPLETE_MESSAGE,
                           stamp)
            status["completionTime"] = stamp
            out.events.append(("Normal", "Completed", "Job completed"))
    kept = [p for p in active if p not in deleted]
    _counts(status, "active", len(kept) + len(out.create))
    _counts(status, "succeeded", succeeded)
    _counts(status, "failed", failed)
    status["ready"] = sum(1 for p in kept if ready(p))
    status["terminating"] = len(terminating) + len(deleted)
    if not conds:
        status.pop("conditions")
    out.status = status
    return out


def _counts(status: Obj, key: str, value: int) -> None:
    if value:
        status[key] = value
    else:
        status.pop(key, None)


def _manage(out: JobPlan, spec: Obj, status: Obj, active: list[Obj], pods: list[Obj],
            succeeded: int, done: set[int], now: float, base: float) -> tuple[list[Obj], int]:
    """Pods to delete (too many, or suspended) and to make (too few): (deleted, made)."""
    completions = spec.get("completions")
    parallelism = spec.get("parallelism", 1)
    suspended = spec.get("suspend") is True
    deleted: list[Obj] = []
    if spec.get("completionMode") == "Indexed":
        total = completions or 0
        by_index: dict[int, list[Obj]] = {}
        for p in active:
            ix = index_of(p)
            if ix is None or ix >= total or ix in done:
                deleted.append(p)  # no index of this job, or one already succeeded
            else:
                by_index.setdefault(ix, []).append(p)
        for group in by_index.values():
            deleted += _removal_order(group)[:-1]  # one pod per index
        want = 0 if suspended else min(parallelism, total - len(done))
        keep = [_removal_order(g)[-1] for g in by_index.values()]
        if len(keep) > want:
            deleted += _removal_order(keep)[:len(keep) - want]
        left = len(active) - len(deleted)
        if left < want and not backoff_left(pods, now, base):
            busy = set(by_index)
            pending = [i for i in range(total) if i not in done and i not in busy]
            out.create = list(pending[:min(want - left, MAX_PER_PASS)])
        return deleted[:MAX_PER_PASS], len(out.create)
    if completions is None:
        want = len(active) if succeeded > 0 else parallelism
    else:
        want = max(0, min(parallelism, completions - succeeded))
    if suspended:
        want = 0
    if len(active) > want:
        deleted = _removal_order(active)[:min(len(active) - want, MAX_PER_PASS)]
    elif len(active) < want and not backoff_left(pods, now, base):
        out.create = [None] * min(want - len(active), MAX_PER_PASS)
    return deleted, len(out.create)


def pod_for(job: Obj, index: int | None, suffix: str) -> Obj:
    """A pod of the Job from its template: its labels and annotations, the controller
    reference, the tracking finalizer; an Indexed one its index (annotation, label, and
    JOB_COMPLETION_INDEX in every container's environment)."""
    meta = job["metadata"]
    template = copy.deepcopy(job["spec"]["template"])
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    annotations = dict(tmeta.get("annotations") or {})
    base = meta["name"] if index is None else f"{meta['name']}-{index}"
    spec = template["spec"]
    if index is not None:
        annotations[INDEX] = labels[INDEX] = str(index)
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            env = [e for e in c.get("env") or [] if e.get("name") != INDEX_ENV]
            c["env"] = [*env, {"name": INDEX_ENV, "value": str(index)}]
    pod_meta: Obj = {"name": f"{base[:253 - 6]}-{suffix}", "labels": labels,
                     "ownerReferences": [objmeta.owner_reference(job)],
                     "finalizers": [*(tmeta.get("finalizers") or []), TRACKING]}
    if annotations:
        pod_meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


# ---- printing (kubectl get jobs)
def human_duration(seconds: float) -> str:
    """apimachinery's HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m" if s % 60 == 0 else f"{m}m{s % 60}s"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h" if m % 60 == 0 else f"{h}h{m % 60}m"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d" if h % 24 == 0 else f"{h // 24}d{h % 24}h"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        dy = (h // 24) % 365
        return f"{h // 24 // 365}y" if dy == 0 else f"{h // 24 // 365}y{dy}d"
    return f"{h // 24 // 365}y"


def display_status(job: Obj) -> str:
    if condition(job, "Complete"):
        return "Complete"
    if condition(job, "Failed"):
        return "Failed"
    if objmeta.deleting(job):
        return "Terminating"
    for kind in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if condition(job, kind):
            return kind
    return "Running"


def completions_text(job: Obj) -> str:
    spec, st = job.get("spec") or {}, job.get("status") or {}
    done = st.get("succeeded") or 0
    if spec.get("completions") is not None:
        return f"{done}/{spec['completions']}"
    par = spec.get("parallelism") or 0
    return f"{done}/1 of {par}" if par > 1 else f"{done}/1"


def duration_text(job: Obj, now: float) -> str:
    st = job.get("status") or {}
    start = parse_time(st.get("startTime"))
    if start is None:
        return ""
    end = parse_time(st.get("completionTime"))
    return human_duration((end if end is not None else now) - start)


def container_cells(podspec: Any) -> tuple[str, str]:
    """The CONTAINERS and IMAGES cells of -o wide."""
    cs = [c for c in (podspec or {}).get("containers") or [] if isinstance(c, dict)]
    return ",".join(str(c.get("name", "")) for c in cs), \
        ",".join(str(c.get("image", "")) for c in cs)


def selector_cell(sel: Any) -> str:
    return (selectors.selector_text(sel) if isinstance(sel, dict) else "") or "<none>"


register(KindRule("jobs", "Job", group="batch", status=True, generation=True,
                  check=check_job, default=default_job))
