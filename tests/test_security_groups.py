"""Security groups end to end: EC2 calls over boto3 and the aws CLI against a real `fargo
server`, and real connection attempts between real tasks that the kernel (nftables) allows or
refuses."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import botocore.exceptions
import pytest
import requests

from tests.conftest import ROOT, wait_status
from tests.test_tasks import WEB, detail, register

# busybox 1.35's `wget -T` segfaults, so `timeout` bounds each attempt instead.
PROBE = ("trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); "
         "if timeout 1 wget -q -O /dev/null http://{ip}:8080/ 2>/dev/null; "
         "then echo try $i ok; else echo try $i fail; fi; sleep 0.2; done")


def code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def run_in(ecs, family: str, subnet: str, groups: list[str] | None = None) -> dict:
    conf: dict = {"subnets": [subnet]}
    if groups is not None:
        conf["securityGroups"] = groups
    out = ecs.run_task(taskDefinition=family, launchType="FARGATE",
                       networkConfiguration={"awsvpcConfiguration": conf})
    assert out["failures"] == [], out["failures"]
    return out["tasks"][0]


def stop(ecs, *tasks: dict) -> None:
    for t in tasks:
        ecs.stop_task(task=t["taskArn"])
    for t in tasks:
        wait_status(ecs, t["taskArn"], "STOPPED")


def task_log(fargo, task: dict) -> list[str]:
    """The task's output lines, read over fargo's own (signed) logs API."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    tid = task["taskArn"].rsplit("/", 1)[-1]
    url = f"{fargo.endpoint}/fargo/v1/tasks/{tid}/logs?follow=0&timestamps=0"
    req = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(fargo.key_id, fargo.secret), "fargo", "us-east-1").add_auth(req)
    resp = requests.get(url, headers=dict(req.headers.items()), timeout=10)
    assert resp.ok, resp.text
    return [line for line in resp.text.splitlines() if line.startswith("try ")]


def probe_turns(fargo, task: dict, want: str, timeout: float = 10) -> list[str]:
    """Wait until the probe's attempts, from the second one after now on, all say `want`
    (the one under way when a rule changed may still see the old rule)."""
    start = len(task_log(fargo, task))
    deadline = time.time() + timeout
    lines: list[str] = []
    while time.time() < deadline:
        lines = task_log(fargo, task)[start + 1:]
        if len(lines) >= 2:
            assert all(line.endswith(want) for line in lines), lines
            return lines
        time.sleep(0.2)
    raise AssertionError(f"the probe never settled on {want}: {lines}")


def connects(ip: str, port: int = 8080, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def until_connects(ip: str, want: bool, timeout: float = 5.0) -> float:
    """Seconds until a TCP connect from the host gives `want`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if connects(ip, timeout=0.1) == want:
            return time.monotonic() - t0
    raise AssertionError(f"connect to {ip} never became {want}")


def nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def groups(ec2):
    """Make groups on demand; delete them at the end (their tasks are stopped by then)."""
    made: list[str] = []

    def make(name: str = "", description: str = "test group") -> str:
        gid = ec2.create_security_group(GroupName=name or "g-" + uuid.uuid4().hex[:8],
                                        Description=description)["GroupId"]
        made.append(gid)
        return gid

    yield make
    for gid in reversed(made):
        try:
            ec2.delete_security_group(GroupId=gid)
        except botocore.exceptions.ClientError:
            pass


def test_ingress_and_egress_rules_reach_running_tasks(ecs, ec2, fargo, busybox_image, subnet_id,
                                                      groups):
    web_sg, client_sg = groups(), groups()
    web = wait_status(ecs, run_in(ecs, register(ecs, busybox_image, command=WEB), subnet_id,
                                  [web_sg])["taskArn"], "RUNNING")
    ip = detail(web, "privateIPv4Address")
    probe_fam = register(ecs, busybox_image, command=["sh", "-c", PROBE.format(ip=ip)])
    client = wait_status(ecs, run_in(ecs, probe_fam, subnet_id, [client_sg])["taskArn"],
                         "RUNNING")
    try:
        # No rule of web's group admits the client: every attempt fails, and the host too.
        probe_turns(fargo, client, "fail")
        assert not connects(ip)
        # A rule naming the client's group opens the way for the task already running.
        perm = {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
                "UserIdGroupPairs": [{"GroupId": client_sg}]}
        ec2.authorize_security_group_ingress(GroupId=web_sg, IpPermissions=[perm])
        probe_turns(fargo, client, "ok")
        assert not connects(ip)  # the host is in no group, and the rule names a group
        # A rule for another port does not help.
        ec2.revoke_security_group_ingress(GroupId=web_sg, IpPermissions=[perm])
        ec2.authorize_security_group_ingress(GroupId=web_sg, IpPermissions=[
            dict(perm, FromPort=8081, ToPort=9000)])
        probe_turns(fargo, client, "fail")
        # By the client's address (CIDR) instead of its group.
        client_ip = detail(client, "privateIPv4Address")
        ec2.authorize_security_group_ingress(GroupId=web_sg, IpProtocol="tcp", FromPort=8080,
                                             ToPort=8080, CidrIp=f"{client_ip}/32")
        probe_turns(fargo, client, "ok")
        # Egress: the client's group loses its allow-all, so its attempts fail again.
        everything = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
        ec2.revoke_security_group_egress(GroupId=client_sg, IpPermissions=everything)
        probe_turns(fargo, client, "fail")
        ec2.authorize_security_group_egress(GroupId=client_sg, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
             "UserIdGroupPairs": [{"GroupId": web_sg}]}])
        probe_turns(fargo, client, "ok")
        # A group in use cannot go.
        for gid in (web_sg, client_sg):
            with pytest.raises(botocore.exceptions.ClientError) as exc:
                ec2.delete_security_group(GroupId=gid)
            assert code(exc) == "DependencyViolation"
    finally:
        stop(ecs, web, client)
    # The groups name each other in rules: neither can go while the other's rule stays.
    for gid in (web_sg, client_sg):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ec2.delete_security_group(GroupId=gid)
        assert code(exc) == "DependencyViolation"
    ec2.revoke_security_group_ingress(GroupId=web_sg, IpPermissions=[
        dict(perm, FromPort=8081, ToPort=9000)])
    ec2.delete_security_group(GroupId=client_sg)
    ec2.delete_security_group(GroupId=web_sg)
    # Stopped tasks left their groups' sets.
    ruleset = subprocess.run(["nft", "list", "table", "inet", f"fargo_{fargo.prefix}"],
                             capture_output=True, text=True, check=True).stdout
    assert ip not in ruleset and client_ip not in ruleset


def test_default_group_admits_itself_and_the_host(ecs, ec2, busybox_image, subnet_id):
    web = wait_status(ecs, run_in(ecs, register(ecs, busybox_image, command=WEB),
                                  subnet_id)["taskArn"], "RUNNING")
    ip = detail(web, "privateIPv4Address")
    try:
        until_connects(ip, True)  # the host: the default group admits it (see firewall.py)
        client = register(ecs, busybox_image, command=["sh", "-c", f"timeout 2 wget -q -O - "
                                                                   f"http://{ip}:8080/"])
        done = wait_status(ecs, run_in(ecs, client, subnet_id)["taskArn"], "STOPPED")
        assert done["containers"][0]["exitCode"] == 0  # a member of the same default group
    finally:
        stop(ecs, web)


def test_aws_cli_rule_change_takes_effect_at_once(fargo, ecs, ec2, busybox_image, subnet_id,
                                                  groups):
    gid = groups()
    web = wait_status(ecs, run_in(ecs, register(ecs, busybox_image, command=WEB), subnet_id,
                                  [gid])["taskArn"], "RUNNING")
    ip = detail(web, "privateIPv4Address")
    cidr = next(s["CidrBlock"] for s in ec2.describe_subnets()["Subnets"]
                if s["SubnetId"] == subnet_id)

    def aws(*args: str) -> None:
        out = subprocess.run(["aws", "--endpoint-url", fargo.endpoint, "ec2", *args,
                              "--group-id", gid, "--protocol", "tcp", "--port", "8080",
                              "--cidr", cidr, "--output", "json"], capture_output=True,
                             text=True, env=fargo.env(), timeout=60)
        assert out.returncode == 0, out.stderr

    try:
        time.sleep(0.5)
        assert not connects(ip, timeout=0.5)
        aws("authorize-security-group-ingress")  # the host's address is in the subnet block
        opened = until_connects(ip, True)
        aws("revoke-security-group-ingress")
        closed = until_connects(ip, False)
        print(f"rule change to effect: open {opened * 1000:.0f} ms, close {closed * 1000:.0f} ms")
        assert opened < 1.0 and closed < 1.0
    finally:
        stop(ecs, web)


def _form(fargo, **params: str) -> requests.Response:
    body = "&".join(f"{k}={requests.utils.quote(v, safe='')}" for k, v in
                    {"Version": "2016-11-15", **params}.items())
    return fargo.post(body, {"Content-Type": "application/x-www-form-urlencoded"},
                      service="ec2")


def test_bad_input_is_refused_and_changes_nothing(ec2, fargo, groups):
    gid = groups()
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "10.9.0.0/16"}]}])
    table = ["nft", "list", "table", "inet", f"fargo_{fargo.prefix}"]
    before_nft = subprocess.run(table, capture_output=True, text=True, check=True).stdout
    before = ec2.describe_security_groups()["SecurityGroups"]

    def perm(**kw) -> dict:
        return {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
                "IpRanges": [{"CidrIp": "10.9.0.0/16"}], **kw}

    cases = [
        (lambda: ec2.authorize_security_group_ingress(GroupId="sg-0000000000000000",
                                                      IpPermissions=[perm()]),
         "InvalidGroup.NotFound"),
        (lambda: ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[perm()]),
         "InvalidPermission.Duplicate"),
        # All or nothing: a new rule next to a duplicate is not added either.
        (lambda: ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
            perm(FromPort=81, ToPort=81), perm()]), "InvalidPermission.Duplicate"),
        (lambda: ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
            perm(FromPort=80, ToPort=70000)]), "InvalidParameterValue"),
        (lambda: ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
            perm(FromPort=90, ToPort=80)]), "InvalidParameterValue"),
        (lambda: ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
            perm(IpRanges=[{"CidrIp": "10.0.0.0/33"}])]), "InvalidParameterValue"),
        (lambda: ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
            perm(IpRanges=[{"CidrIp": "banana"}])]), "InvalidParameterValue"),
        (lambda: ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
            perm(IpProtocol="smtp")]), "InvalidParameterValue"),
        (lambda: ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[
            perm(IpRanges=[], UserIdGroupPairs=[{"GroupId": "sg-00000000000000001"}])]),
         "InvalidGroup.NotFound"),
        (lambda: ec2.revoke_security_group_ingress(GroupId=gid, IpPermissions=[
            perm(FromPort=443, ToPort=443)]), "InvalidPermission.NotFound"),
        (lambda: ec2.revoke_security_group_egress(GroupId=gid, IpPermissions=[perm()]),
         "InvalidPermission.NotFound"),
        (lambda: ec2.create_security_group(GroupName="x" * 10240, Description="d"),
         "InvalidParameterValue"),
        (lambda: ec2.create_security_group(GroupName="bad\x00name", Description="d"),
         "InvalidParameterValue"),
        (lambda: ec2.create_security_group(GroupName="ok-name", Description="d\x00"),
         "InvalidParameterValue"),
        (lambda: ec2.create_security_group(GroupName="sg-abc", Description="d"),
         "InvalidParameterValue"),
        (lambda: ec2.create_security_group(GroupName="default", Description="d"),
         "InvalidGroup.Reserved"),
        (lambda: ec2.create_security_group(GroupName="no-description", Description=""),
         "MissingParameter"),
        (lambda: ec2.create_security_group(GroupName="x", Description="d",
                                           VpcId="vpc-00000000000000000"),
         "InvalidVpcID.NotFound"),
        (lambda: ec2.delete_security_group(GroupId="sg-" + "f" * 10000), "InvalidGroup.NotFound"),
        (lambda: ec2.delete_security_group(GroupId=before[0]["GroupId"]), "CannotDelete"),
        (lambda: ec2.describe_security_groups(GroupIds=["sg-\x00"]), "InvalidGroup.NotFound"),
    ]
    for call, want in cases:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call()
        assert code(exc) == want, (want, exc.value.response["Error"])
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    name = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"][0]["GroupName"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.create_security_group(GroupName=name, Description="again")
    assert code(exc) == "InvalidGroup.Duplicate"
    # The raw answer is EC2's error XML, also for a request no SDK would send.
    resp = _form(fargo, Action="AuthorizeSecurityGroupIngress", GroupId=gid, IpProtocol="tcp",
                 FromPort="80", ToPort="80", CidrIp="10.9.0.0/16")
    assert resp.status_code == 400
    assert "<Code>InvalidPermission.Duplicate</Code>" in resp.text
    resp = _form(fargo, Action="AuthorizeSecurityGroupIngress", GroupId=gid,
                 **{"IpPermissions.1.IpProtocol": "tcp", "IpPermissions.1.FromPort": "x",
                    "IpPermissions.1.ToPort": "80", "IpPermissions.1.IpRanges.1.CidrIp": "1.2.3.4/32"})
    assert resp.status_code == 400 and "<Code>InvalidParameterValue</Code>" in resp.text
    resp = _form(fargo, Action="CreateSecurityGroup", GroupDescription="d")
    assert resp.status_code == 400 and "<Code>MissingParameter</Code>" in resp.text
    # Nothing changed: not the records, not the kernel.
    assert ec2.describe_security_groups()["SecurityGroups"] == before
    assert subprocess.run(table, capture_output=True, text=True, check=True).stdout == before_nft


def test_run_task_takes_only_groups_of_its_vpc(ecs, ec2, busybox_image, subnet_id):
    fam = register(ecs, busybox_image, command=["true"])
    for bad in (["sg-00000000000000000"], ["nonsense\x00"]):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            run_in(ecs, fam, subnet_id, bad)
        assert code(exc) == "InvalidParameterException"


def _user_vpc(ec2) -> tuple[str, str]:
    """A VPC and a /24 subnet in 172.16.0.0/12, where no test server's default VPC lives;
    tries another block when the host already routes the first one."""
    for _ in range(10):
        second = random.randint(16, 31)
        vpc = ec2.create_vpc(CidrBlock=f"172.{second}.0.0/16")["Vpc"]["VpcId"]
        try:
            sub = ec2.create_subnet(VpcId=vpc, CidrBlock=f"172.{second}.{random.randint(0, 255)}"
                                    ".0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
            return vpc, sub
        except botocore.exceptions.ClientError as exc:
            ec2.delete_vpc(VpcId=vpc)
            if code(exc) != "InvalidSubnet.Conflict":
                raise
    raise AssertionError("no free 172.x block on this host")


def test_user_vpc_and_subnet_run_tasks(ecs, ec2, busybox_image, subnet_id):
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.create_vpc(CidrBlock="10.0.0.0/8")
    assert code(exc) == "InvalidVpc.Range"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.create_vpc(CidrBlock="10.0.0.1/16")
    assert code(exc) == "InvalidParameterValue"
    vpc, sub = _user_vpc(ec2)
    try:
        cidr = ec2.describe_subnets(SubnetIds=[sub])["Subnets"][0]["CidrBlock"]
        vpc_cidr = ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["CidrBlock"]
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)
        assert code(exc) == "InvalidSubnet.Conflict"
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ec2.create_subnet(VpcId=vpc, CidrBlock="192.0.2.0/24")
        assert code(exc) == "InvalidSubnet.Range"
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ec2.create_subnet(VpcId=vpc)
        assert code(exc) == "MissingParameter"
        groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
        (default,) = groups["SecurityGroups"]
        assert default["GroupName"] == "default"
        other_vpc_default = ec2.describe_security_groups(GroupNames=["default"])[
            "SecurityGroups"][0]["GroupId"]
        web = register(ecs, busybox_image, command=WEB)
        # A group of another VPC does not fit this subnet, nor subnets of two VPCs.
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            run_in(ecs, web, sub, [other_vpc_default])
        assert code(exc) == "InvalidParameterException"
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ecs.run_task(taskDefinition=web, networkConfiguration={
                "awsvpcConfiguration": {"subnets": [sub, subnet_id]}})
        assert code(exc) == "InvalidParameterException"
        t = wait_status(ecs, run_in(ecs, web, sub)["taskArn"], "RUNNING")
        ip = detail(t, "privateIPv4Address")
        assert ip.startswith(cidr.rsplit(".", 1)[0] + ".") and detail(t, "subnetId") == sub
        try:
            until_connects(ip, True)  # its VPC's default group admits the host
            with pytest.raises(botocore.exceptions.ClientError) as exc:
                ec2.delete_subnet(SubnetId=sub)
            assert code(exc) == "DependencyViolation"
            with pytest.raises(botocore.exceptions.ClientError) as exc:
                ec2.delete_vpc(VpcId=vpc)
            assert code(exc) == "DependencyViolation"
        finally:
            stop(ecs, t)
        assert vpc_cidr.startswith("172.")
    finally:
        ec2.delete_subnet(SubnetId=sub)
        ec2.delete_vpc(VpcId=vpc)
    assert sub not in {s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}
    assert [v["IsDefault"] for v in ec2.describe_vpcs()["Vpcs"]] == [True]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.delete_subnet(SubnetId=sub)
    assert code(exc) == "InvalidSubnetID.NotFound"


def test_restart_converges_and_purge_removes_the_table(fargo_servers, busybox_image):
    srv = fargo_servers(state_dir=Path(tempfile.mkdtemp(prefix="fargo-sg-")))
    table = f"fargo_{srv.prefix}"
    ec2 = srv.client("ec2")
    gid = ec2.create_security_group(GroupName="kept", Description="survives")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=gid, IpProtocol="udp", FromPort=5353,
                                         ToPort=5353, CidrIp="10.1.2.0/24")
    assert table in nft_tables()
    srv.kill()
    # Someone flushed the kernel meanwhile: the next start puts it all back.
    subprocess.run(["nft", "delete", "table", "inet", table], check=True)
    srv.start()
    ruleset = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True,
                             text=True, check=True).stdout
    assert "ip saddr 10.1.2.0/24 udp dport 5353 accept" in ruleset
    srv.purge()
    assert table not in nft_tables()


def test_purge_cli_removes_the_table_idempotently(tmp_path):
    prefix = "p" + uuid.uuid4().hex[:4]
    from fargo.agent.firewall import Firewall
    from fargo.port.firewall import FirewallSpec

    Firewall(prefix).apply(FirewallSpec(nets=["10.255.255.0/28"], gateways=["10.255.255.1"]))
    assert f"fargo_{prefix}" in nft_tables()
    for _ in range(2):
        out = subprocess.run([sys.executable, "-m", "fargo", "purge", "--state-dir",
                              str(tmp_path), "--prefix", prefix], capture_output=True,
                             text=True, cwd=ROOT)
        assert out.returncode == 0, out.stderr
    assert f"fargo_{prefix}" not in nft_tables()
