"""Figures 7-9: ECS services, each beside RunTask starts measured in the same run.

7 `scale`    one UpdateService takes a service from 0 to N tasks (N = the launch figure's
             calls × count); beside it the same N started by RunTask, then both back to 0.
8 `replace`  a service's task exits unexpectedly (its container's init is SIGKILLed from the
             host); seconds until its replacement is RUNNING, beside single RunTask starts.
9 `rolling`  a rolling deployment of a 3-task web service while a client sends steady HTTP
             requests straight to the tasks (no load balancer yet): requests sent and failed.

The services live in a cluster of their own, made here and deleted at the end."""

from __future__ import annotations

import functools
import http.client
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .env import Cleanup, busy_cpu_seconds, log
from .fargo_side import LAUNCH_POLL_S, POLL_S, FargoBench, stamped, task_id
from .stats import Results, Row, Summary

SERVICE_POLL_S = 0.05  # between DescribeServices polls (one service: cheap to answer)
REFRESH_S = 0.25  # how often the web client of figure 9 re-reads the service's tasks
WEB_PORT = 8080
# Figure 9's web task: serves its revision at /, and on SIGTERM keeps serving $DRAIN seconds
# before it exits (httpd runs on under sh until sh exits and the task's PID namespace goes).
WEB = ["sh", "-c", 'mkdir -p /tmp/www && echo "$REV" > /tmp/www/index.html; '
       "trap 'sleep $DRAIN; exit 0' TERM; "
       f"httpd -f -p {WEB_PORT} -h /tmp/www & wait"]


@dataclass
class Sizes:
    scale_tasks: int = 100
    launch_calls: int = 10
    launch_count: int = 10
    scale_rounds: int = 2
    kills: int = 10
    starts: int = 10  # single RunTask starts for figure 8's comparison, if figure 1 did not run
    rolling_tasks: int = 3
    rolling_rps: float = 50.0
    api_n: int = 200  # DescribeServices calls for its latency at full scale
    drains: tuple[float, ...] = (1.0, 0.0)
    settle: float = 5.0


@dataclass
class Failure:
    at: float  # epoch seconds the request was sent
    arn: str
    kind: str


@dataclass
class Load:
    """Steady GET / requests, round-robin over the tasks the last refresh called RUNNING."""

    fb: FargoBench
    cluster: str
    service: str
    rps: float
    targets: list[tuple[str, str]] = field(default_factory=list)  # (task ARN, IP)
    sent: int = 0
    ok_by_rev: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    refreshes: int = 0
    refresh_errors: int = 0
    empty_picks: int = 0  # requests due while no task was RUNNING (none sent)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, session: Any) -> None:
        arns = self.fb.call("ListTasks", {"cluster": self.cluster, "serviceName": self.service,
                                          "desiredStatus": "RUNNING"}, session)["taskArns"]
        tasks = self.fb.call("DescribeTasks", {"cluster": self.cluster, "tasks": arns},
                             session)["tasks"] if arns else []
        self.targets = [(t["taskArn"], ip) for t in tasks
                        if t["lastStatus"] == "RUNNING" and t["desiredStatus"] == "RUNNING"
                        and (ip := private_ip(t))]
        self.refreshes += 1

    def _refresher(self) -> None:
        import requests

        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    self.refresh(session)
                except Exception as err:  # noqa: BLE001 - a missed refresh keeps the old list
                    self.refresh_errors += 1
                    log(f"figure 9: refresh failed: {err}")
                self._stop.wait(REFRESH_S)

    def _one(self, arn: str, ip: str) -> None:
        conn = http.client.HTTPConnection(ip, WEB_PORT, timeout=1.0)
        sent_at = time.time()
        kind = ""
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace").strip()
            if resp.status != 200:
                kind = f"HTTP {resp.status}"
        except ConnectionRefusedError:
            kind = "connection refused"
        except TimeoutError:
            kind = "timeout"
        except (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError):
            kind = "connection reset"
        except OSError as err:
            kind = type(err).__name__ + (f" {err.errno}" if err.errno else "")
        finally:
            conn.close()
        with self._lock:
            if kind:
                self.failures.append(Failure(sent_at, arn, kind))
            else:
                self.ok_by_rev[body] += 1

    def run(self, until: threading.Event) -> None:
        """Send at `rps` until `until` is set; each request on a worker of its own, so one
        that hangs does not hold back the schedule."""
        import requests

        with requests.Session() as session:
            self.refresh(session)  # a first list before the first request is due
        refresher = threading.Thread(target=self._refresher, daemon=True)
        refresher.start()
        turn = 0
        try:
            with ThreadPoolExecutor(max_workers=16) as pool:
                t0 = time.perf_counter()
                i = 0
                while not until.is_set():
                    targets = self.targets
                    if targets:
                        arn, ip = targets[turn % len(targets)]
                        turn += 1
                        self.sent += 1
                        pool.submit(self._one, arn, ip)
                    else:
                        self.empty_picks += 1
                    i += 1
                    delay = t0 + i / self.rps - time.perf_counter()
                    if delay > 0:
                        until.wait(delay)
        finally:
            self._stop.set()
            refresher.join()


def private_ip(task: dict[str, Any]) -> str:
    for att in task.get("attachments", []):
        for d in att.get("details", []):
            if d.get("name") == "privateIPv4Address":
                return str(d["value"])
    return ""


def revision(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


class ServiceBench:
    def __init__(self, fb: FargoBench, results: Results, cleanup: Cleanup, run_id: str,
                 sizes: Sizes):
        self.fb = fb
        self.results = results
        self.sizes = sizes
        self.cluster = f"bench-{run_id}"
        self.services: list[str] = []
        fb.ecs.create_cluster(clusterName=self.cluster)
        cleanup.push("bench services and their cluster", self.teardown)

    # ------------------------------------------------------------ helpers

    def create(self, name: str, family: str, desired: int) -> None:
        self.fb.ecs.create_service(
            cluster=self.cluster, serviceName=name, taskDefinition=family,
            desiredCount=desired, launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {"subnets": [self.fb.subnet]}})
        self.services.append(name)

    def describe(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = self.fb.call("DescribeServices", {
            "cluster": self.cluster, "services": [name]})["services"][0]
        return out

    def wait_service(self, name: str, check: Callable[[dict[str, Any]], bool], t0: float,
                     timeout: float, what: str, poll: float = SERVICE_POLL_S,
                     ) -> tuple[float, dict[str, Any]]:
        """Poll DescribeServices until check(service) holds: (seconds since t0, service)."""
        deadline = time.monotonic() + timeout
        while True:
            svc = self.describe(name)
            if check(svc):
                return time.perf_counter() - t0, svc
            if time.monotonic() > deadline:
                raise TimeoutError(f"service {name}: {what} not reached in {timeout:g} s: "
                                   f"running {svc['runningCount']}, pending "
                                   f"{svc['pendingCount']}, desired {svc['desiredCount']}, "
                                   f"deployments {[(d['status'], d['rolloutState'], d['runningCount']) for d in svc['deployments']]}, "  # noqa: E501
                                   f"events {[e['message'] for e in svc['events'][:3]]}")
            time.sleep(poll)

    def task_arns(self, name: str, desired: str = "RUNNING") -> list[str]:
        arns: list[str] = []
        params: dict[str, Any] = {"cluster": self.cluster, "serviceName": name,
                                  "desiredStatus": desired, "maxResults": 100}
        while True:
            page = self.fb.call("ListTasks", params)
            arns += page["taskArns"]
            if not page.get("nextToken"):
                return arns
            params["nextToken"] = page["nextToken"]

    def tasks_since(self, name: str, since: float) -> list[dict[str, Any]]:
        """Every task of the service created at or after `since` (epoch), whatever its state."""
        arns = self.task_arns(name, "RUNNING") + self.task_arns(name, "STOPPED")
        return [t for t in self.fb.describe(arns, self.cluster) if t["createdAt"] >= since]

    def remove(self, name: str) -> None:
        """Scale to 0, wait for the tasks to stop, delete, wait for INACTIVE."""
        ecs = self.fb.ecs
        ecs.update_service(cluster=self.cluster, service=name, desiredCount=0)
        self.wait_service(name, lambda s: settled(s, 0), time.perf_counter(), 120, "0 tasks")
        ecs.delete_service(cluster=self.cluster, service=name)
        self.wait_service(name, lambda s: s["status"] == "INACTIVE", time.perf_counter(), 60,
                          "INACTIVE")
        self.services.remove(name)

    def teardown(self) -> None:
        """Whatever a failed figure left: services deleted by force, their tasks stopped."""
        import botocore.exceptions

        ecs = self.fb.ecs
        for name in list(self.services):
            try:
                ecs.delete_service(cluster=self.cluster, service=name, force=True)
            except botocore.exceptions.ClientError as err:
                log(f"deleting service {name}: {err}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            arns = [a for page in ("RUNNING", "STOPPED") for a in ecs.list_tasks(
                cluster=self.cluster, desiredStatus=page)["taskArns"]]
            left = [t for t in self.fb.describe(arns, self.cluster)
                    if t["lastStatus"] != "STOPPED"] if arns else []
            live = [s for s in ecs.describe_services(
                cluster=self.cluster, services=self.services)["services"]
                if s["status"] != "INACTIVE"] if self.services else []
            if not left and not live:
                break
            time.sleep(0.5)
        try:
            ecs.delete_cluster(cluster=self.cluster)
        except botocore.exceptions.ClientError as err:
            log(f"deleting cluster {self.cluster}: {err}")

    # ------------------------------------------------------------ figure 7

    def scale(self) -> None:
        z = self.sizes
        n = z.scale_tasks
        fb = self.fb
        name = "scale" + uuid.uuid4().hex[:4]
        self.create(name, fb.family, 0)
        self.wait_service(name, lambda s: completed(s, 0), time.perf_counter(), 30, "created")
        up: list[float] = []
        event: list[float] = []
        down: list[float] = []
        rt_up: list[float] = []
        rt_down: list[float] = []
        cpu: dict[str, list[float]] = {"service": [], "runtask": []}
        notes: list[str] = []
        latency: Row | None = None
        for r in range(z.scale_rounds):
            # ABBA order over the rounds: a drift in background load hits both alike.
            for which in (("runtask", "service") if r % 2 == 0 else ("service", "runtask")):
                time.sleep(z.settle)
                cpu0 = busy_cpu_seconds()
                if which == "runtask":
                    log(f"figure 7: {z.launch_calls} RunTask calls of {z.launch_count}")
                    elapsed, arns = fb.launch(z.launch_calls, z.launch_count, self.cluster)
                    cpu["runtask"].append(busy_cpu_seconds() - cpu0)
                    rt_up.append(elapsed)
                    rt_down.append(fb.stop_all(arns, cluster=self.cluster))
                    continue
                log(f"figure 7: service 0 → {n} by one UpdateService")
                wall0, t0 = time.time(), time.perf_counter()
                fb.ecs.update_service(cluster=self.cluster, service=name, desiredCount=n)
                # Polled as figure 2's RunTask burst is (a DescribeServices of 100 tasks costs
                # the server ~9 ms: every 50 ms, that took a fifth of the GIL from the starts).
                _, svc = self.wait_service(name, lambda s: settled(s, n), t0, 600,
                                           f"{n} running", poll=LAUNCH_POLL_S)
                cpu["service"].append(busy_cpu_seconds() - cpu0)
                state = svc["deployments"][0]["rolloutState"]
                # The scheduler's own word for it, by its stamp.
                _, svc = self.wait_service(name, functools.partial(has_steady_event, since=wall0),
                                           t0, 60, "the steady-state event")
                event.append((steady_event(svc, wall0) or 0.0) - wall0)
                started = self.tasks_since(name, wall0)
                running = [t for t in started if t["lastStatus"] == "RUNNING"]
                # Timed as the RunTask burst is: by the last startedAt.
                up.append(max((stamped(t, "startedAt", wall0) for t in running), default=0.0))
                if len(started) != n or len(running) != n:
                    notes.append(f"round {r + 1}: {len(started)} tasks started for {n} "
                                 f"wanted, {len(running)} RUNNING")
                if state != "COMPLETED":
                    notes.append(f"round {r + 1}: rolloutState {state} when ready")
                if r == z.scale_rounds - 1:
                    held = len(self.task_arns(name, "STOPPED"))
                    lat = [x * 1000 for x in fb.raw_latencies("DescribeServices", {
                        "cluster": self.cluster, "services": [name]}, z.api_n)]
                    latency = (Row(
                        "7d. DescribeServices latency", f"fargo (raw HTTP), {n} running", "ms",
                        summary=Summary.of(lat),
                        note=f"one service with {n} tasks RUNNING and {held} STOPPED ones the "
                             "store still holds; one request at a time, as figure 5"))
                t1 = time.perf_counter()
                fb.ecs.update_service(cluster=self.cluster, service=name, desiredCount=0)
                self.wait_service(name, lambda s: settled(s, 0), t1, 300, "0 running")
                fb.wait([t["taskArn"] for t in started], "STOPPED", timeout=300,
                        cluster=self.cluster)
                down.append(time.perf_counter() - t1)
        self.remove(name)

        fig = f"7. scale a service 0 → {n} tasks"
        rt = Summary.of(rt_up)
        s = Summary.of(up)
        ratio = s.p50 / rt.p50
        self.results.add(Row(
            fig, "fargo service, one UpdateService", "s", summary=s,
            target=f"≤ 1.1 × RunTask ({1.1 * rt.p50:.2f} s)", ok=ratio <= 1.1,
            note=f"to the last startedAt of its {n} tasks, as the RunTask row, once "
                 f"DescribeServices (polled every {LAUNCH_POLL_S:g} s, as figure 2) shows "
                 f"runningCount {n}, pendingCount 0 and one deployment; {len(up)} rounds; "
                 + ("; ".join(notes) if notes else
                    f"each started exactly {n} tasks, none failed, rolloutState stayed "
                    "COMPLETED (a new desired count is no new deployment)")))
        self.results.add(Row(fig, f"fargo RunTask {z.launch_calls}×{z.launch_count} "
                             "(same run)", "s", summary=rt,
                             note="until DescribeTasks shows all RUNNING"))
        self.results.add(Row(fig, "ratio service / RunTask (p50)", "×", value=ratio,
                             target="≤ 1.1×", ok=ratio <= 1.1))
        self.results.add(Row(fig, "↳ service: its steady-state event (server stamp)", "s",
                             summary=Summary.of(event),
                             note="createdAt of the \"has reached a steady state.\" event, "
                                  "from the UpdateService call"))
        for key, label in (("service", "fargo service"), ("runtask", "fargo RunTask")):
            if cpu[key]:
                self.results.add(Row("7b. machine CPU per task scaled up", label, "ms",
                                     summary=Summary.of([c * 1000 / n for c in cpu[key]])))
        self.results.add(Row(f"7c. scale {n} → 0 tasks", "fargo service, one UpdateService",
                             "s", summary=Summary.of(down),
                             note="until every task of the scale-up is STOPPED"))
        self.results.add(Row(f"7c. scale {n} → 0 tasks", f"fargo StopTask ×{n} (same run)",
                             "s", summary=Summary.of(rt_down),
                             note="one StopTask call per task, then until all are STOPPED"))
        if latency:
            self.results.add(latency)

    # ------------------------------------------------------------ figure 8

    def replace(self) -> None:
        z = self.sizes
        fb = self.fb
        name = "replace" + uuid.uuid4().hex[:4]
        self.create(name, fb.family, 1)
        # Killed while the first rollout is IN_PROGRESS, the task would count towards the
        # circuit breaker: wait for COMPLETED.
        self.wait_service(name, lambda s: completed(s, 1), time.perf_counter(), 60,
                          "the first rollout")
        samples: list[float] = []
        noticed: list[float] = []
        created: list[float] = []
        starting: list[float] = []
        codes: Counter[str] = Counter()
        extra = 0
        log(f"figure 8: {z.kills} unexpected exits of a one-task service's task")
        for _ in range(z.kills):
            time.sleep(0.5)
            before = self.task_arns(name)
            if len(before) != 1:
                raise RuntimeError(f"figure 8: {len(before)} tasks RUNNING, wanted 1")
            victim = before[0]
            pids = fb.container_pids([victim])
            if not pids:
                raise RuntimeError(f"figure 8: no container pid for {task_id(victim)}")
            wall0, t0 = time.time(), time.perf_counter()
            os.kill(pids[0], signal.SIGKILL)
            new = self._replacement(name, victim, timeout=180)
            samples.append(time.perf_counter() - t0)
            self.wait_service(name, lambda s: settled(s, 1), time.perf_counter(), 60,
                              "1 running")
            old = fb.describe([victim], self.cluster)[0]
            codes[f"{old.get('stopCode')}, exit {old['containers'][0].get('exitCode')}"] += 1
            seen = old.get("executionStoppedAt") or old.get("stoppedAt") or wall0
            noticed.append(seen - wall0)
            created.append(new["createdAt"] - wall0)
            starting.append(new["startedAt"] - new["createdAt"])
            extra += len(self.tasks_since(name, wall0)) - 1
        self.remove(name)

        start = self.results.find("1. start latency", "fargo")
        fig = "8. replacement after an unexpected exit"
        if start is None or start.summary is None:
            log(f"figure 8: {z.starts} single RunTask starts to compare with")
            starts = []
            for _ in range(z.starts):
                elapsed, arn = fb.start_one()
                starts.append(elapsed * 1000)
                fb.stop_one(arn)
            base = Summary.of(starts)
            self.results.add(Row(fig, "fargo RunTask → RUNNING (same run)", "ms", summary=base,
                                 note="one at a time, as figure 1"))
        else:
            base = start.summary
        s = Summary.of([x * 1000 for x in samples])
        ratio = s.p50 / base.p50
        slow = sum(1 for c in created if c > 1.0)
        self.results.add(Row(
            fig, "fargo service: kill → replacement RUNNING", "ms", summary=s,
            target=f"p50 ≤ 2 × start p50 ({2 * base.p50:.0f} ms)", ok=ratio <= 2,
            note=f"SIGKILL from the host to the container's init (the pid runc reports); "
                 f"the dead tasks stopped with {dict(codes)}; "
                 f"{extra} tasks started beyond one per exit"
                 + (f"; {slow} of {len(created)} replacements created more than 1 s after "
                    "the exit, the scheduler's back-off after repeated failures (model/"
                    "rollout.py), though these tasks had been RUNNING" if slow else "")
                 + "; exit → replacement created, s, in order: "
                 + ", ".join(f"{c:.2f}" for c in created)))
        self.results.add(Row(fig, "ratio to the start latency (p50)", "×", value=ratio,
                             target="≤ 2×", ok=ratio <= 2,
                             note="start latency from figure 1 of this run"
                             if start is not None else "start latency measured just after"))
        for label, values in (("↳ kill → exit noticed (executionStoppedAt)", noticed),
                              ("↳ kill → replacement created (createdAt)", created),
                              ("↳ replacement createdAt → startedAt", starting)):
            self.results.add(Row("8b. replacement phases (server stamps)", label, "ms",
                                 summary=Summary.of([x * 1000 for x in values])))

    def _replacement(self, name: str, victim: str, timeout: float) -> dict[str, Any]:
        """Poll ListTasks + DescribeTasks until a task other than victim is RUNNING."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            others = [a for a in self.task_arns(name) if a != victim]
            if others:
                for t in self.fb.describe(others, self.cluster):
                    if t["lastStatus"] == "RUNNING":
                        return t
            time.sleep(POLL_S)
        raise TimeoutError(f"figure 8: no replacement RUNNING {timeout:g} s after the exit; "
                           f"events {[e['message'] for e in self.describe(name)['events'][:4]]}")

    # ------------------------------------------------------------ figure 9

    def rolling(self) -> None:
        for drain in self.sizes.drains:
            self._rolling(drain)

    def _rolling(self, drain: float) -> None:
        z = self.sizes
        fb = self.fb
        n = z.rolling_tasks
        family = "web" + uuid.uuid4().hex[:6]
        env = {"DRAIN": f"{drain:g}"}
        fb.register(fb.image, WEB, {**env, "REV": "1"}, family=family)
        fb.register(fb.image, WEB, {**env, "REV": "2"}, family=family)
        name = "rolling" + uuid.uuid4().hex[:4]
        self.create(name, f"{family}:1", n)
        self.wait_service(name, lambda s: completed(s, n), time.perf_counter(), 60,
                          f"{n} web tasks")
        load = Load(fb, self.cluster, name, z.rolling_rps)
        done = threading.Event()
        sender = threading.Thread(target=load.run, args=(done,), daemon=True)
        log(f"figure 9: rolling deployment of {n} tasks (drain {drain:g} s) under "
            f"{z.rolling_rps:g} req/s")
        sender.start()
        try:
            time.sleep(1.0)  # requests before the deployment too
            wall0, t0 = time.time(), time.perf_counter()
            fb.ecs.update_service(cluster=self.cluster, service=name,
                                  taskDefinition=f"{family}:2")
            took, _ = self.wait_service(
                name, lambda s: completed(s, n) and s["taskDefinition"].endswith(":2"), t0, 180,
                "the deployment")
            time.sleep(1.0)  # ... and after it
        finally:
            done.set()
            sender.join()
        by_cause = self._causes(load.failures, wall0)
        new = self.tasks_since(name, wall0)
        self.remove(name)

        fig = f"9. rolling deployment, {n} tasks under requests"
        who = (f"fargo, tasks serve {drain:g} s after SIGTERM" if drain
               else "fargo, tasks exit at SIGTERM")
        failed = len(load.failures)
        revs = ", ".join(f"rev {k} {v}" for k, v in sorted(load.ok_by_rev.items()))
        self.results.add(Row(
            fig, who, f"failed of {load.sent}", value=str(failed), target="0 failed",
            ok=failed == 0,
            note=f"{load.sent} GET / at {z.rolling_rps:g}/s round-robin over the tasks that "
                 f"ListTasks/DescribeTasks (re-read every {REFRESH_S:g} s, {load.refreshes} "
                 f"times) called RUNNING and desired RUNNING; answered: {revs}; failed "
                 f"{failed}" + (f" ({'; '.join(by_cause)})" if by_cause else "")
                 + (f"; {load.empty_picks} due while no task was listed" if load.empty_picks
                    else "") + f"; {len(new)} tasks started for {n}"))
        self.results.add(Row(fig, f"↳ {who}: deployment", "s", value=took,
                             note="UpdateService to a new revision until one deployment, "
                                  f"COMPLETED, {n} running"))

    def _causes(self, failures: list[Failure], since: float) -> list[str]:
        """Why requests failed, by what the task they went to was doing at that moment."""
        if not failures:
            return []
        tasks = {t["taskArn"]: t for t in self.fb.describe(
            list({f.arn for f in failures}), self.cluster)}
        causes: Counter[str] = Counter()
        for f in failures:
            t = tasks.get(f.arn, {})
            stopping = t.get("stoppingAt")
            started = t.get("startedAt") or 0
            if stopping and f.at >= stopping:
                why = "old task already stopping, still in the client's list"
            elif f.at - started < 1.0:
                why = "new task RUNNING, not yet listening"
            else:
                why = "task RUNNING and not stopping"
            causes[f"{f.kind}: {why}"] += 1
        return [f"{v} {k}" for k, v in causes.most_common()]


def settled(svc: dict[str, Any], n: int) -> bool:
    """n running, nothing pending, one deployment: what `aws ecs wait services-stable` asks."""
    return (svc["desiredCount"] == n and svc["runningCount"] == n and svc["pendingCount"] == 0
            and len(svc["deployments"]) == 1)


def completed(svc: dict[str, Any], n: int) -> bool:
    return settled(svc, n) and svc["deployments"][0]["rolloutState"] == "COMPLETED"


def steady_event(svc: dict[str, Any], since: float) -> float | None:
    """The stamp of the newest "has reached a steady state." event at or after since."""
    for e in svc["events"]:
        if e["createdAt"] < since:
            return None
        if e["message"].endswith("has reached a steady state."):
            return float(e["createdAt"])
    return None


def has_steady_event(svc: dict[str, Any], since: float) -> bool:
    return steady_event(svc, since) is not None


def method_notes(figures: set[str], calls: int, count: int, rounds: int, kills: int,
                 rps: float) -> list[str]:
    n = calls * count
    notes = []
    if "scale" in figures:
        notes.append(
            f"Service scale-up (7): a service of the 0.25 vCPU / 0.5 GB idle task, in a cluster "
            f"of the benchmark's own, one subnet; one UpdateService(desiredCount {n}), then "
            f"DescribeServices polled every {SERVICE_POLL_S * 1000:g} ms (raw signed HTTP) until "
            f"runningCount {n}, pendingCount 0 and a single deployment: what `aws ecs wait "
            "services-stable` asks. A desired count alone makes no new deployment, so the "
            "PRIMARY's rolloutState stays COMPLETED (the row note says if it did not); the "
            "steady-state row is the createdAt stamp of the scheduler's \"has reached a steady "
            f"state.\" event. Beside it, in the same cluster and run: {calls} RunTask calls of "
            f"count {count}, DescribeTasks polled until all RUNNING. {rounds} rounds of each "
            "in ABBA order with a pause between; 7b is the machine's busy CPU over each "
            f"scale-up per task, 7c the way back to 0 (one UpdateService, or {n} StopTask "
            "calls), each until every task is STOPPED.")
    if "replace" in figures:
        notes.append(
            f"Replacement (8): a one-task service; {kills} times, SIGKILL from the host to the "
            "task's container init (the pid runc reports under the runtime's state dir), an "
            "exit the task did not ask for (stopCode EssentialContainerExited, unlike "
            "StopTask's UserInitiated); then ListTasks(serviceName) + DescribeTasks polled every "
            f"{POLL_S * 1000:g} ms until another task is RUNNING. The ratio is to the p50 of "
            "single RunTask starts of the same run (figure 1's, or ten taken just after). 8b "
            "splits each sample by the server's stamps.")
    if "rolling" in figures:
        notes.append(
            f"Rolling deployment (9): a 3-task service of busybox `httpd -f -p {WEB_PORT}` "
            "serving its revision, updated to a new revision (minimumHealthyPercent 100, "
            f"maximumPercent 200, the defaults). A client sends GET / at {rps:g}/s from 1 s "
            "before the UpdateService to 1 s after the deployment COMPLETED, round-robin "
            "over the private IPs of the tasks ListTasks(serviceName, desiredStatus RUNNING) "
            f"and DescribeTasks (lastStatus RUNNING) give, re-read every {REFRESH_S:g} s: "
            "there is no load balancer yet. Each request is a new connection with a 1 s "
            "timeout. Measured twice: with a task that keeps serving 1 s after SIGTERM before "
            "it exits (as an app behind a load balancer drains), and with one that exits at "
            "SIGTERM. A failure is put down to what its task was doing when it was sent.")
    return notes
