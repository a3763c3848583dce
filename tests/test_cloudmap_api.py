"""Cloud Map end to end: boto3 and the aws CLI against a real server; its names answered by the
VPC resolver, on the host's port and from inside a task."""

from __future__ import annotations

import json
import subprocess
import uuid

import boto3
import botocore.config
import botocore.exceptions
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import ROOT, wait_status
from tests.test_dns import addresses, ask, host_dns_port, resolver_of
from tests.test_tasks import detail, logs, register, run


@pytest.fixture(scope="module")
def sd(fargo):
    # DiscoverInstances is sent to data-HOST unless told not to (a custom endpoint has none).
    return boto3.client("servicediscovery", endpoint_url=fargo.endpoint, region_name="us-east-1",
                        aws_access_key_id=fargo.key_id, aws_secret_access_key=fargo.secret,
                        config=botocore.config.Config(inject_host_prefix=False))


@pytest.fixture(scope="module")
def vpc_id(ec2) -> str:
    return next(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v["IsDefault"])


def code(err: pytest.ExceptionInfo) -> str:
    return err.value.response["Error"]["Code"]


def namespace(sd, vpc_id: str, name: str | None = None, **kw) -> str:
    name = name or f"cm{uuid.uuid4().hex[:8]}.local"
    op = sd.create_private_dns_namespace(Name=name, Vpc=vpc_id, **kw)["OperationId"]
    got = sd.get_operation(OperationId=op)["Operation"]
    assert got["Status"] == "SUCCESS" and got["Type"] == "CREATE_NAMESPACE"
    return got["Targets"]["NAMESPACE"]


def cleanup(sd, ns_id: str) -> None:
    for s in sd.list_services(Filters=[{"Name": "NAMESPACE_ID", "Values": [ns_id]}])["Services"]:
        for i in sd.list_instances(ServiceId=s["Id"])["Instances"]:
            sd.deregister_instance(ServiceId=s["Id"], InstanceId=i["Id"])
        sd.delete_service(Id=s["Id"])
    sd.delete_namespace(Id=ns_id)


def test_namespace_service_instances_and_dns(sd, fargo, vpc_id):
    port = host_dns_port(fargo)
    name = f"cm{uuid.uuid4().hex[:8]}.local"
    ns_id = namespace(sd, vpc_id, name, Description="d", Tags=[{"Key": "team", "Value": "a"}],
                      Properties={"DnsProperties": {"SOA": {"TTL": 30}}})
    try:
        ns = sd.get_namespace(Id=ns_id)["Namespace"]
        assert (ns["Name"], ns["Type"], ns["Description"]) == (name, "DNS_PRIVATE", "d")
        assert ns["Properties"]["DnsProperties"]["SOA"] == {"TTL": 30}
        assert ns["Arn"].endswith(f":namespace/{ns_id}")
        assert sd.get_namespace(Id=ns["Arn"])["Namespace"]["Id"] == ns_id
        assert sd.list_tags_for_resource(ResourceARN=ns["Arn"])["Tags"] == [
            {"Key": "team", "Value": "a"}]
        listed = sd.list_namespaces(Filters=[{"Name": "NAME", "Values": [name]}])["Namespaces"]
        assert [n["Id"] for n in listed] == [ns_id]
        # The zone exists at once: its apex has an SOA, unknown names below it NXDOMAIN.
        soa = ask(port, name, "SOA")
        assert soa.rcode() == dns.rcode.NOERROR and soa.answer[0].rdtype == dns.rdatatype.SOA
        miss = ask(port, f"nosuch.{name}")
        assert miss.rcode() == dns.rcode.NXDOMAIN and miss.authority[0].ttl == 30

        svc = sd.create_service(
            Name="web", NamespaceId=ns_id, Description="the web tier",
            DnsConfig={"RoutingPolicy": "MULTIVALUE",
                       "DnsRecords": [{"Type": "A", "TTL": 10}, {"Type": "SRV", "TTL": 10}]},
            HealthCheckCustomConfig={"FailureThreshold": 1})["Service"]
        assert svc["Type"] == "DNS_HTTP" and svc["InstanceCount"] == 0
        assert svc["DnsConfig"]["DnsRecords"] == [{"Type": "A", "TTL": 10},
                                                  {"Type": "SRV", "TTL": 10}]
        sid = svc["Id"]
        with pytest.raises(botocore.exceptions.ClientError) as err:
            sd.create_service(Name="WEB", NamespaceId=ns_id,
                              DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 10}]})
        assert code(err) == "ServiceAlreadyExists"
        assert err.value.response["Error"].get("ServiceId") == sid or \
            sid in json.dumps(err.value.response)
        with pytest.raises(botocore.exceptions.ClientError) as err:
            sd.delete_namespace(Id=ns_id)
        assert code(err) == "ResourceInUse"

        ops = []
        for n, ip in enumerate(["10.1.0.5", "10.1.0.6", "10.1.0.7"]):
            ops.append(sd.register_instance(
                ServiceId=sid, InstanceId=f"i{n}",
                Attributes={"AWS_INSTANCE_IPV4": ip, "AWS_INSTANCE_PORT": str(8080 + n),
                            "color": "blue" if n else "green"})["OperationId"])
        op = sd.get_operation(OperationId=ops[0])["Operation"]
        assert op["Status"] == "SUCCESS" and op["Type"] == "REGISTER_INSTANCE"
        assert op["Targets"] == {"NAMESPACE": ns_id, "SERVICE": sid, "INSTANCE": "i0"}
        assert {o["Id"] for o in sd.list_operations(Filters=[
            {"Name": "SERVICE_ID", "Values": [sid]}])["Operations"]} == set(ops)
        assert sd.get_service(Id=sid)["Service"]["InstanceCount"] == 3
        inst = sd.get_instance(ServiceId=sid, InstanceId="i1")["Instance"]
        assert inst["Attributes"]["AWS_INSTANCE_IPV4"] == "10.1.0.6"
        assert len(sd.list_instances(ServiceId=sid)["Instances"]) == 3

        # DNS: service.namespace A and SRV, each SRV target an A of its instance.
        fq = f"web.{name}"
        assert addresses(ask(port, fq)) == {"10.1.0.5", "10.1.0.6", "10.1.0.7"}
        srv = ask(port, fq, "SRV", tcp=True)
        targets = sorted(r.to_text() for rrset in srv.answer for r in rrset)
        assert targets == [f"1 1 {8080 + n} i{n}.{fq}." for n in range(3)]
        assert addresses(ask(port, f"i1.{fq}")) == {"10.1.0.6"}
        assert ask(port, fq).answer[0].ttl == 10

        found = sd.discover_instances(NamespaceName=name, ServiceName="web",
                                      QueryParameters={"color": "blue"})
        assert sorted(i["InstanceId"] for i in found["Instances"]) == ["i1", "i2"]
        assert all(i["HealthStatus"] == "HEALTHY" for i in found["Instances"])
        rev = found["InstancesRevision"]
        sd.update_instance_custom_health_status(ServiceId=sid, InstanceId="i2",
                                                Status="UNHEALTHY")
        healthy = sd.discover_instances(NamespaceName=name, ServiceName="web",
                                        HealthStatus="HEALTHY")["Instances"]
        assert sorted(i["InstanceId"] for i in healthy) == ["i0", "i1"]
        assert sd.discover_instances(NamespaceName=name, ServiceName="web",
                                     HealthStatus="UNHEALTHY")["InstancesRevision"] > rev
        # An unhealthy instance leaves the DNS answers too.
        assert addresses(ask(port, fq)) == {"10.1.0.5", "10.1.0.6"}
        status = sd.get_instances_health_status(ServiceId=sid)["Status"]
        assert status == {"i0": "HEALTHY", "i1": "HEALTHY", "i2": "UNHEALTHY"}

        sd.deregister_instance(ServiceId=sid, InstanceId="i0")
        assert addresses(ask(port, fq)) == {"10.1.0.6"}
        with pytest.raises(botocore.exceptions.ClientError) as err:
            sd.deregister_instance(ServiceId=sid, InstanceId="i0")
        assert code(err) == "InstanceNotFound"
        with pytest.raises(botocore.exceptions.ClientError) as err:
            sd.delete_service(Id=sid)
        assert code(err) == "ResourceInUse"
        op = sd.update_service(Id=sid, Service={"Description": "new", "DnsConfig": {
            "DnsRecords": [{"Type": "A", "TTL": 99}, {"Type": "SRV", "TTL": 99}]}})
        assert sd.get_operation(OperationId=op["OperationId"])["Operation"]["Type"] == \
            "UPDATE_SERVICE"
        assert ask(port, fq).answer[0].ttl == 99
    finally:
        cleanup(sd, ns_id)
    assert ask(port, f"web.{name}").rcode() == dns.rcode.NXDOMAIN
    with pytest.raises(botocore.exceptions.ClientError) as err:
        sd.get_namespace(Id=ns_id)
    assert code(err) == "NamespaceNotFound"


def test_weighted_answers_one(sd, fargo, vpc_id):
    port = host_dns_port(fargo)
    name = f"cm{uuid.uuid4().hex[:8]}.internal"
    ns_id = namespace(sd, vpc_id, name)
    try:
        sid = sd.create_service(Name="api", NamespaceId=ns_id, DnsConfig={
            "RoutingPolicy": "WEIGHTED", "DnsRecords": [{"Type": "A", "TTL": 5}]})["Service"]["Id"]
        for n in range(4):
            sd.register_instance(ServiceId=sid, InstanceId=f"w{n}",
                                 Attributes={"AWS_INSTANCE_IPV4": f"10.2.0.{n + 10}"})
        seen = set()
        for _ in range(40):
            got = addresses(ask(port, f"api.{name}"))
            assert len(got) == 1
            seen |= got
        assert len(seen) > 1  # drawn per query
    finally:
        cleanup(sd, ns_id)


def test_refusals_by_name(sd, vpc_id):
    def refused(expect: str, fn, **kw) -> str:
        with pytest.raises(botocore.exceptions.ClientError) as err:
            fn(**kw)
        assert code(err) == expect, err.value.response
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        return err.value.response["Error"]["Message"]

    assert "Vpc" in refused("InvalidInput", sd.create_private_dns_namespace,
                            Name="x.local", Vpc="vpc-0000000000000000")
    refused("InvalidInput", sd.create_private_dns_namespace, Name="bad name!", Vpc=vpc_id)
    refused("InvalidInput", sd.create_private_dns_namespace, Name="a" * 64 + ".local",
            Vpc=vpc_id)
    name = f"cm{uuid.uuid4().hex[:8]}.local"
    ns_id = namespace(sd, vpc_id, name, CreatorRequestId="req-" + name)
    try:
        # The same request again is a retry: the same operation; another name with its id is
        # a DuplicateRequest; the same name otherwise NamespaceAlreadyExists.
        again = sd.create_private_dns_namespace(Name=name, Vpc=vpc_id,
                                                CreatorRequestId="req-" + name)
        assert sd.get_operation(OperationId=again["OperationId"])["Operation"]["Targets"][
            "NAMESPACE"] == ns_id
        refused("DuplicateRequest", sd.create_private_dns_namespace, Name="other." + name,
                Vpc=vpc_id, CreatorRequestId="req-" + name)
        refused("NamespaceAlreadyExists", sd.create_private_dns_namespace, Name=name.upper(),
                Vpc=vpc_id)
        refused("NamespaceNotFound", sd.get_namespace, Id="ns-nosuchnamespace0")
        refused("NamespaceNotFound", sd.create_service, Name="s", NamespaceId="ns-nosuch")
        refused("InvalidInput", sd.create_service, Name="s")
        refused("InvalidInput", sd.create_service, Name="s", NamespaceId=ns_id,
                DnsConfig={"DnsRecords": [{"Type": "CNAME", "TTL": 5}]})  # not WEIGHTED
        refused("InvalidInput", sd.create_service, Name="s", NamespaceId=ns_id,
                DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 5}, {"Type": "A", "TTL": 6}]})
        refused("InvalidInput", sd.create_service, Name="s", NamespaceId=ns_id,
                DnsConfig={"DnsRecords": [{"Type": "A", "TTL": 5}]},
                HealthCheckConfig={"Type": "HTTP", "ResourcePath": "/"})
        sid = sd.create_service(Name="s", NamespaceId=ns_id, DnsConfig={
            "DnsRecords": [{"Type": "SRV", "TTL": 5}]})["Service"]["Id"]
        for attrs in ({"AWS_INSTANCE_IPV4": "10.0.0.1"},  # SRV needs a port
                      {"AWS_INSTANCE_PORT": "80"},  # and an address
                      {"AWS_INSTANCE_IPV4": "999.0.0.1", "AWS_INSTANCE_PORT": "80"},
                      {"AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "70000"},
                      {"AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "80",
                       "AWS_ALIAS_DNS_NAME": "x.elb.amazonaws.com"},
                      {"AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "80",
                       "AWS_INIT_HEALTH_STATUS": "HEALTHY"},  # no custom health check
                      {"AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "80",
                       "AWS_NOSUCH": "1"},
                      {"AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "80",
                       **{f"k{n}": "v" for n in range(31)}}):
            refused("InvalidInput", sd.register_instance, ServiceId=sid, InstanceId="i",
                    Attributes=attrs)
        refused("InvalidInput", sd.register_instance, ServiceId=sid, InstanceId="x" * 64,
                Attributes={"AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "80"})
        refused("ServiceNotFound", sd.register_instance, ServiceId="srv-nosuch",
                InstanceId="i", Attributes={"AWS_INSTANCE_IPV4": "10.0.0.1"})
        refused("InstanceNotFound", sd.get_instance, ServiceId=sid, InstanceId="nope")
        refused("CustomHealthNotFound", _health, sd=sd, sid=sid)
        refused("InvalidInput", sd.update_service, Id=sid, Service={"DnsConfig": {
            "DnsRecords": [{"Type": "A", "TTL": 5}]}})  # the types cannot change
        refused("OperationNotFound", sd.get_operation, OperationId="nosuch")
        refused("InvalidInput", sd.list_namespaces,
                Filters=[{"Name": "TYPE", "Values": ["A", "B"], "Condition": "EQ"}])
        refused("InvalidInput", sd.list_services, NextToken="garbage")
        refused("ResourceNotFoundException", sd.list_tags_for_resource,
                ResourceARN="arn:aws:servicediscovery:us-east-1:000000000000:service/srv-x")
        arn = sd.get_service(Id=sid)["Service"]["Arn"]
        refused("InvalidInput", sd.tag_resource, ResourceARN=arn,
                Tags=[{"Key": "aws:x", "Value": "v"}])
        refused("TooManyTagsException", sd.tag_resource, ResourceARN=arn,
                Tags=[{"Key": f"k{n}", "Value": "v"} for n in range(51)])
        sd.tag_resource(ResourceARN=arn, Tags=[{"Key": "a", "Value": "1"}])
        sd.untag_resource(ResourceARN=arn, TagKeys=["a"])
        assert sd.list_tags_for_resource(ResourceARN=arn)["Tags"] == []
        refused("NamespaceNotFound", sd.discover_instances, NamespaceName="nosuch.local",
                ServiceName="s")
        refused("ServiceNotFound", sd.discover_instances, NamespaceName=name,
                ServiceName="nosuch")
    finally:
        cleanup(sd, ns_id)


def _health(sd, sid: str) -> None:
    sd.register_instance(ServiceId=sid, InstanceId="h",
                         Attributes={"AWS_INSTANCE_IPV4": "10.0.0.9", "AWS_INSTANCE_PORT": "80"})
    try:
        sd.update_instance_custom_health_status(ServiceId=sid, InstanceId="h",
                                                Status="UNHEALTHY")
    finally:
        sd.deregister_instance(ServiceId=sid, InstanceId="h")


def test_malformed_requests_never_500(fargo):
    target = {"Content-Type": "application/x-amz-json-1.1"}
    for action, body in (("CreateService", "{"), ("CreateService", "[]"),
                         ("RegisterInstance", '{"ServiceId": 5}'),
                         ("GetNamespace", "{}"), ("NoSuchAction", "{}"),
                         ("CreateService", '{"Name": "s", "NamespaceId": "ns-x", "DnsConfig": '
                          '{"DnsRecords": [{"Type": "A", "TTL": -1}]}}'),
                         ("ListNamespaces", '{"MaxResults": 100000}'),
                         ("DiscoverInstances", '{"NamespaceName": "a", "ServiceName": "' +
                          "x" * 5000 + '"}')):
        r = fargo.post(body, {**target, "X-Amz-Target": f"Route53AutoNaming_v20170314.{action}"},
                       service="servicediscovery")
        assert 400 <= r.status_code < 500, (action, r.status_code, r.text)
        assert r.json()["__type"], r.text
        if action in ("GetNamespace", "CreateService") and body.startswith('{"'):
            assert r.json()["__type"] == "InvalidInput", r.text


def test_http_namespace_and_cli_walkthrough(fargo, vpc_id):
    def aws(*args: str) -> dict:
        out = subprocess.run(["aws", "--endpoint-url", fargo.endpoint, "--output", "json",
                              "servicediscovery", *args], capture_output=True, text=True,
                             env={**fargo.env(), "AWS_DISABLE_HOST_PREFIX_INJECTION": "true"},
                             cwd=ROOT, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else {}

    name = f"cli{uuid.uuid4().hex[:8]}"
    op = aws("create-http-namespace", "--name", name)["OperationId"]
    ns_id = aws("get-operation", "--operation-id", op)["Operation"]["Targets"]["NAMESPACE"]
    sid = aws("create-service", "--name", "jobs", "--namespace-id", ns_id)["Service"]["Id"]
    aws("register-instance", "--service-id", sid, "--instance-id", "j1", "--attributes",
        "AWS_INSTANCE_IPV4=10.3.0.1,stage=prod")
    found = aws("discover-instances", "--namespace-name", name, "--service-name", "jobs",
                "--query-parameters", "stage=prod")
    assert [i["InstanceId"] for i in found["Instances"]] == ["j1"]
    assert found["Instances"][0]["HealthStatus"] == "UNKNOWN"
    aws("deregister-instance", "--service-id", sid, "--instance-id", "j1")
    aws("delete-service", "--id", sid)
    op = aws("delete-namespace", "--id", ns_id)["OperationId"]
    assert aws("get-operation", "--operation-id", op)["Operation"]["Status"] == "SUCCESS"


def test_names_resolve_from_inside_a_task(sd, ecs, fargo, vpc_id, busybox_image, subnet_id):
    """A task registered as an instance (as ECS's serviceRegistries do) is found by name from
    another task, through the resolver its resolv.conf names."""
    name = f"cm{uuid.uuid4().hex[:8]}.local"
    ns_id = namespace(sd, vpc_id, name)
    try:
        sid = sd.create_service(Name="backend", NamespaceId=ns_id, DnsConfig={
            "DnsRecords": [{"Type": "A", "TTL": 5}]})["Service"]["Id"]
        fam = register(ecs, busybox_image, command=["sh", "-c", "trap 'exit 0' TERM; "
                                                    "sleep 60 & wait"])
        backend = wait_status(ecs, run(ecs, fam, subnet_id)["taskArn"], "RUNNING")
        ip = detail(backend, "privateIPv4Address")
        sd.register_instance(ServiceId=sid, InstanceId=backend["taskArn"].rsplit("/", 1)[1],
                             Attributes={"AWS_INSTANCE_IPV4": ip})
        script = (f"busybox nslookup backend.{name}; echo ---; "
                  f"busybox nslookup backend.{name} {resolver_of(fargo)}; echo ---")
        fam2 = register(ecs, busybox_image, command=["sh", "-c", script])
        client = wait_status(ecs, run(ecs, fam2, subnet_id)["taskArn"], "STOPPED")
        out = logs(fargo, client["taskArn"])
        first, second = out.split("---")[:2]
        assert f"Address: {ip}" in first and f"Address: {ip}" in second, out
        ecs.stop_task(task=backend["taskArn"])
    finally:
        cleanup(sd, ns_id)


def test_private_namespaces_are_their_vpcs_own(sd, ec2, ecs, fargo, vpc_id, busybox_image):
    """A task in another VPC asks its own VPC's resolver (its base + 2) and sees that VPC's
    namespaces only."""
    import random

    cidr = f"10.{random.randint(200, 240)}.0.0/16"
    other = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=other, CidrBlock=cidr.replace("/16", "/24"))[
        "Subnet"]["SubnetId"]
    here, there = f"cm{uuid.uuid4().hex[:8]}.local", f"cm{uuid.uuid4().hex[:8]}.local"
    ns_here, ns_there = namespace(sd, vpc_id, here), namespace(sd, other, there)
    task_arn = None
    try:
        for ns_id, ip in ((ns_here, "10.1.2.3"), (ns_there, "10.1.2.4")):
            sid = sd.create_service(Name="db", NamespaceId=ns_id, DnsConfig={
                "DnsRecords": [{"Type": "A", "TTL": 5}]})["Service"]["Id"]
            sd.register_instance(ServiceId=sid, InstanceId="one",
                                 Attributes={"AWS_INSTANCE_IPV4": ip})
        script = (f"cat /etc/resolv.conf; busybox nslookup db.{there}; echo ---; "
                  f"busybox nslookup db.{here}; echo ---")
        fam = register(ecs, busybox_image, command=["sh", "-c", script])
        task_arn = run(ecs, fam, subnet)["taskArn"]
        wait_status(ecs, task_arn, "STOPPED", timeout=60)
        out = logs(fargo, task_arn)
        base = cidr.split("/")[0].rsplit(".", 1)[0] + ".2"
        assert f"nameserver {base}\n" in out, out
        mine, theirs = out.split("---")[:2]
        assert "Address: 10.1.2.4" in mine, out
        assert "10.1.2.3" not in theirs and ("NXDOMAIN" in theirs or "can't find" in theirs), out
    finally:
        cleanup(sd, ns_here)
        cleanup(sd, ns_there)
        if task_arn:
            wait_status(ecs, task_arn, "STOPPED", timeout=60)
        ec2.delete_subnet(SubnetId=subnet)
        ec2.delete_vpc(VpcId=other)
