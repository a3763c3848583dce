"""The resources the Kubernetes face serves, in one table: how each one's URLs read
(group, version, plural, namespaced or not, subresources), what discovery says of it, how it
prints as a Table, and the control call behind each write verb. get, list and watch are the
same for every kind (control/kubestate.py); a verb a resource has no handler for answers 405.

A new kind is an entry here plus its handlers (and its kind in control/kubestate.KINDS)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ...control import configmaps
from ...control.kubestate import KubeState
from ...control.pods import Pods
from ...model.selectors import FIELDS
from . import tables
from .logs import pod_logs

Obj = dict[str, Any]


@dataclass(frozen=True)
class Scope:
    """One request's cluster and namespace ("" for cluster-scoped kinds), and the control
    objects its handler may call."""
    cluster: str
    ns: str
    state: KubeState
    pods: Pods


Create = Callable[[Scope, Any], Obj]  # (scope, the decoded body) -> the new object
Replace = Callable[[Scope, str, Obj], Obj]  # (scope, name, the whole new object)
Delete = Callable[[Scope, str, int | None], Obj]  # (scope, name, grace period asked for)
Stream = Callable[[web.Request, Scope, str], Awaitable[web.StreamResponse]]  # GET-only


@dataclass(frozen=True)
class Resource:
    plural: str
    singular: str
    kind: str
    namespaced: bool
    printer: tables.Printer
    fields: set[str]  # what a fieldSelector may name
    group: str = ""  # "" is the core group, served under /api
    version: str = "v1"
    short: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    create: Create | None = None
    replace: Replace | None = None  # PUT, and PATCH once the patch is applied
    delete: Delete | None = None
    streams: Mapping[str, Stream] = field(default_factory=dict)  # e.g. pods/log
    # .../status answers a GET for every kind (the object itself); this only says whether
    # discovery lists it.
    status: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def verbs(self) -> list[str]:
        verbs = ["get", "list", "watch"]
        verbs += ["create"] if self.create else []
        verbs += ["update", "patch"] if self.replace else []
        verbs += ["delete"] if self.delete else []
        return sorted(verbs)

    @property
    def subresources(self) -> list[str]:
        return sorted([*self.streams, *(["status"] if self.status else [])])


# ---- the handlers: each one call of control
def _create_pod(s: Scope, body: Any) -> Obj:
    return s.pods.create(s.cluster, s.ns, body)


def _replace_pod(s: Scope, name: str, new: Obj) -> Obj:
    return s.pods.replace(s.cluster, s.ns, name, new)


def _delete_pod(s: Scope, name: str, grace: int | None) -> Obj:
    return s.pods.delete(s.cluster, s.ns, name, grace)


async def _pod_log(request: web.Request, s: Scope, name: str) -> web.StreamResponse:
    return await pod_logs(request, s.state, s.cluster, s.ns, name)


def _create_namespace(s: Scope, body: Any) -> Obj:
    return s.state.create_namespace(s.cluster, body)


def _replace_namespace(s: Scope, name: str, new: Obj) -> Obj:
    return s.state.replace_namespace(s.cluster, name, new)


def _delete_namespace(s: Scope, name: str, grace: int | None) -> Obj:
    return s.pods.delete_namespace(s.cluster, name)  # its pods go first


def _create_configmap(s: Scope, body: Any) -> Obj:
    return configmaps.create(s.state, s.cluster, s.ns, body)


def _replace_configmap(s: Scope, name: str, new: Obj) -> Obj:
    return configmaps.replace(s.state, s.cluster, s.ns, name, new)


def _delete_configmap(s: Scope, name: str, grace: int | None) -> Obj:
    return configmaps.delete(s.state, s.cluster, s.ns, name)


# In discovery's order.
RESOURCES: list[Resource] = [
    Resource("namespaces", "namespace", "Namespace", False, tables.NAMESPACES,
             FIELDS["namespaces"], short=("ns",), create=_create_namespace,
             replace=_replace_namespace, delete=_delete_namespace),
    Resource("nodes", "node", "Node", False, tables.NODES, FIELDS["nodes"], short=("no",)),
    Resource("pods", "pod", "Pod", True, tables.PODS, FIELDS["pods"], short=("po",),
             categories=("all",), create=_create_pod, replace=_replace_pod,
             delete=_delete_pod, streams={"log": _pod_log}, status=True),
    Resource("events", "event", "Event", True, tables.EVENTS, FIELDS["events"],
             short=("ev",)),
    Resource("configmaps", "configmap", "ConfigMap", True, tables.CONFIGMAPS,
             FIELDS["configmaps"], short=("cm",), create=_create_configmap,
             replace=_replace_configmap, delete=_delete_configmap),
]
_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}


def find(group: str, version: str, plural: str) -> Resource | None:
    return _BY_PATH.get((group, version, plural))
