"""Fargate's bill and Cost Explorer's rules (model/billing.py, model/costexplorer.py), and the
meter over a real SQLite store (control/cost.py, store/usage.py): no server, no root."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace

import pytest

from fargo.control.cost import CostExplorer
from fargo.control.tasks.retention import Retention
from fargo.model import billing
from fargo.model import costexplorer as ce
from fargo.model.billing import Metered, Prices
from fargo.model.taskrecord import Interface, PodRef, Task
from fargo.store.sqlite import Store
from fargo.store.usage import UsageTable


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


NOW = ts("2024-05-20T12:30:00")
DEFAULT = Prices()


def usage(start: float, seconds: float | None, **kw) -> Metered:
    fields = dict(task_id="t1", region="us-east-1", cluster="default", group="family:web",
                  family="web", cpu=256, memory=512, storage_gib=20, spot=False, arm=False,
                  start=start, end=None if seconds is None else start + seconds)
    fields.update(kw)
    return Metered(**fields)  # type: ignore[arg-type]


def rates(m: Metered, prices: Prices = DEFAULT) -> dict[str, tuple[float, float]]:
    return {i.usage_type: (i.quantity, i.rate) for i in billing.line_items(m, prices)}


# -- the bill's rules ---------------------------------------------------------------------------

def test_one_minute_minimum_then_per_second_rounded_up():
    assert billing.billed_span(100.0, 110.0) == (100.0, 160.0)
    assert billing.billed_span(100.0, 100.0) == (100.0, 160.0)
    assert billing.billed_span(100.0, 160.0) == (100.0, 160.0)
    assert billing.billed_span(100.0, 160.2) == (100.0, 161.0)
    assert billing.billed_span(100.0, 3700.0) == (100.0, 3700.0)


def test_x86_on_demand_rates_and_usage_types():
    m = usage(0, 60)
    assert rates(m) == {"USE1-Fargate-vCPU-Hours:perCPU": (0.25, 0.04048),
                        "USE1-Fargate-GB-Hours": (0.5, 0.004445)}
    charge = billing.charge_within(m, Prices(), (0, 3600), NOW)
    assert charge.seconds == 60
    assert math.isclose(charge.cost, (0.25 * 0.04048 + 0.5 * 0.004445) / 60)
    assert math.isclose(charge.vcpu_hours, 0.25 / 60) and math.isclose(charge.gb_hours,
                                                                        0.5 / 60)


def test_spot_is_discounted_but_storage_is_not():
    m = usage(0, 60, spot=True, cpu=1024, memory=2048, storage_gib=50)
    got = rates(m)
    assert got["USE1-SpotUsage-Fargate-vCPU-Hours:perCPU"][1] == pytest.approx(0.04048 * 0.3)
    assert got["USE1-SpotUsage-Fargate-GB-Hours"] == (2.0, pytest.approx(0.004445 * 0.3))
    assert got["USE1-Fargate-EphemeralStorage-GB-Hours"] == (30.0, 0.000111)
    items = billing.line_items(m, Prices())
    assert {i.purchase for i in items} == {billing.SPOT}


def test_arm_rates_and_names_with_and_without_spot():
    assert rates(usage(0, 60, arm=True)) == {"USE1-Fargate-ARM-vCPU-Hours:perCPU":
                                             (0.25, 0.03238),
                                             "USE1-Fargate-ARM-GB-Hours": (0.5, 0.00356)}
    assert set(rates(usage(0, 60, arm=True, spot=True))) == {
        "USE1-SpotUsage-Fargate-ARM-vCPU-Hours:perCPU", "USE1-SpotUsage-Fargate-ARM-GB-Hours"}


def test_storage_above_20_gb_only():
    assert "USE1-Fargate-EphemeralStorage-GB-Hours" not in rates(usage(0, 60, storage_gib=20))
    assert rates(usage(0, 60, storage_gib=21))["USE1-Fargate-EphemeralStorage-GB-Hours"][0] == 1
    charge = billing.charge_within(usage(0, 3600, storage_gib=200), Prices(), (0, 3600), NOW)
    assert charge.storage_gb_hours == 180


def test_region_prefixes():
    assert billing.usage_type("eu-west-1", "GB") == "EU-Fargate-GB-Hours"
    assert billing.usage_type("us-west-2", "vCPU") == "USW2-Fargate-vCPU-Hours:perCPU"
    assert billing.usage_type("eu-central-1", "EphemeralStorage") == \
        "EUC1-Fargate-EphemeralStorage-GB-Hours"
    assert billing.usage_type("xx-test-9", "GB") == "xx-test-9-Fargate-GB-Hours"


def test_pods_bill_under_eks():
    m = usage(0, 60, pod="default/web-1", cluster="kube")
    assert m.service == billing.SERVICE_EKS
    assert ce.rows_of(m, Prices(), NOW, "0")[0].dims["SERVICE_CODE"] == "AmazonEKS"
    assert usage(0, 60).service == "Amazon Elastic Container Service"


def test_price_overrides():
    p = Prices.from_json({"vcpuHour": 1.0, "spotDiscount": 0.5})
    assert p.vcpu_hour == 1.0 and p.spot_discount == 0.5 and p.gb_hour == 0.004445
    assert Prices.from_json(p.to_json()) == p
    assert rates(usage(0, 60, spot=True), p)["USE1-SpotUsage-Fargate-vCPU-Hours:perCPU"] == \
        (0.25, 0.5)
    for bad, word in (({"cpuHour": 1}, "Unknown price 'cpuHour'"), ({"gbHour": -1}, "gbHour"),
                      ({"gbHour": True}, "gbHour"), ({"gbHour": "1"}, "gbHour"),
                      ({"spotDiscount": 1}, "spotDiscount"), ([], "JSON object")):
        with pytest.raises(billing.PriceError, match=word):
            Prices.from_json(bad)


# -- time periods and buckets -------------------------------------------------------------------

def results(ms: list[Metered], start: str, end: str, granularity: str = "DAILY",
            metrics=("UnblendedCost", "UsageQuantity"), group_by=(), where=None,
            prices: Prices = DEFAULT) -> list[ce.TimeResult]:
    period = ce.parse_period({"Start": start, "End": end}, granularity, NOW)
    rows = [r for m in ms for r in ce.rows_of(m, prices, NOW, "000000000000")]
    return ce.cost_and_usage(rows, period, granularity, ce.parse_metrics(metrics),
                             ce.parse_group_by(list(group_by)), ce.compile_filter(where), NOW)


def cost(r: ce.TimeResult) -> float:
    return float(r.total["UnblendedCost"][0])


def test_pro_rata_across_days_with_the_minimum_applied_to_the_whole_task():
    # 10 s before midnight, 10 s long: billed 60 s, 10 on the first day and 50 on the next.
    m = usage(ts("2024-05-10T23:59:50"), 10)
    out = results([m], "2024-05-10", "2024-05-12")
    per_second = (0.25 * 0.04048 + 0.5 * 0.004445) / 3600
    assert [r.period.render() for r in out] == [{"Start": "2024-05-10", "End": "2024-05-11"},
                                               {"Start": "2024-05-11", "End": "2024-05-12"}]
    assert cost(out[0]) == pytest.approx(10 * per_second, abs=1e-10)
    assert cost(out[1]) == pytest.approx(50 * per_second, abs=1e-10)
    assert float(out[0].total["UsageQuantity"][0]) == pytest.approx(0.75 * 10 / 3600, abs=1e-9)
    assert out[0].total["UsageQuantity"][1] == "N/A"  # vCPU-hours and GB-hours together


def test_hourly_buckets_take_times_and_split_a_task():
    m = usage(ts("2024-05-20T09:30:00"), 3600)
    out = results([m], "2024-05-20T09:00:00Z", "2024-05-20T12:00:00Z", "HOURLY")
    assert [r.period.render()["Start"] for r in out] == [
        "2024-05-20T09:00:00Z", "2024-05-20T10:00:00Z", "2024-05-20T11:00:00Z"]
    hour = 0.25 * 0.04048 + 0.5 * 0.004445
    assert [cost(r) for r in out] == [pytest.approx(hour / 2, abs=1e-10),
                                      pytest.approx(hour / 2, abs=1e-10), 0.0]


def test_monthly_buckets_clip_and_say_what_is_estimated():
    m = usage(ts("2024-04-30T23:00:00"), 7200)
    out = results([m], "2024-04-15", "2024-05-20", "MONTHLY")
    assert [r.period.render() for r in out] == [{"Start": "2024-04-15", "End": "2024-05-01"},
                                               {"Start": "2024-05-01", "End": "2024-05-20"}]
    assert cost(out[0]) == pytest.approx(cost(out[1]), abs=1e-10)
    assert [r.estimated for r in out] == [False, True]  # May's bill is still open


def test_running_tasks_count_up_to_now():
    m = usage(NOW - 600, None)
    out = results([m], "2024-05-20", "2024-05-21")
    assert cost(out[0]) == pytest.approx(600 * (0.25 * 0.04048 + 0.5 * 0.004445) / 3600,
                                         abs=1e-10)


@pytest.mark.parametrize("period,granularity,code,word", [
    ({"Start": "2024-05-01", "End": "2024-05-01"}, "DAILY", "ValidationException", "before"),
    ({"Start": "2024-05-02", "End": "2024-05-01"}, "DAILY", "ValidationException", "before"),
    ({"Start": "2024/05/01", "End": "2024-05-02"}, "DAILY", "ValidationException", "Start"),
    ({"Start": "2024-02-30", "End": "2024-03-02"}, "DAILY", "ValidationException", "date"),
    ({"Start": "2024-05-01", "End": "2024-05-02"}, "HOURLY", "ValidationException",
     "HOURLY"),
    ({"Start": "2024-05-19T10:30:00Z", "End": "2024-05-19T12:00:00Z"}, "HOURLY",
     "ValidationException", "whole hour"),
    ({"Start": "2024-05-21", "End": "2024-05-22"}, "DAILY", "ValidationException", "current"),
    ({"Start": "2023-01-01", "End": "2023-02-01"}, "MONTHLY", "BillExpirationException",
     "expired"),
    ({"Start": "2024-05-01T00:00:00Z", "End": "2024-05-02T00:00:00Z"}, "HOURLY",
     "DataUnavailableException", "14 days"),
    ({"Start": "2024-05-01", "End": "2024-05-02"}, "WEEKLY", "ValidationException",
     "Granularity"),
    ({"Start": "2024-05-01"}, "DAILY", "ValidationException", "End"),
])
def test_bad_time_periods(period, granularity, code, word):
    with pytest.raises(ce.ApiError, match=word) as err:
        ce.parse_period(period, granularity, NOW)
    assert err.value.code == code


def test_daily_accepts_midnight_times():
    p = ce.parse_period({"Start": "2024-05-01T00:00:00Z", "End": "2024-05-02"}, "DAILY", NOW)
    assert p.render() == {"Start": "2024-05-01", "End": "2024-05-02"}


# -- metrics, groups, filters -------------------------------------------------------------------

def tasks() -> list[Metered]:
    start = ts("2024-05-19T10:00:00")
    return [usage(start, 3600, task_id="a", tags=(("team", "blue"),)),
            usage(start, 3600, task_id="b", spot=True, storage_gib=30,
                  tags=(("team", "Red"),)),
            usage(start, 1800, task_id="c", pod="ns/p", cluster="kube")]


def test_group_by_usage_type_and_tag_sums_to_the_total():
    out = results(tasks(), "2024-05-19", "2024-05-20",
                  group_by=[{"Type": "DIMENSION", "Key": "USAGE_TYPE"},
                            {"Type": "TAG", "Key": "team"}])[0]
    assert out.total == {}
    keys = [k for k, _ in out.groups]
    assert ("USE1-Fargate-GB-Hours", "team$blue") in keys
    assert ("USE1-Fargate-GB-Hours", "team$") in keys  # the pod has no tags
    assert ("USE1-Fargate-EphemeralStorage-GB-Hours", "team$Red") in keys
    assert keys == sorted(keys)
    whole = results(tasks(), "2024-05-19", "2024-05-20")[0]
    assert sum(float(m["UnblendedCost"][0]) for _, m in out.groups) == \
        pytest.approx(cost(whole), abs=1e-9)
    units = {k[0]: m["UsageQuantity"][1] for k, m in out.groups}
    assert units["USE1-Fargate-vCPU-Hours:perCPU"] == "Hrs"
    assert units["USE1-Fargate-GB-Hours"] == "GB-Hours"


def test_group_by_service():
    out = results(tasks(), "2024-05-19", "2024-05-20",
                  group_by=[{"Type": "DIMENSION", "Key": "SERVICE"}])[0]
    assert [k for k, _ in out.groups] == [("Amazon Elastic Container Service",),
                                          ("Amazon Elastic Container Service for Kubernetes",)]


@pytest.mark.parametrize("where,expect", [
    ({"Dimensions": {"Key": "SERVICE", "Values": ["Amazon Elastic Container Service"]}},
     {"a", "b"}),
    ({"Not": {"Dimensions": {"Key": "PURCHASE_TYPE", "Values": ["Spot Instances"]}}},
     {"a", "c"}),
    ({"Tags": {"Key": "team", "MatchOptions": ["ABSENT"]}}, {"c"}),
    ({"Tags": {"Key": "team", "Values": [""]}}, {"c"}),
    ({"Tags": {"Key": "team", "Values": ["red"]}}, set()),
    ({"Tags": {"Key": "team", "Values": ["red"], "MatchOptions": ["EQUALS",
                                                                  "CASE_INSENSITIVE"]}}, {"b"}),
    ({"Dimensions": {"Key": "USAGE_TYPE", "Values": ["USE1-SpotUsage"],
                     "MatchOptions": ["STARTS_WITH"]}}, {"b"}),
    ({"Or": [{"Tags": {"Key": "team", "Values": ["blue"]}},
             {"Dimensions": {"Key": "SERVICE_CODE", "Values": ["AmazonEKS"]}}]}, {"a", "c"}),
    ({"And": [{"Dimensions": {"Key": "REGION", "Values": ["us-east-1"]}},
              {"Tags": {"Key": "team", "Values": ["blue", "Red"]}}]}, {"a", "b"}),
])
def test_filters(where, expect):
    by_id = {m.task_id: m for m in tasks()}
    pred = ce.compile_filter(where)
    kept = {tid for tid, m in by_id.items()
            if any(pred(r) for r in ce.rows_of(m, Prices(), NOW, "000000000000"))}
    assert kept == expect


@pytest.mark.parametrize("where,word", [
    ({}, "exactly one"),
    ({"Not": {"Tags": {"Key": "a", "Values": ["b"]}}, "Tags": {"Key": "a", "Values": ["b"]}},
     "exactly one"),
    ({"And": [{"Tags": {"Key": "a", "Values": ["b"]}}]}, "at least two"),
    ({"CostCategories": {"Key": "x", "Values": ["y"]}}, "cost categories"),
    ({"Dimensions": {"Key": "INSTANCE_TYPE", "Values": ["m5.large"]}}, "no dimension"),
    ({"Dimensions": {"Key": "COLOUR", "Values": ["x"]}}, "not a dimension"),
    ({"Dimensions": {"Key": "SERVICE", "Values": []}}, "at least one value"),
    ({"Tags": {"Values": ["x"]}}, "needs a Key"),
    ({"Dimensions": {"Values": ["x"]}}, "needs a Key"),
    ({"Dimensions": {"Key": "SERVICE", "MatchOptions": ["ABSENT"]}}, "ABSENT is for Tags"),
    ({"Tags": {"Key": "a", "Values": ["b"], "MatchOptions": ["EQUALS", "CONTAINS"]}},
     "one of"),
    ({"Dimensions": {"Key": "SERVICE", "Values": ["x"],
                     "MatchOptions": ["GREATER_THAN_OR_EQUAL"]}}, "anomalies"),
])
def test_bad_filters(where, word):
    with pytest.raises(ce.ValidationException, match=word):
        ce.compile_filter(where)


def test_deep_filters_are_refused_not_recursed():
    where: dict = {"Tags": {"Key": "a", "Values": ["b"]}}
    for _ in range(ce.MAX_DEPTH - 1):
        where = {"Not": where}
    ce.compile_filter(where)
    with pytest.raises(ce.ValidationException, match="nest"):
        ce.compile_filter({"Not": where})


def test_metrics_and_group_by_rules():
    assert ce.parse_metrics(["unblendedCost", "AmortizedCost"]) == [
        ("unblendedCost", "UnblendedCost"), ("AmortizedCost", "AmortizedCost")]
    with pytest.raises(ce.ValidationException, match="NormalizedUsageAmount"):
        ce.parse_metrics(["NormalizedUsageAmount"])
    with pytest.raises(ce.ValidationException, match="not valid"):
        ce.parse_metrics(["Dollars"])
    with pytest.raises(ce.ValidationException, match="at most 2"):
        ce.parse_group_by([{"Type": "TAG", "Key": k} for k in "abc"])
    with pytest.raises(ce.ValidationException, match="COST_CATEGORY"):
        ce.parse_group_by([{"Type": "COST_CATEGORY", "Key": "x"}])
    with pytest.raises(ce.ValidationException, match="no dimension OPERATION"):
        ce.parse_group_by([{"Type": "DIMENSION", "Key": "OPERATION"}])
    out = results(tasks(), "2024-05-19", "2024-05-20",
                  metrics=("BlendedCost", "NetUnblendedCost", "UnblendedCost"))[0]
    assert out.total["BlendedCost"] == out.total["UnblendedCost"] == \
        out.total["NetUnblendedCost"]
    assert out.total["BlendedCost"][1] == "USD"


def test_amounts_are_decimal_strings():
    assert ce.amount(0.0) == "0"
    assert ce.amount(0.01012) == "0.01012"
    assert ce.amount(1.5e-12) == "0"
    assert ce.amount(12.0) == "12"


def test_dimension_values_and_sorting():
    period = ce.parse_period({"Start": "2024-05-19", "End": "2024-05-20"}, "DAILY", NOW)
    rows = [r for m in tasks() for r in ce.rows_of(m, Prices(), NOW, "0")]
    assert ce.distinct_values(rows, period, lambda r: [r.dims["SERVICE"]], None, None) == [
        "Amazon Elastic Container Service", "Amazon Elastic Container Service for Kubernetes"]
    assert ce.distinct_values(rows, period, lambda r: [r.dims["USAGE_TYPE"]], "spot", None) \
        == ["USE1-SpotUsage-Fargate-GB-Hours", "USE1-SpotUsage-Fargate-vCPU-Hours:perCPU"]
    by_cost = ce.distinct_values(rows, period, lambda r: [r.dims["USAGE_TYPE"]], None,
                                 ce.parse_sort([{"Key": "UnblendedCost",
                                                 "SortOrder": "DESCENDING"}]))
    assert by_cost[0] == "USE1-Fargate-vCPU-Hours:perCPU"
    with pytest.raises(ce.ValidationException, match="SortBy"):
        ce.parse_sort([{"Key": "NormalizedUsageAmount"}])


def test_paging_tokens():
    out = results(tasks(), "2024-05-01", "2024-05-20",
                  group_by=[{"Type": "DIMENSION", "Key": "USAGE_TYPE"}])
    page, nxt = ce.page_results(out, 0, limit=5)
    assert nxt is not None and sum(max(1, len(r.groups)) for r in page) <= 5
    rest, last = ce.page_results(out, nxt, limit=1000)
    assert last is None and page + rest == out
    fp = ce.fingerprint({"Granularity": "DAILY", "NextPageToken": "x"})
    assert fp == ce.fingerprint({"Granularity": "DAILY"})
    assert ce.read_token(ce.make_token(7, fp), fp) == 7
    with pytest.raises(ce.RequestChangedException):
        ce.read_token(ce.make_token(7, fp), ce.fingerprint({"Granularity": "HOURLY"}))
    for bad in ("!!!", "bm9wZQ==", ce.make_token(-1, fp)):
        with pytest.raises(ce.InvalidNextTokenException):
            ce.read_token(bad, fp)


# -- the meter over a real store ----------------------------------------------------------------

def record(tid: str, status: str, pulled: float | None, stopped: float | None,
           **kw) -> Task:
    return Task(id=tid, arn=f"arn:aws:ecs:us-east-1:000000000000:task/default/{tid}",
                cluster_arn="arn:aws:ecs:us-east-1:000000000000:cluster/default",
                task_definition_arn="arn:aws:ecs:us-east-1:000000000000:task-definition/web:1",
                family="web", region="us-east-1", cpu=512, memory=1024, created_at=100.0,
                availability_zone="us-east-1a",
                interface=Interface("att", "eni", "subnet", "10.0.0.5", "ip-10-0-0-5"),
                containers=[], plan=[], last_status=status, pull_started_at=pulled,
                stopped_at=stopped, **kw)


class _NoRuntime:
    def forget(self, tid: str) -> None:
        pass


def test_meter_writes_each_stopped_task_once_and_retention_waits_for_it(tmp_path):
    store = Store(tmp_path / "fargo.db")
    table = UsageTable(store)
    clock = [1000.0]
    cost = CostExplorer(store, table, Prices(), clock=lambda: clock[0])
    store.put_task(record("done", "STOPPED", 200.0, 230.0, capacity_provider="FARGATE_SPOT"))
    store.put_task(record("never", "STOPPED", None, 150.0))  # failed before its pull
    store.put_task(record("running", "RUNNING", 300.0, None))
    store.put_tags("arn:aws:ecs:us-east-1:000000000000:task/default/done",
                   [{"key": "team", "value": "blue"}])
    assert cost.meter() == 2
    assert cost.meter() == 0  # level-triggered: nothing twice
    got = {m.task_id: m for m in cost.usages(0, 2000)}
    assert set(got) == {"done", "running"}
    assert got["done"].spot and got["done"].tags == (("team", "blue"),)
    assert got["done"].end == 230.0 and got["running"].end is None
    charges = {c.usage.task_id: c for c in cost.task_charges(0, 2000)}
    assert charges["done"].seconds == 60  # the minimum
    assert charges["running"].seconds == 700  # up to the clock's now
    # A task stopped and forgotten before any meter pass: retention meters it first.
    store.put_task(record("late", "STOPPED", 400.0, 500.0, group="service:api"))
    retention = Retention(store, _NoRuntime(), 10.0)  # type: ignore[arg-type]
    retention.meter = cost.meter_tasks
    assert retention.sweep(now=5000.0) == 3  # done, never, late
    assert store.get_task("late") is None
    late = {m.task_id: m for m in table.between(0, 2000)}["late"]
    assert late.service_name == "api" and late.end == 500.0
    # ... and a meter that fails keeps the tasks.
    store.put_task(record("kept", "STOPPED", 400.0, 500.0))

    def broken(tasks: list[Task]) -> None:
        raise RuntimeError("disk full")

    retention.meter = broken
    with pytest.raises(RuntimeError):
        retention.sweep(now=5000.0)
    assert store.get_task("kept") is not None
    store.close()


def test_pod_tasks_bill_their_capacity_under_eks(tmp_path):
    store = Store(tmp_path / "fargo.db")
    cost = CostExplorer(store, UsageTable(store), Prices(), clock=lambda: 1000.0)
    pod = record("p", "STOPPED", 100.0, 400.0,
                 pod=PodRef(cluster="kube", namespace="ns", name="web-1", uid="u"))
    pod = replace(pod, cpu=2048, memory=9216)  # CapacityProvisioned: 2vCPU 9GB
    store.put_task(pod)
    cost.meter()
    (m,) = cost.usages(0, 1000)
    assert (m.service, m.cluster, m.pod, m.cpu, m.memory) == (
        billing.SERVICE_EKS, "kube", "ns/web-1", 2048, 9216)
    store.close()
