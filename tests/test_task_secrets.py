"""Containers' `secrets` at a task's start: read from Secrets Manager (whole, a json-key) and
SSM Parameter Store (a SecureString), handed to the container as environment variables, and
nowhere else (DescribeTasks, the task record, the server's log); a secret that cannot be read
fails the start as ECS does. First against the in-memory data plane (the engine alone, also
across a restart), then end to end: boto3, a real server, busybox in runc."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest

from fargo.control.secrets import Secrets
from fargo.control.ssm import Ssm
from fargo.control.tasks.starter import SECRETS_FAILED, SecretSources
from fargo.store.sqlite import Store
from tests.conftest import wait_status
from tests.fakeplane import FakePlane
from tests.test_engine import CLUSTER, REGION, engine, request, run, status, taskdef
from tests.test_tasks import logs
from tests.test_tasks import run as run_task

EXEC_ROLE = "arn:aws:iam::000000000000:role/ecsTaskExecutionRole"


# ---- the engine against the in-memory plane
@pytest.fixture
def plane() -> Iterator[FakePlane]:
    p = FakePlane()
    p.images.add("busybox", {"Cmd": ["sh"]})
    yield p
    p.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


def _record(store: Store, tid: str) -> bytes:
    return bytes(store.rows("SELECT record FROM task_records WHERE id=?", (tid,))[0][0])


@pytest.mark.pure
def test_secrets_reach_the_spec_and_only_the_spec(store: Store, plane: FakePlane) -> None:
    secrets, ssm = Secrets(store), Ssm(store)
    sm = secrets.create_secret("db", REGION, value=json.dumps({"user": "u-31337"}))
    ssm.put_parameter("/app/key", REGION, value="k-31337", type="SecureString")
    td = taskdef(store, secrets=[{"name": "USER", "valueFrom": sm.arn + ":user::"},
                                 {"name": "KEY", "valueFrom": "/app/key"}],
                 environment=[{"name": "KEY", "value": "from-environment"}])

    async def body() -> None:
        eng = engine(store, plane)
        eng.starter.sources = SecretSources(secrets, ssm)
        await eng.start()
        [task] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        task = await status(eng, task.id, "RUNNING")
        env = plane.runtime.container(task.id, "app").spec.env
        assert env["USER"] == "u-31337" and env["KEY"] == "k-31337"  # secrets win
        assert eng.containers.secret_env == {}  # held only while it started
        record = _record(store, task.id)
        assert b"31337" not in record and b"/app/key" in record  # valueFrom only
        assert task.plan[0]["secrets"][1] == {"name": "KEY", "valueFrom": "/app/key"}
        await eng.close()

    run(body)


@pytest.mark.pure
def test_a_missing_secret_fails_the_start_before_any_container(store: Store,
                                                              plane: FakePlane) -> None:
    secrets, ssm = Secrets(store), Ssm(store)
    ssm.put_parameter("/there", REGION, value="v", type="String")
    td = taskdef(store, secrets=[{"name": "A", "valueFrom": "/there"},
                                 {"name": "B", "valueFrom": "/not/there"}])

    async def body() -> None:
        eng = engine(store, plane)
        eng.starter.sources = SecretSources(secrets, ssm)
        await eng.start()
        [task] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        task = await status(eng, task.id, "STOPPED")
        assert task.stop_code == "TaskFailedToStart"
        assert task.stopped_reason == (SECRETS_FAILED + "unable to retrieve secrets from ssm: "
                                       "invalid parameters: /not/there")
        assert plane.calls_to("create_container") == []
        await eng.close()

    run(body)


@pytest.mark.pure
def test_a_redone_start_reads_the_secrets_again(store: Store, plane: FakePlane) -> None:
    secrets, ssm = Secrets(store), Ssm(store)
    ssm.put_parameter("/rotating", REGION, value="before", type="SecureString")
    td = taskdef(store, secrets=[{"name": "R", "valueFrom": "/rotating"}])

    async def body() -> None:
        first = engine(store, plane)
        first.starter.sources = SecretSources(secrets, ssm)
        await first.start()
        plane.images.hold("busybox")  # the start hangs in its pull...
        [task] = first.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        await status(first, task.id, "ACTIVATING")
        await first.close()  # ...when the server goes away
        ssm.put_parameter("/rotating", REGION, value="after", overwrite=True)
        plane.images.release("busybox")
        second = engine(store, plane)
        second.starter.sources = SecretSources(secrets, ssm)
        await second.start()
        await status(second, task.id, "RUNNING")
        assert plane.runtime.container(task.id, "app").spec.env["R"] == "after"
        await second.close()

    run(body)


@pytest.mark.pure
def test_a_task_without_secrets_needs_no_stores(store: Store, plane: FakePlane) -> None:
    td = taskdef(store)

    async def body() -> None:
        eng = engine(store, plane)  # no sources: a task without secrets starts anyway
        await eng.start()
        [task] = eng.run_task(td=td, cluster_arn=CLUSTER, region=REGION, req=request()).tasks
        await status(eng, task.id, "RUNNING")
        await eng.close()

    run(body)


# ---- end to end
def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _register(ecs, image: str, command: str, secrets: list[dict[str, str]],
              **task: Any) -> str:
    fam = "s" + uuid.uuid4().hex[:10]
    ecs.register_task_definition(
        family=fam, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256",
        memory="512", executionRoleArn=EXEC_ROLE, containerDefinitions=[{
            "name": "app", "image": image, "command": ["sh", "-c", command],
            "secrets": secrets}], **task)
    return fam


@pytest.fixture
def made(fargo):
    """Secrets and parameters this test makes, deleted afterwards."""
    sm, ssm = fargo.client("secretsmanager"), fargo.client("ssm")
    tag = uuid.uuid4().hex[:8]
    values = {"whole": f"sm-whole-{tag}", "user": f"sm-user-{tag}",
              "secure": f"ssm-secure-{tag}"}
    whole = sm.create_secret(Name=f"whole-{tag}", SecretString=values["whole"])["ARN"]
    doc = sm.create_secret(Name=f"doc-{tag}", SecretString=json.dumps(
        {"user": values["user"], "other": "x"}))["ARN"]
    param = f"/secrets-test/{tag}/token"
    ssm.put_parameter(Name=param, Value=values["secure"], Type="SecureString")
    yield {"values": values, "whole": whole, "doc": doc, "param": param, "tag": tag}
    for arn in (whole, doc):
        sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    ssm.delete_parameter(Name=param)


def test_secrets_arrive_as_environment_variables(fargo, ecs, busybox_image, subnet_id, made):
    v = made["values"]
    # The task prints digests, never the values; it fails unless all three arrived.
    check = ('test -n "$WHOLE" && test -n "$USER_NAME" && test -n "$TOKEN" && '
             'for n in WHOLE USER_NAME TOKEN; do eval "x=\\$$n"; '
             'echo "$n $(printf %s "$x" | md5sum | cut -d" " -f1)"; done')
    fam = _register(ecs, busybox_image, check, [
        {"name": "WHOLE", "valueFrom": made["whole"]},
        {"name": "USER_NAME", "valueFrom": made["doc"] + ":user::"},
        {"name": "TOKEN", "valueFrom": made["param"]}])
    t = wait_status(ecs, run_task(ecs, fam, subnet_id)["taskArn"], "STOPPED")
    assert t["containers"][0]["exitCode"] == 0, t
    assert t["stopCode"] == "EssentialContainerExited"
    printed = dict(line.split(" ", 1) for line in logs(fargo, t["taskArn"]).splitlines())
    assert printed == {"WHOLE": _md5(v["whole"]), "USER_NAME": _md5(v["user"]),
                       "TOKEN": _md5(v["secure"])}
    # Nowhere else: DescribeTasks, the task's record, the server's own log.
    described = json.dumps(ecs.describe_tasks(tasks=[t["taskArn"]]), default=str)
    db = sqlite3.connect(f"file:{fargo.state_dir / 'fargo.db'}?mode=ro", uri=True)
    try:
        record = bytes(db.execute("SELECT record FROM task_records WHERE id=?",
                                  (t["taskArn"].rsplit("/", 1)[-1],)).fetchone()[0])
    finally:
        db.close()
    assert made["param"].encode() in record  # the definition, with valueFrom only
    server_log = fargo.log.read_text(errors="replace")
    for value in v.values():
        assert value not in described and value.encode() not in record
        assert value not in server_log


def test_a_missing_secret_stops_the_task_as_aws_does(fargo, ecs, busybox_image, subnet_id,
                                                     made):
    ghost = f"/secrets-test/{made['tag']}/ghost"
    fam = _register(ecs, busybox_image, "echo should never run", [
        {"name": "OK", "valueFrom": made["param"]}, {"name": "GONE", "valueFrom": ghost}])
    t = wait_status(ecs, run_task(ecs, fam, subnet_id)["taskArn"], "STOPPED")
    assert t["stopCode"] == "TaskFailedToStart"
    assert t["stoppedReason"].startswith(
        "ResourceInitializationError: unable to pull secrets or registry auth: ")
    assert ghost in t["stoppedReason"] and made["values"]["secure"] not in t["stoppedReason"]
    assert "exitCode" not in t["containers"][0]  # nothing ran
    # A secret of Secrets Manager that is not there, or a json-key it does not hold.
    for value_from, needle in ((made["whole"].rsplit(":", 1)[0] + ":ghost-AbCdEf",
                                "ResourceNotFoundException"),
                               (made["doc"] + ":nokey::", "json key nokey")):
        fam = _register(ecs, busybox_image, "true", [{"name": "X", "valueFrom": value_from}])
        t = wait_status(ecs, run_task(ecs, fam, subnet_id)["taskArn"], "STOPPED")
        assert t["stopCode"] == "TaskFailedToStart"
        assert t["stoppedReason"].startswith("ResourceInitializationError: unable to pull "
                                             "secrets or registry auth: ")
        assert needle in t["stoppedReason"], t["stoppedReason"]


def test_registration_refuses_secrets_ecs_would(ecs, busybox_image):
    for secrets, needle in (([{"name": "A", "valueFrom": "x/y"}], "valueFrom 'x/y'"),
                            ([{"name": "A", "valueFrom": "/a"}, {"name": "A", "valueFrom": "/b"}],
                             "given twice"),
                            ([{"name": "A=B", "valueFrom": "/a"}], "environment variable")):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            _register(ecs, busybox_image, "true", secrets)
        assert exc.value.response["Error"]["Code"] == "ClientException"
        assert needle in exc.value.response["Error"]["Message"]


def test_task_role_credentials_describe_parameters_but_read_no_values(
        fargo, ecs, busybox_image, subnet_id, made):
    fetch = ('wget -q -O - "http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"; echo; '
             "trap 'exit 0' TERM; sleep 60 & wait")
    fam = _register(ecs, busybox_image, fetch, [], taskRoleArn="arn:aws:iam::000000000000:role/r")
    t = wait_status(ecs, run_task(ecs, fam, subnet_id)["taskArn"], "RUNNING")
    try:
        creds: dict[str, str] = {}
        deadline = time.time() + 20
        while not creds and time.time() < deadline:
            text = logs(fargo, t["taskArn"]).strip()
            creds = json.loads(text) if text.startswith("{") else {}
            time.sleep(0.2)
        as_role = boto3.client("ssm", endpoint_url=fargo.endpoint, region_name="us-east-1",
                               aws_access_key_id=creds["AccessKeyId"],
                               aws_secret_access_key=creds["SecretAccessKey"],
                               aws_session_token=creds["Token"])
        names = [p["Name"] for p in as_role.describe_parameters(ParameterFilters=[
            {"Key": "Name", "Values": [made["param"]]}])["Parameters"]]
        assert names == [made["param"]]
        for call in (lambda: as_role.get_parameter(Name=made["param"], WithDecryption=True),
                     lambda: as_role.put_parameter(Name="/role/x", Value="x", Type="String"),
                     lambda: as_role.delete_parameter(Name=made["param"])):
            with pytest.raises(botocore.exceptions.ClientError) as exc:
                call()
            assert exc.value.response["Error"]["Code"] == "AccessDeniedException"
    finally:
        ecs.stop_task(task=t["taskArn"])
        wait_status(ecs, t["taskArn"], "STOPPED")
