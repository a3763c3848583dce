"""Figure 11 `logs`: CloudWatch Logs behind the awslogs driver, driven as a user drives it.

11  a task writes RATE lines per second for SECONDS (busybox `seq` in bursts every 100 ms) to
    stdout with the awslogs driver; once it has stopped, every event of its stream is read
    back with GetLogEvents: lines lost and doubled, and the fargo server's CPU time per 1,000
    lines from RunTask until the last line is in the store (its /proc stat: the shipper, the
    store and the task's start and stop; conmon's own work is not in it).
11b the same task again while a reader follows the stream with GetLogEvents' forward token:
    for every event, when the reader first saw it minus the event's own timestamp (the time
    conmon read the line from the container's pipe).
11c FilterLogEvents with a one-term pattern over a group of EVENTS events put by PutLogEvents
    (about 1 % match), paged to the end, beside `grep` of the same lines in a file."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .env import Cleanup, log
from .fargo_side import FargoBench
from .stats import Results, Row, Summary

EXEC_ROLE = "arn:aws:iam::000000000000:role/ecsTaskExecutionRole"
BURSTS_PER_S = 10
PUT_BATCH = 10_000  # events per PutLogEvents: AWS's limit


@dataclass
class LogSizes:
    rate: int = 50_000
    seconds: int = 10
    filter_events: int = 1_000_000


def writer(rate: int, seconds: int) -> list[str]:
    """Numbers 0 .. rate*seconds-1, one per line, a burst of rate/10 every 100 ms."""
    burst = max(1, rate // BURSTS_PER_S)
    bursts = seconds * BURSTS_PER_S
    return ["sh", "-c", f"i=0; while [ $i -lt {bursts} ]; do "
            f"seq $((i*{burst})) $((i*{burst}+{burst - 1})); i=$((i+1)); usleep 100000; done"]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, its reaped children included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])
    return ticks / 100.0


class LogsBench:
    def __init__(self, fb: FargoBench, results: Results, cleanup: Cleanup, run_id: str,
                 sizes: LogSizes, tmp: Path):
        self.fb = fb
        self.results = results
        self.cleanup = cleanup
        self.sizes = sizes
        self.tmp = tmp
        self.logs = fb.server.client("logs")
        self.group = f"/bench/logs-{run_id}"
        self.cleanup.push("log groups", self._delete_groups)
        self.groups: list[str] = []

    def _delete_groups(self) -> None:
        for g in self.groups:
            try:
                self.logs.delete_log_group(logGroupName=g)
            except Exception as err:  # noqa: BLE001 - cleanup goes on
                log(f"figure 11: deleting {g}: {err}")

    def run(self) -> None:
        self.ingest(follow=False)
        self.ingest(follow=True)
        self.filter()

    # ------------------------------------------------------------ 11 and 11b

    def _family(self, group: str) -> str:
        family = "benchlogs" + uuid.uuid4().hex[:6]
        s = self.sizes
        self.fb.ecs.register_task_definition(
            family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
            cpu="1024", memory="2048", executionRoleArn=EXEC_ROLE,
            containerDefinitions=[{
                "name": "app", "image": self.fb.image, "command": writer(s.rate, s.seconds),
                "logConfiguration": {"logDriver": "awslogs", "options": {
                    "awslogs-group": group, "awslogs-region": "us-east-1",
                    "awslogs-stream-prefix": "bench", "awslogs-create-group": "true"}}}])
        return family

    def ingest(self, follow: bool) -> None:
        s = self.sizes
        n = s.rate * s.seconds
        group = f"{self.group}-{'follow' if follow else 'ingest'}"
        self.groups.append(group)
        family = self._family(group)
        pid = self.fb.server.pid
        cpu0 = cpu_seconds(pid)
        t0 = time.monotonic()
        arn = self.fb.run(family=family)[0]
        tid = arn.rsplit("/", 1)[-1]
        stream = f"bench/app/{tid}"
        seen: list[tuple[int, str]] = []
        delays: list[float] = []
        stop = threading.Event()
        reader = None
        if follow:
            reader = threading.Thread(target=self._follow, args=(group, stream, delays, stop),
                                      daemon=True)
            reader.start()
        self.fb.wait([arn], "STOPPED", timeout=s.seconds * 6 + 60)
        # The task has stopped; its last lines may still be on their way to the store. The
        # server's CPU is read once the last line is in, before everything is read back.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self._last(group, stream) != str(n - 1):
            time.sleep(0.05)
        shipped_at = time.monotonic()
        cpu = cpu_seconds(pid) - cpu0
        stop.set()
        seen = self._read_all(group, stream)
        if reader:
            reader.join(timeout=30)
        messages = [m for _, m in seen]
        distinct = set(messages)
        expected = {str(i) for i in range(n)}
        lost = len(expected - distinct)
        doubled = len(messages) - len(distinct)
        stamps = [t for t, _ in seen]
        span = (max(stamps) - min(stamps)) / 1000 if stamps else 0.0
        rate = len(seen) / span if span > 0 else 0.0
        if not follow:
            self.results.add(Row("11. awslogs, a task writing lines", "fargo: lines lost",
                                 f"of {n:,}", value=lost, target="0", ok=lost == 0,
                                 note=f"doubled {doubled}; written at {rate:,.0f} lines/s "
                                      f"(first to last event stamp)"))
            self.results.add(Row("11. awslogs, a task writing lines",
                                 "fargo server CPU per 1,000 lines", "ms",
                                 value=cpu * 1000 / max(1, n) * 1000,
                                 note=f"{cpu:.2f} s over {shipped_at - t0:.1f} s, from RunTask "
                                      "until the last line is in the store (the task's start "
                                      "and stop are in it)"))
        else:
            self.results.add(Row("11b. awslogs, write → GetLogEvents", "fargo",
                                 "s", summary=Summary.of(delays) if delays else None,
                                 value=None if delays else "no events seen",
                                 target="p50 ≤ 1 s",
                                 ok=bool(delays) and Summary.of(delays).p50 <= 1.0,
                                 note=f"{len(delays):,} events followed; lost {lost}, "
                                      f"doubled {doubled}"))

    def _last(self, group: str, stream: str) -> str | None:
        try:
            page = self.logs.get_log_events(logGroupName=group, logStreamName=stream,
                                            startFromHead=False, limit=1)
        except self.logs.exceptions.ResourceNotFoundException:
            return None
        return page["events"][-1]["message"].rstrip("\n") if page["events"] else None

    def _read_all(self, group: str, stream: str) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream,
                                  "startFromHead": True, "limit": 10_000}
        try:
            while True:
                page = self.logs.get_log_events(**kwargs)
                out += [(e["timestamp"], e["message"].rstrip("\n")) for e in page["events"]]
                token = page["nextForwardToken"]
                if token == kwargs.get("nextToken") or not page["events"]:
                    return out
                kwargs["nextToken"] = token
        except self.logs.exceptions.ResourceNotFoundException:
            return out

    def _follow(self, group: str, stream: str, delays: list[float],
                stop: threading.Event) -> None:
        logs = self.fb.server.client("logs")
        kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream,
                                  "startFromHead": True, "limit": 10_000}
        while not stop.is_set():
            try:
                page = logs.get_log_events(**kwargs)
            except logs.exceptions.ResourceNotFoundException:  # not made yet
                time.sleep(0.05)
                continue
            now = time.time() * 1000
            delays += [(now - e["timestamp"]) / 1000 for e in page["events"]]
            kwargs["nextToken"] = page["nextForwardToken"]
            if not page["events"]:
                time.sleep(0.05)

    # ------------------------------------------------------------ 11c

    def filter(self) -> None:
        n = self.sizes.filter_events
        group = f"{self.group}-filter"
        self.groups.append(group)
        self.logs.create_log_group(logGroupName=group)
        self.logs.create_log_stream(logGroupName=group, logStreamName="s")
        path = self.tmp / "filter-lines.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        base = int(time.time() * 1000) - 3_600_000
        t0 = time.monotonic()
        with path.open("w") as f:
            for start in range(0, n, PUT_BATCH):
                lines = [line_of(i) for i in range(start, min(n, start + PUT_BATCH))]
                f.write("\n".join(lines) + "\n")
                events = [{"timestamp": base + (start + k) // 300, "message": m}
                          for k, m in enumerate(lines)]
                self.logs.put_log_events(logGroupName=group, logStreamName="s",
                                         logEvents=events)
        put_s = time.monotonic() - t0
        t0 = time.monotonic()
        matched = 0
        kwargs: dict[str, Any] = {"logGroupName": group, "filterPattern": "ERROR",
                                  "limit": 10_000}
        while True:
            page = self.logs.filter_log_events(**kwargs)
            matched += len(page["events"])
            if "nextToken" not in page:
                break
            kwargs["nextToken"] = page["nextToken"]
        filter_s = time.monotonic() - t0
        grep_s, grep_n = self._grep(path)
        expected = sum(1 for i in range(n) if i % 100 == 7)
        self.results.add(Row(f"11c. FilterLogEvents 'ERROR' over {n:,} events",
                             "fargo (boto3, paged)", "s", value=filter_s,
                             ok=matched == expected,
                             target=f"{expected:,} matches",
                             note=f"{matched:,} matched; {filter_s / grep_s:.0f}× grep; the "
                                  f"events went in by {n // PUT_BATCH} PutLogEvents in "
                                  f"{put_s:.1f} s ({n / put_s:,.0f} events/s)"))
        self.results.add(Row(f"11c. FilterLogEvents 'ERROR' over {n:,} events",
                             "grep ERROR over the same lines in a file", "s", value=grep_s,
                             note=f"{grep_n:,} matched"))

    @staticmethod
    def _grep(path: Path) -> tuple[float, int]:
        grep = shutil.which("grep") or "grep"
        t0 = time.monotonic()
        proc = subprocess.run([grep, "-F", "ERROR", str(path)], capture_output=True)
        elapsed = time.monotonic() - t0
        return elapsed, proc.stdout.count(b"\n")


def line_of(i: int) -> str:
    level = "ERROR" if i % 100 == 7 else "INFO"
    return (f"{level} request {i} GET /api/items/{i % 977} status="
            f"{500 if level == 'ERROR' else 200} latency_ms={i % 250}")


def method_notes(sizes: LogSizes) -> list[str]:
    return [
        f"Figure 11: a busybox task (1 vCPU, 2 GB) runs `seq` bursts of {sizes.rate // 10:,} "
        f"lines every 100 ms for {sizes.seconds} s with the awslogs driver "
        "(awslogs-create-group true); lines are read back with GetLogEvents (boto3, 10,000 a "
        "page). 11b follows the stream while the task writes: delay = when the reader got an "
        "event − its timestamp (conmon's stamp at reading the pipe). 11c: "
        f"{sizes.filter_events:,} events put by PutLogEvents (10,000 a call) into one stream, "
        "1 % with the term ERROR; FilterLogEvents paged to the end beside `grep -F` of the "
        "same lines written to a file (the page cache warm).",
    ]
