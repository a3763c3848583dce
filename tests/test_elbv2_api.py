"""The ELBv2 face end to end: boto3's elbv2 client and the aws CLI against a real server
(the query protocol, botocore's shapes, ELBv2's error codes)."""

from __future__ import annotations

import json
import subprocess
import uuid

import botocore.exceptions
import pytest

from tests.faceshapes import FORM_TYPE, send


@pytest.fixture(scope="module")
def elb(fargo):
    return fargo.client("elbv2")


@pytest.fixture(scope="module")
def net(ec2):
    vpc = ec2.describe_vpcs()["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    return {"vpc": vpc["VpcId"], "cidr": vpc["CidrBlock"],
            "subnets": [s["SubnetId"] for s in subnets["Subnets"]],
            "blocks": [s["CidrBlock"] for s in subnets["Subnets"]]}


def name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def code_of(call, *args, **kw) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        call(*args, **kw)
    return str(exc.value.response["Error"]["Code"])


def host_in(block: str, n: int) -> str:
    a, b, c, _ = block.split("/")[0].split(".")
    return f"{a}.{b}.{c}.{n}"


def make_tg(elb, net, protocol: str = "HTTP", **kw):
    return elb.create_target_group(Name=name("tg"), Protocol=protocol, Port=8080,
                                   VpcId=net["vpc"], TargetType="ip", **kw)["TargetGroups"][0]


def make_alb(elb, net, **kw):
    return elb.create_load_balancer(Name=name("lb"), Subnets=net["subnets"][:2],
                                    Scheme="internal", **kw)["LoadBalancers"][0]


def test_an_application_load_balancer_as_created_and_described(elb, net):
    lb = make_alb(elb, net)
    try:
        arn = lb["LoadBalancerArn"]
        assert arn.startswith("arn:aws:elasticloadbalancing:us-east-1:000000000000:"
                              f"loadbalancer/app/{lb['LoadBalancerName']}/")
        assert lb["DNSName"].startswith(f"internal-{lb['LoadBalancerName']}-")
        assert lb["DNSName"].endswith(".us-east-1.elb.amazonaws.com")
        assert lb["CanonicalHostedZoneId"] == "Z35SXDOTRQ7X7K"
        assert (lb["Scheme"], lb["Type"], lb["VpcId"], lb["IpAddressType"]) == (
            "internal", "application", net["vpc"], "ipv4")
        assert lb["State"]["Code"] == "provisioning"
        zones = lb["AvailabilityZones"]
        assert [z["SubnetId"] for z in zones] == net["subnets"][:2]
        for z, block in zip(zones, net["blocks"], strict=False):
            (addr,) = z["LoadBalancerAddresses"]
            a, b, c = block.split(".")[:3]
            assert addr["PrivateIPv4Address"].startswith(f"{a}.{b}.")
        assert len(lb["SecurityGroups"]) == 1  # the VPC's default group
        (again,) = elb.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"]
        assert again["LoadBalancerName"] == lb["LoadBalancerName"]
        assert again["State"]["Code"] in ("provisioning", "active", "failed")
        (by_name,) = elb.describe_load_balancers(Names=[lb["LoadBalancerName"]])[
            "LoadBalancers"]
        assert by_name["LoadBalancerArn"] == arn
        # the same request again answers with the same load balancer, as AWS does
        same = elb.create_load_balancer(Name=lb["LoadBalancerName"], Subnets=net["subnets"][:2],
                                        Scheme="internal")["LoadBalancers"][0]
        assert same["LoadBalancerArn"] == arn
        assert code_of(elb.create_load_balancer, Name=lb["LoadBalancerName"],
                       Subnets=net["subnets"][1:3], Scheme="internal") == \
            "DuplicateLoadBalancerName"
        attrs = {a["Key"]: a["Value"] for a in elb.describe_load_balancer_attributes(
            LoadBalancerArn=arn)["Attributes"]}
        assert attrs["idle_timeout.timeout_seconds"] == "60"
        assert attrs["deletion_protection.enabled"] == "false"
        changed = {a["Key"]: a["Value"] for a in elb.modify_load_balancer_attributes(
            LoadBalancerArn=arn, Attributes=[{"Key": "idle_timeout.timeout_seconds",
                                              "Value": "120"},
                                             {"Key": "deletion_protection.enabled",
                                              "Value": "true"}])["Attributes"]}
        assert changed["idle_timeout.timeout_seconds"] == "120"
        assert code_of(elb.delete_load_balancer, LoadBalancerArn=arn) == "OperationNotPermitted"
        elb.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=[
            {"Key": "deletion_protection.enabled", "Value": "false"}])
    finally:
        elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    assert code_of(elb.describe_load_balancers, LoadBalancerArns=[lb["LoadBalancerArn"]]) == \
        "LoadBalancerNotFound"
    elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])  # gone: still succeeds


def test_target_groups_get_awss_health_check_defaults(elb, net):
    http = make_tg(elb, net)
    tcp = make_tg(elb, net, protocol="TCP")
    try:
        assert http["TargetGroupArn"].startswith(
            "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/")
        assert {k: http[k] for k in ("HealthCheckProtocol", "HealthCheckPort",
                                     "HealthCheckPath", "HealthCheckIntervalSeconds",
                                     "HealthCheckTimeoutSeconds", "HealthyThresholdCount",
                                     "UnhealthyThresholdCount", "Matcher", "TargetType",
                                     "HealthCheckEnabled", "ProtocolVersion")} == {
            "HealthCheckProtocol": "HTTP", "HealthCheckPort": "traffic-port",
            "HealthCheckPath": "/", "HealthCheckIntervalSeconds": 30,
            "HealthCheckTimeoutSeconds": 5, "HealthyThresholdCount": 5,
            "UnhealthyThresholdCount": 2, "Matcher": {"HttpCode": "200"}, "TargetType": "ip",
            "HealthCheckEnabled": True, "ProtocolVersion": "HTTP1"}
        assert (tcp["HealthCheckProtocol"], tcp["HealthCheckTimeoutSeconds"]) == ("TCP", 10)
        assert "HealthCheckPath" not in tcp and "Matcher" not in tcp
        modified = elb.modify_target_group(
            TargetGroupArn=http["TargetGroupArn"], HealthCheckPath="/health",
            HealthCheckIntervalSeconds=10, HealthCheckTimeoutSeconds=3,
            HealthyThresholdCount=2, Matcher={"HttpCode": "200-299"})["TargetGroups"][0]
        assert (modified["HealthCheckPath"], modified["HealthCheckIntervalSeconds"],
                modified["Matcher"]["HttpCode"]) == ("/health", 10, "200-299")
        attrs = {a["Key"]: a["Value"] for a in elb.describe_target_group_attributes(
            TargetGroupArn=http["TargetGroupArn"])["Attributes"]}
        assert attrs["deregistration_delay.timeout_seconds"] == "300"
        assert (attrs["stickiness.enabled"], attrs["stickiness.type"]) == ("false", "lb_cookie")
        attrs = {a["Key"]: a["Value"] for a in elb.modify_target_group_attributes(
            TargetGroupArn=http["TargetGroupArn"], Attributes=[
                {"Key": "deregistration_delay.timeout_seconds", "Value": "5"},
                {"Key": "stickiness.enabled", "Value": "true"},
                {"Key": "stickiness.lb_cookie.duration_seconds", "Value": "60"}])["Attributes"]}
        assert (attrs["deregistration_delay.timeout_seconds"], attrs["stickiness.enabled"],
                attrs["stickiness.lb_cookie.duration_seconds"]) == ("5", "true", "60")
        again = elb.create_target_group(Name=http["TargetGroupName"], Protocol="HTTP", Port=8080,
                                        VpcId=net["vpc"], TargetType="ip",
                                        HealthCheckPath="/health",
                                        HealthCheckIntervalSeconds=10,
                                        HealthCheckTimeoutSeconds=3, HealthyThresholdCount=2,
                                        Matcher={"HttpCode": "200-299"})["TargetGroups"][0]
        assert again["TargetGroupArn"] == http["TargetGroupArn"]  # idempotent
        assert code_of(elb.create_target_group, Name=http["TargetGroupName"], Protocol="HTTP",
                       Port=9999, VpcId=net["vpc"], TargetType="ip") == \
            "DuplicateTargetGroupName"
        listed = elb.describe_target_groups(Names=[http["TargetGroupName"],
                                                   tcp["TargetGroupName"]])["TargetGroups"]
        assert {t["TargetGroupArn"] for t in listed} == {http["TargetGroupArn"],
                                                         tcp["TargetGroupArn"]}
    finally:
        for tg in (http, tcp):
            elb.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])
    assert code_of(elb.describe_target_groups, TargetGroupArns=[http["TargetGroupArn"]]) == \
        "TargetGroupNotFound"


def test_targets_register_report_health_and_deregister(elb, net):
    tg = make_tg(elb, net)
    arn = tg["TargetGroupArn"]
    one, two = host_in(net["blocks"][0], 200), host_in(net["blocks"][1], 200)
    try:
        elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": one}, {"Id": two, "Port": 9090}])
        seen = {(d["Target"]["Id"], d["Target"]["Port"]): d for d in elb.describe_target_health(
            TargetGroupArn=arn)["TargetHealthDescriptions"]}
        assert set(seen) == {(one, 8080), (two, 9090)}
        first = seen[(one, 8080)]
        assert first["TargetHealth"]["State"] == "unused"  # no listener forwards to it
        assert first["TargetHealth"]["Reason"] == "Target.NotInUse"
        assert first["HealthCheckPort"] == "8080" and first["Target"]["AvailabilityZone"]
        (unknown,) = elb.describe_target_health(TargetGroupArn=arn, Targets=[
            {"Id": host_in(net["blocks"][0], 201)}])["TargetHealthDescriptions"]
        assert unknown["TargetHealth"]["Reason"] == "Target.NotRegistered"
        assert code_of(elb.register_targets, TargetGroupArn=arn,
                       Targets=[{"Id": "192.0.2.10"}]) == "InvalidTarget"
        assert code_of(elb.register_targets, TargetGroupArn=arn,
                       Targets=[{"Id": "i-0123456789abcdef0"}]) == "InvalidTarget"
        assert code_of(elb.deregister_targets, TargetGroupArn=arn,
                       Targets=[{"Id": host_in(net["blocks"][0], 202)}]) == "InvalidTarget"
        elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": one}])
        left = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        assert [(d["Target"]["Id"], d["Target"]["Port"]) for d in left] == [(two, 9090)]
    finally:
        elb.delete_target_group(TargetGroupArn=arn)


def test_listeners_and_rules(elb, net):
    lb = make_alb(elb, net)
    web, api = make_tg(elb, net), make_tg(elb, net)
    try:
        listener = elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
            DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": [
                {"TargetGroupArn": web["TargetGroupArn"], "Weight": 3},
                {"TargetGroupArn": api["TargetGroupArn"], "Weight": 1}]}}])["Listeners"][0]
        larn = listener["ListenerArn"]
        assert "listener/app/" in larn and (listener["Port"], listener["Protocol"]) == (80,
                                                                                        "HTTP")
        weights = [(t["TargetGroupArn"], t["Weight"]) for t in
                   listener["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]]
        assert weights == [(web["TargetGroupArn"], 3), (api["TargetGroupArn"], 1)]
        (tg,) = elb.describe_target_groups(TargetGroupArns=[web["TargetGroupArn"]])[
            "TargetGroups"]
        assert tg["LoadBalancerArns"] == [lb["LoadBalancerArn"]]
        groups = elb.describe_target_groups(LoadBalancerArn=lb["LoadBalancerArn"])
        assert len(groups["TargetGroups"]) == 2
        assert code_of(elb.delete_target_group, TargetGroupArn=web["TargetGroupArn"]) == \
            "ResourceInUse"
        assert code_of(elb.create_listener, LoadBalancerArn=lb["LoadBalancerArn"],
                       Protocol="HTTP", Port=80, DefaultActions=[
                           {"Type": "fixed-response",
                            "FixedResponseConfig": {"StatusCode": "404"}}]) == "DuplicateListener"
        rules = []
        conditions = [
            [{"Field": "path-pattern", "Values": ["/api/*"]}],
            [{"Field": "host-header", "HostHeaderConfig": {"Values": ["*.example.com"]}}],
            [{"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Canary",
                                                           "Values": ["yes"]}}],
            [{"Field": "query-string", "QueryStringConfig": {"Values": [
                {"Key": "v", "Value": "2"}, {"Value": "beta"}]}}],
            [{"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["POST"]}}],
            [{"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/8"]}}],
        ]
        for i, cond in enumerate(conditions):
            rules.append(elb.create_rule(ListenerArn=larn, Priority=10 * (i + 1),
                                         Conditions=cond,
                                         Actions=[{"Type": "forward",
                                                   "TargetGroupArn": api["TargetGroupArn"]}])[
                "Rules"][0])
        assert rules[0]["Conditions"][0]["PathPatternConfig"]["Values"] == ["/api/*"]
        assert rules[3]["Conditions"][0]["QueryStringConfig"]["Values"] == [
            {"Key": "v", "Value": "2"}, {"Value": "beta"}]
        fixed = elb.create_rule(ListenerArn=larn, Priority=5, Conditions=[
            {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/teapot"]}}],
            Actions=[{"Type": "fixed-response", "FixedResponseConfig": {
                "StatusCode": "418", "ContentType": "text/plain", "MessageBody": "short"}}])[
            "Rules"][0]
        moved = elb.create_rule(ListenerArn=larn, Priority=7, Conditions=[
            {"Field": "path-pattern", "Values": ["/old/*"]}],
            Actions=[{"Type": "redirect", "RedirectConfig": {
                "Path": "/new/#{path}", "StatusCode": "HTTP_301"}}])["Rules"][0]
        assert moved["Actions"][0]["RedirectConfig"]["Host"] == "#{host}"
        assert code_of(elb.create_rule, ListenerArn=larn, Priority=5, Conditions=[
            {"Field": "path-pattern", "Values": ["/x"]}], Actions=[
            {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}]) == \
            "PriorityInUse"
        listed = elb.describe_rules(ListenerArn=larn)["Rules"]
        assert [r["Priority"] for r in listed] == ["5", "7", "10", "20", "30", "40", "50", "60",
                                                   "default"]
        default = listed[-1]
        assert default["IsDefault"] and default["Conditions"] == []
        assert code_of(elb.delete_rule, RuleArn=default["RuleArn"]) == "OperationNotPermitted"
        swapped = elb.set_rule_priorities(RulePriorities=[
            {"RuleArn": fixed["RuleArn"], "Priority": 7},
            {"RuleArn": moved["RuleArn"], "Priority": 5}])["Rules"]
        assert {r["RuleArn"]: r["Priority"] for r in swapped} == {fixed["RuleArn"]: "7",
                                                                  moved["RuleArn"]: "5"}
        assert code_of(elb.set_rule_priorities, RulePriorities=[
            {"RuleArn": fixed["RuleArn"], "Priority": 10}]) == "PriorityInUse"
        (changed,) = elb.modify_rule(RuleArn=fixed["RuleArn"], Conditions=[
            {"Field": "path-pattern", "Values": ["/kettle"]}])["Rules"]
        assert changed["Conditions"][0]["Values"] == ["/kettle"]
        (dflt,) = elb.modify_rule(RuleArn=default["RuleArn"], Actions=[
            {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}])["Rules"]
        assert dflt["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "503"
        (l2,) = elb.describe_listeners(ListenerArns=[larn])["Listeners"]
        assert l2["DefaultActions"][0]["Type"] == "fixed-response"
        (mod,) = elb.modify_listener(ListenerArn=larn, Port=8080)["Listeners"]
        assert mod["Port"] == 8080
        elb.delete_rule(RuleArn=fixed["RuleArn"])
        assert code_of(elb.describe_rules, RuleArns=[fixed["RuleArn"]]) == "RuleNotFound"
        elb.delete_listener(ListenerArn=larn)
        assert code_of(elb.describe_listeners, ListenerArns=[larn]) == "ListenerNotFound"
        assert code_of(elb.describe_rules, RuleArns=[rules[0]["RuleArn"]]) == "RuleNotFound"
    finally:
        elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        for tg in (web, api):
            elb.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])


def test_tags_on_every_kind_of_resource(elb, net):
    lb = make_alb(elb, net, Tags=[{"Key": "team", "Value": "web"}])
    tg = make_tg(elb, net, Tags=[{"Key": "tier", "Value": "1"}])
    try:
        listener = elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=81,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
            Tags=[{"Key": "l", "Value": ""}])["Listeners"][0]
        (default,) = elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
        arns = [lb["LoadBalancerArn"], tg["TargetGroupArn"], listener["ListenerArn"],
                default["RuleArn"]]
        elb.add_tags(ResourceArns=arns, Tags=[{"Key": "env", "Value": "test"}])
        found = {d["ResourceArn"]: {t["Key"]: t["Value"] for t in d["Tags"]}
                 for d in elb.describe_tags(ResourceArns=arns)["TagDescriptions"]}
        assert found == {arns[0]: {"team": "web", "env": "test"},
                         arns[1]: {"tier": "1", "env": "test"},
                         arns[2]: {"l": "", "env": "test"}, arns[3]: {"env": "test"}}
        elb.remove_tags(ResourceArns=arns, TagKeys=["env"])
        found = {d["ResourceArn"]: [t["Key"] for t in d["Tags"]]
                 for d in elb.describe_tags(ResourceArns=arns)["TagDescriptions"]}
        assert found == {arns[0]: ["team"], arns[1]: ["tier"], arns[2]: ["l"], arns[3]: []}
        assert code_of(elb.add_tags, ResourceArns=[arns[0]], Tags=[
            {"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]) == "DuplicateTagKeys"
        assert code_of(elb.add_tags, ResourceArns=[arns[0]], Tags=[
            {"Key": f"k{i}", "Value": "v"} for i in range(50)]) == "TooManyTags"
    finally:
        elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        elb.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])


def test_refusals_name_what_fargo_does_not_do(elb, net):
    assert code_of(elb.create_load_balancer, Name=name(), Subnets=net["subnets"][:2]) == \
        "InvalidSubnet"  # internet-facing, the default, needs an internet gateway
    assert code_of(elb.create_load_balancer, Name=name(), Subnets=net["subnets"][:1],
                   Scheme="internal") == "ValidationError"  # an ALB needs two zones
    assert code_of(elb.create_target_group, Name=name(), Protocol="HTTP", Port=80,
                   VpcId=net["vpc"]) == "InvalidConfigurationRequest"  # instance targets
    assert code_of(elb.create_target_group, Name=name(), Protocol="HTTPS", Port=443,
                   VpcId=net["vpc"], TargetType="ip") == "InvalidConfigurationRequest"
    lb = make_alb(elb, net)
    tcp = make_tg(elb, net, protocol="TCP")
    try:
        assert code_of(elb.create_listener, LoadBalancerArn=lb["LoadBalancerArn"],
                       Protocol="HTTPS", Port=443, DefaultActions=[
                           {"Type": "forward", "TargetGroupArn": tcp["TargetGroupArn"]}]) == \
            "InvalidConfigurationRequest"
        assert code_of(elb.create_listener, LoadBalancerArn=lb["LoadBalancerArn"],
                       Protocol="HTTP", Port=80, DefaultActions=[
                           {"Type": "forward", "TargetGroupArn": tcp["TargetGroupArn"]}]) == \
            "IncompatibleProtocols"
        assert elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"] == []
    finally:
        elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        elb.delete_target_group(TargetGroupArn=tcp["TargetGroupArn"])


def test_a_network_load_balancer(elb, net):
    lb = elb.create_load_balancer(Name=name("nlb"), Type="network", Scheme="internal",
                                  Subnets=net["subnets"][:1])["LoadBalancers"][0]
    tg = make_tg(elb, net, protocol="TCP")
    try:
        assert "loadbalancer/net/" in lb["LoadBalancerArn"]
        assert lb["DNSName"].endswith(".elb.us-east-1.amazonaws.com")
        assert lb["CanonicalHostedZoneId"] == "Z26RNL4JYFTOTI"
        listener = elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP",
                                       Port=5432, DefaultActions=[
                                           {"Type": "forward",
                                            "TargetGroupArn": tg["TargetGroupArn"]}])[
            "Listeners"][0]
        assert listener["Protocol"] == "TCP"
        assert code_of(elb.create_rule, ListenerArn=listener["ListenerArn"], Priority=1,
                       Conditions=[{"Field": "path-pattern", "Values": ["/"]}],
                       Actions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}]) \
            == "InvalidConfigurationRequest"
    finally:
        elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        elb.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])


def test_paging_with_markers(elb, net):
    made = [make_tg(elb, net) for _ in range(3)]
    try:
        seen, marker = [], None
        while True:
            kw = {"Marker": marker} if marker else {}
            page = elb.describe_target_groups(PageSize=1, **kw)
            seen += [t["TargetGroupArn"] for t in page["TargetGroups"]]
            marker = page.get("NextMarker")
            if not marker:
                break
        assert {t["TargetGroupArn"] for t in made} <= set(seen)
        assert len(seen) == len(set(seen))
        assert code_of(elb.describe_target_groups, Marker="zz") == "ValidationError"
    finally:
        for tg in made:
            elb.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])


def test_the_aws_cli(fargo, net):
    def aws(*args: str) -> dict:
        out = subprocess.run(["aws", "elbv2", *args, "--endpoint-url", fargo.endpoint,
                              "--output", "json"], capture_output=True, text=True,
                             env=fargo.env(), timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    tg = aws("create-target-group", "--name", name("cli"), "--protocol", "HTTP", "--port",
             "8080", "--vpc-id", net["vpc"], "--target-type", "ip",
             "--health-check-path", "/health")["TargetGroups"][0]
    lb = aws("create-load-balancer", "--name", name("cli"), "--type", "application",
             "--scheme", "internal", "--subnets", *net["subnets"][:2])["LoadBalancers"][0]
    try:
        assert tg["HealthCheckPath"] == "/health"
        listener = aws("create-listener", "--load-balancer-arn", lb["LoadBalancerArn"],
                       "--protocol", "HTTP", "--port", "80", "--default-actions",
                       f"Type=forward,TargetGroupArn={tg['TargetGroupArn']}")["Listeners"][0]
        assert listener["DefaultActions"][0]["TargetGroupArn"] == tg["TargetGroupArn"]
        found = aws("describe-load-balancers", "--names", lb["LoadBalancerName"])
        assert found["LoadBalancers"][0]["LoadBalancerArn"] == lb["LoadBalancerArn"]
        health = aws("describe-target-health", "--target-group-arn", tg["TargetGroupArn"])
        assert health["TargetHealthDescriptions"] == []
        out = subprocess.run(["aws", "elbv2", "describe-target-groups", "--names", "nope-x",
                              "--endpoint-url", fargo.endpoint], capture_output=True,
                             text=True, env=fargo.env(), timeout=60)
        assert out.returncode != 0 and "TargetGroupNotFound" in out.stderr
    finally:
        aws("delete-load-balancer", "--load-balancer-arn", lb["LoadBalancerArn"])
        aws("delete-target-group", "--target-group-arn", tg["TargetGroupArn"])


def test_errors_are_elbv2s_xml(fargo):
    r = send(fargo, "POST", "/", b"Action=DescribeTargetGroups&Version=2015-12-01&Names.member.1=n",
             {"Content-Type": FORM_TYPE}, service="elasticloadbalancing")
    assert r.status_code == 400
    assert "<ErrorResponse" in r.text and "<Type>Sender</Type>" in r.text
    assert "<Code>TargetGroupNotFound</Code>" in r.text
    r = send(fargo, "POST", "/", b"Action=DescribeLoadBalancers&Version=2015-12-01",
             {"Content-Type": FORM_TYPE}, service="elasticloadbalancing")
    assert r.status_code == 200 and "<DescribeLoadBalancersResult>" in r.text
    assert "<ResponseMetadata><RequestId>" in r.text
    # EC2's own query requests still reach EC2
    r = send(fargo, "POST", "/", b"Action=DescribeVpcs&Version=2016-11-15",
             {"Content-Type": FORM_TYPE}, service="ec2")
    assert r.status_code == 200 and "DescribeVpcsResponse" in r.text
