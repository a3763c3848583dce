"""Per-second cost end to end: real busybox tasks on a server with a --prices file, then
Cost Explorer through boto3 and the `aws ce` CLI, and `fargo cost`. Each figure is checked
against the rules (model/billing.py) applied to the task's recorded times; the usage outlives
the task record (forgotten after --stopped-retention) and a SIGKILL of the server."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import botocore.exceptions
import pytest

from tests.conftest import ROOT, wait_status

PRICES = {"vcpuHour": 0.1, "gbHour": 0.01, "storageGbHour": 0.001, "spotDiscount": 0.5}
SPOT = [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]


def _day(ts: float, days: int = 0) -> str:
    return (dt.datetime.fromtimestamp(ts, dt.UTC) + dt.timedelta(days=days)).strftime(
        "%Y-%m-%d")


# USD per hour of one 0.25 vCPU / 0.5 GB / 30 GiB task at PRICES, written out by hand.
HOURLY_RATES = {
    False: {"USE1-Fargate-vCPU-Hours:perCPU": 0.25 * 0.1, "USE1-Fargate-GB-Hours": 0.5 * 0.01,
            "USE1-Fargate-EphemeralStorage-GB-Hours": 10 * 0.001},
    True: {"USE1-SpotUsage-Fargate-vCPU-Hours:perCPU": 0.25 * 0.1 * 0.5,
           "USE1-SpotUsage-Fargate-GB-Hours": 0.5 * 0.01 * 0.5,
           "USE1-Fargate-EphemeralStorage-GB-Hours": 10 * 0.001},
}


@dataclass(frozen=True)
class Ran:
    task_id: str
    spot: bool
    start: float  # pullStartedAt
    end: float  # stoppedAt


def _ran(task: dict, spot: bool) -> Ran:
    return Ran(task["taskArn"].rsplit("/", 1)[-1], spot, task["pullStartedAt"].timestamp(),
               task["stoppedAt"].timestamp())


def _expected(tasks: list[Ran], start: float, end: float) -> dict[str, float]:
    """usage type -> cost over [start, end): whole seconds from the pull's start to the stop,
    a minute at the least, the part inside the window."""
    out: dict[str, float] = {}
    for t in tasks:
        billed_end = t.start + max(60, math.ceil(t.end - t.start))
        seconds = max(0.0, min(billed_end, end) - max(t.start, start))
        for usage_type, rate in HOURLY_RATES[t.spot].items():
            out[usage_type] = out.get(usage_type, 0.0) + rate * seconds / 3600
    return out


def _by_usage_type(answer: dict) -> dict[str, float]:
    sums: dict[str, float] = {}
    for period in answer["ResultsByTime"]:
        for g in period["Groups"]:
            key = g["Keys"][0]
            sums[key] = sums.get(key, 0.0) + float(g["Metrics"]["UnblendedCost"]["Amount"])
    return sums


def _close(got: dict[str, float], want: dict[str, float]) -> None:
    assert set(got) == set(want), (got, want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=2e-10), key


@pytest.fixture(scope="module")
def billed(tmp_path_factory, busybox_image):
    """A server with its own prices, where two short tasks ran and stopped: an on-demand one
    with 30 GiB of storage and a tag, and a Spot one. Forgotten 2 s after STOPPED."""
    from tests.conftest import FargoServers

    # Hourly buckets would split tasks that straddle an hour's end, and `fargo cost`'s window
    # ends with the hour it runs in: start, bill and read within one hour.
    into_hour = time.time() % 3600
    if into_hour > 3600 - 90:
        time.sleep(3600 - into_hour + 1)
    base = tmp_path_factory.mktemp("cost")
    prices_file = base / "prices.json"
    prices_file.write_text(json.dumps(PRICES))
    with FargoServers(base) as servers:
        srv = servers("--prices", str(prices_file), "--stopped-retention", "2")
        ecs, ec2 = srv.client("ecs"), srv.client("ec2")
        subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        family = "cost" + uuid.uuid4().hex[:8]
        ecs.register_task_definition(
            family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
            cpu="256", memory="512", ephemeralStorage={"sizeInGiB": 30},
            containerDefinitions=[{"name": "app", "image": busybox_image,
                                   "command": ["sh", "-c", "sleep 1"]}])
        net = {"awsvpcConfiguration": {"subnets": [subnet]}}
        plain = ecs.run_task(taskDefinition=family, launchType="FARGATE",
                             networkConfiguration=net,
                             tags=[{"key": "team", "value": "blue"}])["tasks"][0]
        spot = ecs.run_task(taskDefinition=family, capacityProviderStrategy=SPOT,
                            networkConfiguration=net)["tasks"][0]
        done = [wait_status(ecs, t["taskArn"], "STOPPED", timeout=30) for t in (plain, spot)]
        yield srv, [_ran(done[0], False), _ran(done[1], True)], done


def test_cost_by_usage_type_matches_the_rules_and_outlives_the_tasks(billed):
    srv, tasks, done = billed
    ecs, ce = srv.client("ecs"), srv.client("ce")
    start, end = _day(tasks[0].start), _day(time.time(), 1)
    window = (dt.datetime.fromisoformat(start).replace(tzinfo=dt.UTC).timestamp(),
              dt.datetime.fromisoformat(end).replace(tzinfo=dt.UTC).timestamp())
    want = _expected(tasks, *window)
    assert "USE1-SpotUsage-Fargate-vCPU-Hours:perCPU" in want
    assert want["USE1-Fargate-EphemeralStorage-GB-Hours"] == pytest.approx(
        2 * 10 * 0.001 * 60 / 3600)  # 10 GB over the free 20, both tasks, the minute minimum
    ask = {"TimePeriod": {"Start": start, "End": end}, "Granularity": "DAILY",
           "Metrics": ["UnblendedCost", "UsageQuantity"]}
    grouped = ce.get_cost_and_usage(**ask, GroupBy=[{"Type": "DIMENSION",
                                                      "Key": "USAGE_TYPE"}])
    _close(_by_usage_type(grouped), want)
    assert grouped["GroupDefinitions"] == [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}]
    assert grouped["ResultsByTime"][0]["Total"] == {}
    plain = ce.get_cost_and_usage(**ask)
    total = sum(float(r["Total"]["UnblendedCost"]["Amount"]) for r in plain["ResultsByTime"])
    assert total == pytest.approx(sum(want.values()), abs=1e-9)
    assert plain["ResultsByTime"][-1]["Estimated"] is True
    assert plain["ResultsByTime"][0]["Total"]["UnblendedCost"]["Unit"] == "USD"

    # The task records are forgotten (retention 2 s); their cost is not.
    deadline = time.time() + 15
    while time.time() < deadline and len(ecs.describe_tasks(
            tasks=[t["taskArn"] for t in done])["failures"]) < 2:
        time.sleep(0.3)
    assert len(ecs.describe_tasks(tasks=[t["taskArn"] for t in done])["failures"]) == 2
    _close(_by_usage_type(ce.get_cost_and_usage(**ask, GroupBy=[
        {"Type": "DIMENSION", "Key": "USAGE_TYPE"}])), want)

    # A SIGKILL and a restart: the same figures, nothing counted twice.
    srv.kill()
    srv.start()
    ce = srv.client("ce")
    _close(_by_usage_type(ce.get_cost_and_usage(**ask, GroupBy=[
        {"Type": "DIMENSION", "Key": "USAGE_TYPE"}])), want)

    # The aws CLI, as a user types it.
    out = subprocess.run(
        ["aws", "ce", "get-cost-and-usage", "--endpoint-url", srv.endpoint,
         "--time-period", f"Start={start},End={end}", "--granularity", "DAILY",
         "--metrics", "UnblendedCost", "--group-by", "Type=DIMENSION,Key=USAGE_TYPE",
         "--output", "json"], capture_output=True, text=True, timeout=60, env=srv.env())
    assert out.returncode == 0, out.stderr
    _close(_by_usage_type(json.loads(out.stdout)), want)


def test_hourly_tags_filters_and_dimension_values(billed):
    srv, tasks, _ = billed
    ce = srv.client("ce")
    hour = tasks[0].start - tasks[0].start % 3600
    now = time.time()
    start = dt.datetime.fromtimestamp(hour, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = dt.datetime.fromtimestamp(now - now % 3600 + 3600, dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    ask = {"TimePeriod": {"Start": start, "End": end}, "Granularity": "HOURLY",
           "Metrics": ["UnblendedCost"]}
    out = ce.get_cost_and_usage(**ask, GroupBy=[{"Type": "TAG", "Key": "team"}])
    assert out["ResultsByTime"][0]["TimePeriod"]["Start"] == start
    sums: dict[str, float] = {}
    for period in out["ResultsByTime"]:
        for g in period["Groups"]:
            sums[g["Keys"][0]] = sums.get(g["Keys"][0], 0.0) + \
                float(g["Metrics"]["UnblendedCost"]["Amount"])
    window = (hour, now - now % 3600 + 3600)
    assert sums["team$blue"] == pytest.approx(
        sum(_expected(tasks[:1], *window).values()), abs=1e-9)
    assert sums["team$"] == pytest.approx(sum(_expected(tasks[1:], *window).values()),
                                          abs=1e-9)
    spot_only = ce.get_cost_and_usage(**ask, Filter={"Dimensions": {
        "Key": "PURCHASE_TYPE", "Values": ["Spot Instances"]}})
    assert sum(float(r["Total"]["UnblendedCost"]["Amount"])
               for r in spot_only["ResultsByTime"]) == pytest.approx(sums["team$"], abs=1e-9)
    period = {"Start": _day(hour), "End": _day(now, 1)}
    values = ce.get_dimension_values(TimePeriod=period, Dimension="SERVICE")
    assert [v["Value"] for v in values["DimensionValues"]] == [
        "Amazon Elastic Container Service"]
    assert ce.get_tags(TimePeriod=period)["Tags"] == ["team"]
    assert ce.get_tags(TimePeriod=period, TagKey="team")["Tags"] == ["blue"]


def test_fargo_cost_prints_the_tables(billed):
    srv, tasks, _ = billed
    out = subprocess.run([sys.executable, "-m", "fargo", "cost", "--since", "2h",
                          "--endpoint", srv.endpoint], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env=srv.env())
    assert out.returncode == 0, out.stderr
    for m in tasks:
        assert m.task_id in out.stdout
    assert "(Spot)" in out.stdout and "default total" in out.stdout
    assert "USE1-Fargate-EphemeralStorage-GB-Hours" in out.stdout
    assert "2 tasks" in out.stdout
    total = f"${sum(_expected(tasks, 0, 2e9).values()):.6f}"
    # the cluster's subtotal, the footer, and Cost Explorer's total
    assert out.stdout.count(total) == 3, (total, out.stdout)
    bad = subprocess.run([sys.executable, "-m", "fargo", "cost", "--since", "yesterday-ish",
                          "--endpoint", srv.endpoint], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env=srv.env())
    assert bad.returncode == 1 and "--since" in bad.stderr


@pytest.mark.parametrize("call,code,word", [
    (dict(TimePeriod={"Start": "2024-05-02", "End": "2024-05-01"}, Granularity="DAILY",
          Metrics=["UnblendedCost"]), "ValidationException", "before end"),
    (dict(TimePeriod={"Start": "2024-05-01", "End": "2024-05-02"}, Granularity="WEEKLY",
          Metrics=["UnblendedCost"]), "ValidationException", "WEEKLY"),
    (dict(TimePeriod={"Start": "TODAY", "End": "TOMORROW"}, Granularity="HOURLY",
          Metrics=["UnblendedCost"]), "ValidationException", "HOURLY"),
    (dict(TimePeriod={"Start": "2001-01-01", "End": "2001-02-01"}, Granularity="MONTHLY",
          Metrics=["UnblendedCost"]), "BillExpirationException", "expired"),
    ("recent", "ValidationException", "NormalizedUsageAmount"),
    ("groups", "ValidationException", "at most 2"),
    ("token", "InvalidNextTokenException", "NextPageToken"),
])
def test_bad_requests_get_cost_explorer_errors(billed, call, code, word):
    srv, _, _ = billed
    ce = srv.client("ce")
    today, tomorrow = _day(time.time()), _day(time.time(), 1)
    recent = {"TimePeriod": {"Start": today, "End": tomorrow}, "Granularity": "DAILY"}
    if call == "recent":
        call = dict(recent, Metrics=["NormalizedUsageAmount"])
    elif call == "groups":
        call = dict(recent, Metrics=["UnblendedCost"],
                    GroupBy=[{"Type": "TAG", "Key": k} for k in "abc"])
    elif call == "token":
        call = dict(recent, Metrics=["UnblendedCost"], NextPageToken="garbage")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        ce.get_cost_and_usage(**call)
    assert err.value.response["Error"]["Code"] == code
    assert word in err.value.response["Error"]["Message"]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_other_operations_are_refused_by_name(billed):
    srv, _, _ = billed
    with pytest.raises(botocore.exceptions.ClientError) as err:
        srv.client("ce").get_cost_forecast(
            TimePeriod={"Start": _day(time.time()), "End": _day(time.time(), 2)},
            Metric="UNBLENDED_COST", Granularity="DAILY")
    assert "GetCostForecast" in err.value.response["Error"]["Message"]


def test_a_bad_price_file_stops_the_server_before_it_starts(tmp_path):
    bad = tmp_path / "prices.json"
    bad.write_text(json.dumps({"vcpuHour": 0.04, "cpuHour": 1}))
    out = subprocess.run([sys.executable, "-m", "fargo", "server", "--prices", str(bad),
                          "--state-dir", str(tmp_path / "state")], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 1 and "Unknown price 'cpuHour'" in out.stderr
    assert not (tmp_path / "state").exists()
