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

FIGURES = [
    "| 1. start latency | fargo |",
    "| 1b. fargo start phases |",
    "| 2. launch rate | fargo |",
    "| 3. stop latency | fargo |",
    "| 4. host memory per idle task beyond the workload | fargo |",
    "| 4. server RSS | fargo |",
    "| 4. processes per task | fargo |",
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
]
# Figure 10 needs wrk (scripts/bench.sh installs it; scripts/setup.sh does not).
ALB_FIGURES = [
    "| 10. HTTP GET throughput, 8 connections | fargo ALB → 3 tasks |",
    "| 10. HTTP GET throughput, 8 connections | HAProxy by hand, same config → 3 tasks |",
    "| 10. HTTP GET throughput, 8 connections | straight to one task |",
    "| 10b. latency at 8 connections |",
    "| 10c. latency, one connection | added p50, fargo ALB − direct |",
    "| 10d. rolling deployment of 3 tasks behind the ALB, under wrk | fargo ALB, failed",
]


@pytest.mark.skipif(os.geteuid() != 0, reason="the benchmark needs root")
def test_quick_bench_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--no-peers", "--out",
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=360)
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
        assert re.search(r"fargo ALB → 3 tasks\*\*: .*sessions per server: [1-9]\d* / "
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
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{prefix.group(1)}-" not in netns
