"""Authentication: every AWS-protocol request must carry a valid SigV4 signature made with a key
fargo issued. Each attack is refused and changes nothing; the same request signed right works."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import uuid
from unittest import mock

import pytest
import requests

from tests.conftest import ROOT

ECS = {"Content-Type": "application/x-amz-json-1.1",
       "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.CreateCluster"}
EC2 = {"Content-Type": "application/x-www-form-urlencoded"}


def create_body(name: str) -> str:
    return json.dumps({"clusterName": name})


def cluster_names(ecs) -> set[str]:
    return {a.rsplit("/", 1)[-1] for a in ecs.list_clusters()["clusterArns"]}


@pytest.mark.parametrize("attack,code", [
    (dict(sign=False), "MissingAuthenticationTokenException"),
    (dict(secret="not-the-secret"), "InvalidSignatureException"),
    (dict(key_id="AKIAFORGEDFORGED0000"), "UnrecognizedClientException"),
    (dict(region="mars-north-9"), "InvalidSignatureException"),
    (dict(region="eu-west-1"), "InvalidSignatureException"),  # this endpoint is us-east-1
    (dict(service="ec2"), "InvalidSignatureException"),
])
def test_ecs_refuses(fargo, ecs, attack, code):
    name = "atk" + uuid.uuid4().hex[:8]
    r = fargo.post(create_body(name), ECS, **attack)
    assert r.status_code == 400, r.text
    assert r.json()["__type"] == code
    assert name not in cluster_names(ecs)  # nothing was created
    ok = fargo.post(create_body(name), ECS)
    assert ok.status_code == 200 and name in cluster_names(ecs)


def test_replayed_old_signature_refused(fargo, ecs):
    name = "old" + uuid.uuid4().hex[:8]
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=20)
    with mock.patch("botocore.auth.get_current_datetime", return_value=past):
        r = fargo.post(create_body(name), ECS)
    assert r.status_code == 400
    assert r.json()["__type"] == "InvalidSignatureException"
    assert "Signature expired" in r.json()["message"]
    assert name not in cluster_names(ecs)


def swap_body_after_signing(fargo, headers: dict[str, str], name: str) -> requests.Response:
    """Sign a harmless CreateCluster, then send the same headers with another body."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method="POST", url=fargo.endpoint + "/", data=create_body("harmless"),
                     headers=headers)
    SigV4Auth(Credentials(fargo.key_id, fargo.secret), "ecs", "us-east-1").add_auth(req)
    return requests.post(fargo.endpoint + "/", data=create_body(name),
                         headers=dict(req.headers.items()), timeout=10)


def test_tampered_body_refused(fargo, ecs):
    """A body changed after signing no longer matches the signature."""
    name = "tam" + uuid.uuid4().hex[:8]
    r = swap_body_after_signing(fargo, ECS, name)
    assert r.status_code == 400 and r.json()["__type"] == "InvalidSignatureException"
    assert name not in cluster_names(ecs)


def test_unsigned_payload_header_cannot_hide_a_new_body(fargo, ecs):
    """The signature covers the body through x-amz-content-sha256: it must match the body."""
    name = "pay" + uuid.uuid4().hex[:8]
    r = swap_body_after_signing(fargo, {**ECS, "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}, name)
    assert r.status_code == 400 and r.json()["__type"] == "InvalidSignatureException"
    assert name not in cluster_names(ecs)


@pytest.mark.parametrize("attack,status,code", [
    (dict(sign=False), 401, "AuthFailure"),
    (dict(secret="nope"), 403, "SignatureDoesNotMatch"),
    (dict(key_id="AKIAFORGEDFORGED0000"), 401, "AuthFailure"),
])
def test_ec2_refuses(fargo, attack, status, code):
    r = fargo.post("Action=DescribeVpcs&Version=2016-11-15", EC2, service="ec2", **attack)
    assert r.status_code == status
    assert f"<Code>{code}</Code>" in r.text
    assert fargo.post("Action=DescribeVpcs&Version=2016-11-15", EC2,
                      service="ec2").status_code == 200


def test_boto3_with_a_wrong_key(fargo):
    import boto3
    import botocore.exceptions

    bad = boto3.client("ecs", endpoint_url=fargo.endpoint, region_name="us-east-1",
                       aws_access_key_id=fargo.key_id, aws_secret_access_key="wrong")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        bad.list_clusters()
    assert exc.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_credentials_command_and_logs_need_a_key(fargo, tmp_path):
    out = subprocess.run([sys.executable, "-m", "fargo", "credentials", "--state-dir",
                          str(fargo.state_dir)], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.splitlines() == [f"export AWS_ACCESS_KEY_ID={fargo.key_id}",
                                       f"export AWS_SECRET_ACCESS_KEY={fargo.secret}"]
    missing = subprocess.run([sys.executable, "-m", "fargo", "credentials", "--state-dir",
                              str(tmp_path / "none")], capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 1 and "no fargo state" in missing.stderr
    env = fargo.env()
    env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    denied = subprocess.run([sys.executable, "-m", "fargo", "logs", uuid.uuid4().hex],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert denied.returncode == 1 and "signature" in denied.stderr.lower()


def test_no_auth_switch_is_loud(fargo_servers):
    srv = fargo_servers("--no-auth", name="open")
    assert "WARNING: --no-auth" in srv.log.read_text()
    r = srv.post(json.dumps({}), {**ECS, "X-Amz-Target":
                                  "AmazonEC2ContainerServiceV20141113.ListClusters"},
                 sign=False)
    assert r.status_code == 200


@pytest.mark.pure
def test_binds_loopback_by_default():
    from fargo.config import Settings

    assert Settings().host == "127.0.0.1"
    help_text = subprocess.run([sys.executable, "-m", "fargo", "server", "--help"],
                               capture_output=True, text=True, cwd=ROOT).stdout
    for flag in ("--host", "--port", "--state-dir", "--no-auth", "--overcommit",
                 "--no-registry", "--vpc-cidr", "--stopped-retention"):
        assert flag in help_text
