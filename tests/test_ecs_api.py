"""The ECS and EC2 faces driven with boto3 and raw HTTP against a real `fargo server`:
records, shapes and errors (no containers needed here)."""

from __future__ import annotations

import json
import uuid

import botocore.exceptions
import pytest

TARGET = "AmazonEC2ContainerServiceV20141113."


def fargate_td(family: str, **over):
    td = {"family": family, "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
          "cpu": "256", "memory": "512",
          "containerDefinitions": [{"name": "app", "image": "busybox", "command": ["true"]}]}
    td.update(over)
    return td


def raw(fargo, action: str, body: bytes | str, target: str | None = None):
    headers = {"Content-Type": "application/x-amz-json-1.1",
               "X-Amz-Target": target if target is not None else TARGET + action}
    return fargo.post(body, headers)


def err_code(exc) -> str:
    return exc.value.response["Error"]["Code"]


def test_default_cluster_and_lifecycle(ecs):
    name = "c" + uuid.uuid4().hex[:8]
    c = ecs.create_cluster(clusterName=name, tags=[{"key": "team", "value": "a"}])["cluster"]
    assert c["clusterArn"] == f"arn:aws:ecs:us-east-1:000000000000:cluster/{name}"
    assert c["status"] == "ACTIVE"
    arns = ecs.list_clusters()["clusterArns"]
    assert c["clusterArn"] in arns
    d = ecs.describe_clusters(clusters=[name, "nope-" + name])
    assert d["clusters"][0]["clusterName"] == name
    assert d["failures"][0]["reason"] == "MISSING"
    default = ecs.describe_clusters()["clusters"][0]
    assert default["clusterName"] == "default"
    tags = ecs.list_tags_for_resource(resourceArn=c["clusterArn"])["tags"]
    assert tags == [{"key": "team", "value": "a"}]
    ecs.delete_cluster(cluster=name)
    assert c["clusterArn"] not in ecs.list_clusters()["clusterArns"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.list_tasks(cluster=name)
    assert err_code(exc) == "ClusterNotFoundException"


def test_task_definition_revisions(ecs):
    fam = "f" + uuid.uuid4().hex[:8]
    r1 = ecs.register_task_definition(**fargate_td(fam, cpu="1 vCPU", memory="2GB"))
    td1 = r1["taskDefinition"]
    assert td1["revision"] == 1 and td1["cpu"] == "1024" and td1["memory"] == "2048"
    assert td1["taskDefinitionArn"].endswith(f":task-definition/{fam}:1")
    assert "FARGATE" in td1["compatibilities"]
    td2 = ecs.register_task_definition(**fargate_td(fam))["taskDefinition"]
    assert td2["revision"] == 2
    assert ecs.describe_task_definition(taskDefinition=fam)["taskDefinition"]["revision"] == 2
    assert ecs.describe_task_definition(taskDefinition=f"{fam}:1")["taskDefinition"]["cpu"] == "1024"
    listed = ecs.list_task_definitions(familyPrefix=fam)["taskDefinitionArns"]
    assert [a.rsplit(":", 1)[1] for a in listed] == ["1", "2"]
    assert fam in ecs.list_task_definition_families(familyPrefix=fam)["families"]
    dead = ecs.deregister_task_definition(taskDefinition=f"{fam}:2")["taskDefinition"]
    assert dead["status"] == "INACTIVE"
    assert ecs.describe_task_definition(taskDefinition=fam)["taskDefinition"]["revision"] == 1
    inactive = ecs.list_task_definitions(familyPrefix=fam, status="INACTIVE")
    assert len(inactive["taskDefinitionArns"]) == 1
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.describe_task_definition(taskDefinition=f"{fam}:9")
    assert err_code(exc) == "ClientException"


@pytest.mark.parametrize("over,needle", [
    ({"cpu": "256", "memory": "4096"}, "Invalid 'memory' setting for task"),
    ({"cpu": "333"}, "Invalid 'cpu' setting for task"),
    ({"networkMode": "bridge"}, "awsvpc"),
    ({"containerDefinitions": [{"name": "a", "image": "b", "privileged": True}]}, "privileged"),
    ({"containerDefinitions": [{"name": "a", "image": "b",
                                "portMappings": [{"containerPort": 80, "hostPort": 81}]}]},
     "hostPort"),
])
def test_fargate_rules_refused(ecs, over, needle):
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.register_task_definition(**fargate_td("bad" + uuid.uuid4().hex[:6], **over))
    assert err_code(exc) == "ClientException"
    assert needle in exc.value.response["Error"]["Message"]


def test_tags_on_task_definitions(ecs):
    fam = "t" + uuid.uuid4().hex[:8]
    arn = ecs.register_task_definition(**fargate_td(fam), tags=[{"key": "a", "value": "1"}])[
        "taskDefinition"]["taskDefinitionArn"]
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "b", "value": "2"}])
    ecs.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "b", "value": "2"}]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.list_tags_for_resource(
            resourceArn="arn:aws:ecs:us-east-1:000000000000:cluster/none-" + fam)
    assert err_code(exc) == "ResourceNotFoundException"


def test_ec2_describe(ec2, fargo):
    vpcs = ec2.describe_vpcs()["Vpcs"]
    assert len(vpcs) == 1 and vpcs[0]["CidrBlock"] == fargo.cidr and vpcs[0]["IsDefault"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}])
    assert len(subnets["Subnets"]) == 3
    assert {s["AvailabilityZone"] for s in subnets["Subnets"]} == {
        "us-east-1a", "us-east-1b", "us-east-1c"}
    one = subnets["Subnets"][1]["SubnetId"]
    assert ec2.describe_subnets(SubnetIds=[one])["Subnets"][0]["SubnetId"] == one
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_subnets(SubnetIds=["subnet-0000000000000000"])
    assert err_code(exc) == "InvalidSubnetID.NotFound"
    sgs = ec2.describe_security_groups()["SecurityGroups"]
    assert sgs[0]["GroupName"] == "default"
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == ["us-east-1a", "us-east-1b", "us-east-1c"]


def test_aws_cli_describe_subnets(fargo):
    import subprocess

    env = fargo.env()
    out = subprocess.run(["aws", "--endpoint-url", fargo.endpoint, "ec2", "describe-subnets",
                          "--output", "json"], capture_output=True, text=True, env=env,
                         timeout=60, check=True)
    assert len(json.loads(out.stdout)["Subnets"]) == 3


@pytest.mark.parametrize("body,code", [
    (b"{not json", "SerializationException"),
    (b"[1, 2]", "SerializationException"),
    (json.dumps({"family": 5, "containerDefinitions": []}).encode(), "SerializationException"),
    (json.dumps({"containerDefinitions": []}).encode(), "InvalidParameterException"),
    (b"\xff\xfe", "SerializationException"),
])
def test_malformed_bodies(fargo, body, code):
    r = raw(fargo, "RegisterTaskDefinition", body)
    assert r.status_code == 400
    assert r.json()["__type"] == code
    assert r.json()["message"]


@pytest.mark.parametrize("action,body", [
    ("RegisterTaskDefinition", json.dumps(fargate_td("big", cpu="9" * 5000))),
    ("RegisterTaskDefinition", json.dumps(fargate_td("big", memory="1" * 400 + " GB"))),
    ("ListClusters", json.dumps({"nextToken": "\u00b2"})),
    ("ListClusters", json.dumps({"maxResults": 0})),
    ("DescribeTaskDefinition", json.dumps({"taskDefinition": "web:\u00b2"})),
    ("DescribeTaskDefinition", json.dumps({"taskDefinition": "web:" + "9" * 30})),
    ("DescribeTaskDefinition", json.dumps({"taskDefinition": "web:" + "9" * 5000})),
    ("RegisterTaskDefinition", "[" * 200_000),
    ("RegisterTaskDefinition", json.dumps(fargate_td("noname", containerDefinitions=[
        {"name": "a", "image": "b", "environment": [{"value": "x"}]}]))),
    ("RunTask", json.dumps({"taskDefinition": "x", "startedBy": "s" * 10_000})),
    ("RunTask", json.dumps({"taskDefinition": "x", "clientToken": "t" * 65})),
])
def test_hostile_values_answer_400(fargo, action, body):
    r = raw(fargo, action, body)
    assert r.status_code == 400, r.text
    assert r.json()["__type"] in ("ClientException", "InvalidParameterException",
                                  "SerializationException")


def test_ec2_hostile_query(fargo):
    r = fargo.post("Action=DescribeVpcs&Version=2016-11-15&VpcId." + "9" * 5000 + "=x",
                   {"Content-Type": "application/x-www-form-urlencoded"}, service="ec2")
    assert r.status_code == 200 and "<vpcSet>" in r.text  # an index that long is ignored
    many = "&".join(f"Filter.{i}.Name=vpc-id&Filter.{i}.Value.1=v{i}" for i in range(4000))
    r = fargo.post("Action=DescribeSubnets&Version=2016-11-15&" + many,
                   {"Content-Type": "application/x-www-form-urlencoded"}, service="ec2")
    assert r.status_code == 200 and "<subnetSet/>" in r.text.replace("<subnetSet></subnetSet>",
                                                                      "<subnetSet/>")


def test_large_valid_body_arrives_whole(ecs):
    """A ~600 kB task definition comes in many TCP pieces; all of it must be read."""
    env = [{"name": f"VAR_{i}", "value": "x" * 1000} for i in range(600)]
    fam = "large" + uuid.uuid4().hex[:6]
    td = ecs.register_task_definition(**fargate_td(fam, containerDefinitions=[
        {"name": "app", "image": "busybox", "environment": env}]))["taskDefinition"]
    assert len(td["containerDefinitions"][0]["environment"]) == 600


def test_too_many_tags_change_nothing(ecs):
    fam = "tags" + uuid.uuid4().hex[:6]
    tags = [{"key": f"k{i}", "value": "v"} for i in range(51)]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.register_task_definition(**fargate_td(fam), tags=tags)
    assert err_code(exc) == "InvalidParameterException"
    assert fam not in ecs.list_task_definition_families(familyPrefix=fam)["families"]


def test_unknown_action_and_target(fargo):
    r = raw(fargo, "LaunchRockets", b"{}")
    assert r.status_code == 400 and r.json()["__type"] == "UnknownOperationException"
    r = raw(fargo, "", b"{}", target="SomethingElse.ListClusters")
    assert r.status_code == 400 and r.json()["__type"] == "UnknownOperationException"
    r = fargo.post("Action=LaunchRockets&Version=2016-11-15",
                   {"Content-Type": "application/x-www-form-urlencoded"}, service="ec2")
    assert r.status_code == 400 and "<Code>InvalidAction</Code>" in r.text
    # A real EC2 action fargo does not serve (its model is trimmed to those it does) is
    # refused by name, not as unknown.
    r = fargo.post("Action=RunInstances&Version=2016-11-15&ImageId=ami-1&MinCount=1&MaxCount=1",
                   {"Content-Type": "application/x-www-form-urlencoded"}, service="ec2")
    assert r.status_code == 400 and "RunInstances is not supported by fargo yet" in r.text


def test_oversized_body(fargo):
    big = json.dumps({"family": "x" * (5 * 1024 * 1024)}).encode()  # past the 4 MiB limit
    r = raw(fargo, "RegisterTaskDefinition", big)
    assert r.status_code == 400
    assert r.json()["__type"] == "SerializationException"


@pytest.mark.parametrize("family", ["../../etc/passwd", "a\x00b", "x" * 10_000, "", "a/b"])
def test_hostile_names_leave_state_intact(ecs, family):
    fam = "keep" + uuid.uuid4().hex[:6]
    ecs.register_task_definition(**fargate_td(fam))
    before = ecs.list_task_definitions()["taskDefinitionArns"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.register_task_definition(**fargate_td(family))
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(botocore.exceptions.ClientError):
        ecs.describe_task_definition(taskDefinition=family or ":")
    assert ecs.list_task_definitions()["taskDefinitionArns"] == before
    assert ecs.describe_task_definition(taskDefinition=fam)["taskDefinition"]["revision"] == 1


def test_unknown_task_and_cluster_errors(ecs):
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.describe_tasks(cluster="missing-" + uuid.uuid4().hex[:6], tasks=["x"])
    assert err_code(exc) == "ClusterNotFoundException"
    out = ecs.describe_tasks(tasks=[uuid.uuid4().hex, "garbage"])
    assert out["tasks"] == [] and [f["reason"] for f in out["failures"]] == ["MISSING", "MISSING"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.stop_task(task=uuid.uuid4().hex)
    assert err_code(exc) == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.run_task(taskDefinition="never-registered-" + uuid.uuid4().hex[:6],
                     networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-x"]}})
    assert err_code(exc) == "ClientException"
