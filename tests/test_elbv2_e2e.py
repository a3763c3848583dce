"""ELBv2 end to end on the real data plane: an internal application load balancer (HAProxy in
a netns of its own) with a listener forwarding to two busybox httpd tasks registered by hand,
a path rule and a fixed response; requests from the host to the load balancer's address;
DescribeTargetHealth from HAProxy's own checks; a deregistered target drains, then goes."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.conftest import wait_status

# Each task answers with its addresses (its own among them): / and /api/* (and /health for
# the checks).
SERVE = ["sh", "-c",
         "ip=$(ip -4 addr | awk '/inet / && !/127.0.0.1/ {split($2,a,\"/\"); print a[1]}'); "
         "mkdir -p /srv/api; echo $ip > /srv/index.html; echo api $ip > /srv/api/x; "
         "echo ok > /srv/health; trap 'exit 0' TERM; httpd -f -p 8080 -h /srv & wait"]


def until(check, timeout: float = 60, every: float = 0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out; last seen: {last!r}")


def who(r: requests.Response | None, ips: list[str]) -> str | None:
    """Which task answered: its address among those its body lists."""
    return next((w for w in r.text.split() if w in ips), None) if r is not None else None


def get(url: str) -> requests.Response | None:
    try:
        return requests.get(url, timeout=3)
    except requests.RequestException:
        return None


@pytest.fixture
def two_tasks(ecs, ec2, busybox_image):
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    fam = "lb" + uuid.uuid4().hex[:8]
    ecs.register_task_definition(
        family=fam, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256",
        memory="512", containerDefinitions=[{"name": "web", "image": busybox_image,
                                             "command": SERVE,
                                             "portMappings": [{"containerPort": 8080}]}])
    arns = []
    for subnet in subnets:  # one task in each zone
        arns += [t["taskArn"] for t in ecs.run_task(
            taskDefinition=fam, launchType="FARGATE", networkConfiguration={
                "awsvpcConfiguration": {"subnets": [subnet]}})["tasks"]]
    ips = []
    for arn in arns:
        task = wait_status(ecs, arn, "RUNNING", timeout=60)
        ips.append(next(d["value"] for d in task["attachments"][0]["details"]
                        if d["name"] == "privateIPv4Address"))
    yield subnets, ips
    for arn in arns:
        ecs.stop_task(task=arn, reason="test over")


def test_an_alb_forwards_to_two_tasks_with_a_path_rule_and_a_fixed_response(fargo,
                                                                             two_tasks):
    elb = fargo.client("elbv2")
    subnets, ips = two_tasks
    vpc = fargo.client("ec2").describe_subnets(SubnetIds=subnets[:1])["Subnets"][0]["VpcId"]
    tag = uuid.uuid4().hex[:8]
    checks = dict(Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip",
                  HealthCheckPath="/health", HealthCheckIntervalSeconds=5,
                  HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2,
                  UnhealthyThresholdCount=2)
    web = elb.create_target_group(Name=f"web-{tag}", **checks)["TargetGroups"][0]
    api = elb.create_target_group(Name=f"api-{tag}", **checks)["TargetGroups"][0]
    lb = elb.create_load_balancer(Name=f"alb-{tag}", Type="application", Scheme="internal",
                                  Subnets=subnets)["LoadBalancers"][0]
    arn = lb["LoadBalancerArn"]
    try:
        listener = elb.create_listener(
            LoadBalancerArn=arn, Protocol="HTTP", Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": web["TargetGroupArn"]}])[
            "Listeners"][0]
        elb.create_rule(ListenerArn=listener["ListenerArn"], Priority=10, Conditions=[
            {"Field": "path-pattern", "Values": ["/api/*"]}], Actions=[
            {"Type": "forward", "TargetGroupArn": api["TargetGroupArn"]}])
        elb.create_rule(ListenerArn=listener["ListenerArn"], Priority=20, Conditions=[
            {"Field": "path-pattern", "Values": ["/teapot"]}], Actions=[
            {"Type": "fixed-response", "FixedResponseConfig": {
                "StatusCode": "418", "ContentType": "text/plain", "MessageBody": "short"}}])
        state = until(lambda: (s := elb.describe_load_balancers(LoadBalancerArns=[arn])[
            "LoadBalancers"][0]["State"])["Code"] != "provisioning" and s)
        assert state["Code"] == "active", state
        elb.register_targets(TargetGroupArn=web["TargetGroupArn"],
                             Targets=[{"Id": ip} for ip in ips])
        elb.register_targets(TargetGroupArn=api["TargetGroupArn"], Targets=[{"Id": ips[0]}])
        first = elb.describe_target_health(TargetGroupArn=web["TargetGroupArn"])[
            "TargetHealthDescriptions"]
        assert {d["TargetHealth"]["State"] for d in first} == {"initial"}

        def healthy(tg: dict, n: int) -> bool:
            found = elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])[
                "TargetHealthDescriptions"]
            return len(found) == n and all(d["TargetHealth"]["State"] == "healthy"
                                           for d in found)

        until(lambda: healthy(web, 2) and healthy(api, 1), timeout=90)
        address = lb["AvailabilityZones"][0]["LoadBalancerAddresses"][0]["PrivateIPv4Address"]
        base = f"http://{address}"
        seen: set[str] = set()
        for _ in range(20):
            r = get(base + "/")
            assert r is not None and r.status_code == 200, r
            seen.add(who(r, ips) or r.text)
        assert seen == set(ips), seen  # answered by both tasks
        for _ in range(5):
            r = get(base + "/api/x")
            assert r is not None and r.text.startswith("api ") and who(r, ips) == ips[0]
        r = get(base + "/teapot")
        assert r is not None and (r.status_code, r.text) == (418, "short")
        # the other address, in the second zone, serves too
        other = lb["AvailabilityZones"][1]["LoadBalancerAddresses"][0]["PrivateIPv4Address"]
        r = get(f"http://{other}/")
        assert who(r, ips) in ips
        # a deregistered target drains for the delay, then goes; the other serves alone
        elb.modify_target_group_attributes(TargetGroupArn=web["TargetGroupArn"], Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": "3"}])
        elb.deregister_targets(TargetGroupArn=web["TargetGroupArn"], Targets=[{"Id": ips[1]}])
        states = {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in
                  elb.describe_target_health(TargetGroupArn=web["TargetGroupArn"])[
                      "TargetHealthDescriptions"]}
        assert states == {ips[0]: "healthy", ips[1]: "draining"}
        until(lambda: [d["Target"]["Id"] for d in elb.describe_target_health(
            TargetGroupArn=web["TargetGroupArn"])["TargetHealthDescriptions"]] == [ips[0]],
            timeout=30)
        answers = {who(get(base + "/"), ips) for _ in range(10)}
        assert answers == {ips[0]}
    finally:
        elb.delete_load_balancer(LoadBalancerArn=arn)
        for tg in (web, api):
            until(lambda tg=tg: _deleted(elb, tg["TargetGroupArn"]), timeout=10)
    # the load balancer is gone from the host too
    until(lambda: get(base + "/") is None, timeout=20)


def _deleted(elb, arn: str) -> bool:
    try:
        elb.delete_target_group(TargetGroupArn=arn)
        return True
    except elb.exceptions.ResourceInUseException:
        return False


def _fixed_alb(elb, subnets: list[str], **kw) -> tuple[dict, str]:
    """An internal ALB whose listener answers 200 "fixed" itself (no targets needed)."""
    tag = uuid.uuid4().hex[:8]
    lb = elb.create_load_balancer(Name=f"fx-{tag}", Scheme="internal", Subnets=subnets,
                                  **kw)["LoadBalancers"][0]
    elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {
                            "StatusCode": "200", "ContentType": "text/plain",
                            "MessageBody": "fixed"}}])
    until(lambda: elb.describe_load_balancers(LoadBalancerArns=[lb["LoadBalancerArn"]])[
        "LoadBalancers"][0]["State"]["Code"] == "active")
    address = lb["AvailabilityZones"][0]["LoadBalancerAddresses"][0]["PrivateIPv4Address"]
    return lb, f"http://{address}/"


def _answers(url: str) -> bool:
    r = get(url)
    return r is not None and (r.status_code, r.text) == (200, "fixed")


def test_its_security_groups_filter_what_reaches_it(fargo):
    ec2, elb = fargo.client("ec2"), fargo.client("elbv2")
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    vpc = ec2.describe_subnets(SubnetIds=subnets[:1])["Subnets"][0]["VpcId"]
    group = ec2.create_security_group(GroupName="lb-" + uuid.uuid4().hex[:8],
                                      Description="lb test", VpcId=vpc)["GroupId"]
    lb = None
    try:
        lb, url = _fixed_alb(elb, subnets, SecurityGroups=[group])
        assert lb["SecurityGroups"] == [group]
        time.sleep(1)
        assert get(url) is None  # no ingress rule: the host cannot reach it
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
             "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        until(lambda: _answers(url), timeout=20)
        with pytest.raises(Exception) as exc:  # its group is in use
            ec2.delete_security_group(GroupId=group)
        assert "DependencyViolation" in str(exc.value)
    finally:
        if lb is not None:
            elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        until(lambda: _group_gone(ec2, group), timeout=20)


def _group_gone(ec2, group: str) -> bool:
    try:
        ec2.delete_security_group(GroupId=group)
        return True
    except Exception:  # noqa: BLE001 - still held until the host lets the LB go
        return False


def test_a_load_balancer_outlives_a_server_restart(fargo_servers, busybox_image):
    srv = fargo_servers()
    ec2, elb, ecs = srv.client("ec2"), srv.client("elbv2"), srv.client("ecs")
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    lb, url = _fixed_alb(elb, subnets)
    assert _answers(url)
    own = {z["LoadBalancerAddresses"][0]["PrivateIPv4Address"] for z in lb["AvailabilityZones"]}
    # its DNSName answers its addresses from the host's VPC resolver
    port = _resolver_port(srv)
    if port is not None:
        import dns.resolver
        res = dns.resolver.Resolver(configure=False)
        res.nameservers, res.port = ["127.0.0.1"], port
        found = {a.address for a in res.resolve(lb["DNSName"], "A")}
        assert found == own
    srv.kill()  # SIGKILL: HAProxy keeps serving without the server
    assert _answers(url)
    srv.start()
    assert _answers(url)
    (again,) = elb.describe_load_balancers(LoadBalancerArns=[lb["LoadBalancerArn"]])[
        "LoadBalancers"]
    assert again["State"]["Code"] == "active"
    # a task started now gets none of the load balancer's addresses
    fam = "rs" + uuid.uuid4().hex[:6]
    ecs.register_task_definition(
        family=fam, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256",
        memory="512", containerDefinitions=[{"name": "a", "image": busybox_image,
                                             "command": ["sleep", "60"]}])
    task = ecs.run_task(taskDefinition=fam, launchType="FARGATE", networkConfiguration={
        "awsvpcConfiguration": {"subnets": subnets[:1]}})["tasks"][0]
    task = wait_status(ecs, task["taskArn"], "RUNNING", timeout=60)
    ip = next(d["value"] for d in task["attachments"][0]["details"]
              if d["name"] == "privateIPv4Address")
    assert ip not in own
    ecs.stop_task(task=task["taskArn"])
    elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    until(lambda: get(url) is None, timeout=20)


def _resolver_port(srv) -> int | None:
    import re
    found = re.search(r"VPC DNS resolver for the host on 127\.0\.0\.1:(\d+)",
                      srv.log.read_text(errors="replace"))
    return int(found.group(1)) if found else None
