"""The fargate-scheduler: claims pending pods a profile selects, sizes each (FARGATE.md
section 7), makes one Node for it, binds it and runs it as a task of exactly that size."""

from __future__ import annotations

import copy
import logging
import platform
import time
from typing import Any

from ..model import admission, downward, podsize, podtask, runtimeclass, sgpolicy
from ..model.errors import ApiError
from ..model.names import ACCOUNT
from ..model.profiles import PIN_LABEL
from ..model.taskrecord import PodRef, Task
from . import runtimeclasses
from .kubestate import KubeState, now_rfc3339
from .tasks import TaskEngine

log = logging.getLogger("fargo.scheduler")
COMPUTE_TYPE = "eks.amazonaws.com/compute-type"
RETRY = 5.0  # seconds before trying again a pod that could not be placed
NO_PROFILE = ("Pod not scheduled: no ACTIVE Fargate profile selects namespace {ns!r} with "
              "labels {labels}; it stays Pending until one does")


def node_name(ip: str, region: str) -> str:
    return f"fargate-ip-{ip.replace('.', '-')}.{region}.compute.internal"


def _cpu_quantity(units: int) -> str:
    return str(units // 1024) if units % 1024 == 0 else f"{units * 1000 // 1024}m"


class FargateScheduler:
    def __init__(self, state: KubeState, engine: TaskEngine, region: str):
        self.state = state
        self.engine = engine
        self.region = region

    def warn_once(self, cluster: str, pod: dict[str, Any], reason: str, message: str) -> None:
        """A Warning event, once per distinct message (the loop looks again many times)."""
        priv = pod.setdefault("_fargo", {})
        if priv.get("warned") == message:
            return
        priv["warned"] = message
        self.state.update(cluster, "pods", pod["metadata"]["namespace"], pod)
        self.state.record_event(cluster, pod, "Warning", reason, message, "fargate-scheduler")

    def _later(self, cluster: str, pod: dict[str, Any], message: str) -> None:
        """Try this pod again in a while (saved, so the loop does not spin on it) and say why."""
        pod.setdefault("_fargo", {})["retry_at"] = time.time() + RETRY
        self.state.update(cluster, "pods", pod["metadata"]["namespace"], pod)
        self.warn_once(cluster, pod, "FailedScheduling", message)

    def schedule(self, cluster: dict[str, Any], profiles: list[dict[str, Any]]) -> None:
        name = cluster["name"]
        runtimeclasses.ensure(self.state, name)  # each cluster's built-in RuntimeClasses
        for pod in self.state.list(name, "pods"):
            meta, spec = pod["metadata"], pod["spec"]
            priv = pod.get("_fargo") or {}
            if (spec.get("nodeName") or priv.get("task") or meta.get("deletionTimestamp")
                    or (pod.get("status") or {}).get("phase") != "Pending"
                    or priv.get("retry_at", 0) > time.time()):
                continue
            try:
                self._place(cluster, pod, profiles)
            except Exception as err:  # noqa: BLE001 - one pod must not stop the others
                log.exception("scheduling pod %s/%s", meta.get("namespace"), meta["name"])
                self._later(name, pod, f"Pod not scheduled: {str(err)[:200]}")

    def _place(self, cluster: dict[str, Any], pod: dict[str, Any],
               profiles: list[dict[str, Any]]) -> None:
        cname, ns = cluster["name"], pod["metadata"]["namespace"]
        profile, patch = admission.mutation(pod, profiles, ns)
        if profile is None:
            labels = {k: v for k, v in (pod["metadata"].get("labels") or {}).items()}
            self.warn_once(cname, pod, "FailedScheduling",
                           NO_PROFILE.format(ns=ns, labels=labels or "{}"))
            return
        refusal = admission.verdict(pod, profiles, ns)
        if refusal:
            self.warn_once(cname, pod, "FailedScheduling", refusal)
            return
        if patch:  # a pod that arrived before its profile: Fargate's now
            pod = admission.apply_json_patch(pod, patch)
        try:
            cpu, mem = podsize.pod_size(pod["spec"])
        except (ApiError, ValueError) as err:
            self.warn_once(cname, pod, "FailedScheduling", f"Pod not supported on Fargate: "
                           f"{getattr(err, 'message', err)}")
            return
        tier, missing = runtimeclasses.resolve(self.state, cname, pod, profile)
        if missing:
            self._later(cname, pod, f"Pod not scheduled: {missing}")
            return
        plan, policy = podtask.pod_plan(pod["spec"])

        def plan_at(ip: str) -> list[dict[str, Any]]:
            # The downward API's variables hold the pod as bound: the address and node the
            # placement chose, the annotation and label the binding adds.
            bound = copy.deepcopy(pod)
            bound["metadata"].setdefault("annotations", {})["CapacityProvisioned"] = \
                podsize.capacity_provisioned(cpu, mem)
            bound["metadata"].setdefault("labels", {})[PIN_LABEL] = profile["fargateProfileName"]
            placed = downward.Placed(ip, node_name(ip, self.region), cpu, mem)
            return podtask.pod_plan(downward.resolved_spec(bound, placed))[0]

        td = {"family": f"eks-{cname}", "containerDefinitions": plan,
              "taskDefinitionArn": f"arn:aws:eks:{self.region}:{ACCOUNT}:pod/{cname}/{ns}/"
                                   f"{pod['metadata']['name']}"}
        # EKS's security groups for pods: the groups of the SecurityGroupPolicies that select
        # it, instead of the default group (an unknown one keeps it Pending, and says so).
        groups = sgpolicy.groups_for(pod, self.state.list(cname, "securitygrouppolicies", ns),
                                     self.state.list(cname, "serviceaccounts", ns))
        try:
            task, why = self.engine.run_sized(
                td=td, cluster_arn=f"arn:aws:ecs:{self.region}:{ACCOUNT}:cluster/eks.{cname}",
                region=self.region, cpu=cpu, memory=mem, subnet_ids=profile["subnets"],
                restart=policy, pod=PodRef(cluster=cname, namespace=ns,
                                           name=pod["metadata"]["name"],
                                           uid=pod["metadata"]["uid"]),
                started_by=f"eks:{cname}"[:128], plan_at=plan_at,
                security_groups=groups or None, isolation=tier)
        except ApiError as err:  # e.g. the profile's subnet was deleted meanwhile
            task, why = None, err.message
            if groups:
                why += f" (security groups {', '.join(groups)} of its SecurityGroupPolicies)"
        if task is None:
            self._later(cname, pod, f"Pod not scheduled: {why}")
            return
        ip = task.ip
        node = node_name(ip, self.region)
        self._make_node(cname, node, task, cpu, mem, profile)
        tid = task.id
        pod.setdefault("metadata", {}).setdefault("annotations", {})
        pod["metadata"]["annotations"]["CapacityProvisioned"] = podsize.capacity_provisioned(
            cpu, mem)
        pod["metadata"]["annotations"][runtimeclass.SANDBOX_ANNOTATION] = task.isolation
        pod["metadata"].setdefault("labels", {})[PIN_LABEL] = profile["fargateProfileName"]
        pod["spec"]["nodeName"] = node
        pod["_fargo"] = {"task": tid, "profile": profile["fargateProfileName"]}
        status = pod.setdefault("status", {})
        status["conditions"] = [{"type": "PodScheduled", "status": "True",
                                 "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}]
        status["startTime"] = now_rfc3339()
        status["hostIP"] = ip
        status["hostIPs"] = [{"ip": ip}]
        self.state.update(cname, "pods", ns, pod)
        self.state.record_event(cname, pod, "Normal", "Scheduled",
                                f"Successfully assigned {ns}/{pod['metadata']['name']} to "
                                f"{node}", "fargate-scheduler")

    def _make_node(self, cluster: str, node: str, task: Task, cpu: int, mem: int,
                   profile: dict[str, Any]) -> None:
        ip, zone, eni = task.ip, task.availability_zone, task.interface.eni_id
        capacity = {"cpu": _cpu_quantity(cpu), "memory": f"{mem}Mi", "pods": "1",
                    "ephemeral-storage": "20Gi"}
        stamp = now_rfc3339()
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "fargo sandbox is ready", "lastHeartbeatTime": stamp,
                 "lastTransitionTime": stamp}
        conditions = [{"type": t, "status": "False", "reason": r, "message": "",
                       "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
                      for t, r in (("MemoryPressure", "KubeletHasSufficientMemory"),
                                   ("DiskPressure", "KubeletHasNoDiskPressure"),
                                   ("PIDPressure", "KubeletHasSufficientPID"))] + [ready]
        self.state.delete(cluster, "nodes", "", node)  # a stale one whose task just ended
        self.state.create(cluster, "nodes", "", {
            "metadata": {
                "name": node,
                "labels": {COMPUTE_TYPE: "fargate", "kubernetes.io/hostname": node,
                           "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                           "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
                           "topology.kubernetes.io/zone": zone,
                           "topology.kubernetes.io/region": self.region,
                           "failure-domain.beta.kubernetes.io/zone": zone,
                           "failure-domain.beta.kubernetes.io/region": self.region,
                           PIN_LABEL: profile["fargateProfileName"]},
                "annotations": {"CapacityProvisioned": podsize.capacity_provisioned(cpu, mem),
                                "node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {"providerID": f"aws:///{zone}/{eni}/{node}",
                     "taints": [{"key": COMPUTE_TYPE, "value": "fargate",
                                 "effect": "NoSchedule"}]},
            "status": {
                "capacity": copy.deepcopy(capacity), "allocatable": capacity,
                "conditions": conditions,
                "addresses": [{"type": "InternalIP", "address": ip},
                              {"type": "Hostname", "address": node},
                              {"type": "InternalDNS", "address": node}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {"machineID": task.id,
                             "systemUUID": task.id,
                             "bootID": "", "kernelVersion": platform.release(),
                             "osImage": "fargo runc sandbox",
                             "containerRuntimeVersion": "runc://1",
                             "kubeletVersion": "v1.32.0-eks-fargo",
                             "kubeProxyVersion": "v1.32.0-eks-fargo",
                             "operatingSystem": "linux", "architecture": "amd64"}},
            "_fargo": {"task": task.id},
        })
