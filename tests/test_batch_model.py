"""Jobs, CronJobs and DaemonSets as rules (model/batchjobs.py, cronjobs.py, daemonsets.py):
defaults and checks, the job controller's plan over pods (counting once, backoff, deadlines,
Indexed completion, suspend), cron timing with a fake clock, and the cronjob controller over a
real store with an injected clock (no duplicate Job after a crash)."""

from __future__ import annotations

import calendar
import copy

import pytest

from fargo.control.cronjobs import CronJobController
from fargo.control.kubestate import KubeState
from fargo.control.objects import Objects
from fargo.model import batchjobs as bj
from fargo.model import cronjobs as cj
from fargo.model import daemonsets, kubeobj
from fargo.model.kubeerrors import KubeError
from fargo.store.kube import KubeTables
from fargo.store.sqlite import Store

pytestmark = pytest.mark.pure
T0 = float(calendar.timegm((2024, 1, 1, 0, 0, 0)))  # a Monday, 00:00 UTC


def job(**spec) -> dict:
    body = {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "apps", "uid": "u1",
                         "creationTimestamp": bj.rfc3339(T0)},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "c", "image": "busybox"}]}}, **spec}}
    bj.default_job(body)
    bj.check_job(body, None)
    return body


def pod(j: dict, name: str, phase: str = "Running", index: int | None = None,
        restarts: int = 0, finished: float | None = None, deleting: bool = False) -> dict:
    p = bj.pod_for(j, index, "xxxxx")
    p["metadata"].update(name=name, uid=f"uid-{name}", namespace="apps",
                         creationTimestamp=bj.rfc3339(T0))
    if deleting:
        p["metadata"]["deletionTimestamp"] = bj.rfc3339(T0)
    state = {"terminated": {"finishedAt": bj.rfc3339(finished)}} if finished else {}
    p["status"] = {"phase": phase, "containerStatuses": [
        {"name": "c", "restartCount": restarts, "state": state}]}
    return p


def released(p: dict) -> dict:
    p = copy.deepcopy(p)
    p["metadata"]["finalizers"].remove(bj.TRACKING)
    return p


def conditions(status: dict) -> dict:
    return {c["type"]: c.get("reason") for c in status.get("conditions") or []
            if c["status"] == "True"}


def invalid_fields(fn, *args) -> set[str]:
    with pytest.raises(KubeError) as err:
        fn(*args)
    assert err.value.code == 422
    return {c["field"] for c in err.value.details["causes"]}


# ---- the apiserver's part
def test_job_defaults_selector_and_checks():
    j = job()
    spec = j["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"],
            spec["completionMode"], spec["suspend"]) == (1, 1, 6, "NonIndexed", False)
    assert spec["selector"] == {"matchLabels": {bj.CONTROLLER_UID: "u1"}}
    assert spec["template"]["metadata"]["labels"] == {
        "controller-uid": "u1", bj.CONTROLLER_UID: "u1", "job-name": "pi", bj.JOB_NAME: "pi"}
    assert job(parallelism=4)["spec"].get("completions") is None  # a work queue

    def bad(**spec):
        body = {"metadata": {"name": "pi", "uid": "u1"}, "spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "b"}]}}, **spec}}
        bj.default_job(body)
        return invalid_fields(bj.check_job, body, None)

    assert bad(completions=-1) == {"spec.completions"}
    assert bad(completionMode="Sometimes") == {"spec.completionMode"}
    assert bad(completionMode="Indexed", parallelism=2, completions=None) == \
        {"spec.completions"}
    assert bad(podFailurePolicy={"rules": []}) == {"spec.podFailurePolicy"}
    assert bad(selector={"matchLabels": {"app": "x"}}) >= {"spec.selector"}
    assert bad(template={"spec": {"containers": [{"name": "c", "image": "b"}]}}) == \
        {"spec.template.spec.restartPolicy"}  # Always, by the pod default
    assert bad(template={"spec": {"restartPolicy": "Never", "containers": []}}) == \
        {"spec.template.spec.containers"}
    assert bad(selector={"matchLabels": 5}) == {"spec.selector.matchLabels"}  # never a 500
    assert "spec.template" in bad(template="x")
    # manualSelector: the user's selector, checked against the template only
    manual = {"metadata": {"name": "m", "uid": "u2"}, "spec": {
        "manualSelector": True, "selector": {"matchLabels": {"app": "m"}},
        "template": {"metadata": {"labels": {"app": "m"}}, "spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "b"}]}}}}
    bj.default_job(manual)
    bj.check_job(manual, None)
    assert manual["spec"]["selector"] == {"matchLabels": {"app": "m"}}


def test_job_updates_keep_the_template_unless_suspended_and_not_started():
    old = job(completions=2)
    new = copy.deepcopy(old)
    new["spec"]["parallelism"] = 3
    new["spec"]["activeDeadlineSeconds"] = 60
    bj.check_job(new, old)  # mutable
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    new["spec"]["completions"] = 5
    assert invalid_fields(bj.check_job, new, old) == {"spec.template", "spec.completions"}
    susp = job(suspend=True)
    moved = copy.deepcopy(susp)
    moved["spec"]["template"]["spec"]["nodeSelector"] = {"zone": "a"}
    moved["spec"]["template"]["metadata"]["labels"]["extra"] = "1"
    bj.check_job(moved, susp)
    started = copy.deepcopy(susp)
    started["status"] = {"startTime": bj.rfc3339(T0)}
    assert invalid_fields(bj.check_job, moved, started) == {"spec.template"}
    # Indexed: completions follows parallelism when both move together
    ix = job(completionMode="Indexed", completions=3, parallelism=3)
    grown = copy.deepcopy(ix)
    grown["spec"].update(completions=5, parallelism=5)
    bj.check_job(grown, ix)


# ---- the controller's plan
def test_completions_with_parallelism_count_each_result_once():
    j = job(completions=3, parallelism=2)
    p = bj.plan(j, [], T0)
    assert p.create == [None, None] and p.status["active"] == 2 and p.interim is None
    j["status"] = p.status
    a, b = pod(j, "a", "Succeeded"), pod(j, "b")
    p = bj.plan(j, [a, b], T0 + 5)
    # a's result is stored as uncounted before its finalizer goes, then counted
    assert p.interim["uncountedTerminatedPods"] == {"succeeded": ["uid-a"]}
    assert p.release == ["a"] and p.create == [None]
    assert p.status["succeeded"] == 1 and p.status["uncountedTerminatedPods"] == {}
    # A crash after the interim write: the pass again sees a tracked, uncounted pod.
    j["status"] = p.interim
    again = bj.plan(j, [a, b], T0 + 6)
    assert again.interim is None and again.release == ["a"]
    assert again.status["succeeded"] == 1
    # After the release: counted once, never again.
    j["status"] = again.status
    c = pod(j, "c")
    p = bj.plan(j, [released(a), b, c], T0 + 7)
    assert p.status["succeeded"] == 1 and not p.create and p.status["active"] == 2
    j["status"] = p.status
    p = bj.plan(j, [released(a), pod(j, "b", "Succeeded"), pod(j, "c", "Succeeded")], T0 + 9)
    assert p.status["succeeded"] == 3 and "active" not in p.status
    assert conditions(p.status) == {"SuccessCriteriaMet": "CompletionsReached",
                                    "Complete": "CompletionsReached"}
    assert p.status["completionTime"] == bj.rfc3339(T0 + 9)
    assert ("Normal", "Completed", "Job completed") in p.events
    j["status"] = p.status
    assert bj.display_status(j) == "Complete" and bj.completions_text(j) == "3/3"
    assert bj.duration_text(j, T0 + 100) == "9s"


def test_backoff_limit_counts_failures_with_a_growing_pause():
    j = job(backoffLimit=1)
    j["status"] = bj.plan(j, [], T0).status
    first = pod(j, "a", "Failed", finished=T0 + 2)
    p = bj.plan(j, [first], T0 + 3)
    assert p.status["failed"] == 1 and not p.create  # 10 s before the next try
    assert not conditions(p.status)
    j["status"] = p.status
    p = bj.plan(j, [released(first)], T0 + 12.5)
    assert p.create == [None] and p.status["failed"] == 1
    j["status"] = p.status
    second = pod(j, "b", "Failed", finished=T0 + 20)
    p = bj.plan(j, [released(first), second], T0 + 21)
    assert p.status["failed"] == 2
    assert conditions(p.status) == {"FailureTarget": "BackoffLimitExceeded",
                                    "Failed": "BackoffLimitExceeded"}
    assert ("Warning", "BackoffLimitExceeded", bj.BACKOFF_MESSAGE) in p.events
    assert bj.backoff_left([released(first), released(second)], T0 + 21) == pytest.approx(19)


def test_restarts_count_against_backoff_on_failure_and_running_pods_go():
    j = job(backoffLimit=2)
    j["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    j["status"] = bj.plan(j, [], T0).status
    running = pod(j, "a", restarts=2)
    p = bj.plan(j, [running], T0 + 5)
    assert conditions(p.status) == {"FailureTarget": "BackoffLimitExceeded"}
    assert p.delete == ["a"] and p.status["terminating"] == 1
    j["status"] = p.status
    gone = pod(j, "a", deleting=True)  # deleted before it ended: counted as failed
    p = bj.plan(j, [gone], T0 + 6)
    assert p.release == ["a"] and p.status["failed"] == 1
    assert "Failed" not in conditions(p.status)  # not while a pod is still terminating
    j["status"] = p.status
    p = bj.plan(j, [], T0 + 8)
    assert conditions(p.status)["Failed"] == "BackoffLimitExceeded"


def test_active_deadline_and_suspend():
    j = job(activeDeadlineSeconds=30, parallelism=1)
    j["status"] = bj.plan(j, [], T0).status
    a = pod(j, "a")
    p = bj.plan(j, [a], T0 + 29)
    assert not conditions(p.status) and not p.delete
    p = bj.plan(j, [a], T0 + 30)
    assert conditions(p.status) == {"FailureTarget": "DeadlineExceeded"} and p.delete == ["a"]
    # suspend: pods go, the condition says so, the deadline restarts at the resume
    s = job(activeDeadlineSeconds=30)
    s["status"] = bj.plan(s, [], T0).status
    s["spec"]["suspend"] = True
    b = pod(s, "b")
    p = bj.plan(s, [b], T0 + 10)
    assert p.delete == ["b"] and conditions(p.status) == {"Suspended": "JobSuspended"}
    assert ("Normal", "Suspended", "Job suspended") in p.events
    s["status"] = p.status
    p = bj.plan(s, [], T0 + 100)
    assert "startTime" not in p.status and not p.create
    s["status"], s["spec"]["suspend"] = p.status, False
    p = bj.plan(s, [], T0 + 200)
    assert p.status["startTime"] == bj.rfc3339(T0 + 200) and p.create == [None]
    assert ("Normal", "Resumed", "Job resumed") in p.events
    assert not conditions(p.status)


def test_indexed_completion():
    j = job(completionMode="Indexed", completions=4, parallelism=2)
    p = bj.plan(j, [], T0)
    assert p.create == [0, 1]
    made = bj.pod_for(j, 1, "abcde")
    assert made["metadata"]["name"] == "pi-1-abcde"
    assert made["metadata"]["annotations"][bj.INDEX] == "1"
    assert made["metadata"]["labels"][bj.INDEX] == "1"
    assert {"name": bj.INDEX_ENV, "value": "1"} in made["spec"]["containers"][0]["env"]
    assert made["metadata"]["finalizers"] == [bj.TRACKING]
    assert made["metadata"]["ownerReferences"][0]["uid"] == "u1"
    j["status"] = p.status
    pods = [pod(j, "p0", "Succeeded", index=0), pod(j, "p1", index=1)]
    p = bj.plan(j, pods, T0 + 1)
    assert p.interim["completedIndexes"] == "0" and p.create == [2]
    assert p.status["succeeded"] == 1
    j["status"] = p.status
    pods = [released(pods[0]), pod(j, "p1", "Succeeded", index=1), pod(j, "p2", index=2),
            pod(j, "dup", index=2)]
    p = bj.plan(j, pods, T0 + 2)
    assert p.status["completedIndexes"] == "0,1" and p.create == [3] and p.delete == ["dup"]
    assert bj.format_indexes({0, 1, 2, 5, 7, 8}) == "0-2,5,7,8"
    assert bj.parse_indexes("0-2,5,7,8") == {0, 1, 2, 5, 7, 8}


def test_ttl_after_finished():
    j = job(ttlSecondsAfterFinished=5)
    j["status"] = {"conditions": [{"type": "Complete", "status": "True",
                                   "lastTransitionTime": bj.rfc3339(T0)}]}
    assert not bj.ttl_expired(j, T0 + 4) and bj.ttl_expired(j, T0 + 5)
    assert bj.human_duration(3 * 3600 + 120) == "3h2m" and bj.human_duration(125) == "2m5s"


# ---- CronJobs
def cron(schedule: str = "*/5 * * * *", **spec) -> dict:
    body = {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "apps", "uid": "c1",
                         "creationTimestamp": bj.rfc3339(T0)},
            "spec": {"schedule": schedule, "jobTemplate": {
                "metadata": {"labels": {"app": "tick"}},
                "spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [
                    {"name": "c", "image": "busybox"}]}}}}, **spec}}
    cj.default_cronjob(body)
    cj.check_cronjob(body, None)
    return body


def test_schedules_as_upstream_parses_them():
    tz = cj.zone(None)
    every5 = cj.parse_schedule("*/5 * * * *")
    assert every5.next_after(T0, tz) == T0 + 300
    assert cj.parse_schedule("@hourly").next_after(T0, tz) == T0 + 3600
    assert cj.parse_schedule("0 9 * * mon-fri").next_after(T0, tz) == T0 + 9 * 3600
    assert cj.parse_schedule("@every 90s").next_after(T0 + 0.5, tz) == T0 + 90
    # day of month OR day of week when both are restricted (Jan 1 2024 is a Monday)
    assert cj.parse_schedule("0 0 15 * 2").next_after(T0, tz) == T0 + 86400  # Tue Jan 2
    new_york = cj.zone("America/New_York")
    assert cj.parse_schedule("0 9 * * *").next_after(T0, new_york) == T0 + 14 * 3600
    for bad, words in (("* * * *", "expected exactly 5 fields"),
                       ("60 * * * *", "above maximum (59)"),
                       ("* * * * 7", "above maximum (6)"),
                       ("*/0 * * * *", "should be a positive number"),
                       ("x * * * *", "failed to parse int from x"),
                       ("@fortnightly", "unrecognized descriptor"),
                       ("0 0 L * *", "failed to parse int from L")):
        with pytest.raises(cj.ScheduleError, match=words.replace("(", r"\(").replace(
                ")", r"\)")):
            cj.parse_schedule(bad)
    with pytest.raises(cj.ScheduleError, match="unknown time zone Mars/Olympus"):
        cj.zone("Mars/Olympus")


def test_cronjob_checks():
    c = cron()
    assert c["spec"]["concurrencyPolicy"] == "Allow"
    assert (c["spec"]["successfulJobsHistoryLimit"], c["spec"]["failedJobsHistoryLimit"]) == \
        (3, 1)

    def bad(**spec):
        body = copy.deepcopy(c)
        body["spec"].update(spec)
        return invalid_fields(cj.check_cronjob, body, None)

    assert bad(schedule="nope") == {"spec.schedule"}
    assert bad(schedule="TZ=UTC * * * * *") == {"spec.schedule"}
    assert bad(timeZone="Mars/Olympus") == {"spec.timeZone"}
    assert bad(timeZone="Local") == {"spec.timeZone"}
    assert bad(concurrencyPolicy="Sometimes") == {"spec.concurrencyPolicy"}
    assert bad(startingDeadlineSeconds=-1) == {"spec.startingDeadlineSeconds"}
    tmpl = copy.deepcopy(c["spec"]["jobTemplate"])
    tmpl["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    tmpl["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert bad(jobTemplate=tmpl) == {"spec.jobTemplate.spec.selector",
                                     "spec.jobTemplate.spec.template.spec.restartPolicy"}
    long = copy.deepcopy(c)
    long["metadata"]["name"] = "x" * 53
    assert invalid_fields(cj.check_cronjob, long, None) == {"metadata.name"}


def made(c: dict, at: float, done: str | None = None, start: float | None = None) -> dict:
    body = cj.job_for(c, at)
    body["metadata"].update(uid=f"uid-{at}", namespace="apps")
    if done:
        body["status"] = {"startTime": bj.rfc3339(start or at), "conditions": [
            {"type": done, "status": "True", "lastTransitionTime": bj.rfc3339(at + 10)}]}
        if done == "Complete":
            body["status"]["completionTime"] = bj.rfc3339(at + 10)
    return body


def test_cron_plan_timing_and_concurrency():
    c = cron()
    assert cj.plan(c, [], T0 + 299).create is None
    p = cj.plan(c, [], T0 + 301)
    assert p.create == T0 + 300 and p.status["lastScheduleTime"] == bj.rfc3339(T0 + 300)
    assert p.next_at == T0 + 600
    job1 = made(c, T0 + 300)
    assert job1["metadata"]["name"] == f"tick-{int((T0 + 300) // 60)}"
    assert job1["metadata"]["annotations"][cj.SCHEDULED] == "2024-01-01T00:05:00Z"
    assert job1["metadata"]["labels"] == {"app": "tick"}
    assert job1["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    c["status"] = {**p.status, "active": [cj.job_ref(job1)]}
    assert cj.plan(c, [job1], T0 + 400).create is None  # until the next one is due
    # Allow: the next one starts beside it; Forbid: it waits; Replace: the old one goes
    assert cj.plan(c, [job1], T0 + 601).create == T0 + 600
    forbid = copy.deepcopy(c)
    forbid["spec"]["concurrencyPolicy"] = "Forbid"
    p = cj.plan(forbid, [job1], T0 + 601)
    assert p.create is None and p.events[0][1] == "JobAlreadyActive"
    replace = copy.deepcopy(c)
    replace["spec"]["concurrencyPolicy"] = "Replace"
    p = cj.plan(replace, [job1], T0 + 601)
    assert p.create == T0 + 600 and p.delete == [job1["metadata"]["name"]]
    # a finished job leaves the active list; its completion is the last success
    ended = made(c, T0 + 300, "Complete")
    p = cj.plan(c, [ended], T0 + 400)
    assert "active" not in p.status and p.events[0][1] == "SawCompletedJob"
    assert p.status["lastSuccessfulTime"] == bj.rfc3339(T0 + 310)
    # a crash after the create, before the status: the Job's name says it is made
    fresh = cron()
    p = cj.plan(fresh, [made(fresh, T0 + 300)], T0 + 301)
    assert p.create is None and p.status["lastScheduleTime"] == bj.rfc3339(T0 + 300)
    assert len(p.status["active"]) == 1
    # suspended: nothing is made
    assert cj.plan(cron(suspend=True), [], T0 + 301).create is None


def test_cron_plan_missed_starts_deadline_time_zone_and_history():
    c = cron("0 * * * *")
    p = cj.plan(c, [], T0 + 200 * 3600 + 5)  # 200 hourly starts missed
    assert p.create == T0 + 200 * 3600
    assert ("Warning", "TooManyMissedTimes") == p.events[0][:2]
    assert "too many missed start times: 200" in p.events[0][2]
    d = cron("0 * * * *", startingDeadlineSeconds=60)
    assert cj.plan(d, [], T0 + 3 * 3600 + 61).create is None  # the 03:00 start is too late
    assert cj.plan(d, [], T0 + 3 * 3600 + 59).create == T0 + 3 * 3600
    tz = cron("30 9 * * *", timeZone="Asia/Kolkata")  # 04:00 UTC
    p = cj.plan(tz, [], T0 + 5 * 3600)
    assert p.create == T0 + 4 * 3600
    assert cj.job_for(tz, T0 + 4 * 3600)["metadata"]["annotations"][cj.SCHEDULED] == \
        "2024-01-01T09:30:00+05:30"
    h = cron()
    jobs = [made(h, T0 + 300 * i, "Complete") for i in range(1, 6)] + \
        [made(h, T0 + 300 * i + 1, "Failed") for i in range(6, 8)]
    p = cj.plan(h, jobs, T0 + 2400)
    gone = {j["metadata"]["name"] for j in jobs[:2] + jobs[5:6]}
    assert set(p.delete) == gone  # the oldest beyond 3 successful and 1 failed


def test_cronjob_controller_with_an_injected_clock(tmp_path):
    store = Store(tmp_path / "state.db")
    tables = KubeTables(store)
    tables.put_cluster({"name": "c"})
    state = KubeState(tables)
    state.create("c", "namespaces", "", kubeobj.namespace("apps"))
    objects = Objects(state)
    now = [0.0]
    control = CronJobController(state, objects, clock=lambda: now[0])
    body = cron()
    del body["metadata"]["uid"], body["metadata"]["creationTimestamp"]
    made_cron = objects.create("c", "cronjobs", "apps", body)
    created = bj.parse_time(made_cron["metadata"]["creationTimestamp"]) or 0.0
    due = (created // 300 + 1) * 300
    now[0] = due - 1
    control.reconcile("c")
    assert state.list("c", "jobs", "apps") == []
    now[0] = due + 1
    control.reconcile("c")
    jobs = state.list("c", "jobs", "apps")
    assert [j["metadata"]["name"] for j in jobs] == [f"tick-{int(due // 60)}"]
    # the Job got Job's defaults and a generated selector naming it
    assert jobs[0]["spec"]["selector"]["matchLabels"][bj.CONTROLLER_UID] == \
        jobs[0]["metadata"]["uid"]
    stored = state.get("c", "cronjobs", "apps", "tick")
    assert stored["status"]["active"][0]["name"] == jobs[0]["metadata"]["name"]
    # A crash cut the status write: the next pass makes no second Job.
    stored["status"] = {}
    state.update("c", "cronjobs", "apps", stored)
    control = CronJobController(state, objects, clock=lambda: now[0])
    control.reconcile("c")
    assert len(state.list("c", "jobs", "apps")) == 1
    stored = state.get("c", "cronjobs", "apps", "tick")
    assert stored["status"]["lastScheduleTime"] == bj.rfc3339(due)
    assert len(stored["status"]["active"]) == 1
    reasons = [e["reason"] for e in state.list("c", "events", "apps")]
    assert reasons.count("SuccessfulCreate") == 1
    store.close()


def test_daemonset_rules():
    ds = {"metadata": {"name": "agent", "generation": 2}, "spec": {
        "selector": {"matchLabels": {"app": "agent"}},
        "template": {"metadata": {"labels": {"app": "agent"}},
                     "spec": {"containers": [{"name": "a", "image": "busybox"}]}}}}
    daemonsets.default_daemonset(ds)
    daemonsets.check_daemonset(ds, None)
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 1, "maxSurge": 0}}
    assert daemonsets.status_of(ds)["desiredNumberScheduled"] == 0
    other = copy.deepcopy(ds)
    other["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    other["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert invalid_fields(daemonsets.check_daemonset, other, ds) == {
        "spec.selector", "spec.template.metadata.labels", "spec.template.spec.restartPolicy"}
    odd = copy.deepcopy(ds)
    odd["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": 5}
    assert invalid_fields(daemonsets.check_daemonset, odd, None) == {
        "spec.updateStrategy.rollingUpdate"}
