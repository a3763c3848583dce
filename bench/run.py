"""The benchmark run: set up, measure every figure for fargo and its peers, report, clean up."""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .env import (
    Cleanup,
    FargoServer,
    busy_cpu_seconds,
    cgroup_usage_bytes,
    log,
    meminfo,
    memory_cgroup_of,
    proc_pss_kib,
    proc_status_kib,
    remove_tree,
    term_as_interrupt,
    tool_version,
)
from .fargo_side import (
    LAUNCH_POLL_S,
    STAMPED_POLL_S,
    FargoBench,
    log_phases,
    server_python_children,
    task_id,
    task_processes,
)
from .peers import Podman, Runc, launch_parallel
from .report import figure_number, markdown, merge, plot, table
from .stats import Results, Row, Summary

MIB = 1 << 20


class System(Protocol):
    name: str

    def start(self) -> tuple[float, str]: ...
    def stop(self, cid: str) -> float: ...
    def check_running(self, cid: str) -> None: ...
    def remove(self, cids: list[str]) -> None: ...
    def pids(self, cids: list[str]) -> list[int]: ...
    def monitor_pids(self, cids: list[str]) -> list[int]: ...


class FargoSystem:
    """FargoBench behind the same face as the peers."""

    name = "fargo"

    def __init__(self, fb: FargoBench):
        self.fb = fb

    def start(self) -> tuple[float, str]:
        return self.fb.start_one()

    def stop(self, cid: str) -> float:
        return self.fb.stop_one(cid)

    def check_running(self, cid: str) -> None:
        pass  # start() already waited for RUNNING

    def remove(self, cids: list[str]) -> None:
        self.fb.stop_all(cids)

    def pids(self, cids: list[str]) -> list[int]:
        return self.fb.container_pids(cids)

    def monitor_pids(self, cids: list[str]) -> list[int]:
        from .env import processes

        ids = {task_id(c) for c in cids}
        root_arg = f"--root=/run/{self.fb.server.prefix}-runc"
        return [p.pid for p in processes() if p.comm == "conmon" and root_arg in p.cmdline
                and any(a.split(".")[0] in ids for a in p.cmdline)]


@dataclass
class Options:
    tasks: int = 50
    launch_calls: int = 10
    launch_count: int = 10
    launch_rounds: int = 3  # figure 2 is the median round: one launch is a noisy sample
    density: int = 200
    api_n: int = 200
    api_seconds: float = 5.0
    api_clients: int = 8
    pull_mb: float = 50.0
    pull_runs: int = 3
    overcommit: float = 30.0
    settle: float = 5.0
    peers: bool = True
    plot: bool = True
    out: Path = Path("docs/benchmarks.md")
    figures: set[str] = field(default_factory=lambda: set(FIGURES))
    quick: bool = False
    scale_rounds: int = 2
    kills: int = 10
    rolling_rps: float = 50.0
    alb_rounds: int = 3
    alb_seconds: int = 3
    alb_connections: int = 8
    log_rate: int = 50_000
    log_seconds: int = 10
    filter_events: int = 1_000_000
    deploy_replicas: int = 50
    deploy_rolling: int = 10
    deploy_rounds: int = 2
    kubenet_rounds: int = 3
    gvisor_starts: int = 20
    crowd_idle: int = 500
    crowd_most: int = 1000
    merge_into: Path | None = None


FIGURES = ("start", "launch", "density", "api", "pull", "scale", "replace", "rolling", "alb", "logs",
           "deploy", "kubenet", "gvisor", "crowd")
SERVICE_FIGURES = {"scale", "replace", "rolling"}  # `--figures services` names all three
PEER_FIGURES = {"start", "launch", "density", "api", "pull", "crowd"}  # the others: fargo alone


def parse(argv: list[str] | None) -> Options:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help="a few tasks per figure and a small pull image (the smoke test's run)")
    p.add_argument("--tasks", type=int, help="starts (and stops) measured one at a time [50]")
    p.add_argument("--launch-calls", type=int, help="RunTask calls for the launch rate [10]")
    p.add_argument("--launch-count", type=int, help="count per RunTask call [10]")
    p.add_argument("--launch-rounds", type=int,
                   help="launches per system for figure 2, reported by the median [3]")
    p.add_argument("--density", type=int, help="idle tasks running at once [200]")
    p.add_argument("--api-n", type=int, help="sequential calls per API latency figure [200]")
    p.add_argument("--api-seconds", type=float, help="seconds per throughput run [5]")
    p.add_argument("--api-clients", type=int, help="concurrent clients for throughput [8]")
    p.add_argument("--pull-mb", type=float, help="size of the cold-pull image [50]")
    p.add_argument("--pull-runs", type=int, help="cold pulls per system [3]")
    p.add_argument("--scale-rounds", type=int,
                   help="service scale-ups (and RunTask bursts beside them) [2]")
    p.add_argument("--kills", type=int, help="unexpected exits of a service's task [10]")
    p.add_argument("--rolling-rps", type=float,
                   help="requests per second during the rolling deployment [50]")
    p.add_argument("--alb-rounds", type=int,
                   help="rounds of wrk runs through the ALB, by hand and direct [3]")
    p.add_argument("--alb-seconds", type=int,
                   help="seconds of each loaded wrk run (whole seconds) [3]")
    p.add_argument("--alb-connections", type=int,
                   help="wrk's connections for the ALB throughput and its rolling "
                   "deployment [8]")
    p.add_argument("--log-rate", type=int, help="lines per second figure 11's task writes [50000]")
    p.add_argument("--log-seconds", type=int, help="seconds figure 11's task writes [10]")
    p.add_argument("--filter-events", type=int,
                   help="events of the group figure 11c filters [1000000]")
    p.add_argument("--deploy-replicas", type=int,
                   help="replicas of figure 12's Deployment (and its bare pods) [50]")
    p.add_argument("--deploy-rolling", type=int,
                   help="replicas of figure 12b's rolling update [10]")
    p.add_argument("--deploy-rounds", type=int,
                   help="runs of each of figure 12's Deployment and bare pods [2]")
    p.add_argument("--kubenet-rounds", type=int,
                   help="rounds of figure 13's ClusterIP / pod IP wrk runs [3]")
    p.add_argument("--crowd-idle", type=int,
                   help="idle tasks running while figure 15 measures starts and a launch [500]")
    p.add_argument("--crowd-most", type=int,
                   help="idle tasks running for figure 15c's RSS and DescribeTasks [1000]")
    p.add_argument("--gvisor-starts", type=int,
                   help="starts per system of figure 14 (gVisor, bare runsc, runc) [20]")
    p.add_argument("--overcommit", type=float,
                   help="fargo server --overcommit, so that the density and crowd figures' "
                   "idle tasks fit this host [30, or what the crowd figure's tasks need]")
    p.add_argument("--no-peers", action="store_true", help="measure fargo only (no podman/runc)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    p.add_argument("--figures", default=",".join(FIGURES),
                   help=f"comma-separated subset of {','.join(FIGURES)}; `services` is "
                   "scale,replace,rolling")
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"),
                   help="Markdown report to write (the plot goes beside it)")
    p.add_argument("--merge-into", type=Path, metavar="REPORT",
                   help="also put this run's figures into an existing report (such as "
                   "docs/benchmarks.md), in place of those figures' rows and notes, keeping "
                   "the rest of it")
    a = p.parse_args(argv)
    o = Options(quick=a.quick, peers=not a.no_peers,
                plot=not a.no_plot, out=a.out, merge_into=a.merge_into)
    if a.merge_into is not None and not a.merge_into.is_file():
        p.error(f"--merge-into: {a.merge_into} is not there to merge into")
    if a.merge_into is not None and a.merge_into.resolve() == a.out.resolve():
        p.error("--merge-into names the --out report itself")
    if a.quick:
        o.tasks, o.launch_calls, o.launch_count, o.density = 3, 2, 3, 8
        o.launch_rounds = 1
        o.api_n, o.api_seconds, o.pull_mb, o.pull_runs, o.settle = 20, 1.0, 3.0, 1, 1.0
        o.scale_rounds, o.kills, o.rolling_rps = 1, 2, 20.0
        o.alb_rounds, o.alb_seconds = 1, 1
        o.log_rate, o.log_seconds, o.filter_events = 5_000, 2, 20_000
        o.deploy_replicas, o.deploy_rolling, o.deploy_rounds = 4, 4, 1
        o.kubenet_rounds = 1
        o.gvisor_starts = 3
        o.crowd_idle, o.crowd_most = 6, 10
    for name in ("tasks", "launch_calls", "launch_count", "launch_rounds", "density", "api_n", "api_seconds",
                 "api_clients", "pull_mb", "pull_runs", "scale_rounds", "kills", "rolling_rps",
                 "alb_rounds", "alb_seconds", "alb_connections", "log_rate", "log_seconds",
                 "filter_events", "deploy_replicas", "deploy_rolling", "deploy_rounds",
                 "kubenet_rounds", "gvisor_starts", "crowd_idle", "crowd_most"):
        if getattr(a, name) is not None:
            setattr(o, name, getattr(a, name))
    o.figures = {f.strip() for f in a.figures.split(",") if f.strip()}
    if "services" in o.figures:
        o.figures = (o.figures - {"services"}) | SERVICE_FIGURES
    unknown = o.figures - set(FIGURES)
    if unknown:
        p.error(f"unknown figures: {', '.join(sorted(unknown))}")
    o.density = max(o.density, o.launch_calls * o.launch_count)
    o.overcommit = a.overcommit if a.overcommit is not None else needed_overcommit(o)
    return o


T = TypeVar("T")


def _rotated(items: list[T], turn: int) -> list[T]:
    """items with the one at `turn` (mod their count) first: who goes first rotates from
    round to round, so that slow drifts in the host's load hit every system alike."""
    k = turn % len(items)
    return items[k:] + items[:k]


def needed_overcommit(o: Options) -> float:
    """30, or more if the crowd figure's tasks (0.25 vCPU / 0.5 GB each, a launch beside the
    most idle ones) would not fit this host's CPUs and memory at 30."""
    if "crowd" not in o.figures:
        return 30.0
    tasks = max(o.crowd_most, o.crowd_idle + o.launch_calls * o.launch_count) + 1
    cpu = tasks * 256 / ((os.cpu_count() or 1) * 1024)
    mem = tasks * 512 / (meminfo()["MemTotal"] / 1024)
    return float(max(30, int(max(cpu, mem) * 1.1) + 1))


@dataclass
class Bench:
    opts: Options
    cleanup: Cleanup
    results: Results = field(default_factory=Results)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:5])
    tmp: Path = Path()
    registry: Any = None
    image: str = ""
    server: FargoServer | None = None
    fb: FargoBench | None = None
    systems: list[System] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    alb_hand: list[str] = field(default_factory=list)  # how figure 10's hand-run config differs
    alb_ran: bool = False
    # figure 2 by system: (tasks/s, machine CPU ms per task)
    _launched: dict[str, tuple[float, float]] = field(default_factory=dict)

    # ------------------------------------------------------------ setup

    def setup(self) -> None:
        from fargo.agent.registry import LocalRegistry
        from tests.imagebuild import build_busybox_oci, push_layout

        for tool in ("runc", "conmon", "skopeo", "docker-registry"):
            if not shutil.which(tool):
                raise SystemExit(f"bench: {tool} is missing; run scripts/setup.sh first")
        self.tmp = Path(tempfile.mkdtemp(prefix="fargo-bench-"))
        self.cleanup.push("tmp dir", lambda: remove_tree(self.tmp))
        log(f"workdir {self.tmp}, run id {self.run_id}")
        self.registry = LocalRegistry(self.tmp / "registry")
        self.registry.start()
        self.cleanup.push("registry", self.registry.stop)
        layout = build_busybox_oci(self.tmp / "layout" / "busybox")
        push_layout(layout, self.registry.address, "busybox:latest")
        self.image = f"{self.registry.address}/busybox:latest"

        # --quick samples metrics every 2 s, so that figure 4c sees a pass without a minute's wait.
        self.server = FargoServer(self.tmp / "state", self.opts.overcommit,
                                  ["--metrics-interval", str(self.metrics_interval)])
        self.cleanup.push("fargo server and tasks", self._fargo_down)
        self.server.start()
        log(f"fargo server on {self.server.endpoint}, prefix {self.server.prefix}, "
            f"VPC {self.server.cidr}, --overcommit {self.opts.overcommit:g}")
        self.fb = FargoBench(self.server, self.image)
        fargo = FargoSystem(self.fb)
        self._warm(fargo)  # the image is cached and the subnet bridge exists from here on
        self.fb.phases.clear()
        self.systems = [fargo]
        if self.opts.peers and self.opts.figures & PEER_FIGURES:
            self._setup_peers()
        self._describe_machine()

    def _setup_peers(self) -> None:
        if shutil.which("podman") and shutil.which("nsenter"):
            podman = Podman(self.run_id, self.image,
                            f"10.{random.randint(200, 249)}.{random.randint(0, 255)}.0/24")
            podman.setup(self.cleanup)
            self._warm(podman)
            self.systems.append(podman)
        else:
            self.results.notes.append("podman is not installed: its peer rows are missing "
                                      "(scripts/bench.sh installs it).")
        runc = Runc(self.run_id, self.tmp / "runc")
        runc.setup(self.cleanup)
        self._warm(runc)
        self.systems.append(runc)

    @staticmethod
    def _warm(system: System) -> None:
        _, cid = system.start()
        system.check_running(cid)
        system.stop(cid)

    def _fargo_down(self) -> None:
        if self.server is None:
            return
        if self.fb is not None and self.server.proc and self.server.proc.poll() is None:
            try:
                left = self.fb.running_arns()
                if left:
                    log(f"stopping {len(left)} fargo tasks")
                    self.fb.stop_all(left, timeout=120)
            except Exception as err:  # noqa: BLE001 - purge below removes what is left
                log(f"stopping fargo tasks: {err}")
        self.server.purge()
        log("fargo server stopped and purged")

    def _describe_machine(self) -> None:
        mem = meminfo()
        o = self.opts
        self.header = [
            "## Machine and settings", "",
            f"- fargo {fargo_revision()}",
            f"- {os.cpu_count()} CPUs, {mem['MemTotal'] / (1 << 20):.1f} GiB memory, "
            f"kernel {platform.release()}, Python {platform.python_version()}",
            f"- {tool_version('runc', '--version')}; {tool_version('conmon', '--version')}; "
            f"{tool_version('podman', '--version')}; {tool_version('skopeo', '--version')}",
            f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
            f"- fargo server `--overcommit {o.overcommit:g}`"
            + (f": {o.density} idle tasks of 0.25 vCPU / 0.5 GB promise {o.density * 0.25:g} "
               f"vCPU and {o.density * 0.5:g} GB, more than this host has; the overcommit lets "
               "them be placed (they idle)." if "density" in o.figures else ""),
            "- sizes: " + "; ".join(self._sizes())
            + (" (--quick)" if o.quick else ""),
        ]

    def _sizes(self) -> list[str]:
        """The sizes of the figures this run measures."""
        o, figs = self.opts, self.opts.figures
        out = []
        if "start" in figs:
            out.append(f"{o.tasks} single starts")
        if figs & {"launch", "density", "api"}:
            out.append(f"launch {o.launch_calls}×{o.launch_count}"
                       + (f" × {o.launch_rounds} rounds" if o.launch_rounds > 1
                          and "launch" in figs else ""))
        if "density" in figs:
            out.append(f"density {o.density}")
        if "api" in figs:
            out.append(f"API {o.api_n} calls and {o.api_seconds:g} s × {o.api_clients} clients")
        if "pull" in figs:
            out.append(f"pull {o.pull_mb:g} MB × {o.pull_runs}")
        if figs & SERVICE_FIGURES:
            out.append(f"services: scale 0 → {o.launch_calls * o.launch_count} × "
                       f"{o.scale_rounds}, {o.kills} unexpected exits, rolling deployment of 3 "
                       f"tasks at {o.rolling_rps:g} req/s")
        if "alb" in figs:
            out.append(f"ALB: {o.alb_rounds} round{'s' if o.alb_rounds != 1 else ''} of wrk, "
                       f"{o.alb_connections} connections × {o.alb_seconds} s, then 1 connection")
        if "logs" in figs:
            out.append(f"logs: {o.log_rate:,} lines/s × {o.log_seconds} s, FilterLogEvents over "
                       f"{o.filter_events:,} events")
        if "deploy" in figs:
            out.append(f"deploy: {o.deploy_replicas} replicas × {o.deploy_rounds} rounds, "
                       f"a rolling update of {o.deploy_rolling}")
        if "kubenet" in figs:
            z = self.kubenet_sizes()
            out.append(f"kubenet: {z.rounds} rounds of wrk, {z.connections} connections × "
                       f"{z.seconds} s, {z.latency_n} single requests per path, DNS "
                       f"{z.dns_rounds} × {z.dns_seconds:g} s, a rolling update of "
                       f"{z.replicas}")
        if "crowd" in figs:
            c = self.crowd_sizes()
            out.append(f"crowd: {c.starts} starts and a launch of {c.launch_calls}×"
                       f"{c.launch_count} empty and with {c.idle} idle tasks; {c.most} idle")
        if "gvisor" in figs:
            g = self.gvisor_sizes()
            out.append(f"gvisor: {g.starts} starts per system, a burst of {g.launch}, "
                       f"{g.idle} idle sandboxes")
        if o.quick:
            out[-1] += " (--quick)"
        return out

    # ------------------------------------------------------------ figures 1 and 3

    def start_stop(self) -> None:
        n = self.opts.tasks
        starts: dict[str, list[float]] = {s.name: [] for s in self.systems}
        stops: dict[str, list[float]] = {s.name: [] for s in self.systems}
        log(f"figures 1+3: {n} rounds of start → running → stop, systems interleaved")
        order = list(self.systems)
        for i in range(n):
            for system in _rotated(order, i):
                elapsed, cid = system.start()
                system.check_running(cid)
                starts[system.name].append(elapsed * 1000)
                stops[system.name].append(system.stop(cid) * 1000)
        self.results.samples = starts
        podman_p50 = Summary.of(starts["podman"]).p50 if starts.get("podman") else None
        for name, values in starts.items():
            s = Summary.of(values)
            row = Row("1. start latency", name, "ms", summary=s)
            if name == "fargo":
                checks = [("p50 ≤ 150 ms", s.p50 <= 150), ("p99 ≤ 400 ms", s.p99 <= 400)]
                if podman_p50:
                    checks.insert(1, (f"p50 ≤ ½ podman ({podman_p50 / 2:.0f} ms)",
                                      s.p50 <= podman_p50 / 2))
                row.target = "; ".join(f"{c} {'✓' if ok else '✗'}" for c, ok in checks)
                row.ok = all(ok for _, ok in checks)
            self.results.add(row)
        assert self.fb is not None
        if self.fb.phases:
            log_phases(self.fb.phases)
            phases = self.fb.phases
            for key in ("server_total", "queued", "prepare", "containers"):
                label = {"server_total": "createdAt→startedAt (server stamps)",
                         "queued": "↳ to the start of work (createdAt→pullStartedAt)",
                         "prepare": "↳ network ∥ image ∥ sandbox (pullStartedAt→pullStoppedAt)",
                         "containers": "↳ containers (pullStoppedAt→startedAt)"}[key]
                self.results.add(Row("1b. fargo start phases", label, "ms",
                                     summary=Summary.of([p[key] * 1000 for p in phases])))
        for name, values in stops.items():
            self.results.add(Row("3. stop latency", name, "ms", summary=Summary.of(values)))
        self._ratios_to_peers(starts, stops)

    def _ratios_to_peers(self, starts: dict[str, list[float]],
                         stops: dict[str, list[float]]) -> None:
        """Figures 1 and 3 beside the peers measured in the same rounds: the ratios the
        performance targets are set in."""
        add = self.results.add
        f = {k: Summary.of(v) for k, v in starts.items() if v}
        if "fargo" in f and "runc" in f:
            p50, p99 = f["fargo"].p50 / f["runc"].p50, f["fargo"].p99 / f["runc"].p99
            add(Row("1. start latency", "p50 fargo / runc", "×", value=p50,
                    target="≤ 1.5×", ok=p50 <= 1.5))
            add(Row("1. start latency", "p99 fargo / runc", "×", value=p99,
                    target="≤ 2×", ok=p99 <= 2))
        g = {k: Summary.of(v) for k, v in stops.items() if v}
        if "fargo" in g and "podman" in g:
            ratio = g["fargo"].p50 / g["podman"].p50
            add(Row("3. stop latency", "p50 fargo / podman", "×", value=ratio,
                    target="≤ ¼", ok=ratio <= 0.25))

    # ------------------------------------------------------------ figures 2, 4, 5

    def launch_density_api(self) -> None:
        o = self.opts
        if "launch" in o.figures:
            self._launch_rounds()
        if o.figures & {"density", "api"}:
            for system in self.systems:
                self._launch_density(system)
        mine, peer = self._launched.get("fargo"), self._launched.get("runc")
        if mine and peer:  # figure 2 beside bare runc's, in the ratios its targets are set in
            ratio = mine[0] / peer[0]
            self.results.add(Row("2. launch rate", "fargo / runc", "×", value=ratio,
                                 target="≥ 0.6×", ok=ratio >= 0.6))
            ratio = mine[1] / peer[1]
            self.results.add(Row("2b. machine CPU per started task", "fargo / runc", "×",
                                 value=ratio, target="≤ 1.5×", ok=ratio <= 1.5))

    def _launch_rounds(self) -> None:
        """Figures 2 and 2b: launch_rounds launches per system, the systems interleaved (who
        goes first rotates, as in figure 1) so that drifts in the host's speed hit all alike;
        each system's figure is its median round by time."""
        o = self.opts
        batch = o.launch_calls * o.launch_count
        taken: dict[str, list[tuple[float, float]]] = {s.name: [] for s in self.systems}
        order = list(self.systems)
        for r in range(o.launch_rounds):
            for system in _rotated(order, r):
                time.sleep(o.settle)  # let the stops before (a figure's, a round's) settle
                log(f"figure 2: {system.name}: {batch} starts (round {r + 1} of "
                    f"{o.launch_rounds})")
                cpu0 = busy_cpu_seconds()
                elapsed, ids = self._launch(system, o.launch_calls, o.launch_count)
                taken[system.name].append((elapsed, busy_cpu_seconds() - cpu0))
                t0 = time.perf_counter()
                system.remove(ids)
                log(f"{system.name}: removed {len(ids)} in {time.perf_counter() - t0:.1f} s")
        for system in self.systems:
            rounds = taken[system.name]
            elapsed, cpu = sorted(rounds)[len(rounds) // 2]  # the median round, by its time
            all_rates = ", ".join(f"{batch / t:.1f}" for t, _ in rounds)
            of_rounds = (f"; the median of {len(rounds)} rounds ({all_rates} tasks/s)"
                         if len(rounds) > 1 else "")
            row = Row("2. launch rate", system.name, "tasks/s", value=batch / elapsed,
                      note=f"{batch} in {elapsed:.2f} s{of_rounds}")
            if system.name == "fargo":
                row.note = (f"{o.launch_calls} RunTask calls of count {o.launch_count}, "
                            f"all RUNNING after {elapsed:.2f} s{of_rounds}")
                row.target, row.ok = "≥ 20 tasks/s", batch / elapsed >= 20
            else:
                row.note += " (10 parallel workers, one start each at a time)"
            self.results.add(row)
            self._launched[system.name] = (batch / elapsed, cpu * 1000 / batch)
            self.results.add(Row(
                "2b. machine CPU per started task", system.name, "ms",
                value=cpu * 1000 / batch,
                note=f"busy CPU of all {os.cpu_count()} cores during the launch "
                     f"({cpu:.1f} s, {cpu / (elapsed * (os.cpu_count() or 1)) * 100:.0f}% "
                     "of their time, the median round's), bench client included"))

    def _launch_density(self, system: System) -> None:
        """Figures 4 and 5: a launch (not timed: figure 2 has its own rounds) whose tasks,
        topped up to `density`, stay running while they are measured."""
        o = self.opts
        figs = o.figures
        batch = o.launch_calls * o.launch_count
        time.sleep(o.settle)  # let the stops of the previous figure finish settling
        base_mem = meminfo()
        base_rss = proc_status_kib(self.server.pid) if system.name == "fargo" and self.server else 0
        log(f"figure 4: {system.name}: {batch} starts")
        ids = self._launch(system, o.launch_calls, o.launch_count)[1]
        try:
            if "density" in figs or "api" in figs:
                more = o.density - len(ids)
                if more > 0:
                    log(f"figure 4: {system.name}: {more} more to reach {o.density}")
                    calls = -(-more // o.launch_count)
                    counts = [o.launch_count] * (calls - 1) + [more - o.launch_count * (calls - 1)]
                    for c in counts:
                        ids += self._launch(system, 1, c)[1]
                time.sleep(o.settle)
            if "density" in figs:
                self._density(system, ids, base_mem, base_rss)
            if "api" in figs:
                self._api(system, ids)
        finally:
            t0 = time.perf_counter()
            system.remove(ids)
            log(f"{system.name}: removed {len(ids)} in {time.perf_counter() - t0:.1f} s")

    @property
    def metrics_interval(self) -> float:
        return 2.0 if self.opts.quick else 60.0

    def _sampler_cost(self, n: int) -> None:
        """Figure 4c: the metrics sampler's own CPU for a pass over n running tasks, as the
        server reports it on /metrics (the thread's CPU time, read and record phases)."""
        import requests
        from prometheus_client.parser import text_string_to_metric_families

        assert self.server is not None
        since = time.time()
        deadline = time.monotonic() + self.metrics_interval + 30
        vals: dict[tuple[str, str], float] = {}
        while time.monotonic() < deadline:
            text = requests.get(self.server.endpoint + "/metrics", timeout=10).text
            vals = {(smp.name, smp.labels.get("phase", "")): smp.value
                    for fam in text_string_to_metric_families(text) for smp in fam.samples}
            if vals.get(("fargo_metrics_last_sample_timestamp_seconds", ""), 0) > since and \
                    vals.get(("fargo_metrics_sampled_tasks", ""), 0) >= n:
                break
            time.sleep(0.5)
        else:
            self.results.add(Row("4c. metrics sampler CPU per pass", "fargo", "ms",
                                 value="no pass over every task seen"))
            return
        cpu = sum(v for (name, _), v in vals.items()
                  if name == "fargo_metrics_sample_cpu_seconds")
        read = vals.get(("fargo_metrics_sample_cpu_seconds", "read"), 0.0)
        share = cpu / n * 200 / 60.0 * 100
        self.results.add(Row(
            "4c. metrics sampler CPU per pass", "fargo", "ms", value=cpu * 1000,
            note=f"over {n} running tasks (reading the counters {read * 1000:.1f} ms); "
                 f"the server samples every {self.metrics_interval:g} s in this run"))
        self.results.add(Row(
            "4c. metrics sampling, 200 tasks at the default 60 s interval", "fargo",
            "% of a core", value=share, target="≤ 1 %", ok=share <= 1.0,
            note=f"{cpu / n * 1000:.2f} ms per task per pass × 200 tasks / 60 s"))

    def _launch(self, system: System, calls: int, count: int) -> tuple[float, list[str]]:
        if isinstance(system, FargoSystem):
            return system.fb.launch(calls, count)
        return launch_parallel(system.start, calls * count, workers=min(10, calls * count))

    def _density(self, system: System, ids: list[str], base: dict[str, int],
                 base_rss: int) -> None:
        after = meminfo()
        n = len(ids)
        pids = system.pids(ids)
        workload = sum(cgroup_usage_bytes(memory_cgroup_of(p)) for p in pids)
        used = (base["MemAvailable"] - after["MemAvailable"]) * 1024
        beyond = (used - workload) / n / MIB
        kernel = sum(after[k] - base[k] for k in ("Slab", "KernelStack", "PageTables")) / n / 1024
        monitors = system.monitor_pids(ids)
        rss = sum(proc_status_kib(p) for p in monitors) / n / 1024
        pss = sum(proc_pss_kib(p) for p in monitors) / n / 1024
        server_growth = 0.0
        if system.name == "fargo" and self.server:
            server_growth = (proc_status_kib(self.server.pid) - base_rss) / n / 1024
        row = Row("4. host memory per idle task beyond the workload", system.name, "MiB",
                  value=beyond)
        # A second estimate from the parts, less exposed to whatever else the host runs.
        row.note = (f"{n} running; MemAvailable fell {used / MIB:.0f} MiB, their own cgroups "
                    f"use {workload / MIB:.0f} MiB ({workload / n / 1024:.0f} KiB each). "
                    f"Sum of the parts per task: monitor PSS {pss:.2f} (RSS {rss:.2f}) + "
                    f"kernel slab, stacks, page tables {kernel:.2f} + server growth "
                    f"{server_growth:.2f} = {pss + kernel + server_growth:.2f} MiB")
        if system.name == "fargo":
            row.target, row.ok = "≤ 3 MiB", beyond <= 3
        self.results.add(row)
        if system.name == "fargo" and self.server:
            rss_now = proc_status_kib(self.server.pid) / 1024
            self.results.add(Row(
                "4. server RSS", "fargo", "MB", value=rss_now * MIB / 1e6,
                target="≤ 150 MB", ok=rss_now * MIB / 1e6 <= 150,
                note=f"with {n} tasks; {base_rss / 1024:.0f} MiB before them, "
                     f"{(rss_now - base_rss / 1024) * 1024 / n:.0f} KiB more per task"))
            self._sampler_cost(n)
            tids = {task_id(a) for a in ids}
            procs = task_processes(tids, self.server.prefix)
            py = server_python_children(self.server.pid)
            per_task = ", ".join(f"{k} {v / n:g}" for k, v in sorted(procs.items()))
            self.results.add(Row(
                "4. processes per task", "fargo", "", value=f"{per_task}; python 0"
                if py == 0 else f"{per_task}; python {py}!", ok=py == 0 and procs.get(
                    "conmon") == n, target="no Python process per task",
                note=f"processes of the {n} tasks by name (conmon by runc root, the rest by "
                     f"task cgroup); Python processes below the server: {py}"))

    def _api(self, system: System, ids: list[str]) -> None:
        o = self.opts
        if isinstance(system, FargoSystem):
            fb = system.fb
            arns = ids[:100]
            describe = {"tasks": arns}
            log(f"figure 5: API with {len(ids)} tasks")
            for action, params, label in (("DescribeTasks", describe, f"DescribeTasks({len(arns)})"),
                                          ("ListTasks", {}, "ListTasks")):
                raw = [x * 1000 for x in fb.raw_latencies(action, params, o.api_n)]
                boto = [x * 1000 for x in fb.boto_latencies(action, params, max(o.api_n // 2, 5))]
                row = Row(f"5. {label} latency", "fargo (raw HTTP)", "ms",
                          summary=Summary.of(raw))
                if action == "DescribeTasks":
                    row.target, row.ok = "p50 ≤ 20 ms", row.summary.p50 <= 20  # type: ignore[union-attr]
                self.results.add(row)
                self.results.add(Row(f"5. {label} latency", "fargo (boto3 client)", "ms",
                                     summary=Summary.of(boto)))
                rate, errors = fb.throughput(action, params, o.api_clients, o.api_seconds)
                row = Row(f"5. {label} throughput", f"fargo ({o.api_clients} clients)", "req/s",
                          value=rate, note=f"aiohttp, {o.api_clients} keep-alive connections, "
                          f"pre-signed requests, {o.api_seconds:g} s; errors {errors}")
                if action == "DescribeTasks":
                    row.target, row.ok = "≥ 500 req/s", rate >= 500 and errors == 0
                self.results.add(row)
        elif isinstance(system, Podman):
            from .env import sh

            log("figure 5 peer: podman inspect / ps")
            n = max(o.api_n // 10, 5)
            for label, argv in ((f"DescribeTasks({min(100, len(ids))})",
                                 [*system.base, "inspect", *ids[:100]]),
                                ("ListTasks", [*system.base, "ps", "-q", "--filter",
                                               f"label={system.label}"])):
                samples = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    sh(*argv)
                    samples.append((time.perf_counter() - t0) * 1000)
                what = "podman inspect ×100" if label.startswith("Describe") else "podman ps"
                self.results.add(Row(f"5. {label} latency", f"podman ({what})", "ms",
                                     summary=Summary.of(samples)))

    # ------------------------------------------------------------ figure 6

    def pull(self) -> None:
        from .pull import cold_pull

        o = self.opts
        podman = self.opts.peers and any(isinstance(s, Podman) for s in self.systems)
        res = cold_pull(self.tmp / "pull", self.registry.address, o.pull_mb, o.pull_runs,
                        podman, self.fb)
        fig = f"6. cold pull {res.image_mb:.0f} MB, 3 layers"
        sk = Summary.of([x * 1000 for x in res.skopeo])
        self.results.add(Row(fig, "skopeo copy → dir:", "ms", summary=sk,
                             note="download + verify, no unpacking"))
        limit = 1.5 * sk.p50
        for label, values in (("fargo ImageStore.pull (in-process)", res.fargo_store),
                              ("fargo RunTask pull phase", res.fargo_task_pull)):
            s = Summary.of([x * 1000 for x in values])
            self.results.add(Row(fig, label, "ms", summary=s,
                                 target=f"p50 ≤ 1.5 × skopeo ({limit:.0f} ms)",
                                 ok=s.p50 <= limit))
        if res.fargo_task_start:
            self.results.add(Row(fig, "fargo RunTask → RUNNING (cold image)", "ms",
                                 summary=Summary.of([x * 1000 for x in res.fargo_task_start])))
        if res.podman:
            self.results.add(Row(fig, "podman pull", "ms",
                                 summary=Summary.of([x * 1000 for x in res.podman]),
                                 note="download + verify + unpack into overlay storage"))

    # ------------------------------------------------------------ figures 7, 8, 9

    def services(self) -> None:
        from .services import ServiceBench, Sizes

        o = self.opts
        assert self.fb is not None
        sizes = Sizes(scale_tasks=o.launch_calls * o.launch_count, launch_calls=o.launch_calls,
                      launch_count=o.launch_count, scale_rounds=o.scale_rounds, kills=o.kills,
                      starts=min(o.tasks, max(o.kills, 10)), rolling_rps=o.rolling_rps,
                      api_n=o.api_n, settle=o.settle)
        sb = ServiceBench(self.fb, self.results, self.cleanup, self.run_id, sizes)
        if "scale" in o.figures:
            sb.scale()
        if "replace" in o.figures:
            sb.replace()
        if "rolling" in o.figures:
            sb.rolling()

    # ------------------------------------------------------------ figure 10

    def alb_sizes(self) -> Any:
        from .alb import AlbSizes

        o = self.opts
        return AlbSizes(rounds=o.alb_rounds, seconds=o.alb_seconds,
                        single_seconds=max(1, min(2, o.alb_seconds)),
                        connections=o.alb_connections)

    def alb(self) -> None:
        from .alb import AlbBench

        if not shutil.which("wrk"):
            self.results.notes.append("wrk is not installed: figure 10 (the load balancer) is "
                                      "missing (scripts/bench.sh installs it).")
            return
        assert self.fb is not None
        ab = AlbBench(self.fb, self.results, self.cleanup, self.run_id, self.alb_sizes(),
                      self.tmp / "alb")
        self.alb_ran = True
        ab.run()
        self.alb_hand = ab.hand.changes if ab.hand else []

    def deploy_sizes(self) -> Any:
        from .deploy import DeploySizes

        o = self.opts
        return DeploySizes(replicas=o.deploy_replicas, rolling=o.deploy_rolling,
                           rounds=o.deploy_rounds)

    def deploy(self) -> None:
        from .deploy import DeployBench

        assert self.fb is not None
        DeployBench(self.fb, self.results, self.cleanup, self.run_id, self.deploy_sizes(),
                    self.tmp / "deploy").run()

    def kubenet_sizes(self) -> Any:
        from .kubenet import KubeNetSizes

        o = self.opts
        if o.quick:
            return KubeNetSizes(rounds=o.kubenet_rounds, seconds=1, latency_n=100,
                                dns_seconds=0.5, dns_rounds=1)
        return KubeNetSizes(rounds=o.kubenet_rounds)

    def gvisor_sizes(self) -> Any:
        from .gvisor import GvisorSizes

        o = self.opts
        if o.quick:
            return GvisorSizes(starts=o.gvisor_starts, launch=3, idle=2, dd_gvisor=5_000,
                               dd_runc=100_000, files_gvisor=100, files_runc=2_000,
                               settle=1.0)
        return GvisorSizes(starts=o.gvisor_starts)

    def crowd_sizes(self) -> Any:
        from .crowd import CrowdSizes

        o = self.opts
        return CrowdSizes(idle=o.crowd_idle, most=max(o.crowd_most, o.crowd_idle),
                          starts=min(o.tasks, 40), launch_calls=o.launch_calls,
                          launch_count=o.launch_count, launch_rounds=o.launch_rounds,
                          describe_n=o.api_n, settle=o.settle)

    def crowd(self) -> None:
        from .crowd import CrowdBench

        assert self.fb is not None and self.server is not None
        runc = next((s for s in self.systems if isinstance(s, Runc)), None)
        CrowdBench(self.fb, self.results, self.server.pid, self.crowd_sizes(), peer=runc).run()

    def gvisor(self) -> None:
        from .gvisor import GvisorBench

        assert self.fb is not None
        GvisorBench(self.fb, self.results, self.cleanup, self.run_id, self.gvisor_sizes(),
                    self.tmp / "gvisor").run()

    def kubenet(self) -> None:
        from .kubenet import KubeNetBench

        assert self.fb is not None
        KubeNetBench(self.fb, self.results, self.cleanup, self.run_id, self.kubenet_sizes(),
                     self.tmp / "kubenet").run()

    def log_sizes(self) -> Any:
        from .logs import LogSizes

        o = self.opts
        return LogSizes(rate=o.log_rate, seconds=o.log_seconds, filter_events=o.filter_events)

    def logs(self) -> None:
        from .logs import LogsBench

        assert self.fb is not None
        LogsBench(self.fb, self.results, self.cleanup, self.run_id, self.log_sizes(),
                  self.tmp / "logs").run()

    # ------------------------------------------------------------ report

    def method_notes(self) -> None:
        o = self.opts
        figs = o.figures
        names = {s.name for s in self.systems}
        notes: list[str] = []
        if "start" in figs:
            notes.append(
                "fargo start: from the RunTask call (one keep-alive boto3 client, SigV4-signed) "
                "to the task's RUNNING, as below; the image is cached (a warm-up task ran "
                "first). 1b splits the same starts by the task's own timestamps.")
        if "podman" in names:
            notes.append(
                "podman start: wall time of `podman --runtime runc --cgroup-manager cgroupfs run "
                "-d --network <internal bridge> --ulimit nofile=1024:1024 --ulimit "
                "nproc=1024:1024 --cpus 0.25 --memory 512m`, which returns once the container "
                "process runs. The podman CLI runs under `nsenter --net` in a namespace of the "
                "benchmark's own: netavark switches net.ipv4.ip_forward on for any bridge "
                "network, and this keeps that switch (and the bridge) away from the host.")
        if "runc" in names:
            notes.append(
                "runc start: `ip netns add` plus `runc run -d` of a bundle made beforehand with "
                "fargo's own OCI config (same mounts, capabilities, cgroup limits), on a shared "
                "read-only rootfs: no image layers, no monitor, no veth, no API. The floor.")
        if "start" in figs:
            notes.append(
                "Each round starts and stops one container of each system, rotating which goes "
                "first; stop = StopTask until STOPPED / `podman stop -t 10` / `runc kill TERM` "
                "until the process is gone. The workload traps SIGTERM and exits 0. fargo's "
                "start and stop are timed from the call to the task's startedAt / stoppedAt "
                "(the server's stamps, same clock), found by a DescribeTasks poll every "
                f"{STAMPED_POLL_S * 1000:g} ms, the first one interval after the call: "
                "polling every 5 ms to see the moment took ~20 ms of CPU from the start it "
                "timed, and a poll at once landed in every start's busiest milliseconds.")
        if figs & {"launch", "density", "api"}:
            notes.append(
                f"Launch rate: fargo gets {o.launch_calls} RunTask calls of count "
                f"{o.launch_count} back to back, then DescribeTasks polls (every "
                f"{LAUNCH_POLL_S * 1000:g} ms) until all are RUNNING; the time is to the last "
                "task's startedAt (the server's stamp, on this machine's clock), so the "
                "polls, which cost the two shared cores, can be few; the peers start the same number from 10 "
                "parallel workers. Each system launches "
                f"{o.launch_rounds} times, the systems taking turns (stopping each batch and "
                f"resting {o.settle:g} s between), and figures 2 and 2b are its median round "
                "by time. 2b divides "
                "the machine's busy CPU time over the launch "
                "(/proc/stat, all cores) by the tasks started: what a start costs whoever pays "
                "it, and steadier than the rate on a shared host.")
        if "density" in figs:
            notes.append(
                "Host memory per idle task beyond the workload = (MemAvailable before the "
                "launch − MemAvailable with all tasks running and settled − Σ "
                "memory.usage_in_bytes of each container's own memory cgroup) / tasks. It "
                "therefore counts the monitor (conmon), kernel objects (netns, veth, cgroups, "
                "mounts), server memory growth and files written per task; the note splits out "
                "monitor RSS/PSS and kernel slab. MemAvailable is host-wide: anything else "
                "running at the same time adds noise.")
        if "api" in figs:
            notes.append(
                "API latency: one client, one request at a time, over raw HTTP (requests, "
                "keep-alive, pre-signed) to show the server's share, and over boto3 to show "
                "what a user sees (boto3 spends most of it parsing 100 tasks). Throughput: "
                f"{o.api_clients} concurrent aiohttp connections replaying a pre-signed "
                "request.")
        if "pull" in figs:
            notes.append(
                "Cold pull: see bench/pull.py. fargo's figures include unpacking the layers; "
                "skopeo's dir: copy does not unpack, podman pull does.")
        self.results.notes += notes
        if o.figures & SERVICE_FIGURES:
            from .services import method_notes as service_notes

            self.results.notes += service_notes(o.figures, o.launch_calls, o.launch_count,
                                                o.scale_rounds, o.kills, o.rolling_rps)
        if "alb" in o.figures and self.alb_ran:
            from .alb import method_notes as alb_notes

            self.results.notes += alb_notes(self.alb_sizes(), self.alb_hand)
        if "logs" in o.figures:
            from .logs import method_notes as log_notes

            self.results.notes += log_notes(self.log_sizes())
        if "deploy" in o.figures:
            from .deploy import method_notes as deploy_notes

            self.results.notes += deploy_notes(self.deploy_sizes())
        if "kubenet" in o.figures:
            from .kubenet import method_notes as kubenet_notes

            self.results.notes += kubenet_notes(self.kubenet_sizes())
        if "crowd" in o.figures:
            from .crowd import method_notes as crowd_notes

            self.results.notes += crowd_notes(self.crowd_sizes())
        if "gvisor" in o.figures:
            from .gvisor import method_notes as gvisor_notes

            self.results.notes += gvisor_notes(self.gvisor_sizes())
        self.results.notes.append(
            "This is a 2-core machine shared with whatever else runs (tests, builds): expect "
            "a few ms of noise in every latency and more in p99/max.")
        self.header.append(
            f"- load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    def merge_line(self) -> str:
        """The machine-section line of a run merged into an existing report."""
        nums = sorted({n for r in self.results.rows
                       if (n := figure_number("| " + r.figure)) is not None})
        start = next((x for x in self.header if x.startswith("- load average at start")), "")
        end = next((x for x in self.header if x.startswith("- load average at end")), "")
        figs = ",".join(sorted(self.opts.figures))
        return (f"- figure{'s' if len(nums) != 1 else ''} {', '.join(map(str, nums))} from "
                f"a separate run (`python -m bench "
                f"--figures {figs} --merge-into …`) on {time.strftime('%Y-%m-%d')}: fargo "
                f"{fargo_revision()}; load average {start.split(': ', 1)[-1]} at its start, "
                f"{end.split(': ', 1)[-1]} at its end; sizes: {'; '.join(self._sizes())}")

    def report(self) -> None:
        self.method_notes()
        out = self.opts.out
        plot_path = out.with_name(out.stem + "-start-latency.png")
        plotted = False
        if self.opts.plot and self.results.samples:
            plotted = plot(self.results.samples, plot_path,
                           "Start latency, image cached (one at a time)")
            if not plotted:
                self.results.notes.append("matplotlib is not installed: no plot.")
        out.parent.mkdir(parents=True, exist_ok=True)
        text = markdown(self.results, self.header, plot_path.name if plotted else None)
        out.write_text(text)
        into = self.opts.merge_into
        if into is not None:
            into.write_text(merge(into.read_text(), text, self.merge_line()))
        print(table(self.results))
        log(f"wrote {out}" + (f" and {plot_path}" if plotted else "")
            + (f"; merged its figures into {into}" if into is not None else ""))


def fargo_revision() -> str:
    """The commit measured, and whether fargo/ differs from it."""
    from .env import ROOT

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    head = git("log", "-1", "--format=%h %s")
    if not head:
        return "(not a git checkout)"
    changed = git("status", "--porcelain", "--", "fargo").splitlines()
    return f"at {head[:70]}" + (f" with {len(changed)} uncommitted changes under fargo/"
                                if changed else " (fargo/ clean)")


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    if os.geteuid() != 0:
        print("bench: needs root (runc, cgroups, network namespaces)", file=sys.stderr)
        return 2
    term_as_interrupt()
    cleanup = Cleanup()
    bench = Bench(opts, cleanup)
    code = 0
    try:
        bench.setup()
        if "start" in opts.figures:
            bench.start_stop()
        if opts.figures & {"launch", "density", "api"}:
            bench.launch_density_api()
        if "pull" in opts.figures:
            bench.pull()
        if opts.figures & SERVICE_FIGURES:
            bench.services()
        if "alb" in opts.figures:
            bench.alb()
        if "logs" in opts.figures:
            bench.logs()
        if "deploy" in opts.figures:
            bench.deploy()
        if "kubenet" in opts.figures:
            bench.kubenet()
        if "gvisor" in opts.figures:
            bench.gvisor()
        if "crowd" in opts.figures:
            bench.crowd()
        bench.report()
    except KeyboardInterrupt:
        log("interrupted")
        code = 130
    except Exception:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        if code and bench.results.rows:
            print(table(bench.results))
        cleanup.run()
    return code
