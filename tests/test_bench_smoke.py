"""The benchmark still runs: a --quick, fargo-only pass that exercises every figure's code path
and leaves nothing behind. It checks that the table is there, not what the numbers are."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.holderpaths import pinned_names

FIGURES = [
    "| 1. start latency | fargo |",
    "| 1b. fargo start phases |",
    "| 2. launch rate | fargo |",
    "| 3. stop latency | fargo |",
    "| 4. host memory per idle task beyond the workload | fargo |",
    "| 4. server RSS | fargo |",
    "| 4. processes per task | fargo |",
    "| 4c. metrics sampling, 200 tasks at the default 60 s interval | fargo |",
    "| 5. DescribeTasks(",
    "| 5. ListTasks latency | fargo (raw HTTP) |",
    "| 5. ListTasks throughput |",
    "| 6. cold pull",
    "| 7. scale a service 0 → 6 tasks | fargo service, one UpdateService |",
    "| 7. scale a service 0 → 6 tasks | fargo RunTask 2×3 (same run) |",
    "| 7c. scale 6 → 0 tasks |",
    "| 7d. DescribeServices latency |",
    "| 8. replacement after an unexpected exit | fargo service: kill → replacement RUNNING |",
    "| 8b. replacement phases (server stamps) |",
    "| 9. rolling deployment, 3 tasks under requests | fargo, tasks serve 1 s after SIGTERM |",
    "| 9. rolling deployment, 3 tasks under requests | fargo, tasks exit at SIGTERM |",
    "| 11. awslogs, a task writing lines | fargo: lines lost |",
    "| 11b. awslogs, write → GetLogEvents | fargo |",
    "| 11c. FilterLogEvents 'ERROR' over",
    "| 12. Deployment of 4 replicas: kubectl apply → rollout status | fargo Deployment |",
    "| 12. Deployment of 4 replicas: kubectl apply → rollout status | ratio Deployment / bare",
    "| 12b. rolling update of 4 replicas (maxSurge 1, maxUnavailable 1) | fargo: replicas "
    "unavailable beyond maxUnavailable |",
    "| 13b. HTTP GET from a pod, one request at a time (connect included) | straight to the "
    "pod IP |",
    "| 13b. HTTP GET from a pod, one request at a time (connect included) | through the "
    "ClusterIP |",
    "| 13c. DNS A queries, 8 in flight | host → fargo's resolver on 127.0.0.1:",
    "| 14. start latency, one at a time | bare runsc run (",
    "| 14. start latency, one at a time | fargo gVisor tier (1.4.0-gvisor) |",
    "| 14. start latency, one at a time | p50 gVisor tier / bare runsc |",
    "| 14b. launch rate, a burst of 3 | fargo gvisor tier |",
    "| 14c. memory per idle task (2 idle) | fargo gVisor task |",
    "| 14c. memory per idle task (2 idle) | bare runsc sandbox |",
    "| 14d. a syscall-heavy workload, per operation | dd bs=1: one read + one write, gVisor / runc |",
    "| 15. start latency, one at a time | fargo, empty host |",
    "| 15. start latency, one at a time | fargo, 6 idle tasks running |",
    "| 15. start latency, one at a time | p50 crowded / empty |",
    "| 15b. launch rate, 2×3 | empty / crowded |",
    "| 15c. 10 idle tasks running | fargo server RSS |",
    "| 15c. 10 idle tasks running | DescribeTasks(10), 10 tasks running (raw HTTP) |",
]
# Figure 10 needs wrk (scripts/bench.sh installs it; scripts/setup.sh does not).
ALB_FIGURES = [
    "| 10. HTTP GET throughput, 8 connections | fargo ALB → 3 tasks |",
    "| 10. HTTP GET throughput, 8 connections | HAProxy by hand, same config → 3 tasks |",
    "| 10. HTTP GET throughput, 8 connections | straight to one task |",
    "| 10b. latency at 8 connections |",
    "| 10c. latency, one connection | added p50, fargo ALB − direct |",
    "| 10d. rolling deployment of 3 tasks behind the ALB, under wrk | fargo ALB, failed",
    "| 13. HTTP GET from a pod, 8 connections | straight to the pod IP |",
    "| 13d. rolling update of 3 replicas behind a Service and an ALB Ingress, under wrk | "
    "ClusterIP (from the client pod), failed requests |",
]


@pytest.mark.skipif(os.geteuid() != 0, reason="the benchmark needs root")
def test_quick_bench_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--no-peers", "--out",
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=720)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = out.read_text()
    wrk = shutil.which("wrk") is not None
    for figure in FIGURES + (ALB_FIGURES if wrk else []):
        assert figure in proc.stdout, figure
        assert figure in report, figure
    assert "--overcommit" in report
    # No Python process per task, and a conmon for each.
    assert re.search(r"\| 4\. processes per task \| fargo \|.*conmon 1.*python 0.*✓ \|", report)
    # The service figures' own checks: exactly the tasks asked for, each exit replaced once.
    assert "each started exactly 6 tasks" in report, report[-4000:]
    assert "0 tasks started beyond one per exit" in report
    assert re.search(r"tasks serve 1 s after SIGTERM \| 1 \|  \| \d+ \|", report)
    if wrk:  # the hand-run HAProxy had fargo's servers, and each balancer used all three
        assert "3 server lines as fargo wrote them" in report
        assert re.search(r"fargo ALB → 3 tasks\*\*: .*sessions per server [1-9]\d* / "
                         r"[1-9]\d* / [1-9]\d*", report), report[-4000:]
    else:
        assert "wrk is not installed" in report
    # Everything it made is gone: workdir, netns, runc root, load balancers.
    workdir = re.search(r"workdir (\S+),", proc.stderr)
    prefix = re.search(r"prefix (\w+),", proc.stderr)
    assert workdir and prefix, proc.stderr[-2000:]
    assert not Path(workdir.group(1)).exists()
    assert not Path(f"/run/{prefix.group(1)}-runc").exists()
    assert not Path(f"/run/{prefix.group(1)}-lb").exists()  # the load balancer's files
    assert not [n for n in pinned_names() if n.startswith(f"{prefix.group(1)}-")]


REPORT = """# fargo benchmarks

## Machine and settings

- fargo at abc
- figure 9 from a separate run (`x`) on 2020-01-01: old

## Results

| figure | system | n | min | p50 | p99 | max | unit | target | met |
|---|---|---|---|---|---|---|---|---|---|
| 1. start latency | fargo | 1 |  | 77.0 |  |  | ms |  |  |
| 9. rolling deployment | fargo | 1 |  | 3 |  |  | failed of 300 | 0 failed | ✗ |
| 11. later | fargo | 1 |  | 5.00 |  |  | s |  |  |

### Row notes

- **1. start latency / fargo**: one
- **9. rolling deployment / fargo**: old nine

## Method

- fargo start: one
- Rolling deployment (9): old nine
- This is a 2-core machine shared with whatever else runs.
"""


@pytest.mark.pure
def test_merge_replaces_only_the_figures_measured() -> None:
    from bench.report import markdown, merge
    from bench.stats import Results, Row

    results = Results(notes=["fargo start: not this run's", "Rolling deployment (9): new nine",
                             "Load balancer (10): ten", "This is a 2-core machine shared."])
    results.add(Row("9. rolling deployment", "fargo", "failed of 400", value="0", ok=True,
                    note="new nine"))
    results.add(Row("10. HTTP GET throughput", "fargo ALB", "req/s", value=3000.0))
    line = "- figures 9, 10 from a separate run (`y`) on 2020-02-02: new"
    out = merge(REPORT, markdown(results, ["- fargo at def"], None), line)
    lines = out.splitlines()
    rows = [x for x in lines if x.startswith("| ") and not x.startswith("| figure")]
    assert [r.split(" | ")[0] for r in rows] == ["| 1. start latency", "| 9. rolling deployment",
                                                 "| 10. HTTP GET throughput", "| 11. later"]
    assert "| 9. rolling deployment | fargo | 1 |  | 0 |" in out and "failed of 300" not in out
    assert "|---|---|" in out
    assert "- **1. start latency / fargo**: one" in lines
    assert "- **9. rolling deployment / fargo**: new nine" in lines and "old nine" not in out
    method = lines[lines.index("## Method") + 2:]
    assert method[:4] == ["- fargo start: one", "- Rolling deployment (9): new nine",
                          "- Load balancer (10): ten",
                          "- This is a 2-core machine shared with whatever else runs."]
    assert line in lines and "- fargo at def" not in lines  # the other run's header stays out
    assert "2020-01-01" not in out and "- fargo at abc" in lines
