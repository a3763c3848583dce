"""Summaries of a sample: min / p50 / p99 / max, and the figures' table rows."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class Summary:
    n: int
    min: float
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        return cls(len(values), min(values, default=math.nan), percentile(values, 50),
                   percentile(values, 99), max(values, default=math.nan))


@dataclass
class Row:
    """One line of the results table: a figure measured on one system."""

    figure: str
    system: str
    unit: str
    summary: Summary | None = None  # a distribution ...
    value: float | str | None = None  # ... or a single reading
    target: str = ""  # what the issue asks of fargo, in words
    ok: bool | None = None  # None: no target on this row
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    samples: dict[str, list[float]] = field(default_factory=dict)  # start latencies (ms) by system
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def find(self, figure: str, system: str) -> Row | None:
        return next((r for r in self.rows if r.figure == figure and r.system == system), None)
