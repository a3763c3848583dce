"""Target groups' rules: protocols, health checks with AWS's defaults per protocol and their
bounds, the Matcher, and the attributes of target groups and load balancers (what fargo
honours, what it accepts only at the value it behaves as, what it refuses by name). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .elbv2 import APPLICATION, HealthSettings, LoadBalancer, TargetGroup, invalid, unsupported

TRAFFIC_PORT = "traffic-port"
_CODES = re.compile(r"^\d{3}(?:-\d{3})?(?:,\d{3}(?:-\d{3})?)*$")


def check_protocol(protocol: str | None, what: str) -> str:
    """HTTP (application load balancers) and TCP (network ones); what needs certificates or
    another proxy mode is refused by name."""
    if protocol is None:
        raise invalid(f"A protocol must be specified for the {what}")
    if protocol in ("HTTP", "TCP"):
        return protocol
    if protocol in ("HTTPS", "TLS"):
        raise unsupported(f"Protocol '{protocol}' needs certificates, which fargo does not "
                          f"have yet: use HTTP or TCP for the {what}")
    if protocol in ("UDP", "TCP_UDP", "QUIC", "TCP_QUIC", "GENEVE"):
        raise unsupported(f"Protocol '{protocol}' is not supported by fargo's load balancers: "
                          f"use HTTP or TCP for the {what}")
    raise invalid(f"Protocol '{protocol[:40]}' is not valid")


@dataclass
class HealthRequest:
    """What CreateTargetGroup or ModifyTargetGroup says of health checks (None: not given)."""

    protocol: str | None = None
    port: str | None = None
    enabled: bool | None = None
    path: str | None = None
    interval: int | None = None
    timeout: int | None = None
    healthy: int | None = None
    unhealthy: int | None = None
    matcher: str | None = None
    grpc_matcher: str | None = None


def default_health(tg_protocol: str, check_protocol_: str | None = None) -> HealthSettings:
    """AWS's defaults: an HTTP target group checks GET / every 30 s, 5 s timeout, 5 to be
    healthy, 2 to be unhealthy, 200 a success; a TCP one connects every 30 s with a 10 s
    timeout (its HTTP checks take 200-399)."""
    proto = check_protocol_ or ("HTTP" if tg_protocol == "HTTP" else "TCP")
    timeout = 5 if tg_protocol == "HTTP" else 10
    http = proto == "HTTP"
    return HealthSettings(protocol=proto, port=TRAFFIC_PORT, interval=30, timeout=timeout,
                          healthy=5, unhealthy=2, path="/" if http else None,
                          matcher=("200" if tg_protocol == "HTTP" else "200-399") if http
                          else None)


def _bounded(value: int, low: int, high: int, name: str) -> int:
    if not low <= value <= high:
        raise invalid(f"{name} must be between {low} and {high}, not {value}")
    return value


def check_matcher(codes: str, tg_protocol: str) -> str:
    """HttpCode: codes ("200"), lists ("200,202") or ranges ("200-299") within 200-499 for an
    HTTP target group, 200-599 for a TCP one."""
    high = 499 if tg_protocol == "HTTP" else 599
    if not _CODES.match(codes):
        raise invalid(f"Health check matcher HTTP code '{codes[:64]}' must be codes such as "
                      "'200', '200,202' or '200-299'")
    for part in codes.split(","):
        low, _, top = part.partition("-")
        first, last = int(low), int(top or low)
        if not 200 <= first <= last <= high:
            raise invalid(f"Health check matcher HTTP code '{part}' must be within 200-{high}")
    return codes


def check_health_port(port: str) -> str:
    if port == TRAFFIC_PORT:
        return port
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        raise invalid(f"Health check port '{port[:32]}' must be 'traffic-port' or a port "
                      "from 1 to 65535")
    return str(int(port))


def health_settings(tg_protocol: str, req: HealthRequest,
                    current: HealthSettings | None = None) -> HealthSettings:
    """The health checks a target group gets (created: over AWS's defaults; modified: over
    what it has). Health checks of ip targets cannot be turned off, as on AWS."""
    if req.enabled is False:
        raise invalid("Health checks cannot be disabled for target groups with target type "
                      "'ip'")
    if req.grpc_matcher is not None:
        raise unsupported("Matcher.GrpcCode needs gRPC target groups, which fargo does not "
                          "support")
    proto = req.protocol
    if proto is not None:
        if proto in ("HTTPS",):
            raise unsupported("HealthCheckProtocol 'HTTPS' is not supported by fargo: use "
                              "HTTP or TCP")
        if proto not in ("HTTP", "TCP"):
            raise invalid(f"Health check protocol '{proto[:40]}' is not supported: use HTTP "
                          "or TCP")
        if proto == "TCP" and tg_protocol == "HTTP":
            raise invalid("Health check protocol 'TCP' is not supported for target groups "
                          "with the 'HTTP' protocol")
    base = current or default_health(tg_protocol, proto)
    if current is not None and proto is not None and proto != current.protocol:
        switched = default_health(tg_protocol, proto)  # path and matcher follow the protocol
        base = replace(current, protocol=proto, path=switched.path, matcher=switched.matcher)
    http = base.protocol == "HTTP"
    if not http and req.path is not None:
        raise invalid("A health check path can only be given with the HTTP health check "
                      "protocol")
    if not http and req.matcher is not None:
        raise invalid("A health check matcher can only be given with the HTTP health check "
                      "protocol")
    out = replace(base)
    if req.port is not None:
        out.port = check_health_port(req.port)
    if req.path is not None:
        if not 1 <= len(req.path) <= 1024 or not req.path.startswith("/"):
            raise invalid("Health check path must begin with '/' and be 1-1024 characters")
        if any(not 0x21 <= ord(c) <= 0x7E for c in req.path):
            raise invalid("Health check path may hold printable ASCII characters only")
        out.path = req.path
    if req.matcher is not None:
        out.matcher = check_matcher(req.matcher, tg_protocol)
    if req.interval is not None:
        out.interval = _bounded(req.interval, 5, 300, "Health check interval")
    if req.timeout is not None:
        out.timeout = _bounded(req.timeout, 2, 120, "Health check timeout")
    if req.healthy is not None:
        out.healthy = _bounded(req.healthy, 2, 10, "Healthy threshold count")
    if req.unhealthy is not None:
        out.unhealthy = _bounded(req.unhealthy, 2, 10, "Unhealthy threshold count")
    if out.timeout >= out.interval:
        raise invalid(f"Health check interval ({out.interval}) must be greater than the "
                      f"timeout ({out.timeout})")
    return out


def check_target_type(target_type: str | None) -> str:
    if target_type == "ip":
        return "ip"
    if target_type in (None, "instance"):
        raise unsupported("Target type 'instance' (the default) is not supported: Fargate "
                          "tasks are registered by IP address, give TargetType 'ip'")
    if target_type in ("lambda", "alb"):
        raise unsupported(f"Target type '{target_type}' is not supported by fargo: give "
                          "TargetType 'ip'")
    raise invalid(f"Target type '{target_type[:40]}' is not valid")


def check_protocol_version(version: str | None, protocol: str) -> str | None:
    if protocol != "HTTP":
        if version is not None:
            raise invalid("A protocol version can only be given for HTTP target groups")
        return None
    if version is None or version.upper() == "HTTP1":
        return "HTTP1"
    if version.upper() in ("HTTP2", "GRPC"):
        raise unsupported(f"Protocol version '{version}' is not supported by fargo: targets "
                          "are reached over HTTP/1.1 (HTTP1)")
    raise invalid(f"Protocol version '{version[:40]}' is not valid")


# ---- attributes
@dataclass(frozen=True)
class Attribute:
    key: str
    value: str


def _bool(value: str, key: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise invalid(f"Attribute '{key}' must be 'true' or 'false', not '{value[:64]}'")
    return value.lower() == "true"


def _int(value: str, key: str, low: int, high: int) -> int:
    if not re.fullmatch(r"-?[0-9]{1,10}", value) or not low <= int(value) <= high:
        raise invalid(f"Attribute '{key}' must be an integer from {low} to {high}, not "
                      f"'{value[:64]}'")
    return int(value)


# Attributes AWS knows that fargo holds at one value (the one it behaves as): any other value
# is refused by name.
_FIXED_TG = {"slow_start.duration_seconds": "0",
             "load_balancing.algorithm.type": "round_robin",
             "load_balancing.cross_zone.enabled": "use_load_balancer_configuration"}
_FIXED_TG_TCP = {"deregistration_delay.connection_termination.enabled": "false",
                 "preserve_client_ip.enabled": "false", "proxy_protocol_v2.enabled": "false",
                 "stickiness.type": "source_ip",
                 "load_balancing.cross_zone.enabled": "use_load_balancer_configuration"}
_KNOWN_TG = {"stickiness.app_cookie.cookie_name", "stickiness.app_cookie.duration_seconds",
             "load_balancing.algorithm.anomaly_mitigation", "target_group_health."
             "dns_failover.minimum_healthy_targets.count", "target_group_health."
             "dns_failover.minimum_healthy_targets.percentage", "target_group_health."
             "unhealthy_state_routing.minimum_healthy_targets.count", "target_group_health."
             "unhealthy_state_routing.minimum_healthy_targets.percentage",
             "target_health_state.unhealthy.connection_termination.enabled",
             "target_health_state.unhealthy.draining_interval_seconds",
             "lambda.multi_value_headers.enabled", "target_failover.on_deregistration",
             "target_failover.on_unhealthy", "deregistration_delay.connection_termination."
             "enabled", "preserve_client_ip.enabled", "proxy_protocol_v2.enabled"}


def tg_attributes(tg: TargetGroup) -> list[Attribute]:
    out = [Attribute("deregistration_delay.timeout_seconds", str(tg.deregistration_delay)),
           Attribute("stickiness.enabled", "true" if tg.stickiness else "false")]
    if tg.protocol == "HTTP":
        out += [Attribute("stickiness.type", "lb_cookie"),
                Attribute("stickiness.lb_cookie.duration_seconds", str(tg.stickiness_seconds))]
        out += [Attribute(k, v) for k, v in _FIXED_TG.items()]
    else:
        out += [Attribute(k, v) for k, v in _FIXED_TG_TCP.items()]
    return out


def _refuse_other(key: str, value: str, fixed: str) -> None:
    if value != fixed:
        raise unsupported(f"Attribute '{key}' can only be '{fixed}' on fargo, not "
                          f"'{value[:64]}'")


def modify_tg_attributes(tg: TargetGroup, attrs: list[Attribute]) -> TargetGroup:
    """All or nothing: the target group as the attributes make it."""
    if len({a.key for a in attrs}) != len(attrs):
        raise invalid("An attribute key can only be given once")
    out = replace(tg)
    fixed = _FIXED_TG if tg.protocol == "HTTP" else _FIXED_TG_TCP
    for a in attrs:
        if a.key == "deregistration_delay.timeout_seconds":
            out.deregistration_delay = _int(a.value, a.key, 0, 3600)
        elif a.key == "stickiness.enabled":
            out.stickiness = _bool(a.value, a.key)
        elif a.key == "stickiness.type" and tg.protocol == "HTTP":
            if a.value == "app_cookie":
                raise unsupported("Attribute 'stickiness.type' 'app_cookie' is not supported "
                                  "by fargo: use 'lb_cookie'")
            _refuse_other(a.key, a.value, "lb_cookie")
        elif a.key == "stickiness.lb_cookie.duration_seconds" and tg.protocol == "HTTP":
            out.stickiness_seconds = _int(a.value, a.key, 1, 604800)
        elif a.key in fixed:
            _refuse_other(a.key, a.value, fixed[a.key])
        elif a.key in _KNOWN_TG or a.key.startswith("stickiness."):
            raise unsupported(f"Attribute '{a.key}' is not supported by fargo for "
                              f"{tg.protocol} target groups")
        else:
            raise invalid(f"Attribute key '{a.key[:256]}' is not recognized")
    if out.stickiness and tg.protocol != "HTTP":
        raise unsupported("Stickiness ('source_ip') is not supported by fargo for TCP target "
                          "groups")
    return out


_FIXED_LB_APP = {"access_logs.s3.enabled": "false", "access_logs.s3.bucket": "",
                 "access_logs.s3.prefix": "", "load_balancing.cross_zone.enabled": "true",
                 "routing.http.xff_header_processing.mode": "append",
                 "routing.http.drop_invalid_header_fields.enabled": "false"}
_FIXED_LB_NET = {"access_logs.s3.enabled": "false", "access_logs.s3.bucket": "",
                 "access_logs.s3.prefix": "", "load_balancing.cross_zone.enabled": "true"}
_KNOWN_LB = {"routing.http.desync_mitigation_mode", "routing.http.preserve_host_header.enabled",
             "routing.http.x_amzn_tls_version_and_cipher_suite.enabled",
             "routing.http.xff_client_port.enabled", "waf.fail_open.enabled",
             "client_keep_alive.seconds", "connection_logs.s3.enabled",
             "connection_logs.s3.bucket", "connection_logs.s3.prefix",
             "health_check_logs.s3.enabled", "health_check_logs.s3.bucket",
             "health_check_logs.s3.prefix", "zonal_shift.config.enabled",
             "dns_record.client_routing_policy", "ipv6.deny_all_igw_traffic",
             "secondary_ips.auto_assigned.per_subnet",
             "routing.http.response.server.enabled", "idle_timeout.timeout_seconds",
             "routing.http2.enabled"}


def lb_attributes(lb: LoadBalancer) -> list[Attribute]:
    out = [Attribute("deletion_protection.enabled", "true" if lb.deletion_protection else
                     "false")]
    if lb.kind == APPLICATION:
        out += [Attribute("idle_timeout.timeout_seconds", str(lb.idle_timeout)),
                Attribute("routing.http2.enabled", "true" if lb.http2 else "false")]
        out += [Attribute(k, v) for k, v in _FIXED_LB_APP.items()]
    else:
        out += [Attribute(k, v) for k, v in _FIXED_LB_NET.items()]
    return out


def modify_lb_attributes(lb: LoadBalancer, attrs: list[Attribute]) -> LoadBalancer:
    if len({a.key for a in attrs}) != len(attrs):
        raise invalid("An attribute key can only be given once")
    out = replace(lb)
    app = lb.kind == APPLICATION
    fixed = _FIXED_LB_APP if app else _FIXED_LB_NET
    for a in attrs:
        if a.key == "deletion_protection.enabled":
            out.deletion_protection = _bool(a.value, a.key)
        elif a.key == "idle_timeout.timeout_seconds" and app:
            out.idle_timeout = _int(a.value, a.key, 1, 4000)
        elif a.key == "routing.http2.enabled" and app:
            out.http2 = _bool(a.value, a.key)
        elif a.key in fixed:
            _refuse_other(a.key, a.value, fixed[a.key])
        elif a.key in _KNOWN_LB:
            raise unsupported(f"Attribute '{a.key}' is not supported by fargo for {lb.kind} "
                              "load balancers")
        else:
            raise invalid(f"Attribute key '{a.key[:256]}' is not recognized")
    return out
