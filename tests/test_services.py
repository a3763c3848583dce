"""ECS services against a real server, driven with boto3 and the aws CLI: a desired count kept,
tasks replaced, rolling deployments, the circuit breaker, scale to zero and delete."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import botocore.exceptions
import pytest

from tests.conftest import ROOT
from tests.test_tasks import register

IDLE = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
FAST = {"Delay": 1, "MaxAttempts": 90}


def subnets(fargo) -> list[str]:
    """One subnet in each of two zones of the default VPC."""
    by_zone: dict[str, str] = {}
    for s in fargo.client("ec2").describe_subnets()["Subnets"]:
        by_zone.setdefault(s["AvailabilityZone"], s["SubnetId"])
    return list(by_zone.values())[:2]


def create(ecs, cluster: str, family: str, subnet_ids: list[str], desired: int, **kw) -> dict:
    return ecs.create_service(
        cluster=cluster, serviceName=kw.pop("name", "web"), taskDefinition=family,
        desiredCount=desired, launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": subnet_ids}}, **kw)["service"]


def describe(ecs, cluster: str, name: str = "web") -> dict:
    return ecs.describe_services(cluster=cluster, services=[name])["services"][0]


def stable(ecs, cluster: str, name: str = "web") -> dict:
    try:
        ecs.get_waiter("services_stable").wait(cluster=cluster, services=[name],
                                               WaiterConfig=FAST)
    except botocore.exceptions.WaiterError as exc:
        raise AssertionError(json.dumps({"service": describe(ecs, cluster, name),
                                         "tasks": service_tasks(ecs, cluster, name, "STOPPED")},
                                        default=str)[:6000]) from exc
    # The waiter asks for one deployment and the count; its rollout completes once the tasks
    # have stayed up a moment (model/rollout.py SETTLE).
    return until(lambda: (lambda s: s if s["deployments"][0]["rolloutState"] != "IN_PROGRESS"
                          else None)(describe(ecs, cluster, name)), 30, "the rollout")


def service_tasks(ecs, cluster: str, name: str = "web", desired: str = "RUNNING") -> list[dict]:
    arns = ecs.list_tasks(cluster=cluster, serviceName=name, desiredStatus=desired)["taskArns"]
    return ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []


def until(check, timeout: float = 60.0, what: str = ""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = check()
        if out:
            return out
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def err(exc) -> tuple[str, str]:
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


@pytest.fixture
def cluster(ecs):
    name = "s" + uuid.uuid4().hex[:8]
    ecs.create_cluster(clusterName=name)
    yield name
    for arn in ecs.list_services(cluster=name)["serviceArns"]:
        try:
            ecs.delete_service(cluster=name, service=arn, force=True)
        except ecs.exceptions.ServiceNotActiveException:
            pass  # the test deleted it already: DRAINING, it goes of itself
    until(lambda: not [t for t in service_tasks(ecs, name, "web") if t["lastStatus"] !=
                       "STOPPED"], what="the tasks to stop")


def test_a_service_keeps_its_count_rolls_and_drains(ecs, fargo, busybox_image, cluster):
    fam = register(ecs, busybox_image, command=IDLE)
    nets = subnets(fargo)
    svc = create(ecs, cluster, fam, nets, 3, tags=[{"key": "team", "value": "web"}],
                 propagateTags="SERVICE", enableECSManagedTags=True)
    assert svc["status"] == "ACTIVE" and svc["desiredCount"] == 3
    assert svc["serviceArn"].endswith(f":service/{cluster}/web")
    assert len(svc["deployments"]) == 1 and svc["deployments"][0]["status"] == "PRIMARY"
    dep = svc["deployments"][0]["id"]
    assert dep.startswith("ecs-svc/")
    svc = stable(ecs, cluster)
    assert svc["runningCount"] == 3 and svc["pendingCount"] == 0
    assert svc["deployments"][0]["rolloutState"] == "COMPLETED"
    messages = [e["message"] for e in svc["events"]]
    assert messages[0] == "(service web) has reached a steady state."
    assert any(m.startswith("(service web) has started 3 tasks: (task ") for m in messages)
    tasks = service_tasks(ecs, cluster)
    assert len(tasks) == 3
    assert {t["group"] for t in tasks} == {"service:web"}
    assert {t["startedBy"] for t in tasks} == {dep}
    if len(nets) == 2:  # spread across the zones of its subnets
        zones = [t["availabilityZone"] for t in tasks]
        assert max(zones.count(z) for z in set(zones)) == 2
    tags = ecs.describe_tasks(cluster=cluster, tasks=[tasks[0]["taskArn"]],
                              include=["TAGS"])["tasks"][0]["tags"]
    assert {"key": "team", "value": "web"} in tags
    assert {"key": "aws:ecs:serviceName", "value": "web"} in tags
    listed = ecs.list_services(cluster=cluster)["serviceArns"]
    assert listed == [svc["serviceArn"]]
    assert ecs.describe_clusters(clusters=[cluster])["clusters"][0]["activeServicesCount"] == 1

    # A task that stops is replaced.
    gone = tasks[0]["taskArn"]
    ecs.stop_task(cluster=cluster, task=gone)
    until(lambda: len([t for t in service_tasks(ecs, cluster) if t["lastStatus"] == "RUNNING"
                       and t["taskArn"] != gone]) == 3, what="a replacement")

    # A new revision rolls out; the old tasks are stopped by the scheduler.
    fam2 = register(ecs, busybox_image, family=fam, command=IDLE,
                    environment=[{"name": "REV", "value": "2"}])
    assert fam2 == fam
    svc = ecs.update_service(cluster=cluster, service="web",
                             taskDefinition=f"{fam}:2")["service"]
    assert [d["status"] for d in svc["deployments"]] == ["PRIMARY", "ACTIVE"]
    assert svc["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    svc = stable(ecs, cluster)
    assert svc["taskDefinition"].endswith(f"{fam}:2") and svc["runningCount"] == 3
    tasks = service_tasks(ecs, cluster)
    assert {t["taskDefinitionArn"].rsplit(":", 1)[-1] for t in tasks} == {"2"}
    old = [t for t in service_tasks(ecs, cluster, desired="STOPPED") if t["startedBy"] == dep]
    assert old and {t["stopCode"] for t in old} <= {"ServiceSchedulerInitiated",
                                                   "UserInitiated"}

    # A deregistered revision still scales its service, as ECS allows.
    ecs.deregister_task_definition(taskDefinition=f"{fam}:2")
    ecs.update_service(cluster=cluster, service="web", desiredCount=4)
    assert stable(ecs, cluster)["runningCount"] == 4

    # Scale to zero, then delete: DRAINING, then INACTIVE.
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.delete_service(cluster=cluster, service="web")
    assert err(exc) == ("InvalidParameterException",
                        "The service cannot be stopped while it is scaled above 0.")
    ecs.update_service(cluster=cluster, service="web", desiredCount=0)
    svc = stable(ecs, cluster)
    assert svc["runningCount"] == 0 and service_tasks(ecs, cluster) == []
    assert ecs.delete_service(cluster=cluster, service="web")["service"]["status"] in (
        "DRAINING", "INACTIVE")
    until(lambda: describe(ecs, cluster)["status"] == "INACTIVE", what="INACTIVE")
    assert ecs.list_services(cluster=cluster)["serviceArns"] == []
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.update_service(cluster=cluster, service="web", desiredCount=1)
    assert err(exc)[0] == "ServiceNotActiveException"


def test_the_circuit_breaker_rolls_back(ecs, fargo, busybox_image, cluster):
    fam = register(ecs, busybox_image, command=IDLE)
    create(ecs, cluster, fam, subnets(fargo)[:1], 1, deploymentConfiguration={
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        "maximumPercent": 200, "minimumHealthyPercent": 100})
    first = stable(ecs, cluster)["deployments"][0]["id"]
    register(ecs, busybox_image, family=fam, command=["sh", "-c", "exit 3"])
    bad = ecs.update_service(cluster=cluster, service="web",
                             taskDefinition=f"{fam}:2")["service"]["deployments"][0]["id"]

    def rolled_back():
        svc = describe(ecs, cluster)
        failed = [d for d in svc["deployments"] if d["id"] == bad]
        return svc if not failed or failed[0]["rolloutState"] == "FAILED" else None
    try:
        svc = until(rolled_back, 90, "the breaker")
    except AssertionError:
        print(json.dumps(describe(ecs, cluster), default=str, indent=1))
        print(json.dumps(service_tasks(ecs, cluster, desired="STOPPED"), default=str)[:3000])
        raise
    svc = stable(ecs, cluster)
    assert svc["taskDefinition"].endswith(f"{fam}:1")
    assert svc["deployments"][0]["id"] not in (first, bad)
    messages = [e["message"] for e in svc["events"]]
    assert f"(service web) (deployment {bad}) deployment failed: tasks failed to start." \
        in messages
    assert any(m.startswith("(service web) rolling back to deployment ecs-svc/")
               for m in messages)
    # The one task of the first deployment served throughout (minimumHealthyPercent 100).
    running = service_tasks(ecs, cluster)
    assert len(running) == 1


def test_bad_input_is_refused_as_ecs_does(ecs, fargo, busybox_image, cluster):
    fam = register(ecs, busybox_image, command=IDLE)
    nets = subnets(fargo)[:1]
    cases = [
        (dict(cluster="nope-" + cluster, serviceName="x", taskDefinition=fam, desiredCount=0),
         "ClusterNotFoundException"),
        (dict(cluster=cluster, serviceName="bad name", taskDefinition=fam, desiredCount=0),
         "ClientException"),
        (dict(cluster=cluster, serviceName="x", taskDefinition=fam, desiredCount=1,
              deploymentConfiguration={"maximumPercent": 250}), "InvalidParameterException"),
        (dict(cluster=cluster, serviceName="x", taskDefinition=fam, desiredCount=1,
              loadBalancers=[{"targetGroupArn": "arn:aws:elasticloadbalancing:x",
                              "containerName": "app", "containerPort": 80}]),
         "InvalidParameterException"),
        (dict(cluster=cluster, serviceName="x", taskDefinition=fam, desiredCount=1,
              launchType="EC2"), "InvalidParameterException"),
        (dict(cluster=cluster, serviceName="x", taskDefinition="missing" + fam,
              desiredCount=1), "ClientException"),
        (dict(cluster=cluster, serviceName="x", taskDefinition=fam, desiredCount=-1),
         "InvalidParameterException"),
    ]
    for kw, code in cases:
        kw.setdefault("networkConfiguration", {"awsvpcConfiguration": {"subnets": nets}})
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ecs.create_service(**kw)
        assert err(exc)[0] == code, (kw, err(exc))
    assert ecs.list_services(cluster=cluster)["serviceArns"] == []
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.create_service(cluster=cluster, serviceName="x", taskDefinition=fam,
                           desiredCount=0)
    assert "Network Configuration" in err(exc)[1]
    create(ecs, cluster, fam, nets, 0)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        create(ecs, cluster, fam, nets, 1)
    assert err(exc) == ("InvalidParameterException", "Creation of service was not idempotent.")
    for call in (lambda: ecs.update_service(cluster=cluster, service="nope", desiredCount=1),
                 lambda: ecs.delete_service(cluster=cluster, service="nope")):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call()
        assert err(exc) == ("ServiceNotFoundException", "Service not found.")
    other = "o" + uuid.uuid4().hex[:8]
    ecs.create_cluster(clusterName=other)
    with pytest.raises(botocore.exceptions.ClientError) as exc:  # a service of another cluster
        ecs.update_service(cluster=other, service=f"arn:aws:ecs:us-east-1:000000000000:"
                           f"service/{cluster}/web", desiredCount=1)
    assert err(exc)[0] == "ServiceNotFoundException"
    out = ecs.describe_services(cluster=cluster, services=["web", "nope"])
    assert [s["serviceName"] for s in out["services"]] == ["web"]
    assert out["failures"][0]["reason"] == "MISSING"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.update_service(cluster=cluster, service="web",
                           deploymentConfiguration={"minimumHealthyPercent": 101})
    assert "minimumHealthyPercent" in err(exc)[1]
    ecs.delete_service(cluster=cluster, service="web")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.update_service(cluster=cluster, service="web", desiredCount=1)
    assert err(exc)[0] == "ServiceNotActiveException"


def test_the_aws_cli_walkthrough(fargo, busybox_image, cluster):
    def aws(*args: str) -> dict:
        out = subprocess.run(["aws", "--endpoint-url", fargo.endpoint, "--region", "us-east-1",
                              "ecs", *args, "--output", "json"], capture_output=True,
                             text=True, timeout=120, env=fargo.env())
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    fam = register(fargo.client("ecs"), busybox_image, command=IDLE)
    nets = ",".join(subnets(fargo))
    aws("create-service", "--cluster", cluster, "--service-name", "web", "--task-definition",
        f"{fam}:1", "--desired-count", "2", "--launch-type", "FARGATE",
        "--network-configuration", f"awsvpcConfiguration={{subnets=[{nets}]}}",
        "--deployment-configuration", "deploymentCircuitBreaker={enable=true,rollback=true},"
        "maximumPercent=200,minimumHealthyPercent=100")
    assert aws("list-services", "--cluster", cluster)["serviceArns"][0].endswith("/web")
    aws("wait", "services-stable", "--cluster", cluster, "--services", "web")
    out = aws("describe-services", "--cluster", cluster, "--services", "web")
    assert out["services"][0]["runningCount"] == 2
    assert len(aws("list-tasks", "--cluster", cluster, "--service-name", "web")["taskArns"]) == 2
    aws("update-service", "--cluster", cluster, "--service", "web", "--desired-count", "0")
    aws("wait", "services-stable", "--cluster", cluster, "--services", "web")
    assert aws("delete-service", "--cluster", cluster, "--service", "web")["service"][
        "status"] in ("DRAINING", "INACTIVE")


SICKENS = ["sh", "-c", "trap 'exit 0' TERM; (sleep 7; touch /tmp/sick) & sleep 3600 & wait"]


def test_a_task_failing_its_health_checks_is_replaced(ecs, fargo, busybox_image, cluster):
    fam = register(ecs, busybox_image, command=SICKENS, healthCheck={
        "command": ["CMD-SHELL", "test ! -f /tmp/sick"], "interval": 5, "retries": 1,
        "timeout": 2})
    create(ecs, cluster, fam, subnets(fargo)[:1], 1)
    first = until(lambda: [t for t in service_tasks(ecs, cluster)
                           if t.get("healthStatus") == "HEALTHY"], 30, "HEALTHY")[0]

    def replaced():
        gone = ecs.describe_tasks(cluster=cluster, tasks=[first["taskArn"]])["tasks"][0]
        return gone if gone["desiredStatus"] == "STOPPED" else None
    gone = until(replaced, 30, "the sick task to be stopped")
    assert gone["stopCode"] == "ServiceSchedulerInitiated"
    assert gone["stoppedReason"] == "Task failed container health checks"
    assert gone["healthStatus"] == "UNHEALTHY"
    until(lambda: [t for t in service_tasks(ecs, cluster)
                   if t["taskArn"] != first["taskArn"] and t["lastStatus"] == "RUNNING"],
          30, "a replacement")
    messages = [e["message"] for e in describe(ecs, cluster)["events"]]
    task_id = first["taskArn"].rsplit("/", 1)[-1]
    assert f"(service web) (task {task_id}) failed container health checks." in messages


def test_an_interrupted_spot_task_is_replaced(ecs, fargo, busybox_image, cluster):
    fam = register(ecs, busybox_image, command=IDLE, stopTimeout=2)
    ecs.put_cluster_capacity_providers(cluster=cluster,
                                       capacityProviders=["FARGATE", "FARGATE_SPOT"],
                                       defaultCapacityProviderStrategy=[])
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=fam, desiredCount=2,
                       capacityProviderStrategy=[
                           {"capacityProvider": "FARGATE", "base": 1, "weight": 0},
                           {"capacityProvider": "FARGATE_SPOT", "weight": 1}],
                       networkConfiguration={"awsvpcConfiguration": {
                           "subnets": subnets(fargo)[:1]}})
    svc = stable(ecs, cluster)
    assert svc["capacityProviderStrategy"][1]["capacityProvider"] == "FARGATE_SPOT"
    tasks = service_tasks(ecs, cluster)
    assert sorted(t["capacityProviderName"] for t in tasks) == ["FARGATE", "FARGATE_SPOT"]
    spot = next(t for t in tasks if t["capacityProviderName"] == "FARGATE_SPOT")
    out = subprocess.run([sys.executable, "-m", "fargo", "spot", "interrupt", spot["taskArn"],
                          "--endpoint", fargo.endpoint], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env=fargo.env())
    assert out.returncode == 0, out.stderr
    stopped = ecs.describe_tasks(cluster=cluster, tasks=[spot["taskArn"]])["tasks"][0]
    assert stopped["stopCode"] == "SpotInterruption"
    until(lambda: [t for t in service_tasks(ecs, cluster) if t["lastStatus"] == "RUNNING"
                   and t["capacityProviderName"] == "FARGATE_SPOT"
                   and t["taskArn"] != spot["taskArn"]], 30, "a Spot replacement")


def test_a_sigkill_neither_doubles_nor_loses_a_services_tasks(fargo_servers, busybox_image):
    srv = fargo_servers(name="svc-crash")
    ecs = srv.client()
    nets = subnets(srv)
    fam = register(ecs, busybox_image, command=IDLE)
    create(ecs, "default", fam, nets, 5)
    until(lambda: ecs.list_tasks(serviceName="web")["taskArns"], 30, "a first task")
    srv.kill()  # while the scheduler's tasks start
    srv.start()
    svc = stable(ecs, "default")
    assert svc["runningCount"] == 5
    running = service_tasks(ecs, "default")
    assert len(running) == 5 and all(t["lastStatus"] == "RUNNING" for t in running)
    stopped = service_tasks(ecs, "default", desired="STOPPED")
    # Nothing was started twice and then scaled away; only a start the crash cut short may
    # have been refused (and replaced).
    for t in stopped:
        assert t["stopCode"] == "TaskFailedToStart", t
    ecs.update_service(service="web", desiredCount=0)
    stable(ecs, "default")
    assert service_tasks(ecs, "default") == []
