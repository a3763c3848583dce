"""Authentication as EKS does it: `aws eks update-kubeconfig` (CLI v2 and v1) and kubectl
through its `aws eks get-token` exec plugin; tokens fargo refuses (expired, forged, for
another cluster), built with botocore's presigner; fargo's STS (GetCallerIdentity,
AssumeRole) and the aws-auth ConfigMap mapping an assumed role; `kubectl auth whoami`.
The tests marked pure check the token and mapping rules alone."""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path
from unittest import mock

import boto3
import botocore.exceptions
import pytest
import requests
import yaml

from fargo.control import eksauth
from fargo.model import ekstoken
from tests.conftest import ROOT, FargoServer

KUBECTL = "/usr/bin/kubectl"
AWS_V2 = "/usr/bin/aws"
ACCOUNT = "000000000000"
NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
needs_tools = pytest.mark.skipif(not (os.path.exists(KUBECTL) and os.path.exists(AWS_V2)),
                                 reason="kubectl or the AWS CLI v2 is not installed")


def presign(cluster: str, key_id: str, secret: str, session_token: str | None = None, *,
            region: str = "us-east-1", at: datetime.datetime | None = None,
            endpoint: str | None = None, expires: int = 60) -> str:
    """A token as `aws eks get-token` makes it, with botocore's presigner (at: its clock)."""
    sts = boto3.client("sts", region_name=region, aws_access_key_id=key_id,
                       aws_secret_access_key=secret, aws_session_token=session_token,
                       endpoint_url=endpoint)

    def header(request: object, **_: object) -> None:
        request.headers[ekstoken.CLUSTER_HEADER] = cluster  # type: ignore[attr-defined]

    sts.meta.events.register("before-sign.sts.GetCallerIdentity", header)
    clock = mock.patch("botocore.auth.get_current_datetime",
                       return_value=at.astimezone(datetime.UTC).replace(tzinfo=None)) \
        if at else contextlib.nullcontext()
    with clock:
        url = sts.generate_presigned_url("get_caller_identity", ExpiresIn=expires,
                                         HttpMethod="GET")
    return ekstoken.PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def _url(token: str) -> str:
    body = token[len(ekstoken.PREFIX):]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def _token(url: str) -> str:
    return ekstoken.PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


# ---- the token's rules, pure
@pytest.mark.pure
def test_token_verifies_for_its_cluster_only():
    token = presign("web", "AKIAEXAMPLE", "s3cret", at=NOW)
    p = ekstoken.parse(token)
    assert (p.key_id, p.region, p.host, p.expires) == ("AKIAEXAMPLE", "us-east-1",
                                                       "sts.us-east-1.amazonaws.com", 60)
    ekstoken.check(p, now=NOW + datetime.timedelta(minutes=14), region="us-east-1",
                   own_host=False)
    ekstoken.verify_signature(p, "web", "s3cret")
    with pytest.raises(ekstoken.TokenError, match="another cluster"):
        ekstoken.verify_signature(p, "api", "s3cret")
    with pytest.raises(ekstoken.TokenError, match="does not match"):
        ekstoken.verify_signature(p, "web", "not-the-secret")
    with_session = ekstoken.parse(presign("web", "ASIAEXAMPLE", "s", "tok/en+", at=NOW))
    assert with_session.session_token == "tok/en+"
    ekstoken.verify_signature(with_session, "web", "s")


@pytest.mark.pure
@pytest.mark.parametrize("shift,region,words", [
    (datetime.timedelta(minutes=15, seconds=1), "us-east-1", "expired"),
    (-datetime.timedelta(minutes=6), "us-east-1", "ahead"),
    (datetime.timedelta(0), "eu-west-1", "region"),
])
def test_token_time_and_region(shift, region, words):
    p = ekstoken.parse(presign("web", "AKIAEXAMPLE", "s", at=NOW))
    with pytest.raises(ekstoken.TokenError, match=words):
        ekstoken.check(p, now=NOW + shift, region=region, own_host=False)


@pytest.mark.pure
def test_token_hosts():
    own = ekstoken.parse(presign("web", "AKIA1", "s", at=NOW, endpoint="http://127.0.0.1:9"))
    assert own.host == "127.0.0.1:9"
    ekstoken.check(own, now=NOW, region="us-east-1", own_host=True)
    with pytest.raises(ekstoken.TokenError, match="not an STS endpoint"):
        ekstoken.check(own, now=NOW, region="us-east-1", own_host=False)
    ekstoken.verify_signature(own, "web", "s")
    # The global endpoint signs for us-east-1, whatever region the server is.
    glob = ekstoken.parse(presign("web", "AKIA1", "s", at=NOW,
                                  endpoint="https://sts.amazonaws.com"))
    ekstoken.check(glob, now=NOW, region="us-west-2", own_host=False)


@pytest.mark.pure
@pytest.mark.parametrize("edit,words", [
    (lambda u: u.replace("Action=GetCallerIdentity", "Action=AssumeRole"), "Action"),
    (lambda u: u.replace("X-Amz-Expires=60", "X-Amz-Expires=901"), "X-Amz-Expires"),
    (lambda u: u.replace("X-Amz-Expires=60", "X-Amz-Expires=0"), "X-Amz-Expires"),
    (lambda u: u.replace("&X-Amz-Expires=60", ""), "lacks X-Amz-Expires"),
    (lambda u: u + "&Extra=1", "parameter 'Extra'"),
    (lambda u: u + "&Action=GetCallerIdentity", "repeats"),
    (lambda u: u.replace("host%3Bx-k8s-aws-id", "host"), "SignedHeaders"),
    (lambda u: u.replace("%2Fsts%2F", "%2Fs3%2F"), "credential"),
    (lambda u: u.replace("Version=2011-06-15", "Version=2012-01-01"), "Version"),
    (lambda u: u.replace("https://sts.us-east-1.amazonaws.com/", "https://x@h/"), "http"),
    (lambda u: u.replace(".com/?", ".com/other?"), "path"),
])
def test_token_form(edit, words):
    url = _url(presign("web", "AKIAEXAMPLE", "s", at=NOW))
    with pytest.raises(ekstoken.TokenError, match=words):
        ekstoken.parse(_token(edit(url)))


@pytest.mark.pure
@pytest.mark.parametrize("token", ["k8s-aws-v1.", "k8s-aws-v1.***", "k8s-aws-v1.a",
                                   "k8s-aws-v1.//8", "Bearer", "k8s-aws-v1." + "A" * 5000,
                                   _token("not a url at all")])
def test_token_garbage(token):
    with pytest.raises(ekstoken.TokenError):
        ekstoken.parse(token)


@pytest.mark.pure
def test_token_mutations_only_refused():
    """Any byte of a real token's URL changed: parsed or refused by TokenError, never
    anything else, and never verified."""
    url = _url(presign("web", "AKIAEXAMPLE", "s", at=NOW))
    rng = random.Random(7)
    for _ in range(300):
        chars = list(url)
        at = rng.randrange(len(chars))
        chars[at] = rng.choice("%&=?/:@[]#+ \x00\u00e9aZ9")
        try:
            p = ekstoken.parse(_token("".join(chars)))
            ekstoken.check(p, now=NOW, region="us-east-1", own_host=False)
        except ekstoken.TokenError:
            continue
        if "".join(chars) != url:
            with pytest.raises(ekstoken.TokenError):
                ekstoken.verify_signature(p, "web", "s")


@pytest.mark.pure
def test_identities():
    root = ekstoken.identity(f"arn:aws:iam::{ACCOUNT}:root", "AKIA1")
    assert (root.arn, root.user_id, root.session) == (f"arn:aws:iam::{ACCOUNT}:root",
                                                      ACCOUNT, None)
    assumed = ekstoken.identity(f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice", "ASIA1")
    assert assumed.canonical_arn == f"arn:aws:iam::{ACCOUNT}:role/dev"
    assert assumed.user_id.startswith("AROA") and assumed.user_id.endswith(":alice")
    assert len(assumed.user_id.split(":")[0]) == 21
    task = ekstoken.identity(f"arn:aws:iam::{ACCOUNT}:role/svc/app", "ASIA2")
    assert task.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/app/ASIA2"
    assert ekstoken.canonical(f"arn:aws:iam::{ACCOUNT}:role/a/b/Dev") == \
        f"arn:aws:iam::{ACCOUNT}:role/dev"


AWS_AUTH = {
    "mapRoles": yaml.safe_dump([
        {"rolearn": f"arn:aws:iam::{ACCOUNT}:role/Dev", "username": "dev:{{SessionName}}",
         "groups": ["devs"]},
        {"rolearn": f"arn:aws:iam::{ACCOUNT}:role/node",
         "username": "system:node:{{EC2PrivateDNSName}}", "groups": ["system:nodes"]}]),
    "mapUsers": yaml.safe_dump([{"userarn": f"arn:aws:iam::{ACCOUNT}:user/ops/bob",
                                 "username": "bob"}]),
}


@pytest.mark.pure
def test_mapping():
    auth = eksauth.read_aws_auth(AWS_AUTH)
    root_arn = f"arn:aws:iam::{ACCOUNT}:root"
    root = ekstoken.identity(root_arn, "AKIA1")
    admin = eksauth.map_identity(root, creator=root_arn, creator_admin=True, aws_auth=None)
    assert admin is not None and admin.groups == (eksauth.MASTERS, eksauth.AUTHENTICATED)
    assert eksauth.map_identity(root, creator=None, creator_admin=True, aws_auth=auth) is None
    dev = ekstoken.identity(f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev/a@b.c", "ASIA1")
    user = eksauth.map_identity(dev, creator=root_arn, creator_admin=True, aws_auth=auth)
    assert user is not None
    assert (user.username, user.groups) == ("dev:a-b.c", ("devs", eksauth.AUTHENTICATED))
    assert user.user_info()["extra"]["sessionName"] == ["a@b.c"]
    # A role the creator assumed is the creator too: EKS compares roles, not sessions.
    again = eksauth.map_identity(dev, creator=f"arn:aws:iam::{ACCOUNT}:role/dev",
                                 creator_admin=True, aws_auth=None)
    assert again is not None and eksauth.MASTERS in again.groups
    node = ekstoken.identity(f"arn:aws:sts::{ACCOUNT}:assumed-role/node/i-1", "ASIA2")
    assert eksauth.map_identity(node, creator=None, creator_admin=True, aws_auth=auth) is None
    bob = ekstoken.identity(f"arn:aws:iam::{ACCOUNT}:user/ops/bob", "AKIA2")
    mapped = eksauth.map_identity(bob, creator=None, creator_admin=True, aws_auth=auth)
    assert mapped is not None and mapped.username == "bob"
    anyone = eksauth.read_aws_auth({"mapAccounts": f"- '{ACCOUNT}'\n"})
    other = eksauth.map_identity(bob, creator=None, creator_admin=True, aws_auth=anyone)
    assert other is not None and other.username == bob.arn


@pytest.mark.pure
@pytest.mark.parametrize("data,words", [
    ({"mapRoles": "- rolearn: [unclosed"}, "not YAML"),
    ({"mapRoles": "rolearn: x"}, "not a YAML list"),
    ({"mapRoles": "- username: x"}, "no rolearn"),
    ({"mapRoles": "- rolearn: x\n  groups: devs"}, "groups"),
    ({"mapRoles": "- &a {rolearn: x}\n- *a"}, "aliases"),
])
def test_bad_aws_auth(data, words):
    with pytest.raises(ValueError, match=words):
        eksauth.read_aws_auth(data)


# ---- as a user drives it
@pytest.fixture(scope="module")
def eks(fargo: FargoServer):
    return fargo.client("eks")


@pytest.fixture(scope="module")
def cluster(eks, fargo: FargoServer) -> str:
    name = "auth" + uuid.uuid4().hex[:6]
    subnets = [s["SubnetId"] for s in fargo.client("ec2").describe_subnets()["Subnets"]]
    eks.create_cluster(name=name, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks",
                       resourcesVpcConfig={"subnetIds": subnets})
    yield name
    eks.delete_cluster(name=name)


@pytest.fixture(scope="module")
def aws_bin(tmp_path_factory) -> Path:
    """A PATH entry whose `aws` is the CLI v2 (the exec plugin kubectl runs is `aws`)."""
    path = tmp_path_factory.mktemp("awsv2")
    (path / "aws").symlink_to(AWS_V2)
    return path


def env(fargo: FargoServer, *, path: Path | None = None, **extra: str) -> dict[str, str]:
    out = fargo.env()
    for name in ("AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_PROFILE", "KUBECONFIG"):
        out.pop(name, None)
    if path is not None:
        out["PATH"] = f"{path}:{out['PATH']}"
    out.update(extra)
    return out


def run(cmd: list[str], environ: dict[str, str], timeout: float = 60) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, env=environ, timeout=timeout)
    assert out.returncode == 0, f"{cmd}: {out.stderr}"
    return out.stdout


def kubectl(config: Path, environ: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(config), *args], capture_output=True,
                          text=True, env=environ, timeout=60)


def api(fargo: FargoServer, cluster: str, token: str, path: str = "/api/v1/namespaces"):
    ca = fargo.state_dir / "tls" / "ca.pem"
    return requests.get(f"https://127.0.0.1:{fargo.kube_port}/eks/{cluster}{path}",
                        headers={"Authorization": f"Bearer {token}"}, verify=str(ca),
                        timeout=10)


def refused(resp: requests.Response) -> None:
    assert resp.status_code == 401, resp.text
    body = resp.json()
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "Unauthorized", 401)


@needs_tools
def test_update_kubeconfig_v2_then_kubectl(fargo, eks, cluster, aws_bin, tmp_path):
    config = tmp_path / "config"
    e = env(fargo, path=aws_bin)
    run([AWS_V2, "eks", "update-kubeconfig", "--name", cluster, "--kubeconfig", str(config),
         "--endpoint-url", fargo.endpoint], e)
    doc = yaml.safe_load(config.read_text())
    found = eks.describe_cluster(name=cluster)["cluster"]
    entry = doc["clusters"][0]["cluster"]
    assert entry["server"] == found["endpoint"] == \
        f"https://127.0.0.1:{fargo.kube_port}/eks/{cluster}"
    assert entry["certificate-authority-data"] == found["certificateAuthority"]["data"]
    user = doc["users"][0]["user"]["exec"]
    assert user["command"] == "aws"
    assert user["args"][:6] == ["--region", "us-east-1", "eks", "get-token", "--cluster-name",
                                cluster]  # and newer CLIs add --output json
    assert "env" not in user  # no profile: the credentials come from the environment
    out = kubectl(config, e, "get", "ns", "-o", "name")
    assert out.returncode == 0, out.stderr
    assert "namespace/kube-system" in out.stdout.split()
    out = kubectl(config, e, "get", "pods", "-n", "default")
    assert out.returncode == 0 and "No resources found" in out.stderr, out.stderr
    who = kubectl(config, e, "auth", "whoami", "-o", "json")
    assert who.returncode == 0, who.stderr
    info = json.loads(who.stdout)["status"]["userInfo"]
    assert info["username"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert info["groups"] == ["system:masters", "system:authenticated"]
    assert info["extra"]["accessKeyId"] == [fargo.key_id]
    # The exec plugin presigns on this machine alone: it works with no network at all.
    token = run(["unshare", "-n", AWS_V2, "--region", "us-east-1", "eks", "get-token",
                 "--cluster-name", cluster, "--output", "json"], e)
    assert api(fargo, cluster, json.loads(token)["status"]["token"]).status_code == 200


@needs_tools
def test_update_kubeconfig_v1_with_endpoint_env(fargo, cluster, tmp_path):
    config = tmp_path / "config"
    e = env(fargo, AWS_ENDPOINT_URL=fargo.endpoint)  # `aws` on PATH: the CLI v1
    run([sys.executable, "-m", "awscli", "eks", "update-kubeconfig", "--name", cluster,
         "--kubeconfig", str(config)], e)
    out = kubectl(config, e, "get", "ns", "kube-system", "-o", "jsonpath={.metadata.name}")
    assert (out.returncode, out.stdout) == (0, "kube-system"), out.stderr
    # `fargo kubeconfig`'s own token keeps working beside EKS's.
    own = subprocess.run([sys.executable, "-m", "fargo", "kubeconfig", cluster, "--endpoint",
                          fargo.endpoint], capture_output=True, text=True, cwd=ROOT,
                         env=fargo.env(), timeout=30)
    assert own.returncode == 0, own.stderr
    token = yaml.safe_load(own.stdout)["users"][0]["user"]["token"]
    assert api(fargo, cluster, token).status_code == 200
    refused(api(fargo, cluster, token + "x"))


def test_bad_tokens_refused(fargo, eks, cluster):
    key, secret = fargo.key_id, fargo.secret
    now = datetime.datetime.now(datetime.UTC)
    assert api(fargo, cluster, presign(cluster, key, secret)).status_code == 200
    assert api(fargo, cluster, presign(cluster, key, secret,
                                       at=now - datetime.timedelta(minutes=14))).ok
    bad = [
        presign(cluster, key, secret, at=now - datetime.timedelta(minutes=16)),  # expired
        presign(cluster, key, secret, at=now + datetime.timedelta(minutes=10)),  # ahead
        presign(cluster, key, "forged-secret"),
        presign(cluster, "AKIANOSUCHKEY0000000", secret),
        presign("other-" + cluster, key, secret),  # signed for another cluster
        presign(cluster, key, secret, region="eu-west-1"),
        presign(cluster, key, secret, expires=3600),
        presign(cluster, key, secret, session_token="not-a-session"),
        _token(_url(presign(cluster, key, secret)).replace("GetCallerIdentity", "GetX")),
        "k8s-aws-v1.%%%", "k8s-aws-v1." + "A" * 10000, "", "fargo.not-the-token",
    ]
    for token in bad:
        refused(api(fargo, cluster, token))
    refused(api(fargo, "no-such-cluster", presign("no-such-cluster", key, secret)))


def test_sts_face(fargo):
    sts = fargo.client("sts")
    me = sts.get_caller_identity()
    assert (me["Account"], me["Arn"], me["UserId"]) == (ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root",
                                                        ACCOUNT)
    if os.path.exists(AWS_V2):
        out = json.loads(run([AWS_V2, "sts", "get-caller-identity", "--endpoint-url",
                              fargo.endpoint], env(fargo)))
        assert out["Arn"] == me["Arn"]
    got = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/path/Dev",
                          RoleSessionName="s1", DurationSeconds=900, SourceIdentity="me")
    creds = got["Credentials"]
    left = creds["Expiration"] - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(minutes=14) < left <= datetime.timedelta(minutes=15)
    assert got["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev/s1"
    assert got["SourceIdentity"] == "me"
    session = boto3.Session(aws_access_key_id=creds["AccessKeyId"],
                            aws_secret_access_key=creds["SecretAccessKey"],
                            aws_session_token=creds["SessionToken"], region_name="us-east-1")
    as_role = session.client("sts", endpoint_url=fargo.endpoint).get_caller_identity()
    assert as_role["Arn"] == got["AssumedRoleUser"]["Arn"]
    assert as_role["UserId"] == got["AssumedRoleUser"]["AssumedRoleId"]
    eks = session.client("eks", endpoint_url=fargo.endpoint)
    eks.list_clusters()  # temporary credentials describe and list
    with pytest.raises(botocore.exceptions.ClientError) as err:
        eks.delete_cluster(name="x")
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(botocore.exceptions.ClientError) as err:  # no role chaining
        session.client("sts", endpoint_url=fargo.endpoint).assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/Dev", RoleSessionName="s2")
    assert err.value.response["Error"]["Code"] == "AccessDenied"

    def error(call, **kw) -> tuple[str, int]:
        with pytest.raises(botocore.exceptions.ClientError) as err:
            call(**kw)
        return err.value.response["Error"]["Code"], \
            err.value.response["ResponseMetadata"]["HTTPStatusCode"]

    role = f"arn:aws:iam::{ACCOUNT}:role/Dev"
    assert error(sts.get_session_token) == ("InvalidAction", 400)
    assert error(sts.assume_role, RoleArn=role, RoleSessionName="s9",
                 Policy="{}") == ("ValidationError", 400)
    assert error(sts.assume_role, RoleArn=role, RoleSessionName="bad name!") == \
        ("ValidationError", 400)
    assert error(sts.assume_role, RoleArn=role, RoleSessionName="s2",
                 DurationSeconds=7200) == ("ValidationError", 400)
    assert error(sts.assume_role, RoleArn="arn:aws:iam::123456789012:role/x",
                 RoleSessionName="s2") == ("AccessDenied", 403)
    assert error(sts.assume_role, RoleArn=f"arn:aws:iam::{ACCOUNT}:user/bob",
                 RoleSessionName="s2") == ("ValidationError", 400)
    stranger = boto3.client("sts", endpoint_url=fargo.endpoint, region_name="us-east-1",
                            aws_access_key_id="AKIANOSUCHKEY0000000",
                            aws_secret_access_key="x")
    assert error(stranger.get_caller_identity) == ("InvalidClientTokenId", 403)
    raw = fargo.post("Action=GetCallerIdentity&Version=2011-06-15&Extra=1",
                     {"Content-Type": "application/x-www-form-urlencoded"}, service="sts")
    assert raw.status_code == 400 and "<Code>ValidationError</Code>" in raw.text
    assert 'xmlns="https://sts.amazonaws.com/doc/2011-06-15/"' in raw.text


@needs_tools
def test_assumed_role_mapped_by_aws_auth(fargo, cluster, aws_bin, tmp_path):
    config = tmp_path / "config"
    admin = env(fargo, path=aws_bin)
    run([AWS_V2, "eks", "update-kubeconfig", "--name", cluster, "--kubeconfig", str(config),
         "--endpoint-url", fargo.endpoint], admin)
    creds = fargo.client("sts").assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/Dev",
                                            RoleSessionName="alice@example.com")["Credentials"]
    dev = env(fargo, path=aws_bin, AWS_ACCESS_KEY_ID=creds["AccessKeyId"],
              AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"],
              AWS_SESSION_TOKEN=creds["SessionToken"])
    out = kubectl(config, dev, "get", "ns")
    assert out.returncode != 0 and "Unauthorized" in out.stderr  # not mapped yet
    aws_auth = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "aws-auth", "namespace": "kube-system"},
                "data": {"mapRoles": yaml.safe_dump([
                    {"rolearn": f"arn:aws:iam::{ACCOUNT}:role/Dev",
                     "username": "dev:{{SessionName}}", "groups": ["developers"]}])}}
    made = subprocess.run([KUBECTL, "--kubeconfig", str(config), "apply", "-f", "-"],
                          input=json.dumps(aws_auth), capture_output=True, text=True,
                          env=admin, timeout=60)
    assert made.returncode == 0, made.stderr
    try:
        who = kubectl(config, dev, "auth", "whoami", "-o", "json")
        assert who.returncode == 0, who.stderr
        info = json.loads(who.stdout)["status"]["userInfo"]
        assert info["username"] == "dev:alice-example.com"
        assert info["groups"] == ["developers", "system:authenticated"]
        assert info["extra"]["arn"] == \
            [f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev/alice@example.com"]
        assert kubectl(config, dev, "get", "ns").returncode == 0  # RBAC is not enforced
    finally:
        kubectl(config, admin, "delete", "configmap", "aws-auth", "-n", "kube-system")
    assert kubectl(config, dev, "get", "ns").returncode != 0


def test_create_cluster_access_config(fargo, eks):
    subnets = [s["SubnetId"] for s in fargo.client("ec2").describe_subnets()["Subnets"]]
    with pytest.raises(botocore.exceptions.ClientError) as err:
        eks.create_cluster(name="noadmin" + uuid.uuid4().hex[:6],
                           roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks",
                           resourcesVpcConfig={"subnetIds": subnets},
                           accessConfig={"bootstrapClusterCreatorAdminPermissions": False})
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    name = "cfgmap" + uuid.uuid4().hex[:6]
    made = eks.create_cluster(name=name, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks",
                              resourcesVpcConfig={"subnetIds": subnets},
                              accessConfig={"authenticationMode": "CONFIG_MAP"})["cluster"]
    try:
        assert made["accessConfig"] == {"bootstrapClusterCreatorAdminPermissions": True,
                                        "authenticationMode": "CONFIG_MAP"}
        assert "fargo:creatorArn" not in eks.describe_cluster(name=name)["cluster"]
    finally:
        eks.delete_cluster(name=name)


_ASSUME = "Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::000000000000:role/x"


@pytest.mark.parametrize("form,code", [
    ("Action=AssumeRole&Version=2011-06-15", "ValidationError"),
    (_ASSUME + "&RoleSessionName=ab&DurationSeconds=abc", "ValidationError"),
    (_ASSUME + "&RoleSessionName=ab&DurationSeconds=100", "ValidationError"),
    (_ASSUME + "&RoleSessionName=ab&RoleArn.member.1=x", "ValidationError"),
    (_ASSUME + "&RoleSessionName=ab&Tags.member.1.Key=k&Tags.member.1.Value=v",
     "ValidationError"),
    ("Action=GetCallerIdentity&Version=2099-01-01", "InvalidAction"),
    ("Action=&Version=2011-06-15", "InvalidAction"),
    ("Action=AssumeRoleWithWebIdentity&Version=2011-06-15", "InvalidAction"),
    ("Action=GetCallerIdentity&Version=2011-06-15&%ff=1", "ValidationError"),
])
def test_sts_malformed(fargo, form, code):
    raw = fargo.post(form, {"Content-Type": "application/x-www-form-urlencoded"},
                     service="sts")
    assert raw.status_code == 400, raw.text
    assert f"<Code>{code}</Code>" in raw.text and "<ErrorResponse" in raw.text


def test_sts_unsigned(fargo):
    raw = fargo.post("Action=GetCallerIdentity&Version=2011-06-15",
                     {"Content-Type": "application/x-www-form-urlencoded"}, sign=False)
    assert raw.status_code == 403 and "<Code>MissingAuthenticationToken</Code>" in raw.text
