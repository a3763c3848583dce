"""A load balancer's HAProxy configuration, rendered from its spec: pure, no I/O.

One frontend per listener (``mode http`` for an application load balancer, ``mode tcp`` for
a network one), one backend per pool. What ELBv2 decides per request becomes HAProxy rules:

- rules, lowest priority first, each set ``txn.rule`` to their index if no earlier one did
  (every condition an ACL, ANDed; a condition's values ORed as the ACL's patterns); then one
  action line per rule is guarded by ``{ var(txn.rule) -m int N }``, and the default action
  by ``!{ var(txn.rule) -m found }``. So priority holds across every kind of action, though
  HAProxy runs ``http-request return``/``redirect`` before ``use_backend``.
- a weighted forward draws ``rand(total)`` once into ``txn.w`` and picks the pool whose range
  holds it (weights 70/30: 0:69, 70:99). Pools keep their own backends, health checks and
  stickiness, as target groups do; a pool of weight 0 gets nothing.
- wildcards (* and ?) become anchored PCRE with every other character as ``\\xHH``: nothing
  a user writes can reach HAProxy's parser or the regex engine as syntax.

Servers are named ``<ip>:<port>`` (stable, so the runtime API can address them; the health
check's Host header is ``%[srv_name]``, as ELBv2 sends the target's address). Their check
settings are the backend's ``default-server`` line: servers added at run time (``add server``
inherits none of it) get the same words from ``server_options``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field

from ...port.loadbalancer import (
    Action,
    Condition,
    Listener,
    LoadBalancerError,
    LoadBalancerSpec,
    Pool,
    Redirect,
    Target,
)

ID_RE = re.compile(r"^[A-Za-z0-9-]{1,32}$")
POOL_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CODES_RE = re.compile(r"^\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*$")
METHOD_RE = re.compile(r"^[A-Z_-]{1,40}$")
# RFC 7230 token characters less those HAProxy's parser gives a meaning (# $ % & ').
HEADER_RE = re.compile(r"^[A-Za-z0-9!*+.^_`|~-]{1,40}$")
CHECK_PATH_RE = re.compile(r"^/[\x21-\x7e]{0,1023}$")
STICKY_COOKIE = "AWSALB"  # ELBv2's lb_cookie
CONNECT_TIMEOUT_S = 10  # ELBv2 gives a target 10 s to accept a connection
HARD_STOP_AFTER = "1h"  # an old worker's connections after a reload end by then at the latest
MAX_TIMEOUT_S = 2_000_000  # HAProxy's timers hold ~24.8 days of milliseconds
SERVER_INDENT = "  server "


@dataclass(frozen=True)
class Paths:
    """Where one load balancer's HAProxy keeps its files (a directory only root can enter)."""

    dir: str

    @property
    def config(self) -> str:
        return f"{self.dir}/haproxy.cfg"

    @property
    def pid(self) -> str:
        return f"{self.dir}/haproxy.pid"

    @property
    def stats(self) -> str:  # the worker's runtime API
        return f"{self.dir}/stats.sock"

    @property
    def master(self) -> str:  # the master CLI: reload, show proc
        return f"{self.dir}/master.sock"

    @property
    def state(self) -> str:  # servers' states, dumped before a reload, loaded by the new worker
        return f"{self.dir}/servers.state"

    @property
    def files(self) -> str:  # fixed-response bodies
        return f"{self.dir}/files"

    @property
    def log(self) -> str:  # HAProxy's stderr at start-up
        return f"{self.dir}/haproxy.log"


@dataclass(frozen=True)
class Server:
    """One target as a server of its pool's backend."""

    backend: str
    name: str  # <ip>:<port>
    address: str  # <ip>:<port>
    options: str  # what `add server` needs besides the address (the default-server words)
    draining: bool
    sticky: bool  # its backend inserts the stickiness cookie


@dataclass(frozen=True)
class Rendered:
    text: str
    files: dict[str, bytes] = field(default_factory=dict)  # name under Paths.files -> content
    servers: dict[str, Server] = field(default_factory=dict)  # "<backend>/<name>" -> server


@dataclass(frozen=True)
class Settings:
    """What the host decides, not the spec."""

    threads: int = 2
    maxconn: int = 20000
    user: str | None = None  # workers drop to this user (and its group) once bound


def backend_name(pool_id: str) -> str:
    return f"p_{pool_id}"


def pool_of(backend: str) -> str | None:
    return backend[2:] if backend.startswith("p_") else None


def server_name(ip: str, port: int) -> str:
    return f"{ip}:{port}"


def server_key(backend: str, name: str) -> str:
    return f"{backend}/{name}"


def skeleton(text: str) -> str:
    """The configuration without its server lines: what a change of targets leaves alone."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not line.startswith(SERVER_INDENT))


# ---------------------------------------------------------------- quoting


def quote(text: str) -> str:
    """One HAProxy word holding text as it is: single quotes stop every escape and variable;
    a quote itself is closed, escaped and reopened, as in a shell."""
    if "\n" in text or "\r" in text or "\0" in text:
        raise LoadBalancerError(f"a line break or NUL cannot be configured: {text!r}")
    return "'" + text.replace("'", "'\\''") + "'"


def lf_literal(text: str) -> str:
    """Text inside a log-format string: % is its only special character."""
    return text.replace("%", "%%")


def _hex(ch: str) -> str:
    return "".join(f"\\x{b:02x}" for b in ch.encode())


def wildcard_regex(pattern: str, *, one: str = ".", many: str = ".*",
                   escapes: bool = False) -> str:
    """ELBv2's wildcard pattern as an anchored regex: * any run, ? any one character. With
    escapes, \\* and \\? stand for themselves (query strings allow it)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if escapes and ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "*?":
            out.append(_hex(pattern[i + 1]))
            i += 2
            continue
        if ch == "*":
            out.append(many)
        elif ch == "?":
            out.append(one)
        elif ch.isascii() and ch.isalnum():
            out.append(ch)
        else:
            out.append(_hex(ch))
        i += 1
    return "".join(out)


def _anchored(body: str) -> str:
    return f"^{body}$"


# ---------------------------------------------------------------- checks of the spec


def _fail(message: str) -> LoadBalancerError:
    return LoadBalancerError(message)


def _ip(text: str, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise _fail(f"{what}: not an IPv4 address: {text!r}") from None


def _port(value: int, what: str) -> int:
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise _fail(f"{what}: port must be 1-65535, not {value!r}")
    return value


def _seconds(value: int, what: str, low: int = 1) -> int:
    if not isinstance(value, int) or not low <= value <= MAX_TIMEOUT_S:
        raise _fail(f"{what}: {value!r} seconds is out of range")
    return value


def validate(spec: LoadBalancerSpec) -> None:
    """Refuse, by name, what this data plane cannot serve as asked (control checks ELBv2's
    own rules; these are the ones HAProxy's configuration depends on)."""
    if not ID_RE.match(spec.id):
        raise _fail(f"load balancer id must match {ID_RE.pattern}: {spec.id!r}")
    if spec.kind not in ("application", "network"):
        raise _fail(f"load balancer kind must be application or network, not {spec.kind!r}")
    if not spec.addresses:
        raise _fail(f"load balancer {spec.id} has no address")
    seen_subnets: set[str] = set()
    for subnet, ip in spec.addresses:
        if subnet.id in seen_subnets:
            raise _fail(f"load balancer {spec.id} has two addresses in subnet {subnet.id}")
        seen_subnets.add(subnet.id)
        address = ipaddress.IPv4Address(_ip(ip, f"address in {subnet.id}"))
        try:
            net = ipaddress.IPv4Network(subnet.cidr)
        except ValueError:
            raise _fail(f"subnet {subnet.id}: bad CIDR {subnet.cidr!r}") from None
        if address not in net or address in (net.network_address, net.broadcast_address):
            raise _fail(f"address {ip} is not a host address of {subnet.id} ({subnet.cidr})")
        if ip == subnet.gateway:
            raise _fail(f"address {ip} is the gateway of {subnet.id}")
    _seconds(spec.idle_timeout, "idle_timeout")
    pools: dict[str, Pool] = {}
    for pool in spec.pools:
        _check_pool(pool)
        if pool.id in pools:
            raise _fail(f"pool {pool.id} appears twice")
        pools[pool.id] = pool
    ports: set[int] = set()
    for listener in spec.listeners:
        _port(listener.port, "listener")
        if listener.port in ports:
            raise _fail(f"two listeners on port {listener.port}")
        ports.add(listener.port)
        _check_listener(spec, listener, pools)


def _check_pool(pool: Pool) -> None:
    if not POOL_RE.match(pool.id):
        raise _fail(f"pool id must match {POOL_RE.pattern}: {pool.id!r}")
    if pool.protocol not in ("HTTP", "TCP"):
        raise _fail(f"pool {pool.id}: protocol must be HTTP or TCP, not {pool.protocol!r}")
    hc = pool.health
    if hc.protocol not in ("HTTP", "TCP"):
        raise _fail(f"pool {pool.id}: health check protocol must be HTTP or TCP, "
                    f"not {hc.protocol!r}")
    if hc.port is not None:
        _port(hc.port, f"pool {pool.id} health check")
    if hc.protocol == "HTTP":
        if not CHECK_PATH_RE.match(hc.path):
            raise _fail(f"pool {pool.id}: health check path must start with / and hold no "
                        f"spaces or control characters: {hc.path!r}")
        if not CODES_RE.match(hc.codes):
            raise _fail(f"pool {pool.id}: health check codes must be codes or ranges "
                        f"separated by commas (200,202 or 200-299): {hc.codes!r}")
    _seconds(hc.interval, f"pool {pool.id} health check interval")
    _seconds(hc.timeout, f"pool {pool.id} health check timeout")
    for name, value in (("healthy", hc.healthy_threshold), ("unhealthy", hc.unhealthy_threshold)):
        if not isinstance(value, int) or not 1 <= value <= 100:
            raise _fail(f"pool {pool.id}: {name} threshold must be 1-100, not {value!r}")
    if pool.sticky_seconds is not None:
        _seconds(pool.sticky_seconds, f"pool {pool.id} stickiness duration")
        if pool.protocol != "HTTP":
            raise _fail(f"pool {pool.id}: stickiness is served for HTTP pools only (a "
                        "cookie); TCP pools have none here")
    names: set[str] = set()
    for target in pool.targets:
        _ip(target.ip, f"pool {pool.id} target")
        _port(target.port, f"pool {pool.id} target {target.ip}")
        name = server_name(target.ip, target.port)
        if name in names:
            raise _fail(f"pool {pool.id}: target {name} appears twice")
        names.add(name)


def _check_listener(spec: LoadBalancerSpec, listener: Listener, pools: dict[str, Pool]) -> None:
    where = f"listener {listener.port}"
    wanted = "HTTP" if spec.kind == "application" else "TCP"
    if listener.protocol != wanted:
        raise _fail(f"{where}: a {spec.kind} load balancer serves {wanted} listeners, "
                    f"not {listener.protocol!r}")
    if listener.protocol == "TCP":
        if listener.rules:
            raise _fail(f"{where}: TCP listeners have no rules")
        if listener.default.kind != "forward":
            raise _fail(f"{where}: a TCP listener only forwards, not {listener.default.kind!r}")
    _check_action(listener.default, f"{where} default action", listener, pools)
    priorities: set[int] = set()
    for rule in listener.rules:
        if rule.priority in priorities:
            raise _fail(f"{where}: two rules of priority {rule.priority}")
        priorities.add(rule.priority)
        what = f"{where} rule {rule.priority}"
        for cond in rule.conditions:
            _check_condition(cond, what)
        _check_action(rule.action, f"{what} action", listener, pools)


def _check_action(action: Action, what: str, listener: Listener, pools: dict[str, Pool]) -> None:
    if action.kind == "forward":
        if not action.pools:
            raise _fail(f"{what}: forward names no pool")
        seen: set[str] = set()
        for pool_id, weight in action.pools:
            pool = pools.get(pool_id)
            if pool is None:
                raise _fail(f"{what}: no pool {pool_id!r} in the spec")
            if pool_id in seen:
                raise _fail(f"{what}: pool {pool_id} named twice")
            seen.add(pool_id)
            if pool.protocol != listener.protocol:
                raise _fail(f"{what}: a {listener.protocol} listener cannot forward to "
                            f"{pool.protocol} pool {pool_id}")
            if not isinstance(weight, int) or not 0 <= weight <= 999:
                raise _fail(f"{what}: weight of pool {pool_id} must be 0-999, not {weight!r}")
    elif action.kind == "fixed-response":
        if not isinstance(action.status, int) or not 200 <= action.status <= 599:
            raise _fail(f"{what}: fixed-response status must be 200-599, not {action.status!r}")
        if action.content_type is not None:
            quote(action.content_type)
    elif action.kind == "redirect":
        if action.redirect is None:
            raise _fail(f"{what}: redirect without its settings")
        r = action.redirect
        if r.status not in (301, 302):
            raise _fail(f"{what}: redirect status must be 301 or 302, not {r.status!r}")
        if r.protocol not in ("#{protocol}", "HTTP", "HTTPS"):
            raise _fail(f"{what}: redirect protocol must be HTTP, HTTPS or #{{protocol}}, "
                        f"not {r.protocol!r}")
        if r.port != "#{port}" and not (r.port.isdigit() and 1 <= int(r.port) <= 65535):
            raise _fail(f"{what}: redirect port must be 1-65535 or #{{port}}, not {r.port!r}")
        if not r.path.startswith("/"):
            raise _fail(f"{what}: redirect path must start with /: {r.path!r}")
        for part in (r.host, r.path, r.query):
            quote(part)
            if any(ord(c) < 0x21 or c == "\x7f" for c in part):
                raise _fail(f"{what}: redirect parts hold no spaces or control characters: "
                            f"{part!r}")
    else:
        raise _fail(f"{what}: unknown action {action.kind!r}")


def _check_condition(cond: Condition, what: str) -> None:
    kind = cond.kind
    if kind == "query-string":
        if not cond.pairs:
            raise _fail(f"{what}: query-string condition without pairs")
        for key, value in cond.pairs:
            quote(value)
            if key is not None:
                quote(key)
        return
    if not cond.values:
        raise _fail(f"{what}: {kind} condition without values")
    for value in cond.values:
        quote(value)
    if kind in ("path-pattern", "host-header"):
        return
    if kind == "http-header":
        if cond.header is None or not HEADER_RE.match(cond.header):
            raise _fail(f"{what}: http-header name must match {HEADER_RE.pattern}: "
                        f"{cond.header!r}")
        if cond.header.lower() == "host":
            raise _fail(f"{what}: the host header takes a host-header condition")
        return
    if kind == "http-request-method":
        for value in cond.values:
            if not METHOD_RE.match(value):
                raise _fail(f"{what}: method must match {METHOD_RE.pattern}: {value!r}")
        return
    if kind == "source-ip":
        for value in cond.values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise _fail(f"{what}: source-ip must be a CIDR block: {value!r}") from None
        return
    raise _fail(f"{what}: unknown condition {kind!r}")


# ---------------------------------------------------------------- rendering


def render(spec: LoadBalancerSpec, paths: Paths, settings: Settings | None = None,
           present: set[str] | None = None) -> Rendered:
    """The whole configuration. present, if given, limits the server lines to those keys
    ("<backend>/<name>"): servers HAProxy does not run yet join through the runtime API,
    which can start them down, so the file only lists those whose state a reload carries."""
    validate(spec)
    settings = settings or Settings()
    files: dict[str, bytes] = {}
    servers: dict[str, Server] = {}
    timeout = spec.idle_timeout
    out = ["# made by fargo from the load balancer's spec; fargo rewrites it", "global",
           f"  stats socket {quote(paths.stats)} mode 600 level admin",
           "  stats timeout 30s",
           f"  server-state-file {quote(paths.state)}",
           f"  nbthread {settings.threads}",
           f"  maxconn {settings.maxconn}",
           f"  hard-stop-after {HARD_STOP_AFTER}"]
    if settings.user:
        out += [f"  user {quote(settings.user)}", f"  group {quote(settings.user)}"]
    out += ["", "defaults",
            f"  timeout connect {CONNECT_TIMEOUT_S}s",
            f"  timeout client {timeout}s",
            f"  timeout server {timeout}s",
            f"  timeout http-keep-alive {timeout}s",
            f"  timeout tunnel {timeout}s",
            # A connection a target refused is tried once more, elsewhere.
            "  retries 2",
            "  option redispatch 1",
            "  load-server-state-from-file global"]
    for listener in sorted(spec.listeners, key=lambda lst: lst.port):
        out += [""] + _frontend(listener, files, paths)
    for pool in spec.pools:
        out += [""] + _backend(spec, pool, present, servers)
    return Rendered("\n".join(out) + "\n", files, servers)


def server_options(pool: Pool) -> str:
    """The check words of the pool's servers (default-server; add server repeats them)."""
    hc = pool.health
    words = [f"check inter {hc.interval}s rise {hc.healthy_threshold} "
             f"fall {hc.unhealthy_threshold}"]
    if hc.port is not None:
        words.append(f"port {hc.port}")
    return " ".join(words)


def sticky_key(spec_id: str, pool_id: str) -> str:
    """The dynamic cookies' secret: stable for the pool, so cookies survive reloads."""
    return hashlib.sha256(f"fargo-sticky:{spec_id}:{pool_id}".encode()).hexdigest()[:32]


def _backend(spec: LoadBalancerSpec, pool: Pool, present: set[str] | None,
             servers: dict[str, Server]) -> list[str]:
    name = backend_name(pool.id)
    hc = pool.health
    out = [f"backend {name}", f"  mode {pool.protocol.lower()}", "  balance roundrobin",
           f"  timeout check {hc.timeout}s"]
    if hc.protocol == "HTTP":
        out += ["  option httpchk",
                f"  http-check send meth GET uri {quote(hc.path)} ver HTTP/1.1 "
                "hdr Host %[srv_name] hdr User-Agent ELB-HealthChecker/2.0",
                f"  http-check expect status {hc.codes}"]
    sticky = pool.sticky_seconds is not None
    if sticky:
        secs = pool.sticky_seconds
        out += [f"  cookie {STICKY_COOKIE} insert indirect nocache dynamic maxlife {secs}s "
                f"attr {quote(f'Max-Age={secs}')}",
                f"  dynamic-cookie-key {sticky_key(spec.id, pool.id)}"]
    options = server_options(pool)
    out.append(f"  default-server {options}")
    for target in pool.targets:
        server = _server(name, target, options, sticky)
        key = server_key(name, server.name)
        servers[key] = server
        if present is None or key in present:
            out.append(f"{SERVER_INDENT}{server.name} {server.address}")
    return out


def _server(backend: str, target: Target, options: str, sticky: bool) -> Server:
    name = server_name(target.ip, target.port)
    return Server(backend, name, name, options, target.draining, sticky)


def _frontend(listener: Listener, files: dict[str, bytes], paths: Paths) -> list[str]:
    port = listener.port
    if listener.protocol == "TCP":
        out = [f"frontend l_{port}", "  mode tcp", f"  bind 0.0.0.0:{port}"]
        sets, picks = _forward(listener.default, None, "tcp-request content")
        return out + sets + picks
    out = [f"frontend l_{port}", "  mode http", f"  bind 0.0.0.0:{port}",
           # ELBv2 appends the client to X-Forwarded-For and sets the other two.
           "  http-request set-header X-Forwarded-For '%[req.fhdr(x-forwarded-for)], %[src]' "
           "if { req.fhdr(x-forwarded-for) -m found }",
           "  http-request set-header X-Forwarded-For %[src] "
           "unless { req.fhdr(x-forwarded-for) -m found }",
           "  http-request set-header X-Forwarded-Proto http",
           f"  http-request set-header X-Forwarded-Port {port}"]
    rules = sorted(listener.rules, key=lambda r: r.priority)
    for index, rule in enumerate(rules, start=1):
        acls = []
        for k, cond in enumerate(rule.conditions):
            acl = f"r{index}c{k}"
            out.append(f"  acl {acl} {_acl(cond)}")
            acls.append(acl)
        out.append(f"  http-request set-var(txn.rule) int({index}) "
                   f"if !{{ var(txn.rule) -m found }} {' '.join(acls)}".rstrip())
    # HAProxy runs every http-request rule before any use_backend: write them in that order.
    backends: list[str] = []
    actions: list[tuple[Action, str | None]] = [
        (rule.action, f"{{ var(txn.rule) -m int {index} }}")
        for index, rule in enumerate(rules, start=1)]
    actions.append((listener.default, "!{ var(txn.rule) -m found }" if rules else None))
    for action, guard in actions:
        if action.kind == "forward":
            sets, picks = _forward(action, guard, "http-request")
            out += sets
            backends += picks
        else:
            out += _answer(action, guard, listener, files, paths)
    return out + backends


def _answer(action: Action, guard: str | None, listener: Listener, files: dict[str, bytes],
            paths: Paths) -> list[str]:
    """A fixed response or a redirect: answered by HAProxy itself."""
    cond = f" if {guard}" if guard else ""
    if action.kind == "fixed-response":
        line = f"  http-request return status {action.status}"
        if action.body:
            body = action.body.encode()
            fname = hashlib.sha256(body).hexdigest()[:32] + ".body"
            files[fname] = body
            ctype = action.content_type or "text/plain; charset=utf-8"
            line += f" content-type {quote(ctype)} file {quote(f'{paths.files}/{fname}')}"
        return [line + cond]
    assert action.redirect is not None
    return _redirect(action.redirect, cond, listener)


def _forward(action: Action, guard: str | None, rules: str) -> tuple[list[str], list[str]]:
    """A (weighted) forward: the rules drawing its pick, and its use_backend lines. guard
    None: the listener's only action."""
    live = [(pool_id, weight) for pool_id, weight in action.pools if weight > 0]
    if len(action.pools) == 1:  # one target group: its weight does not matter
        live = [(action.pools[0][0], 1)]
    if not live:
        return [], []  # every weight 0: nothing to forward to, HAProxy answers 503
    if len(live) == 1:
        name = backend_name(live[0][0])
        return [], [f"  use_backend {name} if {guard}" if guard else f"  default_backend {name}"]
    total = sum(weight for _, weight in live)
    cond = f" if {guard}" if guard else ""
    sets = [f"  {rules} set-var(txn.w) rand({total}){cond}"]
    picks = []
    low = 0
    for pool_id, weight in live:
        high = low + weight - 1
        pick = f"{{ var(txn.w) -m int {low}:{high} }}"
        picks.append(f"  use_backend {backend_name(pool_id)} if "
                     f"{guard + ' ' if guard else ''}{pick}")
        low = high + 1
    return sets, picks


_HOST = "%[req.hdr(host),field(1,:)]"


def _redirect(r: Redirect, cond: str, listener: Listener) -> list[str]:
    """ELBv2's redirect: protocol and port are known here (the listener's own, or fixed);
    host, path and query come from the request."""
    proto = listener.protocol.lower() if r.protocol == "#{protocol}" else r.protocol.lower()
    port = str(listener.port) if r.port == "#{port}" else r.port

    def fill(part: str) -> str:
        pieces = re.split(r"(#\{(?:host|path|port|query|protocol)\})", part)
        out = []
        for piece in pieces:
            if piece == "#{host}":
                out.append(_HOST)
            elif piece == "#{path}":
                out.append("%[path,regsub(^/,)]")
            elif piece == "#{query}":
                out.append("%[query]")
            elif piece == "#{port}":
                out.append(str(listener.port))
            elif piece == "#{protocol}":
                out.append(listener.protocol.lower())
            else:
                out.append(lf_literal(piece))
        return "".join(out)

    default_port = (proto, port) in (("http", "80"), ("https", "443"))
    base = f"{proto}://{fill(r.host)}{'' if default_port else ':' + port}{fill(r.path)}"
    line = f"  http-request redirect code {r.status} location "
    if r.query == "#{query}":  # the request's own query, if it has one
        with_query = f"{line}{quote(base + '?%[query]')}"
        if cond:
            return [f"{with_query}{cond} {{ query -m len gt 0 }}", f"{line}{quote(base)}{cond}"]
        return [f"{with_query} if {{ query -m len gt 0 }}", f"{line}{quote(base)}"]
    if r.query:
        return [f"{line}{quote(base + '?' + fill(r.query))}{cond}"]
    return [f"{line}{quote(base)}{cond}"]


def _acl(cond: Condition) -> str:
    kind = cond.kind
    if kind == "path-pattern":  # case-sensitive, the path alone
        return "path -m reg " + _patterns(cond.values)
    if kind == "host-header":  # case-insensitive, without the port
        return "req.hdr(host),field(1,:) -i -m reg " + _patterns(cond.values)
    if kind == "http-header":  # each occurrence whole, case-insensitive
        return f"req.fhdr({cond.header}) -i -m reg " + _patterns(cond.values)
    if kind == "http-request-method":  # exact
        return "method -m str " + " ".join(cond.values)
    if kind == "source-ip":
        return "src " + " ".join(str(ipaddress.ip_network(v, strict=False))
                                 for v in cond.values)
    assert kind == "query-string"  # key=value anywhere in the query, case-insensitive
    regexes = []
    for key, value in cond.pairs:
        val = wildcard_regex(value, one="[^&]", many="[^&]*", escapes=True)
        if key is None:
            head = "([^&=]*=)?"
        else:
            head = wildcard_regex(key, one="[^&=]", many="[^&=]*", escapes=True) + "="
        regexes.append(quote(f"(^|&){head}{val}(&|$)"))
    return "query -i -m reg " + " ".join(regexes)


def _patterns(values: tuple[str, ...]) -> str:
    return " ".join(quote(_anchored(wildcard_regex(v))) for v in values)
