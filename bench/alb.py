"""Figure 10 `alb`: small HTTP GETs through an internal application load balancer (fargo's
ELBv2 on HAProxy) to the 3 tasks of an ECS service with loadBalancers, beside the same load
sent straight to one of those tasks and beside HAProxy started by hand with the configuration
fargo generated; then a rolling deployment of the service under that load.

The load generator is wrk (Debian's package): a fixed number of connections for a fixed time,
its numbers read from a Lua `done()` hook as one JSON line. The three systems take turns in
every round, the order rotating, so a drift in the shared machine's load hits all alike.

The hand-run HAProxy is fargo's own haproxy.cfg (copied from /run/<prefix>-lb/<id>/ once the
targets are healthy) with three changes: its listener binds another port, its stats socket
is a path of ours, and the server-state-file lines are dropped (the file is fargo's to
write). It runs in the foreground (`haproxy -f`, no master) inside the load balancer's own
netns, so it has the same address, bridge, firewall path and targets."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .env import Cleanup, log
from .fargo_side import FargoBench
from .services import ServiceBench, Sizes, completed, private_ip
from .stats import Results, Row, Summary

WEB_PORT = 8080
LISTENER_PORT = 80
HAND_PORT = 8081  # the hand-run HAProxy's listener, in the load balancer's netns
# The direct path's round r goes to port DIRECT_PORT + r of the task (the same httpd, started
# once per port). wrk closes first about half the time, and each such socket holds its port
# for that destination in the host's TIME_WAIT for 60 s: tens of thousands of connections to
# one address and port within a minute run the host out of ports for it, and connect() then
# crawls (a round of ~500 req/s instead of ~3500). A port per round keeps rounds apart.
DIRECT_PORT = 8090


def web_command(direct_ports: int) -> list[str]:
    """Serves its revision at / and "ok" at /health, on WEB_PORT and the direct ports;
    exits at SIGTERM (the load balancer has drained it by then: the service deregisters a
    task and waits out the delay first)."""
    servers = "".join(f"httpd -f -p {port} -h /tmp/www & "
                      for port in [WEB_PORT, *range(DIRECT_PORT, DIRECT_PORT + direct_ports)])
    return ["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/health && "
            'echo "$REV" > /tmp/www/index.html; trap \'exit 0\' TERM; ' + servers + "wait"]


# Task size: a whole vCPU each, so the cgroup's CPU quota is not what caps one task's httpd
# (0.25 vCPU would throttle the direct path in 100 ms periods); the machine's 2 cores are.
TASK_CPU, TASK_MEMORY = "1024", "2048"
DEREGISTRATION_DELAY_S = 2

# wrk's Lua: done() prints one JSON line; with counting on, response() also counts non-2xx
# answers and the bodies (the revisions) across threads. response() makes wrk hand every
# answer to Lua, so it is used only for the rolling deployment, not for the throughput runs.
_LUA_DONE = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local n, all = -1, {}
  if COUNTING then
    n = 0
    for _, t in ipairs(threads) do
      n = n + t:get("non2xx")
      for k, v in pairs(t:get("bodies")) do all[k] = (all[k] or 0) + v end
    end
  end
  local parts = {}
  for k, v in pairs(all) do table.insert(parts, string.format('"%s": %d', k, v)) end
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"min_us": %d, "max_us": %d, "non2xx": %d, "bodies": {%s}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.min, latency.max, n,
    table.concat(parts, ", ")))
end
"""
_LUA_COUNT = r"""
COUNTING = true
function init(args) non2xx = 0; bodies = {} end
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
  local key = string.gsub(string.sub(body or "", 1, 24), "[^%w]", "")
  bodies[key] = (bodies[key] or 0) + 1
end
"""


@dataclass
class AlbSizes:
    rounds: int = 3
    seconds: int = 3  # each loaded wrk run (wrk takes whole seconds)
    single_seconds: int = 2  # each one-connection run
    connections: int = 8
    threads: int = 2
    tasks: int = 3


@dataclass
class WrkRun:
    """What one wrk run reported (latencies in ms)."""

    requests: int
    seconds: float
    connect: int
    read: int
    write: int
    status: int  # answers with a status above 399 (wrk's own count)
    timeout: int
    p50: float
    p99: float
    min: float
    max: float
    non2xx: int  # -1 unless counted by response()
    bodies: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def socket_errors(self) -> int:
        return self.connect + self.read + self.write + self.timeout

    @property
    def failed(self) -> int:
        """Socket errors and timeouts plus non-2xx answers (wrk's >399 count if uncounted)."""
        return self.socket_errors + (self.non2xx if self.non2xx >= 0 else self.status)

    def errors_text(self) -> str:
        parts = [f"{k} {v}" for k, v in (("connect", self.connect), ("read", self.read),
                                          ("write", self.write), ("timeout", self.timeout))
                 if v]
        if self.non2xx > 0:
            parts.append(f"non-2xx {self.non2xx}")
        elif self.non2xx < 0 and self.status:
            parts.append(f"status ≥ 400 {self.status}")
        return ", ".join(parts) or "none"

    @staticmethod
    def parse(stdout: str) -> WrkRun:
        line = next((x for x in stdout.splitlines() if x.startswith("WRK_JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result: {stdout[-1500:]}")
        d = json.loads(line.removeprefix("WRK_JSON "))
        return WrkRun(d["requests"], d["duration_us"] / 1e6, d["connect"], d["read"],
                      d["write"], d["status"], d["timeout"], d["p50_us"] / 1000,
                      d["p99_us"] / 1000, d["min_us"] / 1000, d["max_us"] / 1000,
                      d["non2xx"], {str(k): int(v) for k, v in d["bodies"].items()})


class Wrk:
    def __init__(self, workdir: Path, threads: int):
        self.threads = threads
        workdir.mkdir(parents=True, exist_ok=True)
        self.plain = workdir / "done.lua"
        self.counting = workdir / "count.lua"
        self.plain.write_text(_LUA_DONE)
        self.counting.write_text(_LUA_COUNT + _LUA_DONE)

    def argv(self, url: str, connections: int, seconds: int, count: bool) -> list[str]:
        threads = max(1, min(self.threads, connections))
        return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "2s",
                "-s", str(self.counting if count else self.plain), url]

    def run(self, url: str, connections: int, seconds: int) -> WrkRun:
        proc = subprocess.run(self.argv(url, connections, seconds, False), capture_output=True,
                              text=True, timeout=seconds + 30)
        if proc.returncode != 0:
            raise RuntimeError(f"wrk {url}: exit {proc.returncode}: {proc.stderr[-500:]}")
        return WrkRun.parse(proc.stdout)

    def start(self, url: str, connections: int, limit_s: int) -> subprocess.Popen[str]:
        """A counting run that goes on until stop() (or limit_s)."""
        return subprocess.Popen(self.argv(url, connections, limit_s, True),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def stop(proc: subprocess.Popen[str]) -> WrkRun:
        """SIGINT: wrk stops its threads and reports what it did so far."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"wrk: exit {proc.returncode}: {err[-500:]}")
        return WrkRun.parse(out)


class HandHaproxy:
    """fargo's haproxy.cfg with its listener moved to another port, run by us in the load
    balancer's netns."""

    def __init__(self, lb_dir: Path, netns: str, workdir: Path, port: int):
        self.lb_dir = lb_dir
        self.netns = netns
        self.workdir = workdir
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.changes: list[str] = []

    def config(self) -> str:
        original = (self.lb_dir / "haproxy.cfg").read_text()
        out = []
        binds = 0
        for line in original.splitlines():
            stripped = line.strip()
            if stripped.startswith("stats socket "):
                line = f"  stats socket {self.workdir / 'stats.sock'} mode 600 level admin"
            elif stripped.startswith(("server-state-file ", "load-server-state-from-file ")):
                continue
            elif stripped == f"bind 0.0.0.0:{LISTENER_PORT}":
                line = f"  bind 0.0.0.0:{self.port}"
                binds += 1
            out.append(line)
        if binds != 1:
            raise RuntimeError(f"figure 10: {binds} `bind 0.0.0.0:{LISTENER_PORT}` lines in "
                               f"{self.lb_dir / 'haproxy.cfg'}, wanted 1")
        servers = sum(1 for line in out if line.startswith("  server "))
        self.changes = [f"bind 0.0.0.0:{LISTENER_PORT} → 0.0.0.0:{self.port}",
                        "stats socket → a path of the benchmark's",
                        "server-state-file and load-server-state-from-file lines dropped",
                        f"{servers} server lines as fargo wrote them"]
        return "\n".join(out) + "\n"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(self.config())
        shutil.copy(self.lb_dir / "haproxy.cfg", self.workdir / "fargo-haproxy.cfg")
        check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c: {check.stderr[-800:]}")
        nsenter = shutil.which("nsenter") or "nsenter"
        with open(self.workdir / "haproxy.log", "ab") as out:
            self.proc = subprocess.Popen([nsenter, f"--net={self.netns}", "haproxy", "-f",
                                          str(cfg)], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def lb_dir_of(prefix: str, address: str) -> Path:
    """The run directory of the load balancer that holds this address (its lb.json)."""
    for d in sorted(Path(f"/run/{prefix}-lb").iterdir()):
        try:
            record = json.loads((d / "lb.json").read_text())
        except (OSError, ValueError):
            continue
        if any(a[2] == address for a in record.get("addresses", [])):
            return d
    raise RuntimeError(f"no /run/{prefix}-lb/*/lb.json holds {address}")


def wait_for(check: Any, timeout: float, what: str, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise TimeoutError(f"figure 10: {what} not reached in {timeout:g} s; last {last!r}")


def answers(url: str, n: int) -> set[str]:
    """Bodies of n GETs (new connections), empty if any failed."""
    seen = set()
    for _ in range(n):
        try:
            r = requests.get(url, timeout=2)
        except requests.RequestException:
            return set()
        if r.status_code != 200:
            return set()
        seen.add(r.text.strip())
    return seen


class AlbBench:
    def __init__(self, fb: FargoBench, results: Results, cleanup: Cleanup, run_id: str,
                 sizes: AlbSizes, workdir: Path):
        self.fb = fb
        self.results = results
        self.sizes = sizes
        self.workdir = workdir
        self.elb = fb.server.client("elbv2")
        self.ec2 = fb.server.client("ec2")
        self.arns: dict[str, str] = {}  # what to delete: listener, lb, tg
        cleanup.push("bench load balancer", self.delete_elb)  # after the service is gone
        self.sb = ServiceBench(fb, results, cleanup, f"{run_id}-alb", Sizes())
        self.hand: HandHaproxy | None = None
        self.haproxy: dict[str, HaproxyStats] = {}  # by system, after the runs
        self.syns: dict[str, Syns] = {}  # by system
        cleanup.push("hand-run HAProxy", self.stop_hand)
        self.wrk = Wrk(workdir, sizes.threads)

    # ------------------------------------------------------------ setup

    def make(self) -> tuple[str, str, str, list[str]]:
        """The service behind its load balancer: (service, family, lb address, task ips)."""
        fb, z = self.fb, self.sizes
        subnets = [s["SubnetId"] for s in self.ec2.describe_subnets()["Subnets"]][:2]
        vpc = self.ec2.describe_subnets(SubnetIds=subnets[:1])["Subnets"][0]["VpcId"]
        family = "albweb" + uuid.uuid4().hex[:6]
        for rev in ("1", "2"):
            fb.ecs.register_task_definition(
                family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
                cpu=TASK_CPU, memory=TASK_MEMORY, containerDefinitions=[{
                    "name": "app", "image": fb.image, "command": web_command(z.rounds),
                    "portMappings": [{"containerPort": WEB_PORT}],
                    "environment": [{"name": "REV", "value": rev}]}])
        tag = uuid.uuid4().hex[:6]
        tg = self.elb.create_target_group(
            Name=f"bench-{tag}", Protocol="HTTP", Port=WEB_PORT, VpcId=vpc, TargetType="ip",
            HealthCheckPath="/health", HealthCheckIntervalSeconds=5,
            HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2,
            UnhealthyThresholdCount=2)["TargetGroups"][0]
        self.arns["tg"] = tg["TargetGroupArn"]
        self.elb.modify_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"], Attributes=[
            {"Key": "deregistration_delay.timeout_seconds",
             "Value": str(DEREGISTRATION_DELAY_S)}])
        lb = self.elb.create_load_balancer(Name=f"bench-{tag}", Type="application",
                                           Scheme="internal", Subnets=subnets)[
            "LoadBalancers"][0]
        self.arns["lb"] = lb["LoadBalancerArn"]
        listener = self.elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=LISTENER_PORT,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])[
            "Listeners"][0]
        self.arns["listener"] = listener["ListenerArn"]
        name = "alb" + uuid.uuid4().hex[:4]
        fb.ecs.create_service(
            cluster=self.sb.cluster, serviceName=name, taskDefinition=f"{family}:1",
            desiredCount=z.tasks, launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {"subnets": subnets}},
            loadBalancers=[{"targetGroupArn": tg["TargetGroupArn"], "containerName": "app",
                            "containerPort": WEB_PORT}])
        self.sb.services.append(name)
        t0 = time.perf_counter()
        self.sb.wait_service(name, lambda s: completed(s, z.tasks), t0, 120,
                             f"{z.tasks} web tasks")
        wait_for(lambda: self.healthy(z.tasks), 120, f"{z.tasks} healthy targets")
        log(f"figure 10: service and ALB ready in {time.perf_counter() - t0:.1f} s")
        address = lb["AvailabilityZones"][0]["LoadBalancerAddresses"][0]["PrivateIPv4Address"]
        ips = [private_ip(t) for t in self.fb.describe(self.sb.task_arns(name),
                                                        self.sb.cluster)]
        return name, family, address, ips

    def healthy(self, n: int) -> list[str]:
        found = self.elb.describe_target_health(TargetGroupArn=self.arns["tg"])[
            "TargetHealthDescriptions"]
        ok = [d["Target"]["Id"] for d in found if d["TargetHealth"]["State"] == "healthy"]
        return ok if len(ok) == n == len(found) else []

    def delete_elb(self) -> None:
        import botocore.exceptions

        for key, call in (("listener", lambda a: self.elb.delete_listener(ListenerArn=a)),
                          ("lb", lambda a: self.elb.delete_load_balancer(LoadBalancerArn=a)),
                          ("tg", lambda a: self.elb.delete_target_group(TargetGroupArn=a))):
            arn = self.arns.pop(key, None)
            if arn:
                try:
                    call(arn)
                except botocore.exceptions.ClientError as err:
                    log(f"deleting the bench {key}: {err}")

    def stop_hand(self) -> None:
        if self.hand:
            self.hand.stop()

    # ------------------------------------------------------------ the figure

    def run(self) -> None:
        z = self.sizes
        name, family, address, ips = self.make()
        lb_dir = lb_dir_of(self.fb.server.prefix, address)
        netns = f"/var/run/netns/{self.fb.server.prefix}-lb-{lb_dir.name}"
        self.hand = HandHaproxy(lb_dir, netns, self.workdir / "hand-haproxy", HAND_PORT)
        self.hand.start()
        def url_of(key: str, r: int) -> str:
            return {"alb": f"http://{address}:{LISTENER_PORT}/",
                    "hand": f"http://{address}:{HAND_PORT}/",
                    "direct": f"http://{ips[0]}:{DIRECT_PORT + r}/"}[key]

        urls = {k: url_of(k, 0) for k in ("alb", "hand", "direct")}
        every = [url_of("alb", 0), url_of("hand", 0),
                 *(url_of("direct", r) for r in range(z.rounds))]
        for url in every:
            wait_for(lambda u=url: answers(u, 6) == {"1"}, 30, f"{url} answering")
        loaded: dict[str, list[WrkRun]] = {k: [] for k in urls}
        single: dict[str, list[WrkRun]] = {k: [] for k in urls}
        order = list(urls)
        log(f"figure 10: {z.rounds} rounds of wrk, {z.connections} connections × "
            f"{z.seconds} s and 1 connection × {z.single_seconds} s, for each of "
            f"{', '.join(order)}")
        pids = self.fb.container_pids(self.sb.task_arns(name))
        # Who opens the connections to the tasks: HAProxy in the LB's netns, or wrk here.
        lb_pid = int((lb_dir / "haproxy.pid").read_text())
        opener: dict[str, int | str] = {"alb": lb_pid, "hand": lb_pid, "direct": "self"}
        self.syns = {k: Syns() for k in urls}

        def drops() -> int:
            return sum(tcp_ext(pid, "ListenDrops") for pid in pids)

        for r in range(z.rounds):
            turn = order[r % len(order):] + order[:r % len(order)]
            for key in turn:
                d0, s0 = drops(), tcp_ext(opener[key], "TCPSynRetrans")
                w0 = tcp_ext(opener[key], "TW")
                loaded[key].append(self.wrk.run(url_of(key, r), z.connections, z.seconds))
                single[key].append(self.wrk.run(url_of(key, r), 1, z.single_seconds))
                self.syns[key].dropped += drops() - d0
                self.syns[key].retransmitted += tcp_ext(opener[key], "TCPSynRetrans") - s0
                self.syns[key].time_wait += tcp_ext(opener[key], "TW") - w0
        self.haproxy = {"alb": haproxy_stats(lb_dir / "stats.sock"),
                        "hand": haproxy_stats(self.hand.workdir / "stats.sock")}
        self.hand.stop()
        self._report(loaded, single)
        self._rolling(name, family, urls["alb"])
        self.sb.remove(name)
        self.delete_elb()

    def _rolling(self, name: str, family: str, url: str) -> None:
        z = self.sizes
        log(f"figure 10: rolling deployment of {z.tasks} tasks under wrk "
            f"({z.connections} connections) through the ALB")
        proc = self.wrk.start(url, z.connections, 600)
        try:
            time.sleep(1.0)  # load before the deployment too
            wall0, t0 = time.time(), time.perf_counter()
            self.fb.ecs.update_service(cluster=self.sb.cluster, service=name,
                                       taskDefinition=f"{family}:2")
            took, _ = self.sb.wait_service(
                name, lambda s: completed(s, z.tasks) and s["taskDefinition"].endswith(":2"),
                t0, 300, "the deployment")
            time.sleep(1.0)  # ... and after it
        finally:
            run = Wrk.stop(proc)
        new = self.sb.tasks_since(name, wall0)
        revs = ", ".join(f"rev {k} {v}" for k, v in sorted(run.bodies.items()))
        fig = f"10d. rolling deployment of {z.tasks} tasks behind the ALB, under wrk"
        self.results.add(Row(
            fig, "fargo ALB, failed requests", f"failed of {run.requests}",
            value=str(run.failed), target="0 failed", ok=run.failed == 0,
            note=f"wrk, {z.connections} connections, from 1 s before UpdateService to 1 s "
                 f"after the deployment COMPLETED ({run.seconds:.1f} s, {run.rps:.0f} req/s); "
                 f"answered: {revs}; failures: {run.errors_text()}; {len(new)} tasks started "
                 f"for {z.tasks}"))
        self.results.add(Row(fig, "↳ deployment", "s", value=took,
                             note="UpdateService to a new revision until one deployment, "
                                  f"COMPLETED, {z.tasks} running"))

    def _report(self, loaded: dict[str, list[WrkRun]], single: dict[str, list[WrkRun]]) -> None:
        z = self.sizes
        label = {"alb": f"fargo ALB → {z.tasks} tasks",
                 "hand": f"HAProxy by hand, same config → {z.tasks} tasks",
                 "direct": "straight to one task"}
        rps = {k: Summary.of([r.rps for r in runs]) for k, runs in loaded.items()}
        side = {"alb": "HAProxy", "hand": "HAProxy", "direct": "the host (wrk)"}
        fig = f"10. HTTP GET throughput, {z.connections} connections"
        hand = rps["hand"].p50
        ratio = rps["alb"].p50 / hand if hand else float("nan")
        for key in ("alb", "hand", "direct"):
            row = Row(fig, label[key], "req/s", summary=rps[key],
                      note=f"{len(loaded[key])} wrk run{'s' if len(loaded[key]) != 1 else ''} of "
                           f"{z.seconds} s ({', '.join(f'{r.rps:.0f}' for r in loaded[key])} "
                           f"req/s in turn); errors: {merged_errors(loaded[key])}"
                           + (f"; {self.haproxy[key].text()}" if key in self.haproxy
                              else "")
                           + (f"; {self.syns[key].text(side[key])}" if key in self.syns
                              else ""))
            if key == "alb":
                row.target, row.ok = f"≥ 0.8 × by hand ({0.8 * hand:.0f} req/s)", ratio >= 0.8
            self.results.add(row)
        self.results.add(Row(fig, "ratio fargo ALB / HAProxy by hand (p50)", "×", value=ratio,
                             target="≥ 0.8×", ok=ratio >= 0.8))
        direct_single = merged(single["direct"]).p50
        for figure, runs_of, conns in (
                (f"10b. latency at {z.connections} connections", loaded, z.connections),
                ("10c. latency, one connection", single, 1)):
            for key in ("alb", "hand", "direct"):
                s = merged(runs_of[key])
                rate = sum(r.rps for r in runs_of[key]) / len(runs_of[key])
                row = Row(figure, label[key], "ms", summary=s,
                          note=f"wrk's per-request latency; {conns} connection"
                               f"{'s' if conns > 1 else ''}; p50/p99 the median of the "
                               f"{len(runs_of[key])} runs' own; "
                               f"{rate:.0f} req/s"
                               + (f", one after another: {1000 / rate:.2f} ms each, any "
                                  "new connection included" if conns == 1 and rate else "")
                               + f"; errors: {merged_errors(runs_of[key])}")
                if key == "alb" and conns == 1:
                    added = s.p50 - direct_single
                    row.target = f"p50 ≤ direct + 1 ms ({direct_single + 1:.2f} ms)"
                    row.ok = added <= 1.0
                self.results.add(row)
        added = merged(single["alb"]).p50 - direct_single
        self.results.add(Row("10c. latency, one connection", "added p50, fargo ALB − direct",
                             "ms", value=added, target="≤ 1 ms", ok=added <= 1.0))


@dataclass
class HaproxyStats:
    """One HAProxy's own counters for the servers of its backends (`show stat`)."""

    sessions: list[int]  # stot, server by server
    retries: int  # wretr: connections to a server tried again
    redispatches: int  # wredis: ... on another server
    connect_errors: int  # econ
    response_errors: int  # eresp
    error: str = ""

    def text(self) -> str:
        if self.error:
            return f"(show stat: {self.error})"
        return (f"sessions per server {' / '.join(map(str, self.sessions))}; HAProxy's "
                f"retries {self.retries}, redispatches {self.redispatches}, connection "
                f"errors {self.connect_errors}, response errors {self.response_errors}")


def haproxy_stats(stats_sock: Path) -> HaproxyStats:
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(stats_sock))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError as err:
        return HaproxyStats([], 0, 0, 0, 0, str(err))
    lines = data.decode(errors="replace").splitlines()
    if not lines or not lines[0].startswith("# "):
        return HaproxyStats([], 0, 0, 0, 0, "no CSV")
    head = lines[0][2:].split(",")
    rows = [dict(zip(head, line.split(","), strict=False)) for line in lines[1:]
            if line and not line.startswith("#")]
    servers = [r for r in rows if r.get("svname") not in ("FRONTEND", "BACKEND")]

    def total(col: str) -> int:
        return sum(int(r.get(col) or 0) for r in servers)

    return HaproxyStats([int(r.get("stot") or 0) for r in servers], total("wretr"),
                        total("wredis"), total("econ"), total("eresp"))


def tcp_ext(pid: int | str, name: str) -> int:
    """One TcpExt counter of the netns that process is in (/proc/<pid>/net is its netns')."""
    try:
        lines = Path(f"/proc/{pid}/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table.get(name, 0))
    return 0


@dataclass
class Syns:
    """What a path's connection set-ups met during its runs."""

    dropped: int = 0  # SYNs dropped at the tasks' full listen queues (ListenDrops)
    retransmitted: int = 0  # SYNs the connecting side sent again (TCPSynRetrans), ~1 s later
    time_wait: int = 0  # the connecting side's sockets that went into TIME_WAIT

    def text(self, side: str) -> str:
        return (f"over its runs, SYNs dropped at the tasks' full listen queues {self.dropped}, "
                f"SYNs retransmitted by {side} {self.retransmitted}, its sockets into "
                f"TIME_WAIT {self.time_wait}")


def merged(runs: list[WrkRun]) -> Summary:
    """Several runs' latencies as one row: n requests in all, min and max of all, and the
    median of the runs' own p50 and p99 (wrk gives percentiles, not samples)."""
    def med(xs: list[float]) -> float:
        return Summary.of(xs).p50

    return Summary(sum(r.requests for r in runs), min(r.min for r in runs),
                   med([r.p50 for r in runs]), med([r.p99 for r in runs]),
                   max(r.max for r in runs))


def merged_errors(runs: list[WrkRun]) -> str:
    total = sum(r.failed for r in runs)
    if not total:
        return "none"
    return "; ".join(r.errors_text() for r in runs if r.failed)


def method_notes(sizes: AlbSizes, hand_changes: list[str]) -> list[str]:
    z = sizes
    rounds = f"{z.rounds} round{'s' if z.rounds != 1 else ''}"
    return [
        f"Load balancer (10): an internal ALB (two subnets, the VPC's default security group), "
        f"an HTTP:{LISTENER_PORT} listener forwarding to an ip target group (health check GET "
        f"/health every 5 s, 2 to rise), and a {z.tasks}-task ECS service with loadBalancers "
        f"of busybox `httpd -f -p {WEB_PORT}` serving a 2-byte page ({TASK_CPU} CPU units "
        "each, so no task's CPU quota caps it). wrk (Debian's package) on the host sends GET / "
        f"with {z.connections} connections over {z.threads} threads for {z.seconds} s per run, "
        f"then with 1 connection for {z.single_seconds} s, to: the load balancer's address "
        f"(fargo's HAProxy), the same address on port {HAND_PORT} (HAProxy by hand, below), "
        f"and one of the tasks' own address (port {DIRECT_PORT} + the round: the same httpd "
        "on a port per round, since the host's TIME_WAIT sockets from one round would leave "
        f"the next too few source ports for that address); {rounds}, the order rotating. "
        "busybox "
        "httpd closes every connection after its answer: straight to a task, wrk opens one "
        "per request (its latency runs from the request's write, so the handshake is not in "
        "it); through HAProxy the client's connection is kept and HAProxy opens one to a "
        "task per request (inside the latency). 10c is the one-connection run: the latency "
        "of a request that waits for no other, where the ≤ 1 ms goal is judged (its row "
        "notes also give 1 / rate, the time each request took in turn with the direct "
        "path's new connection included); 10b shows the same under load, mostly queueing. "
        "wrk shares the 2 cores with everything measured.",
        "Latency tails (10b): wrk corrects its latencies for coordinated omission before it "
        "reports them (for each response slower than the run's mean interval per connection "
        "it adds the samples a client sending at that steady rate would have had queued "
        "behind it), so a single 1 s stall among thousands of requests can move p99 to "
        "near 1 s. Such stalls come from busybox httpd's listen queue (a backlog of 9, one "
        "process accepting and forking) running full: a SYN dropped there is sent again by "
        "the kernel 1 s later. The row notes of 10 count both, per path "
        "(ListenDrops in the tasks' netns; TCPSynRetrans in the load balancer's netns for "
        "the two HAProxies, in the host's for wrk straight to a task, where the stall falls "
        "in wrk's connect, outside its latency).",
        "HAProxy by hand (10): `nsenter --net=<the load balancer's netns> haproxy -f "
        "<copy>`, in the foreground with no master process, where the copy is fargo's own "
        "haproxy.cfg from /run/<prefix>-lb/<id>/, read once the targets were healthy, with "
        "these changes: " + ("; ".join(hand_changes) or "(not started in this run)")
        + ". So the same nbthread, maxconn, user, timeouts, health checks and servers, on "
        "the same address, bridge and firewall path; fargo's master-worker HAProxy stays up "
        "beside it, idle while the other is measured. The row notes give each one's "
        "sessions per server and retries (HAProxy's own counters, `show stat`).",
        f"Rolling deployment (10d): the same service updated to a new revision "
        f"(deregistration delay {DEREGISTRATION_DELAY_S} s, minimumHealthyPercent 100, "
        f"maximumPercent 200) while wrk sends through the ALB with {z.connections} "
        "connections, from 1 s before the UpdateService until 1 s after the deployment "
        "COMPLETED (then SIGINT, after which wrk reports). A Lua response() hook counts "
        "non-2xx answers and each revision's answers; failed = non-2xx + wrk's socket "
        "errors (connect, read, write) + its timeouts (2 s)."]

