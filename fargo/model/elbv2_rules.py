"""Listener and rule actions (forward with weighted target groups, fixed-response, redirect)
and rule conditions (path-pattern, host-header, http-header, query-string,
http-request-method, source-ip), read from the request's Action and RuleCondition shapes and
checked as ELBv2 checks them. Pure: whether a target group exists and fits is control's
question."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from .elbv2 import (
    APPLICATION,
    Action,
    Condition,
    FixedResponse,
    QueryPair,
    RedirectTo,
    Weighted,
    check_arn,
    error,
    invalid,
    unsupported,
)
from .errors import ApiError

MAX_PRIORITY = 50000
MAX_FORWARD_GROUPS = 5
MAX_CONDITION_VALUES = 5  # per rule, all conditions together
MAX_WILDCARDS = 5  # per rule
CONTENT_TYPES = ("text/plain", "text/css", "text/html", "application/javascript",
                 "application/json")
_CONFIGS = {"forward": "ForwardConfig", "fixed-response": "FixedResponseConfig",
            "redirect": "RedirectConfig"}
_AUTH = ("authenticate-oidc", "authenticate-cognito", "jwt-validation")
_AUTH_CONFIGS = ("AuthenticateOidcConfig", "AuthenticateCognitoConfig", "JwtValidationConfig")
_PLACEHOLDER = re.compile(r"#\{([^}]*)\}")
_KEYWORDS = {"protocol", "host", "port", "path", "query"}


def bad_action(message: str) -> ApiError:
    return error("InvalidLoadBalancerAction", message)


def check_priority(value: int) -> int:
    if not 1 <= value <= MAX_PRIORITY:
        raise invalid(f"Priority must be between 1 and {MAX_PRIORITY}, not {value}")
    return value


def parse_actions(raw: list[dict[str, Any]], lb_kind: str, name: str) -> list[Action]:
    """One terminal action (forward, fixed-response or redirect; network load balancers:
    forward only). `name` is the parameter (DefaultActions or Actions) for messages."""
    if not raw:
        raise invalid(f"{name}: at least one action must be specified")
    actions = [_action(a, lb_kind, f"{name}[{i}]") for i, a in enumerate(raw)]
    orders = [a.order for a in actions]
    if len(set(orders)) != len(orders):
        raise invalid(f"{name}: each action must have a different Order")
    if len(actions) > 1:
        raise bad_action(f"{name}: only one forward, redirect or fixed-response action can be "
                         "given (authenticate actions, which would come first, need HTTPS "
                         "listeners)")
    return actions


def _action(raw: dict[str, Any], lb_kind: str, name: str) -> Action:
    kind = raw.get("Type")
    if kind in _AUTH:
        raise unsupported(f"{name}: action type '{kind}' needs an HTTPS listener, which fargo "
                          "does not have yet")
    if kind not in _CONFIGS:
        raise invalid(f"{name}: action type '{str(kind)[:40]}' is not valid")
    for key in (*_CONFIGS.values(), *_AUTH_CONFIGS):
        if key in raw and key != _CONFIGS[kind]:
            raise invalid(f"{name}: {key} cannot be given with action type '{kind}'")
    if "TargetGroupArn" in raw and kind != "forward":
        raise invalid(f"{name}: TargetGroupArn can only be given with action type 'forward'")
    if lb_kind != APPLICATION and kind != "forward":
        raise bad_action(f"{name}: network load balancers support forward actions only")
    order = raw.get("Order", 1)
    if not 1 <= order <= 50000:
        raise invalid(f"{name}.Order must be between 1 and 50000, not {order}")
    if kind == "forward":
        return Action("forward", order, targets=_forward(raw, lb_kind, name))
    if kind == "fixed-response":
        return Action(kind, order, fixed=_fixed(raw.get("FixedResponseConfig"), name))
    return Action(kind, order, redirect=_redirect(raw.get("RedirectConfig"), name))


def _forward(raw: dict[str, Any], lb_kind: str, name: str) -> list[Weighted]:
    single = raw.get("TargetGroupArn")
    config = raw.get("ForwardConfig") or {}
    sticky = config.get("TargetGroupStickinessConfig") or {}
    if sticky.get("Enabled"):
        raise unsupported(f"{name}: ForwardConfig.TargetGroupStickinessConfig is not "
                          "supported by fargo (target group stickiness is the "
                          "stickiness.enabled attribute)")
    if "DurationSeconds" in sticky:
        raise unsupported(f"{name}: ForwardConfig.TargetGroupStickinessConfig.DurationSeconds "
                          "is not supported by fargo")
    listed = config.get("TargetGroups")
    if not listed:
        if single is None:
            raise invalid(f"{name}: a forward action needs TargetGroupArn or "
                          "ForwardConfig.TargetGroups")
        return [Weighted(check_arn(single, "targetgroup"), 1)]
    if len(listed) > MAX_FORWARD_GROUPS:
        raise invalid(f"{name}: a forward action can have at most {MAX_FORWARD_GROUPS} "
                      "target groups")
    out: list[Weighted] = []
    for i, item in enumerate(listed):
        arn = item.get("TargetGroupArn")
        if arn is None:
            raise invalid(f"{name}.ForwardConfig.TargetGroups[{i}].TargetGroupArn must be "
                          "specified")
        weight = item.get("Weight", 1)
        if not 0 <= weight <= 999:
            raise invalid(f"{name}.ForwardConfig.TargetGroups[{i}].Weight must be between 0 "
                          f"and 999, not {weight}")
        if any(w.arn == arn for w in out):
            raise invalid(f"{name}: target group '{arn[:200]}' is given twice")
        out.append(Weighted(check_arn(arn, "targetgroup"), weight))
    if single is not None and (len(out) != 1 or out[0].arn != single):
        raise invalid(f"{name}: TargetGroupArn and ForwardConfig must name the same single "
                      "target group when both are given")
    if lb_kind != APPLICATION and len(out) > 1:
        raise bad_action(f"{name}: network load balancers forward to one target group only")
    return out


def _fixed(raw: dict[str, Any] | None, name: str) -> FixedResponse:
    if not raw:
        raise invalid(f"{name}: a fixed-response action needs FixedResponseConfig")
    status = raw.get("StatusCode")
    if not isinstance(status, str) or not re.fullmatch(r"[245]\d\d", status):
        raise invalid(f"{name}.FixedResponseConfig.StatusCode must be a 2XX, 4XX or 5XX code, "
                      f"not '{str(status)[:20]}'")
    ctype = raw.get("ContentType")
    if ctype is not None and ctype not in CONTENT_TYPES:
        raise invalid(f"{name}.FixedResponseConfig.ContentType must be one of "
                      f"{', '.join(CONTENT_TYPES)}")
    body = raw.get("MessageBody")
    if body is not None and len(body) > 1024:
        raise invalid(f"{name}.FixedResponseConfig.MessageBody can be at most 1024 characters")
    return FixedResponse(status, ctype, body)


def _keywords(value: str, field: str) -> str:
    for word in _PLACEHOLDER.findall(value):
        if word not in _KEYWORDS:
            raise invalid(f"{field} holds the unknown keyword '#{{{word[:40]}}}'")
    return value


def _redirect(raw: dict[str, Any] | None, name: str) -> RedirectTo:
    if not raw:
        raise invalid(f"{name}: a redirect action needs RedirectConfig")
    field = f"{name}.RedirectConfig"
    status = raw.get("StatusCode")
    if status not in ("HTTP_301", "HTTP_302"):
        raise invalid(f"{field}.StatusCode must be HTTP_301 or HTTP_302")
    out = RedirectTo(status)
    proto = raw.get("Protocol")
    if proto is not None:
        if proto not in ("HTTP", "HTTPS", "#{protocol}"):
            raise invalid(f"{field}.Protocol must be HTTP, HTTPS or #{{protocol}}")
        out.protocol = proto
    port = raw.get("Port")
    if port is not None:
        if port != "#{port}" and (not re.fullmatch(r"[0-9]{1,5}", port)
                                  or not 1 <= int(port) <= 65535):
            raise invalid(f"{field}.Port must be #{{port}} or a port from 1 to 65535")
        out.port = port
    host = raw.get("Host")
    if host is not None:
        if not 1 <= len(host) <= 128:
            raise invalid(f"{field}.Host must be 1-128 characters")
        out.host = _keywords(host, f"{field}.Host")
    path = raw.get("Path")
    if path is not None:
        if not 1 <= len(path) <= 128 or not path.startswith("/"):
            raise invalid(f"{field}.Path must begin with '/' and be 1-128 characters")
        out.path = _keywords(path, f"{field}.Path")
    query = raw.get("Query")
    if query is not None:
        if len(query) > 128 or query.startswith("?"):
            raise invalid(f"{field}.Query must be at most 128 characters, without a leading "
                          "'?'")
        out.query = _keywords(query, f"{field}.Query")
    if (out.protocol, out.port, out.host, out.path, out.query) == \
            ("#{protocol}", "#{port}", "#{host}", "/#{path}", "#{query}"):
        raise bad_action(f"{field}: the redirect would loop: change at least one of "
                         "Protocol, Port, Host, Path or Query")
    return out


# ---- conditions
_FIELD_CONFIGS = {"host-header": "HostHeaderConfig", "path-pattern": "PathPatternConfig",
                  "http-header": "HttpHeaderConfig", "query-string": "QueryStringConfig",
                  "http-request-method": "HttpRequestMethodConfig",
                  "source-ip": "SourceIpConfig"}
_ONCE = ("host-header", "path-pattern", "http-request-method", "source-ip")
_LEGACY = ("host-header", "path-pattern")
_PATH = re.compile(r"^[A-Za-z0-9_\-.$/~\"'@:+&*?]{1,128}$")
_HOST = re.compile(r"^[A-Za-z0-9\-.*?]{1,128}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,40}$")
_METHOD = re.compile(r"^[A-Z_-]{1,40}$")


def _printable(value: str, field: str, limit: int = 128) -> str:
    if not 1 <= len(value) <= limit or any(not 0x20 <= ord(c) <= 0x7E for c in value):
        raise invalid(f"{field} values must be 1-{limit} printable ASCII characters")
    return value


def parse_conditions(raw: list[dict[str, Any]], name: str = "Conditions") -> list[Condition]:
    if not raw:
        raise invalid(f"{name}: a rule needs at least one condition")
    conditions = [_condition(c, f"{name}[{i}]") for i, c in enumerate(raw)]
    for field in _ONCE:
        if sum(c.kind == field for c in conditions) > 1:
            raise invalid(f"{name}: a rule can have only one '{field}' condition")
    values = [v for c in conditions for v in c.values] + \
        [(p.key or "") + p.value for c in conditions for p in c.pairs]
    if len(values) > MAX_CONDITION_VALUES:
        raise invalid(f"{name}: a rule can have at most {MAX_CONDITION_VALUES} condition "
                      "values in all")
    wildcards = sum(v.count("*") + v.count("?") for c in conditions if c.kind != "source-ip"
                    for v in c.values) + \
        sum(((p.key or "") + p.value).count("*") + ((p.key or "") + p.value).count("?")
            for c in conditions for p in c.pairs)
    if wildcards > MAX_WILDCARDS:
        raise invalid(f"{name}: a rule can have at most {MAX_WILDCARDS} wildcards in all")
    return conditions


def _condition(raw: dict[str, Any], name: str) -> Condition:
    field = raw.get("Field")
    if field is None:
        raise invalid(f"{name}.Field must be specified")
    if field not in _FIELD_CONFIGS:
        raise invalid(f"{name}.Field '{str(field)[:64]}' is not valid: use one of "
                      f"{', '.join(_FIELD_CONFIGS)}")
    own = _FIELD_CONFIGS[field]
    for key in _FIELD_CONFIGS.values():
        if key in raw and key != own:
            raise invalid(f"{name}: {key} cannot be given with the '{field}' field")
    config = raw.get(own)
    if "RegexValues" in raw or (config and "RegexValues" in config):
        raise unsupported(f"{name}: RegexValues are not supported by fargo: use Values with "
                          "* and ? wildcards")
    legacy = raw.get("Values")
    if legacy is not None and field not in _LEGACY:
        raise invalid(f"{name}: Values can only be given with host-header and path-pattern; "
                      f"use {own}")
    if legacy is not None and config is not None:
        if config.get("Values") != legacy:
            raise invalid(f"{name}: Values and {own}.Values cannot both be given")
    where = f"{name}.{own}"
    if field == "http-header":
        header = (config or {}).get("HttpHeaderName")
        if header is None or not _HEADER_NAME.match(header):
            raise invalid(f"{where}.HttpHeaderName must be a header name of 1-40 characters")
        values = [_printable(v, where) for v in (config or {}).get("Values") or []]
        if not values:
            raise invalid(f"{where}.Values must have at least one value")
        return Condition(field, values, header=header)
    if field == "query-string":
        pairs = []
        for i, item in enumerate((config or {}).get("Values") or []):
            value, key = item.get("Value"), item.get("Key")
            if value is None:
                raise invalid(f"{where}.Values[{i}].Value must be specified")
            pairs.append(QueryPair(_printable(value, where),
                                   None if key is None else _printable(key, where)))
        if not pairs:
            raise invalid(f"{where}.Values must have at least one key/value pair")
        return Condition(field, pairs=pairs)
    values = legacy if legacy is not None else (config or {}).get("Values") or []
    if not values:
        raise invalid(f"{where}.Values must have at least one value")
    for v in values:
        _value(field, v, where)
    return Condition(field, list(values))


def _value(field: str, value: str, where: str) -> None:
    if field == "path-pattern" and not _PATH.match(value):
        raise invalid(f"{where}: path pattern '{value[:128]}' must be 1-128 characters of "
                      "A-Z a-z 0-9 _ - . $ / ~ \" ' @ : + & * ?")
    if field == "host-header" and not _HOST.match(value):
        raise invalid(f"{where}: host header '{value[:128]}' must be 1-128 characters of "
                      "A-Z a-z 0-9 - . * ?")
    if field == "http-request-method" and not _METHOD.match(value):
        raise invalid(f"{where}: method '{value[:40]}' must be 1-40 characters of A-Z - _")
    if field == "source-ip":
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError:
            raise invalid(f"{where}: '{value[:64]}' is not a CIDR block") from None
        if "/" not in value:
            raise invalid(f"{where}: '{value[:64]}' must be in CIDR notation")
