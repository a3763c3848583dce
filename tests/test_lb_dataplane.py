"""The load balancer data plane against real parts: HAProxy in a netns of its own, on a test
bridge, in front of targets that are HTTP servers in netns of their own (tests/lbtarget.py).

Everything is made under a prefix unique to this run, on a random 10.213.X.0/24 subnet; the
only traffic goes from the host to those namespaces and between them."""

from __future__ import annotations

import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from fargo.agent.bridges import ensure_bridge_netfilter
from fargo.agent.firewall import Firewall
from fargo.agent.lb import HaproxyLoadBalancers
from fargo.agent.lb import runtime as lbruntime
from fargo.agent.lb.plane import leftover_processes
from fargo.agent.network import Attachment, HostNetwork
from fargo.model.ipam import Ipam
from fargo.model.secgroups import Rule as SgRule
from fargo.model.vpc import Subnet
from fargo.port.errors import NetworkError
from fargo.port.firewall import FirewallSpec, GroupRules
from fargo.port.loadbalancer import (
    Action,
    Condition,
    HealthCheck,
    Listener,
    LoadBalancerError,
    LoadBalancerSpec,
    Pool,
    Redirect,
    Rule,
    Target,
    interface_id,
)
from tests.holderpaths import netns_exec

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("haproxy"),
                                reason="needs root and haproxy")

TARGET = Path(__file__).with_name("lbtarget.py")
PORT = 8080
FAST = HealthCheck(path="/health", interval=1, timeout=1, healthy_threshold=2,
                   unhealthy_threshold=2)


def _free_cidr() -> str:
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for _ in range(50):
        third = random.randint(1, 254)
        if f"10.213.{third}." not in used:
            return f"10.213.{third}.0/24"
    raise RuntimeError("no free 10.213.X.0/24 for the test")


@dataclass
class World:
    net: HostNetwork
    lbs: HaproxyLoadBalancers
    subnet: Subnet
    state: Path
    run_dir: Path
    used: set[str] = field(default_factory=set)
    targets: dict[str, tuple[Attachment, subprocess.Popen[bytes]]] = field(default_factory=dict)

    def ip(self) -> str:
        ip = Ipam.pick(self.subnet.cidr, self.used)
        assert ip is not None
        self.used.add(ip)
        return ip

    def target(self, name: str) -> Target:
        """A target server in a netns of its own on the subnet (made once per name)."""
        if name not in self.targets:
            att = self.net.attach(uuid.uuid4().hex, self.subnet.id, self.subnet.cidr, self.ip())
            proc = subprocess.Popen([*netns_exec(att.netns), sys.executable,
                                     str(TARGET), name, str(PORT), str(self.state)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.targets[name] = (att, proc)
            _wait(lambda: _get(att.ip, "/", port=PORT, timeout=1) is not None, 10,
                  f"target {name} never answered")
        return Target(self.targets[name][0].ip, PORT)

    def health(self, name: str, status: int) -> None:
        (self.state / f"{name}.health").write_text(str(status))

    def spec(self, lb_id: str, listeners: tuple[Listener, ...], pools: tuple[Pool, ...],
             kind: str = "application", ip: str | None = None) -> LoadBalancerSpec:
        return LoadBalancerSpec(lb_id, kind, ((self.subnet, ip or self.ip()),),
                                listeners=listeners, pools=pools)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    prefix = "t" + secrets.token_hex(2)
    net = HostNetwork(prefix)
    base = tmp_path_factory.mktemp("lb")
    subnet = Subnet("subnet-" + secrets.token_hex(8), "vpc-test", _free_cidr(), "us-east-1a",
                    "use1-az1")
    state = base / "state"
    state.mkdir()
    run_dir = base / "run"
    w = World(net, HaproxyLoadBalancers(net, run_dir=run_dir, threads=1), subnet, state,
              run_dir)
    try:
        yield w
    finally:
        w.lbs.purge()
        for _, proc in w.targets.values():
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        net.cleanup()
        assert net.owned() == {"veths": [], "bridges": [], "netns": []}
        assert not run_dir.exists()
        assert not _haproxies(run_dir)


def _haproxies(run_dir: Path) -> list[int]:
    """HAProxy processes started for this run's load balancers."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if str(run_dir).encode() in cmd and b"haproxy" in cmd:
                found.append(int(entry))
    return [pid for pid in found if lbruntime_alive(pid)]


def lbruntime_alive(pid: int) -> bool:
    from fargo.agent.runfiles import alive

    return alive(pid)


def _wait(ok: Callable[[], object], within: float, message: str) -> None:
    deadline = time.monotonic() + within
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.1)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _get(ip: str, path: str, *, port: int = 80, headers: dict[str, str] | None = None,
         method: str = "GET", timeout: float = 10) -> Reply | None:
    conn = http.client.HTTPConnection(ip, port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    except OSError:
        return None
    finally:
        conn.close()


def _lb_ip(spec: LoadBalancerSpec) -> str:
    return spec.addresses[0][1]


def _states(w: World, lb_id: str) -> dict[tuple[str, int], str]:
    return {(c.ip, c.port): c.status for c in w.lbs.checks(lb_id)}


def _wait_states(w: World, lb_id: str, want: dict[Target, str], within: float = 15) -> None:
    def ok() -> bool:
        now = _states(w, lb_id)
        return all(now.get((t.ip, t.port)) == s for t, s in want.items())

    try:
        _wait(ok, within, "")
    except AssertionError:
        raise AssertionError(f"{lb_id}: wanted {want}, have {w.lbs.checks(lb_id)}") from None


def _names(ip: str, count: int, path: str = "/") -> list[str]:
    out = []
    for _ in range(count):
        reply = _get(ip, path)
        assert reply is not None and reply.status == 200, reply
        out.append(reply.json()["name"])
    return out


def _assert_gone(w: World, lb_id: str) -> None:
    assert lb_id not in w.lbs.running()
    assert not (w.run_dir / lb_id).exists()
    assert not os.path.lexists(w.lbs.netns_path(lb_id))
    veth = w.lbs.netns.host_veth(lb_id, w.subnet.id)
    assert not os.path.exists(f"/sys/class/net/{veth}")
    assert leftover_processes(w.net, lb_id) == []


def _lb_id() -> str:
    return "t" + secrets.token_hex(4)


def _forward(*pools: str) -> Action:
    return Action("forward", tuple((p, 1) for p in pools))


# ------------------------------------------------------------------ forwarding


def test_requests_reach_both_targets_with_forwarded_headers(world: World) -> None:
    w = world
    t1, t2 = w.target("a1"), w.target("a2")
    lb = _lb_id()
    spec = w.spec(lb, (Listener(80, "HTTP", _forward("web")),),
                  (Pool("web", "HTTP", (t1, t2), FAST),))
    w.lbs.apply(spec)
    try:
        assert lb in w.lbs.running()
        assert set(_states(w, lb).values()) <= {"INIT", "UP"}  # joined down, being checked
        _wait_states(w, lb, {t1: "UP", t2: "UP"})
        checks = w.lbs.checks(lb)
        assert {(c.pool, c.check, c.code) for c in checks} == {("web", "L7OK", 200)}
        assert set(_names(_lb_ip(spec), 10)) == {"a1", "a2"}
        reply = _get(_lb_ip(spec), "/h", headers={"X-Forwarded-For": "192.0.2.7"})
        assert reply is not None
        seen = reply.json()["headers"]
        # The host reaches the subnet from its bridge's gateway address.
        assert seen["x-forwarded-for"] == f"192.0.2.7, {w.subnet.gateway}"
        assert seen["x-forwarded-proto"] == "http"
        assert seen["x-forwarded-port"] == "80"
        plain = _get(_lb_ip(spec), "/")
        assert plain is not None and plain.json()["headers"]["x-forwarded-for"] == w.subnet.gateway
        # Tasks reach it too: from a target's own netns.
        att = w.targets["a1"][0]
        fetched = subprocess.run(
            [*netns_exec(att.netns), sys.executable, "-c",
             f"import urllib.request;print(urllib.request.urlopen('http://{_lb_ip(spec)}/',"
             "timeout=5).status)"], capture_output=True, text=True, timeout=20)
        assert fetched.stdout.strip() == "200", fetched.stderr
    finally:
        w.lbs.remove(lb)
    _assert_gone(w, lb)
    w.lbs.remove(lb)  # idempotent


def test_rules_by_priority_fixed_responses_and_redirects(world: World) -> None:
    w = world
    a, api = w.target("r1"), w.target("r2")
    lb = _lb_id()

    def fixed(status: int, body: str | None = None) -> Action:
        return Action("fixed-response", status=status, content_type="text/plain", body=body)

    rules = (
        Rule(10, (Condition("path-pattern", ("/api/*",)),), _forward("api")),
        Rule(5, (Condition("host-header", ("*.example.COM",)),
                 Condition("path-pattern", ("/x?",))), fixed(418, "teapot\n")),
        Rule(20, (Condition("path-pattern", ("/old/*",)),),
             Action("redirect", redirect=Redirect(301, path="/new/#{path}"))),
        Rule(21, (Condition("path-pattern", ("/go",)),),
             Action("redirect", redirect=Redirect(302, protocol="HTTPS", host="secure.#{host}",
                                                  port="443", query="from=#{port}"))),
        Rule(30, (Condition("http-header", ("stag*",), header="X-Env"),), fixed(200, "staging")),
        Rule(40, (Condition("query-string", pairs=(("k", "v?"),)),), fixed(202, "query")),
        Rule(50, (Condition("http-request-method", ("DELETE",)),), fixed(405)),
        Rule(60, (Condition("source-ip", ("192.0.2.0/24",)),), fixed(403)),
    )
    spec = w.spec(lb, (Listener(80, "HTTP", _forward("main"), rules),),
                  (Pool("main", "HTTP", (a,), FAST), Pool("api", "HTTP", (api,), FAST)))
    w.lbs.apply(spec)
    try:
        _wait_states(w, lb, {a: "UP", api: "UP"})
        ip = _lb_ip(spec)

        def get(path: str, **kw: Any) -> Reply:
            reply = _get(ip, path, **kw)
            assert reply is not None
            return reply

        assert get("/api/v1").json()["name"] == "r2"
        assert get("/API/v1").json()["name"] == "r1"  # paths are case-sensitive
        assert get("/other").json()["name"] == "r1"  # the default action
        tea = get("/xy", headers={"Host": "shop.Example.com:80"})  # hosts are not
        assert (tea.status, tea.body, tea.headers["content-type"]) == (418, b"teapot\n",
                                                                       "text/plain")
        assert get("/xyz", headers={"Host": "shop.example.com"}).json()["name"] == "r1"
        moved = get("/old/a/b?z=1", headers={"Host": "h.test"})
        assert (moved.status, moved.headers["location"]) == (301, "http://h.test/new/old/a/b?z=1")
        bare = get("/old/c", headers={"Host": "h.test"})
        assert bare.headers["location"] == "http://h.test/new/old/c"
        go = get("/go?q=1", headers={"Host": "h.test"})
        assert (go.status, go.headers["location"]) == (302, "https://secure.h.test/go?from=80")
        assert get("/s", headers={"X-Env": "STAGING-2"}).body == b"staging"
        # Lower priority wins: /api/* (10) before the header rule (30).
        assert get("/api/x", headers={"X-Env": "staging"}).json()["name"] == "r2"
        assert get("/q?a=1&k=vX").status == 202
        assert get("/q?k=vXY").json()["name"] == "r1"
        assert get("/", method="DELETE").status == 405
        assert get("/").status == 200  # the host's address is not 192.0.2.0/24
    finally:
        w.lbs.remove(lb)
    _assert_gone(w, lb)


def test_weighted_forward_splits_requests(world: World) -> None:
    w = world
    a, b = w.target("w1"), w.target("w2")
    lb = _lb_id()
    spec = w.spec(lb, (Listener(80, "HTTP", Action("forward", (("a", 3), ("b", 1)))),),
                  (Pool("a", "HTTP", (a,), FAST), Pool("b", "HTTP", (b,), FAST)))
    w.lbs.apply(spec)
    try:
        _wait_states(w, lb, {a: "UP", b: "UP"})
        names = _names(_lb_ip(spec), 200)
        share = names.count("w2") / len(names)
        assert 0.1 < share < 0.4, share
    finally:
        w.lbs.remove(lb)


# ------------------------------------------------------------------ health


def test_target_answering_500_goes_down_with_its_code(world: World) -> None:
    w = world
    good, bad = w.target("h1"), w.target("h2")
    w.health("h2", 500)
    lb = _lb_id()
    spec = w.spec(lb, (Listener(80, "HTTP", _forward("p")),),
                  (Pool("p", "HTTP", (good, bad), replace(FAST, codes="200-299")),))
    try:
        w.lbs.apply(spec)
        _wait_states(w, lb, {good: "UP", bad: "DOWN"})
        down = next(c for c in w.lbs.checks(lb) if c.ip == bad.ip)
        assert (down.check, down.code) == ("L7STS", 500)
        assert set(_names(_lb_ip(spec), 6)) == {"h1"}
        w.health("h2", 204)  # within the codes: back after healthy_threshold passes
        _wait_states(w, lb, {bad: "UP"})
    finally:
        w.health("h2", 200)
        w.lbs.remove(lb)


# ------------------------------------------------------------------ changes


class Slow(threading.Thread):
    """One long request through the load balancer; its reply once done."""

    def __init__(self, ip: str, seconds: float, port: int = 80) -> None:
        super().__init__(daemon=True)
        self.ip, self.seconds, self.port = ip, seconds, port
        self.reply: Reply | None = None

    def run(self) -> None:
        self.reply = _get(self.ip, f"/slow?s={self.seconds}", port=self.port, timeout=30)


def _busy_server(w: World, lb_id: str) -> str:
    """The server holding a session right now (show stat's scur)."""
    paths = w.lbs.paths(lb_id)
    found: list[str] = []

    def look() -> bool:
        text = lbruntime.command(paths.stats, "show stat -1 4 -1").lstrip("# ")
        import csv
        import io

        found[:] = [r["svname"] for r in csv.DictReader(io.StringIO(text))
                    if r["scur"] not in ("", "0")]
        return bool(found)

    _wait(look, 5, "no server holds the long request")
    return found[0]


def test_draining_keeps_a_long_request_while_new_ones_go_elsewhere(world: World) -> None:
    w = world
    t1, t2 = w.target("d1"), w.target("d2")
    lb = _lb_id()
    spec = w.spec(lb, (Listener(80, "HTTP", _forward("p")),),
                  (Pool("p", "HTTP", (t1, t2), FAST),))
    w.lbs.apply(spec)
    try:
        _wait_states(w, lb, {t1: "UP", t2: "UP"})
        slow = Slow(_lb_ip(spec), 4)
        slow.start()
        busy = _busy_server(w, lb)
        held = t1 if busy == f"{t1.ip}:{t1.port}" else t2
        other = "d2" if held == t1 else "d1"
        drained = replace(spec, pools=(Pool("p", "HTTP", tuple(
            replace(t, draining=t == held) for t in (t1, t2)), FAST),))
        master = w.lbs.haproxy.master(w.lbs.paths(lb))
        w.lbs.apply(drained)
        assert _states(w, lb)[(held.ip, held.port)] == "DRAIN"
        assert set(_names(_lb_ip(spec), 8)) == {other}
        slow.join(15)
        assert slow.reply is not None and slow.reply.status == 200
        assert slow.reply.json()["name"] == ("d1" if held == t1 else "d2")
        # Deregistered: gone from HAProxy, through the runtime API (no reload).
        gone = replace(spec, pools=(Pool("p", "HTTP", tuple(t for t in (t1, t2) if t != held),
                                         FAST),))
        w.lbs.apply(gone)
        assert (held.ip, held.port) not in _states(w, lb)
        procs = lbruntime.parse_procs(lbruntime.command(w.lbs.paths(lb).master, "show proc"))
        assert procs.reloads == 0 and procs.master == master
        # And back: it joins down and comes up after its checks.
        w.lbs.apply(spec)
        _wait_states(w, lb, {held: "UP"})
    finally:
        w.lbs.remove(lb)


def test_reload_keeps_an_established_request_and_the_servers_health(world: World) -> None:
    w = world
    t1, t2 = w.target("k1"), w.target("k2")
    lb = _lb_id()
    spec = w.spec(lb, (Listener(80, "HTTP", _forward("p")),),
                  (Pool("p", "HTTP", (t1, t2), FAST),))
    w.lbs.apply(spec)
    try:
        _wait_states(w, lb, {t1: "UP", t2: "UP"})
        paths = w.lbs.paths(lb)
        before = lbruntime.parse_procs(lbruntime.command(paths.master, "show proc"))
        slow = Slow(_lb_ip(spec), 3)
        slow.start()
        _busy_server(w, lb)
        changed = replace(spec, listeners=spec.listeners + (
            Listener(8081, "HTTP", Action("fixed-response", status=200, content_type="text/plain",
                                          body="new listener")),))
        w.lbs.apply(changed)
        after = lbruntime.parse_procs(lbruntime.command(paths.master, "show proc"))
        assert after.master == before.master and after.reloads == before.reloads + 1
        # The new worker loaded the servers' states: no target went back to checking.
        assert _states(w, lb) == {(t1.ip, t1.port): "UP", (t2.ip, t2.port): "UP"}
        reply = _get(_lb_ip(spec), "/", port=8081)
        assert reply is not None and reply.body == b"new listener"
        slow.join(15)
        assert slow.reply is not None and slow.reply.status == 200
        assert set(_names(_lb_ip(spec), 6)) == {"k1", "k2"}
        w.lbs.apply(changed)  # the same spec again: nothing to do
        again = lbruntime.parse_procs(lbruntime.command(paths.master, "show proc"))
        assert again.reloads == after.reloads
    finally:
        w.lbs.remove(lb)


def test_network_load_balancer_keeps_a_tcp_connection_across_a_reload(world: World) -> None:
    w = world
    t = w.target("n1")
    lb = _lb_id()
    tcp = HealthCheck(protocol="TCP", interval=1, timeout=1, healthy_threshold=2,
                      unhealthy_threshold=2)
    spec = w.spec(lb, (Listener(7000, "TCP", _forward("p")),),
                  (Pool("p", "TCP", (t,), tcp),), kind="network")
    w.lbs.apply(spec)
    try:
        _wait_states(w, lb, {t: "UP"})
        assert w.lbs.checks(lb)[0].check == "L4OK"
        with socket.create_connection((_lb_ip(spec), 7000), timeout=10) as sock:
            conn = sock.makefile("rwb")

            def ask() -> bytes:
                conn.write(b"GET /k HTTP/1.1\r\nHost: x\r\n\r\n")
                conn.flush()
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    head += conn.read(1)
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                return conn.read(length)

            assert json.loads(ask())["name"] == "n1"
            w.lbs.apply(replace(spec, listeners=spec.listeners + (
                Listener(7001, "TCP", _forward("p")),)))
            assert json.loads(ask())["name"] == "n1"  # the same connection, after the reload
        with socket.create_connection((_lb_ip(spec), 7001), timeout=10):
            pass
    finally:
        w.lbs.remove(lb)


# ------------------------------------------------------------------ restarts


def test_a_new_object_re_adopts_running_load_balancers(world: World) -> None:
    w = world
    t1, t2 = w.target("g1"), w.target("g2")
    lb = _lb_id()
    spec = w.spec(lb, (Listener(80, "HTTP", _forward("p")),), (Pool("p", "HTTP", (t1,), FAST),))
    w.lbs.apply(spec)
    try:
        _wait_states(w, lb, {t1: "UP"})
        master = w.lbs.haproxy.master(w.lbs.paths(lb))
        fresh = HaproxyLoadBalancers(w.net, run_dir=w.run_dir, threads=1)
        assert lb in fresh.running()
        assert _states(replace(w, lbs=fresh), lb) == {(t1.ip, t1.port): "UP"}
        fresh.apply(spec)  # converged already: no reload, no restart
        procs = lbruntime.parse_procs(lbruntime.command(fresh.paths(lb).master, "show proc"))
        assert procs.master == master and procs.reloads == 0
        fresh.apply(replace(spec, pools=(Pool("p", "HTTP", (t1, t2), FAST),)))
        _wait_states(replace(w, lbs=fresh), lb, {t1: "UP", t2: "UP"})
        assert set(_names(_lb_ip(spec), 8)) == {"g1", "g2"}
        fresh.remove(lb)
        _assert_gone(w, lb)
    finally:
        w.lbs.remove(lb)


def test_a_load_balancer_comes_up_bare_and_gets_its_listeners_later(world: World) -> None:
    """ELBv2's usual order: the load balancer, then target groups, then listeners."""
    w = world
    t = w.target("e1")
    lb = _lb_id()
    bare = w.spec(lb, (), ())
    w.lbs.apply(bare)
    try:
        assert lb in w.lbs.running() and w.lbs.checks(lb) == []
        pooled = replace(bare, pools=(Pool("p", "HTTP", (t,), FAST),))
        w.lbs.apply(pooled)
        _wait_states(w, lb, {t: "UP"})  # checked before any listener uses it
        w.lbs.apply(replace(pooled, listeners=(Listener(80, "HTTP", _forward("p")),)))
        assert _states(w, lb) == {(t.ip, t.port): "UP"}
        assert _names(_lb_ip(bare), 2) == ["e1", "e1"]
    finally:
        w.lbs.remove(lb)


# ------------------------------------------------------------------ refusals


def test_a_refused_spec_leaves_nothing(world: World, tmp_path: Path) -> None:
    w = world
    t = w.target("b1")
    lb = _lb_id()
    # HAProxy's own refusal (a 204 carries no body), caught by its check before anything.
    bad = w.spec(lb, (Listener(80, "HTTP", Action("fixed-response", status=204,
                                                  content_type="text/plain", body="x")),),
                 (Pool("p", "HTTP", (t,), FAST),))
    with pytest.raises(LoadBalancerError, match="204"):
        w.lbs.apply(bad)
    _assert_gone(w, lb)
    # This data plane's own (a pool the spec does not hold).
    with pytest.raises(LoadBalancerError, match="no pool 'nope'"):
        w.lbs.apply(replace(bad, listeners=(Listener(80, "HTTP", _forward("nope")),)))
    _assert_gone(w, lb)
    # An HAProxy that passes the check but does not come up: the netns and veth made for
    # it go again.
    fake = tmp_path / "haproxy"
    fake.write_text(f"#!/bin/sh\nfor a; do [ \"$a\" = -c ] && exec {shutil.which('haproxy')} "
                    "\"$@\"; done\necho '[ALERT] fake: will not start' >&2\nexit 3\n")
    fake.chmod(0o755)
    broken = HaproxyLoadBalancers(w.net, run_dir=w.run_dir, haproxy=str(fake), threads=1)
    good = replace(bad, listeners=(Listener(80, "HTTP", _forward("p")),))
    with pytest.raises(LoadBalancerError, match="will not start"):
        broken.apply(good)
    _assert_gone(w, lb)
    # A refused change leaves the running load balancer as it was.
    w.lbs.apply(good)
    try:
        _wait_states(w, lb, {t: "UP"})
        with pytest.raises(LoadBalancerError, match="204"):
            w.lbs.apply(bad)
        assert _names(_lb_ip(good), 2) == ["b1", "b1"]
        procs = lbruntime.parse_procs(lbruntime.command(w.lbs.paths(lb).master, "show proc"))
        assert procs.reloads == 0
    finally:
        w.lbs.remove(lb)
    _assert_gone(w, lb)


# ------------------------------------------------------------------ security groups


def test_security_groups_hold_for_the_load_balancer_as_for_a_task(world: World) -> None:
    w = world
    try:
        ensure_bridge_netfilter()
    except NetworkError as err:
        pytest.skip(str(err))
    t = w.target("f1")
    lb = _lb_id()
    spec = w.spec(lb, (Listener(80, "HTTP", _forward("p")),), (Pool("p", "HTTP", (t,), FAST),))
    lb_ip = _lb_ip(spec)
    target_tid = w.targets["f1"][0].task_id
    firewall = Firewall(w.net.prefix)
    everything = SgRule(egress=True, protocol="-1", from_port=None, to_port=None,
                        cidr="0.0.0.0/0")
    fw = FirewallSpec(
        nets=[w.subnet.cidr], subnets=[w.subnet.id], gateways=[w.subnet.gateway],
        groups=[GroupRules("sg-lb", [SgRule(egress=False, protocol="tcp", from_port=80,
                                            to_port=80, cidr="0.0.0.0/0"), everything]),
                GroupRules("sg-t", [SgRule(egress=False, protocol="tcp", from_port=PORT,
                                           to_port=PORT, group="sg-lb"), everything])],
        members={"sg-lb": {lb_ip}, "sg-t": {t.ip}},
        tasks={target_tid: t.ip, interface_id(lb, w.subnet.id): lb_ip})
    w.lbs.apply(spec)
    firewall.apply(fw)
    try:
        _wait_states(w, lb, {t: "UP"})  # the load balancer's checks reach the target
        assert _names(lb_ip, 2) == ["f1", "f1"]  # the host reaches the load balancer
        assert _get(t.ip, "/", port=PORT, timeout=2) is None  # but not the target itself
        # Out of its group, the load balancer is refused like a task (its checks too).
        firewall.apply(replace(fw, members={"sg-lb": set(), "sg-t": {t.ip}}))
        assert _get(lb_ip, "/", timeout=2) is None
        _wait_states(w, lb, {t: "DOWN"})
    finally:
        firewall.remove()
        w.lbs.remove(lb)


# ------------------------------------------------------------------ stickiness, subnets


def test_sticky_pool_keeps_a_client_on_its_target(world: World) -> None:
    w = world
    t1, t2 = w.target("s1"), w.target("s2")
    lb = _lb_id()
    spec = w.spec(lb, (Listener(80, "HTTP", _forward("p")),),
                  (Pool("p", "HTTP", (t1, t2), FAST, sticky_seconds=60),))
    w.lbs.apply(spec)  # both servers join at run time: their cookies too
    try:
        _wait_states(w, lb, {t1: "UP", t2: "UP"})
        first = _get(_lb_ip(spec), "/")
        assert first is not None
        cookie = first.headers["set-cookie"].split(";")[0]
        assert cookie.startswith("AWSALB=") and "Max-Age=60" in first.headers["set-cookie"]
        stuck = {_get(_lb_ip(spec), "/", headers={"Cookie": cookie}).json()["name"]  # type: ignore[union-attr]
                 for _ in range(6)}
        assert stuck == {first.json()["name"]}
        assert set(_names(_lb_ip(spec), 6)) == {"s1", "s2"}  # without it: either
    finally:
        w.lbs.remove(lb)


def test_addresses_in_two_subnets_and_a_subnet_taken_away(world: World) -> None:
    w = world
    t = w.target("m1")
    other = Subnet("subnet-" + secrets.token_hex(8), "vpc-test", _free_cidr(), "us-east-1b",
                   "use1-az2")
    lb = _lb_id()
    ip_a, ip_b = w.ip(), str(Ipam.pick(other.cidr, set()))
    spec = LoadBalancerSpec(lb, "application", ((w.subnet, ip_a), (other, ip_b)),
                            listeners=(Listener(80, "HTTP", _forward("p")),),
                            pools=(Pool("p", "HTTP", (t,), FAST),))
    w.lbs.apply(spec)
    try:
        _wait_states(w, lb, {t: "UP"})
        assert _names(ip_a, 2) == ["m1", "m1"]
        assert _names(ip_b, 2) == ["m1", "m1"]  # on the other bridge, to a target on the first
        # Nothing is routed between the subnets through it.
        forwarding = subprocess.run(["ip", "netns", "exec", os.path.basename(w.lbs.netns_path(lb)),
                                     "cat", "/proc/sys/net/ipv4/ip_forward"],
                                    capture_output=True, text=True).stdout.strip()
        assert forwarding == "0"
        w.lbs.apply(replace(spec, addresses=((w.subnet, ip_a),)))
        assert not os.path.exists(f"/sys/class/net/{w.lbs.netns.host_veth(lb, other.id)}")
        assert _get(ip_b, "/", timeout=2) is None
        assert _names(ip_a, 2) == ["m1", "m1"]
    finally:
        w.lbs.remove(lb)
        w.net.remove_bridge(other.id)
    _assert_gone(w, lb)


# ------------------------------------------------------------------ fargo purge


def test_fargo_purge_removes_load_balancers(world: World, tmp_path: Path) -> None:
    """`fargo purge --prefix P` ends P's HAProxys and removes their netns and veths (a prefix
    of its own: purge takes the prefix's bridges too)."""
    prefix = "t" + secrets.token_hex(2)
    net = HostNetwork(prefix)
    subnet = Subnet("subnet-" + secrets.token_hex(8), "vpc-test", _free_cidr(), "us-east-1a",
                    "use1-az1")
    lbs = HaproxyLoadBalancers(net, threads=1)  # the default run dir, as the server's
    lb = _lb_id()
    ip = str(Ipam.pick(subnet.cidr, set()))
    try:
        lbs.apply(LoadBalancerSpec(lb, "application", ((subnet, ip),), listeners=(
            Listener(80, "HTTP", Action("fixed-response", status=200, content_type="text/plain",
                                        body="up")),)))
        reply = _get(ip, "/")
        assert reply is not None and reply.body == b"up"
        master = lbs.haproxy.master(lbs.paths(lb))
        assert master is not None and lbs.running() == [lb]
        done = subprocess.run([sys.executable, "-m", "fargo", "purge", "--state-dir",
                               str(tmp_path / "state"), "--prefix", prefix],
                              capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parent.parent)
        assert done.returncode == 0, done.stderr
        assert lbs.running() == []
        assert not lbruntime_alive(master)
        assert net.owned() == {"veths": [], "bridges": [], "netns": []}
        assert not lbs.run_dir.exists()
    finally:
        lbs.purge()
        net.cleanup()
