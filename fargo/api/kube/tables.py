"""Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for (`get`, `-o wide`, `-w`)."""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...model import batchjobs, daemonsets, kubeservice
from ...model.podtask import display_status
from ...model.selectors import selector_text

Column = tuple[str, str, int, str]  # name, type, priority (1 = only with -o wide), description


def _age(stamp: str | None) -> str:
    if not stamp:
        return "<unknown>"
    try:
        secs = int(time.time() - calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return "<unknown>"
    secs = max(secs, 0)
    if secs < 120:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m{secs % 60}s" if secs < 600 else f"{secs // 60}m"
    if secs < 86400:
        return f"{secs // 3600}h{(secs % 3600) // 60}m" if secs < 36000 else f"{secs // 3600}h"
    return f"{secs // 86400}d"


def _pod_row(pod: dict[str, Any]) -> list[Any]:
    st = pod.get("status") or {}
    statuses = st.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(s.get("restartCount", 0) for s in statuses)
    restarts += sum(s.get("restartCount", 0) for s in st.get("initContainerStatuses") or [])
    return [pod["metadata"]["name"], f"{ready}/{len(pod['spec'].get('containers') or [])}",
            display_status(pod), restarts, _age(pod["metadata"].get("creationTimestamp")),
            st.get("podIP") or "<none>", pod["spec"].get("nodeName") or "<none>", "<none>",
            "<none>"]


def _node_row(node: dict[str, Any]) -> list[Any]:
    st = node.get("status") or {}
    ready = next((c for c in st.get("conditions") or [] if c["type"] == "Ready"), None)
    info = st.get("nodeInfo") or {}
    ip = next((a["address"] for a in st.get("addresses") or [] if a["type"] == "InternalIP"),
              "<none>")
    return [node["metadata"]["name"],
            "Ready" if ready and ready["status"] == "True" else "NotReady", "<none>",
            _age(node["metadata"].get("creationTimestamp")), info.get("kubeletVersion", ""),
            ip, "<none>", info.get("osImage", ""), info.get("kernelVersion", ""),
            info.get("containerRuntimeVersion", "")]


def _ns_row(ns: dict[str, Any]) -> list[Any]:
    return [ns["metadata"]["name"], (ns.get("status") or {}).get("phase", "Active"),
            _age(ns["metadata"].get("creationTimestamp"))]


def _event_row(ev: dict[str, Any]) -> list[Any]:
    obj = ev.get("involvedObject") or {}
    return [_age(ev.get("lastTimestamp")), ev.get("type", ""), ev.get("reason", ""),
            f"{str(obj.get('kind', '')).lower()}/{obj.get('name', '')}", ev.get("message", "")]


def _configmap_row(cm: dict[str, Any]) -> list[Any]:
    return [cm["metadata"]["name"], len(cm.get("data") or {}) + len(cm.get("binaryData") or {}),
            _age(cm["metadata"].get("creationTimestamp"))]


def _secret_row(s: dict[str, Any]) -> list[Any]:
    return [s["metadata"]["name"], s.get("type", ""), len(s.get("data") or {}),
            _age(s["metadata"].get("creationTimestamp"))]


def _serviceaccount_row(sa: dict[str, Any]) -> list[Any]:
    return [sa["metadata"]["name"], len(sa.get("secrets") or []),
            _age(sa["metadata"].get("creationTimestamp"))]


@dataclass(frozen=True)
class Printer:
    """How a kind prints: its columns and the cells of one object's row."""
    columns: list[Column]
    row: Callable[[dict[str, Any]], list[Any]]


PODS = Printer([("Name", "string", 0, "name"), ("Ready", "string", 0, "ready containers"),
                ("Status", "string", 0, "status"), ("Restarts", "string", 0, "restarts"),
                ("Age", "string", 0, "age"), ("IP", "string", 1, "pod IP"),
                ("Node", "string", 1, "node"), ("Nominated Node", "string", 1, "nominated node"),
                ("Readiness Gates", "string", 1, "readiness gates")], _pod_row)
NODES = Printer([("Name", "string", 0, "name"), ("Status", "string", 0, "status"),
                 ("Roles", "string", 0, "roles"), ("Age", "string", 0, "age"),
                 ("Version", "string", 0, "kubelet version"),
                 ("Internal-IP", "string", 1, "internal IP"),
                 ("External-IP", "string", 1, "external IP"), ("OS-Image", "string", 1, "OS"),
                 ("Kernel-Version", "string", 1, "kernel"),
                 ("Container-Runtime", "string", 1, "runtime")], _node_row)
NAMESPACES = Printer([("Name", "string", 0, "name"), ("Status", "string", 0, "phase"),
                      ("Age", "string", 0, "age")], _ns_row)
EVENTS = Printer([("Last Seen", "string", 0, "last seen"), ("Type", "string", 0, "type"),
                  ("Reason", "string", 0, "reason"), ("Object", "string", 0, "object"),
                  ("Message", "string", 0, "message")], _event_row)
CONFIGMAPS = Printer([("Name", "string", 0, "name"), ("Data", "string", 0, "keys"),
                      ("Age", "string", 0, "age")], _configmap_row)
SECRETS = Printer([("Name", "string", 0, "name"), ("Type", "string", 0, "type"),
                   ("Data", "string", 0, "keys"), ("Age", "string", 0, "age")], _secret_row)
SERVICEACCOUNTS = Printer([("Name", "string", 0, "name"), ("Secrets", "string", 0, "secrets"),
                           ("Age", "string", 0, "age")], _serviceaccount_row)


def _template_cells(obj: dict[str, Any]) -> list[Any]:
    """-o wide's CONTAINERS, IMAGES and SELECTOR of a workload with a pod template."""
    spec = obj.get("spec") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    sel = spec.get("selector")
    return [",".join(str(c.get("name", "")) for c in containers),
            ",".join(str(c.get("image", "")) for c in containers),
            selector_text(sel) if isinstance(sel, dict) else "<none>"]


def _deployment_row(d: dict[str, Any]) -> list[Any]:
    st = d.get("status") or {}
    return [d["metadata"]["name"],
            f"{st.get('readyReplicas', 0)}/{(d.get('spec') or {}).get('replicas', 1)}",
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0),
            _age(d["metadata"].get("creationTimestamp")), *_template_cells(d)]


def _replicaset_row(rs: dict[str, Any]) -> list[Any]:
    st = rs.get("status") or {}
    return [rs["metadata"]["name"], (rs.get("spec") or {}).get("replicas", 1),
            st.get("replicas", 0), st.get("readyReplicas", 0),
            _age(rs["metadata"].get("creationTimestamp")), *_template_cells(rs)]


_TEMPLATE_COLUMNS: list[Column] = [
    ("Containers", "string", 1, "Names of each container in the template."),
    ("Images", "string", 1, "Images referenced by each container in the template."),
    ("Selector", "string", 1, "Label query over pods that should match the replicas count.")]
DEPLOYMENTS = Printer([("Name", "string", 0, "name"),
                       ("Ready", "string", 0, "Number of the pod with ready state"),
                       ("Up-to-date", "string", 0, "Total number of non-terminated pods "
                        "targeted by this deployment that have the desired template spec."),
                       ("Available", "string", 0, "Total number of available pods (ready for "
                        "at least minReadySeconds) targeted by this deployment."),
                       ("Age", "string", 0, "age"), *_TEMPLATE_COLUMNS], _deployment_row)
REPLICASETS = Printer([("Name", "string", 0, "name"),
                       ("Desired", "integer", 0, "Replicas is the number of desired replicas."),
                       ("Current", "integer", 0, "Replicas is the most recently observed "
                        "number of replicas."),
                       ("Ready", "integer", 0, "The number of ready replicas for this replica "
                        "set."),
                       ("Age", "string", 0, "age"), *_TEMPLATE_COLUMNS], _replicaset_row)


def _job_row(job: dict[str, Any]) -> list[Any]:
    spec = job.get("spec") or {}
    return [job["metadata"]["name"], batchjobs.display_status(job),
            batchjobs.completions_text(job), batchjobs.duration_text(job, time.time()),
            _age(job["metadata"].get("creationTimestamp")),
            *batchjobs.container_cells((spec.get("template") or {}).get("spec")),
            batchjobs.selector_cell(spec.get("selector"))]


def _cronjob_row(cj: dict[str, Any]) -> list[Any]:
    spec = cj.get("spec") or {}
    st = cj.get("status") or {}
    job = (spec.get("jobTemplate") or {}).get("spec") or {}
    suspend = spec.get("suspend")
    return [cj["metadata"]["name"], spec.get("schedule", ""), spec.get("timeZone") or "<none>",
            "<unset>" if suspend is None else str(bool(suspend)), len(st.get("active") or []),
            _age(st["lastScheduleTime"]) if st.get("lastScheduleTime") else "<none>",
            _age(cj["metadata"].get("creationTimestamp")),
            *batchjobs.container_cells((job.get("template") or {}).get("spec")),
            batchjobs.selector_cell(job.get("selector"))]


def _daemonset_row(ds: dict[str, Any]) -> list[Any]:
    spec = ds.get("spec") or {}
    st = ds.get("status") or {}
    return [ds["metadata"]["name"], st.get("desiredNumberScheduled", 0),
            st.get("currentNumberScheduled", 0), st.get("numberReady", 0),
            st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
            daemonsets.node_selector_cell(ds), _age(ds["metadata"].get("creationTimestamp")),
            *batchjobs.container_cells((spec.get("template") or {}).get("spec")),
            batchjobs.selector_cell(spec.get("selector"))]


_WIDE: list[Column] = [
    ("Containers", "string", 1, "Names of each container in the template."),
    ("Images", "string", 1, "Images referenced by each container in the template."),
    ("Selector", "string", 1, "A label query over pods that should match the pod count.")]
JOBS = Printer([("Name", "string", 0, "name"), ("Status", "string", 0, "Status of the job."),
                ("Completions", "string", 0, "The number of pods which reached phase "
                 "Succeeded."),
                ("Duration", "string", 0, "Time required to complete the job."),
                ("Age", "string", 0, "age"), *_WIDE], _job_row)
CRONJOBS = Printer([("Name", "string", 0, "name"),
                    ("Schedule", "string", 0, "The schedule in Cron format."),
                    ("Timezone", "string", 0, "The time zone name for the given schedule."),
                    ("Suspend", "boolean", 0, "Whether subsequent executions are suspended."),
                    ("Active", "integer", 0, "A list of pointers to currently running jobs."),
                    ("Last Schedule", "string", 0, "When the job was last successfully "
                     "scheduled."), ("Age", "string", 0, "age"), *_WIDE], _cronjob_row)
DAEMONSETS = Printer([("Name", "string", 0, "name"),
                      ("Desired", "integer", 0, "The total number of nodes that should be "
                       "running the daemon pod."),
                      ("Current", "integer", 0, "The number of nodes running at least one "
                       "daemon pod and supposed to."),
                      ("Ready", "integer", 0, "The number of nodes that should be running "
                       "the daemon pod and have one or more of it running and ready."),
                      ("Up-to-date", "integer", 0, "The total number of nodes running updated "
                       "daemon pod."),
                      ("Available", "integer", 0, "The number of nodes running the daemon pod "
                       "and available."),
                      ("Node Selector", "string", 0, "The node selector of the pod template."),
                      ("Age", "string", 0, "age"), *_WIDE], _daemonset_row)


def _service_row(svc: dict[str, Any]) -> list[Any]:
    spec = svc.get("spec") or {}
    return [svc["metadata"]["name"], kubeservice.service_type(svc),
            spec.get("clusterIP") or "<none>", kubeservice.external_ip_cell(svc),
            kubeservice.ports_cell(svc), _age(svc["metadata"].get("creationTimestamp")),
            kubeservice.selector_cell(svc)]


def _first_three(items: list[str]) -> str:
    """kubectl's ENDPOINTS cell: three, then how many more."""
    if not items:
        return "<none>"
    more = f" + {len(items) - 3} more..." if len(items) > 3 else ""
    return ",".join(items[:3]) + more


def _endpoints_row(ep: dict[str, Any]) -> list[Any]:
    items = []
    for sub in ep.get("subsets") or []:
        ports = sub.get("ports") or []
        for addr in sub.get("addresses") or []:
            items += [f"{addr.get('ip')}:{p.get('port')}" for p in ports] or \
                [str(addr.get("ip"))]
    return [ep["metadata"]["name"], _first_three(items),
            _age(ep["metadata"].get("creationTimestamp"))]


def _slice_row(sl: dict[str, Any]) -> list[Any]:
    ports = [str(p.get("port")) for p in sl.get("ports") or [] if isinstance(p, dict)]
    addrs = [a for e in sl.get("endpoints") or [] for a in (e.get("addresses") or [])
             if (e.get("conditions") or {}).get("ready", True) is not False]
    return [sl["metadata"]["name"], sl.get("addressType", ""),
            ",".join(ports) if ports else "<unset>", _first_three(addrs),
            _age(sl["metadata"].get("creationTimestamp"))]


SERVICES = Printer([("Name", "string", 0, "name"), ("Type", "string", 0, "type"),
                    ("Cluster-IP", "string", 0, "clusterIP"),
                    ("External-IP", "string", 0, "external addresses"),
                    ("Port(s)", "string", 0, "ports"), ("Age", "string", 0, "age"),
                    ("Selector", "string", 1, "selector")], _service_row)
ENDPOINTS = Printer([("Name", "string", 0, "name"),
                     ("Endpoints", "string", 0, "ready addresses and ports"),
                     ("Age", "string", 0, "age")], _endpoints_row)
ENDPOINTSLICES = Printer([("Name", "string", 0, "name"),
                          ("AddressType", "string", 0, "address type"),
                          ("Ports", "string", 0, "ports"),
                          ("Endpoints", "string", 0, "ready addresses"),
                          ("Age", "string", 0, "age")], _slice_row)


def wants_table(accept: str) -> bool:
    return "as=Table" in accept.replace(" ", "")


def table(printer: Printer, objs: list[dict[str, Any]], rv: str,
          include: str | None) -> dict[str, Any]:
    """include: 'Object', 'None', or (default) 'Metadata' as the apiserver reads it."""
    rows = []
    for obj in objs:
        row: dict[str, Any] = {"cells": printer.row(obj)}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {"kind": "PartialObjectMetadata",
                             "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
            "columnDefinitions": [{"name": n, "type": t, "format": "name" if n == "Name" else "",
                                   "description": d, "priority": p}
                                  for n, t, p, d in printer.columns],
            "rows": rows}


def _netpolicy_row(np: dict[str, Any]) -> list[Any]:
    sel = (np.get("spec") or {}).get("podSelector") or {}
    return [np["metadata"]["name"], selector_text(sel) or "<none>",
            _age(np["metadata"].get("creationTimestamp"))]


def _sgpolicy_row(sgp: dict[str, Any]) -> list[Any]:
    ids = ((sgp.get("spec") or {}).get("securityGroups") or {}).get("groupIds")
    return [sgp["metadata"]["name"], f'[{",".join(f"{chr(34)}{i}{chr(34)}" for i in ids)}]'
            if isinstance(ids, list) else "", _age(sgp["metadata"].get("creationTimestamp"))]


NETWORKPOLICIES = Printer([("Name", "string", 0, "name"),
                           ("Pod-Selector", "string", 0, "the pods the policy selects"),
                           ("Age", "string", 0, "age")], _netpolicy_row)
SECURITYGROUPPOLICIES = Printer([("Name", "string", 0, "name"),
                                 ("Security-Group-Ids", "string", 0, "The security group IDs "
                                  "to apply to the elastic network interface of pods that "
                                  "match this policy"),
                                 ("Age", "string", 0, "age")], _sgpolicy_row)


def _ingress_row(obj: dict[str, Any]) -> list[Any]:
    spec = obj.get("spec") or {}
    hosts = [r.get("host") or "*" for r in spec.get("rules") or [] if isinstance(r, dict)]
    lbs = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    address = ",".join(x.get("hostname") or x.get("ip") or "" for x in lbs
                       if isinstance(x, dict))
    return [obj["metadata"]["name"], spec.get("ingressClassName") or "<none>",
            ",".join(hosts) or "*", address, "443, 80" if spec.get("tls") else "80",
            _age(obj["metadata"].get("creationTimestamp"))]


def _ingressclass_row(obj: dict[str, Any]) -> list[Any]:
    spec = obj.get("spec") or {}
    params = spec.get("parameters") or {}
    shown = f"{params.get('kind')}/{params.get('name')}" if params else "<none>"
    return [obj["metadata"]["name"], spec.get("controller", ""), shown,
            _age(obj["metadata"].get("creationTimestamp"))]


INGRESSES = Printer([("Name", "string", 0, "name"), ("Class", "string", 0, "ingress class"),
                     ("Hosts", "string", 0, "hosts"), ("Address", "string", 0, "address"),
                     ("Ports", "string", 0, "ports"), ("Age", "string", 0, "age")],
                    _ingress_row)
RUNTIMECLASSES = Printer([("Name", "string", 0, "name"), ("Handler", "string", 0, "handler"),
                          ("Age", "string", 0, "age")],
                         lambda obj: [obj["metadata"]["name"], obj.get("handler", ""),
                                      _age(obj["metadata"].get("creationTimestamp"))])
INGRESSCLASSES = Printer([("Name", "string", 0, "name"),
                          ("Controller", "string", 0, "controller"),
                          ("Parameters", "string", 0, "parameters"),
                          ("Age", "string", 0, "age")], _ingressclass_row)
