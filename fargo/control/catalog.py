"""Clusters, task definitions and tags: the ECS records that need no data plane."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from ..model import cluster as clusters
from ..model import taskdef
from ..model.capacity import PROVIDERS, Strategy, check_associated
from ..model.errors import (
    ApiError,
    ClientException,
    ClusterNotFoundException,
    InvalidParameterException,
)
from ..model.names import ACCOUNT, arn, check_name, cluster_name_from, family_revision
from ..model.tags import check_tags, merged
from ..store.ecsrows import DELETED, EcsRows
from ..store.services import ServiceTable
from ..store.sqlite import Store
from .accountsettings import AccountSettings
from .tasks.admission import Failure

# What a write's answer shows of its cluster (DescribeClusters shows what `include` asks).
WRITE_VIEW = frozenset({"SETTINGS", "TAGS"})
TASKDEF_STATUSES = ("ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS")


class Catalog:
    def __init__(self, store: Store):
        self.store = store
        self.rows = EcsRows(store)
        self.account = AccountSettings(self.rows)
        self.services = ServiceTable(store)

    # clusters
    def cluster_doc(self, name: str, region: str, providers: Iterable[str] = (),
                    strategy: Strategy = (),
                    settings: dict[str, str] | None = None) -> dict[str, Any]:
        """A new cluster; containerInsights defaults to the account's setting, as on ECS."""
        given = dict(settings or {})
        given.setdefault(clusters.CONTAINER_INSIGHTS,
                         self.account.effective(clusters.CONTAINER_INSIGHTS).value)
        doc: dict[str, Any] = {
            "clusterArn": arn(region, "cluster", name), "clusterName": name, "status": "ACTIVE",
            "registeredContainerInstancesCount": 0, "runningTasksCount": 0,
            "pendingTasksCount": 0, "activeServicesCount": 0, "statistics": [], "tags": [],
            "settings": clusters.settings_to_wire(given),
            "capacityProviders": list(providers),
            "defaultCapacityProviderStrategy": [i.to_wire() for i in strategy],
        }
        if doc["capacityProviders"]:
            doc["attachmentsStatus"] = "UPDATE_COMPLETE"
        return doc

    def create_cluster(self, name: str | None, region: str,
                       tags: list[dict[str, str]] | None = None, *,
                       providers: tuple[str, ...] | None = None,
                       strategy: Strategy | None = None,
                       settings: dict[str, str] | None = None) -> dict[str, Any]:
        """CreateCluster; providers, strategy and settings as model/capacity.py and
        model/cluster.py checked them (None: not given). ECS associates no capacity provider
        unless asked; the strategy's must be among those given."""
        name = check_name(name or "default", "cluster name")
        check_tags(tags or [])
        check_associated(strategy or (), providers or ())
        existing = self.store.get_cluster(name)
        if existing and existing["status"] == "ACTIVE":
            # ECS answers the same request again with the cluster it made; another one not.
            want = self.cluster_doc(name, region, providers or (), strategy or (), settings)
            for key, given in (("capacityProviders", providers), ("settings", settings),
                               ("defaultCapacityProviderStrategy", strategy)):
                if given is not None and existing.get(key) != want[key]:
                    raise InvalidParameterException(clusters.IDEMPOTENT_MISMATCH)
            return self.render_cluster(existing)
        doc = self.cluster_doc(name, region, providers or (), strategy or (), settings)
        self.store.put_cluster(name, region, doc)
        if tags:
            self.tag(doc["clusterArn"], tags)
        return self.render_cluster(doc)

    def cluster(self, ref: str | None, region: str) -> dict[str, Any]:
        """The ACTIVE cluster a request names; `default` springs into being when first used."""
        name = cluster_name_from(ref)
        doc = self.store.get_cluster(name)
        if doc is None and name == "default":
            # Made on first use with both Fargate providers, so a strategy runs at once.
            doc = self.cluster_doc(name, region, PROVIDERS)
            self.store.put_cluster(name, region, doc)
        if doc is None or doc["status"] != "ACTIVE":
            raise ClusterNotFoundException("Cluster not found.")
        return doc

    def render_cluster(self, doc: dict[str, Any],
                       include: frozenset[str] = WRITE_VIEW) -> dict[str, Any]:
        """The cluster as ECS shows it; include: DescribeClusters' fields (model/cluster.py)."""
        name = doc["clusterName"]
        out = {k: v for k, v in doc.items() if k not in ("settings", "tags")}
        out.setdefault("capacityProviders", [])
        out.setdefault("defaultCapacityProviderStrategy", [])
        out["runningTasksCount"] = self.store.count_tasks(name, last="RUNNING")
        out["pendingTasksCount"] = sum(self.store.count_tasks(name, last=state)
                                       for state in ("PROVISIONING", "PENDING", "ACTIVATING"))
        out["statistics"] = clusters.statistics(
            running_fargate=out["runningTasksCount"], pending_fargate=out["pendingTasksCount"],
            active_services=self.services.count(name, "ACTIVE"),
            draining_services=self.services.count(name, "DRAINING")) \
            if "STATISTICS" in include else []
        if "SETTINGS" in include:
            out["settings"] = doc.get("settings") or []
        if "ATTACHMENTS" in include:
            out["attachments"] = []  # the Fargate providers have no Auto Scaling resources
        # CONFIGURATIONS: fargo keeps none (model/cluster.py refuses them), so none is shown.
        if "TAGS" in include:
            out["tags"] = self.store.get_tags(doc["clusterArn"])
        out["activeServicesCount"] = self.services.count(name, "ACTIVE")
        return out

    def describe_clusters(self, refs: list[str] | None, region: str,
                          include: frozenset[str] = frozenset()) -> dict[str, Any]:
        if refs is not None and len(refs) > 100:
            raise InvalidParameterException("At most 100 clusters can be described at once.")
        found, failures = [], []
        for ref in refs or ["default"]:
            try:
                name = cluster_name_from(ref)
            except InvalidParameterException:
                failures.append({"arn": ref[:1600], "reason": "MISSING"})
                continue
            doc = self.store.get_cluster(name)
            if doc is None and name == "default":
                doc = self.cluster(None, region)
            if doc is None:
                failures.append({"arn": arn(region, "cluster", name), "reason": "MISSING"})
            else:
                found.append(self.render_cluster(doc, include))
        return {"clusters": found, "failures": failures}

    def list_clusters(self) -> list[str]:
        return [d["clusterArn"] for d in self.store.list_clusters() if d["status"] == "ACTIVE"]

    def delete_cluster(self, ref: str, region: str) -> dict[str, Any]:
        doc = self.cluster(ref, region)
        if self.services.names(doc["clusterName"], ("ACTIVE", "DRAINING")):
            raise ClientException("The Cluster cannot be deleted while Services are active.",
                                  code="ClusterContainsServicesException")
        if self.store.count_tasks(doc["clusterName"], not_last="STOPPED"):
            raise ClientException("The Cluster cannot be deleted while Tasks are active.",
                                  code="ClusterContainsTasksException")
        doc["status"] = "INACTIVE"
        self.store.put_cluster(doc["clusterName"], region, doc)
        return self.render_cluster(doc)

    def put_capacity_providers(self, ref: str, region: str, providers: tuple[str, ...],
                               strategy: Strategy) -> dict[str, Any]:
        """PutClusterCapacityProviders: the whole list and default strategy, replaced. A
        provider that running tasks or services use stays associated."""
        doc = self.cluster(ref, region)
        check_associated(strategy, providers)
        dropped = set(doc.get("capacityProviders") or []) - set(providers)
        if dropped & self._providers_in_use(doc["clusterName"]):
            raise ApiError("The specified capacity provider is in use and cannot be removed.",
                           code="ResourceInUseException")
        doc["capacityProviders"] = list(providers)
        doc["defaultCapacityProviderStrategy"] = [i.to_wire() for i in strategy]
        doc["attachmentsStatus"] = "UPDATE_COMPLETE"
        self.store.put_cluster(doc["clusterName"], region, doc)
        return self.render_cluster(doc)

    def _providers_in_use(self, cluster: str) -> set[str]:
        used = {t.capacity_provider for t in self.store.active_tasks()
                if t.capacity_provider and t.cluster_arn.rsplit("/", 1)[-1] == cluster}
        for svc in self.services.live():
            if svc.cluster_name == cluster:
                used |= {item.provider for d in svc.deployments for item in d.strategy}
        return used

    def update_settings(self, ref: str, region: str, settings: dict[str, str]) -> dict[str, Any]:
        """UpdateCluster / UpdateClusterSettings: the named settings change, others stay."""
        doc = self.cluster(ref, region)
        current = {s["name"]: s["value"] for s in doc.get("settings") or []}
        current.update(settings)
        doc["settings"] = clusters.settings_to_wire(current)
        self.store.put_cluster(doc["clusterName"], region, doc)
        return self.render_cluster(doc)

    # task definitions
    def register(self, req: dict[str, Any], region: str) -> dict[str, Any]:
        td = taskdef.normalize(req)
        check_tags(req.get("tags") or [])
        family = td["family"]
        td["revision"] = self.store.next_revision(family)
        td["taskDefinitionArn"] = arn(region, "task-definition", f"{family}:{td['revision']}")
        td["status"] = "ACTIVE"
        td["registeredAt"] = time.time()
        td["registeredBy"] = f"arn:aws:iam::{ACCOUNT}:root"
        self.store.put_taskdef(td)
        tags = req.get("tags") or []
        if tags:
            self.tag(td["taskDefinitionArn"], tags)
        return {"taskDefinition": td, "tags": tags}

    def taskdef(self, ref: str) -> dict[str, Any]:
        family, revision = family_revision(ref)
        self.reap_deleted()
        td = self._stored_taskdef(family, revision)
        if td is None:
            raise ClientException("Unable to describe task definition.")
        return td

    def _stored_taskdef(self, family: str, revision: int | None) -> dict[str, Any] | None:
        td = self.store.get_taskdef(family, revision)
        return None if td is None or td["status"] == DELETED else td

    def deregister(self, ref: str) -> dict[str, Any]:
        family, revision = family_revision(ref)
        if revision is None:
            raise ClientException("Invalid revision number. Number: (missing)")
        td = self._stored_taskdef(family, revision)
        if td is None:
            raise ClientException("The specified task definition does not exist.")
        if td["status"] == "ACTIVE":
            td["status"] = "INACTIVE"
            td["deregisteredAt"] = time.time()
            self.store.put_taskdef(td)
        return td

    def list_taskdefs(self, family: str | None, status: str | None, sort: str | None,
                      region: str) -> list[str]:
        if family:
            check_name(family, "family")
        if status is not None and status not in TASKDEF_STATUSES:
            raise InvalidParameterException(
                f"status {str(status)[:64]!r} is not valid: use ACTIVE, INACTIVE or "
                "DELETE_IN_PROGRESS.")
        if sort is not None and sort not in ("ASC", "DESC"):
            raise InvalidParameterException(f"sort {str(sort)[:64]!r} is not valid: use ASC "
                                            "or DESC.")
        self.reap_deleted()
        rows = self.store.list_taskdefs(family, status or "ACTIVE", sort == "DESC")
        return [arn(region, "task-definition", f"{f}:{r}") for f, r in rows]

    def delete_taskdefs(self, refs: list[str],
                        region: str) -> tuple[list[dict[str, Any]], list[Failure]]:
        """DeleteTaskDefinitions: INACTIVE revisions become DELETE_IN_PROGRESS, and are gone
        once no task runs them; anything else is a failure, in ECS's words."""
        if not refs:
            raise InvalidParameterException(
                "size of TaskDefinition references list must be greater than 0")
        if len(refs) > 10:
            raise InvalidParameterException(
                "Size of TaskDefinition references list cannot exceed 10")
        deleted: dict[str, dict[str, Any]] = {}
        failures: list[Failure] = []
        now = time.time()
        for ref in refs:
            try:
                family, revision = family_revision(ref)
            except ClientException:
                family, revision = "", None
            if revision is None:
                failures.append(Failure(ref[:1600], "The specified task definition identifier "
                                        "is invalid. Specify a valid name or ARN and try again.",
                                        ""))
                continue
            td_arn = arn(region, "task-definition", f"{family}:{revision}")
            td = self._stored_taskdef(family, revision)
            if td is None:
                failures.append(Failure(td_arn, "The specified task definition does not exist. "
                                        "Specify a valid account, family, revision and try "
                                        "again.", ""))
            elif td["status"] == "ACTIVE":
                failures.append(Failure(td_arn, "The specified task definition is still in "
                                        "ACTIVE status. Please deregister the target and try "
                                        "again.", ""))
            else:
                if td["status"] == "INACTIVE":
                    td["status"] = "DELETE_IN_PROGRESS"
                    td["deleteRequestedAt"] = now
                    self.store.put_taskdef(td)
                deleted[td["taskDefinitionArn"]] = td
        self.reap_deleted()
        return list(deleted.values()), failures

    def reap_deleted(self) -> None:
        """DELETE_IN_PROGRESS revisions no unstopped task runs are gone (kept as DELETED
        rows, so that their revision numbers are not given out again)."""
        deleting = self.rows.taskdefs("DELETE_IN_PROGRESS")
        if not deleting:
            return
        running = {t.task_definition_arn for t in self.store.active_tasks()}
        for td in deleting:
            if td["taskDefinitionArn"] not in running:
                td["status"] = DELETED
                self.store.put_taskdef(td)
                self.store.put_tags(td["taskDefinitionArn"], [])

    def live_families(self) -> set[str]:
        self.reap_deleted()
        return self.rows.live_families()

    # tags
    def tag(self, resource: str, tags: list[dict[str, str]]) -> None:
        existing = self.store.get_tags(resource)
        check_tags(tags, existing)
        self.store.put_tags(resource, merged(existing, tags))

    def untag(self, resource: str, keys: list[str]) -> None:
        kept = [t for t in self.store.get_tags(resource) if t["key"] not in set(keys)]
        self.store.put_tags(resource, kept)
