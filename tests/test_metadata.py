"""Inside a task: the metadata endpoint v4 and the role credentials at 169.254.170.2, reached
with busybox wget from the task itself. A task sees only its own."""

from __future__ import annotations

import json
import time
import uuid

import boto3
import botocore.exceptions
import pytest

from tests.conftest import http_body, wait_status
from tests.test_tasks import detail, logs, run

ROLE = "arn:aws:iam::000000000000:role/app-role"
FETCH = ("get() { echo \"$1 $(wget -q -O - \"$2\" 2>&1 || echo FAILED)\"; }; "
         "get container $ECS_CONTAINER_METADATA_URI_V4; "
         "get task $ECS_CONTAINER_METADATA_URI_V4/task; "
         "get stats $ECS_CONTAINER_METADATA_URI_V4/stats; "
         "get taskstats $ECS_CONTAINER_METADATA_URI_V4/task/stats; "
         "get creds http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI; "
         "echo uri=$ECS_CONTAINER_METADATA_URI_V4 creduri=$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI; "
         "trap 'exit 0' TERM; sleep 60 & wait")


def register(ecs, image: str, command: list[str], role: str | None = ROLE) -> str:
    fam = "m" + uuid.uuid4().hex[:10]
    kw = {"taskRoleArn": role} if role else {}
    ecs.register_task_definition(
        family=fam, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="512",
        memory="1024", containerDefinitions=[{"name": "app", "image": image, "command": command,
                                              "stopTimeout": 2}], **kw)
    return fam


def lines(fargo, arn: str, want: int, timeout: float = 20) -> dict[str, str]:
    """The `KEY VALUE` lines a task printed, once `want` of them are there."""
    deadline = time.time() + timeout
    found: dict[str, str] = {}
    while time.time() < deadline:
        found = {}
        for line in logs(fargo, arn).splitlines():
            key, _, value = line.partition(" ")
            found[key] = value
        if len(found) >= want:
            return found
        time.sleep(0.2)
    raise AssertionError(f"task printed only {found}")


@pytest.fixture(scope="module")
def role_task(fargo, ecs, busybox_image, subnet_id):
    fam = register(ecs, busybox_image, ["sh", "-c", FETCH])
    t = wait_status(ecs, run(ecs, fam, subnet_id)["taskArn"], "RUNNING")
    out = lines(fargo, t["taskArn"], 6)
    yield t, out
    ecs.stop_task(task=t["taskArn"])
    wait_status(ecs, t["taskArn"], "STOPPED")


def test_task_and_container_metadata(role_task):
    t, out = role_task
    container = json.loads(out["container"])
    assert container["Name"] == "app"
    assert container["Labels"]["com.amazonaws.ecs.task-arn"] == t["taskArn"]
    net = container["Networks"][0]
    assert net["NetworkMode"] == "awsvpc"
    assert net["IPv4Addresses"] == [detail(t, "privateIPv4Address")]
    assert net["MACAddress"] == detail(t, "macAddress")
    assert net["PrivateDNSName"] == detail(t, "privateDnsName")
    assert "/" in net["IPv4SubnetCIDRBlock"] and "/" in net["SubnetGatewayIpv4Address"]
    task = json.loads(out["task"])
    assert task["TaskARN"] == t["taskArn"] and task["Cluster"] == t["clusterArn"]
    assert task["Limits"] == {"CPU": 0.5, "Memory": 1024}
    assert task["LaunchType"] == "FARGATE" and task["KnownStatus"] == "RUNNING"
    assert task["AvailabilityZone"] == t["availabilityZone"]
    assert task["PullStartedAt"].endswith("Z") and task["PullStoppedAt"].endswith("Z")
    assert [c["Name"] for c in task["Containers"]] == ["app"]
    stats = json.loads(out["stats"])
    assert stats["memory_stats"]["limit"] == 1024 * 1024 * 1024
    assert stats["memory_stats"]["usage"] > 0
    assert len(json.loads(out["taskstats"])) == 1


def test_role_credentials_work_against_the_api(fargo, ecs, role_task):
    _, out = role_task
    creds = json.loads(out["creds"])
    assert creds["RoleArn"] == ROLE
    assert creds["AccessKeyId"].startswith("ASIA") and creds["Token"]
    assert creds["Expiration"].endswith("Z")
    ecs_as_role = boto3.client("ecs", endpoint_url=fargo.endpoint, region_name="us-east-1",
                               aws_access_key_id=creds["AccessKeyId"],
                               aws_secret_access_key=creds["SecretAccessKey"],
                               aws_session_token=creds["Token"])
    assert "clusterArns" in ecs_as_role.list_clusters()
    # With no IAM policies to say more, a role's credentials describe and list only.
    as_role = {"aws_access_key_id": creds["AccessKeyId"],
               "aws_secret_access_key": creds["SecretAccessKey"],
               "aws_session_token": creds["Token"], "endpoint_url": fargo.endpoint,
               "region_name": "us-east-1"}
    ec2_as_role = boto3.client("ec2", **as_role)
    assert ec2_as_role.describe_vpcs()["Vpcs"]
    refusals = [
        (lambda: ecs_as_role.create_cluster(clusterName="not-mine"), "AccessDeniedException"),
        (lambda: ec2_as_role.create_security_group(GroupName="x", Description="x"),
         "UnauthorizedOperation"),
        (lambda: boto3.client("secretsmanager", **as_role).get_secret_value(SecretId="x"),
         "AccessDeniedException"),
        (lambda: boto3.client("eks", **as_role).create_cluster(
            name="x", roleArn="arn:aws:iam::000000000000:role/x",
            resourcesVpcConfig={"subnetIds": ["subnet-1"]}), "AccessDeniedException")]
    for call, code in refusals:
        with pytest.raises(botocore.exceptions.ClientError) as denied:
            call()
        assert denied.value.response["Error"]["Code"] == code
    assert ecs.describe_clusters(clusters=["not-mine"])["failures"]  # nothing was made
    forged = boto3.client("ecs", endpoint_url=fargo.endpoint, region_name="us-east-1",
                          aws_access_key_id=creds["AccessKeyId"],
                          aws_secret_access_key=creds["SecretAccessKey"],
                          aws_session_token=creds["Token"][:-4] + "AAAA")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        forged.list_clusters()
    assert exc.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_another_task_cannot_read_them(fargo, ecs, busybox_image, subnet_id, role_task):
    _, out = role_task
    uri, creduri = _uris(out)
    probe = (f"echo theirs-meta $(wget -q -O - {uri} 2>&1 || echo DENIED); "
             f"echo theirs-creds $(wget -q -O - http://169.254.170.2{creduri} 2>&1 || echo DENIED); "
             "echo mine-creds $(wget -q -O - http://169.254.170.2/v2/credentials/x 2>&1 "
             "|| echo DENIED); echo own $(wget -q -O - $ECS_CONTAINER_METADATA_URI_V4 | head -c 10)")
    fam = register(ecs, busybox_image, ["sh", "-c", probe], role=None)
    t = wait_status(ecs, run(ecs, fam, subnet_id)["taskArn"], "STOPPED")
    seen = lines(fargo, t["taskArn"], 4)
    assert "404" in seen["theirs-meta"] and "DENIED" in seen["theirs-meta"]
    assert "404" in seen["theirs-creds"] and "AccessKeyId" not in seen["theirs-creds"]
    assert "DENIED" in seen["mine-creds"]
    assert seen["own"].startswith("{")


def _uris(out: dict[str, str]) -> tuple[str, str]:
    """From the `uri=… creduri=…` line the role task printed."""
    line = next(k + " " + v for k, v in out.items() if k.startswith("uri="))
    fields = dict(part.split("=", 1) for part in line.split())
    return fields["uri"], fields["creduri"]


def test_port_80_stays_free_for_the_task(fargo, ecs, busybox_image, subnet_id):
    fam = register(ecs, busybox_image, ["sh", "-c", "trap 'exit 0' TERM; "
                                        "httpd -f -p 80 -h /www & wait"], role=None)
    t = wait_status(ecs, run(ecs, fam, subnet_id)["taskArn"], "RUNNING")
    ip = detail(t, "privateIPv4Address")
    assert http_body(f"http://{ip}:80/") == "hello from fargo\n"
    ecs.stop_task(task=t["taskArn"])
    wait_status(ecs, t["taskArn"], "STOPPED")
