"""The Cost Explorer face (AWS JSON 1.1, X-Amz-Target AWSInsightsIndexService.*): each request,
checked against botocore's `ce` shape by awsjson.dispatch_json, becomes a call to
control/cost.py with named arguments; the answer is rendered in the API's member names,
amounts as decimal strings. Cost Explorer is global: clients sign for the region of the
endpoint they are given, which is fargo's."""

from __future__ import annotations

import asyncio

from ..control.cost import CostExplorer, Values
from ..model import costexplorer as ce
from .awsjson import Handler, JsonObject

SERVICE = "ce"
PREFIX = "AWSInsightsIndexService"


def _metrics(values: dict[str, tuple[str, str]]) -> JsonObject:
    return {name: {"Amount": amount, "Unit": unit} for name, (amount, unit) in values.items()}


def _no_billing_view(p: JsonObject) -> None:
    if p.get("BillingViewArn") is not None:
        raise ce.ValidationException("fargo has one bill and no billing views: "
                                     "BillingViewArn is not supported.")


def _paged(out: JsonObject, token: str | None) -> JsonObject:
    if token is not None:
        out["NextPageToken"] = token
    return out


def _values(found: Values, key: str, wrap: bool) -> JsonObject:
    listed = [{"Value": v, "Attributes": {}} for v in found.values] if wrap else found.values
    return _paged({key: listed, "ReturnSize": len(found.values), "TotalSize": found.total},
                  found.next_token)


def handlers(cost: CostExplorer) -> dict[str, Handler]:
    """Action name -> handler(params, region), as awsjson.dispatch_json calls them."""

    async def get_cost_and_usage(p: JsonObject, region: str) -> JsonObject:
        _no_billing_view(p)
        out = await asyncio.to_thread(
            cost.get_cost_and_usage, time_period=p["TimePeriod"],
            granularity=p["Granularity"], metrics=p["Metrics"],
            group_by=p.get("GroupBy") or [], filter=p.get("Filter"),
            token=p.get("NextPageToken"), request_print=ce.fingerprint(p))
        results = [{"TimePeriod": r.period.render(), "Total": _metrics(r.total),
                    "Groups": [{"Keys": list(keys), "Metrics": _metrics(values)}
                               for keys, values in r.groups],
                    "Estimated": r.estimated} for r in out.results]
        answer: JsonObject = {"ResultsByTime": results, "DimensionValueAttributes": [
            {"Value": a, "Attributes": {"description": "fargo"}} for a in out.accounts]}
        if out.groups:
            answer["GroupDefinitions"] = [g.render() for g in out.groups]
        return _paged(answer, out.next_token)

    async def get_dimension_values(p: JsonObject, region: str) -> JsonObject:
        _no_billing_view(p)
        found = await asyncio.to_thread(
            cost.get_dimension_values, time_period=p["TimePeriod"], dimension=p["Dimension"],
            context=p.get("Context"), search=p.get("SearchString"), filter=p.get("Filter"),
            sort_by=p.get("SortBy"), max_results=p.get("MaxResults"),
            token=p.get("NextPageToken"), request_print=ce.fingerprint(p))
        return _values(found, "DimensionValues", wrap=True)

    async def get_tags(p: JsonObject, region: str) -> JsonObject:
        _no_billing_view(p)
        found = await asyncio.to_thread(
            cost.get_tags, time_period=p["TimePeriod"], tag_key=p.get("TagKey"),
            search=p.get("SearchString"), filter=p.get("Filter"), sort_by=p.get("SortBy"),
            max_results=p.get("MaxResults"), token=p.get("NextPageToken"),
            request_print=ce.fingerprint(p))
        return _values(found, "Tags", wrap=False)

    return {"GetCostAndUsage": get_cost_and_usage, "GetDimensionValues": get_dimension_values,
            "GetTags": get_tags}
