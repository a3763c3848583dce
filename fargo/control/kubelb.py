"""Load balancers from Kubernetes, as the AWS Load Balancer Controller makes them on EKS
Fargate: an application load balancer per Ingress group of class alb, a network load balancer
per Service of type LoadBalancer it is asked for, each with ip targets = the ready endpoints
of the Services behind it. They are ordinary ELBv2 objects, made through control/elbv2's
operations (what `aws elbv2` sees), tagged as the controller tags them.

Level-triggered: each pass reads the Ingresses, Services, EndpointSlices and pods of a
cluster, finds what it made by its tags (never by memory: after a SIGKILL the next pass finds
the same load balancers; names are a hash of cluster and stack, so a create the crash cut
short is answered by ELBv2's idempotent create), and converges: load balancers, target
groups and their health checks, listeners and rules, targets, then status, events and
finalizers. What has no member any more is deleted, and the finalizer then let go.

Pods: before a pod's task is stopped (Pods.before_stop), its targets are deregistered and the
host's HAProxy told at once, so no new request reaches it after its SIGTERM; a new pod is
given traffic only once HAProxy's checks pass, and in namespaces labelled
elbv2.k8s.aws/pod-readiness-gate-inject=enabled its readiness gate holds the pod unready
(and a rolling update waiting) until its target is healthy."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..model import elbv2 as m
from ..model import elbv2_groups as g
from ..model import elbv2_rules as r
from ..model import ingress as ing
from ..model.errors import ApiError
from ..model.kubeerrors import KubeError
from .elbv2 import Elbv2, TargetRequest
from .elbv2 import specs as lbspecs
from .kubecontrol import Controller
from .kubestate import Change, KubeState, now_rfc3339

log = logging.getLogger("fargo.kubelb")
Obj = dict[str, Any]
WATCHED = ("ingresses", "ingressclasses", "services", "endpointslices", "pods", "namespaces")
NOT_FOUND = {"Type": "fixed-response", "FixedResponseConfig": {
    "StatusCode": "404", "ContentType": "text/plain"}}


def _tags(obj: m.LoadBalancer | m.TargetGroup) -> dict[str, str]:
    return {t.key: t.value for t in obj.tags}


# An NLB Service's stack id as this controller keys it: an Ingress nh/web and a Service
# nh/web are two stacks (upstream tells them apart by their tag's key).
SERVICE_KEY = "service:"


def _stack_id(tags: dict[str, str]) -> str | None:
    if ing.INGRESS_STACK in tags:
        return tags[ing.INGRESS_STACK]
    stack = tags.get(ing.SERVICE_STACK)
    return None if stack is None else SERVICE_KEY + stack


def _deleting(obj: Obj) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


class LoadBalancerController(Controller):
    name = "aws-load-balancer-controller"

    def __init__(self, state: KubeState, elbv2: Elbv2,
                 cluster_doc: Callable[[str], Obj | None]):
        self.state = state
        self.elbv2 = elbv2
        self.cluster_doc = cluster_doc
        self._said: set[tuple[str, str, str]] = set()  # events already recorded (uid, why, text)
        # Each cluster's target groups and the Service (ns, name) behind each, as the last
        # pass made them: what a new pod's readiness gates are injected from.
        self._bound: dict[str, dict[str, tuple[str, str]]] = {}
        self._binding: dict[str, tuple[str, str]] = {}

    def interested(self, change: Change) -> bool:
        return change.resource in WATCHED

    # ---- the pass
    def reconcile(self, cluster: str) -> None:
        doc = self.cluster_doc(cluster)
        if doc is None:
            return
        if self.state.find(cluster, "ingressclasses", "", ing.CLASS) is None:
            self.state.create(cluster, "ingressclasses", "", ing.alb_class())
        self._binding = {}
        wanted, kept = self._wanted(cluster)
        made = [(_stack_id(t), lb.arn)
                for lb in self.elbv2.tables.lbs()
                if (t := _tags(lb)).get(ing.CLUSTER_TAG) == cluster]
        for stack, members in wanted.values():
            try:
                lb = self._converge(cluster, doc, stack)
            except ApiError as err:
                for obj in members:
                    self._event(cluster, obj, "Warning", "FailedDeployModel",
                                f"Failed deploy model due to {err.code}: {err.message}")
                continue
            for obj in members:
                self._status(cluster, obj, lb.dns_name)
        live = set(wanted) | kept
        for stack_id, arn in made:
            if stack_id not in live:
                self.elbv2.delete_load_balancer(arn)
        for tg in self.elbv2.tables.tgs():
            t = _tags(tg)
            stack_id = _stack_id(t)
            if t.get(ing.CLUSTER_TAG) == cluster and stack_id not in live \
                    and not self.elbv2.load_balancers_of(tg.arn):
                self.elbv2.delete_target_group(tg.arn)
        self._finalize(cluster, live)
        self._bound[cluster] = self._binding

    def _wanted(self, cluster: str) -> tuple[dict[str, tuple[ing.Stack, list[Obj]]], set[str]]:
        """The stacks to make now (by stack id, with the objects they serve), and the ids of
        those left as they are because their model could not be built."""
        classes = self.state.list(cluster, "ingressclasses")
        services = {(s["metadata"]["namespace"], s["metadata"]["name"]): s
                    for s in self.state.list(cluster, "services")}
        groups: dict[str, list[tuple[int, str, str, Obj]]] = {}
        for obj in self.state.list(cluster, "ingresses"):
            if not ing.is_alb(obj, classes):
                continue
            meta = obj["metadata"]
            used = next((c for c in classes if c["metadata"]["name"] ==
                         (obj.get("spec") or {}).get("ingressClassName")), None)
            params = ((used or {}).get("spec") or {}).get("parameters")
            if used is not None and params:  # IngressClassParams: refused by name
                self._event(cluster, obj, "Warning", "FailedBuildModel",
                            f"Failed build model due to IngressClass {used['metadata']['name']}"
                            f": spec.parameters ({str(params.get('kind'))[:60]}) are not "
                            "supported by fargo: set the annotations on the Ingress")
                continue
            try:
                name, order = ing.group_of(obj)
            except ing.BuildError as err:
                self._event(cluster, obj, "Warning", "FailedBuildModel",
                            f"Failed build model due to {err}")
                continue
            key = name or f"{meta['namespace']}/{meta['name']}"
            groups.setdefault(key, []).append((order, meta["namespace"], meta["name"], obj))
        wanted: dict[str, tuple[ing.Stack, list[Obj]]] = {}
        kept: set[str] = set()
        for key, entries in groups.items():
            members = [e[3] for e in sorted(entries, key=lambda e: e[:3])
                       if not _deleting(e[3])]
            if not members:
                continue
            for obj in members:
                self._finalizer(cluster, "ingresses", obj, ing.INGRESS_FINALIZER, True)
            is_group = "/" not in key
            try:
                stack = ing.build_alb(cluster, key if is_group else None, members, services)
            except ing.BuildError as err:
                kept.add(key)
                for obj in members:
                    self._event(cluster, obj, "Warning", "FailedBuildModel",
                                f"Failed build model due to {err}")
                continue
            wanted[key] = (stack, members)
        for svc in services.values():
            if _deleting(svc):
                continue
            why = ing.legacy_refusal(svc)
            if why:
                self._event(cluster, svc, "Warning", "UnsupportedLoadBalancer", why)
                continue
            if not ing.wants_nlb(svc):
                continue
            self._finalizer(cluster, "services", svc, ing.SERVICE_FINALIZER, True)
            key = f"{SERVICE_KEY}{svc['metadata']['namespace']}/{svc['metadata']['name']}"
            try:
                wanted[key] = (ing.build_nlb(cluster, svc), [svc])
            except ing.BuildError as err:
                kept.add(key)
                self._event(cluster, svc, "Warning", "FailedBuildModel",
                            f"Failed build model due to {err}")
        return wanted, kept

    # ---- making a stack so
    def _converge(self, cluster: str, doc: Obj, stack: ing.Stack) -> m.LoadBalancer:
        e = self.elbv2
        base = [m.Tag(ing.CLUSTER_TAG, cluster), m.Tag(stack.stack_tag, stack.stack)]
        extra = [m.Tag(k, v) for k, v in stack.tags]
        lb = next((x for x in e.tables.lbs() if (t := _tags(x)).get(ing.CLUSTER_TAG) == cluster
                   and t.get(stack.stack_tag) == stack.stack), None)
        if lb is None:
            vpc = doc["resourcesVpcConfig"]
            subnets = list(stack.subnets or self._one_per_zone(vpc.get("subnetIds") or []))
            # Pods run in their VPC's default group, which admits its own members: the load
            # balancer joins it (NLBs too, as the controller gives NLBs security groups).
            groups = list(stack.security_groups or [e.networks.default_group(vpc["vpcId"])])
            lb = e.create_load_balancer(
                name=stack.name, subnets=subnets, kind=stack.kind, scheme=stack.scheme,
                security_groups=groups,
                tags=base + [m.Tag(stack.resource_tag, "LoadBalancer")] + extra)
        if stack.lb_attributes:
            have = {a.key: a.value for a in e.load_balancer_attributes(lb.arn)}
            if any(have.get(k) != v for k, v in stack.lb_attributes):
                e.modify_load_balancer_attributes(
                    lb.arn, [g.Attribute(k, v) for k, v in stack.lb_attributes])
        arns = {grp.resource: self._group(cluster, stack, grp, base) for grp in stack.groups}
        self._listeners(lb, stack, arns)
        for tg in e.tables.tgs():  # groups of this stack no longer forwarded to
            t = _tags(tg)
            if t.get(ing.CLUSTER_TAG) == cluster and t.get(stack.stack_tag) == stack.stack \
                    and tg.arn not in arns.values() and not e.load_balancers_of(tg.arn):
                e.delete_target_group(tg.arn)
        return lb

    def _one_per_zone(self, ids: list[str]) -> list[str]:
        out: dict[str, str] = {}
        for sid in ids:
            subnet = self.elbv2.networks.subnet(sid)
            if subnet is not None:
                out.setdefault(subnet.zone, sid)
        return list(out.values())

    def _group(self, cluster: str, stack: ing.Stack, grp: ing.Group,
               base: list[m.Tag]) -> str:
        e = self.elbv2
        svc = self.state.find(cluster, "services", grp.ns, grp.service) or {}
        sp: Obj = next((p for p in (svc.get("spec") or {}).get("ports") or []
                   if p.get("port") == grp.port or p.get("name") == grp.port), {})
        target_port = sp.get("targetPort", sp.get("port"))
        port = target_port if isinstance(target_port, int) else 1
        h = grp.health
        request = g.HealthRequest(protocol=h.protocol, path=h.path, interval=h.interval,
                                  timeout=h.timeout, healthy=h.healthy, unhealthy=h.unhealthy,
                                  matcher=h.codes)
        tg = next((x for x in e.tables.tgs() if (t := _tags(x)).get(ing.CLUSTER_TAG) == cluster
                   and t.get(stack.stack_tag) == stack.stack
                   and t.get(stack.resource_tag) == grp.resource), None)
        if tg is None:
            lb = e.tables.lb_by_name(stack.name)
            vpc = lb.vpc_id if lb else (self.cluster_doc(cluster) or {})[
                "resourcesVpcConfig"]["vpcId"]
            tg = e.create_target_group(
                name=ing.tg_name(cluster, stack.stack, grp), protocol=grp.protocol, port=port,
                vpc_id=vpc, health=request, target_type="ip",
                tags=base + [m.Tag(stack.resource_tag, grp.resource)])
        elif tg.health != g.health_settings(tg.protocol, request, tg.health):
            tg = e.modify_target_group(tg.arn, request)
        if grp.attributes:
            have = {a.key: a.value for a in e.target_group_attributes(tg.arn)}
            if any(have.get(k) != v for k, v in grp.attributes):
                e.modify_target_group_attributes(
                    tg.arn, [g.Attribute(k, v) for k, v in grp.attributes])
        self._binding[tg.name] = (grp.ns, grp.service)
        self._targets(cluster, tg, grp, svc)
        return tg.arn

    def _listeners(self, lb: m.LoadBalancer, stack: ing.Stack, arns: dict[str, str]) -> None:
        e = self.elbv2
        have = {x.port: x for x in e.tables.listeners(lb.arn)}
        for spec in stack.listeners:
            raw = [{"Type": "forward", "TargetGroupArn": arns[spec.default]}] \
                if spec.default else [NOT_FOUND]
            actions = r.parse_actions(raw, lb.kind, "DefaultActions")
            listener = have.pop(spec.port, None)
            if listener is None:
                listener = e.create_listener(lb_arn=lb.arn, protocol=spec.protocol,
                                             port=spec.port, default_actions=raw)
            elif listener.actions != actions or listener.protocol != spec.protocol:
                listener = e.modify_listener(listener.arn, protocol=spec.protocol,
                                             default_actions=raw)
            if lb.kind == m.APPLICATION:
                self._rules(listener, spec, arns)
        for gone in have.values():
            e.delete_listener(gone.arn)

    def _rules(self, listener: m.Listener, spec: ing.ListenerSpec,
               arns: dict[str, str]) -> None:
        e = self.elbv2
        have = {x.priority: x for x in e.tables.rules(listener.arn)}
        for priority, rule in enumerate(spec.rules, start=1):
            conds: list[Obj] = []
            if rule.hosts:
                conds.append({"Field": "host-header",
                              "HostHeaderConfig": {"Values": list(rule.hosts)}})
            if rule.paths:
                conds.append({"Field": "path-pattern",
                              "PathPatternConfig": {"Values": list(rule.paths)}})
            acts = [{"Type": "forward", "TargetGroupArn": arns[rule.group]}]
            found = have.pop(priority, None)
            if found is None:
                e.create_rule(listener_arn=listener.arn, conditions=conds, priority=priority,
                              actions=acts)
            elif found.conditions != r.parse_conditions(conds) or \
                    found.actions != r.parse_actions(acts, m.APPLICATION, "Actions"):
                e.modify_rule(found.arn, conditions=conds, actions=acts)
        for gone in have.values():
            e.delete_rule(gone.arn)

    # ---- targets
    def _targets(self, cluster: str, tg: m.TargetGroup, grp: ing.Group, svc: Obj) -> None:
        """The group's targets = the ready endpoints of its Service port (and, with a
        readiness gate, those whose containers are ready and wait for it); pods being
        deleted, or gone, are out even before their EndpointSlice says so."""
        e = self.elbv2
        slices = [s for s in self.state.list(cluster, "endpointslices", grp.ns)
                  if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
                  == grp.service]
        pods = {p["metadata"]["name"]: p for p in self.state.list(cluster, "pods", grp.ns)}
        gate = ing.GATE_PREFIX + tg.name
        wanted: dict[tuple[str, int], Obj | None] = {}
        for ep in ing.endpoints(svc, grp.port, slices) if svc else []:
            pod = pods.get(ep.pod) if ep.pod else None
            if ep.pod and (pod is None or _deleting(pod)):
                continue
            if ep.ready or (pod is not None and _gated(pod, gate) and _containers_ready(pod)):
                wanted[(ep.ip, ep.port)] = pod
        current = {(t.ip, t.port): t for t in e.tables.targets(tg.arn)}
        add = [TargetRequest(ip, port) for (ip, port) in wanted
               if (ip, port) not in current or current[(ip, port)].draining_since is not None]
        drop = [TargetRequest(ip, port) for (ip, port), t in current.items()
                if (ip, port) not in wanted and t.draining_since is None]
        if add:
            e.register_targets(tg.arn, add)
        if drop:
            e.deregister_targets(tg.arn, drop, missing_ok=True)
        gated = {k: p for k, p in wanted.items() if p is not None and _gated(p, gate)}
        if gated:
            states = {(s.ip, s.port): s for s in e.health(tg.arn)}
            for key, pod in gated.items():
                s = states.get(key)
                self._gate(cluster, pod, gate, s.state == "healthy" if s else False,
                           s.reason if s else None)

    def _gate(self, cluster: str, pod: Obj, gate: str, ok: bool, reason: str | None) -> None:
        status = pod.setdefault("status", {})
        conds = status.setdefault("conditions", [])
        value = "True" if ok else "False"
        old = next((c for c in conds if c.get("type") == gate), None)
        if old is not None and old.get("status") == value:
            return
        cond: Obj = {"type": gate, "status": value, "lastProbeTime": None,
                     "lastTransitionTime": now_rfc3339()}
        if not ok:
            cond["reason"] = reason or "Elb.RegistrationInProgress"
            cond["message"] = "Target registration is in progress" if not reason else \
                f"Target health is {reason}"
        else:
            cond["reason"] = "Ready"
            cond["message"] = "Target is healthy"
        status["conditions"] = [c for c in conds if c.get("type") != gate] + [cond]
        self.state.update(cluster, "pods", pod["metadata"]["namespace"], pod)

    # ---- status, events, finalizers
    def _status(self, cluster: str, obj: Obj, hostname: str) -> None:
        plural = "ingresses" if obj["kind"] == "Ingress" else "services"
        fresh = self.state.find(cluster, plural, obj["metadata"]["namespace"],
                                obj["metadata"]["name"])
        if fresh is None:
            return
        status = fresh.setdefault("status", {})
        wanted = {"ingress": [{"hostname": hostname}]}
        if status.get("loadBalancer") == wanted:
            return
        status["loadBalancer"] = wanted
        self.state.update(cluster, plural, fresh["metadata"]["namespace"], fresh)
        self._event(cluster, fresh, "Normal", "SuccessfullyReconciled",
                    "Successfully reconciled")

    def _event(self, cluster: str, obj: Obj, kind: str, reason: str, message: str) -> None:
        key = (obj["metadata"].get("uid", ""), reason, message)
        if key in self._said:
            return
        self._said.add(key)
        component = "ingress" if obj.get("kind") == "Ingress" else "service"
        try:
            self.state.record_event(cluster, obj, kind, reason, message[:1024], component)
        except KubeError:
            log.exception("recording an event of %s", obj["metadata"].get("name"))

    def _finalizer(self, cluster: str, plural: str, obj: Obj, name: str, on: bool) -> None:
        meta = obj["metadata"]
        has = name in (meta.get("finalizers") or [])
        if has == on:
            return
        fresh = self.state.find(cluster, plural, meta["namespace"], meta["name"])
        if fresh is None:
            return
        fins = [f for f in fresh["metadata"].get("finalizers") or [] if f != name]
        if on:
            fins.append(name)
        fresh["metadata"]["finalizers"] = fins
        self.state.update(cluster, plural, meta["namespace"], fresh)
        meta["finalizers"] = fins

    def _finalize(self, cluster: str, live: set[str]) -> None:
        """Objects being deleted (or no longer asking) let go once nothing of theirs is
        left: an Ingress whose group still lives was rebuilt without it this pass."""
        stacks = {_stack_id(_tags(lb)) for lb in self.elbv2.tables.lbs()
                  if _tags(lb).get(ing.CLUSTER_TAG) == cluster}
        for obj in self.state.list(cluster, "ingresses"):
            if ing.INGRESS_FINALIZER in (obj["metadata"].get("finalizers") or []) and \
                    _deleting(obj):
                self._finalizer(cluster, "ingresses", obj, ing.INGRESS_FINALIZER, False)
        for svc in self.state.list(cluster, "services"):
            meta = svc["metadata"]
            key = f"{SERVICE_KEY}{meta['namespace']}/{meta['name']}"
            if ing.SERVICE_FINALIZER not in (meta.get("finalizers") or []):
                continue
            if (_deleting(svc) or not ing.wants_nlb(svc)) and key not in stacks:
                if (svc.get("status") or {}).get("loadBalancer") and not _deleting(svc):
                    svc["status"]["loadBalancer"] = {}
                    self.state.update(cluster, "services", meta["namespace"], svc)
                self._finalizer(cluster, "services", svc, ing.SERVICE_FINALIZER, False)

    # ---- pods created (Pods.mutators): the controller's pod readiness gate webhook
    def inject_gates(self, cluster: str, ns: str, pod: Obj) -> None:
        """In a namespace labelled elbv2.k8s.aws/pod-readiness-gate-inject=enabled, a new
        pod that a target group's Service selects waits, unready, for its target's health."""
        space = self.state.find(cluster, "namespaces", "", ns) or {}
        if (space.get("metadata", {}).get("labels") or {}).get(ing.GATE_LABEL) != "enabled":
            return
        labels = pod["metadata"].get("labels") or {}
        spec = pod["spec"]
        gates = spec.get("readinessGates") or []
        for tg_name, (svc_ns, svc_name) in sorted(self._bound.get(cluster, {}).items()):
            svc = self.state.find(cluster, "services", svc_ns, svc_name) if svc_ns == ns \
                else None
            selector = ((svc or {}).get("spec") or {}).get("selector") or {}
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                continue
            gate = ing.GATE_PREFIX + tg_name
            if not any(x.get("conditionType") == gate for x in gates):
                gates.append({"conditionType": gate})
        if gates:
            spec["readinessGates"] = gates

    # ---- pods stopping (Pods.before_stop)
    def before_stop(self, cluster: str, pod: Obj) -> None:
        """Deregister the pod's targets and have HAProxy drain them now: no new request
        reaches the pod once its SIGTERM comes."""
        try:
            ip = (pod.get("status") or {}).get("podIP")
            if not ip:
                return
            e = self.elbv2
            touched: set[str] = set()
            for tg in e.tables.tgs():
                if _tags(tg).get(ing.CLUSTER_TAG) != cluster:
                    continue
                mine = [TargetRequest(t.ip, t.port) for t in e.tables.targets(tg.arn)
                        if t.ip == ip and t.draining_since is None]
                if mine:
                    e.deregister_targets(tg.arn, mine, missing_ok=True)
                    touched.update(e.load_balancers_of(tg.arn))
            if not touched:
                return
            rec = e.reconciler
            world = rec.world()
            now = time.time()
            for lb in world.lbs:
                if lb.arn in touched:
                    rec.plane.apply(lbspecs.build(lb, world, rec.subnets, now))
        except Exception:  # noqa: BLE001 - a hook must not fail the pod's deletion
            log.exception("draining the targets of pod %s", pod["metadata"].get("name"))


def _gated(pod: Obj, gate: str) -> bool:
    return any(x.get("conditionType") == gate
               for x in (pod.get("spec") or {}).get("readinessGates") or [])


def _containers_ready(pod: Obj) -> bool:
    return any(c.get("type") == "ContainersReady" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])
