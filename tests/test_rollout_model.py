"""The service scheduler's rules (model/rollout.py, model/service.py) without a server."""

from __future__ import annotations

import pytest

from fargo.model import rollout
from fargo.model.errors import InvalidParameterException
from fargo.model.rollout import PENDING, RUNNING, STOPPED, STOPPING, TaskView, plan
from fargo.model.service import (
    Deployment,
    DeploymentConfig,
    NetworkConf,
    Service,
    bounds,
    breaker_threshold,
    check_params,
    deployment_config,
)

pytestmark = pytest.mark.pure
NOW = 1000.0


def service(desired: int, *deps: str, config: DeploymentConfig | None = None) -> Service:
    net = NetworkConf(["subnet-a"])
    deployments = [Deployment(id=d, task_definition=f"td:{i}", network=net, created_at=0,
                              updated_at=0, status="PRIMARY" if i == 0 else "ACTIVE",
                              desired_count=desired if i == 0 else 0)
                   for i, d in enumerate(deps or ("new",))]
    return Service(arn="arn", name="web", cluster_arn="arn:c/demo", region="us-east-1",
                   created_at=0, task_definition="td:0", network=net, deployments=deployments,
                   desired_count=desired, config=config or DeploymentConfig())


def task(tid: str, dep: str = "new", state: str = RUNNING, zone: str = "a", **kw) -> TaskView:
    healthy = kw.pop("healthy", state == RUNNING)
    return TaskView(id=tid, deployment=dep, zone=zone, state=state, created_at=kw.pop("at", 0),
                    healthy=healthy, **kw)


def test_bounds_round_as_ecs_does():
    assert bounds(3, DeploymentConfig(200, 100)) == (3, 6)
    assert bounds(3, DeploymentConfig(150, 50)) == (2, 4)  # 1.5 up, 4.5 down
    assert bounds(1, DeploymentConfig(100, 0)) == (0, 1)
    assert bounds(0, DeploymentConfig()) == (0, 0)


def test_breaker_threshold_is_half_the_count_between_3_and_200():
    assert [breaker_threshold(n) for n in (1, 2, 6, 7, 100, 1000)] == [3, 3, 3, 4, 50, 200]


def test_a_new_service_starts_its_count_and_then_is_steady():
    svc = service(3)
    assert plan(svc, [], NOW).start == 3
    p = plan(svc, [task("1"), task("2"), task("3")], NOW)
    assert p.start == 0 and p.stop == [] and p.completed and p.steady


def test_a_stopped_task_is_replaced_and_a_surplus_goes():
    svc = service(2)
    assert plan(svc, [task("1"), task("2", state=STOPPED)], NOW).start == 1
    p = plan(service(1), [task("1", zone="a", at=1), task("2", zone="a", at=2),
                          task("3", zone="b", at=3)], NOW)
    # Scale in: from the fuller zone, newest first.
    assert [tid for tid, _ in p.stop] == ["2", "1"]
    assert p.stop[0][1] == "Scaling activity initiated by (deployment new)"


def test_a_rolling_update_stays_within_its_bounds():
    svc = service(3, "new", "old")  # minimumHealthy 100, maximum 200
    old = [task(f"o{i}", "old") for i in range(3)]
    p = plan(svc, old, NOW)
    assert p.start == 3 and p.stop == []  # nothing old goes while nothing new serves
    pending = [task(f"n{i}", state=PENDING) for i in range(3)]
    p = plan(svc, old + pending, NOW)
    assert p.start == 0 and p.stop == [] and not p.completed
    new = [task(f"n{i}") for i in range(3)]
    p = plan(svc, old + new, NOW)
    assert sorted(t for t, _ in p.stop) == ["o0", "o1", "o2"]
    stopping = [task(f"o{i}", "old", state=STOPPING) for i in range(3)]
    p = plan(svc, stopping + new, NOW)
    assert not p.completed and p.drop == []  # still draining
    p = plan(svc, [task(f"o{i}", "old", state=STOPPED) for i in range(3)] + new, NOW)
    assert p.completed and p.drop == ["old"] and p.steady


def test_a_rolling_update_with_no_room_stops_first():
    svc = service(2, "new", "old", config=DeploymentConfig(100, 50))  # low 1, high 2
    old = [task("o1", "old"), task("o2", "old")]
    p = plan(svc, old, NOW)
    assert p.start == 0 and len(p.stop) == 1  # one old goes, one keeps serving
    p = plan(svc, [task("o1", "old", state=STOPPING), task("o2", "old")], NOW)
    assert p.start == 0  # the stopping one still counts against maximumPercent
    p = plan(svc, [task("o1", "old", state=STOPPED), task("o2", "old")], NOW)
    assert p.start == 1 and p.stop == []


def test_unhealthy_tasks_are_replaced_but_not_in_the_grace_period():
    svc = service(1)
    sick = task("1", healthy=False, unhealthy=True)
    p = plan(svc, [sick], NOW)
    assert p.stop == [("1", rollout.UNHEALTHY_REASON)] and p.start == 1
    assert plan(svc, [task("1", healthy=False, unhealthy=True, in_grace=True)], NOW).stop == []
    # Checks not yet passed: it is neither replaced nor counted healthy.
    p = plan(svc, [task("1", healthy=False)], NOW)
    assert p.stop == [] and not p.completed


def test_the_circuit_breaker_trips_at_its_threshold():
    on = DeploymentConfig(200, 100, breaker=True, rollback=True)
    svc = service(1, "new", "old", config=on)
    failed = [task(f"f{i}", state=STOPPED, failed=True, stopped_at=NOW - i) for i in range(2)]
    serving = [task("o1", "old")]
    p = plan(svc, serving + failed, NOW)
    assert not p.failed and p.failed_tasks == 2 and p.start == 1
    failed.append(task("f3", state=STOPPED, failed=True, stopped_at=NOW))
    p = plan(svc, serving + failed, NOW)
    assert p.failed and p.failed_tasks == 3 and p.start == 0
    assert p.stop == []  # what still serves keeps serving
    off = service(1, "new", "old")
    p = plan(off, serving + failed, NOW)
    assert not p.failed and p.start == 1 and p.start_at > NOW  # backs off instead


def test_the_arguments_refused_by_name():
    with pytest.raises(InvalidParameterException, match="'serviceConnectConfiguration'"):
        check_params({"serviceConnectConfiguration": {"enabled": True}}, create=True)
    with pytest.raises(InvalidParameterException, match="'volumeConfigurations'"):
        check_params({"volumeConfigurations": [{"name": "x"}]}, create=False)
    check_params({"serviceConnectConfiguration": {}, "serviceName": "x"}, create=True)
    with pytest.raises(InvalidParameterException, match="maximumPercent"):
        deployment_config({"maximumPercent": 201})
    with pytest.raises(InvalidParameterException, match="minimumHealthyPercent"):
        deployment_config({"minimumHealthyPercent": -1})
    with pytest.raises(InvalidParameterException, match="deploymentConfiguration.alarms"):
        deployment_config({"alarms": {"enable": True, "alarmNames": ["a"]}})
    base = deployment_config({"deploymentCircuitBreaker": {"enable": True, "rollback": False}})
    assert deployment_config({"maximumPercent": 150}, base) == DeploymentConfig(150, 100,
                                                                                True, False)


def test_a_task_that_has_only_just_started_does_not_complete_a_rollout():
    svc = service(1, "new", "old")
    young = task("n1", young=True)
    p = plan(svc, [task("o1", "old"), young], NOW)
    assert p.stop == [] and not p.completed  # the old one serves until the new one proves
    p = plan(svc, [task("o1", "old"), task("n1")], NOW)
    assert [t for t, _ in p.stop] == ["o1"]
    # Scaling a completed deployment is steady as soon as its tasks run.
    done = service(2)
    done.primary.rollout_state = "COMPLETED"
    assert plan(done, [task("1", young=True), task("2", young=True)], NOW).steady


def test_failed_tasks_count_until_a_task_runs_healthily():
    on = DeploymentConfig(200, 100, breaker=True, rollback=True)
    svc = service(3, config=on)
    failed = [task(f"f{i}", state=STOPPED, failed=True, stopped_at=NOW) for i in range(2)]
    p = plan(svc, failed + [task("ok")], NOW)
    assert p.proven and p.failed_tasks == 0 and not p.failed
    svc.primary.proven = True  # kept: later failures no longer trip the breaker
    more = failed + [task(f"g{i}", state=STOPPED, failed=True, stopped_at=NOW)
                     for i in range(3)]
    p = plan(svc, more, NOW)
    assert p.failed_tasks == 0 and not p.failed
