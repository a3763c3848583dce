"""Cost Explorer's rules over metered tasks (model/billing.py): time periods and their
granularity, metrics, GroupBy, Filter expressions, paging tokens, and the sums of
GetCostAndUsage, GetDimensionValues and GetTags. Pure: `now` is passed in."""

from __future__ import annotations

import base64
import bisect
import calendar
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .billing import SERVICE_CODES, LineItem, Metered, Prices, billed_span, line_items
from .errors import ApiError


class ValidationException(ApiError):
    code = "ValidationException"


class DataUnavailableException(ApiError):
    code = "DataUnavailableException"


class BillExpirationException(ApiError):
    code = "BillExpirationException"


class InvalidNextTokenException(ApiError):
    code = "InvalidNextTokenException"


class RequestChangedException(ApiError):
    code = "RequestChangedException"


GRANULARITIES = ("DAILY", "MONTHLY", "HOURLY")
COST_METRICS = ("UnblendedCost", "BlendedCost", "AmortizedCost", "NetUnblendedCost",
                "NetAmortizedCost")  # all one figure here: no discounts, credits or RIs
USAGE_QUANTITY = "UsageQuantity"
NORMALIZED = "NormalizedUsageAmount"  # EC2 reservations' size factors: nothing on Fargate
_METRICS = {m.lower(): m for m in (*COST_METRICS, USAGE_QUANTITY, NORMALIZED)}
HOURLY_DAYS = 14  # Cost Explorer keeps hourly data this long
HISTORY_MONTHS = 13  # ... and monthly and daily data for these months before the current
MAX_GROUP_BY = 2
PAGE_GROUPS = 1000  # groups in one page of ResultsByTime
PAGE_VALUES = 1000  # GetDimensionValues' and GetTags' page
_DAY = 86400.0

# The dimensions a Fargate line item has a value for; the rest of Cost Explorer's are refused
# by name wherever a dimension is named.
DIMENSIONS = ("SERVICE", "SERVICE_CODE", "USAGE_TYPE", "REGION", "AZ", "LINKED_ACCOUNT",
              "PURCHASE_TYPE", "RECORD_TYPE", "BILLING_ENTITY")
_ALL_DIMENSIONS = (
    "AZ", "INSTANCE_TYPE", "LINKED_ACCOUNT", "PAYER_ACCOUNT", "LINKED_ACCOUNT_NAME",
    "OPERATION", "PURCHASE_TYPE", "REGION", "SERVICE", "SERVICE_CODE", "USAGE_TYPE",
    "USAGE_TYPE_GROUP", "RECORD_TYPE", "OPERATING_SYSTEM", "TENANCY", "SCOPE", "PLATFORM",
    "SUBSCRIPTION_ID", "LEGAL_ENTITY_NAME", "DEPLOYMENT_OPTION", "DATABASE_ENGINE",
    "CACHE_ENGINE", "INSTANCE_TYPE_FAMILY", "BILLING_ENTITY", "RESERVATION_ID",
    "RESOURCE_ID", "RIGHTSIZING_TYPE", "SAVINGS_PLANS_TYPE", "SAVINGS_PLAN_ARN",
    "PAYMENT_OPTION", "AGREEMENT_END_DATE_TIME_AFTER", "AGREEMENT_END_DATE_TIME_BEFORE",
    "INVOICING_ENTITY", "ANOMALY_TOTAL_IMPACT_ABSOLUTE", "ANOMALY_TOTAL_IMPACT_PERCENTAGE")


# -- time periods -----------------------------------------------------------------------------

_STAMP = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})Z)?$")


@dataclass(frozen=True)
class Period:
    start: float
    end: float
    hourly: bool = False

    def render(self) -> dict[str, str]:
        return {"Start": _stamp(self.start, self.hourly), "End": _stamp(self.end, self.hourly)}


def _stamp(ts: float, hourly: bool) -> str:
    when = dt.datetime.fromtimestamp(ts, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ" if hourly else "%Y-%m-%d")


def _parse_stamp(value: Any, member: str, hourly: bool) -> float:
    form = "yyyy-MM-ddThh:mm:ssZ" if hourly else "yyyy-MM-dd"
    m = _STAMP.match(value) if isinstance(value, str) else None
    if m is None or (hourly and m.group(4) is None):
        raise ValidationException(f"TimePeriod.{member} must be {form}"
                                  f"{' for HOURLY granularity' if hourly else ''}, not "
                                  f"{str(value)[:40]!r}.")
    y, mo, d, h, mi, sec = (int(p or 0) for p in m.groups())
    try:
        when = dt.datetime(y, mo, d, h, mi, sec, tzinfo=dt.UTC)
    except ValueError:
        raise ValidationException(f"TimePeriod.{member} {value!r} is not a date.") from None
    if (when.minute or when.second) if hourly else (when.hour or when.minute or when.second):
        raise ValidationException(f"TimePeriod.{member} must fall on a whole "
                                  f"{'hour' if hourly else 'day'}: {value!r}.")
    return when.timestamp()


def _month_start(ts: float, back: int = 0) -> float:
    when = dt.datetime.fromtimestamp(ts, dt.UTC)
    months = when.year * 12 + when.month - 1 - back
    return dt.datetime(months // 12, months % 12 + 1, 1, tzinfo=dt.UTC).timestamp()


def parse_period(doc: Mapping[str, Any], granularity: str, now: float) -> Period:
    """TimePeriod: Start inclusive, End exclusive; dates, or for HOURLY whole-hour times."""
    if granularity not in GRANULARITIES:
        raise ValidationException(f"Granularity must be one of {', '.join(GRANULARITIES)}, "
                                  f"not {str(granularity)[:20]!r}.")
    hourly = granularity == "HOURLY"
    for member in ("Start", "End"):
        if member not in doc:
            raise ValidationException(f"TimePeriod.{member} is required.")
    start = _parse_stamp(doc["Start"], "Start", hourly)
    end = _parse_stamp(doc["End"], "End", hourly)
    if start >= end:
        raise ValidationException("Start date (and hour) should be before end date (and "
                                  "hour)")
    today = now - now % (3600 if hourly else _DAY)
    if start > today:
        raise ValidationException("Start date must be equal to or earlier than the current "
                                  f"date{' and hour' if hourly else ''}.")
    if hourly:
        if start < today - HOURLY_DAYS * _DAY:
            raise DataUnavailableException(f"Hourly data is available for the last "
                                           f"{HOURLY_DAYS} days only.")
        if end - start > (HOURLY_DAYS + 1) * _DAY:
            raise ValidationException(f"An HOURLY time period may span at most "
                                      f"{HOURLY_DAYS + 1} days.")
    else:
        if start < _month_start(now, HISTORY_MONTHS):
            raise BillExpirationException("The requested report expired. Update the date "
                                          "interval and try again.")
        if end > today + 366 * _DAY:
            raise ValidationException("End date may be at most a year from today.")
    return Period(start, end, hourly)


def buckets(period: Period, granularity: str) -> list[Period]:
    """The period cut into hours, UTC days or calendar months (the first and last clipped)."""
    out: list[Period] = []
    at = period.start
    while at < period.end:
        if granularity == "MONTHLY":
            when = dt.datetime.fromtimestamp(at, dt.UTC)
            days = calendar.monthrange(when.year, when.month)[1]
            nxt = _month_start(at) + days * _DAY
        else:
            step = 3600.0 if granularity == "HOURLY" else _DAY
            nxt = at - at % step + step
        out.append(Period(at, min(nxt, period.end), period.hourly))
        at = nxt
    return out


def estimated(bucket: Period, now: float) -> bool:
    """A month's figures are estimates until the month's bill is closed."""
    return bucket.end > _month_start(now)


# -- metrics and groups -----------------------------------------------------------------------

def parse_metrics(names: Iterable[Any]) -> list[tuple[str, str]]:
    """(name as given, canonical name) for each metric; case does not matter, as on AWS."""
    out: list[tuple[str, str]] = []
    for name in names:
        canonical = _METRICS.get(str(name).lower())
        if canonical is None:
            raise ValidationException(f"Metric {str(name)[:64]!r} is not valid; valid: "
                                      f"{', '.join(_METRICS.values())}.")
        if canonical == NORMALIZED:
            raise ValidationException("fargo does not compute NormalizedUsageAmount (EC2 "
                                      "reservations' size units; Fargate has none).")
        if (name, canonical) not in out:
            out.append((str(name), canonical))
    if not out:
        raise ValidationException("Metrics must name at least one metric.")
    return out


def _dimension(key: Any, where: str) -> str:
    if key is None:
        raise ValidationException(f"{where} needs a Key.")
    if key not in _ALL_DIMENSIONS:
        raise ValidationException(f"{where}: {str(key)[:64]!r} is not a dimension.")
    if key not in DIMENSIONS:
        raise ValidationException(f"{where}: fargo's Cost Explorer has no dimension {key} "
                                  f"(it has {', '.join(DIMENSIONS)}).")
    return str(key)


@dataclass(frozen=True)
class GroupDef:
    type: str  # DIMENSION | TAG
    key: str

    def render(self) -> dict[str, str]:
        return {"Type": self.type, "Key": self.key}


def parse_group_by(groups: list[Mapping[str, Any]]) -> list[GroupDef]:
    if len(groups) > MAX_GROUP_BY:
        raise ValidationException(f"GroupBy takes at most {MAX_GROUP_BY} groups.")
    out: list[GroupDef] = []
    for g in groups:
        kind, key = g.get("Type"), g.get("Key")
        if kind is None or key is None:
            raise ValidationException("Each GroupBy needs a Type and a Key.")
        if kind == "COST_CATEGORY":
            raise ValidationException("fargo has no cost categories: GroupBy Type "
                                      "COST_CATEGORY is not supported.")
        if kind == "DIMENSION":
            key = _dimension(key, "GroupBy")
        elif kind != "TAG" or not key:
            raise ValidationException(f"GroupBy Type must be DIMENSION or TAG with a Key, not "
                                      f"{str(kind)[:20]!r}.")
        if GroupDef(kind, key) in out:
            raise ValidationException(f"GroupBy names {kind} {key} twice.")
        out.append(GroupDef(kind, key))
    return out


# -- line items and filters -------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One usage type of one task: its dimensions, its tags, its billed span."""

    item: LineItem
    dims: Mapping[str, str]
    tags: Mapping[str, str]
    span: tuple[float, float]


def rows_of(m: Metered, prices: Prices, now: float, account: str) -> list[Row]:
    span = billed_span(m.start, m.end if m.end is not None else now)
    tags = dict(m.tags)
    out = []
    for item in line_items(m, prices):
        dims = {"SERVICE": m.service, "SERVICE_CODE": SERVICE_CODES[m.service],
                "USAGE_TYPE": item.usage_type, "REGION": m.region, "AZ": m.zone or "NoAZ",
                "LINKED_ACCOUNT": account, "PURCHASE_TYPE": item.purchase,
                "RECORD_TYPE": "Usage", "BILLING_ENTITY": "AWS"}
        out.append(Row(item, dims, tags, span))
    return out


Predicate = Callable[[Row], bool]
_KINDS = ("EQUALS", "ABSENT", "STARTS_WITH", "ENDS_WITH", "CONTAINS")
_OPERANDS = ("And", "Or", "Not", "Dimensions", "Tags", "CostCategories")


def _matcher(doc: Mapping[str, Any], where: str) -> Callable[[str | None], bool]:
    options = list(doc.get("MatchOptions") or ["EQUALS"])
    if "GREATER_THAN_OR_EQUAL" in options:
        raise ValidationException(f"{where}: MatchOptions GREATER_THAN_OR_EQUAL is for "
                                  "anomalies' impact only.")
    kinds = [o for o in options if o in _KINDS] or ["EQUALS"]
    if len(set(kinds)) > 1:
        raise ValidationException(f"{where}: MatchOptions may hold one of "
                                  f"{', '.join(_KINDS)}, not {', '.join(kinds)}.")
    if {"CASE_SENSITIVE", "CASE_INSENSITIVE"} <= set(options):
        raise ValidationException(f"{where}: MatchOptions cannot be both CASE_SENSITIVE and "
                                  "CASE_INSENSITIVE.")
    kind = kinds[0]
    fold: Callable[[str], str] = str.lower if "CASE_INSENSITIVE" in options else str
    if kind == "ABSENT":
        return lambda v: v is None or v == ""
    values = doc.get("Values")
    if not values:
        raise ValidationException(f"{where}: Values must hold at least one value.")
    wanted = [fold(v) for v in values]
    tests: dict[str, Callable[[str, str], bool]] = {
        "EQUALS": lambda v, w: v == w, "STARTS_WITH": str.startswith,
        "ENDS_WITH": str.endswith, "CONTAINS": lambda v, w: w in v}
    test = tests[kind]
    return lambda v: any(test(fold(v or ""), w) for w in wanted)


MAX_DEPTH = 32  # expressions nested deeper are refused, not recursed into


def compile_filter(expr: Mapping[str, Any] | None, where: str = "Filter",
                   depth: int = 0) -> Predicate:
    """An Expression: exactly one of And, Or (two or more expressions each), Not, Dimensions,
    Tags. CostCategories are refused: fargo has none."""
    if expr is None:
        return lambda row: True
    if depth >= MAX_DEPTH:
        raise ValidationException(f"Filter expressions may nest at most {MAX_DEPTH} deep.")
    given = [k for k in _OPERANDS if expr.get(k) is not None]
    if len(given) != 1:
        raise ValidationException(f"{where} must have exactly one of {', '.join(_OPERANDS)}; "
                                  f"it has {', '.join(given) or 'none'}.")
    op = given[0]
    if op in ("And", "Or"):
        parts = expr[op]
        if len(parts) < 2:
            raise ValidationException(f"{where}.{op} needs at least two expressions.")
        preds = [compile_filter(p, f"{where}.{op}[{i}]", depth + 1)
                 for i, p in enumerate(parts)]
        if op == "And":
            return lambda row: all(p(row) for p in preds)
        return lambda row: any(p(row) for p in preds)
    if op == "Not":
        inner = compile_filter(expr["Not"], f"{where}.Not", depth + 1)
        return lambda row: not inner(row)
    if op == "CostCategories":
        raise ValidationException(f"{where}: fargo has no cost categories (CostCategories "
                                  "is not supported).")
    doc = expr[op]
    key = doc.get("Key")
    if op == "Dimensions":
        dim = _dimension(key, f"{where}.Dimensions")
        if "ABSENT" in (doc.get("MatchOptions") or []):
            raise ValidationException(f"{where}.Dimensions: every line item has every "
                                      "dimension; MatchOptions ABSENT is for Tags.")
        match = _matcher(doc, f"{where}.Dimensions")
        return lambda row: match(row.dims[dim])
    if not key:
        raise ValidationException(f"{where}.Tags needs a Key.")
    match = _matcher(doc, f"{where}.Tags")
    return lambda row: match(row.tags.get(key))


# -- sums ---------------------------------------------------------------------------------------

@dataclass
class Tally:
    cost: float = 0.0
    usage: float = 0.0
    units: set[str] = field(default_factory=set)

    def add(self, item: LineItem, seconds: float) -> None:
        hours = item.quantity * seconds / 3600
        self.usage += hours
        self.cost += hours * item.rate
        self.units.add(item.unit)

    def metrics(self, wanted: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
        """metric name as asked -> (Amount, Unit)."""
        out = {}
        for name, canonical in wanted:
            if canonical == USAGE_QUANTITY:
                unit = next(iter(self.units)) if len(self.units) == 1 else "N/A"
                out[name] = (amount(self.usage), unit)
            else:
                out[name] = (amount(self.cost), "USD")
        return out


def amount(value: float) -> str:
    """Cost Explorer's decimal strings: "0.0101200000" -> "0.01012", nothing -> "0"."""
    text = f"{value:.10f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def group_keys(row: Row, groups: list[GroupDef]) -> tuple[str, ...]:
    """A TAG group's key is "key$value", "key$" for what lacks the tag."""
    return tuple(row.dims[g.key] if g.type == "DIMENSION" else f"{g.key}${row.tags.get(g.key, '')}"
                 for g in groups)


@dataclass(frozen=True)
class TimeResult:
    period: Period
    total: dict[str, tuple[str, str]]  # empty when grouped, as on AWS
    groups: list[tuple[tuple[str, ...], dict[str, tuple[str, str]]]]
    estimated: bool


def cost_and_usage(rows: list[Row], period: Period, granularity: str,
                   metrics: list[tuple[str, str]], groups: list[GroupDef], where: Predicate,
                   now: float) -> list[TimeResult]:
    cuts = buckets(period, granularity)
    starts = [b.start for b in cuts]
    totals = [Tally() for _ in cuts]
    by_key: list[dict[tuple[str, ...], Tally]] = [{} for _ in cuts]
    for row in rows:
        if not where(row):
            continue
        keys = group_keys(row, groups)
        # only the periods the row's span reaches
        for i in range(max(0, bisect.bisect_right(starts, row.span[0]) - 1), len(cuts)):
            if cuts[i].start >= row.span[1]:
                break
            seconds = overlap_seconds(row.span, cuts[i])
            if seconds > 0:
                totals[i].add(row.item, seconds)
                if groups:
                    by_key[i].setdefault(keys, Tally()).add(row.item, seconds)
    return [TimeResult(b, {} if groups else totals[i].metrics(metrics),
                       [(k, by_key[i][k].metrics(metrics)) for k in sorted(by_key[i])],
                       estimated(b, now))
            for i, b in enumerate(cuts)]


def overlap_seconds(span: tuple[float, float], bucket: Period) -> float:
    return max(0.0, min(span[1], bucket.end) - max(span[0], bucket.start))


def distinct_values(rows: list[Row], period: Period,
                    values_of: Callable[[Row], Iterable[str]], search: str | None,
                    sort: tuple[str, bool] | None) -> list[str]:
    """The values rows with usage in the period have (SearchString: a case-insensitive
    substring); by value, or by a metric's sum when SortBy gives (canonical name,
    descending)."""
    sums: dict[str, Tally] = {}
    for row in rows:
        seconds = overlap_seconds(row.span, period)
        if seconds <= 0:
            continue
        for value in values_of(row):
            if not search or search.lower() in value.lower():
                sums.setdefault(value, Tally()).add(row.item, seconds)
    if sort is None:
        return sorted(sums)
    metric, descending = sort

    def key(v: str) -> float:
        return sums[v].usage if metric == USAGE_QUANTITY else sums[v].cost

    return sorted(sorted(sums), key=key, reverse=descending)


def parse_sort(sort_by: list[Mapping[str, Any]] | None) -> tuple[str, bool] | None:
    if not sort_by:
        return None
    if len(sort_by) > 1:
        raise ValidationException("fargo sorts by one SortBy key only.")
    key = _METRICS.get(str(sort_by[0].get("Key", "")).lower())
    if key is None or key == NORMALIZED:
        raise ValidationException(f"SortBy Key {str(sort_by[0].get('Key'))[:64]!r} is not "
                                  f"valid; valid: {', '.join((*COST_METRICS, USAGE_QUANTITY))}.")
    order = sort_by[0].get("SortOrder", "ASCENDING")
    if order not in ("ASCENDING", "DESCENDING"):
        raise ValidationException("SortOrder must be ASCENDING or DESCENDING.")
    return key, order == "DESCENDING"


# -- paging -------------------------------------------------------------------------------------

def fingerprint(params: Mapping[str, Any]) -> str:
    """The request less its token: a token is good only for the request that got it."""
    rest = {k: v for k, v in params.items() if k != "NextPageToken"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()
                          ).hexdigest()[:16]


def make_token(offset: int, print_: str) -> str:
    return base64.urlsafe_b64encode(f"{offset}:{print_}".encode()).decode()


def read_token(token: str | None, print_: str) -> int:
    if token is None:
        return 0
    try:
        offset_text, _, seen = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        offset = int(offset_text)
    except (ValueError, UnicodeError):
        raise InvalidNextTokenException("The NextPageToken is not valid.") from None
    if offset < 0 or not seen:
        raise InvalidNextTokenException("The NextPageToken is not valid.")
    if seen != print_:
        raise RequestChangedException("The request changed since its NextPageToken was "
                                      "issued; start again without it.")
    return offset


def page_results(results: list[TimeResult], offset: int,
                 limit: int = PAGE_GROUPS) -> tuple[list[TimeResult], int | None]:
    """Whole time periods from `offset` until `limit` groups are reached; the next offset."""
    if offset > len(results):
        raise InvalidNextTokenException("The NextPageToken is not valid.")
    taken: list[TimeResult] = []
    count = 0
    for i in range(offset, len(results)):
        size = max(1, len(results[i].groups))
        if taken and count + size > limit:
            return taken, i
        taken.append(results[i])
        count += size
    return taken, None
