"""Clusters, task definitions and tags: the ECS records that need no data plane."""

from __future__ import annotations

import time
from typing import Any

from ..model import taskdef
from ..model.errors import ClientException, ClusterNotFoundException, InvalidParameterException
from ..model.names import ACCOUNT, arn, check_name, cluster_name_from, family_revision
from ..model.tags import check_tags, merged
from ..store.sqlite import Store


class Catalog:
    def __init__(self, store: Store):
        self.store = store

    # clusters
    def cluster_doc(self, name: str, region: str) -> dict[str, Any]:
        return {
            "clusterArn": arn(region, "cluster", name), "clusterName": name, "status": "ACTIVE",
            "registeredContainerInstancesCount": 0, "runningTasksCount": 0,
            "pendingTasksCount": 0, "activeServicesCount": 0, "statistics": [], "tags": [],
            "settings": [{"name": "containerInsights", "value": "disabled"}],
            "capacityProviders": ["FARGATE", "FARGATE_SPOT"],
            "defaultCapacityProviderStrategy": [],
        }

    def create_cluster(self, name: str | None, region: str,
                       tags: list[dict[str, str]] | None = None) -> dict[str, Any]:
        name = check_name(name or "default", "cluster name")
        check_tags(tags or [])
        existing = self.store.get_cluster(name)
        if existing and existing["status"] == "ACTIVE":
            return self.render_cluster(existing)
        doc = self.cluster_doc(name, region)
        self.store.put_cluster(name, region, doc)
        if tags:
            self.tag(doc["clusterArn"], tags)
        return self.render_cluster(doc)

    def cluster(self, ref: str | None, region: str) -> dict[str, Any]:
        """The ACTIVE cluster a request names; `default` springs into being when first used."""
        name = cluster_name_from(ref)
        doc = self.store.get_cluster(name)
        if doc is None and name == "default":
            doc = self.cluster_doc(name, region)
            self.store.put_cluster(name, region, doc)
        if doc is None or doc["status"] != "ACTIVE":
            raise ClusterNotFoundException("Cluster not found.")
        return doc

    def render_cluster(self, doc: dict[str, Any]) -> dict[str, Any]:
        name = doc["clusterName"]
        out = dict(doc)
        out["runningTasksCount"] = self.store.count_tasks(name, last="RUNNING")
        out["pendingTasksCount"] = sum(self.store.count_tasks(name, last=state)
                                       for state in ("PROVISIONING", "PENDING", "ACTIVATING"))
        out["tags"] = self.store.get_tags(doc["clusterArn"])
        return out

    def describe_clusters(self, refs: list[str] | None, region: str) -> dict[str, Any]:
        clusters, failures = [], []
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
                clusters.append(self.render_cluster(doc))
        return {"clusters": clusters, "failures": failures}

    def list_clusters(self) -> list[str]:
        return [d["clusterArn"] for d in self.store.list_clusters() if d["status"] == "ACTIVE"]

    def delete_cluster(self, ref: str, region: str) -> dict[str, Any]:
        doc = self.cluster(ref, region)
        if self.store.count_tasks(doc["clusterName"], not_last="STOPPED"):
            raise ClientException("The Cluster cannot be deleted while Tasks are active.",
                                  code="ClusterContainsTasksException")
        doc["status"] = "INACTIVE"
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
        td = self.store.get_taskdef(family, revision)
        if td is None:
            raise ClientException("Unable to describe task definition.")
        return td

    def deregister(self, ref: str) -> dict[str, Any]:
        family, revision = family_revision(ref)
        if revision is None:
            raise ClientException("Invalid revision number. Number: (missing)")
        td = self.store.get_taskdef(family, revision)
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
        rows = self.store.list_taskdefs(family, status or "ACTIVE", sort == "DESC")
        return [arn(region, "task-definition", f"{f}:{r}") for f, r in rows]

    # tags
    def tag(self, resource: str, tags: list[dict[str, str]]) -> None:
        existing = self.store.get_tags(resource)
        check_tags(tags, existing)
        self.store.put_tags(resource, merged(existing, tags))

    def untag(self, resource: str, keys: list[str]) -> None:
        kept = [t for t in self.store.get_tags(resource) if t["key"] not in set(keys)]
        self.store.put_tags(resource, kept)
