"""Figure 14 `gvisor`: the gVisor sandbox tier beside its floor and beside the runc tier.

14. start latency (RunTask → RUNNING, one at a time) of fargo's gVisor tier (platform version
    1.4.0-gvisor) and runc tier (1.4.0), beside bare `runsc run --detach` of a busybox bundle,
    each in a fresh netns made just before it (the floor: what runsc alone costs).
14b. launch rate: a burst of tasks, RunTask to all RUNNING, per tier; bare runsc: the same
    number of `runsc run --detach` one after another.
14c. memory per idle task: the memory cgroup's usage of each idle sandbox, read the same way
    for all three (bare runsc's sandboxes get a cgroup of their own).
14d. what a syscall-heavy workload pays: `dd bs=1` (a read and a write per record) and a loop
    creating files, timed inside the task by busybox `time`, per operation, gVisor / runc.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fargo.agent.cgroups import TaskCgroups, hierarchies
from fargo.agent.gvisor import platform

from .env import Cleanup, log
from .fargo_side import FargoBench, task_id
from .stats import Results, Row, Summary

TIERS = {"gvisor": "1.4.0-gvisor", "runc": "1.4.0"}
IDLE = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


@dataclass(frozen=True)
class GvisorSizes:
    starts: int = 20
    launch: int = 10
    idle: int = 5
    dd_gvisor: int = 20_000
    dd_runc: int = 500_000
    files_gvisor: int = 500
    files_runc: int = 5_000
    settle: float = 3.0  # seconds idle sandboxes settle before their memory is read


def method_notes(z: GvisorSizes) -> list[str]:
    return [f"gVisor tier (14): {z.starts} starts per system, a burst of {z.launch}, "
            f"{z.idle} idle sandboxes for memory; bare runsc runs the same busybox bundle "
            f"with the platform fargo picked ({platform()}) and --network=host in a netns of "
            "its own, as fargo's tier does. Memory is each sandbox's memory cgroup usage "
            "(sentry, gofer and the container's pages, page cache included). 14d times "
            "dd with bs=1 (one read and one write per record) and a loop of file creations "
            "inside the task with busybox time (10 ms resolution; the counts differ per tier "
            "so that each run lasts long enough)."]


class Bare:
    """Bare runsc: the floor."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.root = tmp / "runsc-root"
        self.bundle = tmp / "bundle"
        self.runsc = shutil.which("runsc") or "/usr/bin/runsc"
        self.made: list[tuple[str, str]] = []  # (container id, netns)

    def flags(self) -> list[str]:
        return [f"--root={self.root}", f"--platform={platform(self.runsc)}", "--network=host",
                "--overlay2=none"]

    def prepare(self) -> None:
        rootfs = self.bundle / "rootfs"
        (rootfs / "bin").mkdir(parents=True, exist_ok=True)
        for d in ("proc", "dev", "sys", "tmp", "etc"):
            (rootfs / d).mkdir(exist_ok=True)
        shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
        for applet in ("sh", "sleep"):
            link = rootfs / "bin" / applet
            if not link.exists():
                link.symlink_to("busybox")
        self.root.mkdir(parents=True, exist_ok=True)

    def config(self, cid: str, netns: str) -> dict[str, Any]:
        return {"ociVersion": "1.0.2",
                "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": IDLE,
                            "env": ["PATH=/bin"], "cwd": "/"},
                "root": {"path": str(self.bundle / "rootfs"), "readonly": False},
                "hostname": "bare",
                "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
                "linux": {"cgroupsPath": f"fargo-bench/{cid}",
                          "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                                         {"type": "mount"},
                                         {"type": "network", "path": f"/run/netns/{netns}"}]}}

    def start(self) -> float:
        """Seconds of a fresh netns plus `runsc run --detach` (returns once it runs)."""
        cid = "b" + uuid.uuid4().hex[:10]
        netns = f"fgb-{cid}"
        t0 = time.perf_counter()
        subprocess.run(["ip", "netns", "add", netns], check=True)
        self.made.append((cid, netns))
        bundle = self.tmp / cid
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(self.config(cid, netns)))
        subprocess.run([self.runsc, *self.flags(), "run", "--detach", "--bundle", str(bundle),
                        cid], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0

    def memory(self) -> list[int]:
        out = []
        for cid, _ in self.made:
            usage = _usage(_memory_root() / "fargo-bench" / cid)
            if usage is not None:
                out.append(usage)
        return out

    def stop_all(self) -> None:
        for cid, netns in self.made:
            subprocess.run([self.runsc, *self.flags(), "delete", "--force", cid],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(["ip", "netns", "delete", netns], stderr=subprocess.DEVNULL)
            shutil.rmtree(self.tmp / cid, ignore_errors=True)
        self.made = []
        for h in hierarchies():
            base = h.mount / h.own / "fargo-bench"
            if base.is_dir():
                for d in base.iterdir():
                    if d.is_dir():
                        d.rmdir()
                base.rmdir()


def _memory_root() -> Path:
    for h in hierarchies():
        if "memory" in h.key.split(","):
            return h.mount / h.own
    raise RuntimeError("no memory cgroup hierarchy")


def _usage(path: Path) -> int | None:
    try:
        return int((path / "memory.usage_in_bytes").read_text())
    except (OSError, ValueError):
        return None


class GvisorBench:
    def __init__(self, fb: FargoBench, results: Results, cleanup: Cleanup, run_id: str,
                 sizes: GvisorSizes, tmp: Path):
        self.fb = fb
        self.results = results
        self.sizes = sizes
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.bare = Bare(tmp)
        cleanup.push("bare runsc sandboxes", self.bare.stop_all)

    def run_task(self, tier: str, count: int = 1, command: list[str] | None = None) -> list[str]:
        family = self.fb.family if command is None else self.fb.register(self.fb.image, command)
        out = self.fb.ecs.run_task(
            taskDefinition=family, launchType="FARGATE", count=count,
            platformVersion=TIERS[tier],
            networkConfiguration={"awsvpcConfiguration": {"subnets": [self.fb.subnet]}})
        if out["failures"]:
            raise RuntimeError(f"RunTask failures: {out['failures'][:2]}")
        return [t["taskArn"] for t in out["tasks"]]

    def run(self) -> None:
        z = self.sizes
        if not shutil.which("runsc"):
            self.results.notes.append("runsc is not installed: figure 14 is missing.")
            return
        self.bare.prepare()
        starts: dict[str, list[float]] = {"bare": [], "gvisor": [], "runc": []}
        for _ in range(z.starts):  # interleaved, so load drifts hit all three alike
            starts["bare"].append(self.bare.start())
            for tier in TIERS:
                t0 = time.perf_counter()
                arn = self.run_task(tier)[0]
                self.fb.wait([arn], "RUNNING")
                starts[tier].append(time.perf_counter() - t0)
                self.fb.stop_all([arn])
            self.bare.stop_all()
        fig = "14. start latency, one at a time"
        label = {"bare": f"bare runsc run ({platform()}), fresh netns",
                 "gvisor": "fargo gVisor tier (1.4.0-gvisor)", "runc": "fargo runc tier (1.4.0)"}
        summary = {k: Summary.of([v * 1000 for v in vs]) for k, vs in starts.items()}
        for key in ("bare", "gvisor", "runc"):
            self.results.add(Row(fig, label[key], "ms", summary=summary[key]))
        ratio = summary["gvisor"].p50 / summary["bare"].p50
        self.results.add(Row(fig, "p50 gVisor tier / bare runsc", "×", value=round(ratio, 2),
                             target="≤ 1.3×", ok=ratio <= 1.3))
        self.launch()
        self.memory()
        self.syscalls()

    def launch(self) -> None:
        z = self.sizes
        fig = f"14b. launch rate, a burst of {z.launch}"
        t0 = time.perf_counter()
        for _ in range(z.launch):
            self.bare.start()
        bare = z.launch / (time.perf_counter() - t0)
        self.bare.stop_all()
        self.results.add(Row(fig, "bare runsc run, one after another", "tasks/s",
                             value=round(bare, 1)))
        for tier in TIERS:
            t0 = time.perf_counter()
            arns = self.run_task(tier, z.launch)
            self.fb.wait(arns, "RUNNING", timeout=300)
            rate = z.launch / (time.perf_counter() - t0)
            self.fb.stop_all(arns)
            self.results.add(Row(fig, f"fargo {tier} tier", "tasks/s", value=round(rate, 1)))

    def memory(self) -> None:
        z = self.sizes
        fig = f"14c. memory per idle task ({z.idle} idle)"
        for _ in range(z.idle):
            self.bare.start()
        time.sleep(z.settle)
        mib = {"bare": [u / 2**20 for u in self.bare.memory()]}
        self.bare.stop_all()
        for tier in TIERS:
            arns = self.run_task(tier, z.idle)
            self.fb.wait(arns, "RUNNING", timeout=300)
            time.sleep(z.settle)
            found = []
            for arn in arns:
                path = TaskCgroups.here(task_id(arn)).dir("memory")
                usage = _usage(path) if path else None
                if usage is not None:
                    found.append(usage / 2**20)
            mib[tier] = found
            self.fb.stop_all(arns)
        names = {"bare": "bare runsc sandbox", "gvisor": "fargo gVisor task",
                 "runc": "fargo runc task"}
        p50 = {}
        for key, values in mib.items():
            if values:
                s = Summary.of(values)
                p50[key] = s.p50
                self.results.add(Row(fig, names[key], "MiB", summary=s))
        if "bare" in p50 and "gvisor" in p50:
            ratio = p50["gvisor"] / p50["bare"]
            self.results.add(Row(fig, "p50 gVisor tier / bare runsc", "×",
                                 value=round(ratio, 2), target="≤ 1.2×", ok=ratio <= 1.2))

    def syscalls(self) -> None:
        z = self.sizes
        fig = "14d. a syscall-heavy workload, per operation"
        per_op: dict[tuple[str, str], float] = {}
        for tier in TIERS:
            dd, files = ((z.dd_gvisor, z.files_gvisor) if tier == "gvisor"
                         else (z.dd_runc, z.files_runc))
            script = (f"time -p sh -c 'dd if=/dev/zero of=/dev/null bs=1 count={dd} "
                      f"2>/dev/null'; mkdir -p /tmp/f; time -p sh -c 'i=0; while [ $i -lt "
                      f"{files} ]; do : > /tmp/f/$i; i=$((i+1)); done'")
            arn = self.run_task(tier, command=["sh", "-c", script])[0]
            self.fb.wait([arn], "STOPPED", timeout=300)
            # The container's k8s-file log, where the server keeps it (stderr lines too).
            log_file = self.fb.server.state_dir / "tasks" / task_id(arn) / "app" / "container.log"
            text = log_file.read_text() if log_file.exists() else ""
            reals = [float(line.split()[-1]) for line in text.splitlines()
                     if line.split(" ", 3)[-1].startswith("real ")]
            if len(reals) < 2:
                log(f"figure 14d: no timings in the {tier} task's log: {text[-300:]!r}")
                continue
            per_op[(tier, "dd")] = reals[0] / dd * 1e6
            per_op[(tier, "files")] = reals[1] / files * 1e6
        for op, what in (("dd", "dd bs=1: one read + one write"),
                         ("files", "create a file (sh loop)")):
            for tier in TIERS:
                if (tier, op) in per_op:
                    self.results.add(Row(fig, f"{what}, {tier}", "µs",
                                         value=round(per_op[(tier, op)], 2)))
            if ("gvisor", op) in per_op and ("runc", op) in per_op and per_op[("runc", op)]:
                self.results.add(Row(fig, f"{what}, gVisor / runc", "×",
                                     value=round(per_op[("gvisor", op)] / per_op[("runc", op)],
                                                 1)))
