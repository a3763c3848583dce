"""The Elastic Load Balancing (v2) face: each request, already read and checked against
botocore's elbv2 shape by api/elbv2query.py, becomes one call to control/elbv2 with named
arguments; its records are rendered in the API's own member names."""

from __future__ import annotations

from typing import Any

from ..control.elbv2 import Elbv2, RuleView, TargetHealthView, TargetRequest
from ..model import elbv2 as m
from ..model import elbv2_groups as g
from .elbv2query import Handler

Params = dict[str, Any]
Answer = dict[str, Any]


# ---- what requests carry
def _tags(p: Params) -> list[m.Tag]:
    return [m.Tag(t["Key"], t.get("Value", "")) for t in p.get("Tags") or []]


def _targets(p: Params) -> list[TargetRequest]:
    return [TargetRequest(t["Id"], t.get("Port"), t.get("AvailabilityZone"),
                          t.get("QuicServerId")) for t in p.get("Targets") or []]


def _health(p: Params) -> g.HealthRequest:
    matcher = p.get("Matcher") or {}
    return g.HealthRequest(protocol=p.get("HealthCheckProtocol"),
                           port=p.get("HealthCheckPort"), enabled=p.get("HealthCheckEnabled"),
                           path=p.get("HealthCheckPath"),
                           interval=p.get("HealthCheckIntervalSeconds"),
                           timeout=p.get("HealthCheckTimeoutSeconds"),
                           healthy=p.get("HealthyThresholdCount"),
                           unhealthy=p.get("UnhealthyThresholdCount"),
                           matcher=matcher.get("HttpCode"), grpc_matcher=matcher.get("GrpcCode"))


def _attributes(p: Params) -> list[g.Attribute]:
    out = []
    for i, a in enumerate(p.get("Attributes") or []):
        if "Key" not in a:
            raise m.invalid(f"Attributes[{i}].Key must be specified")
        out.append(g.Attribute(a["Key"], a.get("Value", "")))
    if not out:
        raise m.invalid("Attributes: at least one attribute must be specified")
    return out


def _paged(key: str, items: list[Answer], marker: str | None) -> Answer:
    out: Answer = {key: items}
    if marker is not None:
        out["NextMarker"] = marker
    return out


# ---- what answers carry
def _lb(lb: m.LoadBalancer) -> Answer:
    state: Answer = {"Code": lb.state}
    if lb.reason:
        state["Reason"] = lb.reason
    out: Answer = {
        "LoadBalancerArn": lb.arn, "DNSName": lb.dns_name,
        "CanonicalHostedZoneId": m.hosted_zone(lb.kind, lb.arn.split(":")[3]),
        "CreatedTime": lb.created_at, "LoadBalancerName": lb.name, "Scheme": lb.scheme,
        "VpcId": lb.vpc_id, "State": state, "Type": lb.kind, "IpAddressType": "ipv4",
        # Each zone's address: where the load balancer answers (the DNSName names them).
        "AvailabilityZones": [{"ZoneName": a.zone, "SubnetId": a.subnet_id,
                               "LoadBalancerAddresses": [{"PrivateIPv4Address": a.ip}]}
                              for a in lb.addresses]}
    if lb.kind == m.APPLICATION or lb.security_groups:
        out["SecurityGroups"] = list(lb.security_groups)
    return out


def _tg(tg: m.TargetGroup, lbs: list[str]) -> Answer:
    h = tg.health
    out: Answer = {
        "TargetGroupArn": tg.arn, "TargetGroupName": tg.name, "Protocol": tg.protocol,
        "Port": tg.port, "VpcId": tg.vpc_id, "HealthCheckProtocol": h.protocol,
        "HealthCheckPort": h.port, "HealthCheckEnabled": True,
        "HealthCheckIntervalSeconds": h.interval, "HealthCheckTimeoutSeconds": h.timeout,
        "HealthyThresholdCount": h.healthy, "UnhealthyThresholdCount": h.unhealthy,
        "LoadBalancerArns": lbs, "TargetType": tg.target_type, "IpAddressType": "ipv4"}
    if h.path is not None:
        out["HealthCheckPath"] = h.path
    if h.matcher is not None:
        out["Matcher"] = {"HttpCode": h.matcher}
    if tg.protocol_version is not None:
        out["ProtocolVersion"] = tg.protocol_version
    return out


def _action(a: m.Action) -> Answer:
    out: Answer = {"Type": a.kind, "Order": a.order}
    if a.kind == "forward":
        if len(a.targets) == 1:
            out["TargetGroupArn"] = a.targets[0].arn
        out["ForwardConfig"] = {
            "TargetGroups": [{"TargetGroupArn": w.arn, "Weight": w.weight} for w in a.targets],
            "TargetGroupStickinessConfig": {"Enabled": False}}
    elif a.fixed is not None:
        fixed: Answer = {"StatusCode": a.fixed.status}
        if a.fixed.content_type is not None:
            fixed["ContentType"] = a.fixed.content_type
        if a.fixed.body is not None:
            fixed["MessageBody"] = a.fixed.body
        out["FixedResponseConfig"] = fixed
    elif a.redirect is not None:
        r = a.redirect
        out["RedirectConfig"] = {"Protocol": r.protocol, "Port": r.port, "Host": r.host,
                                 "Path": r.path, "Query": r.query, "StatusCode": r.status}
    return out


_CONFIG = {"host-header": "HostHeaderConfig", "path-pattern": "PathPatternConfig",
           "http-header": "HttpHeaderConfig", "query-string": "QueryStringConfig",
           "http-request-method": "HttpRequestMethodConfig", "source-ip": "SourceIpConfig"}


def _condition(c: m.Condition) -> Answer:
    out: Answer = {"Field": c.kind}
    if c.kind in ("host-header", "path-pattern"):
        out["Values"] = list(c.values)
    if c.kind == "http-header":
        out[_CONFIG[c.kind]] = {"HttpHeaderName": c.header, "Values": list(c.values)}
    elif c.kind == "query-string":
        out[_CONFIG[c.kind]] = {"Values": [{"Key": p.key, "Value": p.value} if p.key is not None
                                           else {"Value": p.value} for p in c.pairs]}
    else:
        out[_CONFIG[c.kind]] = {"Values": list(c.values)}
    return out


def _listener(x: m.Listener) -> Answer:
    return {"ListenerArn": x.arn, "LoadBalancerArn": x.lb_arn, "Port": x.port,
            "Protocol": x.protocol, "DefaultActions": [_action(a) for a in x.actions]}


def _rule(v: RuleView) -> Answer:
    return {"RuleArn": v.arn, "Priority": v.priority,
            "Conditions": [_condition(c) for c in v.conditions],
            "Actions": [_action(a) for a in v.actions], "IsDefault": v.is_default}


def _target_health(v: TargetHealthView) -> Answer:
    target: Answer = {"Id": v.ip, "Port": v.port}
    if v.zone is not None:
        target["AvailabilityZone"] = v.zone
    health: Answer = {"State": v.state}
    if v.reason is not None:
        health["Reason"] = v.reason
    if v.description is not None:
        health["Description"] = v.description
    return {"Target": target, "HealthCheckPort": v.health_port, "TargetHealth": health}


def _attrs(attrs: list[g.Attribute]) -> Answer:
    return {"Attributes": [{"Key": a.key, "Value": a.value} for a in attrs]}


def handlers(elb: Elbv2) -> dict[str, Handler]:
    """Action name -> handler(params), as elbv2query.serve calls them."""

    def tg_answer(tg: m.TargetGroup) -> Answer:
        return _tg(tg, elb.load_balancers_of(tg.arn))

    # ---- load balancers
    def create_load_balancer(p: Params) -> Answer:
        lb = elb.create_load_balancer(
            name=p["Name"], subnets=p.get("Subnets"), subnet_mappings=p.get("SubnetMappings"),
            security_groups=p.get("SecurityGroups"), scheme=p.get("Scheme"),
            kind=p.get("Type"), ip_address_type=p.get("IpAddressType"), tags=_tags(p),
            customer_owned_pool=p.get("CustomerOwnedIpv4Pool"),
            prefix_nat=p.get("EnablePrefixForIpv6SourceNat"), ipam_pools=p.get("IpamPools"))
        return {"LoadBalancers": [_lb(lb)]}

    def describe_load_balancers(p: Params) -> Answer:
        lbs, marker = elb.describe_load_balancers(
            arns=p.get("LoadBalancerArns"), names=p.get("Names"), marker=p.get("Marker"),
            page_size=p.get("PageSize"))
        return _paged("LoadBalancers", [_lb(lb) for lb in lbs], marker)

    def delete_load_balancer(p: Params) -> Answer:
        elb.delete_load_balancer(p["LoadBalancerArn"])
        return {}

    def describe_lb_attributes(p: Params) -> Answer:
        return _attrs(elb.load_balancer_attributes(p["LoadBalancerArn"]))

    def modify_lb_attributes(p: Params) -> Answer:
        return _attrs(elb.modify_load_balancer_attributes(p["LoadBalancerArn"],
                                                          _attributes(p)))

    # ---- target groups and targets
    def create_target_group(p: Params) -> Answer:
        tg = elb.create_target_group(
            name=p["Name"], protocol=p.get("Protocol"),
            protocol_version=p.get("ProtocolVersion"), port=p.get("Port"),
            vpc_id=p.get("VpcId"), health=_health(p), target_type=p.get("TargetType"),
            tags=_tags(p), ip_address_type=p.get("IpAddressType"),
            target_control_port=p.get("TargetControlPort"))
        return {"TargetGroups": [tg_answer(tg)]}

    def describe_target_groups(p: Params) -> Answer:
        tgs, marker = elb.describe_target_groups(
            lb_arn=p.get("LoadBalancerArn"), arns=p.get("TargetGroupArns"),
            names=p.get("Names"), marker=p.get("Marker"), page_size=p.get("PageSize"))
        return _paged("TargetGroups", [tg_answer(tg) for tg in tgs], marker)

    def modify_target_group(p: Params) -> Answer:
        return {"TargetGroups": [tg_answer(elb.modify_target_group(p["TargetGroupArn"],
                                                                   _health(p)))]}

    def delete_target_group(p: Params) -> Answer:
        elb.delete_target_group(p["TargetGroupArn"])
        return {}

    def describe_tg_attributes(p: Params) -> Answer:
        return _attrs(elb.target_group_attributes(p["TargetGroupArn"]))

    def modify_tg_attributes(p: Params) -> Answer:
        return _attrs(elb.modify_target_group_attributes(p["TargetGroupArn"], _attributes(p)))

    def register_targets(p: Params) -> Answer:
        elb.register_targets(p["TargetGroupArn"], _targets(p))
        return {}

    def deregister_targets(p: Params) -> Answer:
        elb.deregister_targets(p["TargetGroupArn"], _targets(p))
        return {}

    def describe_target_health(p: Params) -> Answer:
        views = elb.describe_target_health(p["TargetGroupArn"], _targets(p) or None,
                                           p.get("Include"))
        return {"TargetHealthDescriptions": [_target_health(v) for v in views]}

    # ---- listeners and rules
    def create_listener(p: Params) -> Answer:
        listener = elb.create_listener(
            lb_arn=p["LoadBalancerArn"], protocol=p.get("Protocol"), port=p.get("Port"),
            default_actions=p["DefaultActions"], tags=_tags(p),
            certificates=p.get("Certificates"), ssl_policy=p.get("SslPolicy"),
            alpn_policy=p.get("AlpnPolicy"),
            mutual_authentication=p.get("MutualAuthentication"))
        return {"Listeners": [_listener(listener)]}

    def describe_listeners(p: Params) -> Answer:
        listeners, marker = elb.describe_listeners(
            lb_arn=p.get("LoadBalancerArn"), arns=p.get("ListenerArns"),
            marker=p.get("Marker"), page_size=p.get("PageSize"))
        return _paged("Listeners", [_listener(x) for x in listeners], marker)

    def modify_listener(p: Params) -> Answer:
        listener = elb.modify_listener(
            p["ListenerArn"], protocol=p.get("Protocol"), port=p.get("Port"),
            default_actions=p.get("DefaultActions"), certificates=p.get("Certificates"),
            ssl_policy=p.get("SslPolicy"), alpn_policy=p.get("AlpnPolicy"),
            mutual_authentication=p.get("MutualAuthentication"))
        return {"Listeners": [_listener(listener)]}

    def delete_listener(p: Params) -> Answer:
        elb.delete_listener(p["ListenerArn"])
        return {}

    def create_rule(p: Params) -> Answer:
        view = elb.create_rule(listener_arn=p["ListenerArn"], conditions=p["Conditions"],
                               priority=p["Priority"], actions=p["Actions"], tags=_tags(p),
                               transforms=p.get("Transforms"))
        return {"Rules": [_rule(view)]}

    def describe_rules(p: Params) -> Answer:
        views, marker = elb.describe_rules(listener_arn=p.get("ListenerArn"),
                                           arns=p.get("RuleArns"), marker=p.get("Marker"),
                                           page_size=p.get("PageSize"))
        return _paged("Rules", [_rule(v) for v in views], marker)

    def modify_rule(p: Params) -> Answer:
        view = elb.modify_rule(p["RuleArn"], conditions=p.get("Conditions"),
                               actions=p.get("Actions"), transforms=p.get("Transforms"),
                               reset_transforms=p.get("ResetTransforms"))
        return {"Rules": [_rule(view)]}

    def delete_rule(p: Params) -> Answer:
        elb.delete_rule(p["RuleArn"])
        return {}

    def set_rule_priorities(p: Params) -> Answer:
        views = elb.set_rule_priorities([(x.get("RuleArn"), x.get("Priority"))
                                         for x in p["RulePriorities"]])
        return {"Rules": [_rule(v) for v in views]}

    # ---- tags
    def add_tags(p: Params) -> Answer:
        elb.add_tags(p["ResourceArns"], _tags(p))
        return {}

    def remove_tags(p: Params) -> Answer:
        elb.remove_tags(p["ResourceArns"], p["TagKeys"])
        return {}

    def describe_tags(p: Params) -> Answer:
        found = elb.describe_tags(p["ResourceArns"])
        return {"TagDescriptions": [{"ResourceArn": arn, "Tags": [{"Key": t.key,
                                                                   "Value": t.value}
                                                                  for t in tags]}
                                    for arn, tags in found]}

    return {"CreateLoadBalancer": create_load_balancer,
            "DescribeLoadBalancers": describe_load_balancers,
            "DeleteLoadBalancer": delete_load_balancer,
            "DescribeLoadBalancerAttributes": describe_lb_attributes,
            "ModifyLoadBalancerAttributes": modify_lb_attributes,
            "CreateTargetGroup": create_target_group,
            "DescribeTargetGroups": describe_target_groups,
            "ModifyTargetGroup": modify_target_group,
            "DeleteTargetGroup": delete_target_group,
            "DescribeTargetGroupAttributes": describe_tg_attributes,
            "ModifyTargetGroupAttributes": modify_tg_attributes,
            "RegisterTargets": register_targets, "DeregisterTargets": deregister_targets,
            "DescribeTargetHealth": describe_target_health,
            "CreateListener": create_listener, "DescribeListeners": describe_listeners,
            "ModifyListener": modify_listener, "DeleteListener": delete_listener,
            "CreateRule": create_rule, "DescribeRules": describe_rules,
            "ModifyRule": modify_rule, "DeleteRule": delete_rule,
            "SetRulePriorities": set_rule_priorities,
            "AddTags": add_tags, "RemoveTags": remove_tags, "DescribeTags": describe_tags}
