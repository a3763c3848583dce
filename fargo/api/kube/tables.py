"""Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for (`get`, `-o wide`, `-w`)."""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...model.podtask import display_status

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
