"""An ECS service behind an application load balancer, end to end on HAProxy: its tasks are
registered as they run, a rolling deployment under steady requests through the load balancer
loses none, and the old tasks drain before they are stopped."""

from __future__ import annotations

import re
import threading
import time
import uuid

import boto3
import botocore.config
import requests

from tests.test_cloudmap_api import cleanup, namespace
from tests.test_dns import addresses, ask, host_dns_port
from tests.test_services import stable, until
from tests.test_tasks import register

SERVE = ["sh", "-c", "echo ok > /tmp/health; echo rev $REV > /tmp/index.html; "
         "trap 'exit 0' TERM; httpd -f -p 8080 -h /tmp & wait"]


class Load(threading.Thread):
    """GETs to the load balancer every few milliseconds, counting what fails."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.sent = self.failed = 0
        self.answers: set[str] = set()
        self.errors: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        while not self.halt.is_set():
            self.sent += 1
            try:
                r = session.get(self.url, timeout=5)
                if r.status_code != 200:
                    raise RuntimeError(f"{r.status_code} {r.text[:80]}")
                self.answers.add(r.text.strip())
            except Exception as err:  # noqa: BLE001 - every failure is counted
                self.failed += 1
                self.errors.append(str(err)[:200])
            time.sleep(0.005)


def test_a_rolling_deployment_behind_an_alb_loses_no_request(fargo, busybox_image):
    ecs, elb, ec2 = fargo.client("ecs"), fargo.client("elbv2"), fargo.client("ec2")
    tag = uuid.uuid4().hex[:8]
    cluster = "lb" + tag
    ecs.create_cluster(clusterName=cluster)
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    vpc = ec2.describe_subnets(SubnetIds=subnets[:1])["Subnets"][0]["VpcId"]
    fam = register(ecs, busybox_image, command=SERVE, portMappings=[{"containerPort": 8080}],
                   environment=[{"name": "REV", "value": "1"}])
    register(ecs, busybox_image, family=fam, command=SERVE,
             portMappings=[{"containerPort": 8080}], environment=[{"name": "REV", "value": "2"}])
    tg = elb.create_target_group(
        Name=f"web-{tag}", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip",
        HealthCheckPath="/health", HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
        HealthyThresholdCount=2, UnhealthyThresholdCount=2)["TargetGroups"][0]
    tg_arn = tg["TargetGroupArn"]
    elb.modify_target_group_attributes(TargetGroupArn=tg_arn, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "2"}])
    lb = elb.create_load_balancer(Name=f"alb-{tag}", Type="application", Scheme="internal",
                                  Subnets=subnets)["LoadBalancers"][0]
    listener = elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP",
                                   Port=80, DefaultActions=[
                                       {"Type": "forward", "TargetGroupArn": tg_arn}])[
        "Listeners"][0]
    load = None
    try:
        svc = ecs.create_service(
            cluster=cluster, serviceName="web", taskDefinition=f"{fam}:1", desiredCount=3,
            launchType="FARGATE", healthCheckGracePeriodSeconds=30,
            networkConfiguration={"awsvpcConfiguration": {"subnets": subnets}},
            loadBalancers=[{"targetGroupArn": tg_arn, "containerName": "app",
                            "containerPort": 8080}])["service"]
        assert svc["loadBalancers"][0]["targetGroupArn"] == tg_arn

        def healthy(n: int) -> list[str]:
            found = elb.describe_target_health(TargetGroupArn=tg_arn)[
                "TargetHealthDescriptions"]
            ok = [d["Target"]["Id"] for d in found if d["TargetHealth"]["State"] == "healthy"]
            return ok if len(ok) == n == len(found) else []
        first = until(lambda: healthy(3), 120, "three healthy targets")
        stable(ecs, cluster)
        address = lb["AvailabilityZones"][0]["LoadBalancerAddresses"][0]["PrivateIPv4Address"]
        load = Load(f"http://{address}/")
        load.start()
        until(lambda: load.sent > 20, 30, "the load")
        ecs.update_service(cluster=cluster, service="web", taskDefinition=f"{fam}:2")
        until(lambda: (lambda d: len(d) == 1 and d[0]["taskDefinition"].endswith(":2") and
                       d[0]["rolloutState"] == "COMPLETED")(
            ecs.describe_services(cluster=cluster, services=["web"])["services"][0][
                "deployments"]), 180, "the rollout")
        after = until(lambda: healthy(3), 60, "the new targets alone")
        time.sleep(1)
        load.halt.set()
        load.join(10)
        assert load.failed == 0, (load.failed, load.sent, load.errors[:5])
        assert load.sent > 200 and load.answers == {"rev 1", "rev 2"}, load.answers
        assert not set(first) & set(after)  # every target is a new task now
        events = [e["message"] for e in ecs.describe_services(
            cluster=cluster, services=["web"])["services"][0]["events"]]
        # The scheduler registers what each pass found RUNNING: 3 at once, or 1 and 2 when
        # the machine is loaded.
        assert any(re.match(r"\(service web\) registered \d+ targets in \(target-group ", m)
                   for m in events), events
        old = ecs.list_tasks(cluster=cluster, serviceName="web", desiredStatus="STOPPED")
        stopped = ecs.describe_tasks(cluster=cluster, tasks=old["taskArns"])["tasks"]
        assert len(stopped) == 3 and {t["stopCode"] for t in stopped} == {
            "ServiceSchedulerInitiated"}
    finally:
        if load:
            load.halt.set()
        ecs.update_service(cluster=cluster, service="web", desiredCount=0)
        ecs.delete_service(cluster=cluster, service="web", force=True)
        until(lambda: ecs.describe_services(cluster=cluster, services=["web"])["services"][0][
            "status"] == "INACTIVE", 60, "INACTIVE")
        elb.delete_listener(ListenerArn=listener["ListenerArn"])
        elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        elb.delete_target_group(TargetGroupArn=tg_arn)


def test_a_service_registers_its_tasks_in_cloud_map(fargo, busybox_image):
    sd = boto3.client("servicediscovery", endpoint_url=fargo.endpoint, region_name="us-east-1",
                      aws_access_key_id=fargo.key_id, aws_secret_access_key=fargo.secret,
                      config=botocore.config.Config(inject_host_prefix=False))
    ecs, ec2 = fargo.client("ecs"), fargo.client("ec2")
    vpc = next(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v["IsDefault"])
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
    name = f"sd{uuid.uuid4().hex[:8]}.local"
    ns_id = namespace(sd, vpc, name)
    cluster = "sd" + uuid.uuid4().hex[:8]
    ecs.create_cluster(clusterName=cluster)
    try:
        reg = sd.create_service(Name="web", NamespaceId=ns_id, DnsConfig={
            "RoutingPolicy": "MULTIVALUE", "DnsRecords": [{"Type": "A", "TTL": 10}]})["Service"]
        fam = register(ecs, busybox_image, command=SERVE,
                       portMappings=[{"containerPort": 8080}])
        ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=fam,
                           desiredCount=2, launchType="FARGATE",
                           networkConfiguration={"awsvpcConfiguration": {"subnets": subnets}},
                           serviceRegistries=[{"registryArn": reg["Arn"]}])
        stable(ecs, cluster)
        arns = ecs.list_tasks(cluster=cluster, serviceName="web")["taskArns"]
        ips = sorted(next(d["value"] for d in t["attachments"][0]["details"]
                          if d["name"] == "privateIPv4Address")
                     for t in ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"])
        instances = until(lambda: (lambda i: i if len(i) == 2 else None)(
            sd.list_instances(ServiceId=reg["Id"])["Instances"]), 30, "two instances")
        assert {i["Id"] for i in instances} == {a.rsplit("/", 1)[-1] for a in arns}
        assert instances[0]["Attributes"]["ECS_SERVICE_NAME"] == "web"
        port = host_dns_port(fargo)
        assert sorted(addresses(ask(port, f"web.{name}"))) == ips  # the VPC resolver's answer
        ecs.update_service(cluster=cluster, service="web", desiredCount=0)
        until(lambda: not sd.list_instances(ServiceId=reg["Id"])["Instances"], 60,
              "the instances to go")
        ecs.delete_service(cluster=cluster, service="web")
        until(lambda: ecs.describe_services(cluster=cluster, services=["web"])["services"][0][
            "status"] == "INACTIVE", 60, "INACTIVE")
    finally:
        for arn in ecs.list_services(cluster=cluster)["serviceArns"]:
            ecs.delete_service(cluster=cluster, service=arn, force=True)
        until(lambda: not ecs.list_tasks(cluster=cluster)["taskArns"], 60, "no tasks")
        cleanup(sd, ns_id)
