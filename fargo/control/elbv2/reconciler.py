"""The load balancers' reconciler: level-triggered, it makes the host's data plane serve what
the store says. Each pass reads every record, builds each load balancer's spec, applies the
ones that changed (or that the host no longer runs), removes what the host runs that the
store does not know, ends the deregistration delays that are over, and reads every target's
last health check. After a restart the first pass re-applies everything (the plane's apply
is idempotent), before the API opens.

Store reads and writes happen on the event loop only (the API's operations too), so a pass
never interleaves with an operation; the data plane's calls, which may take a while (HAProxy
starts, reloads), run in a worker thread between them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ...model import elbv2 as m
from ...model.vpc import Subnet
from ...port.loadbalancer import LoadBalancerError, LoadBalancers, LoadBalancerSpec, TargetCheck
from ...store.elbv2 import Elbv2Tables
from ..network import Networks, TaskNet
from ..passloop import PassLoop
from ..tasks.placement import Placement
from . import specs

log = logging.getLogger("fargo.elbv2")
PASS_EVERY = 1.0  # seconds: health checks are read (and drifts repaired) this often
SETTLE = 0.02  # after a poke: a burst of changes is one pass
RETRY = 30.0  # a spec the data plane refused is tried again after this long, or once changed
DNS_TTL = 60  # what AWS gives a load balancer's DNSName


class NameBook(Protocol):
    """The VPC resolver's registry (control/dns.py's Names): load balancers' DNSNames."""

    def put(self, name: str, addresses: Iterable[str], ttl: int = ...,
            vpc_id: str | None = None) -> None: ...

    def remove(self, name: str) -> bool: ...


@dataclass
class Leaving:
    """A deleted load balancer whose addresses are held (in the pool and in its security
    groups) until the host has let go of it."""

    spec_id: str
    nets: list[TaskNet]


@dataclass
class _Outcome:
    removed: list[str] = field(default_factory=list)
    applied: dict[str, LoadBalancerSpec] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    checks: dict[str, list[TargetCheck]] = field(default_factory=dict)


class Reconciler:
    def __init__(self, tables: Elbv2Tables, plane: LoadBalancers, networks: Networks,
                 placement: Placement, subnets: Mapping[str, Subnet],
                 clock: Callable[[], float]):
        self.tables = tables
        self.plane = plane
        self.networks = networks
        self.placement = placement
        self.subnets = subnets
        self.clock = clock
        self.leaving: dict[str, Leaving] = {}
        self._applied: dict[str, LoadBalancerSpec] = {}  # what this process made the host serve
        self._refused: dict[str, tuple[LoadBalancerSpec, float]] = {}
        self._health: dict[str, dict[tuple[str, int], TargetCheck]] = {}  # by pool id
        self._loop = PassLoop(self.pass_once, PASS_EVERY, SETTLE, log, "load balancer pass")
        # Set by the server: each load balancer's DNSName answers its addresses, in every VPC
        # and on the host (an internal load balancer's name resolves anywhere, as on AWS).
        self.names: NameBook | None = None
        self._published: dict[str, tuple[str, ...]] = {}

    # ---- what operations ask
    def poke(self) -> None:
        self._loop.poke()

    def check_of(self, pool_id: str, ip: str, port: int) -> TargetCheck | None:
        return self._health.get(pool_id, {}).get((ip, port))

    # ---- the loop
    async def start(self) -> None:
        await self.pass_once()
        self._loop.start()

    async def close(self) -> None:
        await self._loop.close()

    def world(self) -> specs.World:
        listeners: dict[str, list[m.Listener]] = {}
        for listener in self.tables.listeners():
            listeners.setdefault(listener.lb_arn, []).append(listener)
        rules: dict[str, list[m.Rule]] = {}
        for rule in self.tables.rules():
            rules.setdefault(rule.listener_arn, []).append(rule)
        targets: dict[str, list[m.Target]] = {}
        for target in self.tables.targets():
            targets.setdefault(target.tg_arn, []).append(target)
        return specs.World(self.tables.lbs(), listeners, rules,
                           {tg.arn: tg for tg in self.tables.tgs()}, targets)

    async def pass_once(self) -> None:
        now = self.clock()
        world = self.world()
        self._expire(world, now)
        wanted = {lb.spec_id: specs.build(lb, world, self.subnets, now) for lb in world.lbs}
        fresh = {lb.spec_id for lb in world.lbs if lb.state in (m.PROVISIONING, m.FAILED)}
        held = set()
        for sid, spec in wanted.items():
            refused = self._refused.get(sid)
            if refused and refused[0] == spec and now - refused[1] < RETRY:
                held.add(sid)
        outcome = await asyncio.to_thread(self._converge, wanted, held, fresh,
                                          set(self.leaving))
        self._record(outcome, world, now)
        self._publish(world)

    # ---- in the worker thread: the data plane only
    def _converge(self, wanted: dict[str, LoadBalancerSpec], held: set[str], fresh: set[str],
                  leaving: set[str]) -> _Outcome:
        out = _Outcome()
        try:
            running = set(self.plane.running())
        except Exception:  # noqa: BLE001 - try again next pass
            log.exception("listing the host's load balancers")
            return out
        for sid in sorted((running | leaving) - set(wanted)):
            try:
                self.plane.remove(sid)
                out.removed.append(sid)
            except Exception:  # noqa: BLE001 - removed on a later pass
                log.exception("removing load balancer %s", sid)
        for sid, spec in wanted.items():
            if sid in held or (self._applied.get(sid) == spec and sid in running):
                continue
            try:
                self.plane.apply(spec)
                out.applied[sid] = spec
            except Exception as err:  # noqa: BLE001 - the load balancer's state says why
                if not isinstance(err, LoadBalancerError):
                    log.exception("applying load balancer %s", sid)
                out.failed[sid] = str(err)[:500] or type(err).__name__
                if sid in fresh:  # never served: nothing of it stays half-made on the host
                    try:
                        self.plane.remove(sid)
                    except Exception:  # noqa: BLE001
                        log.exception("removing load balancer %s after a failed start", sid)
        for sid in wanted:
            if sid in out.applied or (sid in self._applied and sid not in out.failed):
                try:
                    out.checks[sid] = self.plane.checks(sid)
                except Exception:  # noqa: BLE001 - health is read again next pass
                    log.exception("reading health checks of %s", sid)
        return out

    # ---- back on the loop: the store and the in-memory views
    def _record(self, out: _Outcome, world: specs.World, now: float) -> None:
        for sid in out.removed:
            self._applied.pop(sid, None)
            self._refused.pop(sid, None)
            gone = self.leaving.pop(sid, None)
            if gone:
                for net in gone.nets:
                    self.networks.task_down(net.tid)
                    self.placement.give_back_ip(net.ip)
        by_spec = {lb.spec_id: lb.arn for lb in world.lbs}
        for sid, spec in out.applied.items():
            self._applied[sid] = spec
            self._refused.pop(sid, None)
            self._set_state(by_spec[sid], m.ACTIVE, None)
        for sid, why in out.failed.items():
            self._applied.pop(sid, None)
            self._refused[sid] = (self._wanted_spec(world, sid, now), now)
            lb = self.tables.get_lb(by_spec[sid])
            if lb is not None:
                state = m.FAILED if lb.state in (m.PROVISIONING, m.FAILED) else m.IMPAIRED
                self._set_state(lb.arn, state, why)
        for checks in out.checks.values():
            pools: dict[str, dict[tuple[str, int], TargetCheck]] = {}
            for c in checks:
                pools.setdefault(c.pool, {})[(c.ip, c.port)] = c
            self._health.update(pools)
        live = {p.id for spec in self._applied.values() for p in spec.pools}
        for pool_id in list(self._health):
            if pool_id not in live:
                del self._health[pool_id]

    def _publish(self, world: specs.World) -> None:
        if self.names is None:
            return
        wanted = {lb.dns_name: tuple(a.ip for a in lb.addresses) for lb in world.lbs}
        for name in set(self._published) - set(wanted):
            self.names.remove(name)
        for name, ips in wanted.items():
            if self._published.get(name) != ips:
                self.names.put(name, ips, DNS_TTL, None)
        self._published = wanted

    def _wanted_spec(self, world: specs.World, sid: str, now: float) -> LoadBalancerSpec:
        lb = next(lb for lb in world.lbs if lb.spec_id == sid)
        return specs.build(lb, world, self.subnets, now)

    def _set_state(self, arn: str, state: str, reason: str | None) -> None:
        lb = self.tables.get_lb(arn)  # as it is now: an operation may have changed it
        if lb is not None and (lb.state, lb.reason) != (state, reason):
            lb.state, lb.reason = state, reason
            self.tables.put_lb(lb)

    def _expire(self, world: specs.World, now: float) -> None:
        """Deregistered targets whose delay is over, or whose group no listener uses, go."""
        used = {arn for lb in world.lbs for arn in world.groups_of(lb.arn)}
        for tg_arn, targets in world.targets.items():
            tg = world.tgs.get(tg_arn)
            for t in list(targets):
                if t.draining_since is None:
                    continue
                if tg is None or tg_arn not in used or specs.draining_over(t, tg, now):
                    self.tables.delete_target(t.tg_arn, t.ip, t.port)
                    targets.remove(t)
