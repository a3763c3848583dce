"""Container health checks' rules (model/healthcheck.py): what a healthCheck may be, how a
check's outcome moves a container's health, and how a task's health follows."""

from __future__ import annotations

from typing import Any

import pytest

from fargo.model import taskdef
from fargo.model.errors import ClientException
from fargo.model.healthcheck import (
    HEALTHY,
    UNHEALTHY,
    UNKNOWN,
    health_check_of,
    judge,
    normalize_health_check,
    task_health,
)
from fargo.model.taskrecord import Container, Interface, Task

pytestmark = pytest.mark.pure


def td(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"family": "f", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
            "cpu": "256", "memory": "512", "containerDefinitions": list(containers)}


def test_defaults_are_filled_and_start_period_stays_off() -> None:
    out = normalize_health_check({"command": ["CMD-SHELL", "true"]}, "app")
    assert out == {"command": ["CMD-SHELL", "true"], "interval": 30, "timeout": 5,
                   "retries": 3}
    given = {"command": ["CMD", "/bin/check", "-q"], "interval": 5, "timeout": 2,
             "retries": 10, "startPeriod": 0}
    assert normalize_health_check(given, "app") == given


@pytest.mark.parametrize(("field", "low", "high"), [
    ("interval", 5, 300), ("timeout", 2, 60), ("retries", 1, 10), ("startPeriod", 0, 300)])
def test_bounds_are_ecs_and_the_message_names_the_field(field: str, low: int,
                                                        high: int) -> None:
    for ok in (low, high):
        normalize_health_check({"command": ["CMD", "x"], field: ok}, "app")
    for bad in (low - 1, high + 1, True, "10"):
        with pytest.raises(ClientException, match=f"Container 'app': healthCheck.{field} "):
            normalize_health_check({"command": ["CMD", "x"], field: bad}, "app")


@pytest.mark.parametrize("command", [
    None, [], ["NONE"], ["true"], ["CMD"], ["CMD-SHELL"], ["CMD-SHELL", ""], "CMD true",
    ["CMD", 3], ["CMD", "a\x00b"], ["CMD", *["x"] * 300]])
def test_bad_commands_are_refused_by_name(command: Any) -> None:
    with pytest.raises(ClientException, match=r"Container 'app': healthCheck\.command"):
        normalize_health_check({"command": command}, "app")


def test_unknown_members_are_refused_by_name() -> None:
    with pytest.raises(ClientException, match="healthCheck.startInterval"):
        normalize_health_check({"command": ["CMD", "x"], "startInterval": 5}, "app")
    with pytest.raises(ClientException, match="healthCheck must be an object"):
        normalize_health_check(["CMD", "x"], "app")


def test_registration_stores_the_normalized_check() -> None:
    out = taskdef.normalize(td({"name": "a", "image": "b",
                                "healthCheck": {"command": ["CMD-SHELL", "exit 0"],
                                                "retries": 2}}))
    assert out["containerDefinitions"][0]["healthCheck"] == {
        "command": ["CMD-SHELL", "exit 0"], "interval": 30, "timeout": 5, "retries": 2}
    with pytest.raises(ClientException, match="healthCheck.interval"):
        taskdef.normalize(td({"name": "a", "image": "b",
                              "healthCheck": {"command": ["CMD", "x"], "interval": 1}}))


def test_argv_runs_cmd_directly_and_cmd_shell_through_sh() -> None:
    direct = health_check_of({"healthCheck": {"command": ["CMD", "/bin/check", "-v"]}})
    assert direct is not None and direct.argv == ("/bin/check", "-v")
    assert (direct.interval, direct.timeout, direct.retries, direct.start_period) == (30, 5, 3, 0)
    shell = health_check_of({"healthCheck": {"command": ["CMD-SHELL", "curl -f x || exit 1"],
                                             "startPeriod": 9}})
    assert shell is not None and shell.argv == ("/bin/sh", "-c", "curl -f x || exit 1")
    assert shell.start_period == 9
    assert health_check_of({"name": "a"}) is None


def test_depends_on_healthy_needs_a_check_on_its_target() -> None:
    checked = {"name": "db", "image": "b", "healthCheck": {"command": ["CMD", "x"]}}
    app = {"name": "app", "image": "b",
           "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}]}
    taskdef.normalize(td(checked, app))
    with pytest.raises(ClientException, match="HEALTHY.*'db', which has no healthCheck"):
        taskdef.normalize(td({"name": "db", "image": "b"}, app))


def test_a_pass_heals_and_retries_failures_in_a_row_make_unhealthy() -> None:
    status, failures = UNKNOWN, 0
    for _ in range(2):
        status, failures = judge(status, failures, False, False, retries=3)
    assert (status, failures) == (UNKNOWN, 2)  # no verdict before the retries run out
    status, failures = judge(status, failures, False, False, retries=3)
    assert (status, failures) == (UNHEALTHY, 3)
    assert judge(status, failures, True, False, retries=3) == (HEALTHY, 0)
    assert judge(HEALTHY, 0, False, False, retries=1) == (UNHEALTHY, 1)
    assert judge(HEALTHY, 0, False, False, retries=2) == (HEALTHY, 1)


def test_failures_in_the_start_period_count_only_after_a_pass() -> None:
    assert judge(UNKNOWN, 0, False, True, retries=1) == (UNKNOWN, 0)
    assert judge(UNKNOWN, 0, True, True, retries=1) == (HEALTHY, 0)
    # Once it has passed, a failure counts even within the start period (ECS's note).
    assert judge(HEALTHY, 0, False, True, retries=1) == (UNHEALTHY, 1)


def _task(*containers: tuple[str, bool, bool, str]) -> Task:
    """containers: (name, essential, has a check, health)."""
    plan = [{"name": n, "image": "b", "essential": e,
             **({"healthCheck": {"command": ["CMD", "x"]}} if hc else {})}
            for n, e, hc, _ in containers]
    return Task(id="t", arn="arn", cluster_arn="c", task_definition_arn="td", family="f",
                region="us-east-1", cpu=256, memory=512, created_at=0.0,
                availability_zone="us-east-1a",
                interface=Interface("a", "eni", "subnet", "10.0.0.2", "ip"),
                containers=[Container(name=n, arn=n, image="b", health_status=h)
                            for n, _, _, h in containers],
                plan=plan)


@pytest.mark.parametrize(("containers", "want"), [
    ([("a", True, False, UNKNOWN)], UNKNOWN),  # no checks at all
    ([("a", True, True, UNKNOWN)], UNKNOWN),  # still being evaluated
    ([("a", True, True, HEALTHY)], HEALTHY),
    ([("a", True, True, UNHEALTHY)], UNHEALTHY),
    ([("a", True, True, HEALTHY), ("b", True, False, UNKNOWN)], HEALTHY),  # b has no check
    ([("a", True, True, HEALTHY), ("b", True, True, UNKNOWN)], UNKNOWN),
    ([("a", True, True, UNHEALTHY), ("b", True, True, HEALTHY)], UNHEALTHY),
    ([("a", True, True, UNHEALTHY), ("b", True, True, UNKNOWN)], UNHEALTHY),
    ([("a", True, True, HEALTHY), ("s", False, True, UNHEALTHY)], HEALTHY),  # not essential
    ([("a", True, False, UNKNOWN), ("s", False, True, HEALTHY)], UNKNOWN),
])
def test_task_health_follows_its_essential_containers(
        containers: list[tuple[str, bool, bool, str]], want: str) -> None:
    assert task_health(_task(*containers)) == want
