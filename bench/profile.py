"""`python -m bench.profile SCENARIO`: where fargo's server spends a figure's time, by py-spy.

Sets up like the benchmark (registry, image, server; no peers), records the server with
`py-spy record --threads` while one scenario runs, and prints the functions with the most
inclusive time. Scenarios:
  start     N tasks started one at a time (wall-clock: --idle, so waits on runc count)
  stop      N running tasks stopped one at a time (wall-clock)
  launch    10 RunTask calls of count 10 (CPU)
  scale     one UpdateService taking a service from 0 to 100 tasks (CPU; figure 7)
  describe  DescribeTasks(100) from 8 concurrent clients (CPU)
  idle      nothing for --seconds (CPU): what running tasks cost the server with no requests
With --crowd N, N idle tasks are running first (figure 15's crowded host).
With --machine, the whole machine's CPU is sampled instead (`perf record -a`) and summed by
command: where figure 2b's CPU per started task goes beyond the server (runc, conmon, the
registry, kernel threads).
Needs py-spy (`pip install py-spy`), or perf for --machine."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from .env import Cleanup, log, term_as_interrupt
from .run import Bench, Options, needed_overcommit

IDLE_SCENARIOS = {"start", "stop"}
PERF_HZ = 999


def _idle(frames: list[str]) -> bool:
    """The event loop waiting for events, or a pool worker waiting for work."""
    leaf = frames[-1]
    if leaf.startswith(("EpollSelector.select", "select (selectors")):
        return not any("_WorkItem.run" in f or "_run_in_thread" in f for f in frames)
    return any(f.startswith("_worker (") for f in frames) and not any(
        f.startswith("_WorkItem.run") for f in frames)


def summarize(raw: Path, rate: int, wall: float, top: int, idle_mode: bool, per: int) -> str:
    """Inclusive and self time per function over all threads, from py-spy's raw output, in
    ms per task (per > 0) or seconds."""
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        count = int(count_text)
        if idle_mode and _idle(frames):
            continue
        threads[re.sub(r"\(\d+\)", "", frames[0]).strip()] += count
        for f in set(frames[1:]):
            inclusive[_short(f)] += count
        self_time[_short(frames[-1])] += count
    scale, unit = (1000 / rate / per, "ms/task") if per else (1 / rate, "s")
    lines = [f"wall time of the scenario: {wall:.2f} s; samples at {rate}/s, "
             + ("wall clock (waits included, idle waits left out)" if idle_mode else "CPU"),
             "busy threads (s): " + ", ".join(f"{t} {c / rate:.2f}"
                                              for t, c in threads.most_common(8)),
             "", f"{'inclusive':>10} {'self':>8}  ({unit}) function"]
    for name, count in inclusive.most_common(top):
        lines.append(f"{count * scale:10.2f} {self_time[name] * scale:8.2f}  {name}")
    return "\n".join(lines)


def by_command(data: Path, wall: float, per: int, names: dict[int, str]) -> str:
    """CPU per command from `perf record -a` samples of the cpu-clock at PERF_HZ; the
    processes in names (pid: name) are told apart from others of their command."""
    out = subprocess.run(["perf", "script", "-i", str(data), "-F", "comm,pid"],
                         capture_output=True, text=True, check=True).stdout
    counts: Counter[str] = Counter()
    for line in out.splitlines():
        comm, _, pid = line.strip().rpartition(" ")
        if comm:
            counts[names.get(int(pid), comm.strip())] += 1
    idle = counts.pop("swapper", 0)
    busy = sum(counts.values())
    scale = 1000.0 / PERF_HZ / max(per, 1)
    lines = [f"wall time of the scenario: {wall:.2f} s; machine CPU busy "
             f"{busy / PERF_HZ:.2f} s, idle {idle / PERF_HZ:.2f} s",
             f"{'ms/task':>9}  command"]
    lines += [f"{n * scale:9.2f}  {comm}" for comm, n in counts.most_common(40)]
    lines.append(f"{busy * scale:9.2f}  (all)")
    return "\n".join(lines)


def switches(pid: int) -> dict[int, int]:
    """Context switches so far of each of pid's threads, by thread id."""
    out: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = dict(line.split(":\t") for line in (task / "status").read_text().splitlines()
                          if "ctxt_switches" in line)
        except OSError:
            continue  # the thread ended
        out[int(task.name)] = sum(int(v) for v in fields.values())
    return out


def thread_names(pid: int) -> dict[int, str]:
    """Python's names of pid's threads, by thread id (from `py-spy dump`)."""
    out = subprocess.run(["py-spy", "dump", "--pid", str(pid), "--nonblocking"],
                         capture_output=True, text=True).stdout
    return {int(m[1]): m[2] for m in re.finditer(r'^Thread (\d+) \(\w+\): "([^"]*)"', out, re.M)}


def _short(frame: str) -> str:
    """'fn (/long/path/fargo/agent/x.py:12)' -> 'fn (fargo/agent/x.py:12)'."""
    return re.sub(r"\((?:[^()]*/)?((?:fargo|site-packages|python3\.\d+)/)?([^()]*)\)",
                  lambda m: f"({(m.group(1) or '')}{m.group(2)})", frame)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=["start", "stop", "launch", "scale", "describe", "idle"])
    p.add_argument("-n", type=int, default=30, help="tasks for start/stop [30]")
    p.add_argument("--seconds", type=float, default=10, help="describe and idle: seconds [10]")
    p.add_argument("--rate", type=int, default=500, help="py-spy samples per second [500]")
    p.add_argument("--top", type=int, default=45, help="functions to print [45]")
    p.add_argument("--raw", type=Path, help="keep py-spy's raw stacks (perf's data with --machine) here")
    p.add_argument("--crowd", type=int, default=0,
                   help="idle tasks running before the scenario (figure 15's host) [0]")
    p.add_argument("--gil", action="store_true",
                   help="only samples holding the GIL: Python's own CPU, without the waits")
    p.add_argument("--machine", action="store_true",
                   help="sample every CPU with perf and sum by command, not the server's stacks")
    a = p.parse_args(argv)
    tool = "perf" if a.machine else "py-spy"
    if not shutil.which(tool):
        print(f"bench.profile: needs {tool}", file=sys.stderr)
        return 2
    term_as_interrupt()
    cleanup = Cleanup()
    opts = Options(peers=False, plot=False)
    if a.crowd:  # room for the crowd beside the scenario's tasks, as figure 15 makes
        opts.overcommit = needed_overcommit(Options(figures={"crowd"}, crowd_idle=a.crowd,
                                                    crowd_most=a.crowd))
    bench = Bench(opts, cleanup)
    try:
        bench.setup()
        assert bench.fb is not None and bench.server is not None
        fb = bench.fb
        raw = a.raw or bench.tmp / "pyspy.txt"
        running: list[str] = []
        crowd = [arn for done in range(0, a.crowd, 10)
                 for arn in fb.launch(1, min(10, a.crowd - done))[1]]
        if crowd:
            log(f"{len(crowd)} idle tasks running")
            time.sleep(5.0)  # the host rests, as figure 15's does
        scaled = ""
        if a.scenario == "scale":
            from .services import ServiceBench, Sizes, completed, settled

            sb = ServiceBench(fb, bench.results, cleanup, bench.run_id, Sizes())
            scaled = "profiled"
            sb.create(scaled, fb.family, 0)
            sb.wait_service(scaled, lambda s: completed(s, 0), time.perf_counter(), 30, "0")
        if a.scenario == "stop":
            running = [fb.start_one()[1] for _ in range(a.n)]
        if a.scenario == "describe":
            running = fb.launch(10, 10)[1]
        argv_spy = ["py-spy", "record", "--pid", str(bench.server.pid), "--rate", str(a.rate),
                    "--format", "raw", "--output", str(raw), "--threads", "--nonblocking",
                    *(["--gil"] if a.gil else [])]
        if a.scenario in IDLE_SCENARIOS:
            argv_spy.append("--idle")
        perf_data = a.raw or bench.tmp / "perf.data"
        if a.machine:  # with call graphs, for `perf report -i RAW --pid ...` by hand
            argv_spy = ["perf", "record", "-a", "-g", "-e", "cpu-clock", "-F", str(PERF_HZ),
                        "-o", str(perf_data)]
        spy = subprocess.Popen(argv_spy, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # py-spy attaches
        before = switches(bench.server.pid)
        t0 = time.perf_counter()
        if a.scenario == "start":
            running = [fb.start_one()[1] for _ in range(a.n)]
        elif a.scenario == "stop":
            for arn in running:
                fb.stop_one(arn)
            running = []
        elif a.scenario == "launch":
            running = fb.launch(10, 10)[1]
        elif a.scenario == "scale":
            fb.ecs.update_service(cluster=sb.cluster, service=scaled, desiredCount=100)
            sb.wait_service(scaled, lambda s: settled(s, 100), t0, 600, "100 running")
        elif a.scenario == "idle":
            time.sleep(a.seconds)
        else:
            rate, _ = fb.throughput("DescribeTasks", {"tasks": running[:100]}, 8, a.seconds)
            log(f"DescribeTasks(100): {rate:.0f} req/s while profiled")
        wall = time.perf_counter() - t0
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
        log(f"scenario {a.scenario}: {wall:.2f} s")
        per = a.n if a.scenario in IDLE_SCENARIOS else 100 if a.scenario in (
            "launch", "scale") else 0
        after = switches(bench.server.pid)
        tnames = thread_names(bench.server.pid) if shutil.which("py-spy") else {}
        moved: Counter[str] = Counter()
        for tid, n in after.items():
            moved[re.sub(r"_\d+$", "_N", tnames.get(tid, "?"))] += n - before.get(tid, 0)
        print("server context switches per task: " + ", ".join(
            f"{k} {v / (per or 1):.1f}" for k, v in moved.most_common(8)))
        if a.machine:
            names = {os.getpid(): "python3 (the benchmark's client)",
                     bench.server.pid: "python3 (fargo server)"}
            print(by_command(perf_data, wall, per or 1, names))
        else:
            print(summarize(raw, a.rate, wall, a.top, a.scenario in IDLE_SCENARIOS, per))
        if running:
            fb.stop_all(running)
        if scaled:
            sb.remove(scaled)
        if crowd:
            fb.stop_all(crowd, timeout=900)
    except KeyboardInterrupt:
        return 130
    finally:
        cleanup.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
