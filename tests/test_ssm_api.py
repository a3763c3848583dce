"""The SSM Parameter Store face driven with boto3, the aws CLI and raw signed requests against
a real `fargo server`: parameters, versions, paths, filters, paging, and AWS's refusals."""

from __future__ import annotations

import json
import subprocess
import uuid

import botocore.exceptions
import pytest

from tests.faceshapes import JSON_TYPE, json_error, send


def err(exc) -> tuple[str, str]:
    e = exc.value.response["Error"]
    return e["Code"], e["Message"]


@pytest.fixture(scope="module")
def ssm(fargo):
    return fargo.client("ssm")


@pytest.fixture
def root(ssm):
    """A fresh path of this test's own; whatever is left under it goes afterwards."""
    path = "/t" + uuid.uuid4().hex[:8]
    yield path
    names = [p["Name"] for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path=path, Recursive=True) for p in page["Parameters"]]
    for i in range(0, len(names), 10):
        ssm.delete_parameters(Names=names[i:i + 10])


def test_put_get_overwrite_and_versions(ssm, root):
    name = f"{root}/db/url"
    out = ssm.put_parameter(Name=name, Value="v1", Type="String", Description="the db")
    assert out == {"Version": 1, "Tier": "Standard", "ResponseMetadata": out["ResponseMetadata"]}
    p = ssm.get_parameter(Name=name)["Parameter"]
    assert (p["Name"], p["Type"], p["Value"], p["Version"], p["DataType"]) == \
        (name, "String", "v1", 1, "text")
    assert p["ARN"] == f"arn:aws:ssm:us-east-1:000000000000:parameter{name}"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ssm.put_parameter(Name=name, Value="v2", Type="String")
    assert err(exc)[0] == "ParameterAlreadyExists"
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == "v1"  # untouched
    assert ssm.put_parameter(Name=name, Value="v2", Overwrite=True)["Version"] == 2
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == "v2"
    old = ssm.get_parameter(Name=f"{name}:1")["Parameter"]
    assert (old["Value"], old["Version"], old["Selector"], old["Name"]) == ("v1", 1, ":1", name)
    assert ssm.get_parameter(Name=p["ARN"])["Parameter"]["Value"] == "v2"
    meta = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])
    [d] = meta["Parameters"]
    assert (d["Description"], d["Version"], d["Type"], d["Tier"]) == ("the db", 2, "String",
                                                                       "Standard")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ssm.get_parameter(Name=f"{name}:7")
    assert err(exc)[0] == "ParameterVersionNotFound"
    ssm.delete_parameter(Name=name)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ssm.get_parameter(Name=name)
    assert err(exc)[0] == "ParameterNotFound"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ssm.delete_parameter(Name=name)
    assert err(exc)[0] == "ParameterNotFound"


def test_secure_string_reads_only_with_decryption(ssm, root):
    name = f"{root}/token"
    ssm.put_parameter(Name=name, Value="very-secret-value", Type="SecureString")
    sealed = ssm.get_parameter(Name=name)["Parameter"]
    assert sealed["Type"] == "SecureString" and "very-secret" not in sealed["Value"]
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == sealed["Value"]  # stable
    assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == \
        "very-secret-value"
    [d] = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])[
        "Parameters"]
    assert d["KeyId"] == "alias/aws/ssm" and "Value" not in d
    by_path = ssm.get_parameters_by_path(Path=root)["Parameters"]
    assert [p["Value"] for p in by_path] == [sealed["Value"]]
    by_path = ssm.get_parameters_by_path(Path=root, WithDecryption=True)["Parameters"]
    assert [p["Value"] for p in by_path] == ["very-secret-value"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ssm.put_parameter(Name=f"{root}/k", Value="x", Type="SecureString",
                          KeyId="alias/my-own-key")
    assert err(exc)[0] == "InvalidKeyId"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ssm.put_parameter(Name=f"{root}/k", Value="x", Type="String", KeyId="alias/aws/ssm")
    assert err(exc)[0] == "ValidationException"


def test_get_parameters_lists_the_invalid(ssm, root):
    ssm.put_parameter(Name=f"{root}/a", Value="1", Type="String")
    ssm.put_parameter(Name=f"{root}/b", Value="x,y", Type="StringList")
    out = ssm.get_parameters(Names=[f"{root}/a", f"{root}/b", f"{root}/ghost",
                                    f"{root}/a:5", "bad name"])
    assert sorted((p["Name"], p["Value"]) for p in out["Parameters"]) == \
        [(f"{root}/a", "1"), (f"{root}/b", "x,y")]
    assert out["InvalidParameters"] == [f"{root}/ghost", f"{root}/a:5", "bad name"]
    out = ssm.delete_parameters(Names=[f"{root}/a", f"{root}/ghost"])
    assert out["DeletedParameters"] == [f"{root}/a"]
    assert out["InvalidParameters"] == [f"{root}/ghost"]


def test_paths_recursion_and_paging(ssm, root, fargo):
    names = [f"{root}/p{i:02d}" for i in range(13)] + [f"{root}/deep/x", f"{root}/deep/y/z"]
    for n in names:
        ssm.put_parameter(Name=n, Value=n[-3:], Type="String")
    one = ssm.get_parameters_by_path(Path=root)
    assert len(one["Parameters"]) == 10 and "NextToken" in one  # MaxResults defaults to 10
    level = [p["Name"] for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path=root + "/", PaginationConfig={"PageSize": 4}) for p in page["Parameters"]]
    assert level == names[:13]  # one level only, by name, each once
    deep = [p["Name"] for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path=root, Recursive=True) for p in page["Parameters"]]
    assert sorted(deep) == sorted(names)
    typed = ssm.get_parameters_by_path(Path=root, Recursive=True, ParameterFilters=[
        {"Key": "Type", "Option": "Equals", "Values": ["StringList"]}])
    assert typed["Parameters"] == []
    described = [p["Name"] for page in ssm.get_paginator("describe_parameters").paginate(
        ParameterFilters=[{"Key": "Path", "Option": "Recursive", "Values": [root]}],
        PaginationConfig={"PageSize": 5}) for p in page["Parameters"]]
    assert sorted(described) == sorted(names)
    begins = ssm.describe_parameters(Filters=[{"Key": "Name", "Values": [f"{root}/deep"]}])
    assert [p["Name"] for p in begins["Parameters"]] == [f"{root}/deep/x", f"{root}/deep/y/z"]
    # The aws CLI pages by itself.
    out = subprocess.run(["aws", "--endpoint-url", fargo.endpoint, "ssm",
                          "get-parameters-by-path", "--path", root, "--recursive",
                          "--output", "json"], capture_output=True, text=True,
                         env=fargo.env(), timeout=60, check=True)
    assert sorted(p["Name"] for p in json.loads(out.stdout)["Parameters"]) == sorted(names)


def test_tags_on_create(ssm, root):
    name = f"{root}/tagged"
    ssm.put_parameter(Name=name, Value="1", Type="String", Tags=[{"Key": "team", "Value": "a"}])
    assert ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"] == \
        [{"Key": "team", "Value": "a"}]
    found = ssm.describe_parameters(ParameterFilters=[
        {"Key": "tag:team", "Values": ["a"]}, {"Key": "Path", "Values": [root]}])
    assert [p["Name"] for p in found["Parameters"]] == [name]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ssm.put_parameter(Name=name, Value="2", Overwrite=True,
                          Tags=[{"Key": "team", "Value": "b"}])
    code, message = err(exc)
    assert code == "ValidationException" and "tags and overwrite" in message
    assert ssm.get_parameter(Name=name)["Parameter"]["Version"] == 1


@pytest.mark.parametrize("kw,code,needle", [
    ({"Name": "a/b"}, "ValidationException", "fully qualified"),
    ({"Name": "/a b"}, "ValidationException", "sub-path"),
    ({"Name": "/a//b"}, "ValidationException", "sub-path"),
    ({"Name": "/aws/mine"}, "ValidationException", "prefixed"),
    ({"Name": "SSM-thing"}, "ValidationException", "prefixed"),
    ({"Name": "/" + "/".join("l" * 16)}, "HierarchyLevelLimitExceededException", "15 levels"),
    ({"Name": "/" + "n" * 1000}, "ValidationException", "too long"),
    ({"Value": "x" * 4097}, "ValidationException", "Standard tier"),
    ({"Value": "x" * 8193, "Tier": "Advanced"}, "ValidationException", "8192"),
    ({"Value": ""}, "ValidationException", "value"),
    ({"Type": "Number"}, "ValidationException", "Type"),
    ({"Tier": "Gold"}, "ValidationException", "Tier"),
    ({"Description": "d" * 1025}, "ValidationException", "description"),
    ({"AllowedPattern": "^[0-9]+$"}, "ValidationException", "AllowedPattern"),
    ({"DataType": "aws:ec2:image"}, "ValidationException", "DataType"),
    ({"DataType": "json"}, "ValidationException", "data type"),
    ({"Policies": "[]"}, "ValidationException", "Policies"),
    ({"Tags": [{"Key": "aws:x", "Value": "1"}]}, "ValidationException", "reserved"),
    ({"Tags": [{"Key": "k!", "Value": "1"}]}, "ValidationException", "key"),
])
def test_put_refusals(ssm, root, kw, code, needle):
    args = {"Name": f"{root}/p", "Value": "v", "Type": "String", **kw}
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ssm.put_parameter(**args)
    assert err(exc)[0] == code
    assert needle in err(exc)[1]
    assert ssm.get_parameters_by_path(Path=root, Recursive=True)["Parameters"] == []


def test_a_type_is_needed_to_create(ssm, root):
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ssm.put_parameter(Name=f"{root}/untyped", Value="v")
    assert err(exc) == ("ValidationException",
                        "A parameter type is required when you create a parameter.")


@pytest.mark.parametrize("call,code", [
    (lambda s: s.describe_parameters(ParameterFilters=[{"Key": "Label", "Values": ["x"]}]),
     "InvalidFilterKey"),
    (lambda s: s.describe_parameters(ParameterFilters=[{"Key": "Colour", "Values": ["x"]}]),
     "InvalidFilterKey"),
    (lambda s: s.describe_parameters(ParameterFilters=[
        {"Key": "Name", "Option": "Regex", "Values": ["x"]}]), "InvalidFilterOption"),
    (lambda s: s.describe_parameters(ParameterFilters=[{"Key": "Type", "Values": ["Blob"]}]),
     "InvalidFilterValue"),
    (lambda s: s.describe_parameters(ParameterFilters=[{"Key": "Name"}]), "InvalidFilterValue"),
    (lambda s: s.describe_parameters(ParameterFilters=[
        {"Key": "Name", "Values": ["a"]}, {"Key": "Name", "Values": ["b"]}]), "InvalidFilterKey"),
    (lambda s: s.describe_parameters(Filters=[{"Key": "Name", "Values": ["a"]}],
                                     ParameterFilters=[{"Key": "Name", "Values": ["a"]}]),
     "ValidationException"),
    (lambda s: s.describe_parameters(Shared=True), "ValidationException"),
    (lambda s: s.describe_parameters(MaxResults=51), "ValidationException"),
    (lambda s: s.describe_parameters(NextToken="not-a-token"), "InvalidNextToken"),
    (lambda s: s.get_parameters_by_path(Path="/", ParameterFilters=[
        {"Key": "Name", "Values": ["x"]}]), "InvalidFilterKey"),
    (lambda s: s.get_parameters_by_path(Path="/", MaxResults=11), "ValidationException"),
    (lambda s: s.get_parameters_by_path(Path="no-slash"), "ValidationException"),
    (lambda s: s.get_parameter(Name="bad name"), "ValidationException"),
    (lambda s: s.get_parameter(Name="/x:not!a:label"), "ValidationException"),
    (lambda s: s.get_parameter(Name="/aws/service/none"), "ParameterNotFound"),
    (lambda s: s.get_parameter(Name="/x:label"), "ParameterNotFound"),
    (lambda s: s.get_parameters(Names=[f"/n{i}" for i in range(11)]), "ValidationException"),
    (lambda s: s.list_tags_for_resource(ResourceType="Document", ResourceId="x"),
     "InvalidResourceType"),
    (lambda s: s.list_tags_for_resource(ResourceType="Parameter", ResourceId="/none"),
     "InvalidResourceId"),
    (lambda s: s.put_compliance_items(ResourceId="i", ResourceType="ManagedInstance",
                                      ComplianceType="x", ExecutionSummary={
                                          "ExecutionTime": 0}, Items=[]),
     "UnsupportedFeatureException"),
])
def test_read_refusals(ssm, call, code):
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        call(ssm)
    assert err(exc)[0] == code


@pytest.mark.parametrize("body,code", [
    ({"Name": 5, "Value": "v", "Type": "String"}, "SerializationException"),
    ({"Name": "/w", "Value": ["v"], "Type": "String"}, "SerializationException"),
    ({"Name": "/w", "Value": "v", "Type": "String", "Overwrite": "yes"},
     "SerializationException"),
    ({"Value": "v", "Type": "String"}, "ValidationException"),  # no Name
    ({"Name": "", "Value": "v", "Type": "String"}, "ValidationException"),
    ({"Name": "/w", "Value": "v", "Type": "String", "Bogus": 1}, "SerializationException"),
])
def test_wrong_types_on_the_wire(fargo, ssm, body, code):
    r = send(fargo, "POST", "/", json.dumps(body).encode(),
             {"Content-Type": JSON_TYPE, "X-Amz-Target": "AmazonSSM.PutParameter"},
             service="ssm")
    assert json_error(r.status_code, r.headers, r.content) == code
    with pytest.raises(botocore.exceptions.ClientError):
        ssm.get_parameter(Name="/w")
