"""The refusals of fields fargo does not run, as boto3 sees them from a real server."""

from __future__ import annotations

import uuid

import botocore.exceptions
import pytest

from tests.test_ecs_api import fargate_td


def test_register_refuses_what_fargo_does_not_run(ecs):
    fam = "u" + uuid.uuid4().hex[:8]
    health = fargate_td(fam, containerDefinitions=[
        {"name": "app", "image": "busybox", "dockerLabels": {"team": "web"}}])
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.register_task_definition(**health)
    assert exc.value.response["Error"]["Code"] == "ClientException"
    assert exc.value.response["Error"]["Message"] == \
        "Container 'app': the 'dockerLabels' parameter is not supported by fargo."
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.describe_task_definition(taskDefinition=fam)
    assert exc.value.response["Error"]["Code"] == "ClientException"  # nothing was stored


def test_run_task_refuses_what_fargo_does_not_run(ecs, subnet_id):
    fam = "u" + uuid.uuid4().hex[:8]
    ecs.register_task_definition(**fargate_td(fam))
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.run_task(taskDefinition=fam, launchType="FARGATE", enableExecuteCommand=True,
                     networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet_id]}})
    assert exc.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "'enableExecuteCommand'" in exc.value.response["Error"]["Message"]
    assert ecs.list_tasks(family=fam)["taskArns"] == []
