"""EC2 DescribeNetworkInterfaces for tasks' ENIs against a real server: by id as the ECS
guide's CLI walkthrough asks, EC2's filters, pages, and bad input as EC2 refuses it."""

from __future__ import annotations

import json
import subprocess
from urllib.parse import urlencode

import botocore.exceptions
import pytest

from tests.conftest import wait_status
from tests.test_tasks import detail, register

IDLE = ["sh", "-c", "trap 'exit 0' TERM; sleep 60 & wait"]


def refused(call, want: str, **kw) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        call(**kw)
    assert exc.value.response["Error"]["Code"] == want, exc.value.response
    return exc.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def tasks(ecs, busybox_image, subnet_id):
    """Two running tasks' DescribeTasks views."""
    fam = register(ecs, busybox_image, command=IDLE, stopTimeout=2)
    out = ecs.run_task(taskDefinition=fam, launchType="FARGATE", count=2, networkConfiguration={
        "awsvpcConfiguration": {"subnets": [subnet_id]}})
    assert out["failures"] == []
    running = [wait_status(ecs, t["taskArn"], "RUNNING") for t in out["tasks"]]
    yield running
    for t in running:
        ecs.stop_task(task=t["taskArn"])
    for t in running:
        wait_status(ecs, t["taskArn"], "STOPPED")


def eni_of(task: dict) -> str:
    return detail(task, "networkInterfaceId")


def test_aws_cli_walkthrough_by_id(fargo, tasks):
    t = tasks[0]
    out = subprocess.run(["aws", "--endpoint-url", fargo.endpoint, "--region", "us-east-1",
                          "ec2", "describe-network-interfaces", "--network-interface-ids",
                          eni_of(t), "--output", "json"], capture_output=True, text=True,
                         env=fargo.env(), timeout=60)
    assert out.returncode == 0, out.stderr
    (eni,) = json.loads(out.stdout)["NetworkInterfaces"]
    assert eni["NetworkInterfaceId"] == eni_of(t)
    assert eni["SubnetId"] == detail(t, "subnetId")
    assert eni["PrivateIpAddress"] == detail(t, "privateIPv4Address")
    assert eni["MacAddress"] == detail(t, "macAddress")
    assert eni["PrivateDnsName"] == detail(t, "privateDnsName")
    assert eni["Status"] == "in-use" and eni["Attachment"]["Status"] == "attached"
    assert eni["Description"] == \
        f"arn:aws:ecs:us-east-1:000000000000:attachment/{t['attachments'][0]['id']}"
    assert eni["Groups"][0]["GroupName"] == "default"
    assert eni["AvailabilityZone"] == t["availabilityZone"]
    assert eni["RequesterManaged"] is True and eni["InterfaceType"] == "interface"


def test_filters(ec2, tasks):
    a, b = tasks
    by_id = {eni_of(t): t for t in tasks}

    def ids(*filters: tuple[str, list[str]]) -> set[str]:
        got = ec2.describe_network_interfaces(
            Filters=[{"Name": n, "Values": v} for n, v in filters])["NetworkInterfaces"]
        return {e["NetworkInterfaceId"] for e in got} & set(by_id)

    eni = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_of(a)])[
        "NetworkInterfaces"][0]
    both = set(by_id)
    assert ids(("network-interface-id", [eni_of(a)])) == {eni_of(a)}
    assert ids(("network-interface-id", [eni_of(a)[:8] + "*"])) >= {eni_of(a)}
    assert ids(("addresses.private-ip-address", [detail(b, "privateIPv4Address")])) == \
        {eni_of(b)}
    assert ids(("private-ip-address", [detail(a, "privateIPv4Address"),
                                       detail(b, "privateIPv4Address")])) == both
    assert ids(("subnet-id", [detail(a, "subnetId")]), ("vpc-id", [eni["VpcId"]]),
               ("group-id", [eni["Groups"][0]["GroupId"]]), ("status", ["in-use"]),
               ("attachment.status", ["attached"])) == both
    assert ids(("attachment.attachment-id", [eni["Attachment"]["AttachmentId"]])) == \
        {eni_of(a)}
    assert ids(("description", ["arn:aws:ecs:*:attachment/" + a["attachments"][0]["id"]])) \
        == {eni_of(a)}
    assert ids(("mac-address", [detail(a, "macAddress")])) == {eni_of(a)}
    assert ids(("subnet-id", ["subnet-nothere"])) == set()
    assert ids(("association.public-ip", ["*"])) == set()  # no task has a public address
    assert ids(("tag:team", ["web"])) == set()
    assert ids(("attachment.status", ["detached"])) == set()


def test_pages(ec2, tasks):
    seen: list[str] = []
    for page in ec2.get_paginator("describe_network_interfaces").paginate(
            PaginationConfig={"PageSize": 5}):
        assert len(page["NetworkInterfaces"]) <= 5
        seen += [e["NetworkInterfaceId"] for e in page["NetworkInterfaces"]]
    assert {eni_of(t) for t in tasks} <= set(seen) and len(seen) == len(set(seen))


def test_bad_input_as_ec2_refuses_it(ec2, fargo, tasks):
    assert "The filter 'colour' is invalid" in refused(
        ec2.describe_network_interfaces, "InvalidParameterValue",
        Filters=[{"Name": "colour", "Values": ["red"]}])
    assert "Invalid id" in refused(ec2.describe_network_interfaces,
                                   "InvalidNetworkInterfaceID.Malformed",
                                   NetworkInterfaceIds=["not-an-eni"])
    assert "eni-0123456789abcdef0" in refused(
        ec2.describe_network_interfaces, "InvalidNetworkInterfaceID.NotFound",
        NetworkInterfaceIds=["eni-0123456789abcdef0"])
    refused(ec2.describe_network_interfaces, "InvalidParameterCombination",
            NetworkInterfaceIds=[eni_of(tasks[0])], MaxResults=5)
    for size in ("4", "1001", "x"):  # past botocore's own check: sent as a raw form
        r = fargo.post(urlencode({"Action": "DescribeNetworkInterfaces", "Version": "2016-11-15",
                                  "MaxResults": size}),
                       {"Content-Type": "application/x-www-form-urlencoded"}, service="ec2")
        assert r.status_code == 400 and "<Code>InvalidParameterValue</Code>" in r.text, r.text
    refused(ec2.describe_network_interfaces, "InvalidPaginationToken", NextToken="???",
            MaxResults=5)
    refused(ec2.describe_network_interfaces, "DryRunOperation", DryRun=True)


def test_interface_goes_with_its_task(ec2, ecs, busybox_image, subnet_id):
    fam = register(ecs, busybox_image, command=IDLE, stopTimeout=2)
    t = ecs.run_task(taskDefinition=fam, launchType="FARGATE", networkConfiguration={
        "awsvpcConfiguration": {"subnets": [subnet_id]}})["tasks"][0]
    eni = eni_of(t)
    assert ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]
    ecs.stop_task(task=t["taskArn"])
    wait_status(ecs, t["taskArn"], "STOPPED")
    refused(ec2.describe_network_interfaces, "InvalidNetworkInterfaceID.NotFound",
            NetworkInterfaceIds=[eni])
