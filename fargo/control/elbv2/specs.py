"""A load balancer's LoadBalancerSpec (port/loadbalancer.py) from its records: what the data
plane is told to serve. No I/O: the records are read by the caller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ...model import elbv2 as m
from ...model.elbv2_groups import TRAFFIC_PORT
from ...model.vpc import Subnet
from ...port import loadbalancer as lbp


@dataclass
class World:
    """Every record the specs are built from, read once per pass."""

    lbs: list[m.LoadBalancer]
    listeners: dict[str, list[m.Listener]]  # by load balancer ARN
    rules: dict[str, list[m.Rule]]  # by listener ARN
    tgs: dict[str, m.TargetGroup]  # by ARN
    targets: dict[str, list[m.Target]] = field(default_factory=dict)  # by target group ARN

    def actions_of(self, lb_arn: str) -> list[m.Action]:
        out: list[m.Action] = []
        for listener in self.listeners.get(lb_arn, []):
            out += listener.actions
            for rule in self.rules.get(listener.arn, []):
                out += rule.actions
        return out

    def groups_of(self, lb_arn: str) -> list[str]:
        """The target groups the load balancer's listeners and rules forward to, in order."""
        seen: list[str] = []
        for action in self.actions_of(lb_arn):
            for arn in action.target_groups():
                if arn not in seen:
                    seen.append(arn)
        return seen


def health(tg: m.TargetGroup) -> lbp.HealthCheck:
    h = tg.health
    return lbp.HealthCheck(protocol=h.protocol,
                           port=None if h.port == TRAFFIC_PORT else int(h.port),
                           path=h.path or "/", interval=h.interval, timeout=h.timeout,
                           healthy_threshold=h.healthy, unhealthy_threshold=h.unhealthy,
                           codes=h.matcher or "200")


def draining_over(target: m.Target, tg: m.TargetGroup, now: float) -> bool:
    return target.draining_since is not None and \
        now >= target.draining_since + tg.deregistration_delay


def pool(tg: m.TargetGroup, targets: list[m.Target], now: float) -> lbp.Pool:
    live = sorted((t for t in targets if not draining_over(t, tg, now)),
                  key=lambda t: (t.ip, t.port))
    return lbp.Pool(id=tg.pool_id, protocol=tg.protocol,
                    targets=tuple(lbp.Target(t.ip, t.port, t.draining_since is not None)
                                  for t in live),
                    health=health(tg),
                    sticky_seconds=tg.stickiness_seconds if tg.stickiness else None)


def action(a: m.Action, tgs: Mapping[str, m.TargetGroup]) -> lbp.Action:
    if a.kind == "forward":
        return lbp.Action("forward", pools=tuple((tgs[w.arn].pool_id, w.weight)
                                                 for w in a.targets if w.arn in tgs))
    if a.kind == "fixed-response" and a.fixed is not None:
        return lbp.Action("fixed-response", status=int(a.fixed.status),
                          content_type=a.fixed.content_type, body=a.fixed.body)
    r = a.redirect
    assert r is not None
    return lbp.Action("redirect", redirect=lbp.Redirect(
        status=301 if r.status == "HTTP_301" else 302, protocol=r.protocol, host=r.host,
        port=r.port, path=r.path, query=r.query))


def condition(c: m.Condition) -> lbp.Condition:
    return lbp.Condition(kind=c.kind, values=tuple(c.values), header=c.header,
                         pairs=tuple((p.key, p.value) for p in c.pairs))


def build(lb: m.LoadBalancer, world: World, subnets: Mapping[str, Subnet],
          now: float) -> lbp.LoadBalancerSpec:
    listeners = []
    for listener in sorted(world.listeners.get(lb.arn, []), key=lambda x: x.port):
        rules = tuple(lbp.Rule(r.priority, tuple(condition(c) for c in r.conditions),
                               action(r.actions[0], world.tgs))
                      for r in sorted(world.rules.get(listener.arn, []),
                                      key=lambda x: x.priority))
        listeners.append(lbp.Listener(listener.port, listener.protocol,
                                      action(listener.actions[0], world.tgs), rules))
    pools = tuple(pool(world.tgs[arn], world.targets.get(arn, []), now)
                  for arn in world.groups_of(lb.arn) if arn in world.tgs)
    addresses = tuple((subnets[a.subnet_id], a.ip) for a in lb.addresses
                      if a.subnet_id in subnets)
    return lbp.LoadBalancerSpec(id=lb.spec_id, kind=lb.kind, addresses=addresses,
                                groups=tuple(lb.security_groups), listeners=tuple(listeners),
                                pools=pools, idle_timeout=lb.idle_timeout)
