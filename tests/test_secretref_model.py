"""Task definitions' `secrets` and SSM parameter names: the pure rules (model/secretref.py,
model/params.py), and reading the values at a start (control/tasks/starter.py
resolve_secrets) from a Secrets Manager and a Parameter Store kept in a scratch state file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fargo.control.secrets import Secrets
from fargo.control.ssm import Ssm
from fargo.control.tasks.starter import SecretSources, resolve_secrets
from fargo.model import params
from fargo.model.errors import ApiError, ClientException
from fargo.model.secretref import ParameterRef, SecretsManagerRef, parse_secrets, parse_value_from
from fargo.model.spec import container_spec
from fargo.model.taskdef import normalize
from fargo.store.sqlite import Store

pytestmark = pytest.mark.pure
R = "us-east-1"
SM = "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf"
VID = "01234567-89ab-cdef-0123-456789abcdef"


@pytest.mark.parametrize("text,want", [
    (SM, SecretsManagerRef(SM)),
    (SM + ":password::", SecretsManagerRef(SM, json_key="password")),
    (SM + "::AWSCURRENT:", SecretsManagerRef(SM, version_stage="AWSCURRENT")),
    (SM + f":user:AWSPREVIOUS:{VID}", SecretsManagerRef(SM, "user", "AWSPREVIOUS", VID)),
    (SM + f":::{VID}", SecretsManagerRef(SM, version_id=VID)),
    (SM + ":user", SecretsManagerRef(SM, json_key="user")),
    ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:a/b_c+d=e.f@g",
     SecretsManagerRef("arn:aws:secretsmanager:eu-west-1:123456789012:secret:a/b_c+d=e.f@g")),
    ("/app/db/password", ParameterRef("/app/db/password")),
    ("plain-name_1.x", ParameterRef("plain-name_1.x")),
    ("/app/key:3", ParameterRef("/app/key:3")),
    ("arn:aws:ssm:us-east-1:000000000000:parameter/app/key",
     ParameterRef("arn:aws:ssm:us-east-1:000000000000:parameter/app/key")),
])
def test_value_from_is_parsed(text: str, want: object) -> None:
    assert parse_value_from(text) == want


@pytest.mark.parametrize("text", [
    "", "a" * 2049, "nul\x00", "app/key",  # a path must begin with '/'
    "sp ace", "/a//b", "/a/b/", SM + ":a:b:c:d",  # four suffix fields
    SM + "::" + "s" * 257 + ":", SM + ":::short-id", "arn:aws:secretsmanager:us-east-1:1:secret:x",
    "arn:aws:s3:::bucket", "arn:aws:ssm:us-east-1:000000000000:parameter/",
    "/" + "/".join("l" * 16),  # 16 levels
    "/a:b:c", "/" + "n" * 1000,  # past the 1011 characters its ARN may have
])
def test_value_from_that_names_nothing_is_refused(text: str) -> None:
    with pytest.raises(ClientException):
        parse_value_from(text)


def test_reading_a_public_aws_parameter_name_is_not_a_syntax_error() -> None:
    # /aws/... is AWS's own tree: no user writes there, but a task may name it.
    assert parse_value_from("/aws/service/x") == ParameterRef("/aws/service/x")
    with pytest.raises(ApiError) as err:
        params.check_name("/aws/service/x", R, write=True)
    assert err.value.code == "ValidationException"


@pytest.mark.parametrize("secrets,needle", [
    ("x", "must be a list"),
    (["x"], "is an object"),
    ([{"name": "A", "valueFrom": "/a", "extra": 1}], "unknown secret member 'extra'"),
    ([{"name": "A"}], "needs a name and a valueFrom"),
    ([{"valueFrom": "/a"}], "needs a name and a valueFrom"),
    ([{"name": "", "valueFrom": "/a"}], "needs a name and a valueFrom"),
    ([{"name": 5, "valueFrom": "/a"}], "needs a name and a valueFrom"),
    ([{"name": "A=B", "valueFrom": "/a"}], "no environment variable name"),
    ([{"name": "A", "valueFrom": "/a"}, {"name": "A", "valueFrom": "/b"}], "given twice"),
    ([{"name": "A", "valueFrom": "a/b"}], "secret 'A': valueFrom 'a/b'"),
])
def test_secrets_rules_name_what_is_wrong(secrets: Any, needle: str) -> None:
    with pytest.raises(ClientException) as err:
        parse_secrets(secrets, "app")
    assert err.value.message.startswith("Container 'app': ")
    assert needle in err.value.message


def test_registration_checks_secrets_and_keeps_only_value_from() -> None:
    td = {"family": "f", "networkMode": "awsvpc", "cpu": "256", "memory": "512",
          "requiresCompatibilities": ["FARGATE"],
          "containerDefinitions": [{"name": "app", "image": "busybox", "secrets": [
              {"name": "DB", "valueFrom": SM + ":password::"}]}]}
    with pytest.raises(ClientException, match="'executionRoleArn'"):  # as ECS refuses it
        normalize(td)
    td["executionRoleArn"] = "arn:aws:iam::000000000000:role/exec"
    out = normalize(td)
    assert out["containerDefinitions"][0]["secrets"] == [
        {"name": "DB", "valueFrom": SM + ":password::"}]
    td["containerDefinitions"][0]["secrets"].append({"name": "DB", "valueFrom": "/x"})
    with pytest.raises(ClientException, match="given twice"):
        normalize(td)


def test_parameter_names_and_selectors() -> None:
    assert params.parse_selector("/a/b:12", R).version == 12
    assert params.parse_selector("/a/b:prod", R).label == "prod"
    arn = params.parse_selector("arn:aws:ssm:us-east-1:000000000000:parameter/x:2", R)
    assert arn.names == ("x", "/x") and arn.version == 2  # one level: either name
    assert params.parse_selector("arn:aws:ssm:us-east-1:000000000000:parameter/a/b", R).names \
        == ("/a/b",)
    assert params.parse_selector("arn:aws:ssm:eu-west-1:000000000000:parameter/a/b", R).names \
        == ()  # another region's: names nothing here
    assert params.parameter_arn(R, "/a/b") == params.parameter_arn(R, "a/b") == \
        "arn:aws:ssm:us-east-1:000000000000:parameter/a/b"
    for bad in ("a:b:c", "/a:1x!", "/a/b c"):
        with pytest.raises(ApiError):
            params.parse_selector(bad, R)
    deep = "/" + "/".join("l" * 15)
    params.check_name(deep, R)
    with pytest.raises(ApiError) as err:
        params.check_name(deep + "/l", R)
    assert err.value.code == "HierarchyLevelLimitExceededException"
    room = params.MAX_NAME - len(params.parameter_arn(R, "/"))
    params.check_name("/" + "n" * room, R)
    with pytest.raises(ApiError):
        params.check_name("/" + "n" * (room + 1), R)
    assert params.under_path("/a/b", "/a", False) and not params.under_path("/a/b/c", "/a", False)
    assert params.under_path("/a/b/c", "/a", True) and not params.under_path("/ab", "/a", True)


def test_values_and_tiers() -> None:
    params.check_value("x" * 4096, "Standard")
    with pytest.raises(ApiError, match="Standard tier"):
        params.check_value("x" * 4097, "Standard")
    params.check_value("x" * 8192, "Advanced")
    with pytest.raises(ApiError):
        params.check_value("x" * 8193, "Advanced")
    with pytest.raises(ApiError):
        params.check_value("", "Standard")
    assert params.tier_for("Intelligent-Tiering", None, "x" * 5000) == "Advanced"
    assert params.tier_for("Intelligent-Tiering", None, "x") == "Standard"
    assert params.tier_for(None, "Advanced", "x") == "Advanced"
    with pytest.raises(ApiError, match="downgrade"):
        params.tier_for("Standard", "Advanced", "x")


# ---- resolving at a start
@pytest.fixture
def sources(tmp_path: Path) -> Iterator[SecretSources]:
    store = Store(tmp_path / "state.db")
    yield SecretSources(Secrets(store), Ssm(store))
    store.close()


class _Task:
    """What resolve_secrets reads of a task record: its region and plan."""

    def __init__(self, *containers: dict[str, Any]):
        self.region = R
        self.plan = list(containers)


def _resolve(src: SecretSources, *secrets: tuple[str, str]) -> dict[str, str]:
    task: Any = _Task({"name": "app", "secrets": [{"name": n, "valueFrom": v}
                                                 for n, v in secrets]})
    return resolve_secrets(task, src).get("app", {})


def test_values_are_read_from_both_services(sources: SecretSources) -> None:
    assert sources.secrets and sources.ssm
    whole = sources.secrets.create_secret("db", R, value="s3cr3t")
    doc = sources.secrets.create_secret("creds", R, value=json.dumps(
        {"user": "admin", "port": 5432, "nested": {"a": 1}}))
    sources.ssm.put_parameter("/app/token", R, value="tok-1", type="SecureString")
    sources.ssm.put_parameter("/app/token", R, value="tok-2", overwrite=True)
    sources.ssm.put_parameter("plain", R, value="a,b", type="StringList")
    got = _resolve(sources, ("WHOLE", whole.arn), ("PARTIAL", whole.arn[:-7]),
                   ("USER", doc.arn + ":user::"), ("PORT", doc.arn + ":port:AWSCURRENT:"),
                   ("NESTED", f"{doc.arn}:nested::{doc.version_id}"),
                   ("TOKEN", "/app/token"), ("OLD", "/app/token:1"), ("LIST", "plain"),
                   ("BYARN", "arn:aws:ssm:us-east-1:000000000000:parameter/app/token"))
    assert got == {"WHOLE": "s3cr3t", "PARTIAL": "s3cr3t", "USER": "admin", "PORT": "5432",
                   "NESTED": '{"a":1}', "TOKEN": "tok-2", "OLD": "tok-1", "LIST": "a,b",
                   "BYARN": "tok-2"}


@pytest.mark.parametrize("value_from,needle", [
    ("arn:aws:secretsmanager:us-east-1:000000000000:secret:ghost-AbCdEf",
     "failed to fetch secret arn:aws:secretsmanager:us-east-1:000000000000:secret:ghost-AbCdEf"
     " from secrets manager: ResourceNotFoundException"),
    ("{doc}:missing::", "did not contain json key missing"),
    ("{whole}:key::", "is not a JSON object"),
    ("{doc}::AWSPREVIOUS:", "staging label: AWSPREVIOUS"),
    ("{doc}:::" + VID, "VersionId: " + VID),
    ("/no/such", "unable to retrieve secrets from ssm: invalid parameters: /no/such"),
    ("/app/token:9", "invalid parameters: /app/token:9"),
])
def test_what_cannot_be_read_is_named_never_quoted(sources: SecretSources, value_from: str,
                                                   needle: str) -> None:
    assert sources.secrets and sources.ssm
    whole = sources.secrets.create_secret("plain-secret", R, value="hush-hush-1")
    doc = sources.secrets.create_secret("doc", R, value=json.dumps({"user": "hush-hush-2"}))
    sources.ssm.put_parameter("/app/token", R, value="hush-hush-3", type="SecureString")
    with pytest.raises(ApiError) as err:
        _resolve(sources, ("OK", "/app/token"),
                 ("BAD", value_from.format(doc=doc.arn, whole=whole.arn)))
    assert needle in err.value.message
    assert "hush-hush" not in err.value.message


def test_every_missing_parameter_is_named_at_once(sources: SecretSources) -> None:
    task: Any = _Task({"name": "a", "secrets": [{"name": "X", "valueFrom": "/x"}]},
                      {"name": "b", "secrets": [{"name": "Y", "valueFrom": "/y"},
                                                {"name": "Z", "valueFrom": "/x"}]})
    with pytest.raises(ApiError) as err:
        resolve_secrets(task, sources)
    assert err.value.message.endswith("invalid parameters: /x, /y")


def test_no_store_configured_fails_rather_than_skips() -> None:
    task: Any = _Task({"name": "a", "secrets": [{"name": "X", "valueFrom": "/x"}]})
    with pytest.raises(ApiError, match="no SSM parameter store"):
        resolve_secrets(task, SecretSources())
    assert resolve_secrets(_Task({"name": "a"}), SecretSources()) == {}  # type: ignore[arg-type]


def test_secrets_come_last_in_the_environment() -> None:
    from fargo.model.taskrecord import Task
    task = Task.__new__(Task)  # container_spec reads these few fields only
    task.id, task.region, task.role, task.credentials_id = "t1", R, None, None

    class _Eni:
        endpoint = private_dns = None

    task.interface = _Eni()  # type: ignore[assignment]
    cdef = {"name": "app", "command": ["true"], "environment": [{"name": "A", "value": "env"}]}
    spec = container_spec(task, cdef, {"Env": ["A=image", "B=image"]}, {"A": "secret"})
    assert spec.env["A"] == "secret" and spec.env["B"] == "image"
