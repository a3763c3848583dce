"""CloudWatch's use cases over a real SQLite store (no server): what is put is what is read,
by period, statistic and unit; GetMetricData's pages; ListMetrics' filters and pages; the
sweep's retention and cap; the sampler's readings kept with its data."""

from __future__ import annotations

import pytest

from fargo.control.metrics import LIST_PAGE, Metrics
from fargo.model import metricrules as rules
from fargo.model.metrics import Datum, Stats, TaskReading, dims_of
from fargo.store.metrics import MetricTables
from fargo.store.sqlite import Store

T0 = 1_700_000_040.0


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(tmp_path):
    store = Store(tmp_path / "fargo.db")
    clock = Clock(T0 + 3600)
    yield Metrics(MetricTables(store), "000000000000", clock=clock), clock, store
    store.close()


def metric(name="Latency", dims=(("Host", "a"),)):
    return rules.MetricId("App", name, dims_of(dims))


def put_minutes(metrics, minutes, name="Latency", dims=(("Host", "a"),), unit=None):
    for i in range(minutes):
        metrics.put("App", [rules.MetricInput(name, list(dims), timestamp=T0 + 60 * i + 5,
                                              values=[float(i), float(i) + 10], unit=unit)])


def test_put_then_statistics_by_period(world):
    metrics, _, _ = world
    put_minutes(metrics, 6, unit="Milliseconds")
    metrics.put("App", [rules.MetricInput("Latency", [("Host", "a")], timestamp=T0 + 5,
                                          value=100.0, unit="Milliseconds")])  # merges
    points = metrics.statistics(rules.StatisticsQuery(
        metric(), T0, T0 + 360, 180, ("Average", "Maximum", "SampleCount"), (), None))
    assert [p.timestamp for p in points] == [int(T0), int(T0) + 180]
    first = points[0]
    # minutes 0..2: values 0,10,1,11,2,12 and 100
    assert first.statistics == {"Average": pytest.approx(136 / 7), "Maximum": 100.0,
                                "SampleCount": 7.0}
    assert first.unit == "Milliseconds"
    pct = metrics.statistics(rules.StatisticsQuery(metric(), T0, T0 + 360, 360, (),
                                                   ("p50", "p100"), None))
    assert pct[0].extended == {"p50": 10.0, "p100": 100.0}
    assert metrics.statistics(rules.StatisticsQuery(
        metric(), T0, T0 + 360, 60, ("Sum",), (), "Bytes")) == []  # another unit: nothing
    assert metrics.statistics(rules.StatisticsQuery(
        metric(dims=()), T0, T0 + 360, 60, ("Sum",), (), None)) == []  # exact dimensions


def test_get_metric_data_pages_and_order(world):
    metrics, _, _ = world
    put_minutes(metrics, 5)
    put_minutes(metrics, 3, name="Errors")
    queries = [rules.DataQuery("a", metric(), 60, "Sum", None),
               rules.DataQuery("b", metric("Errors"), 60, "Maximum", None, label="errs"),
               rules.DataQuery("c", metric("Nothing"), 60, "Sum", None)]
    whole = metrics.data(queries, T0, T0 + 600, False, None, None)
    assert whole.next_token is None
    a = whole.results[0]
    assert a.values == [18.0, 16.0, 14.0, 12.0, 10.0] and a.timestamps[0] == int(T0) + 240
    assert whole.results[1].label == "errs" and whole.results[2].values == []
    asc = metrics.data(queries, T0, T0 + 600, True, None, None)
    assert asc.results[0].values == [10.0, 12.0, 14.0, 16.0, 18.0]
    seen: dict[str, list[float]] = {}
    statuses = []
    token = None
    while True:
        page = metrics.data(queries, T0, T0 + 600, True, 3, token)
        assert sum(len(r.values) for r in page.results) <= 3
        for r in page.results:
            seen.setdefault(r.id, []).extend(r.values)
        statuses.append([(r.id, r.status) for r in page.results])
        token = page.next_token
        if token is None:
            break
    assert seen == {"a": [10.0, 12.0, 14.0, 16.0, 18.0], "b": [10.0, 11.0, 12.0], "c": []}
    assert statuses == [[("a", "PartialData"), ("c", "Complete")],
                        [("a", "Complete"), ("b", "PartialData")], [("b", "Complete")]]
    with pytest.raises(rules.InvalidNextToken):
        metrics.data(queries[:1], T0, T0 + 600, True, 3, token or "bm90LWEtdG9rZW4=")
    first = metrics.data(queries, T0, T0 + 600, True, 3, None)
    with pytest.raises(rules.InvalidNextToken):  # a token of other queries
        metrics.data(queries[:1], T0, T0 + 600, True, 3, first.next_token)


def test_list_metrics_filters_recency_and_pages(world):
    metrics, clock, _ = world
    put_minutes(metrics, 1, dims=(("Host", "a"), ("Zone", "z1")))
    put_minutes(metrics, 1, dims=(("Host", "b"),))
    put_minutes(metrics, 1, name="Errors", dims=())
    listed, token = metrics.list("App", None, [("Host", None)], False, None)
    assert token is None and sorted(m.dims for m in listed) == [
        (("Host", "a"), ("Zone", "z1")), (("Host", "b"),)]
    assert [m.dims for m in metrics.list(None, None, [("Host", "b")], False, None)[0]] == \
        [(("Host", "b"),)]
    assert [m.name for m in metrics.list(None, "Errors", [], False, None)[0]] == ["Errors"]
    clock.now = T0 + 4 * 3600
    assert metrics.list("App", None, [], True, None)[0] == []  # nothing in the last 3 hours
    assert len(metrics.list("App", None, [], False, None)[0]) == 3  # but in two weeks
    clock.now = T0 + 600
    assert len(metrics.list("App", None, [], True, None)[0]) == 3
    for i in range(LIST_PAGE + 5):
        metrics.put("Many", [rules.MetricInput("m", [("I", str(i))], value=1.0)])
    page, token = metrics.list("Many", None, [], False, None)
    assert len(page) == LIST_PAGE and token
    rest, again = metrics.list("Many", None, [], False, token)
    assert len(rest) == 5 and again is None
    with pytest.raises(rules.InvalidParameterValue):
        metrics.list("Many", None, [], False, "x")


def test_sweep_keeps_retention_and_cap(world):
    metrics, clock, store = world
    put_minutes(metrics, 10)
    tables = metrics.tables
    assert tables.count() == 10
    clock.now = T0 + metrics.retention + 5 * 60 + 1  # the first 5 minutes are past retention
    assert metrics.sweep() == 5 and tables.count() == 5
    tables.cap = 2
    metrics.sweep()
    assert tables.count() <= 2
    kept = [p.minute for p in tables.points(tables.find("App", "Latency", metric().dims) or 0,
                                            0, float("inf"))]
    assert kept == [int(T0) + 8 * 60, int(T0) + 9 * 60]  # the newest stay
    tables.cap = 0
    metrics.sweep()
    assert tables.find("App", "Latency", metric().dims) is None  # the metric went with them


def test_readings_are_kept_with_the_data(world, tmp_path):
    metrics, _, store = world
    r = TaskReading("t1", "c", "f", None, 256, 512, T0, T0 - 5, 10, 20, 30, 40, 50, 60)
    d = Datum("AWS/ECS", "CPUUtilization", dims_of({"ClusterName": "c"}), "Percent",
              int(T0), Stats.of(1.0), {1.0: 1.0})
    metrics.record([d], [r])
    again = MetricTables(store)
    assert again.readings() == [r]
    metrics.record([], [])
    assert again.readings() == []
