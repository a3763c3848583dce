"""Containers' output in CloudWatch Logs, end to end: real tasks with the awslogs driver read
back with boto3's DescribeLogStreams and GetLogEvents, a task whose log group is missing
stopped as Fargate stops it, a server SIGKILLed while a task writes (every line exactly once
after the restart), and a pod's output routed by the aws-logging ConfigMap applied with
kubectl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import ROOT, wait_status
from tests.test_kubectl import KUBECTL, kubectl, kubectl_run, make_profile
from tests.test_tasks import run

ROLE = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"
NO_GROUP = ("ResourceInitializationError: failed to validate logger args: create stream has "
            "been retried 1 times: failed to create Cloudwatch log stream: "
            "ResourceNotFoundException: The specified log group does not exist. : exit status 1")


def awslogs(group: str, **extra: str) -> dict:
    opts = {"awslogs-group": group, "awslogs-region": "us-east-1",
            "awslogs-stream-prefix": "ecs", **{k.replace("_", "-"): v for k, v in extra.items()}}
    return {"logDriver": "awslogs", "options": opts}


def register(ecs, containers: list[dict]) -> str:
    family = "logs" + uuid.uuid4().hex[:8]
    ecs.register_task_definition(family=family, networkMode="awsvpc", cpu="256", memory="512",
                                 requiresCompatibilities=["FARGATE"], executionRoleArn=ROLE,
                                 containerDefinitions=containers)
    return family


def events(logs, group: str, stream: str, want: int, timeout: float = 20) -> list[dict]:
    """Every event of the stream, from its head, once at least `want` are there."""
    deadline = time.time() + timeout
    while True:
        out: list[dict] = []
        kw: dict = {"startFromHead": True}
        while True:
            page = logs.get_log_events(logGroupName=group, logStreamName=stream, **kw)
            out += page["events"]
            if page["nextForwardToken"] == kw.get("nextToken"):
                break
            kw["nextToken"] = page["nextForwardToken"]
        if len(out) >= want or time.time() > deadline:
            return out
        time.sleep(0.2)


def test_a_tasks_lines_each_an_event_with_its_time(fargo, busybox_image, subnet_id):
    ecs, logs = fargo.client(), fargo.client("logs")
    group = f"/fargo/e2e/{uuid.uuid4().hex[:8]}"
    script = ("echo first; sleep 1; echo second; echo oops >&2; i=0; "
              "while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done; printf 'no newline'")
    multi = "printf 'INFO a\\n  at x()\\n  at y()\\nINFO b\\nmore\\n'"
    family = register(ecs, [
        {"name": "app", "image": busybox_image, "command": ["sh", "-c", script],
         "logConfiguration": awslogs(group, awslogs_create_group="true")},
        {"name": "multi", "image": busybox_image, "command": ["sh", "-c", multi],
         "essential": False,
         "logConfiguration": awslogs(group, awslogs_multiline_pattern="^INFO")}])
    task = run(ecs, family, subnet_id)
    tid = task["taskArn"].rsplit("/", 1)[-1]
    began = int(time.time() * 1000)
    wait_status(ecs, task["taskArn"], "STOPPED", timeout=30)
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert sorted(s["logStreamName"] for s in streams) == [f"ecs/app/{tid}",
                                                           f"ecs/multi/{tid}"]
    got = events(logs, group, f"ecs/app/{tid}", 204)
    messages = [e["message"] for e in got]
    assert "oops" in messages  # stderr: its own pipe, so its place among stdout's may vary
    messages.remove("oops")
    assert messages == ["first", "second"] + [f"line {i}" for i in range(200)] + ["no newline"]
    stamps = [e["timestamp"] for e in got]
    assert stamps == sorted(stamps) and began - 5000 < stamps[0] <= stamps[-1] < began + 30000
    assert stamps[1] - stamps[0] >= 900  # each line keeps the time it was written
    joined = events(logs, group, f"ecs/multi/{tid}", 2)
    assert [e["message"] for e in joined] == ["INFO a\n  at x()\n  at y()\n", "INFO b\nmore\n"]
    # `fargo logs` reads the same conmon file.
    out = subprocess.run([sys.executable, "-m", "fargo", "logs", tid, "--endpoint",
                          fargo.endpoint], capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env=fargo.env())
    assert "line 199" in out.stdout and "first" in out.stdout


def test_a_missing_group_stops_the_task_before_it_runs(fargo, busybox_image, subnet_id):
    ecs = fargo.client()
    family = register(ecs, [{"name": "app", "image": busybox_image,
                             "command": ["sh", "-c", "echo never"],
                             "logConfiguration": awslogs(f"/fargo/none/{uuid.uuid4().hex}")}])
    task = wait_status(ecs, run(ecs, family, subnet_id)["taskArn"], "STOPPED", timeout=30)
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"] == NO_GROUP
    assert "exitCode" not in task["containers"][0]  # it never ran


def test_every_line_once_across_a_server_sigkill(fargo_servers, busybox_image):
    srv = fargo_servers(name="logkill")
    ecs, logs = srv.client(), srv.client("logs")
    subnet = srv.client("ec2").describe_subnets()["Subnets"][0]["SubnetId"]
    group = "/fargo/kill"
    logs.create_log_group(logGroupName=group)
    script = ("i=0; while [ $i -lt 30 ]; do seq $((i*1000)) $((i*1000+999)); i=$((i+1)); "
              "sleep 0.1; done")
    family = register(ecs, [{"name": "app", "image": busybox_image,
                             "command": ["sh", "-c", script],
                             "logConfiguration": awslogs(group)}])
    task = wait_status(ecs, run(ecs, family, subnet)["taskArn"], "RUNNING", timeout=30)
    tid = task["taskArn"].rsplit("/", 1)[-1]
    stream = f"ecs/app/{tid}"
    deadline = time.time() + 10
    while (before := len(events(logs, group, stream, 0, timeout=0))) < 2000:  # it has begun
        assert time.time() < deadline
        time.sleep(0.1)
    srv.kill()  # the task keeps writing meanwhile
    assert before < 20_000  # killed while it wrote and shipped
    time.sleep(1.0)
    srv.start()
    wait_status(ecs, task["taskArn"], "STOPPED", timeout=30)
    got = [e["message"] for e in events(logs, group, stream, 30_000)]
    assert got == [str(i) for i in range(30_000)]


@pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl is not installed")
def test_a_pods_output_through_the_aws_logging_configmap(fargo, busybox_image, tmp_path):
    eks, logs = fargo.client("eks"), fargo.client("logs")
    subnets = [s["SubnetId"] for s in fargo.client("ec2").describe_subnets()["Subnets"]]
    cluster = "logs" + uuid.uuid4().hex[:6]
    eks.create_cluster(name=cluster, roleArn="arn:aws:iam::000000000000:role/eks",
                       resourcesVpcConfig={"subnetIds": subnets})
    make_profile(eks, cluster, "apps", [{"namespace": "apps"}], subnets[:1])
    conf = subprocess.run([sys.executable, "-m", "fargo", "kubeconfig", cluster, "--endpoint",
                           fargo.endpoint], capture_output=True, text=True, cwd=ROOT,
                          env=fargo.env(), timeout=30)
    assert conf.returncode == 0, conf.stderr
    config = tmp_path / "kubeconfig"
    config.write_text(conf.stdout)
    group = f"/eks/{cluster}/pods"
    output = (f"[OUTPUT]\n    Name cloudwatch_logs\n    Match   *\n    region us-east-1\n"
              f"    log_group_name {group}\n    log_stream_prefix from-fluent-bit-\n"
              "    auto_create_group true\n    log_key log\n")
    parsers = ("[PARSER]\n    Name crio\n    Format Regex\n"
               "    Regex ^(?<time>[^ ]+) (?<stream>stdout|stderr) (?<logtag>P|F) (?<log>.*)$\n"
               "    Time_Key    time\n    Time_Format %Y-%m-%dT%H:%M:%S.%L%z\n")
    filters = "[FILTER]\n    Name parser\n    Match *\n    Key_name log\n    Parser crio\n"
    manifests = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": "aws-observability", "labels": {"aws-observability": "enabled"}}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "aws-logging", "namespace": "aws-observability"},
         "data": {"output.conf": output, "parsers.conf": parsers, "filters.conf": filters}}]
    for doc in manifests:
        kubectl_run(config, "apply", "-f", "-", stdin=json.dumps(doc))
    got = json.loads(kubectl_run(config, "get", "configmap", "aws-logging", "-n",
                                 "aws-observability", "-o", "json"))
    assert got["data"]["output.conf"] == output
    table = kubectl_run(config, "get", "cm", "-n", "aws-observability").split()
    assert table[:3] == ["NAME", "DATA", "AGE"] and table[3:5] == ["aws-logging", "3"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talker", "namespace": "apps"},
           "spec": {"restartPolicy": "Never", "containers": [{
               "name": "app", "image": busybox_image,
               "command": ["sh", "-c", "echo hello from pod; echo second line"]}]}}
    kubectl_run(config, "apply", "-f", "-", stdin=json.dumps(pod))
    deadline = time.time() + 30
    while True:
        state = json.loads(kubectl_run(config, "get", "pod", "talker", "-n", "apps", "-o",
                                       "json"))
        if (state.get("status") or {}).get("phase") == "Succeeded":
            break
        assert time.time() < deadline, state.get("status")
        time.sleep(0.2)
    assert state["metadata"]["annotations"]["Logging"] == "LoggingEnabled"
    cid = state["status"]["containerStatuses"][0]["containerID"].removeprefix("runc://")
    stream = f"from-fluent-bit-kube.var.log.containers.talker_apps_app-{cid}.log"
    assert [e["message"] for e in events(logs, group, stream, 2)] == ["hello from pod",
                                                                      "second line"]
    seen = kubectl_run(config, "get", "events", "-n", "apps")
    assert "LoggingEnabled" in seen and "Successfully enabled logging for pod" in seen
    assert "hello from pod" in kubectl_run(config, "logs", "talker", "-n", "apps")
    # The ConfigMap's other verbs, as kubectl drives them.
    kubectl_run(config, "patch", "cm", "aws-logging", "-n", "aws-observability", "--type",
                "merge", "-p", json.dumps({"data": {"flb_log_cw": "false"}}))
    got = json.loads(kubectl_run(config, "get", "cm", "aws-logging", "-n", "aws-observability",
                                 "-o", "json"))
    assert got["data"]["flb_log_cw"] == "false" and got["data"]["output.conf"] == output
    kubectl_run(config, "delete", "cm", "aws-logging", "-n", "aws-observability")
    gone = kubectl(config, "get", "cm", "aws-logging", "-n", "aws-observability")
    assert gone.returncode != 0 and "NotFound" in gone.stderr
