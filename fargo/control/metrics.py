"""CloudWatch metrics' use cases: PutMetricData, GetMetricStatistics, GetMetricData and
ListMetrics over the store's per-minute points, and what the sampler records."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..model import metricrules as rules
from ..model.metricrules import (
    DataQuery,
    InvalidNextToken,
    InvalidParameterValue,
    MetricId,
    MetricInput,
    StatisticsQuery,
)
from ..model.metrics import Bucket, Datum, Dims, TaskReading, buckets, minute_of, statistic
from ..store.metrics import MetricTables

LIST_PAGE = 500  # ListMetrics' metrics a page
LIST_SPAN_S = 14 * 86400  # ListMetrics shows metrics with data in the last two weeks
RECENT_S = 3 * 3600  # RecentlyActive=PT3H


@dataclass(frozen=True)
class Datapoint:
    timestamp: int
    unit: str
    statistics: dict[str, float]
    extended: dict[str, float]


@dataclass
class DataResult:
    id: str
    label: str
    timestamps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    status: str = "Complete"


@dataclass(frozen=True)
class DataAnswer:
    results: list[DataResult]
    next_token: str | None


@dataclass(frozen=True)
class ListedMetric:
    namespace: str
    name: str
    dims: Dims


class Metrics:
    def __init__(self, tables: MetricTables, account: str,
                 clock: Callable[[], float] = time.time,
                 retention: float = rules.RETENTION_S):
        self.tables = tables
        self.account = account
        self.clock = clock
        self.retention = retention

    # ---- writing
    def put(self, namespace: str, metrics: list[MetricInput]) -> None:
        self.tables.add(rules.put_data(namespace, metrics, self.clock()))

    def record(self, data: list[Datum], readings: list[TaskReading] | None = None) -> None:
        """What fargo itself publishes (the AWS/ namespaces too), with the sampler's readings
        it was figured from."""
        self.tables.add(data, readings)

    def sweep(self) -> int:
        return self.tables.sweep(minute_of(self.clock() - self.retention))

    # ---- reading
    def _buckets(self, metric: MetricId, start: float, end: float, period: int,
                 unit: str | None) -> list[Bucket]:
        sid = self.tables.find(metric.namespace, metric.name, metric.dims)
        if sid is None:
            return []
        points = self.tables.points(sid, minute_of(start), end, unit)
        return buckets(points, start, end, period)

    def statistics(self, q: StatisticsQuery) -> list[Datapoint]:
        rules.check_statistics(q)
        out = []
        for b in self._buckets(q.metric, q.start, q.end, q.period, q.unit):
            plain = {s: v for s in q.statistics if (v := statistic(b, s)) is not None}
            extended = {s: v for s in q.extended if (v := statistic(b, s)) is not None}
            out.append(Datapoint(b.start, b.unit, plain, extended))
        return out

    def data(self, queries: list[DataQuery], start: float, end: float, ascending: bool,
             max_datapoints: int | None, next_token: str | None) -> DataAnswer:
        rules.check_data_queries(queries, start, end, self.account)
        if max_datapoints is not None and max_datapoints < 1:
            raise InvalidParameterValue("The parameter MaxDatapoints must be greater than 0.")
        page = min(max_datapoints or rules.MAX_DATA_POINTS, rules.MAX_DATA_POINTS)
        fingerprint = hashlib.sha256(repr((queries, start, end, ascending)).encode()
                                     ).hexdigest()[:16]
        offset = _read_token(next_token, fingerprint) if next_token else 0
        full: list[DataResult] = []
        for q in queries:
            if not q.return_data:
                continue
            assert q.metric is not None and q.period is not None and q.stat is not None
            result = DataResult(q.id, q.label if q.label is not None else q.metric.name)
            for b in self._buckets(q.metric, start, end, q.period, q.unit):
                value = statistic(b, q.stat)
                if value is not None:
                    result.timestamps.append(b.start)
                    result.values.append(value)
            if not ascending:
                result.timestamps.reverse()
                result.values.reverse()
            full.append(result)
        return _page(full, offset, page, fingerprint)

    def list(self, namespace: str | None, name: str | None,
             filters: list[tuple[str, str | None]], recently_active: bool,
             next_token: str | None) -> tuple[list[ListedMetric], str | None]:
        if len(filters) > 10:
            raise InvalidParameterValue("The collection Dimensions must not have a size "
                                        "greater than 10.")
        after = 0
        if next_token is not None:
            if not next_token.isdigit() or len(next_token) > 18:
                raise InvalidParameterValue(f"The value {next_token[:100]} for parameter "
                                            "NextToken is invalid.")
            after = int(next_token)
        since = minute_of(self.clock() - (RECENT_S if recently_active else LIST_SPAN_S))
        found: list[ListedMetric] = []
        last = 0
        for row in self.tables.series(namespace, name, since, after):
            have = dict(row.dims)
            if all(n in have and (v is None or have[n] == v) for n, v in filters):
                if len(found) == LIST_PAGE:
                    return found, str(last)
                found.append(ListedMetric(row.namespace, row.name, row.dims))
            last = row.id
        return found, None


def _read_token(token: str, fingerprint: str) -> int:
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset, made_for = int(doc["o"]), str(doc["f"])
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        raise InvalidNextToken("The NextToken is invalid.") from None
    if made_for != fingerprint or offset < 0:
        raise InvalidNextToken("The NextToken was not made for this request's queries and "
                               "times.")
    return offset


def _page(full: list[DataResult], offset: int, page: int, fingerprint: str) -> DataAnswer:
    """The datapoints [offset, offset + page) of all queries' laid end to end; a query cut
    short says PartialData, and the token names where the next page begins. Queries with no
    data are answered on the first page."""
    out: list[DataResult] = []
    end = offset + page
    at = 0  # the index of the current query's first datapoint
    for r in full:
        n = len(r.values)
        if n == 0:
            if offset == 0:
                out.append(r)
            continue
        lo, hi = max(offset, at), min(end, at + n)
        if lo < hi:
            out.append(DataResult(r.id, r.label, r.timestamps[lo - at:hi - at],
                                  r.values[lo - at:hi - at],
                                  "Complete" if hi == at + n else "PartialData"))
        at += n
    token = None
    if end < at:
        token = base64.urlsafe_b64encode(json.dumps(
            {"o": end, "f": fingerprint}).encode()).decode()
    return DataAnswer(out, token)
