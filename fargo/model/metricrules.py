"""CloudWatch's rules for what PutMetricData, GetMetricStatistics, GetMetricData and
ListMetrics take: AWS's limits and its error codes (the botocore model's error shapes; the
faces add the query protocol's short codes). Parameters are named as AWS names them in its
messages (MetricData.member.1.Value), whatever the protocol."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import ApiError
from .metrics import (
    MINUTE,
    STATISTICS,
    Datum,
    Dims,
    Stats,
    Values,
    aligned_start,
    dims_of,
    minute_of,
    percentile_of,
    stats_of_values,
)

MAX_METRICS_PER_PUT = 1000
MAX_DIMENSIONS = 30
MAX_VALUES = 150  # Values (and Counts) of one MetricDatum
MAX_PAST_S = 14 * 86400  # data older than two weeks is refused
MAX_FUTURE_S = 2 * 3600  # ... and more than two hours ahead
VALUE_BOUND = 2.0 ** 360  # CloudWatch refuses values beyond ±2^360 and nonzero below 2^-260
VALUE_FLOOR = 2.0 ** -260
MAX_STATISTICS_POINTS = 1440  # GetMetricStatistics' datapoints a call
MAX_DATA_POINTS = 100_800  # GetMetricData's a call
MAX_QUERIES = 500
_QUERY_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
RETENTION_S = 15 * 86400  # 1-minute points live 15 days, as on CloudWatch


class InvalidParameterValue(ApiError):
    code = "InvalidParameterValueException"


class MissingParameter(ApiError):
    code = "MissingRequiredParameterException"


class InvalidParameterCombination(ApiError):
    code = "InvalidParameterCombinationException"


class InvalidNextToken(ApiError):
    code = "InvalidNextToken"


def member(path: str, i: int) -> str:
    return f"{path}.member.{i + 1}"


# ---------------------------------------------------------------- names


def check_namespace(namespace: str, putting: bool) -> None:
    if putting and namespace.startswith("AWS/"):
        raise InvalidParameterValue(f"The value {namespace[:255]} for parameter Namespace is "
                                    "invalid: namespaces beginning with AWS/ are AWS's own.")
    if namespace.startswith(":"):
        raise InvalidParameterValue(f"The value {namespace[:255]} for parameter Namespace is "
                                    "invalid.")


def check_dims(pairs: list[tuple[str, str]], path: str) -> Dims:
    if len(pairs) > MAX_DIMENSIONS:
        raise InvalidParameterValue(f"The collection {path} must not have a size greater "
                                    f"than {MAX_DIMENSIONS}.")
    names = [n for n, _ in pairs]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise InvalidParameterValue(f"No metric may have duplicate dimension names: {path} "
                                    f"names {dup[:255]} more than once.")
    return dims_of(pairs)


# ---------------------------------------------------------------- PutMetricData


@dataclass(frozen=True)
class StatisticSetInput:
    count: float
    sum: float
    minimum: float
    maximum: float


@dataclass(frozen=True)
class MetricInput:
    """One MetricDatum as sent."""

    name: str
    dims: list[tuple[str, str]]
    timestamp: float | None = None
    value: float | None = None
    values: list[float] | None = None
    counts: list[float] | None = None
    statistic: StatisticSetInput | None = None
    unit: str | None = None
    storage_resolution: int | None = None


def _number(value: float, path: str) -> float:
    if not math.isfinite(value) or abs(value) > VALUE_BOUND or \
            (value != 0 and abs(value) < VALUE_FLOOR):
        raise InvalidParameterValue(f"The value {value} for parameter {path} is invalid: "
                                    "values must be finite, between -2^360 and 2^360, and 0 "
                                    "or at least 2^-260 in size.")
    return float(value)


def put_datum(namespace: str, m: MetricInput, index: int, now: float) -> Datum | None:
    """The datum one MetricDatum makes (None: only zero counts, nothing to record)."""
    at = member("MetricData", index)
    dims = check_dims(m.dims, f"{at}.Dimensions")
    given = [n for n, v in (("Value", m.value), ("StatisticValues", m.statistic),
                            ("Values", m.values)) if v is not None]
    if len(given) > 1:
        raise InvalidParameterCombination(
            f"The parameters {at}.{given[0]} and {at}.{given[1]} are mutually exclusive and "
            "you have specified both.")
    if not given:
        raise MissingParameter(f"One of the parameters {at}.Value, {at}.StatisticValues or "
                               f"{at}.Values must be specified.")
    if m.counts is not None and m.values is None:
        raise InvalidParameterCombination(f"The parameter {at}.Counts requires {at}.Values.")
    if m.storage_resolution not in (None, 60):
        if m.storage_resolution == 1:
            raise InvalidParameterValue(
                f"The parameter {at}.StorageResolution 1 (high resolution) is not supported "
                "by fargo: it keeps metrics at 1-minute resolution (StorageResolution 60).")
        raise InvalidParameterValue(f"The value {m.storage_resolution} for parameter "
                                    f"{at}.StorageResolution is invalid: use 1 or 60.")
    ts = now if m.timestamp is None else m.timestamp
    if ts < now - MAX_PAST_S:
        raise InvalidParameterValue(f"The parameter {at}.Timestamp must specify a time no "
                                    "more than two weeks in the past.")
    if ts > now + MAX_FUTURE_S:
        raise InvalidParameterValue(f"The parameter {at}.Timestamp must specify a time no "
                                    "more than two hours in the future.")
    values: Values | None
    if m.value is not None:
        v = _number(m.value, f"{at}.Value")
        stats, values = Stats.of(v), {v: 1.0}
    elif m.statistic is not None:
        s = m.statistic
        p = f"{at}.StatisticValues"
        count = _number(s.count, f"{p}.SampleCount")
        if count <= 0:
            raise InvalidParameterValue(f"The parameter {p}.SampleCount must be greater "
                                        "than 0.")
        low, high = _number(s.minimum, f"{p}.Minimum"), _number(s.maximum, f"{p}.Maximum")
        if low > high:
            raise InvalidParameterValue(f"The parameter {p}.Minimum must not be greater "
                                        f"than {p}.Maximum.")
        stats, values = Stats(count, _number(s.sum, f"{p}.Sum"), low, high), None
    else:
        raw = m.values or []
        if len(raw) > MAX_VALUES:
            raise InvalidParameterValue(f"The collection {at}.Values must not have a size "
                                        f"greater than {MAX_VALUES}.")
        counts = m.counts if m.counts is not None else [1.0] * len(raw)
        if len(counts) != len(raw):
            raise InvalidParameterValue(f"The parameters {at}.Values and {at}.Counts must "
                                        "be of the same size.")
        values = {}
        for i, (v, c) in enumerate(zip(raw, counts, strict=True)):
            v = _number(v, f"{member(at + '.Values', i)}")
            c = _number(c, f"{member(at + '.Counts', i)}")
            if c < 0:
                raise InvalidParameterValue(f"The value {c} for parameter "
                                            f"{member(at + '.Counts', i)} is invalid: counts "
                                            "may not be negative.")
            values[v] = values.get(v, 0.0) + c
        found = stats_of_values(values)
        if found is None:
            return None
        stats = found
    return Datum(namespace, m.name, dims, m.unit or "None", minute_of(ts), stats, values)


def put_data(namespace: str, metrics: list[MetricInput], now: float) -> list[Datum]:
    check_namespace(namespace, putting=True)
    if not metrics:
        raise MissingParameter("The parameter MetricData is required.")
    if len(metrics) > MAX_METRICS_PER_PUT:
        raise InvalidParameterValue("The collection MetricData must not have a size greater "
                                    f"than {MAX_METRICS_PER_PUT}.")
    out = []
    for i, m in enumerate(metrics):
        d = put_datum(namespace, m, i, now)
        if d is not None:
            out.append(d)
    return out


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class MetricId:
    namespace: str
    name: str
    dims: Dims


def check_window(start: float, end: float, period: int, path: str = "") -> int:
    """The number of periods the window holds; refuses what CloudWatch refuses, and the
    high-resolution periods fargo does not keep."""
    if start >= end:
        raise InvalidParameterValue("The parameter StartTime must be less than the parameter "
                                    "EndTime.")
    name = f"{path}Period"
    if period < MINUTE:
        if period in (1, 5, 10, 30):
            raise InvalidParameterValue(
                f"The parameter {name} {period} asks for high-resolution data, which fargo "
                "does not keep: it stores 1-minute points (use a multiple of 60).")
        raise InvalidParameterValue(f"The parameter {name} must be 1, 5, 10, 30 or a "
                                    "multiple of 60.")
    if period % MINUTE:
        raise InvalidParameterValue(f"The parameter {name} must be a multiple of 60.")
    return math.ceil((end - aligned_start(start)) / period)


_OTHER_STATS = {"tm": "trimmed mean", "wm": "winsorized mean", "tc": "trimmed count",
                "ts": "trimmed sum", "pr": "percentile rank", "iqm": "interquartile mean"}


def check_stat(stat: str, path: str) -> str:
    if stat in STATISTICS or percentile_of(stat) is not None:
        return stat
    lowered = stat.lower()
    for prefix, what in sorted(_OTHER_STATS.items(), key=lambda kv: -len(kv[0])):
        if lowered.startswith(prefix):
            raise InvalidParameterValue(
                f"The statistic {stat[:64]} ({what}) for parameter {path} is not supported by "
                "fargo: it answers SampleCount, Average, Sum, Minimum, Maximum and "
                "percentiles (p0 to p100).")
    raise InvalidParameterValue(f"The value {stat[:64]} for parameter {path} is not valid.")


@dataclass(frozen=True)
class StatisticsQuery:
    metric: MetricId
    start: float
    end: float
    period: int
    statistics: tuple[str, ...]
    extended: tuple[str, ...]
    unit: str | None


def check_statistics(q: StatisticsQuery) -> None:
    check_namespace(q.metric.namespace, putting=False)
    if bool(q.statistics) == bool(q.extended):
        raise InvalidParameterCombination("Must specify either Statistics or "
                                          "ExtendedStatistics, but not both.")
    for i, s in enumerate(q.statistics):
        if s not in STATISTICS:
            raise InvalidParameterValue(f"The value {s[:64]} for parameter "
                                        f"{member('Statistics', i)} is not valid.")
    for i, s in enumerate(q.extended):
        if percentile_of(s) is None:
            check_stat(s, member("ExtendedStatistics", i))  # names what fargo lacks
            raise InvalidParameterValue(f"The value {s[:64]} for parameter "
                                        f"{member('ExtendedStatistics', i)} is not valid.")
    points = check_window(q.start, q.end, q.period)
    if points > MAX_STATISTICS_POINTS:
        raise InvalidParameterCombination(
            f"You have requested up to {points:,} datapoints, which exceeds the limit of "
            f"{MAX_STATISTICS_POINTS:,}. You may reduce the datapoints requested by increasing "
            "Period, or decreasing the time range.")


@dataclass(frozen=True)
class DataQuery:
    """One MetricDataQuery as sent."""

    id: str
    metric: MetricId | None
    period: int | None
    stat: str | None
    unit: str | None
    expression: str | None = None
    label: str | None = None
    return_data: bool = True
    account_id: str | None = None
    outer_period: int | None = None  # MetricDataQuery.Period (for expressions)


def check_data_queries(queries: list[DataQuery], start: float, end: float,
                       account: str) -> int:
    """Refuses what GetMetricData refuses; returns the datapoints the queries may hold."""
    if not queries:
        raise MissingParameter("The parameter MetricDataQueries is required.")
    if len(queries) > MAX_QUERIES:
        raise InvalidParameterValue("The collection MetricDataQueries must not have a size "
                                    f"greater than {MAX_QUERIES}.")
    if start >= end:
        raise InvalidParameterValue("The parameter StartTime must be less than the parameter "
                                    "EndTime.")
    seen: set[str] = set()
    total = 0
    for i, q in enumerate(queries):
        at = member("MetricDataQueries", i)
        if not _QUERY_ID.match(q.id):
            raise InvalidParameterValue(f"The value {q.id[:255]} for parameter {at}.Id is "
                                        "invalid: it must start with a lowercase letter and "
                                        "hold only letters, digits and underscores.")
        if q.id in seen:
            raise InvalidParameterValue(f"The value {q.id} for parameter {at}.Id is used by "
                                        "more than one query.")
        seen.add(q.id)
        if q.account_id is not None and q.account_id != account:
            raise InvalidParameterValue(f"The parameter {at}.AccountId names another account: "
                                        "fargo has one account, and no cross-account "
                                        "observability.")
        if q.expression is not None and q.metric is not None:
            raise InvalidParameterCombination(f"The parameters {at}.MetricStat and "
                                              f"{at}.Expression are mutually exclusive and "
                                              "you have specified both.")
        if q.expression is not None:
            raise InvalidParameterValue(f"The parameter {at}.Expression is not supported by "
                                        "fargo: it does not evaluate metric math or "
                                        "Metrics Insights queries; ask with MetricStat.")
        if q.metric is None or q.period is None or q.stat is None:
            raise MissingParameter(f"One of the parameters {at}.MetricStat or "
                                   f"{at}.Expression must be specified.")
        check_namespace(q.metric.namespace, putting=False)
        check_stat(q.stat, f"{at}.MetricStat.Stat")
        if q.return_data:
            total += check_window(start, end, q.period, f"{at}.MetricStat.")
        else:
            check_window(start, end, q.period, f"{at}.MetricStat.")
    return total
