"""Property: whatever a client sends to an AWS face (ECS, EC2, EKS, Secrets Manager, SSM,
Cloud Map, ELBv2, CloudWatch Logs, Cost Explorer, CloudWatch metrics), fargo answers below
500, every error is in the face's own shape, and a refused request changes no state (issue
11, point 9). Requests are drawn from botocore's input shapes of every
operation in the faces' handler tables and sent by boto3, signed; malformed variants (wrong
types, bytes, bad encodings, unknown actions, odd paths and methods) are sent raw, signed
over exactly the bytes sent. One real server, a fixed number of examples, derandomized."""

from __future__ import annotations

import gzip
import json
import os
import zlib
from unittest.mock import MagicMock
from urllib.parse import quote, urlencode

import botocore.config
import botocore.exceptions
import cbor2
import pytest
from botocore import xform_name
from botocore.model import ListShape, MapShape, Shape, StructureShape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fargo.api import ce as ce_face
from fargo.api import cloudwatch as cw_face
from fargo.api import cwlogs as cwlogs_face
from fargo.api import ecs as ecs_face
from fargo.api import ecs_services, shapes
from fargo.api import elbv2 as elbv2_face
from fargo.api import secrets as secrets_face
from fargo.api import servicediscovery as sd_face
from fargo.api import ssm as ssm_face
from fargo.api.ec2 import Ec2Face
from fargo.api.eks import ROUTES
from tests.conftest import FargoServers
from tests.faceshapes import CW_JSON_TYPE, ECS_TARGET, FORM_TYPE, JSON_TYPE, SHAPES, send

# Every operation each face serves, read off its handler table.
OPS = {
    "ecs": sorted({**ecs_face.handlers(MagicMock()), **ecs_services.handlers(MagicMock())}),
    "ec2": sorted(Ec2Face.handlers(MagicMock(spec=Ec2Face))),
    "eks": sorted(op for op, _ in ROUTES.values()),
    "secretsmanager": sorted(secrets_face.handlers(MagicMock())),
    "ssm": sorted(ssm_face.handlers(MagicMock())),
    "servicediscovery": sorted(sd_face.handlers(MagicMock())),
    "elbv2": sorted(elbv2_face.handlers(MagicMock())),
}
# The observability faces: drawn apart (their own example count) so that their many refused
# operations do not thin out the draws of the faces above.
OBSERVE_OPS = {
    "logs": sorted(cwlogs_face.handlers(MagicMock())),
    "ce": sorted(ce_face.handlers(MagicMock())),
    "cloudwatch": sorted(shapes.service("cloudwatch").operation_names),
}
# boto3 speaks AWS JSON 1.0 to CloudWatch (botocore ranks it before CBOR); the raw variants
# are sent as CBOR, JSON 1.0 and query each under a face name of their own.
FACE = {"ecs": "json", "secretsmanager": "json", "ssm": "json", "ec2": "ec2", "eks": "eks",
        "servicediscovery": "json", "elbv2": "elbv2", "logs": "json", "ce": "json",
        "cloudwatch": "json", "cloudwatch-cbor": "cbor", "cloudwatch-query": "cwquery"}
SIGNING = {"elbv2": "elasticloadbalancing",  # a service whose SigV4 scope is another name
           "cloudwatch": "monitoring", "cloudwatch-cbor": "monitoring",
           "cloudwatch-query": "monitoring"}
TARGETS = {"ecs": ECS_TARGET, "secretsmanager": "secretsmanager.", "ssm": "AmazonSSM.",
           "servicediscovery": sd_face.PREFIX + ".", "logs": cwlogs_face.PREFIX + ".",
           "ce": ce_face.PREFIX + "."}
CALLS = [(svc, op) for svc, ops in OPS.items() for op in ops]
# The operations fargo serves drawn four times as often as those it refuses by name.
SERVED = {*ce_face.handlers(MagicMock()), *cw_face.handlers(MagicMock()),
          *(op for op, h in cwlogs_face.handlers(MagicMock()).items()
            if not h.__qualname__.startswith("_refuse."))}
OBSERVE_CALLS = [(svc, op) for svc, ops in OBSERVE_OPS.items() for op in ops
                 for _ in range(4 if op in SERVED else 1)]
READ_ONLY = ("Describe", "List", "Get", "Filter")
# Fixed and derandomized for CI; FARGO_FUZZ_EXAMPLES=5000 FARGO_FUZZ_RANDOM=1 hunts further.
SETTINGS = dict(max_examples=int(os.environ.get("FARGO_FUZZ_EXAMPLES", "250")), deadline=None,
                derandomize="FARGO_FUZZ_RANDOM" not in os.environ, database=None,
                print_blob=True, suppress_health_check=list(HealthCheck))
OBSERVE_SETTINGS = dict(SETTINGS, max_examples=int(os.environ.get("FARGO_FUZZ_EXAMPLES", "150")))
ROLE = "arn:aws:iam::000000000000:role/fuzz"
# VPC and subnet blocks a draw may name: only these, so that no bridge a subnet makes can
# take an address of this machine's own networks.
CIDRS = ["10.251.0.0/16", "10.251.1.0/24", "10.251.2.0/28", "10.0.0.0/8", "0.0.0.0/0",
         "300.1.1.1/24", "10.251.0.0/33", "bad", ""]
HOSTILE = ["", " ", "a" * 300, "../../etc/passwd", "a\x00b", "x\ny", "%ff", "\u00b2",
           "\U0001f600", "\udfff", "a\ud800", "*", "arn:aws:ecs:us-east-1:000000000000:cluster/",
           "-1", "1e999"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The server, its clients, and the names a draw may pick so that it reaches real
    objects: a cluster, a task definition, subnets, a group, an EKS cluster, a secret."""
    with FargoServers(tmp_path_factory.mktemp("fuzz")) as servers:
        srv = servers()
        # No host prefix: DiscoverInstances would go to data-127.0.0.1 otherwise.
        cfg = botocore.config.Config(retries={"total_max_attempts": 1}, inject_host_prefix=False)
        loose = botocore.config.Config(retries={"total_max_attempts": 1},
                                       parameter_validation=False, inject_host_prefix=False)
        checked = {svc: _client(srv, svc, cfg) for svc in {**OPS, **OBSERVE_OPS}}
        raw = {svc: _client(srv, svc, loose) for svc in {**OPS, **OBSERVE_OPS}}
        seen: dict[str, object] = {}  # whether a loose client sent, and the raw answer
        for c in raw.values():
            c.meta.events.register("before-send", lambda **kw: seen.update(sent=True))
            c.meta.events.register("after-call", lambda http_response, **kw:
                                   seen.update(r=http_response))
        ecs, ec2, eks, sm = (checked[s] for s in ("ecs", "ec2", "eks", "secretsmanager"))
        subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]]
        vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
        group = ec2.create_security_group(GroupName="fz", Description="fuzz", VpcId=vpc)
        cluster = ecs.create_cluster(clusterName="fz")["cluster"]["clusterArn"]
        td = ecs.register_task_definition(
            family="fz", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256",
            memory="512", containerDefinitions=[{"name": "a", "image": "127.0.0.1:9/none:1"}],
        )["taskDefinition"]["taskDefinitionArn"]
        # A service to reach, scaled to 0 (draws never scale one up: see shaped_call).
        ecs.create_service(cluster="fz", serviceName="fzs", taskDefinition=td, desiredCount=0,
                           networkConfiguration={"awsvpcConfiguration": {"subnets": subnets[:1]}})
        eks.create_cluster(name="fz", roleArn=ROLE, resourcesVpcConfig={"subnetIds": subnets})
        eks.create_fargate_profile(clusterName="fz", fargateProfileName="fzp",
                                   podExecutionRoleArn=ROLE, selectors=[{"namespace": "fz"}])
        secret = sm.create_secret(Name="fz-secret", SecretString="v")["ARN"]
        checked["ssm"].put_parameter(Name="/fz/param", Value="v", Type="SecureString",
                                     Tags=[{"Key": "k", "Value": "v"}])
        sd = checked["servicediscovery"]
        op = sd.create_private_dns_namespace(Name="fz.local", Vpc=vpc)["OperationId"]
        ns_id = sd.get_operation(OperationId=op)["Operation"]["Targets"]["NAMESPACE"]
        sd_svc = sd.create_service(Name="fzd", NamespaceId=ns_id, DnsConfig={
            "DnsRecords": [{"Type": "A", "TTL": 5}]})["Service"]
        sd.register_instance(ServiceId=sd_svc["Id"], InstanceId="fzi",
                             Attributes={"AWS_INSTANCE_IPV4": "10.0.0.1"})
        logs = checked["logs"]
        logs.create_log_group(logGroupName="/fz/logs")
        logs.create_log_stream(logGroupName="/fz/logs", logStreamName="fzl")
        logs.put_log_events(logGroupName="/fz/logs", logStreamName="fzl", logEvents=[
            {"timestamp": 1_700_000_000_000 + i, "message": f"line {i}"} for i in range(3)])
        checked["cloudwatch"].put_metric_data(Namespace="fz", MetricData=[
            {"MetricName": "fzm", "Value": 1.0, "Dimensions": [{"Name": "d", "Value": "v"}]}])
        a, b = srv.cidr.split(".")[:2]
        elb = checked["elbv2"]
        tg = elb.create_target_group(Name="fz", Protocol="HTTP", Port=80, VpcId=vpc,
                                     TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
        lb = elb.create_load_balancer(Name="fz", Scheme="internal", Subnets=subnets[:2])[
            "LoadBalancers"][0]["LoadBalancerArn"]
        listener = elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80,
                                       DefaultActions=[{"Type": "forward",
                                                        "TargetGroupArn": tg}])[
            "Listeners"][0]["ListenerArn"]
        rule = elb.create_rule(ListenerArn=listener, Priority=1, Conditions=[
            {"Field": "path-pattern", "Values": ["/fz/*"]}], Actions=[
            {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}])[
            "Rules"][0]["RuleArn"]
        elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": f"{a}.{b}.0.200"}])
        names = ["fz", "default", "fzp", "fzs", "fz-secret", "fz:1", ROLE, cluster, td, secret, vpc,
                 "/fz/param", "/fz", "Parameter", group["GroupId"], *subnets, "FARGATE", "RUNNING", "STOPPED",
                 f"{a}.{b}.192.0/20", "tcp", "-1", "sg-00000000000000000",
                 ns_id, sd_svc["Id"], sd_svc["Arn"], "fz.local", "fzd", "fzi",
                 "AWS_INSTANCE_IPV4", "AWS_INSTANCE_PORT",
                 tg, lb, listener, rule, f"{a}.{b}.0.200", "HTTP", "internal", "ip", "forward",
                 "path-pattern", "deregistration_delay.timeout_seconds",
                 "/fz/logs", "fzl", "fzm", "AWS/ECS", "SERVICE", "LINKED_ACCOUNT", "DAILY",
                 "UnblendedCost", "2026-01-01", "{ $.a = 1 }", "?ERROR ?WARN", "line"]
        yield {"srv": srv, "checked": checked, "raw": raw, "names": names, "seen": seen}


def _client(srv, service: str, config: botocore.config.Config):
    import boto3
    return boto3.client(service, endpoint_url=srv.endpoint, region_name="us-east-1",
                        aws_access_key_id=srv.key_id, aws_secret_access_key=srv.secret,
                        config=config)


# ---- the state a refused request must leave as it was
def _all(client, op: str, key: str, **kw) -> list:
    return [x for page in client.get_paginator(op).paginate(**kw) for x in page[key]]


def snapshot(c: dict) -> dict:
    ecs, ec2, eks, sm = (c[s] for s in ("ecs", "ec2", "eks", "secretsmanager"))
    arns = sorted(_all(ecs, "list_clusters", "clusterArns"))
    clusters = {d["clusterArn"]: (d["status"], sorted(map(str, d.get("tags", []))))
                for i in range(0, len(arns), 100)
                for d in ecs.describe_clusters(clusters=arns[i:i + 100],
                                               include=["TAGS"])["clusters"]}
    tds = {s: sorted(_all(ecs, "list_task_definitions", "taskDefinitionArns", status=s))
           for s in ("ACTIVE", "INACTIVE")}
    tasks = sorted(t for cl in ("default", "fz") if any(a.endswith("/" + cl) for a in arns)
                   for s in ("RUNNING", "STOPPED")
                   for t in _all(ecs, "list_tasks", "taskArns", cluster=cl, desiredStatus=s))
    services = {}
    for cl in ("default", "fz"):
        if not any(a.endswith("/" + cl) for a in arns):
            continue
        listed = _all(ecs, "list_services", "serviceArns", cluster=cl)
        for i in range(0, len(listed), 10):
            for s in ecs.describe_services(cluster=cl, services=listed[i:i + 10],
                                           include=["TAGS"])["services"]:
                if s["status"] != "ACTIVE":
                    continue  # DRAINING: on its way to INACTIVE on its own
                primary = next(d for d in s["deployments"] if d["status"] == "PRIMARY")
                for k in ("events", "deployments", "runningCount", "pendingCount"):
                    s.pop(k)  # what the scheduler moves on its own
                s["primary"] = primary["id"]
                services[s["serviceArn"]] = json.dumps(s, sort_keys=True, default=str)
    groups = {g["GroupId"]: json.dumps(g, sort_keys=True, default=str)
              for g in ec2.describe_security_groups()["SecurityGroups"]}
    nets = ([(v["VpcId"], v["CidrBlock"]) for v in ec2.describe_vpcs()["Vpcs"]],
            [(s["SubnetId"], s["CidrBlock"]) for s in ec2.describe_subnets()["Subnets"]])
    kube = {}
    for name in _all(eks, "list_clusters", "clusters"):
        if eks.describe_cluster(name=name)["cluster"]["status"] == "DELETING":
            continue  # on its way out on its own
        profiles = _all(eks, "list_fargate_profiles", "fargateProfileNames", clusterName=name)
        kube[name] = sorted(p for p in profiles if eks.describe_fargate_profile(
            clusterName=name, fargateProfileName=p)["fargateProfile"]["status"] != "DELETING")
    secrets = {s["Name"]: (s.get("Description"), str(s.get("Tags")), str(s.get("DeletedDate")))
               for s in sm.list_secrets()["SecretList"]}
    try:
        value = sm.get_secret_value(SecretId="fz-secret")
        secrets["fz-secret value"] = (value.get("SecretString"), value["VersionId"], "")
    except botocore.exceptions.ClientError as err:
        secrets["fz-secret value"] = (err.response["Error"]["Code"], "", "")
    ssm = c["ssm"]
    params = {p["Name"]: json.dumps(p, sort_keys=True, default=str)
              for p in _all(ssm, "describe_parameters", "Parameters")}
    try:
        value = ssm.get_parameter(Name="/fz/param", WithDecryption=True)["Parameter"]
        params["/fz/param value"] = json.dumps(value, sort_keys=True, default=str)
    except botocore.exceptions.ClientError as err:
        params["/fz/param value"] = err.response["Error"]["Code"]
    return {"clusters": clusters, "tds": tds, "tasks": tasks, "groups": groups, "nets": nets,
            "eks": kube, "secrets": secrets, "ssm": params, "services": services,
            "cloudmap": _cloudmap(c["servicediscovery"]), "elbv2": _elbv2(c["elbv2"]),
            "logs": _logs(c["logs"]), "metrics": sorted(
                json.dumps(m, sort_keys=True) for m in _all(c["cloudwatch"], "list_metrics",
                                                            "Metrics"))}


def _logs(logs) -> dict:
    """Every log group as described with its tags and streams, and the fixture's events."""
    out: dict[str, str] = {}
    for g in _all(logs, "describe_log_groups", "logGroups"):
        name = g["logGroupName"]
        streams = _all(logs, "describe_log_streams", "logStreams", logGroupName=name)
        tags = logs.list_tags_log_group(logGroupName=name)["tags"]
        out[name] = json.dumps([g, streams, tags], sort_keys=True, default=str)
    try:
        out["events"] = json.dumps(logs.get_log_events(
            logGroupName="/fz/logs", logStreamName="fzl", startFromHead=True)["events"])
    except botocore.exceptions.ClientError as err:
        out["events"] = err.response["Error"]["Code"]
    return out


def _elbv2(elb) -> dict:
    """Every ELBv2 record as described, less what moves on its own (a load balancer's
    State, target health, a draining target's going)."""
    out: dict[str, str] = {}
    for lb in _all(elb, "describe_load_balancers", "LoadBalancers"):
        lb.pop("State")
        arn = lb["LoadBalancerArn"]
        attrs = elb.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
        listeners = _all(elb, "describe_listeners", "Listeners", LoadBalancerArn=arn)
        rules = [elb.describe_rules(ListenerArn=x["ListenerArn"])["Rules"] for x in listeners]
        out[arn] = json.dumps([lb, attrs, listeners, rules], sort_keys=True, default=str)
    for tg in _all(elb, "describe_target_groups", "TargetGroups"):
        arn = tg["TargetGroupArn"]
        attrs = elb.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
        targets = sorted((d["Target"]["Id"], d["Target"].get("Port")) for d in
                         elb.describe_target_health(TargetGroupArn=arn)[
                             "TargetHealthDescriptions"]
                         if d["TargetHealth"]["State"] != "draining")
        out[arn] = json.dumps([tg, attrs, targets], sort_keys=True, default=str)
    arns = sorted(out)
    for i in range(0, len(arns), 20):
        for d in elb.describe_tags(ResourceArns=arns[i:i + 20])["TagDescriptions"]:
            out["tags " + d["ResourceArn"]] = json.dumps(d["Tags"], sort_keys=True)
    return out


def _cloudmap(sd) -> dict:
    """Cloud Map's namespaces, services (their tags) and instances."""
    out: dict = {}
    for ns in _all(sd, "list_namespaces", "Namespaces"):
        out[ns["Id"]] = json.dumps([ns, sd.list_tags_for_resource(ResourceARN=ns["Arn"])["Tags"]],
                                   sort_keys=True, default=str)
    for svc in _all(sd, "list_services", "Services"):
        out[svc["Id"]] = json.dumps([svc, sd.list_tags_for_resource(ResourceARN=svc["Arn"])["Tags"],
                                     _all(sd, "list_instances", "Instances",
                                          ServiceId=svc["Id"])], sort_keys=True, default=str)
    return out


class Judge:
    """Checks one answer; keeps the state last seen, so that each refused request is
    compared with the state just before it."""

    def __init__(self, world: dict):
        self.world = world
        self.state = snapshot(world["checked"])

    def answer(self, face: str, status: int, headers, body: bytes, mutating: bool,
               head: bool = False) -> None:
        assert status < 500, (status, body[:500])
        if status >= 400 and not head:
            SHAPES[face](status, headers, body)
        if status >= 400 or mutating:
            now = snapshot(self.world["checked"])
            if status >= 400:
                assert now == self.state, "a refused request changed the state"
            self.state = now


# ---- requests drawn from botocore's input shapes
def strategy(shape: Shape, names: list[str], member: str = "", depth: int = 0):
    kind = shape.type_name
    if isinstance(shape, StructureShape):
        if depth > 4:
            return st.just({})
        required = set(shape.required_members)
        fields = {k: strategy(m, names, k, depth + 1) for k, m in shape.members.items()
                  if not m.serialization.get("location") == "header"}
        return st.fixed_dictionaries({k: v for k, v in fields.items() if k in required},
                                     optional={k: v for k, v in fields.items()
                                               if k not in required})
    if isinstance(shape, ListShape):
        return st.lists(strategy(shape.member, names, member, depth + 1),
                        max_size=0 if depth > 4 else 2)
    if isinstance(shape, MapShape):
        return st.dictionaries(strategy(shape.key, names, member, depth + 1),
                               strategy(shape.value, names, member, depth + 1), max_size=2)
    if kind == "string":
        if "cidr" in member.lower():
            return st.sampled_from(CIDRS)
        plain = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
        pool = st.sampled_from(names + HOSTILE)
        if shape.enum:
            return st.one_of(st.sampled_from(shape.enum), pool)
        return st.one_of(pool, plain)
    if kind in ("integer", "long"):
        return st.one_of(st.integers(-5, 70000), st.sampled_from(
            [0, -1, 2 ** 31 - 1, 2 ** 31, -(2 ** 63), 2 ** 63, 10 ** 20]))
    if kind == "boolean":
        return st.booleans()
    if kind in ("float", "double"):
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if kind == "timestamp":
        return st.datetimes()
    if kind == "blob":
        return st.binary(max_size=16)
    return st.none()


@st.composite
def shaped_call(draw, world, calls=CALLS):
    service, op = draw(st.sampled_from(calls))
    model = shapes.operation(service, op)
    params = draw(strategy(model.input_shape, world["names"])) if model.input_shape else {}
    if op == "RunTask":  # what the engine starts: a couple of tasks at most
        params["count"] = min(params.get("count", 1), 2)
    if op in ("CreateService", "UpdateService") and 0 < params.get("desiredCount", 0) <= 5000:
        params["desiredCount"] = 0  # a service that starts no task (out-of-range ones stay)
    return service, op, params


@pytest.mark.parametrize("calls", ["aws", "observe"])
def test_shaped_requests(world, calls):
    judge = Judge(world)

    @settings(**(SETTINGS if calls == "aws" else OBSERVE_SETTINGS))
    @given(shaped_call(world, CALLS if calls == "aws" else OBSERVE_CALLS))
    def run(call):
        service, op, params = call
        client, seen = world["raw"][service], world["seen"]
        seen.clear()
        try:
            getattr(client, xform_name(op))(**params)
        except botocore.exceptions.ClientError:
            pass
        except (botocore.exceptions.ParamValidationError, TypeError, ValueError,
                UnicodeError, OverflowError):
            if "sent" in seen:
                raise
            return  # botocore itself cannot serialize it: nothing reached the server
        r = seen["r"]
        judge.answer(FACE[service], r.status_code, r.headers, r.content,
                     mutating=not op.startswith(READ_ONLY))

    run()


# ---- malformed variants, sent raw
_CBOR_OK = cbor2.dumps({"Namespace": "fz", "MetricData": [{"MetricName": "fzm", "Value": 1.0}]})
CBOR_BODIES = [
    _CBOR_OK[:-3], _CBOR_OK[:1],  # truncated
    cbor2.dumps([1, 2]), cbor2.dumps("text"), cbor2.dumps({"Namespace": 5}),  # wrong types
    cbor2.dumps({"MetricData": {"a": 1}}), cbor2.dumps({"MetricDataQueries": "x"}),
    b"\x81" * 5000 + b"\x00", b"\xa1\x61a" * 200 + b"\x00", b"\x9f" * 300,  # deep
    b"\x9b" + b"\xff" * 8, b"\xbb" + b"\xff" * 8, b"\x7b" + b"\xff" * 8,  # huge lengths
    b"\x5a\xff\xff\xff\xff", b"\xa1\x7a\x7f\xff\xff\xff", b"\x1b" + b"\xff" * 8,
    cbor2.dumps(cbor2.CBORTag(0, "2020-01-01T00:00:00Z")), cbor2.dumps(cbor2.CBORTag(2, b"\x01")),
    cbor2.dumps({"StartTime": cbor2.CBORTag(1, "now")}),
    cbor2.dumps({"StartTime": cbor2.CBORTag(1, 1e300), "EndTime": cbor2.CBORTag(1, -1e300)}),
    cbor2.dumps(cbor2.CBORTag(55799, {})), cbor2.dumps({"Namespace": cbor2.CBORTag(1, 1)}),
    b"\xa2\x69Namespace\x61a\x69Namespace\x61b",  # a duplicate key
    cbor2.dumps({1: 2}), cbor2.dumps({b"Namespace": "fz"}), b"\xa1\xf6\x00",  # non-text keys
    b"\xa1\x69Namespace\x62\xc3\x28", b"\xa1\x62\xff\xfe\x00",  # bad UTF-8
    b"\xbf\x69Namespace", b"\x7f\x61a\x41b\xff", b"\x5f\x5f\xff\xff", b"\xff", b"\xf8\x20",
    b"\x1c", b"\xf7", b"\xa1\x69Namespace\xf9\x7e\x00", _CBOR_OK + b"\x00",  # trailing
    cbor2.dumps({"Namespace": "fz", "MetricData": [{"MetricName": "m", "Value": float("nan")}]}),
    cbor2.dumps({"Namespace": "fz", "MetricData": [{"MetricName": "m",
                                                   "Values": [float("inf")], "Counts": [1e308]}]}),
    cbor2.dumps({"StartTime": 0, "EndTime": 2 ** 70, "Period": 2 ** 64 - 1,
                 "MetricDataQueries": [{"Id": "\u00e9", "Expression": "(" * 2000}]}),
]
QUERY_KEYS = ["Namespace", "MetricName", "MetricData.member.1.MetricName",
              "MetricData.member.1.Value", "MetricData.member.99999999.Value",
              "MetricData.member.1.Dimensions.member.1.Name", "MetricData.member.x.Value",
              "MetricData.member.1.Timestamp", "Dimensions.member.1.Name", "StartTime",
              "EndTime", "Period", "Statistics.member.1", "MetricDataQueries.member.1.Id",
              "MetricDataQueries.member.1.MetricStat.Period", "NextToken", "Colour",
              "MetricData.member.1.Values.member.1", "MetricData"]
QUERY_VALUES = ["NaN", "Infinity", "-1", "0", "1e999", "9" * 30, "2026-13-45T99:00:00Z",
                "fz", "fzm", "AWS/ECS", "", "\u00e9", "a" * 300, "\x00"]


@st.composite
def cloudwatch_variant(draw, op: str, body: bytes, names: list[str]):
    """One malformed request to CloudWatch in one of its three protocols."""
    kind = draw(st.sampled_from(["cbor", "cbor", "json", "query"]))
    if kind == "cbor":
        data = draw(st.one_of(
            st.sampled_from(CBOR_BODIES), st.binary(max_size=40),
            JSON_VALUES.map(cbor2.dumps), st.just(body)))
        path = draw(st.sampled_from([
            cw_face.CBOR_PATH + op, cw_face.CBOR_PATH + op, cw_face.CBOR_PATH + "LaunchRockets",
            f"/service/Other/operation/{op}", cw_face.CBOR_PATH + quote("\u00e9%00", safe="")]))
        data, headers = draw(encoded(data))
        headers.update({"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"})
        return "cloudwatch-cbor", op, "POST", path, data, headers
    if kind == "json":
        target = draw(st.sampled_from([cw_face.PREFIX + "." + op, cw_face.PREFIX + ".",
                                       cw_face.PREFIX + ".Nope"]))
        data, headers = draw(encoded(body))
        headers.update({"Content-Type": CW_JSON_TYPE, "X-Amz-Target": target})
        return "cloudwatch", op, "POST", "/", data, headers
    form = draw(st.dictionaries(st.sampled_from(QUERY_KEYS),
                                st.sampled_from(QUERY_VALUES + names), max_size=5))
    form["Action"] = draw(st.sampled_from([op, op, "LaunchRockets", ""]))
    form["Version"] = draw(st.sampled_from(["2010-08-01", "2010-08-01", "2011-01-01"]))
    if draw(st.booleans()):
        return "cloudwatch-query", op, "GET", "/?" + urlencode(form), b"", {}
    data = urlencode(form).encode() if draw(st.booleans()) else body
    data, headers = draw(encoded(data))
    return "cloudwatch-query", op, "POST", "/", data, {"Content-Type": FORM_TYPE, **headers}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3), max_leaves=8)
ODD_BODIES = [b'{"clusters": ["\\udfff"]}', b"[" * 3000, b'{"count": 1e999}', b"NaN",
              b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00", b'{"a": 1, "a": "b"}', b"", b"null"]


@st.composite
def encoded(draw, body: bytes) -> tuple[bytes, dict[str, str]]:
    coding = draw(st.sampled_from([None, None, "gzip", "deflate", "br", "identity", "x"]))
    if coding is None:
        return body, {}
    if coding in ("gzip", "deflate") and draw(st.booleans()):
        body = gzip.compress(body) if coding == "gzip" else zlib.compress(body)
    return body, {"Content-Encoding": coding}


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate: no URL or form can carry it
        return False
    return True


def _members(service: str, op: str) -> list[str]:
    """The input's member names, or a stand-in: some inputs have none."""
    shape = shapes.operation(service, op).input_shape
    return sorted(shape.members) if shape is not None and shape.members else ["x"]


@st.composite
def malformed(draw, world, calls=CALLS):
    service, op = draw(st.sampled_from(calls))
    names = [n for n in world["names"] + HOSTILE if _encodable(n)]
    body = draw(st.one_of(
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(st.sampled_from(_members(service, op)),
                        JSON_VALUES, max_size=3).map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=40), st.sampled_from(ODD_BODIES)))
    if service == "cloudwatch":
        return draw(cloudwatch_variant(op, body, names))
    if service in TARGETS:
        target = draw(st.one_of(st.just(TARGETS[service] + op), st.text(
            st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)))
        body, headers = draw(encoded(body))
        headers.update({"Content-Type": JSON_TYPE, "X-Amz-Target": target})
        return service, op, "POST", "/", body, headers
    if service == "ec2":
        form = draw(st.dictionaries(st.sampled_from(["Action", "Version", "GroupId",
                                                     "VpcId.1", "Filter.1.Name", "CidrBlock",
                                                     "IpPermissions.1.FromPort", "MaxResults"]),
                                    st.sampled_from(names), max_size=4))
        form["Action"] = draw(st.sampled_from([op, op, "LaunchRockets", ""]))
        if draw(st.booleans()):
            return service, op, "GET", "/?" + urlencode(form), b"", {}
        data = urlencode(form).encode() if draw(st.booleans()) else body
        data, headers = draw(encoded(data))
        return service, op, "POST", "/", data, {"Content-Type": FORM_TYPE, **headers}
    if service == "elbv2":
        form = draw(st.dictionaries(st.sampled_from([
            "Version", "Name", "Names.member.1", "TargetGroupArn", "Port", "Protocol",
            "Subnets.member.1", "Targets.member.1.Id", "Tags.member.1.Key", "PageSize",
            "Attributes.member.1.Key", "DefaultActions.member.1.Type", "Conditions",
            "Priority", "Marker", "Names.member.x", "Colour"]), st.sampled_from(names),
            max_size=4))
        form["Action"] = draw(st.sampled_from([op, op, "LaunchRockets", ""]))
        form.setdefault("Version", "2015-12-01")
        if draw(st.booleans()):
            return service, op, "GET", "/?" + urlencode(form), b"", {}
        data = urlencode(form).encode() if draw(st.booleans()) else body
        data, headers = draw(encoded(data))
        return service, op, "POST", "/", data, {"Content-Type": FORM_TYPE, **headers}
    method, path = draw(st.sampled_from(sorted(ROUTES)))
    label = st.one_of(st.sampled_from(names),
                      st.text(st.characters(exclude_categories=["Cs"]), max_size=20))
    path = path.replace("{name}", quote(draw(label), safe="")).replace(
        "{fargateProfileName}", quote(draw(label), safe=""))
    query = draw(st.dictionaries(st.sampled_from(["maxResults", "nextToken", "x"]),
                                 st.sampled_from(["1", "0", "abc", "-5", "9" * 30, ""]),
                                 max_size=2))
    method = draw(st.sampled_from([method, method, "GET", "POST", "PUT", "PATCH", "HEAD"]))
    body, headers = draw(encoded(body))
    return service, op, method, path + ("?" + urlencode(query) if query else ""), body, {
        "Content-Type": "application/json", **headers}


@pytest.mark.parametrize("calls", ["aws", "observe"])
def test_malformed_requests(world, calls):
    judge = Judge(world)
    srv = world["srv"]

    @settings(**(SETTINGS if calls == "aws" else OBSERVE_SETTINGS))
    @given(malformed(world, CALLS if calls == "aws" else OBSERVE_CALLS))
    def run(req):
        service, op, method, path, body, headers = req
        r = send(srv, method, path, body, headers, service=SIGNING.get(service, service))
        judge.answer(FACE[service], r.status_code, r.headers, r.content,
                     mutating=not op.startswith(READ_ONLY)
                     or (service == "eks" and method not in ("GET", "HEAD")),
                     head=method == "HEAD")

    run()
