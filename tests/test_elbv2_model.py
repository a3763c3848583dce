"""ELBv2's pure rules (model/elbv2*.py) and its query wire (api/elbv2query.py) read and
written as botocore serializes and parses them. No server."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore.parsers import QueryParser
from botocore.serialize import QuerySerializer

from fargo.api import elbv2query
from fargo.model import elbv2 as m
from fargo.model import elbv2_groups as g
from fargo.model import elbv2_health as h
from fargo.model import elbv2_rules as r
from fargo.model.errors import ApiError

pytestmark = pytest.mark.pure
MODEL = botocore.session.get_session().get_service_model("elbv2")
TG = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/web/0123456789abcdef"
TG2 = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/api/fedcba9876543210"


def code(call: Any, *args: Any, **kw: Any) -> str:
    with pytest.raises(ApiError) as exc:
        call(*args, **kw)
    return exc.value.code


# ---- names, ARNs, DNS names, tags
@pytest.mark.parametrize("good", ["a", "web-1", "A" * 32, "x-y-z"])
def test_names_that_elbv2_takes(good: str) -> None:
    assert m.check_name(good, "LoadBalancer") == good


@pytest.mark.parametrize("bad", ["", "-web", "web-", "a" * 33, "we_b", "wé", "a b",
                                 "internal-web"])
def test_names_that_elbv2_refuses(bad: str) -> None:
    assert code(m.check_name, bad, "LoadBalancer") == "ValidationError"


def test_internal_prefix_is_only_refused_for_load_balancers() -> None:
    assert m.check_name("internal-web", "TargetGroup") == "internal-web"


def test_arns_and_their_kinds() -> None:
    lb = m.lb_arn("us-east-1", "application", "web", "0123456789abcdef")
    assert lb == ("arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/web/"
                  "0123456789abcdef")
    assert m.arn_kind(lb) == "loadbalancer" and m.arn_kind(TG) == "targetgroup"
    assert m.check_arn(TG, "targetgroup") == TG
    assert code(m.check_arn, lb, "targetgroup") == "ValidationError"
    assert code(m.check_arn, TG + "x", "targetgroup") == "ValidationError"
    assert m.arn_kind("arn:aws:ecs:us-east-1:000000000000:cluster/x") is None


def test_dns_names_and_zones() -> None:
    alb = m.dns_name("application", "web", "00000000499602d2", "us-east-1")
    assert alb == "internal-web-1234567890.us-east-1.elb.amazonaws.com"
    assert m.dns_name("network", "db", "0123456789abcdef", "eu-west-1") == \
        "db-0123456789abcdef.elb.eu-west-1.amazonaws.com"
    assert m.hosted_zone("application", "us-east-1") == "Z35SXDOTRQ7X7K"
    assert m.hosted_zone("network", "us-west-2") == "Z18D5FSROUN65G"


def test_tags() -> None:
    merged = m.check_tags([m.Tag("b", "2")], [m.Tag("a", "1"), m.Tag("b", "1")])
    assert merged == [m.Tag("a", "1"), m.Tag("b", "2")]
    assert code(m.check_tags, [m.Tag("a"), m.Tag("a", "x")]) == "DuplicateTagKeys"
    assert code(m.check_tags, [m.Tag("aws:x")]) == "ValidationError"
    assert code(m.check_tags, [m.Tag("a<b")]) == "ValidationError"
    assert code(m.check_tags, [m.Tag("k" * 129)]) == "ValidationError"
    assert code(m.check_tags, [m.Tag(f"k{i}") for i in range(51)]) == "TooManyTags"
    assert m.check_tags([m.Tag("été 2 @x")]) == [m.Tag("été 2 @x")]
    assert m.without_tags([m.Tag("a"), m.Tag("b")], ["a", "zz"]) == [m.Tag("b")]


# ---- target groups: health checks and attributes
def test_health_check_defaults_per_protocol() -> None:
    http = g.health_settings("HTTP", g.HealthRequest())
    assert (http.protocol, http.port, http.path, http.interval, http.timeout, http.healthy,
            http.unhealthy, http.matcher) == ("HTTP", "traffic-port", "/", 30, 5, 5, 2, "200")
    tcp = g.health_settings("TCP", g.HealthRequest())
    assert (tcp.protocol, tcp.path, tcp.matcher, tcp.timeout) == ("TCP", None, None, 10)
    tcp_http = g.health_settings("TCP", g.HealthRequest(protocol="HTTP"))
    assert (tcp_http.path, tcp_http.matcher) == ("/", "200-399")


@pytest.mark.parametrize("req", [
    g.HealthRequest(interval=4), g.HealthRequest(interval=301), g.HealthRequest(timeout=1),
    g.HealthRequest(timeout=121), g.HealthRequest(healthy=1), g.HealthRequest(unhealthy=11),
    g.HealthRequest(interval=10, timeout=10), g.HealthRequest(path="health"),
    g.HealthRequest(path="/" + "a" * 1024), g.HealthRequest(path="/a b"),
    g.HealthRequest(port="0"), g.HealthRequest(port="65536"), g.HealthRequest(port="x"),
    g.HealthRequest(matcher="500"), g.HealthRequest(matcher="200-"),
    g.HealthRequest(matcher="299-200"), g.HealthRequest(matcher="abc"),
    g.HealthRequest(protocol="TCP"), g.HealthRequest(protocol="UDP"),
    g.HealthRequest(enabled=False)])
def test_health_checks_out_of_bounds_are_refused(req: g.HealthRequest) -> None:
    assert code(g.health_settings, "HTTP", req) == "ValidationError"


def test_health_checks_fargo_cannot_run_are_refused_by_name() -> None:
    assert code(g.health_settings, "HTTP", g.HealthRequest(protocol="HTTPS")) == \
        "InvalidConfigurationRequest"
    assert code(g.health_settings, "HTTP", g.HealthRequest(grpc_matcher="12")) == \
        "InvalidConfigurationRequest"


def test_matchers_and_ranges() -> None:
    assert g.check_matcher("200,202,300-399", "HTTP") == "200,202,300-399"
    assert code(g.check_matcher, "200-599", "HTTP") == "ValidationError"
    assert g.check_matcher("200-599", "TCP") == "200-599"


def test_a_tcp_check_takes_no_path_and_switching_resets_them() -> None:
    assert code(g.health_settings, "TCP", g.HealthRequest(path="/x")) == "ValidationError"
    assert code(g.health_settings, "TCP", g.HealthRequest(matcher="200")) == "ValidationError"
    http = g.health_settings("TCP", g.HealthRequest(protocol="HTTP", path="/h"))
    back = g.health_settings("TCP", g.HealthRequest(protocol="TCP"), http)
    assert (back.protocol, back.path, back.matcher) == ("TCP", None, None)
    again = g.health_settings("TCP", g.HealthRequest(protocol="HTTP"), back)
    assert (again.path, again.matcher) == ("/", "200-399")


def test_protocols_target_types_and_versions() -> None:
    assert g.check_protocol("HTTP", "x") == "HTTP" and g.check_protocol("TCP", "x") == "TCP"
    for p in ("HTTPS", "TLS", "UDP", "TCP_UDP", "GENEVE"):
        assert code(g.check_protocol, p, "x") == "InvalidConfigurationRequest"
    assert code(g.check_protocol, None, "x") == "ValidationError"
    assert g.check_target_type("ip") == "ip"
    for t in (None, "instance", "lambda", "alb"):
        assert code(g.check_target_type, t) == "InvalidConfigurationRequest"
    assert g.check_protocol_version(None, "HTTP") == "HTTP1"
    assert g.check_protocol_version(None, "TCP") is None
    assert code(g.check_protocol_version, "GRPC", "HTTP") == "InvalidConfigurationRequest"
    assert code(g.check_protocol_version, "HTTP1", "TCP") == "ValidationError"


def _tg(protocol: str = "HTTP") -> m.TargetGroup:
    return m.TargetGroup(TG, "web", "0123456789abcdef", protocol, 80, "vpc-1",
                         g.default_health(protocol), 0.0)


def test_target_group_attributes() -> None:
    tg = _tg()
    shown = {a.key: a.value for a in g.tg_attributes(tg)}
    assert shown["deregistration_delay.timeout_seconds"] == "300"
    assert shown["stickiness.type"] == "lb_cookie"
    changed = g.modify_tg_attributes(tg, [
        g.Attribute("deregistration_delay.timeout_seconds", "0"),
        g.Attribute("stickiness.enabled", "TRUE"),
        g.Attribute("stickiness.lb_cookie.duration_seconds", "604800"),
        g.Attribute("load_balancing.algorithm.type", "round_robin")])
    assert (changed.deregistration_delay, changed.stickiness, changed.stickiness_seconds) == (
        0, True, 604800)
    assert tg.deregistration_delay == 300  # the record given is left as it was
    for bad in (("deregistration_delay.timeout_seconds", "3601"), ("stickiness.enabled", "yes"),
                ("stickiness.lb_cookie.duration_seconds", "0"), ("no.such.key", "1")):
        assert code(g.modify_tg_attributes, tg, [g.Attribute(*bad)]) == "ValidationError"
    for unsupported in (("stickiness.type", "app_cookie"), ("slow_start.duration_seconds", "30"),
                        ("load_balancing.algorithm.type", "least_outstanding_requests"),
                        ("stickiness.app_cookie.cookie_name", "c")):
        assert code(g.modify_tg_attributes, tg, [g.Attribute(*unsupported)]) == \
            "InvalidConfigurationRequest"
    tcp = _tg("TCP")
    assert code(g.modify_tg_attributes, tcp, [g.Attribute("stickiness.enabled", "true")]) == \
        "InvalidConfigurationRequest"
    assert code(g.modify_tg_attributes, tcp, [g.Attribute("preserve_client_ip.enabled",
                                                          "true")]) == \
        "InvalidConfigurationRequest"
    assert code(g.modify_tg_attributes, tg, [g.Attribute("stickiness.enabled", "true"),
                                             g.Attribute("stickiness.enabled", "false")]) == \
        "ValidationError"


def test_load_balancer_attributes() -> None:
    lb = m.LoadBalancer("arn", "web", "0123456789abcdef", "application", "vpc-1", [], [], 0.0,
                        "dns")
    changed = g.modify_lb_attributes(lb, [g.Attribute("idle_timeout.timeout_seconds", "4000"),
                                          g.Attribute("deletion_protection.enabled", "true")])
    assert (changed.idle_timeout, changed.deletion_protection) == (4000, True)
    assert code(g.modify_lb_attributes, lb, [g.Attribute("idle_timeout.timeout_seconds",
                                                         "0")]) == "ValidationError"
    assert code(g.modify_lb_attributes, lb, [g.Attribute("access_logs.s3.enabled",
                                                         "true")]) == \
        "InvalidConfigurationRequest"
    assert code(g.modify_lb_attributes, lb, [g.Attribute("waf.fail_open.enabled",
                                                         "true")]) == \
        "InvalidConfigurationRequest"
    nlb = m.LoadBalancer("arn", "db", "0123456789abcdef", "network", "vpc-1", [], [], 0.0,
                         "dns")
    assert "idle_timeout.timeout_seconds" not in {a.key for a in g.lb_attributes(nlb)}
    assert code(g.modify_lb_attributes, nlb, [g.Attribute("idle_timeout.timeout_seconds",
                                                          "30")]) == \
        "InvalidConfigurationRequest"


# ---- actions and conditions
def fwd(**kw: Any) -> dict[str, Any]:
    return {"Type": "forward", **kw}


def test_forward_actions() -> None:
    (a,) = r.parse_actions([fwd(TargetGroupArn=TG)], "application", "DefaultActions")
    assert (a.kind, a.order, a.targets) == ("forward", 1, [m.Weighted(TG, 1)])
    (a,) = r.parse_actions([fwd(ForwardConfig={"TargetGroups": [
        {"TargetGroupArn": TG, "Weight": 9}, {"TargetGroupArn": TG2, "Weight": 0}]})],
        "application", "Actions")
    assert a.targets == [m.Weighted(TG, 9), m.Weighted(TG2, 0)]
    (a,) = r.parse_actions([fwd(TargetGroupArn=TG, ForwardConfig={"TargetGroups": [
        {"TargetGroupArn": TG}]})], "network", "DefaultActions")
    assert a.targets == [m.Weighted(TG, 1)]


@pytest.mark.parametrize("action,wanted", [
    (fwd(), "ValidationError"),
    (fwd(TargetGroupArn="arn:nope"), "ValidationError"),
    (fwd(TargetGroupArn=TG2, ForwardConfig={"TargetGroups": [{"TargetGroupArn": TG}]}),
     "ValidationError"),
    (fwd(ForwardConfig={"TargetGroups": [{"TargetGroupArn": TG, "Weight": 1000}]}),
     "ValidationError"),
    (fwd(ForwardConfig={"TargetGroups": [{"TargetGroupArn": TG}, {"TargetGroupArn": TG}]}),
     "ValidationError"),
    (fwd(ForwardConfig={"TargetGroups": [{"Weight": 1}]}), "ValidationError"),
    (fwd(ForwardConfig={"TargetGroups": [{"TargetGroupArn": TG.replace("0123", f"{i:04}")}
                                         for i in range(6)]}), "ValidationError"),
    (fwd(TargetGroupArn=TG, ForwardConfig={"TargetGroupStickinessConfig": {"Enabled": True}}),
     "InvalidConfigurationRequest"),
    (fwd(TargetGroupArn=TG, FixedResponseConfig={"StatusCode": "200"}), "ValidationError"),
    ({"Type": "fixed-response"}, "ValidationError"),
    ({"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "302"}},
     "ValidationError"),
    ({"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200",
                                                        "ContentType": "image/png"}},
     "ValidationError"),
    ({"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200",
                                                        "MessageBody": "x" * 1025}},
     "ValidationError"),
    ({"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301"}},
     "InvalidLoadBalancerAction"),
    ({"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_307", "Port": "81"}},
     "ValidationError"),
    ({"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301", "Path": "x"}},
     "ValidationError"),
    ({"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301", "Host": "#{nope}"}},
     "ValidationError"),
    ({"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301", "Query": "?a"}},
     "ValidationError"),
    ({"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301", "Port": "70000"}},
     "ValidationError"),
    ({"Type": "authenticate-oidc"}, "InvalidConfigurationRequest"),
    ({"Type": "jwt-validation"}, "InvalidConfigurationRequest"),
    ({"Type": "dance"}, "ValidationError"),
    (fwd(TargetGroupArn=TG, Order=50001), "ValidationError"),
])
def test_actions_refused(action: dict[str, Any], wanted: str) -> None:
    assert code(r.parse_actions, [action], "application", "Actions") == wanted


def test_one_action_per_rule_and_network_forward_only() -> None:
    assert code(r.parse_actions, [], "application", "Actions") == "ValidationError"
    two = [fwd(TargetGroupArn=TG, Order=1), {"Type": "fixed-response", "Order": 2,
                                             "FixedResponseConfig": {"StatusCode": "200"}}]
    assert code(r.parse_actions, two, "application", "Actions") == "InvalidLoadBalancerAction"
    same = [fwd(TargetGroupArn=TG), fwd(TargetGroupArn=TG2)]
    assert code(r.parse_actions, same, "application", "Actions") == "ValidationError"
    fixed = {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}
    assert code(r.parse_actions, [fixed], "network", "Actions") == "InvalidLoadBalancerAction"
    weighted = fwd(ForwardConfig={"TargetGroups": [{"TargetGroupArn": TG},
                                                   {"TargetGroupArn": TG2}]})
    assert code(r.parse_actions, [weighted], "network", "Actions") == \
        "InvalidLoadBalancerAction"


def test_a_redirect_with_placeholders() -> None:
    (a,) = r.parse_actions([{"Type": "redirect", "RedirectConfig": {
        "StatusCode": "HTTP_302", "Protocol": "HTTPS", "Port": "443",
        "Path": "/v2/#{path}", "Query": "#{query}&from=old"}}], "application", "Actions")
    assert a.redirect == m.RedirectTo("HTTP_302", "HTTPS", "443", "#{host}", "/v2/#{path}",
                                      "#{query}&from=old")


def test_conditions_of_every_kind() -> None:
    conds = r.parse_conditions([
        {"Field": "path-pattern", "Values": ["/api/*"]},
        {"Field": "host-header", "HostHeaderConfig": {"Values": ["*.example.com"]}},
        {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Env",
                                                      "Values": ["dev"]}},
        {"Field": "query-string", "QueryStringConfig": {"Values": [{"Value": "x"}]}},
        {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["GET"]}}])
    assert [c.kind for c in conds] == ["path-pattern", "host-header", "http-header",
                                       "query-string", "http-request-method"]
    assert conds[2].header == "X-Env" and conds[3].pairs == [m.QueryPair("x")]
    (ip,) = r.parse_conditions([{"Field": "source-ip", "SourceIpConfig": {
        "Values": ["10.0.0.0/8", "2001:db8::/32"]}}])
    assert ip.values == ["10.0.0.0/8", "2001:db8::/32"]


@pytest.mark.parametrize("conds,wanted", [
    ([], "ValidationError"),
    ([{"Values": ["/"]}], "ValidationError"),
    ([{"Field": "cookie", "Values": ["/"]}], "ValidationError"),
    ([{"Field": "path-pattern"}], "ValidationError"),
    ([{"Field": "path-pattern", "Values": []}], "ValidationError"),
    ([{"Field": "path-pattern", "Values": ["/a b"]}], "ValidationError"),
    ([{"Field": "path-pattern", "Values": ["/" + "a" * 128]}], "ValidationError"),
    ([{"Field": "path-pattern", "HostHeaderConfig": {"Values": ["a"]}}], "ValidationError"),
    ([{"Field": "path-pattern", "Values": ["/a"], "PathPatternConfig": {"Values": ["/b"]}}],
     "ValidationError"),
    ([{"Field": "http-request-method", "Values": ["GET"]}], "ValidationError"),
    ([{"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["get"]}}],
     "ValidationError"),
    ([{"Field": "host-header", "Values": ["a_b.com"]}], "ValidationError"),
    ([{"Field": "http-header", "HttpHeaderConfig": {"Values": ["x"]}}], "ValidationError"),
    ([{"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X:Y",
                                                    "Values": ["x"]}}], "ValidationError"),
    ([{"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "k"}]}}],
     "ValidationError"),
    ([{"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.1/8"]}}],
     "ValidationError"),
    ([{"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.1"]}}], "ValidationError"),
    ([{"Field": "path-pattern", "Values": ["/a"]}, {"Field": "path-pattern", "Values": ["/b"]}],
     "ValidationError"),
    ([{"Field": "path-pattern", "Values": ["/a", "/b", "/c"]},
      {"Field": "host-header", "Values": ["a", "b", "c"]}], "ValidationError"),
    ([{"Field": "path-pattern", "Values": ["/*/*/*"]},
      {"Field": "host-header", "Values": ["*.*.*"]}], "ValidationError"),
    ([{"Field": "path-pattern", "PathPatternConfig": {"RegexValues": ["^/a"]}}],
     "InvalidConfigurationRequest"),
])
def test_conditions_refused(conds: list[dict[str, Any]], wanted: str) -> None:
    assert code(r.parse_conditions, conds) == wanted


def test_priorities() -> None:
    assert r.check_priority(1) == 1 and r.check_priority(50000) == 50000
    assert code(r.check_priority, 0) == "ValidationError"
    assert code(r.check_priority, 50001) == "ValidationError"


# ---- target health from HAProxy's view
@pytest.mark.parametrize("kw,state,reason", [
    ({"in_use": True, "draining": True, "status": "UP"}, "draining",
     "Target.DeregistrationInProgress"),
    ({"in_use": False, "draining": False, "status": None}, "unused", "Target.NotInUse"),
    ({"in_use": True, "draining": False, "status": None}, "initial",
     "Elb.RegistrationInProgress"),
    ({"in_use": True, "draining": False, "status": "INIT"}, "initial",
     "Elb.InitialHealthChecking"),
    ({"in_use": True, "draining": False, "status": "DOWN", "check": None}, "initial",
     "Elb.InitialHealthChecking"),
    ({"in_use": True, "draining": False, "status": "UP", "check": "L7OK"}, "healthy", None),
    ({"in_use": True, "draining": False, "status": "DOWN", "check": "L7STS", "code": 500},
     "unhealthy", "Target.ResponseCodeMismatch"),
    ({"in_use": True, "draining": False, "status": "DOWN", "check": "L4TOUT"}, "unhealthy",
     "Target.Timeout"),
    ({"in_use": True, "draining": False, "status": "DOWN", "check": "L7TOUT"}, "unhealthy",
     "Target.Timeout"),
    ({"in_use": True, "draining": False, "status": "DOWN", "check": "L4CON"}, "unhealthy",
     "Target.FailedHealthChecks"),
    ({"in_use": True, "draining": False, "status": "DRAIN"}, "draining",
     "Target.DeregistrationInProgress"),
])
def test_target_health(kw: dict[str, Any], state: str, reason: str | None) -> None:
    found = h.target_health(**kw)
    assert (found.state, found.reason) == (state, reason)
    if reason == "Target.ResponseCodeMismatch":
        assert found.description == "Health checks failed with these codes: [500]"


# ---- the wire, as botocore writes and reads it
def serialized(op: str, params: dict[str, Any]) -> dict[str, str]:
    body = QuerySerializer().serialize_to_request(params, MODEL.operation_model(op))["body"]
    return {k: str(v) for k, v in body.items()}


def test_forms_read_as_botocore_serializes_them() -> None:
    params = {"ListenerArn": "arn:l", "Priority": 3, "Conditions": [
        {"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "a", "Value": "b"}]}}],
        "Actions": [{"Type": "authenticate-oidc", "AuthenticateOidcConfig": {
            "Issuer": "i", "AuthorizationEndpoint": "a", "TokenEndpoint": "t",
            "UserInfoEndpoint": "u", "ClientId": "c",
            "AuthenticationRequestExtraParams": {"k1": "v1"}}, "Order": 1}],
        "Tags": [{"Key": "x", "Value": "y"}]}
    op = MODEL.operation_model("CreateRule")
    assert elbv2query.parse(op, serialized("CreateRule", params)) == params


def test_empty_lists_and_types() -> None:
    op = MODEL.operation_model("ModifyRule")
    assert elbv2query.parse(op, serialized("ModifyRule", {"RuleArn": "r", "Conditions": [],
                                                          "ResetTransforms": True})) == {
        "RuleArn": "r", "Conditions": [], "ResetTransforms": True}
    op = MODEL.operation_model("CreateTargetGroup")
    with pytest.raises(ApiError) as err:
        elbv2query.parse(op, {"Name": "x", "Port": "eighty"})
    assert err.value.code == "ValidationError" and "Port" in err.value.message


@pytest.mark.parametrize("form,named", [
    ({"Name": "x", "Colour": "red"}, "Colour"),
    ({"Name": "x", "Tags.member.1.Key": "k", "Tags.member.1.Colour": "c"},
     "Tags.member.1.Colour"),
    ({"Name": "x", "Subnets.1": "s"}, "Subnets.1"),
    ({"Name": "x", "Subnets.member.0": "s"}, "Subnets.member.0"),
    ({"Name": "x", "Subnets.member.x": "s"}, "Subnets.member.x"),
    ({"Name": "x", "Subnets": "s"}, "Subnets"),
    ({"Name": "x", "Name.y": "s"}, "Name.y"),
    ({"Name": "x", "Scheme": "public"}, "Scheme"),
    ({"Name": "x", "SecurityGroups.member.1": "sg-1", **{
        f"Tags.member.{i}.Key": f"k{i}" for i in range(1, 3)}, "Tags.member.3.Value": "v"},
     "Tags[2]: \"Key\""),
])
def test_forms_refused_by_name(form: dict[str, str], named: str) -> None:
    op = MODEL.operation_model("CreateLoadBalancer")
    with pytest.raises(ApiError) as err:
        elbv2query.parse(op, form)
    assert err.value.code == "ValidationError" and named in err.value.message


def test_required_members_are_checked() -> None:
    op = MODEL.operation_model("CreateLoadBalancer")
    with pytest.raises(ApiError) as err:
        elbv2query.parse(op, {})
    assert err.value.code == "ValidationError" and "Name" in err.value.message


def _parsed(op_name: str, response: Any) -> dict[str, Any]:
    op = MODEL.operation_model(op_name)
    return QueryParser().parse({"status_code": response.status, "headers": {},
                                "body": response.body}, op.output_shape)


def test_answers_parse_as_botocore_reads_them() -> None:
    op = MODEL.operation_model("DescribeLoadBalancers")
    answer = {"LoadBalancers": [{"LoadBalancerArn": "a<&>", "CreatedTime": 1700000000.5,
                                 "State": {"Code": "active"}, "SecurityGroups": ["sg-1"],
                                 "AvailabilityZones": [{"ZoneName": "z", "LoadBalancerAddresses": [
                                     {"PrivateIPv4Address": "10.0.0.4"}]}]}],
              "NextMarker": "1"}
    got = _parsed("DescribeLoadBalancers", elbv2query.render(op, answer))
    (lb,) = got["LoadBalancers"]
    assert lb["LoadBalancerArn"] == "a<&>" and lb["State"] == {"Code": "active"}
    assert lb["CreatedTime"].timestamp() == 1700000000.5
    assert lb["AvailabilityZones"][0]["LoadBalancerAddresses"][0]["PrivateIPv4Address"] == \
        "10.0.0.4"
    assert got["NextMarker"] == "1" and got["ResponseMetadata"]["RequestId"]
    op = MODEL.operation_model("DescribeTargetGroups")
    got = _parsed("DescribeTargetGroups", elbv2query.render(op, {"TargetGroups": [
        {"HealthCheckEnabled": True, "Port": 80, "LoadBalancerArns": []}]}))
    assert got["TargetGroups"] == [{"HealthCheckEnabled": True, "Port": 80,
                                    "LoadBalancerArns": []}]


def test_errors_parse_as_botocore_reads_them() -> None:
    resp = elbv2query.error_response(ApiError("no \x00 such <group>", code="TargetGroupNotFound"))
    assert resp.status == 400
    parsed = QueryParser().parse({"status_code": 400, "headers": {}, "body": resp.body}, None)
    assert parsed["Error"]["Code"] == "TargetGroupNotFound"
    assert parsed["Error"]["Type"] == "Sender"
    assert parsed["Error"]["Message"] == "no \ufffd such <group>"
    assert elbv2query.error_response(ApiError("x", code="PriorRequestNotComplete")).status == 429
    assert elbv2query.error_response(ApiError("x", code="InternalFailure")).status == 500
