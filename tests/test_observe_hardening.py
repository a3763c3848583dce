"""Hostile input to the observability faces, driven with boto3 against a real `fargo server`:
oversized PutLogEvents batches, hostile filter patterns, group names and page tokens; Cost
Explorer's garbled tokens, impossible dates and deep filters; PutMetricData and GetMetricData
past their limits; odd methods on /metrics. Each answer is the error AWS gives, quickly, and
what was stored before still reads back the same."""

from __future__ import annotations

import math
import time

import botocore.exceptions
import pytest
import requests

GROUP, STREAM = "/hard/keep", "s"
T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def clients(fargo):
    logs, ce, cw = (fargo.client(s) for s in ("logs", "ce", "cloudwatch"))
    logs.create_log_group(logGroupName=GROUP)
    logs.create_log_stream(logGroupName=GROUP, logStreamName=STREAM)
    logs.put_log_events(logGroupName=GROUP, logStreamName=STREAM, logEvents=[
        {"timestamp": int(time.time() * 1000) - 1000 + i, "message": f"keep {i}"}
        for i in range(5)])
    cw.put_metric_data(Namespace="hard", MetricData=[{"MetricName": "m", "Value": 2.0}])
    return logs, ce, cw


def stored(logs, cw) -> tuple:
    events = logs.get_log_events(logGroupName=GROUP, logStreamName=STREAM,
                                 startFromHead=True)["events"]
    groups = logs.describe_log_groups(logGroupNamePrefix="/hard/")["logGroups"]
    metrics = cw.list_metrics(Namespace="hard")["Metrics"]
    return ([(e["timestamp"], e["message"]) for e in events],
            [g["logGroupName"] for g in groups], metrics)


def code(call, *args, **kw) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        call(*args, **kw)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] < 500
    return exc.value.response["Error"]["Code"]


@pytest.fixture
def intact(clients):
    logs, _, cw = clients
    before = stored(logs, cw)
    yield clients
    assert stored(logs, cw) == before


def test_put_log_events_past_its_limits(intact):
    logs = intact[0]
    now = int(time.time() * 1000)
    put = logs.put_log_events
    many = [{"timestamp": now, "message": "x"} for _ in range(10_001)]
    assert code(put, logGroupName=GROUP, logStreamName=STREAM,
                logEvents=many) == "InvalidParameterException"
    huge = [{"timestamp": now, "message": "x" * (1024 * 1024)}]
    assert code(put, logGroupName=GROUP, logStreamName=STREAM,
                logEvents=huge) == "InvalidParameterException"
    # a batch past 1,048,576 bytes in all, each event below the message limit
    wide = [{"timestamp": now, "message": "y" * 200_000} for _ in range(6)]
    assert code(put, logGroupName=GROUP, logStreamName=STREAM,
                logEvents=wide) == "InvalidParameterException"
    spread = [{"timestamp": now - 25 * 3600_000, "message": "a"}, {"timestamp": now,
                                                                  "message": "b"}]
    assert code(put, logGroupName=GROUP, logStreamName=STREAM,
                logEvents=spread) == "InvalidParameterException"
    unsorted = [{"timestamp": now, "message": "a"}, {"timestamp": now - 5, "message": "b"}]
    assert code(put, logGroupName=GROUP, logStreamName=STREAM,
                logEvents=unsorted) == "InvalidParameterException"


@pytest.mark.parametrize("pattern", [
    "(" * 10_000 + "a" + ")" * 10_000, "a" * 1025, " ".join(["?x"] * 600),
    "{ $.a = " + "[" * 5000 + " }", "\"" * 3001, "%" + "(" * 2000 + "%", "{ " * 3000,
    "[" + "w," * 2000 + "]", "{ $.\u00e9 = \u2713 ",
])
def test_hostile_filter_patterns_are_refused_quickly(intact, pattern):
    logs = intact[0]
    began = time.monotonic()
    assert code(logs.filter_log_events, logGroupName=GROUP,
                filterPattern=pattern) == "InvalidParameterException"
    assert time.monotonic() - began < 1.0


# ("../etc" is a valid name in AWS's pattern [.\-_/#A-Za-z0-9]+: a name, never a path.)
@pytest.mark.parametrize("name", ["a\x00b", "a" * 513, "/hard/\u00e9\n", "a:b", "a*"])
def test_hostile_log_group_names(intact, name):
    logs = intact[0]
    assert code(logs.create_log_group, logGroupName=name) == "InvalidParameterException"
    assert code(logs.describe_log_streams, logGroupName=name) in (
        "InvalidParameterException", "ResourceNotFoundException")


@pytest.mark.parametrize("token", ["f/garbage", "b/00000000000000000000000000000000000000000000",
                                   "\u00e9" * 40, "x" * 5000, "f/-1", "f/99999999999999999999"])
def test_forged_log_tokens(intact, token):
    logs = intact[0]
    assert code(logs.get_log_events, logGroupName=GROUP, logStreamName=STREAM,
                nextToken=token) == "InvalidParameterException"
    assert code(logs.filter_log_events, logGroupName=GROUP,
                nextToken=token) == "InvalidParameterException"


def test_cost_explorer_hostile_input(intact):
    ce = intact[1]
    ok = {"TimePeriod": {"Start": "2026-01-01", "End": "2026-01-02"}, "Granularity": "DAILY",
          "Metrics": ["UnblendedCost"]}
    for token in ("garbage", "\u00e9" * 50, "x" * 5000, "AAAA"):
        assert code(ce.get_cost_and_usage, **ok, NextPageToken=token) == \
            "InvalidNextTokenException"
    for start, end in (("0000-00-00", "2026-01-01"), ("2026-01-01", "9999-12-31"),
                       ("2026-02-30", "2026-03-01"), ("9999-12-30", "9999-12-31"),
                       ("2026-01-01T00:00:00Z", "x")):
        period = {"Start": start, "End": end}
        assert code(ce.get_cost_and_usage, **{**ok, "TimePeriod": period}) == \
            "ValidationException"
        assert code(ce.get_dimension_values, TimePeriod=period, Dimension="SERVICE") == \
            "ValidationException"
    deep: dict = {"Dimensions": {"Key": "SERVICE", "Values": ["x"]}}
    for _ in range(200):
        deep = {"Not": deep}
    assert code(ce.get_cost_and_usage, **ok, Filter=deep) == "ValidationException"
    wide = {"And": [{"Dimensions": {"Key": "SERVICE", "Values": ["x"]}}] * 5000}
    began = time.monotonic()
    assert ce.get_cost_and_usage(**ok, Filter=wide)["ResultsByTime"]  # matched, and soon
    assert time.monotonic() - began < 2.0
    group_by = [{"Type": "DIMENSION", "Key": "SERVICE"}] * 3
    assert code(ce.get_cost_and_usage, **ok, GroupBy=group_by) == "ValidationException"


def test_put_metric_data_past_its_limits(intact):
    cw = intact[2]
    put = cw.put_metric_data
    bad = "InvalidParameterValue"
    for value in (math.nan, math.inf, -math.inf):
        assert code(put, Namespace="hard", MetricData=[
            {"MetricName": "m", "Value": value}]) == bad
        assert code(put, Namespace="hard", MetricData=[
            {"MetricName": "m", "Values": [1.0, value], "Counts": [1.0, 1.0]}]) == bad
    assert code(put, Namespace="hard", MetricData=[
        {"MetricName": "m", "Value": 1.0}] * 1001) == bad
    dims = [{"Name": f"d{i}", "Value": "v"} for i in range(31)]
    assert code(put, Namespace="hard", MetricData=[
        {"MetricName": "m", "Value": 1.0, "Dimensions": dims}]) == bad
    assert code(put, Namespace=":", MetricData=[{"MetricName": "m", "Value": 1.0}]) == bad
    assert code(put, Namespace="AWS/ECS", MetricData=[{"MetricName": "m", "Value": 1.0}]) == bad


def test_get_metric_data_past_its_limits(intact):
    cw = intact[2]
    end = time.time()
    window = {"StartTime": end - 3600, "EndTime": end}

    def query(qid: str, period: int = 60) -> dict:
        return {"Id": qid, "MetricStat": {"Metric": {"Namespace": "hard", "MetricName": "m"},
                                          "Period": period, "Stat": "Sum"}}
    assert code(cw.get_metric_data, MetricDataQueries=[query(f"q{i}") for i in range(501)],
                **window) == "InvalidParameterValue"
    for qid in ("Bad", "1abc", "a-b", "\u00e9"):
        assert code(cw.get_metric_data, MetricDataQueries=[query(qid)], **window) in (
            "InvalidParameterValue", "ValidationError")
    for period in (7, 59):  # 0 and below: botocore refuses them before sending
        assert code(cw.get_metric_data, MetricDataQueries=[query("q", period)], **window) in (
            "InvalidParameterValue", "ValidationError")


def test_prometheus_endpoint_other_methods(fargo, intact):
    url = fargo.endpoint + "/metrics"
    head = requests.head(url, timeout=5)
    assert head.status_code == 200 and not head.content
    post = requests.post(url, data=b"x", timeout=5)
    assert post.status_code in (404, 405) and b"Traceback" not in post.content
    got = requests.get(url, timeout=5)
    assert got.status_code == 200 and b"Traceback" not in got.content
