"""Listeners (HTTP on application load balancers, TCP on network ones) and their rules: the
default rule (the listener's default actions) and prioritised rules whose conditions pick
a request's action."""

from __future__ import annotations

from typing import Any

from ...model import elbv2 as m
from ...model import elbv2_rules as r
from .base import Base, RuleView, page

_PROTOCOL = {m.APPLICATION: "HTTP", m.NETWORK: "TCP"}


class ListenerOps(Base):
    def _protocol(self, lb: m.LoadBalancer, protocol: str | None) -> str:
        if protocol is None:
            raise m.invalid("A listener protocol must be specified")
        if protocol in ("HTTPS", "TLS"):
            raise m.unsupported(f"{protocol} listeners need certificates, which fargo does not "
                                "have yet: use " + _PROTOCOL[lb.kind])
        if lb.kind == m.APPLICATION and protocol != "HTTP":
            raise m.error("UnsupportedProtocol", f"Protocol '{protocol[:40]}' is not supported "
                          "by application load balancers: use HTTP")
        if lb.kind == m.NETWORK and protocol in ("UDP", "TCP_UDP", "QUIC", "TCP_QUIC"):
            raise m.unsupported(f"Protocol '{protocol}' is not supported by fargo's network "
                                "load balancers: use TCP")
        if lb.kind == m.NETWORK and protocol != "TCP":
            raise m.error("UnsupportedProtocol", f"Protocol '{protocol[:40]}' is not supported "
                          "by network load balancers: use TCP")
        return protocol

    @staticmethod
    def _no_tls(certificates: list[Any] | None, ssl_policy: str | None,
                alpn: list[str] | None, mutual: dict[str, Any] | None) -> None:
        for given, what in ((certificates, "Certificates"), (ssl_policy, "SslPolicy"),
                            (alpn, "AlpnPolicy"), (mutual, "MutualAuthentication")):
            if given is not None:
                raise m.unsupported(f"{what} needs an HTTPS or TLS listener, which fargo does "
                                    "not have yet")

    def _check_forwards(self, lb: m.LoadBalancer, actions: list[m.Action]) -> None:
        """Every target group forwarded to exists, is in the load balancer's VPC, speaks
        the listener's protocol, and serves no other load balancer (AWS allows one)."""
        for action in actions:
            for arn in action.target_groups():
                tg = self.tables.get_tg(arn)
                if tg is None:
                    raise m.error("TargetGroupNotFound", f"Target group '{arn}' not found")
                if tg.vpc_id != lb.vpc_id:
                    raise m.error("InvalidConfigurationRequest", f"Target group '{arn}' is in "
                                  f"VPC '{tg.vpc_id}', the load balancer in '{lb.vpc_id}'")
                if tg.protocol != _PROTOCOL[lb.kind]:
                    raise m.error("IncompatibleProtocols", f"The protocol '{tg.protocol}' of "
                                  f"target group '{arn}' is not compatible with the "
                                  f"{_PROTOCOL[lb.kind]} listeners of {lb.kind} load balancers")
                others = [x for x in self._users(arn) if x != lb.arn]
                if others:
                    raise m.error("TargetGroupAssociationLimit", "The following target groups "
                                  f"cannot be associated with more than one load balancer: "
                                  f"'{arn}'")

    # ---- CreateListener, DescribeListeners, ModifyListener, DeleteListener
    def create_listener(self, *, lb_arn: str, protocol: str | None, port: int | None,
                        default_actions: list[dict[str, Any]], tags: list[m.Tag] | None = None,
                        certificates: list[Any] | None = None, ssl_policy: str | None = None,
                        alpn_policy: list[str] | None = None,
                        mutual_authentication: dict[str, Any] | None = None) -> m.Listener:
        lb = self._lb(lb_arn)
        self._no_tls(certificates, ssl_policy, alpn_policy, mutual_authentication)
        proto = self._protocol(lb, protocol)
        if port is None:
            raise m.invalid("A listener port must be specified")
        if not 1 <= port <= 65535:
            raise m.invalid(f"Port must be between 1 and 65535, not {port}")
        actions = r.parse_actions(default_actions, lb.kind, "DefaultActions")
        self._check_forwards(lb, actions)
        tags = m.check_tags(tags or [])
        listeners = self.tables.listeners(lb.arn)
        taken = next((x for x in listeners if x.port == port), None)
        if taken is not None:
            if (taken.protocol, taken.actions) == (proto, actions):
                return taken  # the same listener again: AWS answers with it
            raise m.error("DuplicateListener", f"A listener already exists on port {port} of "
                          f"load balancer '{lb.arn}'")
        if len(listeners) >= m.MAX_LISTENERS:
            raise m.error("TooManyListeners", f"A load balancer can have at most "
                          f"{m.MAX_LISTENERS} listeners")
        lid = self._fresh_id()
        arn = m.listener_arn(lb, self.region, lid)
        listener = m.Listener(arn=arn, lb_arn=lb.arn, id=lid, port=port, protocol=proto,
                              actions=actions, rule_arn="", created_at=self.clock(), tags=tags)
        listener.rule_arn = m.rule_arn(listener, self.region, self._fresh_id())
        self.tables.put_listener(listener)
        self.reconciler.poke()
        return listener

    def describe_listeners(self, *, lb_arn: str | None = None, arns: list[str] | None = None,
                           marker: str | None = None, page_size: int | None = None
                           ) -> tuple[list[m.Listener], str | None]:
        if bool(lb_arn) == bool(arns):
            raise m.invalid("Specify either ListenerArns or LoadBalancerArn (one of them)")
        if lb_arn:
            every = self.tables.listeners(self._lb(lb_arn).arn)
        else:
            every = [self._listener(a) for a in dict.fromkeys(arns or [])]
        return page(every, marker, page_size)

    def modify_listener(self, arn: str, *, protocol: str | None = None,
                        port: int | None = None,
                        default_actions: list[dict[str, Any]] | None = None,
                        certificates: list[Any] | None = None, ssl_policy: str | None = None,
                        alpn_policy: list[str] | None = None,
                        mutual_authentication: dict[str, Any] | None = None) -> m.Listener:
        listener = self._listener(arn)
        lb = self._lb(listener.lb_arn)
        self._no_tls(certificates, ssl_policy, alpn_policy, mutual_authentication)
        if protocol is not None:
            listener.protocol = self._protocol(lb, protocol)
        if port is not None:
            if not 1 <= port <= 65535:
                raise m.invalid(f"Port must be between 1 and 65535, not {port}")
            if any(x.port == port and x.arn != arn for x in self.tables.listeners(lb.arn)):
                raise m.error("DuplicateListener", f"A listener already exists on port {port} "
                              f"of load balancer '{lb.arn}'")
            listener.port = port
        if default_actions is not None:
            actions = r.parse_actions(default_actions, lb.kind, "DefaultActions")
            self._check_forwards(lb, actions)
            listener.actions = actions
        self.tables.put_listener(listener)
        self.reconciler.poke()
        return listener

    def delete_listener(self, arn: str) -> None:
        self._listener(arn)
        self.tables.delete_listener(arn)
        self.reconciler.poke()

    # ---- rules
    def _rule_view(self, rule: m.Rule | m.Listener) -> RuleView:
        if isinstance(rule, m.Listener):
            return RuleView(rule.rule_arn, rule.arn, "default", [], rule.actions, True)
        return RuleView(rule.arn, rule.listener_arn, str(rule.priority), rule.conditions,
                        rule.actions, False)

    def create_rule(self, *, listener_arn: str, conditions: list[dict[str, Any]],
                    priority: int, actions: list[dict[str, Any]],
                    tags: list[m.Tag] | None = None,
                    transforms: list[Any] | None = None) -> RuleView:
        listener = self._listener(listener_arn)
        lb = self._lb(listener.lb_arn)
        if lb.kind != m.APPLICATION:
            raise m.error("InvalidConfigurationRequest", "Listeners of network load balancers "
                          "have no rules, only their default action")
        if transforms:
            raise m.unsupported("Transforms (host-header-rewrite, url-rewrite) are not "
                                "supported by fargo")
        r.check_priority(priority)
        parsed_conditions = r.parse_conditions(conditions)
        parsed_actions = r.parse_actions(actions, lb.kind, "Actions")
        self._check_forwards(lb, parsed_actions)
        tags = m.check_tags(tags or [])
        if any(x.priority == priority for x in self.tables.rules(listener.arn)):
            raise m.error("PriorityInUse", f"Priority '{priority}' is currently in use")
        listeners = [x.arn for x in self.tables.listeners(lb.arn)]
        if self.tables.count_rules(listeners) >= m.MAX_RULES:
            raise m.error("TooManyRules", f"A load balancer can have at most {m.MAX_RULES} "
                          "rules besides its listeners' default rules")
        rule = m.Rule(arn=m.rule_arn(listener, self.region, self._fresh_id()),
                      listener_arn=listener.arn, id="", priority=priority,
                      conditions=parsed_conditions, actions=parsed_actions,
                      created_at=self.clock(), tags=tags)
        rule.id = rule.arn.rsplit("/", 1)[-1]
        self.tables.put_rule(rule)
        self.reconciler.poke()
        return self._rule_view(rule)

    def describe_rules(self, *, listener_arn: str | None = None,
                       arns: list[str] | None = None, marker: str | None = None,
                       page_size: int | None = None) -> tuple[list[RuleView], str | None]:
        if bool(listener_arn) == bool(arns):
            raise m.invalid("Specify either RuleArns or ListenerArn (one of them)")
        if listener_arn:
            listener = self._listener(listener_arn)
            views = [self._rule_view(x) for x in self.tables.rules(listener.arn)]
            views.append(self._rule_view(listener))
        else:
            views = [self._rule_view(self._rule(a)) for a in dict.fromkeys(arns or [])]
        return page(views, marker, page_size)

    def modify_rule(self, arn: str, *, conditions: list[dict[str, Any]] | None = None,
                    actions: list[dict[str, Any]] | None = None,
                    transforms: list[Any] | None = None,
                    reset_transforms: bool | None = None) -> RuleView:
        """reset_transforms: accepted, as there are never transforms to reset."""
        found = self._rule(arn)
        if transforms:
            raise m.unsupported("Transforms (host-header-rewrite, url-rewrite) are not "
                                "supported by fargo")
        listener = found if isinstance(found, m.Listener) else self._listener(found.listener_arn)
        lb = self._lb(listener.lb_arn)
        parsed = None
        if actions is not None:
            parsed = r.parse_actions(actions, lb.kind, "Actions")
            self._check_forwards(lb, parsed)
        if isinstance(found, m.Listener):
            if conditions is not None:
                raise m.error("OperationNotPermitted", "The conditions of a default rule "
                              "cannot be modified")
            if parsed is not None:
                found.actions = parsed
                self.tables.put_listener(found)
        else:
            if conditions is not None:
                found.conditions = r.parse_conditions(conditions)
            if parsed is not None:
                found.actions = parsed
            self.tables.put_rule(found)
        self.reconciler.poke()
        return self._rule_view(found)

    def delete_rule(self, arn: str) -> None:
        found = self._rule(arn)
        if isinstance(found, m.Listener):
            raise m.error("OperationNotPermitted", f"Default rule '{arn}' cannot be deleted")
        self.tables.delete_rule(arn)
        self.reconciler.poke()

    def set_rule_priorities(self, pairs: list[tuple[str | None, int | None]]) -> list[RuleView]:
        """All or nothing: the rules' new priorities must collide with no other rule of
        their listeners."""
        if not pairs:
            raise m.invalid("RulePriorities: at least one rule must be specified")
        changed: dict[str, m.Rule] = {}
        for i, (arn, priority) in enumerate(pairs):
            if arn is None or priority is None:
                raise m.invalid(f"RulePriorities[{i}] needs RuleArn and Priority")
            if arn in changed:
                raise m.invalid(f"Rule '{arn}' is given more than once")
            found = self._rule(arn)
            if isinstance(found, m.Listener):
                raise m.error("OperationNotPermitted", "The priority of a default rule cannot "
                              "be changed")
            found.priority = r.check_priority(priority)
            changed[arn] = found
        for listener_arn in {x.listener_arn for x in changed.values()}:
            taken: dict[int, str] = {}
            for rule in self.tables.rules(listener_arn):
                rule = changed.get(rule.arn, rule)
                if rule.priority in taken:
                    raise m.error("PriorityInUse", f"Priority '{rule.priority}' is currently "
                                  "in use")
                taken[rule.priority] = rule.arn
        self.tables.put_rules(list(changed.values()))
        self.reconciler.poke()
        return [self._rule_view(x) for x in changed.values()]

