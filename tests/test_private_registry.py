"""repositoryCredentials: a secret made with the Secrets Manager API lets a task pull from a
registry that demands bearer tokens (the Docker Hub flow)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import botocore.exceptions
import pytest

from tests.conftest import wait_status
from tests.imagebuild import build_busybox_oci
from tests.test_tasks import run
from tests.tokenauth import TokenRegistry


@pytest.fixture(scope="module")
def private_image(tmp_path_factory) -> Iterator[tuple[str, TokenRegistry]]:
    root = tmp_path_factory.mktemp("token-registry")
    reg = TokenRegistry(root / "reg")
    reg.start()
    layout = build_busybox_oci(root / "layout")
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds",
                    f"{reg.auth.user}:{reg.auth.password}", f"oci:{layout}",
                    f"docker://{reg.address}/private/busybox:1"], check=True, capture_output=True)
    yield f"{reg.address}/private/busybox:1", reg
    reg.stop()


def register(ecs, image: str, creds: str | None) -> str:
    fam = "p" + uuid.uuid4().hex[:10]
    c = {"name": "app", "image": image, "command": ["echo", "pulled privately"]}
    if creds:
        c["repositoryCredentials"] = {"credentialsParameter": creds}
    ecs.register_task_definition(family=fam, networkMode="awsvpc", cpu="256", memory="512",
                                 requiresCompatibilities=["FARGATE"], containerDefinitions=[c])
    return fam


def test_pull_with_repository_credentials(fargo, ecs, subnet_id, private_image):
    image, reg = private_image
    sm = fargo.client("secretsmanager")
    name = "hub-" + uuid.uuid4().hex[:6]
    arn = sm.create_secret(Name=name, SecretString=json.dumps(
        {"username": reg.auth.user, "password": reg.auth.password}))["ARN"]
    assert arn.startswith(f"arn:aws:secretsmanager:us-east-1:000000000000:secret:{name}-")
    issued = reg.auth.issued
    t = wait_status(ecs, run(ecs, register(ecs, image, arn), subnet_id)["taskArn"], "STOPPED")
    assert t["containers"][0]["exitCode"] == 0, t
    assert t["stopCode"] == "EssentialContainerExited"
    assert reg.auth.issued > issued  # the token service was really asked

    # No credentials: the registry refuses, the task fails to start.
    t = wait_status(ecs, run(ecs, register(ecs, image, None), subnet_id)["taskArn"], "STOPPED")
    assert t["stopCode"] == "TaskFailedToStart"
    assert t["stoppedReason"].startswith("CannotPullContainerError:")
    assert "unauthorized" in t["stoppedReason"]

    # Wrong password in the secret.
    sm.put_secret_value(SecretId=name, SecretString=json.dumps(
        {"username": reg.auth.user, "password": "wrong"}))
    t = wait_status(ecs, run(ecs, register(ecs, image, arn), subnet_id)["taskArn"], "STOPPED")
    assert t["stopCode"] == "TaskFailedToStart"

    # A secret that does not exist.
    ghost = arn.rsplit(":", 1)[0] + ":ghost-AbCdEf"
    t = wait_status(ecs, run(ecs, register(ecs, image, ghost), subnet_id)["taskArn"], "STOPPED")
    assert t["stopCode"] == "TaskFailedToStart"
    assert t["stoppedReason"].startswith("ResourceInitializationError: unable to pull secrets")


def test_secrets_api(fargo):
    sm = fargo.client("secretsmanager")
    name = "s-" + uuid.uuid4().hex[:6]
    out = sm.create_secret(Name=name, SecretString="v1", Description="d")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v1"
    assert sm.get_secret_value(SecretId=out["ARN"])["Name"] == name
    assert sm.describe_secret(SecretId=name)["Description"] == "d"
    assert name in [s["Name"] for s in sm.list_secrets()["SecretList"]]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sm.create_secret(Name=name, SecretString="again")
    assert exc.value.response["Error"]["Code"] == "ResourceExistsException"
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v1"  # untouched
    for bad in ("semi;colon", "a" * 600, "sp ace", "nul\x00"):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            sm.create_secret(Name=bad, SecretString="x")
        assert exc.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sm.create_secret(Name=name + "big", SecretString="x" * 70000)
    assert exc.value.response["Error"]["Code"] == "InvalidParameterException"
    sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        sm.get_secret_value(SecretId=name)
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
