"""Capacity providers on a real server: clusters' providers and default strategies
(PutClusterCapacityProviders, CreateCluster, DescribeClusters' include), RunTask's strategy
spread over FARGATE and FARGATE_SPOT, cluster settings; boto3 and the aws CLI."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter

import botocore.exceptions
import pytest

from tests.conftest import wait_status
from tests.test_tasks import register

IDLE = ["sh", "-c", "trap 'exit 0' TERM; sleep 60 & wait"]


def code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def message(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Message"]


def refused(call, want: str = "InvalidParameterException", **kw) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        call(**kw)
    assert code(exc) == want, exc.value.response
    return message(exc)


@pytest.fixture
def cluster(ecs):
    name = "cap" + uuid.uuid4().hex[:8]
    yield name
    for desired in ("RUNNING", "STOPPED"):
        for arn in ecs.list_tasks(cluster=name, desiredStatus=desired)["taskArns"]:
            ecs.stop_task(cluster=name, task=arn)
            wait_status(ecs, arn, "STOPPED", cluster=name)
    ecs.delete_cluster(cluster=name)


def net(subnet_id: str) -> dict:
    return {"awsvpcConfiguration": {"subnets": [subnet_id]}}


def test_providers_default_strategy_and_spread(ecs, cluster, busybox_image, subnet_id):
    made = ecs.create_cluster(clusterName=cluster)["cluster"]
    # As ECS's API makes it: no provider associated, the account's containerInsights.
    assert made["capacityProviders"] == [] and made["defaultCapacityProviderStrategy"] == []
    assert made["settings"] == [{"name": "containerInsights", "value": "disabled"}]
    fam = register(ecs, busybox_image, command=IDLE, stopTimeout=2)
    spot = [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    assert "not associated with the cluster" in refused(
        ecs.run_task, cluster=cluster, taskDefinition=fam, networkConfiguration=net(subnet_id),
        capacityProviderStrategy=spot)

    put = ecs.put_cluster_capacity_providers(
        cluster=cluster, capacityProviders=["FARGATE", "FARGATE_SPOT"],
        defaultCapacityProviderStrategy=spot)["cluster"]
    assert put["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    assert put["defaultCapacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]

    # Neither launchType nor strategy: the cluster's default strategy.
    t = ecs.run_task(cluster=cluster, taskDefinition=fam,
                     networkConfiguration=net(subnet_id))["tasks"][0]
    assert t["capacityProviderName"] == "FARGATE_SPOT" and t["launchType"] == "FARGATE"
    # base first, then weights 1:3
    out = ecs.run_task(cluster=cluster, taskDefinition=fam, count=4,
                       networkConfiguration=net(subnet_id), capacityProviderStrategy=[
                           {"capacityProvider": "FARGATE", "base": 1, "weight": 1},
                           {"capacityProvider": "FARGATE_SPOT", "weight": 3}])
    assert out["failures"] == []
    assert Counter(x["capacityProviderName"] for x in out["tasks"]) == {
        "FARGATE": 1, "FARGATE_SPOT": 3}
    described = ecs.describe_tasks(cluster=cluster, tasks=[t["taskArn"]])["tasks"][0]
    assert described["capacityProviderName"] == "FARGATE_SPOT"
    assert described["launchType"] == "FARGATE"
    # launchType FARGATE lists Spot tasks too, as ECS does.
    listed = ecs.list_tasks(cluster=cluster, launchType="FARGATE")["taskArns"]
    assert t["taskArn"] in listed and len(listed) == 5
    # An explicit launch type names no provider.
    plain = ecs.run_task(cluster=cluster, taskDefinition=fam, launchType="FARGATE",
                         networkConfiguration=net(subnet_id))["tasks"][0]
    assert "capacityProviderName" not in plain

    # FARGATE_SPOT runs tasks: it stays associated.
    assert "in use" in refused(ecs.put_cluster_capacity_providers, "ResourceInUseException",
                               cluster=cluster, capacityProviders=["FARGATE"],
                               defaultCapacityProviderStrategy=[])
    for arn in ecs.list_tasks(cluster=cluster)["taskArns"]:
        ecs.stop_task(cluster=cluster, task=arn)
    for arn in ecs.list_tasks(cluster=cluster, desiredStatus="STOPPED")["taskArns"]:
        wait_status(ecs, arn, "STOPPED", cluster=cluster)
    after = ecs.put_cluster_capacity_providers(cluster=cluster, capacityProviders=["FARGATE"],
                                               defaultCapacityProviderStrategy=[])["cluster"]
    assert after["capacityProviders"] == ["FARGATE"]
    assert after["defaultCapacityProviderStrategy"] == []


@pytest.mark.parametrize("providers,strategy,needle", [
    (["FARGATE", "EC2_ASG"], [], "'EC2_ASG'"),
    (["FARGATE", "FARGATE"], [], "more than once"),
    (["FARGATE"], [{"capacityProvider": "FARGATE_SPOT", "weight": 1}], "not associated"),
    (["FARGATE", "FARGATE_SPOT"], [{"capacityProvider": "FARGATE", "base": 1, "weight": 1},
                                   {"capacityProvider": "FARGATE_SPOT", "base": 2}],
     "Only one capacity provider"),
    (["FARGATE"], [{"capacityProvider": "FARGATE", "weight": 1001}],
     "defaultCapacityProviderStrategy[0].weight"),
    (["FARGATE", "FARGATE_SPOT"], [{"capacityProvider": "FARGATE"},
                                   {"capacityProvider": "FARGATE_SPOT"}], "weight greater"),
])
def test_put_capacity_providers_refuses_bad_input(ecs, cluster, providers, strategy, needle):
    ecs.create_cluster(clusterName=cluster)
    assert needle in refused(ecs.put_cluster_capacity_providers, cluster=cluster,
                             capacityProviders=providers,
                             defaultCapacityProviderStrategy=strategy)
    # Nothing was changed.
    assert ecs.describe_clusters(clusters=[cluster])["clusters"][0]["capacityProviders"] == []


def test_missing_cluster_and_run_task_strategy_errors(ecs, busybox_image, subnet_id):
    ghost = "ghost" + uuid.uuid4().hex[:8]
    refused(ecs.put_cluster_capacity_providers, "ClusterNotFoundException", cluster=ghost,
            capacityProviders=["FARGATE"], defaultCapacityProviderStrategy=[])
    refused(ecs.update_cluster_settings, "ClusterNotFoundException", cluster=ghost,
            settings=[{"name": "containerInsights", "value": "enabled"}])
    refused(ecs.update_cluster, "ClusterNotFoundException", cluster=ghost)
    fam = register(ecs, busybox_image)
    for strategy, needle in (([{"capacityProvider": "SPOT"}], "'SPOT'"),
                             ([{"capacityProvider": "FARGATE", "base": 100001}], "base"),
                             ([{"capacityProvider": "FARGATE", "weight": 1},
                               {"capacityProvider": "FARGATE", "weight": 1}], "once")):
        assert needle in refused(ecs.run_task, taskDefinition=fam,
                                 networkConfiguration=net(subnet_id),
                                 capacityProviderStrategy=strategy)
    assert ecs.list_tasks(family=fam)["taskArns"] == []


def test_describe_clusters_include(ecs, cluster):
    ecs.create_cluster(clusterName=cluster, tags=[{"key": "team", "value": "a"}],
                       capacityProviders=["FARGATE_SPOT"],
                       settings=[{"name": "containerInsights", "value": "enhanced"}])
    bare = ecs.describe_clusters(clusters=[cluster])["clusters"][0]
    assert "settings" not in bare and "tags" not in bare and "attachments" not in bare
    assert bare["statistics"] == [] and bare["capacityProviders"] == ["FARGATE_SPOT"]
    full = ecs.describe_clusters(clusters=[cluster], include=[
        "SETTINGS", "STATISTICS", "ATTACHMENTS", "TAGS", "CONFIGURATIONS"])["clusters"][0]
    assert full["settings"] == [{"name": "containerInsights", "value": "enhanced"}]
    assert full["tags"] == [{"key": "team", "value": "a"}]
    assert full["attachments"] == [] and full["attachmentsStatus"] == "UPDATE_COMPLETE"
    stats = {s["name"]: s["value"] for s in full["statistics"]}
    assert stats["runningFargateTasksCount"] == "0" and stats["runningEC2TasksCount"] == "0"
    assert set(stats) >= {"pendingFargateTasksCount", "activeFargateServiceCount",
                          "drainingFargateServiceCount"}
    assert "include[0], value: BOGUS" in refused(ecs.describe_clusters, clusters=[cluster],
                                              include=["BOGUS"])


def test_create_cluster_refuses_what_it_cannot_honour(ecs, cluster):
    for kw, needle in (
            ({"configuration": {"executeCommandConfiguration": {"logging": "DEFAULT"}}},
             "'configuration.executeCommandConfiguration'"),
            ({"configuration": {"managedStorageConfiguration": {"kmsKeyId": "k"}}},
             "'configuration.managedStorageConfiguration'"),
            ({"serviceConnectDefaults": {"namespace": "ns"}}, "'serviceConnectDefaults'"),
            ({"settings": [{"name": "containerInsights", "value": "maybe"}]}, "'maybe'"),
            ({"settings": [{"name": "colour", "value": "enabled"}]}, "value: colour"),
            ({"defaultCapacityProviderStrategy": [{"capacityProvider": "FARGATE"}]},
             "not associated")):
        assert needle in refused(ecs.create_cluster, clusterName=cluster, **kw), kw
    assert ecs.describe_clusters(clusters=[cluster])["failures"]  # none was made
    ecs.create_cluster(clusterName=cluster, capacityProviders=["FARGATE"])
    # The same request again answers with the cluster; another one is refused.
    again = ecs.create_cluster(clusterName=cluster, capacityProviders=["FARGATE"])["cluster"]
    assert again["capacityProviders"] == ["FARGATE"]
    assert "inconsistent" in refused(ecs.create_cluster, clusterName=cluster,
                                     capacityProviders=["FARGATE_SPOT"])
    assert ecs.create_cluster(clusterName=cluster)["cluster"]["capacityProviders"] == ["FARGATE"]


def test_update_cluster_settings(ecs, cluster):
    ecs.create_cluster(clusterName=cluster)
    out = ecs.update_cluster_settings(cluster=cluster, settings=[
        {"name": "containerInsights", "value": "enhanced"}])["cluster"]
    assert out["settings"] == [{"name": "containerInsights", "value": "enhanced"}]
    out = ecs.update_cluster(cluster=cluster, settings=[
        {"name": "containerInsights", "value": "enabled"}])["cluster"]
    assert out["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    shown = ecs.describe_clusters(clusters=[cluster], include=["SETTINGS"])["clusters"][0]
    assert shown["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    assert "at least one" in refused(ecs.update_cluster_settings, cluster=cluster, settings=[])
    assert "more than once" in refused(ecs.update_cluster_settings, cluster=cluster, settings=[
        {"name": "containerInsights", "value": "enabled"},
        {"name": "containerInsights", "value": "disabled"}])
    assert "'configuration.executeCommandConfiguration'" in refused(
        ecs.update_cluster, cluster=cluster,
        configuration={"executeCommandConfiguration": {"kmsKeyId": "k"}})
    assert "'serviceConnectDefaults'" in refused(
        ecs.update_cluster, cluster=cluster, serviceConnectDefaults={"namespace": "n"})
    shown = ecs.describe_clusters(clusters=[cluster], include=["SETTINGS"])["clusters"][0]
    assert shown["settings"] == [{"name": "containerInsights", "value": "enabled"}]


def test_aws_cli_fargate_spot_walkthrough(fargo, ecs, busybox_image, subnet_id):
    """The developer guide's CLI steps: a cluster with both Fargate providers and a default
    strategy, a task that takes it, describe-clusters, put-cluster-capacity-providers."""
    env = fargo.env()
    name = "cli" + uuid.uuid4().hex[:8]

    def aws(*args: str) -> dict:
        out = subprocess.run(["aws", "--endpoint-url", fargo.endpoint, "--region", "us-east-1",
                              "ecs", *args, "--output", "json"], capture_output=True, text=True,
                             env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    made = aws("create-cluster", "--cluster-name", name,
               "--capacity-providers", "FARGATE", "FARGATE_SPOT",
               "--default-capacity-provider-strategy",
               "capacityProvider=FARGATE,weight=1", "capacityProvider=FARGATE_SPOT,weight=1")
    assert made["cluster"]["defaultCapacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE", "weight": 1, "base": 0},
        {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]
    fam = register(ecs, busybox_image, command=IDLE, stopTimeout=2)
    ran = aws("run-task", "--cluster", name, "--task-definition", fam, "--count", "2",
              "--network-configuration",
              f"awsvpcConfiguration={{subnets=[{subnet_id}]}}")
    assert sorted(t["capacityProviderName"] for t in ran["tasks"]) == ["FARGATE", "FARGATE_SPOT"]
    shown = aws("describe-clusters", "--clusters", name, "--include", "SETTINGS", "STATISTICS")
    cl = shown["clusters"][0]
    assert cl["settings"] == [{"name": "containerInsights", "value": "disabled"}]
    assert cl["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    for t in ran["tasks"]:
        aws("stop-task", "--cluster", name, "--task", t["taskArn"])
        wait_status(ecs, t["taskArn"], "STOPPED", cluster=name)
    put = aws("put-cluster-capacity-providers", "--cluster", name,
              "--capacity-providers", "FARGATE_SPOT",
              "--default-capacity-provider-strategy", "capacityProvider=FARGATE_SPOT,base=1")
    assert put["cluster"]["defaultCapacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 0, "base": 1}]
    aws("update-cluster-settings", "--cluster", name,
        "--settings", "name=containerInsights,value=enabled")
    aws("delete-cluster", "--cluster", name)
