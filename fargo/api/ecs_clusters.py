"""The ECS face's cluster, capacity provider, account setting and task definition deletion
actions (merged into api/ecs.py's handlers): parameters checked by model/ rules become typed
arguments of control/catalog.py and control/accountsettings.py."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..control.ecs import Ecs
from ..control.tasks.admission import Failure
from ..model import cluster as clusters
from ..model.capacity import check_providers, parse_strategy
from ..model.errors import InvalidParameterException

Params = dict[str, Any]
Handler = Callable[[Params, str], Any]
SETTINGS_PAGE = 10  # ListAccountSettings: maxResults 1-10, 10 when not given


def _failure(f: Failure) -> dict[str, str]:
    return {"arn": f.arn, "reason": f.reason, **({"detail": f.detail} if f.detail else {})}


def _settings(p: Params) -> dict[str, str] | None:
    return clusters.parse_settings(p["settings"]) if p.get("settings") is not None else None


def _settings_page(items: list[dict[str, str]], p: Params) -> dict[str, Any]:
    size = p.get("maxResults", SETTINGS_PAGE)
    if not 1 <= size <= SETTINGS_PAGE:
        raise InvalidParameterException(
            f"maxResults must be between 1 and {SETTINGS_PAGE}.")
    token = p.get("nextToken")
    start = 0
    if token:
        if not re.fullmatch(r"[0-9]{1,9}", token) or int(token) > len(items):
            raise InvalidParameterException("Invalid nextToken.")
        start = int(token)
    out: dict[str, Any] = {"settings": items[start:start + size]}
    if start + size < len(items):
        out["nextToken"] = str(start + size)
    return out


def handlers(ecs: Ecs) -> dict[str, Handler]:
    catalog = ecs.catalog
    account = catalog.account

    def create_cluster(p: Params, region: str) -> Any:
        clusters.check_configuration(p.get("configuration"))
        clusters.check_service_connect(p.get("serviceConnectDefaults"))
        providers = p.get("capacityProviders")
        strategy = p.get("defaultCapacityProviderStrategy")
        return {"cluster": catalog.create_cluster(
            p.get("clusterName"), region, p.get("tags"),
            providers=check_providers(providers) if providers is not None else None,
            strategy=parse_strategy(strategy, "defaultCapacityProviderStrategy")
            if strategy is not None else None,
            settings=_settings(p))}

    def describe_clusters(p: Params, region: str) -> Any:
        return catalog.describe_clusters(p.get("clusters"), region,
                                         clusters.parse_include(p.get("include")))

    def put_cluster_capacity_providers(p: Params, region: str) -> Any:
        providers = check_providers(p["capacityProviders"])
        strategy = parse_strategy(p["defaultCapacityProviderStrategy"],
                                  "defaultCapacityProviderStrategy")
        return {"cluster": catalog.put_capacity_providers(p["cluster"], region, providers,
                                                          strategy)}

    def update_cluster(p: Params, region: str) -> Any:
        clusters.check_configuration(p.get("configuration"))
        clusters.check_service_connect(p.get("serviceConnectDefaults"))
        return {"cluster": catalog.update_settings(p["cluster"], region, _settings(p) or {})}

    def update_cluster_settings(p: Params, region: str) -> Any:
        settings = clusters.parse_settings(p["settings"])
        if not settings:
            raise InvalidParameterException("settings must name at least one setting.")
        return {"cluster": catalog.update_settings(p["cluster"], region, settings)}

    def list_account_settings(p: Params, region: str) -> Any:
        found = account.list(name=p.get("name"), value=p.get("value"),
                             principal=p.get("principalArn"),
                             effective=bool(p.get("effectiveSettings")))
        return _settings_page([s.to_wire() for s in found], p)

    def delete_task_definitions(p: Params, region: str) -> Any:
        deleted, failures = catalog.delete_taskdefs(p["taskDefinitions"], region)
        return {"taskDefinitions": deleted, "failures": [_failure(f) for f in failures]}

    return {
        "CreateCluster": create_cluster,
        "DescribeClusters": describe_clusters,
        "PutClusterCapacityProviders": put_cluster_capacity_providers,
        "UpdateCluster": update_cluster,
        "UpdateClusterSettings": update_cluster_settings,
        "PutAccountSetting": lambda p, region: {"setting": account.put(
            p["name"], p["value"], p.get("principalArn")).to_wire()},
        "PutAccountSettingDefault": lambda p, region: {"setting": account.put_default(
            p["name"], p["value"]).to_wire()},
        "DeleteAccountSetting": lambda p, region: {"setting": account.delete(
            p["name"], p.get("principalArn")).to_wire()},
        "ListAccountSettings": list_account_settings,
        "DeleteTaskDefinitions": delete_task_definitions,
    }
