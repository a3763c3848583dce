"""EKS's REST-JSON face with boto3's `eks` client: clusters, Fargate profiles and every
profile rule of FARGATE.md section 6, with the error shapes and HTTP statuses."""

from __future__ import annotations

import time
import uuid

import botocore.exceptions
import pytest

ROLE = "arn:aws:iam::000000000000:role/pods"


@pytest.fixture(scope="module")
def eks(fargo):
    return fargo.client("eks")


@pytest.fixture(scope="module")
def subnets(ec2) -> list[str]:
    return [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]]


@pytest.fixture(scope="module")
def cluster(eks, subnets):
    name = "c" + uuid.uuid4().hex[:8]
    eks.create_cluster(name=name, roleArn="arn:aws:iam::000000000000:role/eks",
                       resourcesVpcConfig={"subnetIds": subnets})
    yield name
    for p in eks.list_fargate_profiles(clusterName=name)["fargateProfileNames"]:
        eks.delete_fargate_profile(clusterName=name, fargateProfileName=p)
        wait_gone(eks, name, p)  # one DELETING at a time, as EKS allows
    eks.delete_cluster(name=name)


def wait_gone(eks, cluster: str, profile: str, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while profile in eks.list_fargate_profiles(clusterName=cluster)["fargateProfileNames"]:
        assert time.time() < deadline, "profiles never went away"
        time.sleep(0.1)


def fails(call, code: str, status: int, **kw) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call(**kw)
    resp = err.value.response
    assert resp["Error"]["Code"] == code, resp
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == status, resp
    return resp["Error"]["Message"]


def wait_active(eks, cluster: str, name: str, timeout: float = 10) -> dict:
    deadline = time.time() + timeout
    while True:
        p = eks.describe_fargate_profile(clusterName=cluster, fargateProfileName=name)
        if p["fargateProfile"]["status"] == "ACTIVE":
            return p["fargateProfile"]
        assert time.time() < deadline, p
        time.sleep(0.05)


def test_cluster_lifecycle_and_errors(eks, fargo, subnets):
    name = "c" + uuid.uuid4().hex[:8]
    out = eks.create_cluster(name=name, roleArn="arn:aws:iam::000000000000:role/eks",
                             resourcesVpcConfig={"subnetIds": subnets[:2]})["cluster"]
    assert out["status"] == "ACTIVE" and out["arn"].endswith(f":cluster/{name}")
    assert out["endpoint"] == f"https://127.0.0.1:{fargo.kube_port}/eks/{name}"
    assert "BEGIN CERTIFICATE" in __import__("base64").b64decode(
        out["certificateAuthority"]["data"]).decode()
    described = eks.describe_cluster(name=name)["cluster"]
    assert described["resourcesVpcConfig"]["subnetIds"] == subnets[:2]
    assert name in eks.list_clusters()["clusters"]
    fails(eks.create_cluster, "ResourceInUseException", 409, name=name, roleArn=ROLE,
          resourcesVpcConfig={"subnetIds": subnets})
    fails(eks.create_cluster, "InvalidParameterException", 400, name="x" + name, roleArn=ROLE,
          resourcesVpcConfig={"subnetIds": ["subnet-0000000000nothere"] + subnets})
    fails(eks.create_cluster, "InvalidParameterException", 400, name="y" + name, roleArn=ROLE,
          resourcesVpcConfig={"subnetIds": subnets[:1]})  # one zone only
    fails(eks.create_cluster, "InvalidParameterException", 400, name="-bad", roleArn=ROLE,
          resourcesVpcConfig={"subnetIds": subnets})
    assert eks.delete_cluster(name=name)["cluster"]["status"] == "DELETING"
    fails(eks.describe_cluster, "ResourceNotFoundException", 404, name=name)
    fails(eks.delete_cluster, "ResourceNotFoundException", 404, name=name)
    fails(eks.list_fargate_profiles, "ResourceNotFoundException", 404, clusterName=name)


def test_profile_lifecycle(eks, cluster, subnets):
    out = eks.create_fargate_profile(
        clusterName=cluster, fargateProfileName="web", podExecutionRoleArn=ROLE,
        subnets=subnets[:1], selectors=[{"namespace": "apps", "labels": {"tier": "web"}}],
        tags={"team": "a"})["fargateProfile"]
    assert out["status"] == "CREATING" and out["clusterName"] == cluster
    assert out["fargateProfileArn"].startswith(f"arn:aws:eks:us-east-1:000000000000:"
                                               f"fargateprofile/{cluster}/web/")
    active = wait_active(eks, cluster, "web")
    assert active["selectors"] == [{"namespace": "apps", "labels": {"tier": "web"}}]
    assert active["subnets"] == subnets[:1] and active["podExecutionRoleArn"] == ROLE
    # Without subnets: the cluster's.
    eks.create_fargate_profile(clusterName=cluster, fargateProfileName="all",
                               podExecutionRoleArn=ROLE, selectors=[{"namespace": "*"}])
    assert wait_active(eks, cluster, "all")["subnets"] == subnets
    names = eks.list_fargate_profiles(clusterName=cluster)["fargateProfileNames"]
    assert names == ["all", "web"]
    page = eks.list_fargate_profiles(clusterName=cluster, maxResults=1)
    assert page["fargateProfileNames"] == ["all"] and page["nextToken"]
    rest = eks.list_fargate_profiles(clusterName=cluster, nextToken=page["nextToken"])
    assert rest["fargateProfileNames"] == ["web"]
    # Immutable: the same name again is in use; a cluster with profiles cannot go.
    fails(eks.create_fargate_profile, "ResourceInUseException", 409, clusterName=cluster,
          fargateProfileName="web", podExecutionRoleArn=ROLE,
          selectors=[{"namespace": "other"}])
    fails(eks.delete_cluster, "ResourceInUseException", 409, name=cluster)
    deleted = eks.delete_fargate_profile(clusterName=cluster, fargateProfileName="all")
    assert deleted["fargateProfile"]["status"] == "DELETING"
    deadline = time.time() + 10
    while "all" in eks.list_fargate_profiles(clusterName=cluster)["fargateProfileNames"]:
        assert time.time() < deadline
        time.sleep(0.05)
    fails(eks.describe_fargate_profile, "ResourceNotFoundException", 404, clusterName=cluster,
          fargateProfileName="all")
    fails(eks.delete_fargate_profile, "ResourceNotFoundException", 404, clusterName=cluster,
          fargateProfileName="all")


@pytest.mark.parametrize("selectors,words", [
    ([{"namespace": f"n{i}"} for i in range(6)], "at most 5 selectors"),
    ([{"labels": {"a": "b"}}], "namespace"),
    ([], "at least one selector"),
    ([{"namespace": "a", "labels": {f"k{i}": "v" for i in range(6)}}], "at most 5 labels"),
])
def test_profile_selector_rules(eks, cluster, selectors, words):
    msg = fails(eks.create_fargate_profile, "InvalidParameterException", 400,
                clusterName=cluster, fargateProfileName="bad", podExecutionRoleArn=ROLE,
                selectors=selectors)
    assert words in msg


def signed(fargo, method: str, path: str, body: bytes):
    import requests
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method=method, url=fargo.endpoint + path, data=body,
                     headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(fargo.key_id, fargo.secret), "eks", "us-east-1").add_auth(req)
    return requests.request(method, fargo.endpoint + path, data=body,
                            headers=dict(req.headers.items()), timeout=10)


def test_profile_other_errors(eks, fargo, cluster, subnets):
    kw = {"clusterName": cluster, "podExecutionRoleArn": ROLE,
          "selectors": [{"namespace": "x"}]}
    fails(eks.create_fargate_profile, "InvalidParameterException", 400,
          fargateProfileName="nosubnet", subnets=["subnet-00000000000000000"], **kw)
    fails(eks.create_fargate_profile, "InvalidParameterException", 400,
          fargateProfileName="bad name!", **kw)
    fails(eks.create_fargate_profile, "ResourceNotFoundException", 404,
          fargateProfileName="p", clusterName="nosuchcluster", podExecutionRoleArn=ROLE,
          selectors=[{"namespace": "x"}])
    # The service model's check, on a request no SDK would send.
    r = signed(fargo, "POST", f"/clusters/{cluster}/fargate-profiles",
               b'{"fargateProfileName": "p", "podExecutionRoleArn": "r", '
               b'"selectors": [{"namespace": 5}]}')
    assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "InvalidParameterException"
    r = signed(fargo, "POST", f"/clusters/{cluster}/fargate-profiles", b"{not json")
    assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "BadRequestException"
    r = signed(fargo, "GET", f"/clusters/{cluster}/fargate-profiles?maxResults=abc", b"")
    assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "InvalidParameterException"
    assert "bad name!" not in eks.list_fargate_profiles(clusterName=cluster)[
        "fargateProfileNames"]


def test_raw_bad_requests_are_eks_errors(fargo, cluster):
    import requests

    url = f"{fargo.endpoint}/clusters/{cluster}/fargate-profiles"
    r = requests.post(url, data=b"{not json", timeout=5)
    # Unsigned: refused by the gate first, in the REST shape (403), never a 500.
    assert r.status_code in (400, 403) and r.headers.get("x-amzn-ErrorType"), r.text
