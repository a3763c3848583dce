"""Containers' liveness, readiness and startup probes as kubelet runs them (pure): the
apiserver's checks and defaults, the probes parsed, when each runs, the threshold rule that
turns single results into the container's state, and the words of kubelet's events.

control/probes.py runs them; this module decides nothing from a clock of its own."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

KINDS = ("startupProbe", "livenessProbe", "readinessProbe")
HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
RUN_HANDLERS = ("exec", "httpGet", "tcpSocket")  # grpc is refused by name (admission)
SCHEMES = ("HTTP", "HTTPS")
USER_AGENT = "kube-probe/1.32"
BODY_KEPT = 10 * 1024  # bytes of a failing response's body kubelet keeps for its message
REDIRECTS = 10  # same-host redirects followed before the probe gives up (as Go's client)
INT32 = 2**31 - 1
_DEFAULTS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1,
             "failureThreshold": 3}
_TIMINGS = ("initialDelaySeconds", *_DEFAULTS)
_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_HEADER_NAME = re.compile(r"^[-!#$%&'*+.^_`|~0-9A-Za-z]+$")


def word(kind: str) -> str:
    """kubelet's name for a probe kind in its events: Liveness, Readiness, Startup."""
    return kind.removesuffix("Probe").capitalize()


# ---- the apiserver's checks and defaults

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def port_error(port: Any) -> str | None:
    """A port given by number or by a container port's name (IANA_SVC_NAME)."""
    if _is_int(port):
        return None if 1 <= port <= 65535 else \
            f"Invalid value: {port}: must be between 1 and 65535, inclusive"
    if not isinstance(port, str) or not port:
        return "Required value"
    if len(port) > 15:
        return f"Invalid value: {port[:40]!r}: must be no more than 15 characters"
    if not _PORT_NAME.match(port) or "--" in port:
        return (f"Invalid value: {port[:40]!r}: must contain only alpha-numeric characters "
                "(a-z, 0-9), and hyphens (-), and may not begin or end with or contain two "
                "adjacent hyphens")
    if not any(ch.isalpha() for ch in port):
        return f"Invalid value: {port!r}: must contain at least one letter (a-z)"
    return None


def _handler_errors(probe: dict[str, Any], at: str) -> list[tuple[str, str]]:
    given = [h for h in HANDLERS if probe.get(h) is not None]
    if not given:
        return [(at, "Required value: must specify a handler type")]
    if len(given) > 1:
        return [(f"{at}.{given[1]}", "Forbidden: may not specify more than 1 handler type")]
    kind = given[0]
    action = probe[kind]
    where = f"{at}.{kind}"
    if not isinstance(action, dict):
        return [(where, "Invalid value: must be an object")]
    if kind == "exec":
        cmd = action.get("command")
        if not cmd:
            return [(f"{where}.command", "Required value")]
        if not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd):
            return [(f"{where}.command", "Invalid value: must be a list of strings")]
        return []
    out = []
    err = port_error(action.get("port"))
    if err:
        out.append((f"{where}.port", err))
    if kind == "grpc" and not _is_int(action.get("port")):
        out.append((f"{where}.port", "Invalid value: must be a port number"))
    if kind == "httpGet":
        path = action.get("path", "/")
        if not isinstance(path, str):
            out.append((f"{where}.path", "Invalid value: must be a string"))
        scheme = action.get("scheme", "HTTP")
        if scheme not in SCHEMES:
            out.append((f"{where}.scheme", f"Unsupported value: {str(scheme)[:20]!r}: "
                        'supported values: "HTTP", "HTTPS"'))
        headers = action.get("httpHeaders") or []
        if not isinstance(headers, list):
            out.append((f"{where}.httpHeaders", "Invalid value: must be a list"))
            headers = []
        for i, h in enumerate(headers):
            name = h.get("name") if isinstance(h, dict) else None
            if not isinstance(name, str) or not _HEADER_NAME.match(name):
                out.append((f"{where}.httpHeaders[{i}].name", f"Invalid value: "
                            f"{str(name)[:60]!r}: a valid HTTP header must consist of "
                            "alphanumeric characters or '-'"))
            elif not isinstance(h.get("value", ""), str) or any(
                    ch in h.get("value", "") for ch in "\r\n\0"):
                out.append((f"{where}.httpHeaders[{i}].value",
                            "Invalid value: must be a string without line breaks"))
    return out


def probe_errors(probe: Any, kind: str, at: str) -> list[tuple[str, str]]:
    """One probe of a container, as the apiserver validates it (defaults not yet applied)."""
    if not isinstance(probe, dict):
        return [(at, "Invalid value: must be an object")]
    out = _handler_errors(probe, at)
    for key in _TIMINGS:
        v = probe.get(key)
        if v is None:
            continue
        if not _is_int(v) or v > INT32:
            out.append((f"{at}.{key}", "Invalid value: must be an integer"))
        elif v < 0:
            out.append((f"{at}.{key}", f"Invalid value: {v}: must be greater than or equal "
                        "to 0"))
    success = probe.get("successThreshold") or 1
    if kind != "readinessProbe" and _is_int(success) and success != 1:
        out.append((f"{at}.successThreshold", f"Invalid value: {success}: must be 1"))
    grace = probe.get("terminationGracePeriodSeconds")
    if grace is not None:
        if kind == "readinessProbe":
            out.append((f"{at}.terminationGracePeriodSeconds", f"Invalid value: {grace}: must "
                        "not be set for readinessProbes"))
        elif not _is_int(grace) or not 0 < grace <= INT32:
            out.append((f"{at}.terminationGracePeriodSeconds",
                        f"Invalid value: {str(grace)[:20]}: must be greater than 0"))
    return out


def spec_errors(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """Every probe of a pod spec (init containers may have none: fargo runs no sidecars)."""
    out: list[tuple[str, str]] = []
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            if not isinstance(c, dict):
                continue
            for kind in KINDS:
                if c.get(kind) is None:
                    continue
                at = f"spec.{group}[{i}].{kind}"
                if group == "initContainers":
                    out.append((at, "Forbidden: may not be set for init containers without "
                                "restartPolicy=Always"))
                else:
                    out += probe_errors(c[kind], kind, at)
    return out


def default_probes(spec: dict[str, Any]) -> None:
    """The apiserver's defaults, so `-o yaml` shows the timings that run."""
    for c in spec.get("containers") or []:
        for kind in KINDS:
            probe = c.get(kind)
            if not isinstance(probe, dict):
                continue
            for key, value in _DEFAULTS.items():
                if not probe.get(key):
                    probe[key] = value
            http = probe.get("httpGet")
            if isinstance(http, dict):
                if not http.get("path"):
                    http["path"] = "/"
                http.setdefault("scheme", "HTTP")


def unimplemented(c: dict[str, Any], at: str) -> list[str]:
    """Members of a container's probes fargo does not run, as field paths (refused by name):
    gRPC probes, and a host other than the pod's own address."""
    out = []
    for kind in KINDS:
        probe = c.get(kind)
        if not isinstance(probe, dict):
            continue
        if probe.get("grpc") is not None:
            out.append(f"{at}.{kind}.grpc")
        for handler in ("httpGet", "tcpSocket"):
            action = probe.get(handler)
            if isinstance(action, dict) and action.get("host"):
                out.append(f"{at}.{kind}.{handler}.host")
    return out


# ---- probes as they run

@dataclass(frozen=True)
class Exec:
    argv: tuple[str, ...]


@dataclass(frozen=True)
class HttpGet:
    port: int | str  # a number, or the name of one of the container's ports
    path: str = "/"
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TcpSocket:
    port: int | str


Action = Exec | HttpGet | TcpSocket


@dataclass(frozen=True)
class Probe:
    kind: str  # livenessProbe | readinessProbe | startupProbe
    action: Action
    initial_delay: int = 0
    period: int = 10
    timeout: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    grace: int | None = None  # liveness/startup: the kill's grace (None: the pod's)


def probe_of(kind: str, raw: dict[str, Any]) -> Probe:
    """A validated probe as it runs (zeros and absences mean the defaults)."""
    action: Action
    if raw.get("exec") is not None:
        action = Exec(tuple(raw["exec"]["command"]))
    elif raw.get("httpGet") is not None:
        h = raw["httpGet"]
        action = HttpGet(h["port"], h.get("path") or "/", h.get("scheme") or "HTTP",
                         tuple((x["name"], x.get("value", "")) for x in h.get("httpHeaders")
                               or []))
    else:
        action = TcpSocket(raw["tcpSocket"]["port"])
    return Probe(kind, action, initial_delay=raw.get("initialDelaySeconds") or 0,
                 period=raw.get("periodSeconds") or 10, timeout=raw.get("timeoutSeconds") or 1,
                 success_threshold=raw.get("successThreshold") or 1,
                 failure_threshold=raw.get("failureThreshold") or 3,
                 grace=raw.get("terminationGracePeriodSeconds"))


def probes_of(container: dict[str, Any]) -> dict[str, Probe]:
    return {kind: probe_of(kind, container[kind]) for kind in KINDS
            if isinstance(container.get(kind), dict)}


def resolve_port(port: int | str, container: dict[str, Any]) -> int:
    """A probe's port as a number: a name is looked up in the container's ports (ValueError,
    kubelet's words, when it has none of that name)."""
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if isinstance(p, dict) and p.get("name") == port and _is_int(p.get("containerPort")):
            return int(p["containerPort"])
    raise ValueError(f"couldn't find port: {port} in {container.get('name')}")


def first_due(started_at: float, probe: Probe, now: float) -> float:
    """Wall clock of a container run's first probe: after its initial delay (at once if that
    has passed, as for a run found by a restarted server)."""
    return max(now, started_at + probe.initial_delay)


def kill_grace(probe: Probe, pod_grace: int | None) -> int:
    """A failed liveness or startup probe stops the container with the probe's own grace,
    else the pod's."""
    if probe.grace is not None:
        return probe.grace
    return 30 if pod_grace is None else pod_grace


# ---- the threshold rule

@dataclass(frozen=True)
class Streak:
    """The run of equal results so far (kubelet's lastResult and resultRun)."""

    last: bool | None = None
    run: int = 0


def step(streak: Streak, passed: bool, probe: Probe) -> tuple[Streak, bool | None]:
    """One result in: the new streak, and the result the probe now reports (None while the
    run of equal results is still below its threshold: what was reported stands)."""
    run = streak.run + 1 if streak.last == passed else 1
    threshold = probe.success_threshold if passed else probe.failure_threshold
    if run < threshold:
        return Streak(passed, run), None
    if not passed and probe.kind != "readinessProbe":
        # The container is to be killed: counting starts afresh with its next run.
        return Streak(passed, 0), False
    return Streak(passed, run), passed


@dataclass(frozen=True)
class ProbeView:
    """What a container's probes have said of one of its runs (run: its start, wall clock)."""

    run: float | None
    started: bool
    ready: bool


def container_state(container: dict[str, Any], running: bool, run: float | None,
                    view: ProbeView | None) -> tuple[bool, bool]:
    """(started, ready) of a container status: a running container with no startup probe has
    started, with no readiness probe is ready once started; otherwise as its probes said of
    this very run, and not before they have."""
    if not running:
        return False, False
    if view is not None and view.run == run:
        return view.started, view.started and view.ready
    started = not isinstance(container.get("startupProbe"), dict)
    return started, started and not isinstance(container.get("readinessProbe"), dict)


# ---- what the probes send and the words of their results

def host_port(ip: str, port: int) -> str:
    return f"{ip}:{port}"


def http_request(probe: HttpGet, ip: str, port: int, path: str | None = None) -> bytes:
    """The GET kubelet sends: its Host, User-Agent and Accept unless the probe's headers
    name them, then those headers; one request per connection."""
    target = path if path is not None else probe.path
    if not target.startswith("/"):
        target = "/" + target
    given = {name.lower() for name, _ in probe.headers}
    lines = [f"GET {target} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {host_port(ip, port)}")
    if "user-agent" not in given:
        lines.append(f"User-Agent: {USER_AGENT}")
    if "accept" not in given:
        lines.append("Accept: */*")
    lines += [f"{name}: {value}" for name, value in probe.headers]
    lines += ["Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1", "replace")


def http_url(probe: HttpGet, ip: str, port: int) -> str:
    path = probe.path if probe.path.startswith("/") else "/" + probe.path
    return f"{probe.scheme.lower()}://{host_port(ip, port)}{path}"


def http_verdict(code: int, body: bytes) -> tuple[bool, str]:
    """(passed, message) of a response: 200 to 399 pass."""
    if 200 <= code < 400:
        return True, body[:BODY_KEPT].decode("utf-8", "replace")
    return False, f"HTTP probe failed with statuscode: {code}"


def same_host_redirect(location: str, probe: HttpGet, ip: str, port: int) -> str | None:
    """The path a redirect leads to when it stays on the probed host and scheme (kubelet
    follows those); None when it leaves (then the probe passes, as a redirect does)."""
    if location.startswith("/"):
        return location
    prefix = f"{probe.scheme.lower()}://{host_port(ip, port)}"
    if location.startswith(prefix + "/") or location == prefix:
        return location[len(prefix):] or "/"
    return None


def refused(what: str, ip: str, port: int) -> str:
    return f"{what}dial tcp {host_port(ip, port)}: connect: connection refused"


def timed_out_http(url: str) -> str:
    return (f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting '
            "headers)")


def timed_out_tcp(ip: str, port: int) -> str:
    return f"dial tcp {host_port(ip, port)}: i/o timeout"


def exec_failed(argv: tuple[str, ...], code: int | None) -> str:
    """exec's probe keeps no output here: the exit code or the timeout says what failed."""
    shown = " ".join(argv)
    if code is None:
        return f'command "{shown}" timed out'
    return f'command "{shown}" exited with code {code}'


def failed_event(kind: str, message: str) -> str:
    return f"{word(kind)} probe failed: {message}"


def errored_event(kind: str, message: str) -> str:
    return f"{word(kind)} probe errored and resulted in unknown state: {message}"


def killing_event(name: str, kind: str, restarts: bool) -> str:
    text = f"Container {name} failed {word(kind).lower()} probe"
    return text + (", will be restarted" if restarts else "")
