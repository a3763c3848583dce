"""A service's tasks in target groups (control/services/targets.py, views.py), over an
in-memory stand-in for ELBv2's target groups."""

from __future__ import annotations

import pytest

from fargo.control.elbv2.base import TargetGroupInfo, TargetState
from fargo.control.services import views
from fargo.control.services.targets import ServiceTargets
from fargo.model import rollout
from fargo.model.errors import InvalidParameterException
from fargo.model.service import LoadBalancerBinding, load_balancer_bindings
from fargo.model.taskrecord import Container, Interface, Task
from tests.test_rollout_model import service

pytestmark = pytest.mark.pure
TG = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/web/0123456789abcdef"


class Groups:
    def __init__(self) -> None:
        self.targets: dict[tuple[str, int], str] = {}
        self.drained_ok = False

    def register(self, arn: str, ip: str, port: int) -> None:
        self.targets[(ip, port)] = "initial"

    def deregister(self, arn: str, ip: str, port: int) -> None:
        self.targets[(ip, port)] = "draining"

    def health(self, arn: str) -> list[TargetState]:
        return [TargetState(ip, port, state, None) for (ip, port), state in
                self.targets.items()]

    def drained(self, arn: str, ip: str, port: int) -> bool:
        return self.drained_ok or (ip, port) not in self.targets

    def target_group(self, arn: str) -> TargetGroupInfo | None:
        return TargetGroupInfo(arn, "web", 8080, "HTTP", "vpc-1", ("lb",), 1) \
            if arn == TG else None


def running_task() -> Task:
    return Task(id="t1", arn="arn:t1", cluster_arn="arn:c/demo", task_definition_arn="td:1",
                family="web", region="us-east-1", cpu=256, memory=512, created_at=0.0,
                availability_zone="us-east-1a",
                interface=Interface("a", "eni-1", "subnet-1", "10.0.0.4", "ip-10-0-0-4"),
                containers=[Container("app", "arn:c", "busybox", last_status="RUNNING")],
                plan=[{"name": "app", "image": "busybox"}], last_status="RUNNING",
                started_at=0.0, group="service:web", started_by="new")


class FakeTask:
    def __init__(self, tid: str, ip: str, last: str = "RUNNING", stopping: bool = False):
        self.id, self.ip, self.last_status, self.stopping = tid, ip, last, stopping


def test_running_tasks_are_registered_and_leaving_ones_drain_first():
    groups = Groups()
    targets = ServiceTargets(groups)
    svc = service(2)
    svc.load_balancers = [LoadBalancerBinding(TG, "app", 8080)]
    tasks = [FakeTask("a", "10.0.0.4"), FakeTask("b", "10.0.0.5", last="PENDING")]
    assert targets.sync(svc, tasks, targets.snapshot(svc), set()) == (1, 0)  # type: ignore[arg-type]
    assert groups.targets == {("10.0.0.4", 8080): "initial"}
    tasks[1].last_status = "RUNNING"
    targets.sync(svc, tasks, targets.snapshot(svc), {"a"})  # type: ignore[arg-type]
    assert groups.targets == {("10.0.0.4", 8080): "draining", ("10.0.0.5", 8080): "initial"}
    assert not targets.drained(svc, tasks[0])  # type: ignore[arg-type]
    groups.drained_ok = True
    assert targets.drained(svc, tasks[0])  # type: ignore[arg-type]


def test_a_target_judges_its_task():
    states = {"healthy": (True, False), "initial": (False, False),
              "unhealthy": (False, True), "draining": (False, False)}
    for state, (healthy, unhealthy) in states.items():
        v = views.view(running_task(), 100.0, None, [(TG, state)])
        assert (v.healthy, v.unhealthy) == (healthy, unhealthy), state
        assert not v.young  # a load balancer's checks prove a task: no settling time
    v = views.view(running_task(), 100.0, None, [(TG, "unhealthy")])
    assert v.why_unhealthy == rollout.ELB_UNHEALTHY.format(TG)


def test_bindings_are_checked_against_the_task_definition():
    td = {"containerDefinitions": [{"name": "app", "portMappings": [{"containerPort": 8080}]}]}
    ok = load_balancer_bindings([{"targetGroupArn": TG, "containerName": "app",
                                  "containerPort": 8080}], td)
    assert ok == [LoadBalancerBinding(TG, "app", 8080)]
    for bad, needle in (({"targetGroupArn": TG, "containerName": "db", "containerPort": 80},
                         "does not exist"),
                        ({"targetGroupArn": TG, "containerName": "app", "containerPort": 80},
                         "container port 80"),
                        ({"loadBalancerName": "classic"}, "loadBalancerName")):
        with pytest.raises(InvalidParameterException, match=needle):
            load_balancer_bindings([bad], td)
    targets = ServiceTargets(Groups())
    with pytest.raises(InvalidParameterException, match="does not exist"):
        targets.check([LoadBalancerBinding(TG + "x", "app", 8080)], {"vpc-1"})
    with pytest.raises(InvalidParameterException, match="VPC"):
        targets.check(ok, {"vpc-2"})
