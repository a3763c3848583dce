"""The resources the Kubernetes face serves, in one table: how each one's URLs read
(group, version, plural, namespaced or not, subresources), what discovery says of it, how it
prints as a Table, and the control call behind each write verb. get, list and watch are the
same for every kind (control/kubestate.py); a verb a resource has no handler for answers 405.

A new kind is an entry here plus its rule in model/kubekinds.py (generic writes need nothing
more; a kind with writes of its own names its handlers)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ...control.kubeservices import ServiceWrites
from ...control.kubestate import KubeState
from ...control.objects import DeleteOptions, Objects
from ...control.pods import Pods
from ...model import kubekinds
from ...model.kubeerrors import method_not_allowed
from ...model.kubekinds import KindRule
from ...model.selectors import FIELDS
from . import metricsapi, tables
from .exec import pod_attach, pod_exec
from .logs import pod_logs
from .portforward import pod_portforward
from .tokens import create_token

Obj = dict[str, Any]


@dataclass(frozen=True)
class Scope:
    """One request's cluster and namespace ("" for cluster-scoped kinds), whether it is a
    dry run (dryRun=All: checked, answered, nothing written), and the control objects its
    handler may call."""
    cluster: str
    ns: str
    state: KubeState
    pods: Pods
    objects: Objects
    dry_run: bool = False


Create = Callable[[Scope, Any], Obj]  # (scope, the decoded body) -> the new object
Replace = Callable[[Scope, str, Obj], Obj]  # (scope, name, the whole new object)
Delete = Callable[[Scope, str, DeleteOptions], Obj]  # (scope, name, the DELETE's options)
Stream = Callable[[web.Request, Scope, str], Awaitable[web.StreamResponse]]
# A kind computed when asked, never stored (metrics.k8s.io): (scope, namespace (None: all),
# name (None: the collection)) -> the objects.
Read = Callable[[Scope, str | None, str | None], Awaitable[list[Obj]]]


BASIC_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class Resource:
    """How a kind is served; what it is (kind, group, version, scope) is its rule's."""
    plural: str
    singular: str
    printer: tables.Printer
    fields: AbstractSet[str] = BASIC_FIELDS  # what a fieldSelector may name
    short: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # Writes: a kind's own handlers, or (None) control/objects.py's generic ones; a
    # read-only kind (written by fargo alone) answers 405 to all three.
    create: Create | None = None
    replace: Replace | None = None  # PUT, and PATCH once the patch is applied
    delete: Delete | None = None
    read_only: bool = False
    # Subresources streamed (pods/log, pods/exec): the handler takes every method it
    # answers and refuses the others.
    streams: Mapping[str, Stream] = field(default_factory=dict)
    # .../status answers a GET for every kind (the object itself); this only says whether
    # discovery lists it.
    status: bool = False
    # Computed kinds: get and list through this reader, no watch, no writes; their rows in
    # model/kubekinds.py are keyed apart when their plural is another kind's.
    read: Read | None = None
    rule_key: str = ""

    @property
    def rule(self) -> KindRule:
        return kubekinds.rule(self.rule_key or self.plural)

    @property
    def kind(self) -> str:
        return self.rule.kind

    @property
    def group(self) -> str:
        return self.rule.group

    @property
    def version(self) -> str:
        return self.rule.version

    @property
    def namespaced(self) -> bool:
        return self.rule.namespaced

    @property
    def api_version(self) -> str:
        return self.rule.api_version

    @property
    def verbs(self) -> list[str]:
        verbs = ["get", "list", "watch"]
        if self.read is not None:
            return ["get", "list"]
        if self.read_only:
            return verbs
        verbs += ["create"] if self.create or self.generic else []
        verbs += ["update", "patch"] if self.replace or self.generic else []
        verbs += ["delete"] if self.delete or self.generic else []
        verbs += ["deletecollection"] if self.generic else []
        return sorted(verbs)

    @property
    def generic(self) -> bool:
        """Writes through control/objects.py (no handler of its own for any)."""
        return not self.read_only and not (self.create or self.replace or self.delete)

    @property
    def subresources(self) -> list[str]:
        return sorted([*self.streams, *(["status"] if self.status else []),
                       *(["scale"] if self.rule.scale else [])])


# ---- the handlers: each one call of control
def _create_pod(s: Scope, body: Any) -> Obj:
    return s.pods.create(s.cluster, s.ns, body, s.dry_run)


def _replace_pod(s: Scope, name: str, new: Obj) -> Obj:
    return s.pods.replace(s.cluster, s.ns, name, new, s.dry_run)


def _delete_pod(s: Scope, name: str, opts: DeleteOptions) -> Obj:
    return s.pods.delete(s.cluster, s.ns, name, opts.grace, opts)


async def _pod_log(request: web.Request, s: Scope, name: str) -> web.StreamResponse:
    if request.method != "GET":
        raise method_not_allowed(request.method)
    return await pod_logs(request, s.state, s.cluster, s.ns, name)


async def _sa_token(request: web.Request, s: Scope, name: str) -> web.StreamResponse:
    return await create_token(request, s.cluster, s.ns, name)


def _create_namespace(s: Scope, body: Any) -> Obj:
    return s.state.create_namespace(s.cluster, body, s.dry_run)


def _replace_namespace(s: Scope, name: str, new: Obj) -> Obj:
    return s.state.replace_namespace(s.cluster, name, new, s.dry_run)


def _delete_namespace(s: Scope, name: str, opts: DeleteOptions) -> Obj:
    return s.pods.delete_namespace(s.cluster, name, opts)  # its content goes first


def _services(s: Scope) -> ServiceWrites:
    return ServiceWrites(s.state, s.objects)  # stateless: the store holds the allocations


def _create_service(s: Scope, body: Any) -> Obj:
    return _services(s).create(s.cluster, s.ns, body, s.dry_run)


def _replace_service(s: Scope, name: str, new: Obj) -> Obj:
    return _services(s).replace(s.cluster, s.ns, name, new, s.dry_run)


def _delete_service(s: Scope, name: str, opts: DeleteOptions) -> Obj:
    return _services(s).delete(s.cluster, s.ns, name, opts)


# In discovery's order.
RESOURCES: list[Resource] = [
    Resource("namespaces", "namespace", tables.NAMESPACES, FIELDS["namespaces"],
             short=("ns",), create=_create_namespace, replace=_replace_namespace,
             delete=_delete_namespace),
    Resource("nodes", "node", tables.NODES, FIELDS["nodes"], short=("no",), read_only=True),
    Resource("pods", "pod", tables.PODS, FIELDS["pods"], short=("po",),
             categories=("all",), create=_create_pod, replace=_replace_pod,
             delete=_delete_pod, status=True,
             streams={"log": _pod_log, "exec": pod_exec, "attach": pod_attach,
                      "portforward": pod_portforward}),
    Resource("events", "event", tables.EVENTS, FIELDS["events"], short=("ev",),
             read_only=True),
    Resource("configmaps", "configmap", tables.CONFIGMAPS, short=("cm",)),
    Resource("secrets", "secret", tables.SECRETS, FIELDS["secrets"]),
    Resource("serviceaccounts", "serviceaccount", tables.SERVICEACCOUNTS, short=("sa",),
             streams={"token": _sa_token}),
    Resource("deployments", "deployment", tables.DEPLOYMENTS, short=("deploy",),
             categories=("all",), status=True),
    Resource("replicasets", "replicaset", tables.REPLICASETS, FIELDS["replicasets"],
             short=("rs",), categories=("all",), status=True),
    Resource("jobs", "job", tables.JOBS, categories=("all",), status=True),
    Resource("cronjobs", "cronjob", tables.CRONJOBS, short=("cj",), categories=("all",),
             status=True),
    Resource("daemonsets", "daemonset", tables.DAEMONSETS, short=("ds",), categories=("all",),
             status=True),
    Resource("networkpolicies", "networkpolicy", tables.NETWORKPOLICIES, short=("netpol",)),
    Resource("securitygrouppolicies", "securitygrouppolicy", tables.SECURITYGROUPPOLICIES,
             short=("sgp",)),
    Resource("ingresses", "ingress", tables.INGRESSES, short=("ing",), status=True),
    Resource("ingressclasses", "ingressclass", tables.INGRESSCLASSES),
    Resource("runtimeclasses", "runtimeclass", tables.RUNTIMECLASSES),
    Resource("services", "service", tables.SERVICES, short=("svc",), categories=("all",),
             create=_create_service, replace=_replace_service, delete=_delete_service,
             status=True),
    Resource("endpoints", "endpoints", tables.ENDPOINTS, short=("ep",)),
    Resource("endpointslices", "endpointslice", tables.ENDPOINTSLICES),
]
RESOURCES += [  # metrics.k8s.io: what kubectl top reads (api/kube/metricsapi.py)
    Resource("pods", "", metricsapi.PODS, read_only=True, read=metricsapi.read_pods,
             rule_key=metricsapi.POD_KEY),
    Resource("nodes", "", metricsapi.NODES, read_only=True, read=metricsapi.read_nodes,
             rule_key=metricsapi.NODE_KEY),
]
_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}


def find(group: str, version: str, plural: str) -> Resource | None:
    return _BY_PATH.get((group, version, plural))
