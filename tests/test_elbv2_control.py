"""control/elbv2 against the in-memory load balancer plane (tests/fakelb.py): specs, states,
addresses, security groups, health, draining, restarts. No root, no server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fargo.control.capacity import Capacity
from fargo.control.elbv2 import Elbv2, TargetRequest
from fargo.control.elbv2 import reconciler as rec
from fargo.control.network import Networks, TaskNet
from fargo.control.tasks.placement import Placement
from fargo.model import elbv2 as m
from fargo.model.errors import ApiError
from fargo.model.vpc import default_vpc
from fargo.port.loadbalancer import interface_id
from fargo.store.sqlite import Store
from tests.fakelb import FakeLoadBalancers
from tests.fakeplane import FakePlane

pytestmark = pytest.mark.pure
REGION = "us-east-1"
VPC = default_vpc(REGION, "10.89.0.0/16")
SUBNETS = [s.id for s in VPC.subnets]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class World:
    """A store, a network, a placement and an Elbv2 over the fake planes."""

    def __init__(self, path: Path, lbs: FakeLoadBalancers | None = None,
                 clock: Clock | None = None):
        self.store = Store(path)
        self.plane = FakePlane()
        self.lbs = lbs or FakeLoadBalancers()
        self.clock = clock or Clock()
        self.nets: list[TaskNet] = []
        self.networks = Networks(self.store, VPC, self.plane.network, lambda: self.nets_now())
        self.placement = Placement(VPC, Capacity(4096, 8192), self.networks)
        self.elb = Elbv2(self.store, self.networks, self.placement, self.lbs, REGION,
                         self.clock)
        self.networks.start(self.elb.task_nets())

    def nets_now(self) -> list[TaskNet]:
        return self.elb.task_nets() if hasattr(self, "elb") else []

    def settle(self) -> None:
        asyncio.run(self.elb.reconciler.pass_once())

    def close(self) -> None:
        self.plane.close()
        self.store.close()

    # a typical application load balancer
    def alb(self, name: str = "web", **kw: Any) -> m.LoadBalancer:
        return self.elb.create_load_balancer(name=name, subnets=SUBNETS[:2], scheme="internal",
                                             **kw)

    def tg(self, name: str = "web", protocol: str = "HTTP", **kw: Any) -> m.TargetGroup:
        return self.elb.create_target_group(name=name, protocol=protocol, port=8080,
                                            vpc_id=VPC.id, target_type="ip", **kw)

    def forward(self, lb: m.LoadBalancer, tg: m.TargetGroup, port: int = 80) -> m.Listener:
        return self.elb.create_listener(lb_arn=lb.arn, protocol="HTTP" if lb.kind ==
                                        m.APPLICATION else "TCP", port=port,
                                        default_actions=[{"Type": "forward",
                                                          "TargetGroupArn": tg.arn}])


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    world = World(tmp_path / "state.db")
    yield world
    world.close()


def test_a_load_balancer_is_made_on_the_plane_and_becomes_active(w: World) -> None:
    lb = w.alb()
    assert lb.state == m.PROVISIONING
    assert lb.dns_name.startswith("internal-web-") and lb.dns_name.endswith(
        ".us-east-1.elb.amazonaws.com")
    assert [a.subnet_id for a in lb.addresses] == SUBNETS[:2]
    assert lb.security_groups == [VPC.default_sg]  # an ALB given none: the VPC's default
    # Its addresses are members of its groups in the firewall, as a task's are.
    joined = {c[0]: c for c in w.plane.calls_to("join_groups")}
    for a in lb.addresses:
        member = interface_id(lb.spec_id, a.subnet_id)
        assert joined[member][1:] == (a.ip, [VPC.default_sg])
        assert a.ip in w.networks.spec().members[VPC.default_sg]
    w.settle()
    spec = w.lbs.specs[lb.spec_id]
    assert spec.kind == "application"
    assert [(s.id, ip) for s, ip in spec.addresses] == [(a.subnet_id, a.ip)
                                                         for a in lb.addresses]
    assert w.elb.tables.get_lb(lb.arn).state == m.ACTIVE  # type: ignore[union-attr]


def test_a_task_never_gets_a_load_balancers_address(w: World) -> None:
    lb = w.alb()
    taken = {a.ip for a in lb.addresses}
    for _ in range(5):
        _, ip = w.placement.allocate([VPC.subnets[0]])
        assert ip not in taken


def test_listener_rules_and_pools_reach_the_spec(w: World) -> None:
    lb, tg = w.alb(), w.tg()
    listener = w.forward(lb, tg)
    w.elb.create_rule(listener_arn=listener.arn, priority=5,
                      conditions=[{"Field": "path-pattern", "Values": ["/static/*"]}],
                      actions=[{"Type": "fixed-response", "FixedResponseConfig": {
                          "StatusCode": "418", "ContentType": "text/plain",
                          "MessageBody": "teapot"}}])
    w.elb.register_targets(tg.arn, [TargetRequest("10.89.0.10"), TargetRequest("10.89.64.10",
                                                                                 9090)])
    w.settle()
    spec = w.lbs.specs[lb.spec_id]
    (front,) = spec.listeners
    assert (front.port, front.protocol) == (80, "HTTP")
    assert front.default.kind == "forward" and front.default.pools == ((tg.pool_id, 1),)
    (rule,) = front.rules
    assert rule.priority == 5 and rule.conditions[0].kind == "path-pattern"
    assert rule.conditions[0].values == ("/static/*",)
    assert (rule.action.kind, rule.action.status, rule.action.body) == ("fixed-response", 418,
                                                                         "teapot")
    (pool,) = spec.pools
    assert pool.protocol == "HTTP" and pool.health.path == "/" and pool.health.codes == "200"
    assert [(t.ip, t.port, t.draining) for t in pool.targets] == [
        ("10.89.0.10", 8080, False), ("10.89.64.10", 9090, False)]


def test_target_health_follows_the_planes_checks(w: World) -> None:
    lb, tg = w.alb(), w.tg()
    w.elb.register_targets(tg.arn, [TargetRequest("10.89.0.10")])
    assert w.elb.health(tg.arn) == [("10.89.0.10", 8080, "unused", "Target.NotInUse")]
    w.forward(lb, tg)
    assert w.elb.health(tg.arn)[0][2:] == ("initial", "Elb.RegistrationInProgress")
    w.settle()
    assert w.elb.health(tg.arn)[0][2:] == ("initial", "Elb.InitialHealthChecking")
    w.lbs.set_check(tg.pool_id, "10.89.0.10", 8080, "UP", "L7OK", 200)
    w.settle()
    assert w.elb.health(tg.arn)[0][2:] == ("healthy", None)
    w.lbs.set_check(tg.pool_id, "10.89.0.10", 8080, "DOWN", "L7STS", 503)
    w.settle()
    (view,) = w.elb.describe_target_health(tg.arn)
    assert (view.state, view.reason) == ("unhealthy", "Target.ResponseCodeMismatch")
    assert view.description == "Health checks failed with these codes: [503]"
    w.lbs.set_check(tg.pool_id, "10.89.0.10", 8080, "DOWN", "L4TOUT")
    w.settle()
    assert w.elb.health(tg.arn)[0][2:] == ("unhealthy", "Target.Timeout")
    (gone,) = w.elb.describe_target_health(tg.arn, [TargetRequest("10.89.0.11")])
    assert (gone.state, gone.reason) == ("unused", "Target.NotRegistered")


def test_a_deregistered_target_drains_for_the_delay_then_goes(w: World) -> None:
    lb, tg = w.alb(), w.tg()
    w.forward(lb, tg)
    w.elb.modify_target_group_attributes(tg.arn, [
        m_attr("deregistration_delay.timeout_seconds", "30")])
    w.elb.register(tg.arn, "10.89.0.10", 8080)
    w.settle()
    w.elb.deregister(tg.arn, "10.89.0.10", 8080)
    assert not w.elb.drained(tg.arn, "10.89.0.10", 8080)
    w.settle()
    assert w.lbs.specs[lb.spec_id].pools[0].targets[0].draining
    assert w.elb.health(tg.arn)[0][2:] == ("draining", "Target.DeregistrationInProgress")
    w.clock.now += 29
    w.settle()
    assert not w.elb.drained(tg.arn, "10.89.0.10", 8080)
    w.clock.now += 1
    assert w.elb.drained(tg.arn, "10.89.0.10", 8080)
    w.settle()
    assert w.lbs.specs[lb.spec_id].pools[0].targets == ()
    assert w.elb.health(tg.arn) == []
    w.elb.deregister(tg.arn, "10.89.0.10", 8080)  # gone already: fine for the services


def test_an_unused_group_deregisters_at_once(w: World) -> None:
    tg = w.tg()
    w.elb.register(tg.arn, "10.89.0.10", 8080)
    w.elb.deregister(tg.arn, "10.89.0.10", 8080)
    assert w.elb.drained(tg.arn, "10.89.0.10", 8080) and w.elb.health(tg.arn) == []


def test_a_refused_spec_fails_the_load_balancer_and_leaves_nothing(w: World) -> None:
    w.lbs.refuse = "haproxy would not start"
    lb = w.alb()
    w.settle()
    found = w.elb.tables.get_lb(lb.arn)
    assert found is not None and (found.state, found.reason) == (m.FAILED,
                                                                  "haproxy would not start")
    assert ("remove", lb.spec_id) in w.lbs.calls and lb.spec_id not in w.lbs.specs
    w.lbs.refuse = None
    w.settle()  # the same spec is not retried at once
    assert w.elb.tables.get_lb(lb.arn).state == m.FAILED  # type: ignore[union-attr]
    w.clock.now += rec.RETRY
    w.settle()
    assert w.elb.tables.get_lb(lb.arn).state == m.ACTIVE  # type: ignore[union-attr]


def test_a_deleted_load_balancer_gives_its_addresses_back_once_gone(w: World) -> None:
    lb = w.alb()
    w.settle()
    ips = {a.ip for a in lb.addresses}
    w.elb.delete_load_balancer(lb.arn)
    with pytest.raises(ApiError) as err:
        w.elb.describe_load_balancers(arns=[lb.arn])
    assert err.value.code == "LoadBalancerNotFound"
    held = {n.ip for n in w.elb.task_nets()}
    assert ips <= held  # still the host's until removed
    w.settle()
    assert lb.spec_id not in w.lbs.specs
    assert not ips & {n.ip for n in w.elb.task_nets()}
    assert not ips & set().union(*w.networks.spec().members.values())
    _, ip = w.placement.allocate([VPC.subnets[0]])
    assert ip in ips  # the lowest free address again


def test_after_a_restart_the_store_is_reapplied_and_strays_removed(tmp_path: Path) -> None:
    first = World(tmp_path / "state.db")
    lb = first.alb()
    tg = first.tg()
    first.forward(lb, tg)
    first.settle()
    kept = first.lbs.specs[lb.spec_id]
    first.close()
    plane = FakeLoadBalancers()
    plane.specs[lb.spec_id] = kept  # the host kept serving it
    plane.specs["00000000000000ff"] = kept  # and one the store does not know
    again = World(tmp_path / "state.db", lbs=plane, clock=first.clock)
    try:
        taken = {a.ip for a in lb.addresses}
        _, ip = again.placement.allocate([VPC.subnets[0]])
        assert ip not in taken  # adopted before any task is placed
        assert {interface_id(lb.spec_id, a.subnet_id) for a in lb.addresses} <= \
            set(again.networks.spec().tasks)
        again.settle()
        assert ("remove", "00000000000000ff") in plane.calls
        assert plane.specs[lb.spec_id] == kept and plane.applied(lb.spec_id) == 1
        again.settle()
        assert plane.applied(lb.spec_id) == 1  # nothing changed: not applied again
    finally:
        again.close()


def test_a_group_in_use_cannot_be_deleted(w: World) -> None:
    lb, tg = w.alb(), w.tg()
    listener = w.forward(lb, tg)
    with pytest.raises(ApiError) as err:
        w.elb.delete_target_group(tg.arn)
    assert err.value.code == "ResourceInUse"
    w.elb.delete_listener(listener.arn)
    w.elb.in_use_by = lambda arn: "arn:aws:ecs:us-east-1:000000000000:service/c/s"
    with pytest.raises(ApiError) as err:
        w.elb.delete_target_group(tg.arn)
    assert err.value.code == "ResourceInUse" and "service/c/s" in err.value.message
    w.elb.in_use_by = lambda arn: None
    w.elb.delete_target_group(tg.arn)
    assert w.elb.target_group(tg.arn) is None


def test_target_group_info_for_services(w: World) -> None:
    lb, tg = w.alb(), w.tg()
    w.forward(lb, tg)
    info = w.elb.target_group(tg.arn)
    assert info is not None
    assert (info.port, info.protocol, info.vpc_id, info.load_balancers) == (
        8080, "HTTP", VPC.id, (lb.arn,))
    assert w.elb.target_group("nonsense") is None


def test_a_second_load_balancer_may_not_share_a_group(w: World) -> None:
    tg = w.tg()
    w.forward(w.alb("one"), tg)
    with pytest.raises(ApiError) as err:
        w.forward(w.alb("two"), tg)
    assert err.value.code == "TargetGroupAssociationLimit"


def test_network_load_balancers_forward_tcp(w: World) -> None:
    lb = w.elb.create_load_balancer(name="tcp", kind="network", subnets=SUBNETS[:1],
                                    scheme="internal")
    tg = w.tg("tcp", protocol="TCP")
    w.forward(lb, tg, port=5432)
    w.settle()
    spec = w.lbs.specs[lb.spec_id]
    assert spec.kind == "network" and spec.listeners[0].protocol == "TCP"
    assert spec.pools[0].health.protocol == "TCP" and spec.pools[0].health.timeout == 10
    # an NLB without groups is filtered as a member of its VPC's default group
    assert lb.security_groups == []
    (net,) = w.elb.task_nets()
    assert VPC.default_sg in w.networks._groups_of(net)


def m_attr(key: str, value: str) -> Any:
    from fargo.model.elbv2_groups import Attribute
    return Attribute(key, value)


class Book:
    def __init__(self) -> None:
        self.names: dict[str, tuple[list[str], int, str | None]] = {}

    def put(self, name: str, addresses: Any, ttl: int = 60, vpc_id: str | None = None) -> None:
        self.names[name] = (list(addresses), ttl, vpc_id)

    def remove(self, name: str) -> bool:
        return self.names.pop(name, None) is not None


def test_dns_names_answer_the_addresses_until_deleted(w: World) -> None:
    book = Book()
    w.elb.reconciler.names = book
    lb = w.alb()
    w.settle()
    assert book.names == {lb.dns_name: ([a.ip for a in lb.addresses], 60, None)}
    w.elb.delete_load_balancer(lb.arn)
    w.settle()
    assert book.names == {}
