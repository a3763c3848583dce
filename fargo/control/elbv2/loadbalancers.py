"""CreateLoadBalancer, DescribeLoadBalancers, DeleteLoadBalancer, the load balancers'
attributes and every resource's tags. A load balancer takes one address in each of its
subnets from the tasks' own pool and joins its security groups in the firewall as a task's
address does; the reconciler brings it up on the data plane (provisioning, then active)."""

from __future__ import annotations

import logging
from typing import Any

from ...model import elbv2 as m
from ...model import elbv2_groups as g
from ...model.errors import ApiError
from ...model.vpc import Subnet
from ...port.loadbalancer import interface_id
from ..network import TaskNet
from .base import Base, page
from .reconciler import Leaving

log = logging.getLogger("fargo.elbv2")


class LoadBalancerOps(Base):
    def adopt_addresses(self) -> None:
        """At start-up, before any task is placed: the load balancers keep their addresses."""
        for lb in self.tables.lbs():
            for a in lb.addresses:
                self.placement.hold_ip(a.ip)

    def task_nets(self) -> list[TaskNet]:
        """The load balancers' addresses as the firewall holds them (members of their
        security groups, like tasks'), also of those deleted that the host still serves."""
        out = [TaskNet(interface_id(lb.spec_id, a.subnet_id), a.ip, a.subnet_id,
                       tuple(lb.security_groups))
               for lb in self.tables.lbs() for a in lb.addresses]
        for gone in self.reconciler.leaving.values():
            out += gone.nets
        return out

    # ---- CreateLoadBalancer
    def create_load_balancer(self, *, name: str, subnets: list[str] | None = None,
                             subnet_mappings: list[dict[str, Any]] | None = None,
                             security_groups: list[str] | None = None,
                             scheme: str | None = None, kind: str | None = None,
                             ip_address_type: str | None = None,
                             tags: list[m.Tag] | None = None,
                             customer_owned_pool: str | None = None,
                             prefix_nat: str | None = None,
                             ipam_pools: dict[str, Any] | None = None) -> m.LoadBalancer:
        m.check_name(name, "LoadBalancer")
        kind = kind or m.APPLICATION
        if kind == "gateway":
            raise m.unsupported("Gateway load balancers are not supported by fargo: use "
                                "Type application or network")
        if kind not in (m.APPLICATION, m.NETWORK):
            raise m.invalid(f"Load balancer type '{kind[:40]}' is not valid")
        for given, what in ((customer_owned_pool, "CustomerOwnedIpv4Pool"),
                            (prefix_nat, "EnablePrefixForIpv6SourceNat"),
                            (ipam_pools, "IpamPools")):
            if given is not None:
                raise m.unsupported(f"{what} is not supported by fargo")
        if ip_address_type not in (None, "ipv4"):
            raise m.unsupported(f"IpAddressType '{ip_address_type}' is not supported by fargo: "
                                "load balancers have IPv4 addresses only")
        chosen = self._subnets(kind, subnets, subnet_mappings)
        vpc_id = chosen[0].vpc_id
        if scheme is not None and scheme not in ("internal", "internet-facing"):
            raise m.invalid(f"Scheme '{scheme[:40]}' is not valid: use internal")
        if scheme != "internal":
            raise m.error("InvalidSubnet", f"VPC {vpc_id} has no internet gateway: fargo's VPCs "
                          "are private, so its load balancers are internal; give Scheme "
                          "internal (the default, internet-facing, needs an internet gateway)")
        groups = self._groups(kind, vpc_id, security_groups)
        tags = m.check_tags(tags or [])
        existing = self.tables.lb_by_name(name)
        if existing is not None:
            same = (existing.kind, existing.vpc_id, [a.subnet_id for a in existing.addresses],
                    existing.security_groups) == (kind, vpc_id, [s.id for s in chosen], groups)
            if same:
                return existing  # AWS's CreateLoadBalancer is idempotent
            raise m.error("DuplicateLoadBalancerName", f"A load balancer with the same name "
                          f"'{name}' exists, but with different settings")
        if len(self.tables.lbs()) >= m.MAX_LOAD_BALANCERS:
            raise m.error("TooManyLoadBalancers", f"You've reached the limit of "
                          f"{m.MAX_LOAD_BALANCERS} load balancers")
        lb_id = self._fresh_id()
        addresses = self._addresses(chosen)
        lb = m.LoadBalancer(arn=m.lb_arn(self.region, kind, name, lb_id), name=name, id=lb_id,
                            kind=kind, vpc_id=vpc_id, addresses=addresses,
                            security_groups=groups, created_at=self.clock(),
                            dns_name=m.dns_name(kind, name, lb_id, self.region), tags=tags)
        self.tables.put_lb(lb)
        joined: list[str] = []
        try:  # born inside its groups, as a task's interface is
            for a in addresses:
                member = interface_id(lb.spec_id, a.subnet_id)
                self.networks.task_up(member, a.ip, list(groups), a.subnet_id)
                joined.append(member)
        except Exception as err:
            log.exception("load balancer %s: joining its security groups", lb.arn)
            for member in joined:
                self.networks.task_down(member)
            self.tables.delete_lb(lb.arn)
            for a in addresses:
                self.placement.give_back_ip(a.ip)
            raise m.error("InternalFailure", f"The load balancer's security groups could not "
                          f"be applied: {err}"[:500]) from None
        self.reconciler.poke()
        return lb

    def _subnets(self, kind: str, ids: list[str] | None,
                 mappings: list[dict[str, Any]] | None) -> list[Subnet]:
        if ids and mappings:
            raise m.invalid("Subnets and SubnetMappings cannot both be specified")
        wanted: list[str] = []
        for i, mapping in enumerate(mappings or []):
            for key in ("AllocationId", "PrivateIPv4Address", "IPv6Address",
                        "SourceNatIpv6Prefix"):
                if key in mapping:
                    raise m.unsupported(f"SubnetMappings[{i}].{key} is not supported by fargo: "
                                        "a load balancer takes one free address of each subnet")
            if "SubnetId" not in mapping:
                raise m.invalid(f"SubnetMappings[{i}].SubnetId must be specified")
            wanted.append(mapping["SubnetId"])
        wanted += ids or []
        if not wanted:
            raise m.invalid("At least one subnet must be specified")
        chosen: list[Subnet] = []
        for sid in wanted:
            subnet = self.networks.subnet(sid) if isinstance(sid, str) else None
            if subnet is None:
                raise m.error("SubnetNotFound", f"The subnet ID '{str(sid)[:64]}' is not valid")
            if subnet in chosen:
                raise m.invalid(f"Subnet '{sid}' is specified more than once")
            chosen.append(subnet)
        if len({s.vpc_id for s in chosen}) > 1:
            raise m.error("InvalidSubnet", "The subnets must all belong to the same VPC")
        zones = [s.zone for s in chosen]
        if len(set(zones)) != len(zones):
            raise m.error("InvalidConfigurationRequest", "A load balancer cannot be attached "
                          "to multiple subnets in the same Availability Zone")
        if kind == m.APPLICATION and len(zones) < 2:
            raise m.invalid("At least two subnets in two different Availability Zones must be "
                            "specified")
        return chosen

    def _groups(self, kind: str, vpc_id: str, given: list[str] | None) -> list[str]:
        """The security groups named (which must be the VPC's), or, for an application load
        balancer given none, the VPC's default one, as AWS does."""
        if not given:
            return [self.networks.default_group(vpc_id)] if kind == m.APPLICATION else []
        if len(given) > m.MAX_SECURITY_GROUPS:
            raise m.invalid(f"At most {m.MAX_SECURITY_GROUPS} security groups can be "
                            "specified")
        out: list[str] = []
        for gid in given:
            try:
                group = self.networks.group(gid)
            except ApiError:  # EC2's not-found, in ELBv2's words below
                group = None
            if group is None or group.vpc_id != vpc_id:
                raise m.error("InvalidSecurityGroup", f"Security group '{str(gid)[:64]}' does "
                              f"not exist in VPC '{vpc_id}'")
            if gid not in out:
                out.append(gid)
        return out

    def _addresses(self, subnets: list[Subnet]) -> list[m.Address]:
        out: list[m.Address] = []
        for subnet in subnets:
            _, ip = self.placement.allocate([subnet])
            if ip is None:
                for a in out:
                    self.placement.give_back_ip(a.ip)
                raise m.error("InvalidSubnet", f"Not enough IP space available in "
                              f"{subnet.id}: the load balancer needs a free address in each "
                              "of its subnets")
            out.append(m.Address(subnet.id, subnet.zone, ip))
        return out

    # ---- DescribeLoadBalancers, DeleteLoadBalancer
    def describe_load_balancers(self, *, arns: list[str] | None = None,
                                names: list[str] | None = None, marker: str | None = None,
                                page_size: int | None = None
                                ) -> tuple[list[m.LoadBalancer], str | None]:
        if arns and names:
            raise m.invalid("LoadBalancerArns and Names cannot both be specified")
        every = self.tables.lbs()
        if arns:
            found = [self._lb(a) for a in dict.fromkeys(arns)]
            every = [lb for lb in every if lb.arn in {f.arn for f in found}]
        elif names:
            known = {lb.name for lb in every}
            missing = [n for n in names if n not in known]
            if missing:
                raise m.error("LoadBalancerNotFound", "Load balancers '[" +
                              ", ".join(n[:64] for n in missing[:10]) + "]' not found")
            every = [lb for lb in every if lb.name in names]
        return page(every, marker, page_size)

    def delete_load_balancer(self, arn: str) -> None:
        """Its listeners and rules go with it; deleting one that is gone succeeds, as on
        AWS. The host lets go of it soon after, then its addresses are free again."""
        m.check_arn(arn, "loadbalancer")
        lb = self.tables.get_lb(arn)
        if lb is None:
            return
        if lb.deletion_protection:
            raise m.error("OperationNotPermitted", f"Load balancer '{arn}' cannot be deleted "
                          "because deletion protection is enabled")
        nets = [TaskNet(interface_id(lb.spec_id, a.subnet_id), a.ip, a.subnet_id,
                        tuple(lb.security_groups)) for a in lb.addresses]
        self.reconciler.leaving[lb.spec_id] = Leaving(lb.spec_id, nets)
        self.tables.delete_lb(arn)
        self.reconciler.poke()

    # ---- attributes
    def load_balancer_attributes(self, arn: str) -> list[g.Attribute]:
        return g.lb_attributes(self._lb(arn))

    def modify_load_balancer_attributes(self, arn: str,
                                        attributes: list[g.Attribute]) -> list[g.Attribute]:
        lb = self._lb(arn)
        changed = g.modify_lb_attributes(lb, attributes)
        if changed != lb:
            self.tables.put_lb(changed)
            self.reconciler.poke()
        return g.lb_attributes(changed)

    # ---- tags, of every kind of resource
    def _tagged(self, arn: str) -> tuple[Any, list[m.Tag]]:
        kind = m.arn_kind(arn) if isinstance(arn, str) else None
        if kind == "loadbalancer":
            lb = self._lb(arn)
            return lb, lb.tags
        if kind == "targetgroup":
            tg = self._tg(arn)
            return tg, tg.tags
        if kind == "listener":
            listener = self._listener(arn)
            return listener, listener.tags
        if kind == "listener-rule":
            rule = self._rule(arn)
            return rule, rule.rule_tags if isinstance(rule, m.Listener) else rule.tags
        raise m.invalid(f"'{str(arn)[:200]}' is not a valid load balancer, target group, "
                        "listener or rule ARN")

    def _put_tagged(self, obj: Any, arn: str, tags: list[m.Tag]) -> None:
        if isinstance(obj, m.LoadBalancer):
            obj.tags = tags
            self.tables.put_lb(obj)
        elif isinstance(obj, m.TargetGroup):
            obj.tags = tags
            self.tables.put_tg(obj)
        elif isinstance(obj, m.Listener) and obj.arn == arn:
            obj.tags = tags
            self.tables.put_listener(obj)
        elif isinstance(obj, m.Listener):
            obj.rule_tags = tags
            self.tables.put_listener(obj)
        elif isinstance(obj, m.Rule):
            obj.tags = tags
            self.tables.put_rule(obj)

    def _arns(self, arns: list[str]) -> list[str]:
        if not arns:
            raise m.invalid("ResourceArns: at least one resource ARN must be specified")
        if len(arns) > 20:
            raise m.invalid("ResourceArns: at most 20 resources can be specified")
        return list(dict.fromkeys(arns))

    def add_tags(self, arns: list[str], tags: list[m.Tag]) -> None:
        """All or nothing: every resource is checked before any is written (each is read
        again to write it: a listener and its default rule share a record)."""
        if not tags:
            raise m.invalid("Tags: at least one tag must be specified")
        wanted = self._arns(arns)
        for arn in wanted:
            m.check_tags(tags, self._tagged(arn)[1])
        for arn in wanted:
            obj, current = self._tagged(arn)
            self._put_tagged(obj, arn, m.check_tags(tags, current))

    def remove_tags(self, arns: list[str], keys: list[str]) -> None:
        if not keys:
            raise m.invalid("TagKeys: at least one tag key must be specified")
        wanted = self._arns(arns)
        for arn in wanted:
            self._tagged(arn)
        for arn in wanted:
            obj, current = self._tagged(arn)
            self._put_tagged(obj, arn, m.without_tags(current, keys))

    def describe_tags(self, arns: list[str]) -> list[tuple[str, list[m.Tag]]]:
        return [(arn, self._tagged(arn)[1]) for arn in self._arns(arns)]
