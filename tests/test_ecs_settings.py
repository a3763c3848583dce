"""ECS account settings and DeleteTaskDefinitions against a real server (boto3, the aws CLI).

Account settings are the account's, shared by every test on the server: each test here uses
its own principal, or puts back what it changed."""

from __future__ import annotations

import json
import subprocess
import uuid

import botocore.exceptions
import pytest

from tests.conftest import wait_status
from tests.test_ecs_api import fargate_td

ROOT = "arn:aws:iam::000000000000:root"


def refused(call, want: str = "InvalidParameterException", **kw) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        call(**kw)
    assert exc.value.response["Error"]["Code"] == want, exc.value.response
    return exc.value.response["Error"]["Message"]


def user() -> str:
    return f"arn:aws:iam::000000000000:user/u{uuid.uuid4().hex[:8]}"


def test_effective_defaults_as_aws_shows_them(ecs):
    got = {s["name"]: s for s in ecs.get_paginator("list_account_settings").paginate(
        effectiveSettings=True, principalArn=user()).build_full_result()["settings"]}
    assert got["taskLongArnFormat"]["value"] == "enabled"
    assert got["awsvpcTrunking"]["value"] == "disabled"
    assert got["fargateTaskRetirementWaitPeriod"]["value"] == "7"
    assert got["tagResourceAuthorization"]["value"] == "on"
    assert got["guardDutyActivate"] == {"name": "guardDutyActivate", "value": "off",
                                        "principalArn": ROOT, "type": "aws_managed"}
    assert got["defaultLogDriverMode"]["value"] == "non-blocking"
    assert len(got) == 11
    # Pages of at most 10; a name picks one.
    first = ecs.list_account_settings(effectiveSettings=True, maxResults=4)
    assert len(first["settings"]) == 4 and first["nextToken"]
    one = ecs.list_account_settings(effectiveSettings=True, name="awsvpcTrunking")
    assert [s["name"] for s in one["settings"]] == ["awsvpcTrunking"]


def test_put_list_delete_for_a_principal(ecs):
    who = user()
    out = ecs.put_account_setting(name="awsvpcTrunking", value="enabled", principalArn=who)
    assert out["setting"] == {"name": "awsvpcTrunking", "value": "enabled",
                              "principalArn": who, "type": "user"}
    own = ecs.list_account_settings(principalArn=who)["settings"]
    assert [(s["name"], s["value"]) for s in own] == [("awsvpcTrunking", "enabled")]
    assert ecs.list_account_settings(principalArn=who, name="awsvpcTrunking",
                                     value="disabled")["settings"] == []
    eff = ecs.list_account_settings(principalArn=who, effectiveSettings=True,
                                    name="awsvpcTrunking")["settings"]
    assert eff[0]["value"] == "enabled" and eff[0]["principalArn"] == who
    gone = ecs.delete_account_setting(name="awsvpcTrunking", principalArn=who)["setting"]
    assert gone["value"] == "enabled"
    assert ecs.list_account_settings(principalArn=who)["settings"] == []
    eff = ecs.list_account_settings(principalArn=who, effectiveSettings=True,
                                    name="awsvpcTrunking")["settings"]
    assert eff[0]["value"] == "disabled" and eff[0]["principalArn"] == ROOT


def test_account_default_reaches_principals_and_new_clusters(ecs):
    who = user()
    out = ecs.put_account_setting_default(name="containerInsights", value="enhanced")
    assert out["setting"]["principalArn"] == ROOT
    try:
        eff = ecs.list_account_settings(principalArn=who, effectiveSettings=True,
                                        name="containerInsights")["settings"]
        assert eff[0]["value"] == "enhanced" and eff[0]["principalArn"] == ROOT
        name = "set" + uuid.uuid4().hex[:8]
        made = ecs.create_cluster(clusterName=name)["cluster"]
        assert made["settings"] == [{"name": "containerInsights", "value": "enhanced"}]
        ecs.delete_cluster(cluster=name)
    finally:
        ecs.delete_account_setting(name="containerInsights")
    assert ecs.list_account_settings(effectiveSettings=True, name="containerInsights")[
        "settings"][0]["value"] == "disabled"


@pytest.mark.parametrize("kw,needle", [
    ({"name": "colour", "value": "on"}, "value: colour"),
    ({"name": "containerInsights", "value": "sometimes"}, "'sometimes'"),
    ({"name": "tagResourceAuthorization", "value": "enabled"}, "use on, off"),
    ({"name": "guardDutyActivate", "value": "on"}, "managed by AWS"),
    ({"name": "taskLongArnFormat", "value": "disabled"}, "long ARNs only"),
    ({"name": "fargateFIPSMode", "value": "enabled"}, "FIPS"),
    ({"name": "fargateTaskRetirementWaitPeriod", "value": "3"}, "use 0, 7, 14"),
    ({"name": "fargateTaskRetirementWaitPeriod", "value": "14",
      "principalArn": "arn:aws:iam::000000000000:user/bob"}, "root user"),
    ({"name": "awsvpcTrunking", "value": "enabled", "principalArn": "bob"}, "'bob'"),
    ({"name": "awsvpcTrunking", "value": "enabled",
      "principalArn": "arn:aws:iam::123456789012:user/bob"}, "another account"),
])
def test_put_refuses_bad_input(ecs, kw, needle):
    assert needle in refused(ecs.put_account_setting, **kw)


def test_list_and_delete_refuse_bad_input(ecs):
    assert "value can only be given with name" in refused(ecs.list_account_settings,
                                                          value="enabled")
    assert "value: colour" in refused(ecs.list_account_settings, name="colour")
    assert "between 1 and 10" in refused(ecs.list_account_settings, maxResults=11)
    assert "nextToken" in refused(ecs.list_account_settings, nextToken="zz")
    assert "managed by AWS" in refused(ecs.delete_account_setting, name="guardDutyActivate")
    assert "value: colour" in refused(ecs.delete_account_setting, name="colour")
    assert "managed by AWS" in refused(ecs.put_account_setting_default,
                                       name="guardDutyActivate", value="on")


def test_aws_cli_account_settings(fargo):
    env = fargo.env()
    who = user()

    def aws(*args: str) -> dict:
        out = subprocess.run(["aws", "--endpoint-url", fargo.endpoint, "--region", "us-east-1",
                              "ecs", *args, "--output", "json"], capture_output=True, text=True,
                             env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    aws("put-account-setting", "--name", "defaultLogDriverMode", "--value", "blocking",
        "--principal-arn", who)
    listed = aws("list-account-settings", "--effective-settings", "--principal-arn", who)
    by_name = {s["name"]: s for s in listed["settings"]}
    assert len(by_name) == 11  # the CLI walks the pages
    assert by_name["defaultLogDriverMode"]["value"] == "blocking"
    aws("delete-account-setting", "--name", "defaultLogDriverMode", "--principal-arn", who)
    assert aws("list-account-settings", "--principal-arn", who)["settings"] == []


def test_delete_task_definitions(ecs, busybox_image, subnet_id):
    fam = "del" + uuid.uuid4().hex[:8]
    for _ in range(3):
        ecs.register_task_definition(**fargate_td(fam, containerDefinitions=[
            {"name": "app", "image": busybox_image, "command": ["sleep", "30"],
             "stopTimeout": 2}]))
    t = ecs.run_task(taskDefinition=f"{fam}:2", launchType="FARGATE", networkConfiguration={
        "awsvpcConfiguration": {"subnets": [subnet_id]}})["tasks"][0]
    for rev in (1, 2):
        ecs.deregister_task_definition(taskDefinition=f"{fam}:{rev}")
    out = ecs.delete_task_definitions(taskDefinitions=[
        f"{fam}:1", f"arn:aws:ecs:us-east-1:000000000000:task-definition/{fam}:2", f"{fam}:3",
        f"{fam}:9", fam, "bad name!"])
    assert sorted(d["revision"] for d in out["taskDefinitions"]) == [1, 2]
    assert all(d["status"] == "DELETE_IN_PROGRESS" and d["deleteRequestedAt"]
               for d in out["taskDefinitions"])
    reasons = {f["arn"].rsplit("/", 1)[-1]: f["reason"] for f in out["failures"]}
    assert "still in ACTIVE status" in reasons[f"{fam}:3"]
    assert "does not exist" in reasons[f"{fam}:9"]
    assert "identifier is invalid" in reasons[fam] and "identifier is invalid" in reasons[
        "bad name!"]
    # Revision 1 runs nothing: gone. Revision 2 stays DELETE_IN_PROGRESS while its task runs.
    refused(ecs.describe_task_definition, "ClientException", taskDefinition=f"{fam}:1")
    two = ecs.describe_task_definition(taskDefinition=f"{fam}:2")["taskDefinition"]
    assert two["status"] == "DELETE_IN_PROGRESS"
    listed = ecs.list_task_definitions(familyPrefix=fam, status="DELETE_IN_PROGRESS")
    assert [a.rsplit(":", 1)[1] for a in listed["taskDefinitionArns"]] == ["2"]
    assert "value: DELETED" in refused(ecs.list_task_definitions, status="DELETED")
    ecs.stop_task(task=t["taskArn"])
    wait_status(ecs, t["taskArn"], "STOPPED")
    refused(ecs.describe_task_definition, "ClientException", taskDefinition=f"{fam}:2")
    # The family lives on in revision 3; when it goes too, the family is gone, and its
    # numbers are not handed out again.
    ecs.deregister_task_definition(taskDefinition=f"{fam}:3")
    ecs.delete_task_definitions(taskDefinitions=[f"{fam}:3"])
    assert fam not in ecs.list_task_definition_families(familyPrefix=fam,
                                                        status="ALL")["families"]
    again = ecs.register_task_definition(**fargate_td(fam))["taskDefinition"]
    assert again["revision"] == 4
    assert "cannot exceed 10" in refused(ecs.delete_task_definitions,
                                         taskDefinitions=[f"{fam}:{i}" for i in range(1, 12)])
    assert "greater than 0" in refused(ecs.delete_task_definitions, taskDefinitions=[])
