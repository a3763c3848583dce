"""Bad input to the ELBv2 face, sent raw and signed as an SDK would: every refusal is ELBv2's
error XML with the code AWS gives and a message naming the field, never a 500, and a refused
request changes nothing."""

from __future__ import annotations

import gzip
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import botocore.exceptions
import pytest

from tests.faceshapes import FORM_TYPE, send

NS = "{http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/}"
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/nope/0123456789abcdef"
LB_ARN = ("arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/nope/"
          "0123456789abcdef")
HOSTILE = ["", " ", "a" * 5000, "../../etc/passwd", "x\ny", "%ff", "\U0001f600", "*",
           "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/", "-1", "1e999",
           "<x>&amp;", "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/a/"
           "0123456789abcdeg"]


@pytest.fixture(scope="module")
def elb(fargo):
    return fargo.client("elbv2")


@pytest.fixture(scope="module")
def net(ec2):
    vpc = ec2.describe_vpcs()["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    return {"vpc": vpc["VpcId"], "subnets": [s["SubnetId"] for s in subnets["Subnets"]],
            "blocks": [s["CidrBlock"] for s in subnets["Subnets"]]}


def name(prefix: str = "h") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error(r) -> tuple[int, str, str]:
    """(status, code, message) of an ELBv2 error answer, checking its shape."""
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    root = ET.fromstring(r.content)
    tag = root.tag.replace(NS, "")
    if tag == "Response":  # what the server refused before ELBv2's face (EC2's shape)
        return r.status_code, root.findtext("Errors/Error/Code") or "", \
            root.findtext("Errors/Error/Message") or ""
    assert tag == "ErrorResponse", r.text[:300]
    assert root.findtext(f"{NS}Error/{NS}Type") in ("Sender", "Receiver")
    code, message = root.findtext(f"{NS}Error/{NS}Code"), root.findtext(f"{NS}Error/{NS}Message")
    assert code and message is not None and root.findtext(f"{NS}RequestId"), r.text[:300]
    return r.status_code, code, message


def post(fargo, form: dict[str, str] | bytes, headers: dict[str, str] | None = None,
         **kw):
    data = form if isinstance(form, bytes) else urlencode(
        {"Version": "2015-12-01", **form}).encode()
    return send(fargo, "POST", "/", data, {"Content-Type": FORM_TYPE, **(headers or {})},
                service="elasticloadbalancing", **kw)


def state(elb) -> tuple:
    lbs = sorted(x["LoadBalancerArn"] for x in elb.describe_load_balancers()["LoadBalancers"])
    tgs = sorted((x["TargetGroupArn"], str(x)) for x in
                 elb.describe_target_groups()["TargetGroups"])
    return lbs, tgs


@pytest.mark.parametrize("form,code,named", [
    ({"Action": "CreateTargetGroup", "Name": "x", "Port": "eighty"}, "ValidationError", "Port"),
    ({"Action": "CreateTargetGroup", "Name": "x", "HealthCheckEnabled": "maybe"},
     "ValidationError", "HealthCheckEnabled"),
    ({"Action": "CreateTargetGroup", "Name": "x", "Colour": "red"}, "ValidationError", "Colour"),
    ({"Action": "CreateTargetGroup", "Name": "x", "Protocol": "SPDY"}, "ValidationError",
     "Protocol"),
    ({"Action": "CreateTargetGroup"}, "ValidationError", "Name"),
    ({"Action": "CreateTargetGroup", "Name": "x", "Port": "99999999999999999999"},
     "ValidationError", "Port"),
    ({"Action": "CreateTargetGroup", "Name": "x", "Port": "70000", "Protocol": "HTTP",
      "TargetType": "ip"}, "ValidationError", "Port"),
    ({"Action": "CreateLoadBalancer", "Name": "x", "Subnets.member.1.Deep": "s"},
     "ValidationError", "Subnets.member.1.Deep"),
    ({"Action": "CreateLoadBalancer", "Name": "x", "Subnets.member.9999999": "s"},
     "ValidationError", "Subnets.member.9999999"),
    ({"Action": "CreateRule", "ListenerArn": "l", "Priority": "0", "Conditions": "",
      "Actions": ""}, "ValidationError", "Priority"),
    ({"Action": "CreateRule", "ListenerArn": "l", "Priority": "50001", "Conditions": "",
      "Actions": ""}, "ValidationError", "Priority"),
    ({"Action": "DescribeLoadBalancers", "PageSize": "401"}, "ValidationError", "PageSize"),
    ({"Action": "DescribeLoadBalancers", "Marker": "abc"}, "ValidationError", "marker"),
    ({"Action": "DeleteTargetGroup", "TargetGroupArn": "nope"}, "ValidationError", "nope"),
    ({"Action": "DescribeTargetHealth", "TargetGroupArn": TG_ARN}, "TargetGroupNotFound",
     TG_ARN),
    ({"Action": "DescribeListeners"}, "ValidationError", "LoadBalancerArn"),
    ({"Action": "DescribeRules"}, "ValidationError", "ListenerArn"),
    ({"Action": "DescribeTags", "ResourceArns.member.1": "arn:aws:s3:::b"}, "ValidationError",
     "arn:aws:s3:::b"),
    ({"Action": "SetSecurityGroups", "LoadBalancerArn": LB_ARN, "SecurityGroups": ""},
     "InvalidAction", "SetSecurityGroups"),
    ({"Action": "LaunchRockets"}, "InvalidAction", "LaunchRockets"),
    ({"Action": ""}, "InvalidAction", ""),
    ({"Action": "DescribeLoadBalancers", "Version": "2012-06-01"}, "InvalidAction",
     "2012-06-01"),
])
def test_bad_forms_are_refused_by_name(fargo, elb, form, code, named):
    before = state(elb)
    status, got, message = error(post(fargo, form))
    assert (status, got) == (400, code), message
    assert named in message
    assert state(elb) == before


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_in_every_arn_and_name(fargo, elb, value):
    before = state(elb)
    for form in ({"Action": "DescribeTargetGroups", "TargetGroupArns.member.1": value},
                 {"Action": "DescribeLoadBalancers", "Names.member.1": value},
                 {"Action": "DeleteLoadBalancer", "LoadBalancerArn": value},
                 {"Action": "RegisterTargets", "TargetGroupArn": value,
                  "Targets.member.1.Id": value},
                 {"Action": "CreateTargetGroup", "Name": value, "Protocol": "HTTP",
                  "Port": "80", "TargetType": "ip", "VpcId": value},
                 {"Action": "CreateLoadBalancer", "Name": value, "Scheme": "internal",
                  "Subnets.member.1": value, "Subnets.member.2": value},
                 {"Action": "AddTags", "ResourceArns.member.1": value,
                  "Tags.member.1.Key": value, "Tags.member.1.Value": value},
                 {"Action": "ModifyRule", "RuleArn": value},
                 {"Action": "ModifyListener", "ListenerArn": value, "Port": "80"}):
        r = post(fargo, form)
        assert r.status_code < 500, (form, r.text[:300])
        if r.status_code >= 400:
            error(r)
    assert state(elb) == before


def test_encodings_methods_and_signatures(fargo, elb):
    body = urlencode({"Action": "DescribeLoadBalancers", "Version": "2015-12-01"}).encode()
    r = post(fargo, gzip.compress(body), {"Content-Encoding": "gzip"})
    assert r.status_code == 200 and b"DescribeLoadBalancersResult" in r.content
    assert error(post(fargo, b"\x1f\x8b garbage", {"Content-Encoding": "gzip"}))[1] == \
        "InvalidRequest"
    assert error(post(fargo, body, {"Content-Encoding": "br"}))[1] == "InvalidRequest"
    assert error(post(fargo, b"Action=Describe%ffLoadBalancers&Version=2015-12-01"))[1] == \
        "ValidationError"
    unsigned = post(fargo, {"Action": "DescribeLoadBalancers"}, sign=False)
    assert error(unsigned)[0] in (400, 401, 403)
    r = send(fargo, "GET", "/?" + urlencode({"Action": "DescribeLoadBalancers",
                                             "Version": "2015-12-01"}),
             service="elasticloadbalancing")
    assert r.status_code == 200 and b"DescribeLoadBalancersResponse" in r.content


def test_what_the_rules_refuse(elb, net, ec2):
    def refused(call, **kw) -> str:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call(**kw)
        return str(exc.value.response["Error"]["Code"])

    before = state(elb)
    two = net["subnets"][:2]
    assert refused(elb.create_load_balancer, Name=name(), Scheme="internal",
                   Subnets=[two[0], "subnet-00000000000000000"]) == "SubnetNotFound"
    assert refused(elb.create_load_balancer, Name=name(), Scheme="internal",
                   Subnets=[two[0], two[0]]) == "ValidationError"
    assert refused(elb.create_load_balancer, Name=name(), Scheme="internal", Subnets=two,
                   SecurityGroups=["sg-00000000000000000"]) == "InvalidSecurityGroup"
    assert refused(elb.create_load_balancer, Name=name(), Scheme="internal", Subnets=two,
                   SubnetMappings=[{"SubnetId": two[0]}]) == "ValidationError"
    assert refused(elb.create_load_balancer, Name=name(), Scheme="internal",
                   SubnetMappings=[{"SubnetId": two[0], "PrivateIPv4Address": "10.0.0.9"},
                                   {"SubnetId": two[1]}]) == "InvalidConfigurationRequest"
    assert refused(elb.create_load_balancer, Name=name(), Scheme="internal", Subnets=two,
                   IpAddressType="dualstack") == "InvalidConfigurationRequest"
    assert refused(elb.create_load_balancer, Name=name(), Scheme="internal", Subnets=two,
                   Type="gateway") == "InvalidConfigurationRequest"
    assert refused(elb.create_load_balancer, Name="internal-x", Scheme="internal",
                   Subnets=two) == "ValidationError"
    assert refused(elb.create_target_group, Name=name(), Protocol="HTTP", Port=80,
                   VpcId="vpc-00000000000000000", TargetType="ip") == "ValidationError"
    assert refused(elb.create_target_group, Name=name(), Protocol="HTTP", Port=80,
                   VpcId=net["vpc"], TargetType="ip", HealthCheckIntervalSeconds=5,
                   HealthCheckTimeoutSeconds=5) == "ValidationError"
    assert refused(elb.create_target_group, Name=name(), Protocol="HTTP", Port=80,
                   VpcId=net["vpc"], TargetType="ip", HealthCheckEnabled=False) == \
        "ValidationError"
    assert refused(elb.create_target_group, Name=name(), Protocol="UDP", Port=53,
                   VpcId=net["vpc"], TargetType="ip") == "InvalidConfigurationRequest"
    assert refused(elb.create_target_group, Name=name(), Protocol="HTTP", Port=80,
                   VpcId=net["vpc"], TargetType="ip", Matcher={"HttpCode": "600"}) == \
        "ValidationError"
    assert refused(elb.create_listener, LoadBalancerArn=LB_ARN, Protocol="HTTP", Port=80,
                   DefaultActions=[{"Type": "fixed-response",
                                    "FixedResponseConfig": {"StatusCode": "200"}}]) == \
        "LoadBalancerNotFound"
    assert refused(elb.register_targets, TargetGroupArn=TG_ARN,
                   Targets=[{"Id": "10.0.0.1"}]) == "TargetGroupNotFound"
    assert state(elb) == before


def test_limits_and_references(elb, net):
    lb = elb.create_load_balancer(Name=name(), Scheme="internal",
                                  Subnets=net["subnets"][:2])["LoadBalancers"][0]
    tg = elb.create_target_group(Name=name(), Protocol="HTTP", Port=80, VpcId=net["vpc"],
                                 TargetType="ip")["TargetGroups"][0]
    try:
        own = lb["AvailabilityZones"][0]["LoadBalancerAddresses"][0]["PrivateIPv4Address"]
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            elb.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=[{"Id": own}])
        assert exc.value.response["Error"]["Code"] == "InvalidTarget"  # its own address
        a, b = net["blocks"][0].split(".")[:2]
        many = [{"Id": f"{a}.{b}.{10 + i // 250}.{4 + i % 250}"} for i in range(1001)]
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            elb.register_targets(TargetGroupArn=tg["TargetGroupArn"], Targets=many)
        assert exc.value.response["Error"]["Code"] == "TooManyTargets"
        assert elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])[
            "TargetHealthDescriptions"] == []
        listener = elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])[
            "Listeners"][0]
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            elb.create_rule(ListenerArn=listener["ListenerArn"], Priority=1, Conditions=[
                {"Field": "path-pattern", "Values": ["/a"]}], Actions=[
                {"Type": "forward", "TargetGroupArn": TG_ARN}])
        assert exc.value.response["Error"]["Code"] == "TargetGroupNotFound"
        assert len(elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]) == 1
    finally:
        elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        elb.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])
