"""The load balancer's HAProxy configuration and the runtime API's answers: pure."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from fargo.agent.lb import config as lbconfig
from fargo.agent.lb.config import Paths, Settings, quote, render, skeleton, wildcard_regex
from fargo.agent.lb.runtime import parse_procs, parse_servers_state, parse_stat, worker_pid
from fargo.model.vpc import Subnet
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
    TargetCheck,
    interface_id,
)

pytestmark = pytest.mark.pure

SUBNET = Subnet("subnet-0123456789abcdef0", "vpc-1", "10.89.0.0/20", "us-east-1a", "use1-az1")
PATHS = Paths("/run/fg-lb/web")
T1, T2 = Target("10.89.0.10", 8080), Target("10.89.0.11", 8080)


def _spec(listeners: tuple[Listener, ...], pools: tuple[Pool, ...] | None = None,
          kind: str = "application") -> LoadBalancerSpec:
    if pools is None:
        pools = (Pool("web", "HTTP", (T1, T2)), Pool("api", "HTTP", (Target("10.89.0.12", 9000),)))
    return LoadBalancerSpec("web", kind, ((SUBNET, "10.89.0.4"),), listeners=listeners,
                            pools=pools)


def _lines(text: str, start: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(start)]


def _section(text: str, head: str) -> list[str]:
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if line and not line.startswith(" "):
            inside = line == head
            continue
        if inside and line.strip():
            out.append(line.strip())
    return out


# ------------------------------------------------------------------ wildcards and quoting


def _matches(pattern: str, text: str, **kw: str) -> bool:
    return re.fullmatch(wildcard_regex(pattern, **kw), text) is not None


def test_wildcards_match_as_elbv2_patterns() -> None:
    assert _matches("/api/*", "/api/") and _matches("/api/*", "/api/v1/x")
    assert not _matches("/api/*", "/API/v1") and not _matches("/api/*", "/apix")
    assert _matches("/v?/x", "/v2/x") and not _matches("/v?/x", "/v10/x")
    assert _matches("/a.b", "/a.b") and not _matches("/a.b", "/aXb")  # . is no wildcard
    assert _matches("/(x)[y]+$", "/(x)[y]+$")
    # HAProxy's PCRE matches bytes: a non-ASCII character is its UTF-8 bytes.
    assert _matches("/caf\u00e9", "/caf\u00e9".encode().decode("latin-1"))
    # Query strings: wildcards stay within one value, \\* and \\? are themselves.
    assert _matches("v*", "vxyz", one="[^&]", many="[^&]*")
    assert not _matches("v*", "v1&k=2", one="[^&]", many="[^&]*")
    assert _matches("a\\*b", "a*b", escapes=True) and not _matches("a\\*b", "axb", escapes=True)


def test_regexes_hold_nothing_but_safe_characters() -> None:
    made = wildcard_regex("/x' \"#${HOME}%\\n;")
    assert re.fullmatch(r"[A-Za-z0-9\\.*]*", made.replace("\\x", "")), made


def test_quote_keeps_text_as_it_is() -> None:
    assert quote("it's") == "'it'\\''s'"
    with pytest.raises(LoadBalancerError, match="line break"):
        quote("a\nb")


def test_interface_id_names_a_task_like_key() -> None:
    assert interface_id("web", SUBNET.id) == f"lb-web-{SUBNET.id}"


# ------------------------------------------------------------------ rendering


def test_application_listener_sets_forwarded_headers_and_forwards() -> None:
    text = render(_spec((Listener(80, "HTTP", Action("forward", (("web", 1),))),)),
                  PATHS).text
    front = _section(text, "frontend l_80")
    assert "mode http" in front and "bind 0.0.0.0:80" in front
    assert "http-request set-header X-Forwarded-Proto http" in front
    assert "http-request set-header X-Forwarded-Port 80" in front
    assert any("X-Forwarded-For '%[req.fhdr(x-forwarded-for)], %[src]'" in x for x in front)
    assert front[-1] == "default_backend p_web"
    assert f"stats socket '{PATHS.stats}' mode 600 level admin" in text
    assert f"server-state-file '{PATHS.state}'" in text
    assert "load-server-state-from-file global" in text


def test_rules_go_by_priority_and_every_action_keeps_its_place() -> None:
    rules = (
        Rule(20, (Condition("path-pattern", ("/api/*",)),), Action("forward", (("api", 1),))),
        Rule(3, (Condition("host-header", ("*.example.com",)),
                 Condition("http-request-method", ("GET", "HEAD"))),
             Action("fixed-response", status=418, content_type="text/plain", body="tea")),
    )
    rendered = render(_spec((Listener(80, "HTTP", Action("forward", (("web", 1),)), rules),)),
                      PATHS)
    front = _section(rendered.text, "frontend l_80")
    sets = _lines(rendered.text, "http-request set-var(txn.rule)")
    assert sets == ["http-request set-var(txn.rule) int(1) if !{ var(txn.rule) -m found } "
                    "r1c0 r1c1",
                    "http-request set-var(txn.rule) int(2) if !{ var(txn.rule) -m found } r2c0"]
    assert "acl r1c0 req.hdr(host),field(1,:) -i -m reg '^.*\\x2eexample\\x2ecom$'" in front
    assert "acl r1c1 method -m str GET HEAD" in front
    assert "acl r2c0 path -m reg '^\\x2fapi\\x2f.*$'" in front
    (name,) = rendered.files
    assert rendered.files[name] == b"tea"
    assert (f"http-request return status 418 content-type 'text/plain' file "
            f"'{PATHS.files}/{name}' if {{ var(txn.rule) -m int 1 }}") in front
    # use_backend last (HAProxy runs them after every http-request rule anyway).
    assert front[-2:] == ["use_backend p_api if { var(txn.rule) -m int 2 }",
                          "use_backend p_web if !{ var(txn.rule) -m found }"]


def test_weighted_forward_draws_once_and_splits_the_range() -> None:
    action = Action("forward", (("web", 70), ("api", 30), ("none", 0)))
    pools = (Pool("web", "HTTP"), Pool("api", "HTTP"), Pool("none", "HTTP"))
    front = _section(render(_spec((Listener(80, "HTTP", action),), pools), PATHS).text,
                     "frontend l_80")
    assert "http-request set-var(txn.w) rand(100)" in front
    assert front[-2:] == ["use_backend p_web if { var(txn.w) -m int 0:69 }",
                          "use_backend p_api if { var(txn.w) -m int 70:99 }"]
    # One target group: its weight does not matter (ELBv2 sends it everything).
    single = render(_spec((Listener(80, "HTTP", Action("forward", (("web", 0),))),), pools),
                    PATHS).text
    assert _section(single, "frontend l_80")[-1] == "default_backend p_web"


def test_other_conditions_render_as_their_acls() -> None:
    rules = (Rule(1, (Condition("http-header", ("a*", "b"), header="X-Env"),
                      Condition("query-string", pairs=(("k", "v?"), (None, "x"))),
                      Condition("source-ip", ("10.0.0.0/8", "192.0.2.9/32"))),
                  Action("fixed-response", status=204)),)
    front = _section(render(_spec((Listener(80, "HTTP", Action("forward", (("web", 1),)),
                                           rules),)), PATHS).text, "frontend l_80")
    assert "acl r1c0 req.fhdr(X-Env) -i -m reg '^a.*$' '^b$'" in front
    assert ("acl r1c1 query -i -m reg '(^|&)k=v[^&](&|$)' '(^|&)([^&=]*=)?x(&|$)'" in front)
    assert "acl r1c2 src 10.0.0.0/8 192.0.2.9/32" in front
    assert "http-request return status 204 if { var(txn.rule) -m int 1 }" in front


def test_redirects_fill_what_the_listener_knows_and_take_the_rest_from_the_request() -> None:
    rules = (Rule(1, (Condition("path-pattern", ("/old/*",)),),
                  Action("redirect", redirect=Redirect(301, path="/new/#{path}"))),
             Rule(2, (Condition("path-pattern", ("/s",)),),
                  Action("redirect", redirect=Redirect(302, protocol="HTTPS", port="443",
                                                       host="x.#{host}", query="p=#{port}&100%"))))
    front = _section(render(_spec((Listener(8080, "HTTP", Action("forward", (("web", 1),)),
                                           rules),)), PATHS).text, "frontend l_8080")
    host = "%[req.hdr(host),field(1,:)]"
    assert (f"http-request redirect code 301 location 'http://{host}:8080/new/"
            "%[path,regsub(^/,)]?%[query]' if { var(txn.rule) -m int 1 } "
            "{ query -m len gt 0 }") in front
    assert (f"http-request redirect code 301 location 'http://{host}:8080/new/"
            "%[path,regsub(^/,)]' if { var(txn.rule) -m int 1 }") in front
    assert (f"http-request redirect code 302 location 'https://x.{host}/"
            "%[path,regsub(^/,)]?p=8080&100%%' if { var(txn.rule) -m int 2 }") in front


def test_network_listener_is_tcp() -> None:
    pools = (Pool("t", "TCP", (T1,), HealthCheck(protocol="TCP")),)
    text = render(_spec((Listener(7000, "TCP", Action("forward", (("t", 1),))),), pools,
                        kind="network"), PATHS).text
    assert _section(text, "frontend l_7000") == ["mode tcp", "bind 0.0.0.0:7000",
                                                 "default_backend p_t"]
    back = _section(text, "backend p_t")
    assert "mode tcp" in back and not any("httpchk" in x for x in back)
    assert "default-server check inter 30s rise 5 fall 2" in back


def test_backends_check_as_the_pool_says() -> None:
    hc = HealthCheck(path="/health?x='1'", interval=10, timeout=4, healthy_threshold=3,
                     unhealthy_threshold=4, codes="200-299,302", port=9100)
    pools = (Pool("web", "HTTP", (T1, replace(T2, draining=True)), hc, sticky_seconds=120),)
    rendered = render(_spec((Listener(80, "HTTP", Action("forward", (("web", 1),))),), pools),
                      PATHS, Settings(threads=3, maxconn=500, user="haproxy"))
    back = _section(rendered.text, "backend p_web")
    assert back[:4] == ["mode http", "balance roundrobin", "timeout check 4s", "option httpchk"]
    assert ("http-check send meth GET uri '/health?x='\\''1'\\''' ver HTTP/1.1 hdr Host "
            "%[srv_name] hdr User-Agent ELB-HealthChecker/2.0") in back
    assert "http-check expect status 200-299,302" in back
    assert ("cookie AWSALB insert indirect nocache dynamic maxlife 120s attr 'Max-Age=120'"
            in back)
    assert "default-server check inter 10s rise 3 fall 4 port 9100" in back
    assert back[-2:] == ["server 10.89.0.10:8080 10.89.0.10:8080",
                         "server 10.89.0.11:8080 10.89.0.11:8080"]
    server = rendered.servers["p_web/10.89.0.11:8080"]
    assert (server.draining, server.sticky, server.options) == (
        True, True, "check inter 10s rise 3 fall 4 port 9100")
    assert "nbthread 3" in rendered.text and "maxconn 500" in rendered.text
    assert "user 'haproxy'" in rendered.text


def test_present_limits_server_lines_and_targets_leave_the_skeleton_alone() -> None:
    listeners = (Listener(80, "HTTP", Action("forward", (("web", 1),))),)
    full = render(_spec(listeners), PATHS)
    none = render(_spec(listeners), PATHS, present=set())
    some = render(_spec(listeners), PATHS, present={"p_web/10.89.0.11:8080"})
    assert _lines(none.text, "server ") == []
    assert _lines(some.text, "server ") == ["server 10.89.0.11:8080 10.89.0.11:8080"]
    assert skeleton(full.text) == skeleton(none.text) == skeleton(some.text)
    assert set(full.servers) == set(none.servers)  # what should run, whatever the file lists
    fewer = _spec(listeners, (Pool("web", "HTTP", (T1,)), Pool("api", "HTTP")))
    assert skeleton(render(fewer, PATHS).text) == skeleton(full.text)
    checked = _spec(listeners, (Pool("web", "HTTP", (T1,), HealthCheck(interval=5)),
                                Pool("api", "HTTP")))
    assert skeleton(render(checked, PATHS).text) != skeleton(full.text)


# ------------------------------------------------------------------ refusals


FWD = Action("forward", (("web", 1),))


@pytest.mark.parametrize("spec, message", [
    (replace(_spec(()), id="a/b"), "load balancer id"),
    (replace(_spec(()), kind="gateway"), "kind"),
    (replace(_spec(()), addresses=()), "no address"),
    (replace(_spec(()), addresses=((SUBNET, "10.90.0.4"),)), "not a host address"),
    (replace(_spec(()), addresses=((SUBNET, "10.89.0.1"),)), "gateway"),
    (_spec((Listener(80, "TCP", FWD),)), "serves HTTP listeners"),
    (_spec((Listener(80, "HTTP", FWD), Listener(80, "HTTP", FWD))), "two listeners on port 80"),
    (_spec((Listener(80, "HTTP", Action("forward", (("nope", 1),))),)), "no pool 'nope'"),
    (_spec((Listener(80, "HTTP", FWD),), (Pool("web", "TCP"),)), "cannot forward to TCP"),
    (_spec((Listener(7000, "TCP", Action("fixed-response", status=200)),), (), "network"),
     "only forwards"),
    (_spec((Listener(80, "HTTP", Action("fixed-response", status=99)),)), "200-599"),
    (_spec((Listener(80, "HTTP", Action("redirect", redirect=Redirect(303))),)), "301 or 302"),
    (_spec((Listener(80, "HTTP", Action("redirect", redirect=Redirect(301, path="x"))),)),
     "start with /"),
    (_spec((Listener(80, "HTTP", FWD, (Rule(1, (Condition("http-header", ("x",),
                                                            header="X Y"),), FWD),)),)),
     "http-header name"),
    (_spec((Listener(80, "HTTP", FWD, (Rule(1, (Condition("path-pattern", ("a\nb",)),),
                                            FWD),)),)), "line break"),
    (_spec((Listener(80, "HTTP", FWD, (Rule(1, (Condition("cookie", ("x",)),), FWD),)),)),
     "unknown condition"),
    (_spec((Listener(80, "HTTP", FWD, (Rule(1, (), FWD), Rule(1, (), FWD))),)),
     "two rules of priority 1"),
    (_spec((), (Pool("web", "HTTP", (), HealthCheck(codes="2xx")),)), "codes"),
    (_spec((), (Pool("web", "HTTP", (), HealthCheck(path="/a b")),)), "path"),
    (_spec((), (Pool("web", "TCP", (), sticky_seconds=10),)), "stickiness"),
    (_spec((), (Pool("web", "HTTP", (T1, T1)),)), "appears twice"),
    (_spec((), (Pool("w b", "HTTP"),)), "pool id"),
])
def test_what_the_data_plane_refuses_it_names(spec: LoadBalancerSpec, message: str) -> None:
    with pytest.raises(LoadBalancerError, match=message):
        lbconfig.validate(spec)


# ------------------------------------------------------------------ the runtime API's answers


STAT = """# pxname,svname,qcur,scur,status,chkdown,check_status,check_code,
l_80,FRONTEND,,0,OPEN,,,,
p_web,10.89.0.10:8080,0,0,UP,0,L7OK,200,
p_web,10.89.0.11:8080,0,0,DOWN,2,L7STS,500,
p_web,10.89.0.12:8080,0,0,DOWN,1,INI,,
p_web,10.89.0.13:8080,0,0,DOWN 1/2,1,* L7OK,200,
p_web,10.89.0.14:8080,0,0,DRAIN,0,L7OK,200,
p_web,10.89.0.15:8080,0,0,MAINT,0,L4CON,,
p_web,10.89.0.16:8080,0,0,UP 1/3,0,L4TOUT,,
p_web,10.89.0.17:8080,0,0,DOWN,1,L4CON,,
p_web,10.89.0.18:8080,0,0,NOLB,0,L7OK,200,
p_web,BACKEND,0,0,UP,0,,,
"""


def test_show_stat_becomes_target_checks() -> None:
    got = {c.ip: c for c in parse_stat(STAT)}
    assert got["10.89.0.10"] == TargetCheck("web", "10.89.0.10", 8080, "UP", "L7OK", 200)
    assert got["10.89.0.11"] == TargetCheck("web", "10.89.0.11", 8080, "DOWN", "L7STS", 500)
    assert got["10.89.0.12"] == TargetCheck("web", "10.89.0.12", 8080, "INIT", None, None)
    assert got["10.89.0.13"].status == "INIT" and got["10.89.0.13"].check == "L7OK"
    assert got["10.89.0.14"].status == "DRAIN"
    assert got["10.89.0.15"].status == "MAINT"
    assert (got["10.89.0.16"].status, got["10.89.0.16"].check) == ("UP", "L4TOUT")
    assert (got["10.89.0.17"].status, got["10.89.0.17"].check) == ("DOWN", "L4CON")
    assert got["10.89.0.18"].status == "DRAIN"
    assert len(got) == 9


def test_show_servers_state_and_show_proc() -> None:
    state = parse_servers_state(
        "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
        "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
        "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
        "srv_fqdn srv_port srvrecord\n"
        "3 p_web 1 10.89.0.10:8080 10.89.0.10 2 8 1 1 3 15 3 4 6 0 0 0 - 8080 -\n"
        "3 p_web 2 10.89.0.11:8080 10.89.0.11 0 1 0 1 3 15 3 4 6 0 0 0 - 8080 -\n")
    a, b = state["p_web/10.89.0.10:8080"], state["p_web/10.89.0.11:8080"]
    assert (a.draining, a.maint, a.port, a.weight) == (True, False, 8080, 1)
    assert (b.draining, b.maint) == (False, True)
    with pytest.raises(LoadBalancerError):
        parse_servers_state("Unknown command\n")
    procs = parse_procs(
        "#<PID>          <type>          <reloads>       <uptime>        <version>\n"
        "24397           master          2 [failed: 1]   0d00h10m42s     2.6.12\n"
        "# workers\n16033           worker          0               0d00h00m01s     2.6.12\n"
        "# old workers\n1233            worker          1               0d00h00m43s     2.6.12\n"
        "# programs\n\n")
    assert (procs.master, procs.reloads, procs.failed, procs.workers) == (24397, 2, 1, (16033,))
    assert worker_pid("Name: HAProxy\nVersion: 2.6.12\nPid: 812\n") == 812
    assert worker_pid("nothing") is None
