"""Figure 13 `kubenet`: Kubernetes networking on EKS Fargate, measured from inside a pod as
its containers see it (an EKS cluster, a Fargate profile for the namespace, `fargo
kubeconfig`, the real kubectl).

13  HTTP GETs from a client pod's network namespace through a Service's ClusterIP (kernel
    DNAT in the host) to one busybox httpd pod, beside the same GETs straight to that pod's
    IP, in the same run, rounds alternating: requests per second under wrk (Debian's
    package, run by `nsenter --net=<the client pod's netns>`).
13b the same two paths one request at a time (a small client of ours in a thread that
    entered the client pod's netns by setns): connect, GET, the whole answer, p50 / p99.
13c DNS from the client pod: A queries of the Service's name
    (`<svc>.<ns>.svc.cluster.local`) to the cluster DNS address, beside the same kind of
    query of a name the host may ask (the pod's private name) from the pod and from the
    host to fargo's resolver on loopback: queries per second with a window of queries in
    flight, and p50 / p99.
13d a rolling update (`kubectl rollout restart`) of a 3-replica Deployment behind a Service
    and an ALB Ingress (ingressClassName alb, target-type ip), under steady wrk load through
    the ClusterIP (from the client pod) and through the ALB (from the host): failed requests.

A piece the server does not serve yet (no Service kind, no cluster DNS, no ALB from an
Ingress) makes its rows say "not measured" and why, never a number."""

from __future__ import annotations

import json
import random
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fargo.agent import holder
from fargo.agent.netsys import enter_netns, run_in_thread

from .alb import Wrk, WrkRun, merged, merged_errors
from .deploy import NS, DeployBench, DeploySizes
from .env import Cleanup, log
from .fargo_side import FargoBench
from .stats import Results, Row, Summary

T = TypeVar("T")
VIP_PORT = 80  # the Service's first port; round r uses VIP_PORT + r
VIP_TARGET = 8100  # ... its targetPort 8100 + r in the solo pod
DIRECT_PORT = 8200  # the direct path's round r goes to 8200 + r of the same pod
WEB_PORT = 8080  # the Deployment's pods
GRACE_S = 2
DEREGISTRATION_DELAY_S = 2


@dataclass
class KubeNetSizes:
    rounds: int = 3
    seconds: int = 3  # each wrk run (whole seconds)
    connections: int = 8
    latency_n: int = 1000  # sequential requests per path (13b)
    dns_seconds: float = 2.0
    dns_window: int = 8  # queries in flight (13c)
    dns_rounds: int = 2
    replicas: int = 3
    threads: int = 2
    rollout_timeout: int = 180


class NotMeasured(Exception):
    """A piece fargo does not serve (yet): its rows say so instead of a number."""


# ---------------------------------------------------------------- netns helpers

def in_netns(path: str, fn: Callable[[], T]) -> T:
    """fn() run in a fresh thread that entered the netns at path (setns affects only the
    calling thread, and the thread ends with it: the bench's own threads stay in the host's)."""

    def work() -> T:
        enter_netns(path)
        return fn()

    return run_in_thread(work)


def netns_of_ip(prefix: str, ip: str) -> str:
    """The pinned netns (of this server's prefix) whose eth0 holds ip: a path of this
    process into the holder (agent/holder.py), where the server pins its tasks' netns."""
    for name in holder.names():
        if not name.startswith(prefix + "-"):
            continue
        path = holder.path(name)
        out = subprocess.run(["nsenter", f"--net={path}", "ip", "-4", "-o", "addr", "show"],
                             capture_output=True, text=True, timeout=10).stdout
        if any(f" {ip}/" in line for line in out.splitlines()):
            return path
    raise RuntimeError(f"no netns pinned as {prefix}-* holds {ip}")


# ---------------------------------------------------------------- HTTP, one at a time


def http_once(ip: str, port: int, timeout: float = 2.0) -> tuple[float, bytes]:
    """Seconds for connect + GET / + the whole answer (busybox httpd closes), and its body."""
    t0 = time.perf_counter()
    with socket.create_connection((ip, port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    took = time.perf_counter() - t0
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
        raise RuntimeError(f"{ip}:{port}: {head[:80]!r}")
    return took, body


def alternate(paths: dict[str, tuple[str, int]], n: int) -> dict[str, list[float]]:
    """n requests per path, interleaved (the order flipping each time), in ms."""
    keys = list(paths)
    out: dict[str, list[float]] = {k: [] for k in keys}
    for i in range(n):
        for k in (keys if i % 2 == 0 else keys[::-1]):
            took, _ = http_once(*paths[k])
            out[k].append(took * 1000)
    return out


def answers_from(ip: str, port: int) -> bool:
    try:
        http_once(ip, port, timeout=1.0)
        return True
    except (OSError, RuntimeError):
        return False


# ---------------------------------------------------------------- DNS load


def dns_query(qid: int, name: str, qtype: int = 1) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + \
        struct.pack("!HH", qtype, 1)


@dataclass
class DnsRun:
    sent: int
    answered: int  # NOERROR with at least one answer record
    bad: int  # any other reply (rcode, or no answer)
    lost: int  # no reply within the timeout
    seconds: float
    latencies: list[float] = field(default_factory=list)  # ms, answered queries
    rcodes: dict[int, int] = field(default_factory=dict)

    @property
    def qps(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0


def dns_load(server: tuple[str, int], name: str, window: int, seconds: float,
             timeout: float = 0.5) -> DnsRun:
    """A closed loop of `window` UDP queries in flight for `seconds`; a query unanswered
    after `timeout` is lost and replaced by a new one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(server)
    sock.settimeout(0.02)
    pending: dict[int, float] = {}
    run = DnsRun(0, 0, 0, 0, 0.0)
    qid = random.randint(0, 0xFFFF)

    def send() -> None:
        nonlocal qid
        qid = (qid + 1) & 0xFFFF
        while qid in pending:
            qid = (qid + 1) & 0xFFFF
        pending[qid] = time.perf_counter()
        sock.send(dns_query(qid, name))
        run.sent += 1

    t0 = time.perf_counter()
    end = t0 + seconds
    try:
        for _ in range(window):
            send()
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            try:
                data = sock.recv(4096)
            except TimeoutError:
                data = b""
            except ConnectionRefusedError:
                raise RuntimeError(f"DNS {server[0]}:{server[1]}: connection refused") from None
            now = time.perf_counter()
            if len(data) >= 12:
                rid, flags, _qd, ancount = struct.unpack("!HHHH", data[:8])
                sent_at = pending.pop(rid, None)
                if sent_at is not None:
                    rcode = flags & 0xF
                    run.rcodes[rcode] = run.rcodes.get(rcode, 0) + 1
                    if rcode == 0 and ancount > 0:
                        run.answered += 1
                        run.latencies.append((now - sent_at) * 1000)
                    else:
                        run.bad += 1
                    send()
            for rid, sent_at in list(pending.items()):
                if now - sent_at > timeout:
                    del pending[rid]
                    run.lost += 1
                    send()
    finally:
        sock.close()
    run.seconds = time.perf_counter() - t0
    return run


def dns_first(server: tuple[str, int], name: str) -> str:
    """One query: "" if answered with a record, else what came back."""
    run = dns_load(server, name, 1, 0.3, timeout=0.25)
    if run.answered:
        return ""
    if run.rcodes:
        return "rcode " + ",".join(str(k) for k in sorted(run.rcodes))
    return "no reply"


# ---------------------------------------------------------------- the figure


class NsWrk(Wrk):
    """wrk run inside a netns (nsenter --net): the client pod's view of the network."""

    def __init__(self, workdir: Path, threads: int, netns: str | None):
        super().__init__(workdir, threads)
        self.netns = netns

    def argv(self, url: str, connections: int, seconds: int, count: bool) -> list[str]:
        base = super().argv(url, connections, seconds, count)
        return (["nsenter", f"--net={self.netns}", *base] if self.netns else base)


def web_command(ports: list[int]) -> list[str]:
    servers = "".join(f"httpd -f -p {p} -h /tmp/www & " for p in ports)
    return ["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/health && "
            'echo "$REV" > /tmp/www/index.html; trap \'exit 0\' TERM; ' + servers + "wait"]


class KubeNetBench:
    def __init__(self, fb: FargoBench, results: Results, cleanup: Cleanup, run_id: str,
                 sizes: KubeNetSizes, tmp: Path):
        self.fb = fb
        self.results = results
        self.sizes = sizes
        self.tmp = tmp
        self.kube = DeployBench(fb, results, cleanup, f"{run_id}n", DeploySizes(), tmp)
        self.has_wrk = shutil.which("wrk") is not None and shutil.which("nsenter") is not None
        self.client_ns = ""
        self.ips: dict[str, str] = {}
        self.vip = ""
        self.web_vip = ""
        self.missing: dict[str, str] = {}  # part -> why it was not measured
        self.gates_refused = ""  # the warning, when the server refused readiness gates

    # ------------------------------------------------------------ objects
    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.kube.kubectl(*args, **kw)

    def apply(self, obj: dict[str, Any]) -> str:
        """"" when applied, else kubectl's complaint."""
        proc = self.kubectl("apply", "-f", "-", stdin=json.dumps(obj), check=False)
        return "" if proc.returncode == 0 else proc.stderr.strip()[-300:]

    def _pod(self, command: list[str], probe_port: int | None,
             cpu: str = "250m", memory: str = "512Mi") -> dict[str, Any]:
        container: dict[str, Any] = {
            "name": "app", "image": self.fb.image, "command": command,
            "resources": {"requests": {"cpu": cpu, "memory": memory}},
            "env": [{"name": "REV", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}
        if probe_port:
            container["ports"] = [{"containerPort": probe_port, "name": "http"}]
            container["readinessProbe"] = {"httpGet": {"path": "/health", "port": probe_port},
                                           "periodSeconds": 1, "failureThreshold": 1}
        return {"terminationGracePeriodSeconds": GRACE_S, "containers": [container]}

    def objects(self) -> None:
        z = self.sizes
        r = z.rounds + 1  # the last port pair is 13b's
        solo_ports = [VIP_TARGET + i for i in range(r)] + [DIRECT_PORT + i for i in range(r)]
        pods: list[dict[str, Any]] = [
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "client", "namespace": NS, "labels": {"app": "client"}},
             "spec": self._pod(["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"], None)},
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "solo", "namespace": NS, "labels": {"app": "solo"}},
             # A whole vCPU: a quarter's CFS quota would throttle httpd in 100 ms periods.
             "spec": self._pod(web_command(solo_ports), VIP_TARGET, "1", "2Gi")},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "web", "namespace": NS},
             "spec": {"replicas": z.replicas, "selector": {"matchLabels": {"app": "web"}},
                      "template": {"metadata": {"labels": {"app": "web"}},
                                   "spec": self._pod(web_command([WEB_PORT]), WEB_PORT)}}}]
        # As the AWS docs ask for zero-downtime rollouts behind ip targets: new pods count as
        # Ready only once their target is healthy in the load balancer.
        self.kubectl("label", "namespace", NS, "elbv2.k8s.aws/pod-readiness-gate-inject=enabled")
        for obj in pods:
            err = self.apply(obj)
            if err:
                raise RuntimeError(f"figure 13: {obj['kind']} {obj['metadata']['name']}: {err}")
        services = [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "solo", "namespace": NS},
             "spec": {"selector": {"app": "solo"},
                      "ports": [{"name": f"p{i}", "port": VIP_PORT + i,
                                 "targetPort": VIP_TARGET + i} for i in range(r)]}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
             "spec": {"selector": {"app": "web"},
                      "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}]
        for obj in services:
            err = self.apply(obj)
            if err:
                self.missing["service"] = f"kubectl apply of a Service: {err}"
                break
        ingress = {
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": NS, "annotations": {
                "alb.ingress.kubernetes.io/scheme": "internal",
                "alb.ingress.kubernetes.io/target-type": "ip",
                "alb.ingress.kubernetes.io/healthcheck-path": "/health",
                "alb.ingress.kubernetes.io/healthcheck-interval-seconds": "5",
                "alb.ingress.kubernetes.io/healthcheck-timeout-seconds": "2",
                "alb.ingress.kubernetes.io/healthy-threshold-count": "2",
                "alb.ingress.kubernetes.io/target-group-attributes":
                    f"deregistration_delay.timeout_seconds={DEREGISTRATION_DELAY_S}"}},
            "spec": {"ingressClassName": "alb", "rules": [{"http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}
        if "service" in self.missing:
            self.missing["alb"] = "no Service for the Ingress to send to"
        else:
            # EKS clusters get their IngressClass from the controller's chart; ours may be
            # there already, or the kind may be missing (then the Ingress says why).
            self.apply({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                        "metadata": {"name": "alb"},
                        "spec": {"controller": "ingress.k8s.aws/alb"}})
            err = self.apply(ingress)
            if err:
                self.missing["alb"] = f"kubectl apply of an Ingress: {err}"
        self.kubectl("wait", "--for=condition=Ready", "pod", "--all", "-n", NS,
                     "--timeout=180s", timeout=200)
        for pod in json.loads(self.kubectl("get", "pods", "-n", NS, "-o", "json").stdout)[
                "items"]:
            self.ips[pod["metadata"]["name"]] = pod["status"]["podIP"]
        self.client_ns = netns_of_ip(self.fb.server.prefix, self.ips["client"])
        log(f"figure 13: pods ready {self.ips}; client netns {self.client_ns}")
        if "service" not in self.missing:
            self.vip = self._cluster_ip("solo")
            self.web_vip = self._cluster_ip("web")

    def _cluster_ip(self, name: str) -> str:
        out = self.kubectl("get", "svc", name, "-n", NS, "-o",
                           "jsonpath={.spec.clusterIP}", check=False)
        ip = out.stdout.strip()
        if out.returncode != 0 or not ip or ip == "None":
            self.missing["service"] = f"Service {name} has no clusterIP ({out.stderr.strip()})"
            return ""
        return ip

    def wait_path(self, ip: str, port: int, what: str, timeout: float = 30) -> str:
        """"" once ip:port answers from the client pod, else why not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if in_netns(self.client_ns, lambda: answers_from(ip, port)):
                return ""
            time.sleep(0.5)
        return f"{what} {ip}:{port} did not answer from the client pod in {timeout:g} s"

    # ------------------------------------------------------------ run
    def run(self) -> None:
        self.kube.setup()
        self.objects()
        solo = self.ips["solo"]
        for i in range(self.sizes.rounds + 1):
            why = self.wait_path(solo, DIRECT_PORT + i, "the solo pod")
            if why:
                raise RuntimeError(f"figure 13: {why}")
        if self.vip and "service" not in self.missing:
            why = self.wait_path(self.vip, VIP_PORT, "the ClusterIP")
            if why:
                self.missing["clusterip"] = why
        elif "service" in self.missing:
            self.missing["clusterip"] = self.missing["service"]
        self.http()
        self.dns()
        self.rolling()
        self.kubectl("delete", "namespace", NS, "--wait=false", check=False)

    # ------------------------------------------------------------ 13, 13b
    def http(self) -> None:
        z = self.sizes
        solo = self.ips["solo"]
        vip_why = self.missing.get("clusterip")
        fig = f"13. HTTP GET from a pod, {z.connections} connections"
        if not self.has_wrk:
            self.results.add(Row(fig, "not measured", "req/s", value="–",
                                 note="wrk (or nsenter) is not installed; scripts/bench.sh "
                                      "installs it"))
        else:
            wrk = NsWrk(self.tmp / "wrk", z.threads, self.client_ns)
            runs: dict[str, list[WrkRun]] = {"vip": [], "direct": []}
            log(f"figure 13: {z.rounds} rounds of wrk from the client pod, "
                f"{z.connections} connections × {z.seconds} s, ClusterIP and pod IP")
            for r in range(z.rounds):
                order = ["vip", "direct"] if r % 2 == 0 else ["direct", "vip"]
                for key in order:
                    if key == "vip" and vip_why:
                        continue
                    url = (f"http://{self.vip}:{VIP_PORT + r}/" if key == "vip"
                           else f"http://{solo}:{DIRECT_PORT + r}/")
                    runs[key].append(wrk.run(url, z.connections, z.seconds))
            direct = Summary.of([x.rps for x in runs["direct"]])
            self.results.add(Row(fig, "straight to the pod IP", "req/s", summary=direct,
                                 note=self._wrk_note(runs["direct"])))
            if vip_why:
                self.results.add(Row(fig, "through the ClusterIP → the same pod", "req/s",
                                     value="not measured", note=vip_why))
            else:
                vip = Summary.of([x.rps for x in runs["vip"]])
                ratio = vip.p50 / direct.p50 if direct.p50 else float("nan")
                self.results.add(Row(fig, "through the ClusterIP → the same pod", "req/s",
                                     summary=vip, target=f"≥ 0.9 × pod IP "
                                     f"({0.9 * direct.p50:.0f} req/s)", ok=ratio >= 0.9,
                                     note=self._wrk_note(runs["vip"])))
                self.results.add(Row(fig, "ratio ClusterIP / pod IP (p50)", "×", value=ratio,
                                     target="≥ 0.9×", ok=ratio >= 0.9))
                self.results.add(Row(fig, "↳ wrk's latency under load, ClusterIP", "ms",
                                     summary=merged(runs["vip"]),
                                     note="the median of the runs' own p50 and p99; the "
                                          "connection's set-up is not in it"))
            self.results.add(Row(fig, "↳ wrk's latency under load, pod IP", "ms",
                                 summary=merged(runs["direct"])))
        fig = "13b. HTTP GET from a pod, one request at a time (connect included)"
        last = z.rounds
        paths = {"direct": (solo, DIRECT_PORT + last)}
        if not vip_why:
            paths["vip"] = (self.vip, VIP_PORT + last)
        log(f"figure 13b: {z.latency_n} requests per path, one at a time, interleaved")
        lat = in_netns(self.client_ns, lambda: alternate(paths, z.latency_n))
        d = Summary.of(lat["direct"])
        self.results.add(Row(fig, "straight to the pod IP", "ms", summary=d,
                             note="connect, GET / (busybox httpd), read to its close; from a "
                                  "thread of the bench in the client pod's netns"))
        if vip_why:
            self.results.add(Row(fig, "through the ClusterIP", "ms", value="not measured",
                                 note=vip_why))
            return
        v = Summary.of(lat["vip"])
        added = v.p50 - d.p50
        self.results.add(Row(fig, "through the ClusterIP", "ms", summary=v,
                             target=f"p50 ≤ pod IP + 0.2 ms ({d.p50 + 0.2:.2f} ms)",
                             ok=added <= 0.2))
        self.results.add(Row(fig, "added p50, ClusterIP − pod IP", "ms", value=added,
                             target="≤ 0.2 ms", ok=added <= 0.2,
                             note=f"added p99 {v.p99 - d.p99:.2f} ms"))

    @staticmethod
    def _wrk_note(runs: list[WrkRun]) -> str:
        return (f"{len(runs)} wrk runs ({', '.join(f'{r.rps:.0f}' for r in runs)} req/s in "
                f"turn); errors: {merged_errors(runs)}")

    # ------------------------------------------------------------ 13c
    def dns(self) -> None:
        z = self.sizes
        fig = f"13c. DNS A queries, {z.dns_window} in flight"
        region = "us-east-1"
        from fargo.api.dns import TASK_BURST, TASK_RATE
        from fargo.model.dns import private_name, resolver_address

        private = private_name(self.ips["solo"], region)
        cluster_dns = self._cluster_dns()
        svc = f"solo.{NS}.svc.cluster.local"
        host_port = self._host_dns_port()
        paths: dict[str, tuple[tuple[str, int], str, str]] = {}
        if host_port:
            paths["host"] = (("127.0.0.1", host_port), private,
                             f"host → fargo's resolver on 127.0.0.1:{host_port}, "
                             "the pod's private name")
        why_cluster = ""
        if cluster_dns:
            why_cluster = in_netns(self.client_ns,
                                   lambda: dns_first((cluster_dns, 53), svc))
            if why_cluster:
                why_cluster = f"{svc} from the client pod to {cluster_dns}: {why_cluster}"
        else:
            why_cluster = "no cluster DNS address (kube-dns Service) in this cluster"
        if not why_cluster:
            paths["svc"] = ((cluster_dns, 53), svc, f"pod → cluster DNS {cluster_dns}, {svc}")
            paths["pod"] = ((cluster_dns, 53), private,
                            f"pod → cluster DNS {cluster_dns}, the pod's private name")
        else:
            vpc_dns = resolver_address(self.fb.server.cidr)
            paths["pod"] = ((vpc_dns, 53), private,
                            f"pod → the VPC resolver {vpc_dns}, the pod's private name")
        for key, (addr, name, _label) in paths.items():
            if key == "host":
                problem = dns_first(addr, name)
            else:
                def first(a: tuple[str, int] = addr, n: str = name) -> str:
                    return dns_first(a, n)
                problem = in_netns(self.client_ns, first)
            if problem:
                raise RuntimeError(f"figure 13c: {name} at {addr[0]}:{addr[1]}: {problem}")
        runs: dict[str, list[DnsRun]] = {k: [] for k in paths}
        single: dict[str, list[DnsRun]] = {k: [] for k in paths}
        log(f"figure 13c: DNS from {', '.join(paths)}: {z.dns_rounds} rounds of "
            f"{z.dns_seconds:g} s with {z.dns_window} in flight, then one at a time")
        keys = list(paths)
        for r in range(z.dns_rounds):
            for key in keys[r % len(keys):] + keys[:r % len(keys)]:
                addr, name, _ = paths[key]
                for window, box in ((z.dns_window, runs), (1, single)):
                    def go(a: tuple[str, int] = addr, n: str = name,
                           w: int = window) -> DnsRun:
                        return dns_load(a, n, w, z.dns_seconds)
                    box[key].append(go() if key == "host" else in_netns(self.client_ns, go))
                    if key != "host":  # each run starts with the pod's rate bucket full
                        time.sleep(TASK_BURST / TASK_RATE)

        for key in ("svc", "pod", "host"):
            if key not in paths:
                continue
            label = paths[key][2]
            qps = Summary.of([x.qps for x in runs[key]])
            lat = Summary.of([v for x in runs[key] for v in x.latencies])
            one = Summary.of([v for x in single[key] for v in x.latencies])
            lost = sum(x.lost for x in runs[key] + single[key])
            bad = sum(x.bad for x in runs[key] + single[key])
            self.results.add(Row(fig, label, "queries/s", summary=qps,
                                 note=f"{len(runs[key])} runs of {z.dns_seconds:g} s; latency "
                                      f"with {z.dns_window} in flight p50 {lat.p50:.2f} / "
                                      f"p99 {lat.p99:.2f} ms; lost {lost}, other answers "
                                      f"{bad}" + (f"; a pod's resolver answers at most "
                                                  f"{TASK_RATE:g} queries/s (bursts of "
                                                  f"{TASK_BURST:g}) and drops the rest, by "
                                                  "design (api/dns.py)"
                                                  if key != "host" else "")))
            self.results.add(Row("13c. DNS A queries, one at a time", label, "ms",
                                 summary=one))
        if why_cluster:
            self.results.add(Row(fig, f"pod → cluster DNS, {svc}", "queries/s",
                                 value="not measured", note=why_cluster))

    def _cluster_dns(self) -> str:
        out = self.kubectl("get", "svc", "kube-dns", "-n", "kube-system", "-o",
                           "jsonpath={.spec.clusterIP}", check=False)
        return out.stdout.strip() if out.returncode == 0 else ""

    def _host_dns_port(self) -> int:
        import re

        text = self.fb.server.log_path.read_text(errors="replace")
        found = re.findall(r"VPC DNS resolver for the host on 127\.0\.0\.1:(\d+)", text)
        return int(found[-1]) if found else 0

    # ------------------------------------------------------------ 13d
    def alb_address(self, timeout: float = 120) -> tuple[str, str]:
        """(address, "") once the Ingress has a load balancer that answers, else ("", why)."""
        elb = self.fb.server.client("elbv2")
        deadline = time.monotonic() + timeout
        host = ""
        while time.monotonic() < deadline:
            out = self.kubectl("get", "ingress", "web", "-n", NS, "-o", "json", check=False)
            if out.returncode == 0:
                ing = (json.loads(out.stdout).get("status") or {}).get("loadBalancer") or {}
                host = next((x.get("hostname", "") for x in ing.get("ingress") or []), "")
            if host:
                for lb in elb.describe_load_balancers()["LoadBalancers"]:
                    if lb["DNSName"] == host:
                        zones = lb.get("AvailabilityZones") or []
                        addrs = zones[0].get("LoadBalancerAddresses") if zones else []
                        if addrs and self._healthy(elb, lb["LoadBalancerArn"]):
                            ip = addrs[0]["PrivateIPv4Address"]
                            if answers_from(ip, 80):
                                return ip, ""
            time.sleep(1.0)
        return "", (f"the Ingress's load balancer {host or '(no status hostname)'} did not "
                    f"answer from the host in {timeout:g} s")

    def _healthy(self, elb: Any, lb_arn: str) -> bool:
        """Every replica a healthy target of the load balancer's target groups."""
        groups = elb.describe_target_groups(LoadBalancerArn=lb_arn)["TargetGroups"]
        for tg in groups:
            found = elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])[
                "TargetHealthDescriptions"]
            ok = [d for d in found if d["TargetHealth"]["State"] == "healthy"]
            if len(ok) < self.sizes.replicas:
                return False
        return bool(groups)

    def rolling(self) -> None:
        z = self.sizes
        fig = f"13d. rolling update of {z.replicas} replicas behind a Service and an ALB " \
              "Ingress, under wrk"
        if not self.has_wrk:
            self.results.add(Row(fig, "not measured", "failed", value="–",
                                 note="wrk (or nsenter) is not installed"))
            return
        vip_why = self.missing.get("clusterip") or ""
        if not vip_why:
            vip_why = self.wait_path(self.web_vip, 80, "the web Service's ClusterIP")
        alb_why = self.missing.get("alb") or ""
        alb = ""
        if not alb_why:
            alb, alb_why = self.alb_address()
        conns = max(2, z.connections // 2)
        loads: dict[str, tuple[NsWrk, str]] = {}
        if not vip_why:
            loads["ClusterIP (from the client pod)"] = (
                NsWrk(self.tmp / "wrk-vip", 1, self.client_ns), f"http://{self.web_vip}:80/")
        if not alb_why:
            loads["ALB (from the host)"] = (NsWrk(self.tmp / "wrk-alb", 1, None),
                                           f"http://{alb}:80/")
        for label, why in (("ClusterIP (from the client pod)", vip_why),
                           ("ALB (from the host)", alb_why)):
            if why:
                self.results.add(Row(fig, f"{label}, failed requests", "failed",
                                     value="not measured", note=why))
        if not loads:
            return
        log(f"figure 13d: rollout restart of {z.replicas} replicas under wrk through "
            f"{', '.join(loads)}")
        procs = {k: w.start(url, conns, 600) for k, (w, url) in loads.items()}
        took = float("nan")
        stuck = ""
        try:
            time.sleep(1.0)
            t0 = time.monotonic()
            self.kubectl("rollout", "restart", "deployment/web", "-n", NS)
            status = self._rollout_status(t0 + z.rollout_timeout)
            if status.returncode == 0:
                took = time.monotonic() - t0
                self._old_pods_gone(timeout=60)
                time.sleep(1.0)
            else:
                stuck = (f"the rollout did not finish in {z.rollout_timeout} s "
                         f"({status.stderr.strip()[-200:]}); warnings: {self._warnings()}")
        finally:
            results = {k: Wrk.stop(p) for k, p in procs.items()}
        if stuck:
            self.results.add(Row(fig, "↳ rollout restart → rollout status", "s",
                                 value="did not finish", ok=False, note=stuck))
            for label, run in results.items():
                self.results.add(Row(fig, f"{label}, failed requests", "failed",
                                     value="not measured",
                                     note=f"the rollout never finished; meanwhile "
                                          f"{run.failed} of {run.requests} failed"))
            return
        gates = ("in a namespace with readiness gates" if not self.gates_refused else
                 "WITHOUT readiness gates: the server refused the pods they were injected "
                 f"into ({self.gates_refused[:200]}), so the namespace's label was taken "
                 "off and those pods deleted")
        for label, run in results.items():
            pods = ", ".join(f"{k} {v}" for k, v in sorted(run.bodies.items()))
            self.results.add(Row(
                fig, f"{label}, failed requests", f"failed of {run.requests}",
                value=str(run.failed), target="0 failed", ok=run.failed == 0,
                note=f"wrk, {conns} connections, from 1 s before `kubectl rollout restart` "
                     f"until 1 s after the old pods were gone ({run.seconds:.1f} s, "
                     f"{run.rps:.0f} req/s); {gates}; answered by: {pods}; failures: "
                     f"{run.errors_text()}"))
        self.results.add(Row(fig, "↳ rollout restart → rollout status", "s", value=took))

    def _rollout_status(self, deadline: float) -> subprocess.CompletedProcess[str]:
        """`kubectl rollout status` until deadline. If the server refuses the readiness gates
        it injected (the pods stay Pending), the namespace loses the gate label and those
        pods are deleted, so that the rollout goes on without gates; a row says so."""
        while True:
            left = max(1, min(5, int(deadline - time.monotonic())))
            status = self.kubectl("rollout", "status", "deployment/web", "-n", NS,
                                  f"--timeout={left}s", timeout=left + 20, check=False)
            if status.returncode == 0 or time.monotonic() >= deadline:
                return status
            warnings = [w for w in self._warnings().split("; ") if "readinessGates" in w]
            if not self.gates_refused and warnings:
                self.gates_refused = warnings[0]
                log("figure 13d: readiness gates refused; going on without them")
                self.kubectl("label", "namespace", NS,
                             "elbv2.k8s.aws/pod-readiness-gate-inject-", check=False)
                pods = json.loads(self.kubectl("get", "pods", "-n", NS, "-l", "app=web",
                                               "-o", "json").stdout)["items"]
                stuck = [p["metadata"]["name"] for p in pods
                         if (p.get("spec") or {}).get("readinessGates")
                         and (p.get("status") or {}).get("phase") == "Pending"]
                if stuck:
                    self.kubectl("delete", "pod", "-n", NS, "--wait=false", *stuck,
                                 check=False)

    def _warnings(self) -> str:
        out = self.kubectl("get", "events", "-n", NS, "--field-selector", "type=Warning",
                           "-o", "json", check=False)
        if out.returncode != 0:
            return "(none listed)"
        seen = dict.fromkeys(f"{e.get('reason')}: {e.get('message')}"
                             for e in json.loads(out.stdout).get("items") or [])
        return "; ".join(list(seen)[-3:])[:400] or "none"

    def _old_pods_gone(self, timeout: float) -> None:
        """Until only the Deployment's replicas are left (the old ones have terminated)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.kubectl("get", "pods", "-n", NS, "-l", "app=web", "-o", "name").stdout
            if len(out.split()) <= self.sizes.replicas:
                return
            time.sleep(0.2)


def method_notes(sizes: KubeNetSizes) -> list[str]:
    z = sizes
    return [
        "Kubernetes networking (13): an EKS cluster with a Fargate profile for the namespace, "
        "`fargo kubeconfig`, the real kubectl; a client pod (busybox sleeping), a pod `solo` "
        f"of busybox httpd on a port per round, and a {z.replicas}-replica Deployment `web` "
        "of httpd (readiness probe GET /health every 1 s, grace period "
        f"{GRACE_S} s, exiting at SIGTERM) of 0.25 vCPU each; `solo` has 1 vCPU so that its "
        "CPU quota does not cap the paths compared. Service `solo` has a port "
        f"per round ({VIP_PORT} + r → {VIP_TARGET} + r); the direct path goes to port "
        f"{DIRECT_PORT} + r of the same pod, so no two runs share a destination port (busybox "
        "httpd closes each connection, and TIME_WAIT sockets of one run would crowd the next). "
        f"13: wrk (Debian's package) under `nsenter --net=<the client pod's netns>`, "
        f"{z.connections} connections over {z.threads} threads, {z.seconds} s per run, "
        f"{z.rounds} rounds alternating ClusterIP and pod IP. 13b: {z.latency_n} requests per "
        "path from one thread of the bench that entered the client pod's netns (setns), "
        "connect + GET / + read to the server's close, the two paths interleaved.",
        f"DNS (13c): UDP A queries from a thread in the client pod's netns, {z.dns_window} in "
        f"flight (a closed loop; unanswered after 0.5 s is lost and replaced), "
        f"{z.dns_seconds:g} s per run, {z.dns_rounds} rounds rotating the paths, then the same "
        "one at a time; paths: the Service's name and the solo pod's private name "
        "(ip-….ec2.internal) to the cluster DNS address, and the same private name from the "
        "host to fargo's resolver on loopback (the host is not a pod of the cluster: it is "
        "not told svc.cluster.local names).",
        f"Rolling update (13d): `kubectl rollout restart deployment/web` while wrk sends GET / "
        f"with {max(2, z.connections // 2)} connections through the `web` Service's ClusterIP "
        "(from the client pod) and through the ALB that the Ingress (ingressClassName alb, "
        "target-type ip, scheme internal, health check GET /health every 5 s, 2 to rise, "
        f"deregistration delay {DEREGISTRATION_DELAY_S} s) made (from the host), in a "
        "namespace labelled elbv2.k8s.aws/pod-readiness-gate-inject=enabled (the AWS Load "
        "Balancer Controller's readiness gates hold a new pod unready until its target is "
        "healthy, as AWS documents for zero-downtime rollouts), from 1 s before the restart "
        "until 1 s after the old pods are gone. failed = non-2xx + wrk's socket errors + "
        "timeouts (2 s); the notes count which pod answered."]
