"""Metrics' pure rules: aggregates and percentiles, periods, figures from two readings, what
ECS and Container Insights publish, and CloudWatch's limits on what its API takes."""

from __future__ import annotations

import math

import pytest

from fargo.agent.cgroups import _stat_field, io_bytes
from fargo.agent.netstats import parse_net_dev, task_side
from fargo.api import cborwire
from fargo.model import metricrules as rules
from fargo.model.metrics import (
    MAX_DISTINCT,
    Bucket,
    Datum,
    Point,
    SamplerState,
    ServiceCounts,
    Stats,
    TaskReading,
    buckets,
    combine,
    dims_of,
    ecs_data,
    insights_data,
    memory_in_use,
    merge_values,
    minute_of,
    percentile,
    percentile_of,
    statistic,
    task_figures,
)

T0 = 1_700_000_040.0  # a minute's start


def reading(tid: str = "t1", at: float = T0, cpu_ns: int | None = 0, *, service: str | None = "web",
            cluster: str = "c1", cpu: int = 1024, mem: int = 2048, mem_bytes: int | None = 0,
            started: float | None = None, rx: int | None = None, tx: int | None = None,
            rd: int | None = None, wr: int | None = None) -> TaskReading:
    return TaskReading(tid, cluster, "fam", service, cpu, mem, at, started, cpu_ns, mem_bytes,
                       rx, tx, rd, wr)


# ---------------------------------------------------------------- aggregates


def test_stats_merge_and_average():
    s = Stats.of(2.0).merge(Stats.of(4.0)).merge(Stats(2, 10, 1, 9))
    assert (s.count, s.sum, s.minimum, s.maximum) == (4, 16, 1, 9)
    assert s.average == 4.0


def test_percentile_is_nearest_rank_over_counts():
    values = {1.0: 1, 2.0: 1, 3.0: 1, 10.0: 7}
    assert percentile(values, 0) == 1.0
    assert percentile(values, 10) == 1.0
    assert percentile(values, 30) == 3.0
    assert percentile(values, 31) == 10.0
    assert percentile(values, 100) == 10.0
    assert percentile({}, 50) is None


def test_values_past_the_cap_are_no_longer_known():
    a = {float(i): 1.0 for i in range(MAX_DISTINCT)}
    assert merge_values(a, {0.0: 2.0}) == {**a, 0.0: 3.0}
    assert merge_values(a, {-1.0: 1.0}) is None
    assert merge_values(None, {1.0: 1.0}) is None


@pytest.mark.parametrize("stat,expected", [("p99", 99.0), ("p0", 0.0), ("p100", 100.0),
                                           ("p99.9", 99.9), ("p101", None), ("p", None),
                                           ("p9.", None), ("P50", None), ("tm90", None),
                                           ("p-1", None)])
def test_percentile_names(stat, expected):
    assert percentile_of(stat) == expected


def test_buckets_align_to_the_start_minute_and_split_units():
    points = [Point(int(T0) + 60 * i, "Percent", Stats.of(float(i)), {float(i): 1.0})
              for i in range(6)]
    points.append(Point(int(T0), "Count", Stats.of(7.0), None))
    got = buckets(points, T0 + 30, T0 + 6 * 60, 180)  # start rounded down to T0
    assert [(b.start, b.unit) for b in got] == [(int(T0), "Count"), (int(T0), "Percent"),
                                                 (int(T0) + 180, "Percent")]
    first = got[1]
    assert (first.stats.count, first.stats.sum, first.stats.maximum) == (3, 3.0, 2.0)
    assert statistic(first, "p50") == 1.0
    assert statistic(got[0], "p50") is None  # a statistic set: no values behind it
    assert statistic(got[0], "Average") == 7.0
    assert buckets(points, T0 + 60, T0 + 120, 60)[0].start == int(T0) + 60


def test_combine_merges_same_metric_minute_and_unit():
    dims = dims_of({"B": "2", "A": "1"})
    assert dims == (("A", "1"), ("B", "2"))
    a = Datum("ns", "m", dims, "Count", 60, Stats.of(1.0), {1.0: 1.0})
    b = Datum("ns", "m", dims, "Count", 60, Stats.of(3.0), {3.0: 1.0})
    c = Datum("ns", "m", dims, "Bytes", 60, Stats.of(3.0), None)
    out = combine([a, b, c])
    assert len(out) == 2
    assert out[0].stats == Stats(2, 4.0, 1.0, 3.0) and out[0].values == {1.0: 1.0, 3.0: 1.0}


# ---------------------------------------------------------------- figures from readings


def test_cpu_units_from_two_readings():
    before = reading(cpu_ns=5_000_000_000, at=T0)
    now = reading(cpu_ns=15_000_000_000, at=T0 + 20)  # 10 s of CPU in 20 s: half a vCPU
    f = task_figures(before, now)
    assert f.cpu_used == pytest.approx(512.0)


def test_first_reading_counts_from_the_start():
    f = task_figures(None, reading(cpu_ns=30_000_000_000, at=T0 + 30, started=T0, rx=3000,
                                   rd=4096))
    assert f.cpu_used == pytest.approx(1024.0)  # busy all of its 30 s
    assert f.rx_rate == pytest.approx(100.0)
    assert f.read_bytes == 4096
    unstarted = task_figures(None, reading(cpu_ns=1, started=None))
    assert unstarted.cpu_used is None


def test_counters_that_went_back_count_from_zero():
    f = task_figures(reading(rd=10_000, wr=10, at=T0), reading(rd=500, wr=30, at=T0 + 10))
    assert (f.read_bytes, f.write_bytes) == (500, 20)


def test_memory_in_use_leaves_out_inactive_cache():
    assert memory_in_use(100 << 20, 40 << 20) == 60 << 20
    assert memory_in_use(10, 40) == 0
    assert memory_in_use(None, 5) is None


def test_sampler_state_forgets_tasks_not_read():
    state = SamplerState()
    state.advance([reading("a"), reading("b")])
    figs = state.advance([reading("a", at=T0 + 60, cpu_ns=60_000_000_000)])
    assert [f.reading.task_id for f in figs] == ["a"] and set(state.last) == {"a"}
    assert figs[0].cpu_used == pytest.approx(1024.0)


# ---------------------------------------------------------------- published


def _figs():
    a = task_figures(reading("a", T0, 0), reading("a", T0 + 60, 60_000_000_000,  # 1 vCPU
                                                  mem_bytes=512 << 20))
    b = task_figures(reading("b", T0, 0, cpu=2048, mem=4096),
                     reading("b", T0 + 60, 30_000_000_000, cpu=2048, mem=4096,
                             mem_bytes=1024 << 20))  # half a vCPU of two
    lone = task_figures(reading("z", T0, 0, service=None, cluster="c2"),
                        reading("z", T0 + 60, 0, service=None, cluster="c2"))
    return [a, b, lone]


def test_ecs_utilization_is_total_used_over_total_reserved():
    data = {(d.name, d.dims): d for d in ecs_data(_figs(), int(T0))}
    svc = data[("CPUUtilization", dims_of({"ClusterName": "c1", "ServiceName": "web"}))]
    # used 1024 + 512 of 1024 + 2048 reserved: 50 %; tasks at 100 % and 25 %
    assert svc.stats.average == pytest.approx(50.0)
    assert (svc.stats.count, svc.stats.minimum, svc.stats.maximum) == (2, 25.0, 100.0)
    assert svc.unit == "Percent" and svc.namespace == "AWS/ECS"
    mem = data[("MemoryUtilization", dims_of({"ClusterName": "c1"}))]
    assert mem.stats.average == pytest.approx(100.0 * 1536 / 6144)
    lone = data[("CPUUtilization", dims_of({"ClusterName": "c2"}))]
    assert lone.stats.average == 0.0
    assert ("CPUUtilization", dims_of({"ClusterName": "c2", "ServiceName": "web"})) not in data


def test_insights_only_where_enabled_and_task_ids_when_enhanced():
    counts = [ServiceCounts("c1", "web", running=2, pending=1, desired=3)]
    assert insights_data(_figs(), counts, {"c1": "disabled"}, int(T0)) == []
    enabled = insights_data(_figs(), counts, {"c1": "enabled"}, int(T0))
    got = {(d.name, d.dims): d for d in enabled}
    cluster = dims_of({"ClusterName": "c1"})
    assert got[("CpuUtilized", cluster)].stats.sum == pytest.approx(1536.0)
    assert got[("CpuReserved", cluster)].stats.sum == 3072.0
    assert got[("MemoryUtilized", cluster)].unit == "Megabytes"
    assert got[("MemoryUtilized", dims_of({"ClusterName": "c1", "TaskDefinitionFamily": "fam"}
                                          ))].stats.sum == 1536.0
    service = dims_of({"ClusterName": "c1", "ServiceName": "web"})
    assert got[("DesiredTaskCount", service)].stats.sum == 3
    assert got[("RunningTaskCount", service)].stats.sum == 2
    assert got[("PendingTaskCount", service)].unit == "Count"
    assert not any("TaskId" in dict(d.dims) for d in enabled)
    assert not any(dict(d.dims).get("ClusterName") == "c2" for d in enabled)
    enhanced = insights_data(_figs(), counts, {"c1": "enhanced"}, int(T0))
    task_dims = dims_of({"ClusterName": "c1", "TaskDefinitionFamily": "fam", "TaskId": "a"})
    assert any(d.dims == task_dims and d.name == "CpuUtilized" for d in enhanced)


# ---------------------------------------------------------------- the API's rules


def put(*metrics, namespace="App", now=T0):
    return rules.put_data(namespace, list(metrics), now)


def m(**kw) -> rules.MetricInput:
    kw.setdefault("name", "Latency")
    kw.setdefault("dims", [])
    return rules.MetricInput(**kw)


def test_put_values_counts_and_statistic_sets():
    got = put(m(values=[1.0, 2.0, 3.0], counts=[1, 0, 2], unit="Milliseconds",
                timestamp=T0 - 30),
              m(statistic=rules.StatisticSetInput(4, 10, 1, 4)), m(value=5.0))
    assert got[0].stats == Stats(3, 7.0, 1.0, 3.0) and got[0].values == {1.0: 1, 2.0: 0,
                                                                          3.0: 2}
    assert got[0].minute == minute_of(T0 - 30) and got[0].unit == "Milliseconds"
    assert got[1].values is None and got[1].unit == "None"
    assert got[2].stats == Stats.of(5.0)
    assert put(m(values=[1.0], counts=[0])) == []  # only zero counts: nothing recorded


@pytest.mark.parametrize("kwargs,code,words", [
    ({"value": 1.0, "statistic": rules.StatisticSetInput(1, 1, 1, 1)},
     "InvalidParameterCombinationException", "mutually exclusive"),
    ({"value": 1.0, "values": [1.0]}, "InvalidParameterCombinationException", "Values"),
    ({}, "MissingRequiredParameterException", "must be specified"),
    ({"values": [1.0, 2.0], "counts": [1.0]}, "InvalidParameterValueException", "same size"),
    ({"values": [1.0] * 151}, "InvalidParameterValueException", "150"),
    ({"value": math.nan}, "InvalidParameterValueException", "finite"),
    ({"value": 2.0 ** 361}, "InvalidParameterValueException", "2^360"),
    ({"value": 1.0, "timestamp": T0 - 15 * 86400}, "InvalidParameterValueException", "weeks"),
    ({"value": 1.0, "timestamp": T0 + 3 * 3600}, "InvalidParameterValueException", "future"),
    ({"value": 1.0, "storage_resolution": 1}, "InvalidParameterValueException",
     "not supported by fargo"),
    ({"value": 1.0, "storage_resolution": 7}, "InvalidParameterValueException", "1 or 60"),
    ({"statistic": rules.StatisticSetInput(0, 1, 1, 1)}, "InvalidParameterValueException",
     "SampleCount"),
    ({"statistic": rules.StatisticSetInput(1, 1, 3, 1)}, "InvalidParameterValueException",
     "Minimum"),
    ({"value": 1.0, "dims": [("A", "1"), ("A", "2")]}, "InvalidParameterValueException",
     "duplicate"),
    ({"value": 1.0, "dims": [(f"D{i}", "v") for i in range(31)]},
     "InvalidParameterValueException", "30"),
])
def test_put_refusals(kwargs, code, words):
    with pytest.raises(rules.ApiError) as err:
        put(m(**kwargs))
    assert err.value.code == code and words in err.value.message
    assert "MetricData.member.1" in err.value.message


def test_put_namespace_and_count_limits():
    with pytest.raises(rules.InvalidParameterValue, match="AWS/ECS for parameter Namespace"):
        put(m(value=1.0), namespace="AWS/ECS")
    with pytest.raises(rules.InvalidParameterValue, match="1000"):
        put(*[m(value=1.0)] * 1001)
    with pytest.raises(rules.MissingParameter):
        put()


def sq(**kw) -> rules.StatisticsQuery:
    base = {"metric": rules.MetricId("App", "Latency", ()), "start": T0, "end": T0 + 3600,
            "period": 60, "statistics": ("Average",), "extended": (), "unit": None}
    return rules.StatisticsQuery(**{**base, **kw})


@pytest.mark.parametrize("kwargs,error,words", [
    ({"statistics": (), "extended": ()}, rules.InvalidParameterCombination, "either"),
    ({"extended": ("p99",)}, rules.InvalidParameterCombination, "not both"),
    ({"statistics": ("Median",)}, rules.InvalidParameterValue, "Median"),
    ({"statistics": (), "extended": ("tm90",)}, rules.InvalidParameterValue, "trimmed mean"),
    ({"statistics": (), "extended": ("p101",)}, rules.InvalidParameterValue, "p101"),
    ({"period": 30}, rules.InvalidParameterValue, "high-resolution"),
    ({"period": 90}, rules.InvalidParameterValue, "multiple of 60"),
    ({"end": T0}, rules.InvalidParameterValue, "StartTime must be less"),
    ({"end": T0 + 1441 * 60}, rules.InvalidParameterCombination, "1,441 datapoints"),
])
def test_statistics_refusals(kwargs, error, words):
    with pytest.raises(error, match=words):
        rules.check_statistics(sq(**kwargs))


def test_statistics_accepts_its_limit():
    rules.check_statistics(sq(end=T0 + 1440 * 60))
    rules.check_statistics(sq(statistics=(), extended=("p99.5", "p0")))


def dq(**kw) -> rules.DataQuery:
    base = {"id": "m1", "metric": rules.MetricId("App", "Latency", ()), "period": 60,
            "stat": "Average", "unit": None}
    return rules.DataQuery(**{**base, **kw})


@pytest.mark.parametrize("queries,words", [
    ([dq(id="M1")], "lowercase"),
    ([dq(), dq()], "more than one"),
    ([dq(metric=None, period=None, stat=None, expression="SUM(METRICS())")], "metric math"),
    ([dq(expression="m1*2")], "mutually exclusive"),
    ([dq(stat="tm99")], "trimmed mean"),
    ([dq(stat="Avg")], "Avg"),
    ([dq(account_id="111111111111")], "another account"),
    ([dq(period=10)], "high-resolution"),
    ([], "required"),
])
def test_data_query_refusals(queries, words):
    with pytest.raises(rules.ApiError, match=words):
        rules.check_data_queries(queries, T0, T0 + 600, "000000000000")


def test_data_queries_count_their_datapoints():
    assert rules.check_data_queries([dq(), dq(id="m2", period=300),
                                     dq(id="m3", return_data=False)],
                                    T0, T0 + 600, "000000000000") == 10 + 2


# ---------------------------------------------------------------- the agent's parsers


def test_net_dev_and_the_task_side():
    text = ("Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n"
            "  fgv0abc: 100 2 0 1 0 0 0 0 900 9 3 4 0 0 0 0\n"
            "    lo: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n"
            "  short: 1 2 3\n")
    table = parse_net_dev(text)
    assert set(table) == {"fgv0abc", "lo"}
    s = task_side(table["fgv0abc"])  # the host end received what the task sent
    assert (s.rx_bytes, s.rx_packets, s.rx_errors, s.rx_dropped) == (900, 9, 3, 4)
    assert (s.tx_bytes, s.tx_packets, s.tx_dropped) == (100, 2, 1)


def test_cgroup_file_parsers(tmp_path):
    blk = tmp_path / "io"
    blk.write_text("7:0 Read 100\n7:0 Write 20\n7:0 Sync 120\n254:0 Read 5\n254:0 Write 1\n"
                   "254:0 Total 6\nTotal 126\n")
    assert io_bytes(blk) == (105, 21)
    assert io_bytes(blk, {b"7:0"}) == (100, 20)  # the task's own device only
    assert io_bytes(tmp_path / "none") is None
    stat = tmp_path / "memory.stat"
    stat.write_text("cache 5\ninactive_file 3\ntotal_inactive_file 42\ntotal_x 1\n")
    assert _stat_field(stat, b"total_inactive_file") == 42
    assert _stat_field(stat, b"cache") == 5
    assert _stat_field(stat, b"inactive_file") == 3
    assert _stat_field(stat, b"missing") is None


# ---------------------------------------------------------------- CBOR, strictly


def test_cbor_reads_what_botocore_writes_and_refuses_the_rest():
    import datetime

    import cbor2

    doc = {"a": [1, -2, 1.5, True, None, "x", b"y"], "t": cbor2.CBORTag(1, 1700000000),
           "m": {"k": {"n": 2 ** 40}}}
    got = cborwire.loads(cbor2.dumps(doc))
    assert got["a"] == [1, -2, 1.5, True, None, "x", b"y"] and got["m"]["k"]["n"] == 2 ** 40
    assert got["t"] == datetime.datetime.fromtimestamp(1700000000, datetime.UTC)
    # indefinite lengths (botocore's own serializer never sends them, others may)
    assert cborwire.loads(bytes.fromhex("bf61619f0102ffff")) == {"a": [1, 2]}
    assert cborwire.loads(bytes.fromhex("7f6261616162ff")) == "aab"
    for bad in (cbor2.dumps(cbor2.CBORTag(35, "a+")),  # a regular expression: not taken
                cbor2.dumps({1: 2}), bytes.fromhex("a2616101616102"),  # int key; dup key
                b"\x62\xff\xfe", b"\x82\x01", cbor2.dumps(1) + b"\x00", b"\x1c",
                b"\x81" * 100 + b"\x01"):
        with pytest.raises(cborwire.CborError):
            cborwire.loads(bad)
    assert cbor2.loads(cborwire.dumps({"t": cborwire.Timestamp(5.0)}))["t"] == \
        datetime.datetime.fromtimestamp(5, datetime.UTC)


def test_bucket_type_is_plain():
    b = Bucket(0, "None", Stats.of(1.0), None)
    assert statistic(b, "SampleCount") == 1.0 and statistic(b, "Sum") == 1.0
