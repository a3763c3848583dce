"""Figure 15 `crowd`: does a start cost more on a full host?

15. start latency (RunTask → RUNNING, one at a time; 15a: the stop that follows each) on an
    empty host, then with `idle` idle tasks already running: p50 crowded / empty.
15b. launch rate (calls RunTask calls of count, to all RUNNING) on the empty host and with the
    idle tasks running: rate empty / crowded.
15c. with `most` idle tasks running: the server's RSS, and DescribeTasks(100) over raw HTTP
    beside the same call with only 100 tasks running.

Every figure is fargo against itself in the same run: the targets are about staying flat.
With peers, bare runc's single starts are taken beside fargo's, on the empty host and among
fargo's idle tasks: the share of the crowd's cost that any runc start on that host pays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .env import log, proc_status_kib
from .fargo_side import FargoBench
from .peers import Runc
from .stats import Results, Row, Summary


@dataclass(frozen=True)
class Described:
    """DescribeTasks of `n` tasks while `running` run."""

    n: int
    running: int
    summary: Summary

    @property
    def label(self) -> str:
        return f"DescribeTasks({self.n}), {self.running} tasks running (raw HTTP)"


@dataclass(frozen=True)
class CrowdSizes:
    idle: int = 500
    most: int = 1000
    starts: int = 40  # 20 left the p50 ratio ±0.15 from run to run
    launch_calls: int = 10
    launch_count: int = 10
    launch_rounds: int = 3  # each host's rate is the median of these
    describe_n: int = 200
    settle: float = 5.0  # seconds the host rests after a batch before a figure is taken


def method_notes(z: CrowdSizes) -> list[str]:
    return [f"Crowd (15): {z.starts} single starts and {z.launch_rounds} launches of "
            f"{z.launch_calls}×{z.launch_count} (the rate is their median), first on an empty "
            f"host and then with {z.idle} idle tasks running (each start stopped before the "
            f"next; each launch's tasks stopped after it); then {z.most} idle tasks for the "
            f"server's RSS and DescribeTasks(100) "
            f"({z.describe_n} raw HTTP calls, beside the same with 100 tasks running). The "
            f"host rests {z.settle:g} s after each batch. With peers, a bare runc start "
            f"(as figure 1's) follows each of fargo's single starts, on the empty host and "
            f"beside the idle tasks: what the crowd costs any runc start on this host."]


class CrowdBench:
    def __init__(self, fb: FargoBench, results: Results, server_pid: int, sizes: CrowdSizes,
                 peer: Runc | None = None):
        self.fb = fb
        self.peer = peer  # bare runc, when peers are measured
        self.results = results
        self.server_pid = server_pid
        self.z = sizes
        self.idle: list[str] = []

    def run(self) -> None:
        z = self.z
        try:
            empty_start, empty_stop, empty_peer = self._starts("empty host")
            empty_rate, few = self._launch("empty host", describe=True)
            self._grow(z.idle)
            crowded_start, crowded_stop, crowded_peer = self._starts(
                f"{len(self.idle)} idle tasks running")
            crowded_rate, _ = self._launch(f"{len(self.idle)} idle tasks running")
            self._grow(z.most)
            rss_mb = proc_status_kib(self.server_pid) * 1024 / 1e6
            most = self._describe()
        finally:
            self._remove()
        self._report(empty_start, crowded_start, empty_rate, crowded_rate, few, most, rss_mb)
        if empty_peer and crowded_peer:
            fig = "15. start latency, one at a time"
            self.results.add(Row(fig, "bare runc, empty host", "ms", summary=empty_peer))
            self.results.add(Row(fig, f"bare runc, beside {self.z.idle} idle fargo tasks", "ms",
                                 summary=crowded_peer))
            self.results.add(Row(fig, "runc p50 crowded / empty", "×",
                                 value=crowded_peer.p50 / empty_peer.p50))
        fig = "15a. stop latency, one at a time"
        self.results.add(Row(fig, "fargo, empty host", "ms", summary=empty_stop))
        self.results.add(Row(fig, f"fargo, {self.z.idle} idle tasks running", "ms",
                             summary=crowded_stop))

    # ---- measuring

    def _starts(self, label: str) -> tuple[Summary, Summary, Summary | None]:
        """Single starts, each stopped before the next: (starts, stops, the peer's starts)
        in ms; the peer's come between fargo's."""
        log(f"figure 15: {self.z.starts} single starts, {label}")
        starts, stops, peer = [], [], []
        for _ in range(self.z.starts):
            elapsed, arn = self.fb.start_one()
            starts.append(elapsed * 1000)
            stops.append(self.fb.stop_one(arn) * 1000)
            if self.peer:
                elapsed, cid = self.peer.start()
                peer.append(elapsed * 1000)
                self.peer.remove([cid])
        return Summary.of(starts), Summary.of(stops), Summary.of(peer) if peer else None

    def _launch(self, label: str, describe: bool = False) -> tuple[float, Described | None]:
        """The median rate of launch_rounds launches (tasks/s); DescribeTasks(100) among the
        first round's tasks, if asked."""
        z = self.z
        rates: list[float] = []
        described = None
        for r in range(z.launch_rounds):
            time.sleep(z.settle)
            log(f"figure 15b: launch {z.launch_calls}×{z.launch_count}, {label} "
                f"(round {r + 1} of {z.launch_rounds})")
            elapsed, arns = self.fb.launch(z.launch_calls, z.launch_count)
            rates.append(len(arns) / elapsed)
            try:
                if describe and described is None:
                    described = self._describe(arns)
            finally:
                self.fb.stop_all(arns, timeout=600)
        time.sleep(z.settle)
        log(f"figure 15b: {label}: " + ", ".join(f"{r:.1f}" for r in rates) + " tasks/s")
        return sorted(rates)[len(rates) // 2], described

    def _describe(self, arns: list[str] | None = None) -> Described:
        running = len(arns or self.idle)
        arns = (arns or self.idle)[:100]
        raw = self.fb.raw_latencies("DescribeTasks", {"tasks": arns}, self.z.describe_n)
        return Described(len(arns), running, Summary.of([x * 1000 for x in raw]))

    def _grow(self, total: int) -> None:
        z = self.z
        more = total - len(self.idle)
        log(f"figure 15: {more} more idle tasks, to {total}")
        while more > 0:
            count = min(z.launch_count, more)
            self.idle += self.fb.launch(1, count)[1]
            more -= count
        time.sleep(z.settle)

    def _remove(self) -> None:
        if self.idle:
            t0 = time.perf_counter()
            self.fb.stop_all(self.idle, timeout=900)
            log(f"figure 15: stopped {len(self.idle)} idle tasks in "
                f"{time.perf_counter() - t0:.1f} s")
            self.idle = []

    # ---- the rows

    def _report(self, empty: Summary, crowded: Summary, empty_rate: float,
                crowded_rate: float, few: Described | None, most: Described,
                rss_mb: float) -> None:
        z, add = self.z, self.results.add
        fig = "15. start latency, one at a time"
        add(Row(fig, "fargo, empty host", "ms", summary=empty))
        add(Row(fig, f"fargo, {z.idle} idle tasks running", "ms", summary=crowded))
        ratio = crowded.p50 / empty.p50
        add(Row(fig, "p50 crowded / empty", "×", value=ratio, target="≤ 1.2×",
                ok=ratio <= 1.2))
        fig = f"15b. launch rate, {z.launch_calls}×{z.launch_count}"
        add(Row(fig, "fargo, empty host", "tasks/s", value=empty_rate))
        add(Row(fig, f"fargo, {z.idle} idle tasks running", "tasks/s", value=crowded_rate))
        slower = empty_rate / crowded_rate
        add(Row(fig, "empty / crowded", "×", value=slower, target="≤ 1.2×", ok=slower <= 1.2))
        fig = f"15c. {z.most} idle tasks running"
        add(Row(fig, "fargo server RSS", "MB", value=rss_mb, target="≤ 200 MB",
                ok=rss_mb <= 200))
        if few is not None:
            add(Row(fig, few.label, "ms", summary=few.summary))
        limit = 1.2 * few.summary.p50 if few else None
        add(Row(fig, most.label, "ms", summary=most.summary,
                target=f"p50 ≤ 1.2 × with {few.running} ({limit:.2f} ms)" if few and limit
                else "", ok=most.summary.p50 <= limit if limit else None))
