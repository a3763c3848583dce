"""CloudWatch metrics against a real server sampling every second: boto3 and the aws CLI (AWS
JSON 1.0, what botocore sends), botocore clients made to speak Smithy RPC v2 CBOR and the
query protocol, AWS's errors in each protocol's shape; a real task burning CPU in a service
of a Container Insights cluster shows in AWS/ECS and ECS/ContainerInsights; Prometheus'
/metrics is scraped and parsed; a task sees its network figures in /task/stats and cannot
reach /metrics."""

from __future__ import annotations

import datetime
import gzip
import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import boto3
import botocore.exceptions
import botocore.session
import cbor2
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import FargoServers, wait_status
from tests.test_services import create, subnets, until
from tests.test_tasks import register, run

NOW = datetime.datetime.now(datetime.UTC)
HOUR = datetime.timedelta(hours=1)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with FargoServers(tmp_path_factory.mktemp("cw")) as servers:
        yield servers("--metrics-interval", "1")


@pytest.fixture(scope="module")
def cw(srv):
    return srv.client("cloudwatch")


def protocol_client(srv, tmp_path: Path, protocol: str):
    """A botocore client of CloudWatch made to speak `protocol`: its model, copied with
    only that protocol listed (botocore ranks JSON first, so it never picks the others)."""
    src = Path(botocore.__file__).parent / "data" / "cloudwatch" / "2010-08-01"
    dst = tmp_path / protocol / "cloudwatch" / "2010-08-01"
    dst.mkdir(parents=True)
    model = json.loads(gzip.decompress((src / "service-2.json.gz").read_bytes()))
    model["metadata"]["protocols"] = [protocol]
    model["metadata"]["protocol"] = protocol
    (dst / "service-2.json").write_text(json.dumps(model))
    for extra in ("paginators-1.json", "waiters-2.json"):
        shutil.copy(src / extra, dst / extra)
    session = botocore.session.Session()
    session.get_component("data_loader").search_paths.insert(0, str(tmp_path / protocol))
    return boto3.Session(botocore_session=session).client(
        "cloudwatch", endpoint_url=srv.endpoint, region_name="us-east-1",
        aws_access_key_id=srv.key_id, aws_secret_access_key=srv.secret)


def code(exc) -> str:
    return exc.value.response["Error"]["Code"]


def put_and_read(client, namespace: str) -> None:
    """PutMetricData in its three forms, read back by statistics, data and listing."""
    at = NOW - datetime.timedelta(minutes=2)
    client.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "a"}],
         "Values": [10.0, 20.0, 30.0], "Counts": [1, 1, 2], "Unit": "Milliseconds",
         "Timestamp": at},
        {"MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "a"}],
         "Value": 100.0, "Unit": "Milliseconds", "Timestamp": at},
        {"MetricName": "Jobs", "StatisticValues": {"SampleCount": 4, "Sum": 10, "Minimum": 1,
                                                   "Maximum": 4}, "Timestamp": at}])
    stats = client.get_metric_statistics(
        Namespace=namespace, MetricName="Latency", Dimensions=[{"Name": "Host", "Value": "a"}],
        StartTime=NOW - HOUR, EndTime=NOW + HOUR, Period=3600,
        Statistics=["Average", "Maximum", "SampleCount"])
    (point,) = stats["Datapoints"]
    assert stats["Label"] == "Latency"
    assert point["SampleCount"] == 5 and point["Maximum"] == 100.0
    assert point["Average"] == pytest.approx(38.0) and point["Unit"] == "Milliseconds"
    assert isinstance(point["Timestamp"], datetime.datetime)
    pct = client.get_metric_statistics(
        Namespace=namespace, MetricName="Latency", Dimensions=[{"Name": "Host", "Value": "a"}],
        StartTime=NOW - HOUR, EndTime=NOW + HOUR, Period=60, ExtendedStatistics=["p50"])
    assert pct["Datapoints"][0]["ExtendedStatistics"] == {"p50": 30.0}
    data = client.get_metric_data(
        StartTime=NOW - HOUR, EndTime=NOW + HOUR, ScanBy="TimestampAscending",
        MetricDataQueries=[
            {"Id": "jobs", "MetricStat": {"Metric": {"Namespace": namespace,
                                                     "MetricName": "Jobs"},
                                          "Period": 60, "Stat": "Sum"}},
            {"Id": "lat", "Label": "latency", "MetricStat": {
                "Metric": {"Namespace": namespace, "MetricName": "Latency",
                           "Dimensions": [{"Name": "Host", "Value": "a"}]},
                "Period": 60, "Stat": "Minimum"}}])
    results = {r["Id"]: r for r in data["MetricDataResults"]}
    assert results["jobs"]["Values"] == [10.0] and results["jobs"]["StatusCode"] == "Complete"
    assert results["lat"]["Values"] == [10.0] and results["lat"]["Label"] == "latency"
    assert results["jobs"]["Timestamps"][0] == at.replace(second=0, microsecond=0)
    listed = client.list_metrics(Namespace=namespace)["Metrics"]
    assert sorted((m["MetricName"], str(m["Dimensions"])) for m in listed) == [
        ("Jobs", "[]"), ("Latency", "[{'Name': 'Host', 'Value': 'a'}]")]
    only = client.list_metrics(Namespace=namespace, Dimensions=[{"Name": "Host"}])["Metrics"]
    assert [m["MetricName"] for m in only] == ["Latency"]


def test_boto3_json(cw):
    put_and_read(cw, "App/" + uuid.uuid4().hex[:6])
    with pytest.raises(cw.exceptions.InvalidParameterValueException) as exc:
        cw.put_metric_data(Namespace="AWS/ECS", MetricData=[{"MetricName": "m", "Value": 1}])
    assert "AWS/ECS for parameter Namespace" in str(exc.value)
    with pytest.raises(cw.exceptions.InvalidParameterValueException, match="1000"):
        cw.put_metric_data(Namespace="App", MetricData=[{"MetricName": "m", "Value": 1}] * 1001)
    with pytest.raises(cw.exceptions.InvalidParameterCombinationException):
        cw.put_metric_data(Namespace="App", MetricData=[
            {"MetricName": "m", "Value": 1, "StatisticValues": {
                "SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}}])
    with pytest.raises(cw.exceptions.InvalidParameterCombinationException, match="limit of 1,440"):
        cw.get_metric_statistics(Namespace="App", MetricName="m", StartTime=NOW - 25 * HOUR,
                                 EndTime=NOW - HOUR + datetime.timedelta(minutes=1),
                                 Period=60, Statistics=["Sum"])
    with pytest.raises(cw.exceptions.InvalidParameterValueException, match="metric math"):
        cw.get_metric_data(StartTime=NOW - HOUR, EndTime=NOW, MetricDataQueries=[
            {"Id": "e", "Expression": "SUM(METRICS())"}])
    with pytest.raises(cw.exceptions.InvalidNextToken):
        cw.get_metric_data(StartTime=NOW - HOUR, EndTime=NOW, NextToken="bogus",
                           MetricDataQueries=[{"Id": "a", "MetricStat": {
                               "Metric": {"Namespace": "App", "MetricName": "m"},
                               "Period": 60, "Stat": "Sum"}}])
    with pytest.raises(botocore.exceptions.ClientError) as alarm:
        cw.describe_alarms()
    assert code(alarm) == "InvalidAction" and "not supported by fargo" in str(alarm.value)


def test_wire_errors_are_aws_shaped(srv):
    target = {"Content-Type": "application/x-amz-json-1.0"}
    bad = srv.post(b"{not json", {**target, "X-Amz-Target":
                                  "GraniteServiceVersion20100801.ListMetrics"},
                   service="monitoring")
    assert bad.status_code == 400 and bad.json()["__type"] == "SerializationException"
    typed = srv.post(json.dumps({"Namespace": 5}), {**target, "X-Amz-Target":
                     "GraniteServiceVersion20100801.ListMetrics"}, service="monitoring")
    assert typed.status_code == 400
    assert typed.json()["__type"] == "InvalidParameterValueException"
    assert typed.headers["x-amzn-query-error"] == "InvalidParameterValue;Sender"
    missing = srv.post(b"{}", {**target, "X-Amz-Target":
                       "GraniteServiceVersion20100801.GetMetricStatistics"},
                       service="monitoring")
    assert missing.json()["__type"] == "MissingRequiredParameterException"
    unsigned = srv.post(b"{}", {**target, "X-Amz-Target":
                        "GraniteServiceVersion20100801.ListMetrics"}, sign=False)
    assert unsigned.status_code in (400, 403) and "__type" in unsigned.json()
    path = "/service/GraniteServiceVersion20100801/operation/ListMetrics"
    cbor_headers = {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
    for body in (b"\xff\xff", cbor2.dumps(cbor2.CBORTag(35, "(a+)+$")), b"\xa1" * 10_000):
        r = signed(srv, path, body, cbor_headers)
        assert r.status_code == 400 and r.headers["smithy-protocol"] == "rpc-v2-cbor"
        assert cbor2.loads(r.content)["__type"] == "SerializationException"
    big = signed(srv, path, b"\x00" * (2 << 20), cbor_headers)
    assert big.status_code in (400, 413)
    assert cbor2.loads(big.content)["__type"] == "SerializationException"


def signed(srv, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method="POST", url=srv.endpoint + path, data=body, headers=headers)
    SigV4Auth(Credentials(srv.key_id, srv.secret), "monitoring", "us-east-1").add_auth(req)
    return requests.post(srv.endpoint + path, data=body, headers=dict(req.headers.items()),
                         timeout=10)


@pytest.mark.parametrize("protocol", ["smithy-rpc-v2-cbor", "query"])
def test_other_protocols(srv, tmp_path, protocol):
    client = protocol_client(srv, tmp_path, protocol)
    put_and_read(client, f"{protocol}/" + uuid.uuid4().hex[:6])
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.put_metric_data(Namespace="AWS/X", MetricData=[{"MetricName": "m", "Value": 1}])
    with pytest.raises(client.exceptions.MissingRequiredParameterException):
        client.put_metric_data(Namespace="App", MetricData=[{"MetricName": "m"}])
    with pytest.raises(botocore.exceptions.ClientError) as alarm:
        client.put_dashboard(DashboardName="d", DashboardBody="{}")
    assert code(alarm) == "InvalidAction"


def test_the_aws_cli(srv):
    def aws(*args: str) -> dict:
        out = subprocess.run(["aws", "--endpoint-url", srv.endpoint, "--output", "json",
                              "cloudwatch", *args], capture_output=True, text=True,
                             env=srv.env(), timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    ns = "Cli/" + uuid.uuid4().hex[:6]
    aws("put-metric-data", "--namespace", ns, "--metric-name", "Depth", "--value", "7",
        "--unit", "Count", "--dimensions", "Queue=q1")
    aws("put-metric-data", "--namespace", ns, "--metric-name", "Depth", "--value", "3",
        "--unit", "Count", "--dimensions", "Queue=q1")
    listed = aws("list-metrics", "--namespace", ns)["Metrics"]
    assert listed == [{"Namespace": ns, "MetricName": "Depth",
                       "Dimensions": [{"Name": "Queue", "Value": "q1"}]}]
    start, end = (NOW - HOUR).isoformat(), (NOW + HOUR).isoformat()
    got = aws("get-metric-statistics", "--namespace", ns, "--metric-name", "Depth",
              "--dimensions", "Name=Queue,Value=q1", "--start-time", start, "--end-time", end,
              "--period", "7200", "--statistics", "Sum", "Maximum")
    assert [(p["Sum"], p["Maximum"], p["Unit"]) for p in got["Datapoints"]] == \
        [(10.0, 7.0, "Count")]


# ---------------------------------------------------------------- a real task


BURN = ["sh", "-c", "dd if=/dev/zero of=/tmp/blob bs=64k count=64 conv=fsync 2>/dev/null; "
        "trap 'exit 0' TERM; while :; do :; done"]
PROBE = ["sh", "-c", 'wget -qO- "$ECS_CONTAINER_METADATA_URI_V4/task/stats"; echo; '
         'wget -S -O /dev/null "$AWS_ENDPOINT_URL/metrics" 2>&1 | grep HTTP/ | '
         "sed 's/^ */try /'; echo try done; sleep 600"]


def test_a_burning_service_task_shows_in_cloudwatch_and_prometheus(srv, cw, busybox_image):
    ecs = srv.client("ecs")
    cluster = "m" + uuid.uuid4().hex[:6]
    ecs.create_cluster(clusterName=cluster,
                       settings=[{"name": "containerInsights", "value": "enhanced"}])
    family = register(ecs, busybox_image, command=BURN)
    create(ecs, cluster, family, subnets(srv), 1, name="burn")
    task = until(lambda: next((t for t in ecs.describe_tasks(cluster=cluster, tasks=ecs.list_tasks(
        cluster=cluster)["taskArns"] or ["none"]).get("tasks", [])
        if t["lastStatus"] == "RUNNING"), None), 30, "the service's task to run")
    tid = task["taskArn"].rsplit("/", 1)[-1]
    window = {"StartTime": NOW - HOUR, "EndTime": datetime.datetime.now(datetime.UTC) + HOUR,
              "Period": 60}
    service = [{"Name": "ClusterName", "Value": cluster}, {"Name": "ServiceName",
                                                            "Value": "burn"}]

    def peak(namespace: str, name: str, dims: list[dict], stat: str = "Maximum") -> float:
        got = cw.get_metric_statistics(Namespace=namespace, MetricName=name, Dimensions=dims,
                                       Statistics=[stat], **window)["Datapoints"]
        return max((p[stat] for p in got), default=0.0)

    # 256 CPU units reserved, one busy loop: capped at 100 % of a quarter vCPU
    until(lambda: peak("AWS/ECS", "CPUUtilization", service) > 50, 20, "CPUUtilization")
    assert peak("AWS/ECS", "CPUUtilization", service[:1]) > 50
    assert peak("AWS/ECS", "MemoryUtilization", service) > 0
    task_dims = [{"Name": "ClusterName", "Value": cluster},
                 {"Name": "TaskDefinitionFamily", "Value": family},
                 {"Name": "TaskId", "Value": tid}]
    assert peak("ECS/ContainerInsights", "CpuUtilized", task_dims) > 128
    assert peak("ECS/ContainerInsights", "CpuReserved", task_dims) == 256
    until(lambda: peak("ECS/ContainerInsights", "StorageWriteBytes", task_dims, "Sum")
          >= 4 << 20, 10, "the task's 4 MiB written to show")
    # A SIGKILL: the sampler goes on from the readings stored with its data, so the bytes
    # written before are not counted again (a fresh start would count them all once more).
    srv.kill()
    srv.start()
    restarted = time.time()
    until(lambda: last_pass(srv) > restarted + 1, 15, "passes after the restart")
    written = cw.get_metric_statistics(Namespace="ECS/ContainerInsights",
                                       MetricName="StorageWriteBytes", Dimensions=task_dims,
                                       Statistics=["Sum"], **window)["Datapoints"]
    assert 4 << 20 <= sum(p["Sum"] for p in written) < 6 << 20
    assert peak("ECS/ContainerInsights", "DesiredTaskCount", service) == 1
    assert peak("ECS/ContainerInsights", "RunningTaskCount", service) == 1
    names = {m["MetricName"] for m in cw.list_metrics(
        Namespace="ECS/ContainerInsights", Dimensions=[{"Name": "TaskId", "Value": tid}],
        RecentlyActive="PT3H")["Metrics"]}
    assert {"NetworkRxBytes", "NetworkTxBytes", "StorageReadBytes", "MemoryUtilized"} <= names

    # Prometheus: the sampler's latest pass, unauthenticated, parsed by prometheus_client
    text = requests.get(srv.endpoint + "/metrics", timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    cpu = [s for s in families["fargo_task_cpu_seconds"].samples if s.labels["task_id"] == tid]
    assert cpu and cpu[0].value > 0 and cpu[0].labels["service"] == "burn"
    assert cpu[0].labels["cluster"] == cluster and cpu[0].labels["family"] == family
    limit = [s for s in families["fargo_task_memory_limit_bytes"].samples
             if s.labels["task_id"] == tid]
    assert limit[0].value == 512 << 20
    assert any(s.labels["container"] == "app" and s.labels["task_id"] == tid
               for s in families["fargo_container_cpu_seconds"].samples)
    assert any(s.labels == {"cluster": cluster, "status": "RUNNING"} and s.value >= 1
               for s in families["fargo_tasks"].samples)
    assert families["fargo_metrics_sampled_tasks"].samples[0].value >= 1

    # Inside a task: /task/stats has its network; the task's API endpoint has no /metrics
    probe_family = register(ecs, busybox_image, command=PROBE)
    probe = run(ecs, probe_family, subnets(srv)[0], cluster=cluster)
    wait_status(ecs, probe["taskArn"], "RUNNING", cluster=cluster)
    lines = until(lambda: (lambda ls: ls if "try done" in ls else None)(
        log_lines(srv, probe)), 20, "the probe's output")
    stats = json.loads(lines[0])
    assert all("eth0" in doc["networks"] for doc in stats.values())
    assert "try HTTP/1.1 404 Not Found" in lines  # reached, and refused
    ecs.stop_task(cluster=cluster, task=probe["taskArn"])
    ecs.update_service(cluster=cluster, service="burn", desiredCount=0)


def log_lines(srv, task: dict) -> list[str]:
    """The task's output, over fargo's own (signed) logs API."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    tid = task["taskArn"].rsplit("/", 1)[-1]
    url = f"{srv.endpoint}/fargo/v1/tasks/{tid}/logs?follow=0&timestamps=0"
    req = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(srv.key_id, srv.secret), "fargo", "us-east-1").add_auth(req)
    resp = requests.get(url, headers=dict(req.headers.items()), timeout=10)
    return resp.text.splitlines() if resp.ok else []


def last_pass(srv) -> float:
    text = requests.get(srv.endpoint + "/metrics", timeout=5).text
    return next(s.value for f in text_string_to_metric_families(text)
                if f.name == "fargo_metrics_last_sample_timestamp_seconds" for s in f.samples)
