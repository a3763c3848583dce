"""batch/v1 CronJob as kube-apiserver checks it and kube-controller-manager's cronjob
controller runs it (pure: the store's view and the time come in, a plan goes out).

Schedules are read as upstream's parser reads them (robfig/cron's standard five fields:
names, ranges, steps, `?`; @yearly, @monthly, @weekly, @daily, @midnight, @hourly and
@every DURATION), each field turned into the explicit list of its values for croniter to
iterate in the CronJob's time zone (IANA, through zoneinfo; UTC when none is given). A Job is
named after its scheduled time (`NAME-<minutes since the epoch>`), so the pass after a crash
finds the one it made instead of making another."""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from . import batchjobs, kubeobj, objmeta
from .batchjobs import parse_time, rfc3339
from .kubeerrors import KubeError, invalid
from .kubekinds import KindRule, register

Obj = dict[str, Any]
Errors = list[tuple[str, str]]

SCHEDULED = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MANUAL = "cronjob.kubernetes.io/instantiate"
MAX_NAME = 52  # its Jobs' names add 11 characters and must stay a DNS label
POLICIES = ("Allow", "Forbid", "Replace")
TOO_MANY = 100  # missed start times past which upstream warns
_DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                "@hourly": "0 * * * *"}
_MONTHS = {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul",
                                            "aug", "sep", "oct", "nov", "dec"))}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (low, high, names) of minute, hour, day of month, month, day of week
_FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (0, 6, _DAYS))
_DURATION = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    cron: str | None = None  # five explicit fields for croniter ("*" where robfig's is a star)
    every: float | None = None  # @every: seconds

    def next_after(self, t: float, tz: tzinfo) -> float | None:
        """The first start strictly after t (None: the schedule never fires)."""
        if self.every is not None:
            return math.floor(t) + self.every
        try:
            return float(croniter(self.cron or "", datetime.fromtimestamp(t, tz)).get_next(
                float))
        except Exception:  # noqa: BLE001 - croniter's "no such date" (31 February) and kin
            return None

    def last_until(self, t: float, tz: tzinfo) -> float | None:
        """The last start at or before t."""
        try:
            prev = croniter(self.cron or "", datetime.fromtimestamp(math.floor(t) + 1, tz))
            return float(prev.get_prev(float))
        except Exception:  # noqa: BLE001 - as above
            return None


def _number(text: str, names: dict[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ScheduleError(f"failed to parse int from {text}: strconv.Atoi: parsing "
                            f'"{text}": invalid syntax')
    return int(text)


def _field(text: str, low: int, high: int, names: dict[str, int]) -> tuple[set[int], bool]:
    """One field's values, and whether it is a star (robfig's starBit: `*` or `?` without
    a step above 1)."""
    values: set[int] = set()
    star = False
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        if "/" in step_text:
            raise ScheduleError(f"too many slashes: {part}")
        bounds = span.split("-")
        if bounds[0] in ("*", "?"):
            start, end, is_star = low, high, True
        else:
            if len(bounds) > 2:
                raise ScheduleError(f"too many hyphens: {span}")
            start = _number(bounds[0], names)
            end = _number(bounds[1], names) if len(bounds) == 2 else start
            is_star = False
        step = 1
        if step_text or part.endswith("/"):
            step = _number(step_text, {})
            if len(bounds) == 1:
                end = high  # "N/step" is "N-max/step"
            if step > 1:
                is_star = False
        if start < low:
            raise ScheduleError(f"beginning of range ({start}) below minimum ({low}): {part}")
        if end > high:
            raise ScheduleError(f"end of range ({end}) above maximum ({high}): {part}")
        if start > end:
            raise ScheduleError(f"beginning of range ({start}) beyond end of range ({end}): "
                                f"{part}")
        if step == 0:
            raise ScheduleError(f"step of range should be a positive number: {part}")
        values.update(range(start, end + 1, step))
        star = star or is_star
    return values, star


def _duration(text: str) -> float:
    """Go's time.ParseDuration (what @every takes)."""
    raw = text
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    if text == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(text):
        m = _DURATION.match(text, pos)
        if not m or m.group(1) in ("", "."):
            raise ScheduleError(f"failed to parse duration {raw}: time: invalid duration "
                                f'"{raw}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text:
        raise ScheduleError(f'failed to parse duration {raw}: time: invalid duration "{raw}"')
    return sign * total


def parse_schedule(text: str) -> Schedule:
    """robfig/cron's ParseStandard; ScheduleError in its words."""
    spec = text.strip()
    if spec.startswith("@every "):
        seconds = _duration(spec[len("@every "):].strip())
        return Schedule(every=float(max(math.floor(seconds), 1)))
    if spec.startswith("@"):
        if spec not in _DESCRIPTORS:
            raise ScheduleError(f"unrecognized descriptor: {spec}")
        spec = _DESCRIPTORS[spec]
    fields = spec.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: "
                            f"[{' '.join(fields)}]")
    out = []
    for f, (low, high, names) in zip(fields, _FIELDS, strict=True):
        values, star = _field(f, low, high, names)
        out.append("*" if star else ",".join(str(v) for v in sorted(values)))
    return Schedule(cron=" ".join(out))


def zone(name: Any) -> tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError, OSError) as err:
        # OSError: a directory of the zone database ("America"), a name past the file
        # system's limit
        raise ScheduleError(f"unknown time zone {str(name)[:100]}") from err


def _zone_error(name: Any) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        return "timeZone must be nil or non-empty string"
    if name.lower() == "local":
        return ("timeZone must be an explicit time zone as defined in "
                "https://www.iana.org/time-zones")
    try:
        zone(name)
    except ScheduleError as err:
        return str(err)
    return None


def most_recent(sched: Schedule, tz: tzinfo, earliest: float,
                now: float) -> tuple[float | None, int]:
    """The latest start in (earliest, now], and how many starts that span holds (past
    TOO_MANY counted as upstream counts them: by the interval of the first two)."""
    t1 = sched.next_after(earliest, tz)
    if t1 is None or t1 > now:
        return None, 0
    t2 = sched.next_after(t1, tz)
    if t2 is None or t2 > now:
        return t1, 1
    if sched.every is not None:
        count = int((now - t1) // sched.every) + 1
        return t1 + (count - 1) * sched.every, count
    last, count, nxt = t2, 2, sched.next_after(t2, tz)
    while nxt is not None and nxt <= now and count <= TOO_MANY:
        last, count, nxt = nxt, count + 1, sched.next_after(nxt, tz)
    if count > TOO_MANY:
        count = int((now - t1) // max(t2 - t1, 1.0)) + 1
        last = sched.last_until(now, tz) or last
    return last, count


# ---- the apiserver's part
def default_cronjob(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    tmpl = spec.get("jobTemplate")
    if isinstance(tmpl, dict) and isinstance(tmpl.get("spec"), dict):
        batchjobs.default_template(tmpl["spec"].get("template"))


def _meta_errors(meta: Any, at: str) -> Errors:
    if meta is None:
        return []
    if not isinstance(meta, dict):
        return [(at, "Invalid value: must be an object")]
    try:
        kubeobj.check_meta({"metadata": {"name": "x", **{
            k: meta[k] for k in ("labels", "annotations") if k in meta}}}, "Job")
    except KubeError as err:
        return [(f"{at}.{c['field'].removeprefix('metadata.')}", c["message"])
                for c in (err.details or {}).get("causes") or []]
    return []


def check_cronjob(obj: Obj, old: Obj | None) -> None:
    name = obj["metadata"]["name"]
    errors: Errors = []
    if len(name) > MAX_NAME:
        errors.append(("metadata.name", f'Invalid value: "{name}": must be no more than '
                       f"{MAX_NAME} characters"))
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise invalid("CronJob", name, [*errors, ("spec.schedule", "Required value")])
    schedule = spec.get("schedule")
    if not isinstance(schedule, str) or not schedule:
        errors.append(("spec.schedule", "Required value"))
    elif "TZ" in schedule:
        errors.append(("spec.schedule", f"Invalid value: {schedule[:100]!r}: cannot use TZ or "
                       "CRON_TZ in schedule, use timeZone field instead"))
    else:
        try:
            parse_schedule(schedule)
        except ScheduleError as err:
            errors.append(("spec.schedule", f"Invalid value: {schedule[:100]!r}: {err}"))
    tz_err = _zone_error(spec.get("timeZone"))
    if tz_err:
        errors.append(("spec.timeZone", f"Invalid value: {str(spec.get('timeZone'))[:80]!r}: "
                       f"{tz_err}"))
    policy = spec.get("concurrencyPolicy")
    if policy not in POLICIES:
        errors.append(("spec.concurrencyPolicy", f"Unsupported value: {str(policy)[:40]!r}: "
                       'supported values: "Allow", "Forbid", "Replace"'))
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit",
                "failedJobsHistoryLimit"):
        errors += batchjobs._nonnegative(spec, key, "spec")
    if not isinstance(spec.get("suspend"), bool):
        errors.append(("spec.suspend", "Invalid value: must be a boolean"))
    tmpl = spec.get("jobTemplate")
    if not isinstance(tmpl, dict):
        errors.append(("spec.jobTemplate", "Required value"))
    else:
        errors += _meta_errors(tmpl.get("metadata"), "spec.jobTemplate.metadata")
        job_spec = tmpl.get("spec")
        errors += batchjobs.spec_errors(job_spec, "spec.jobTemplate.spec")
        if isinstance(job_spec, dict):
            if job_spec.get("selector") is not None:
                errors.append(("spec.jobTemplate.spec.selector", f"Invalid value: "
                               f"{job_spec['selector']}: `selector` will be auto-generated"))
            if job_spec.get("manualSelector") is True:
                errors.append(("spec.jobTemplate.spec.manualSelector", 'Unsupported value: '
                               'true: supported values: "nil", "false"'))
    if errors:
        raise invalid("CronJob", name, errors)


# ---- the controller's part
@dataclass
class CronPlan:
    create: float | None = None  # the scheduled time of the Job to make now
    delete: list[str] = field(default_factory=list)  # Jobs to delete (Replace, history)
    status: Obj = field(default_factory=dict)  # as if the create succeeds
    # (type, reason, message, key): an event is told once per key (a scheduled time, a
    # job), however many passes see the same thing
    events: list[tuple[str, str, str, str]] = field(default_factory=list)
    next_at: float | None = None


def job_name(cron: Obj, at: float) -> str:
    return f"{cron['metadata']['name']}-{int(at // 60)}"


def job_ref(job: Obj) -> Obj:
    meta = job["metadata"]
    return {"kind": "Job", "namespace": meta.get("namespace"), "name": meta["name"],
            "uid": meta["uid"], "apiVersion": "batch/v1",
            "resourceVersion": meta.get("resourceVersion")}


def job_for(cron: Obj, at: float) -> Obj:
    """The Job of the scheduled time `at`, from the jobTemplate."""
    tmpl = cron["spec"]["jobTemplate"]
    meta = tmpl.get("metadata") or {}
    stamp = datetime.fromtimestamp(at, zone(cron["spec"].get("timeZone")))
    annotations = {**(meta.get("annotations") or {}),
                   SCHEDULED: stamp.isoformat().replace("+00:00", "Z")}
    job_meta: Obj = {"name": job_name(cron, at), "annotations": annotations,
                     "ownerReferences": [objmeta.owner_reference(cron)]}
    if meta.get("labels"):
        job_meta["labels"] = dict(meta["labels"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta,
            "spec": copy.deepcopy(tmpl.get("spec") or {})}


def _start_key(job: Obj) -> tuple[bool, float, str]:
    start = parse_time((job.get("status") or {}).get("startTime"))
    return start is None, start or 0.0, job["metadata"]["name"]


def plan(cron: Obj, jobs: list[Obj], now: float) -> CronPlan:
    """One pass of the cronjob controller over a CronJob and the Jobs it controls."""
    out = CronPlan()
    spec = cron["spec"]
    status = copy.deepcopy(cron.get("status") or {})
    by_uid = {j["metadata"]["uid"]: j for j in jobs}
    active: list[Obj] = []
    for ref in status.get("active") or []:
        job = by_uid.get(ref.get("uid")) if isinstance(ref, dict) else None
        if job is None:
            continue
        done = batchjobs.finished(job)
        if done:
            out.events.append(("Normal", "SawCompletedJob", f"Saw completed job: "
                               f"{job['metadata']['name']}, condition: {done['type']}",
                               job["metadata"]["uid"]))
            continue
        active.append(ref)
    known = {r["uid"] for r in active}
    for job in sorted(jobs, key=lambda j: j["metadata"]["name"]):
        meta = job["metadata"]
        if batchjobs.finished(job) or meta["uid"] in known:
            continue
        if SCHEDULED in (meta.get("annotations") or {}):
            active.append(job_ref(job))  # made by this controller (the pass a crash cut)
        else:
            out.events.append(("Warning", "UnexpectedJob", "Saw a job that the controller "
                               f"did not create or forgot: {meta['name']}", meta["uid"]))
    last_ok = parse_time(status.get("lastSuccessfulTime"))
    for job in jobs:
        if batchjobs.condition(job, "Complete"):
            t = parse_time((job.get("status") or {}).get("completionTime"))
            if t is not None and (last_ok is None or t > last_ok):
                last_ok = t
    if last_ok is not None:
        status["lastSuccessfulTime"] = rfc3339(last_ok)
    for kind, limit in (("Complete", spec.get("successfulJobsHistoryLimit")),
                        ("Failed", spec.get("failedJobsHistoryLimit"))):
        if not isinstance(limit, int):
            continue
        group = sorted((j for j in jobs if batchjobs.condition(j, kind)
                        and not objmeta.deleting(j)), key=_start_key)
        for job in group[:max(len(group) - limit, 0)]:
            out.delete.append(job["metadata"]["name"])
            out.events.append(("Normal", "SuccessfulDelete",
                               f"Deleted job {job['metadata']['name']}", job["metadata"]["uid"]))
    out.status = status
    _set_active(status, active)
    if objmeta.deleting(cron) or spec.get("suspend"):
        return out
    tz = zone(spec.get("timeZone"))
    sched = parse_schedule(spec["schedule"])
    earliest = parse_time(status.get("lastScheduleTime")) or parse_time(
        cron["metadata"].get("creationTimestamp")) or now
    deadline = spec.get("startingDeadlineSeconds")
    if isinstance(deadline, int):
        earliest = max(earliest, now - deadline)
    at, missed = most_recent(sched, tz, earliest, now)
    out.next_at = sched.next_after(max(at or earliest, now), tz)
    if missed > TOO_MANY:
        out.events.append(("Warning", "TooManyMissedTimes", f"too many missed start times: "
                           f"{missed}. Set or decrease .spec.startingDeadlineSeconds or check "
                           "clock skew", str(at)))
    if at is None:
        return out
    if isinstance(deadline, int) and at + deadline < now:
        out.events.append(("Warning", "MissSchedule", "Missed scheduled time to start a job: "
                           + datetime.fromtimestamp(at, UTC).strftime(
                               "%a, %d %b %Y %H:%M:%S +0000"), str(at)))
        return out
    name = job_name(cron, at)
    if any(r.get("name") == name for r in active) or any(
            j["metadata"]["name"] == name for j in jobs):
        status["lastScheduleTime"] = rfc3339(at)  # made already (before a crash, say)
        return out
    if spec.get("concurrencyPolicy") == "Forbid" and active:
        out.events.append(("Normal", "JobAlreadyActive", "Not starting job because prior "
                           "execution is running and concurrency policy is Forbid", str(at)))
        return out
    if spec.get("concurrencyPolicy") == "Replace":
        for ref in active:
            if ref["name"] not in out.delete:
                out.delete.append(ref["name"])
                out.events.append(("Normal", "SuccessfulDelete", f"Deleted job {ref['name']}",
                                   ref["uid"]))
        _set_active(status, [])
    out.create = at
    status["lastScheduleTime"] = rfc3339(at)
    return out


def _set_active(status: Obj, refs: list[Obj]) -> None:
    if refs:
        status["active"] = refs
    else:
        status.pop("active", None)


register(KindRule("cronjobs", "CronJob", group="batch", status=True, generation=True,
                  check=check_cronjob, default=default_cronjob))
