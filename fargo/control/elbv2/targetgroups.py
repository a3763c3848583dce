"""Target groups (ip targets, HTTP and TCP), their attributes, target registration with
draining for the deregistration delay, and target health: the operations, and the small
typed API the ECS services integration uses (register, deregister, health, drained,
target_group)."""

from __future__ import annotations

import ipaddress

from ...model import elbv2 as m
from ...model import elbv2_groups as g
from ...model import elbv2_health as h
from ...model.ipam import Ipam
from .base import Base, TargetGroupInfo, TargetHealthView, TargetRequest, TargetState, page


class TargetGroupOps(Base):
    # ---- CreateTargetGroup, DescribeTargetGroups, ModifyTargetGroup, DeleteTargetGroup
    def create_target_group(self, *, name: str, protocol: str | None = None,
                            protocol_version: str | None = None, port: int | None = None,
                            vpc_id: str | None = None,
                            health: g.HealthRequest | None = None,
                            target_type: str | None = None, tags: list[m.Tag] | None = None,
                            ip_address_type: str | None = None,
                            target_control_port: int | None = None) -> m.TargetGroup:
        m.check_name(name, "TargetGroup")
        g.check_target_type(target_type)
        proto = g.check_protocol(protocol, "target group")
        if port is None:
            raise m.invalid("A port must be specified for a target group with target type "
                            "'ip'")
        if not 1 <= port <= 65535:
            raise m.invalid(f"Port must be between 1 and 65535, not {port}")
        if not vpc_id:
            raise m.invalid("A VPC ID must be specified for a target group with target type "
                            "'ip'")
        if self._vpc_cidr(vpc_id) is None:
            raise m.invalid(f"The VPC ID '{vpc_id[:64]}' is not found")
        if ip_address_type not in (None, "ipv4"):
            raise m.unsupported(f"IpAddressType '{ip_address_type}' is not supported by fargo: "
                                "targets are IPv4 addresses")
        if target_control_port is not None:
            raise m.unsupported("TargetControlPort is not supported by fargo")
        version = g.check_protocol_version(protocol_version, proto)
        settings = g.health_settings(proto, health or g.HealthRequest())
        tags = m.check_tags(tags or [])
        existing = self.tables.tg_by_name(name)
        if existing is not None:
            same = (existing.protocol, existing.port, existing.vpc_id, existing.health,
                    existing.protocol_version) == (proto, port, vpc_id, settings, version)
            if same:
                return existing  # idempotent, as on AWS
            raise m.error("DuplicateTargetGroupName", f"A target group with the same name "
                          f"'{name}' exists, but with different settings")
        if self.tables.count_tgs() >= m.MAX_TARGET_GROUPS:
            raise m.error("TooManyTargetGroups", f"You've reached the limit of "
                          f"{m.MAX_TARGET_GROUPS} target groups")
        tg_id = self._fresh_id()
        tg = m.TargetGroup(arn=m.tg_arn(self.region, name, tg_id), name=name, id=tg_id,
                           protocol=proto, port=port, vpc_id=vpc_id, health=settings,
                           created_at=self.clock(), protocol_version=version, tags=tags)
        self.tables.put_tg(tg)
        return tg

    def describe_target_groups(self, *, lb_arn: str | None = None,
                               arns: list[str] | None = None, names: list[str] | None = None,
                               marker: str | None = None, page_size: int | None = None
                               ) -> tuple[list[m.TargetGroup], str | None]:
        if sum(bool(x) for x in (lb_arn, arns, names)) > 1:
            raise m.invalid("Only one of LoadBalancerArn, TargetGroupArns and Names can be "
                            "specified")
        every = self.tables.tgs()
        if lb_arn:
            self._lb(lb_arn)
            every = [tg for tg in every if lb_arn in self._users(tg.arn)]
        elif arns:
            wanted = {self._tg(a).arn for a in arns}
            every = [tg for tg in every if tg.arn in wanted]
        elif names:
            known = {tg.name for tg in every}
            missing = [n for n in names if n not in known]
            if missing:
                raise m.error("TargetGroupNotFound", "Target groups '[" +
                              ", ".join(n[:64] for n in missing[:10]) + "]' not found")
            every = [tg for tg in every if tg.name in names]
        return page(every, marker, page_size)

    def load_balancers_of(self, tg_arn: str) -> list[str]:
        return self._users(tg_arn)

    def modify_target_group(self, arn: str, health: g.HealthRequest) -> m.TargetGroup:
        tg = self._tg(arn)
        tg.health = g.health_settings(tg.protocol, health, tg.health)
        self.tables.put_tg(tg)
        self.reconciler.poke()
        return tg

    def delete_target_group(self, arn: str) -> None:
        """Refused while a listener, a rule or an ECS service uses it; deleting one that is
        gone succeeds."""
        m.check_arn(arn, "targetgroup")
        if self.tables.get_tg(arn) is None:
            return
        if self._in_use(arn):
            raise m.error("ResourceInUse", f"Target group '{arn}' is currently in use by a "
                          "listener or a rule")
        service = self.in_use_by(arn)
        if service:
            raise m.error("ResourceInUse", f"Target group '{arn}' is currently in use by ECS "
                          f"service '{service}'")
        self.tables.delete_tg(arn)

    # ---- attributes
    def target_group_attributes(self, arn: str) -> list[g.Attribute]:
        return g.tg_attributes(self._tg(arn))

    def modify_target_group_attributes(self, arn: str,
                                       attributes: list[g.Attribute]) -> list[g.Attribute]:
        tg = self._tg(arn)
        changed = g.modify_tg_attributes(tg, attributes)
        if changed != tg:
            self.tables.put_tg(changed)
            self.reconciler.poke()
        return g.tg_attributes(changed)

    # ---- RegisterTargets, DeregisterTargets
    def _address(self, tg: m.TargetGroup, req: TargetRequest) -> tuple[str, int, str]:
        """The target's IP, port and zone, or InvalidTarget: an IPv4 address of a subnet of
        the target group's VPC that is not a load balancer's own."""
        if req.quic_server_id is not None:
            raise m.unsupported("QuicServerId is not supported by fargo")
        try:
            ip = str(ipaddress.IPv4Address(req.id))
        except ValueError:
            raise m.error("InvalidTarget", f"The IP address '{req.id[:64]}' is not a valid "
                          "IPv4 address") from None
        port = tg.port if req.port is None else req.port
        if not 1 <= port <= 65535:
            raise m.invalid(f"Port must be between 1 and 65535, not {port}")
        subnet = next((s for s in self._vpc_subnets(tg.vpc_id) if Ipam.usable(s.cidr, ip)),
                      None)
        if subnet is None:
            raise m.error("InvalidTarget", f"The IP address '{ip}' is not in a subnet of the "
                          f"target group's VPC '{tg.vpc_id}'")
        if req.zone is not None and req.zone != subnet.zone:
            raise m.error("InvalidTarget", f"The IP address '{ip}' is in Availability Zone "
                          f"'{subnet.zone}', not '{req.zone[:64]}'")
        return ip, port, subnet.zone

    def register_targets(self, arn: str, targets: list[TargetRequest]) -> None:
        tg = self._tg(arn)
        if not targets:
            raise m.invalid("Targets: at least one target must be specified")
        own = {a.ip for lb in self.tables.lbs() for a in lb.addresses}
        wanted = {}
        for req in targets:
            ip, port, zone = self._address(tg, req)
            if ip in own:
                raise m.error("InvalidTarget", f"The IP address '{ip}' is a load balancer's "
                              "own address")
            wanted[(ip, port)] = zone
        current = {(t.ip, t.port): t for t in self.tables.targets(arn)}
        new = [k for k in wanted if k not in current]
        if len(current) + len(new) > m.MAX_TARGETS:
            raise m.error("TooManyTargets", f"A target group can have at most {m.MAX_TARGETS} "
                          "targets")
        for ip in {ip for ip, _ in new if ip not in {i for i, _ in current}}:
            if self.tables.registrations(ip) >= m.MAX_REGISTRATIONS:
                raise m.error("TooManyRegistrationsForTargetId", f"The IP address '{ip}' is "
                              f"registered in {m.MAX_REGISTRATIONS} target groups already")
        now = self.clock()
        for (ip, port), zone in wanted.items():
            found = current.get((ip, port))
            if found is None:
                self.tables.put_target(m.Target(arn, ip, port, zone, now))
            elif found.draining_since is not None:  # registered again: it serves again
                found.draining_since = None
                found.registered_at = now
                self.tables.put_target(found)
        self.reconciler.poke()

    def deregister_targets(self, arn: str, targets: list[TargetRequest],
                           missing_ok: bool = False) -> None:
        """Each target drains (no new requests, established ones finish) for the group's
        deregistration delay, then goes; at once if no listener uses the group."""
        tg = self._tg(arn)
        if not targets:
            raise m.invalid("Targets: at least one target must be specified")
        current = {(t.ip, t.port): t for t in self.tables.targets(arn)}
        found: list[m.Target] = []
        unknown: list[str] = []
        for req in targets:
            ip, port, _ = self._address(tg, req)
            if (ip, port) in current:
                found.append(current[(ip, port)])
            else:
                unknown.append(f"{ip}:{port}")
        if unknown and not missing_ok:
            raise m.error("InvalidTarget", f"The following targets are not registered in "
                          f"target group '{arn}': " + ", ".join(unknown[:10]))
        now = self.clock()
        at_once = tg.deregistration_delay == 0 or not self._in_use(arn)
        for target in found:
            if at_once:
                self.tables.delete_target(arn, target.ip, target.port)
            elif target.draining_since is None:
                target.draining_since = now
                self.tables.put_target(target)
        self.reconciler.poke()

    # ---- DescribeTargetHealth
    def describe_target_health(self, arn: str, targets: list[TargetRequest] | None = None,
                               include: list[str] | None = None) -> list[TargetHealthView]:
        tg = self._tg(arn)
        if include:
            raise m.unsupported(f"Include '{str(include[0])[:40]}' is not supported by fargo "
                                "(anomaly detection needs automatic target weights)")
        registered = {(t.ip, t.port): t for t in self.tables.targets(arn)}
        in_use = self._in_use(arn)
        if not targets:
            return [self._health_view(tg, t, in_use) for t in registered.values()]
        out = []
        for req in targets:
            try:
                ip = str(ipaddress.IPv4Address(req.id))
            except ValueError:
                raise m.error("InvalidTarget", f"The IP address '{req.id[:64]}' is not a valid "
                              "IPv4 address") from None
            port = tg.port if req.port is None else req.port
            target = registered.get((ip, port))
            if target is not None:
                out.append(self._health_view(tg, target, in_use))
            else:
                gone = h.NOT_REGISTERED
                out.append(TargetHealthView(None, ip, port, req.zone, self._check_port(tg, port),
                                            gone.state, gone.reason, gone.description))
        return out

    def _check_port(self, tg: m.TargetGroup, port: int) -> str:
        return str(port) if tg.health.port == g.TRAFFIC_PORT else tg.health.port

    def _health_view(self, tg: m.TargetGroup, t: m.Target, in_use: bool) -> TargetHealthView:
        check = self.reconciler.check_of(tg.pool_id, t.ip, t.port)
        health = h.target_health(in_use=in_use, draining=t.draining_since is not None,
                                 status=check.status if check else None,
                                 check=check.check if check else None,
                                 code=check.code if check else None)
        return TargetHealthView(t, t.ip, t.port, t.zone, self._check_port(tg, t.port),
                                health.state, health.reason, health.description)

    # ---- the ECS services integration
    def register(self, target_group_arn: str, ip: str, port: int) -> None:
        """A service's task joins the group (ApiError as RegisterTargets gives it)."""
        self.register_targets(target_group_arn, [TargetRequest(ip, port)])

    def deregister(self, target_group_arn: str, ip: str, port: int) -> None:
        """The task starts draining; one not registered (any more) is fine."""
        if self.tables.get_tg(target_group_arn) is not None:
            self.deregister_targets(target_group_arn, [TargetRequest(ip, port)],
                                    missing_ok=True)

    def health(self, target_group_arn: str) -> list[TargetState]:
        """Every registered target's (ip, port, state, reason); [] for an unknown group."""
        if self.tables.get_tg(target_group_arn) is None:
            return []
        return [TargetState(v.ip, v.port, v.state, v.reason)
                for v in self.describe_target_health(target_group_arn)]

    def drained(self, target_group_arn: str, ip: str, port: int) -> bool:
        """Whether the target is gone from the group: never registered, or its
        deregistration delay is over."""
        tg = self.tables.get_tg(target_group_arn)
        target = self.tables.get_target(target_group_arn, ip, port) if tg else None
        if tg is None or target is None:
            return True
        if target.draining_since is None:
            return False
        return self.clock() >= target.draining_since + tg.deregistration_delay

    def target_group(self, arn: str) -> TargetGroupInfo | None:
        """The target group's port, protocol, VPC and load balancers; None if there is no
        such group (or the ARN is not one)."""
        tg = self.tables.get_tg(arn) if isinstance(arn, str) else None
        if tg is None:
            return None
        return TargetGroupInfo(tg.arn, tg.name, tg.port, tg.protocol, tg.vpc_id,
                               tuple(self._users(tg.arn)), tg.deregistration_delay)
