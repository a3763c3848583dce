"""CloudWatch's metrics in the same SQLite file as the rest of the state (own tables, the
Store's connection and lock): one row per metric (namespace, name, sorted dimensions), one
per metric, minute and unit holding that minute's aggregate and, while few, its distinct
values. Writes merge into the minute's row, so a sample written twice within a minute adds up
rather than replaces, and a SIGKILL loses at most what was not yet written. Retention is the
sweep's: points older than the retention go, and past the cap the oldest minutes go first."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import NamedTuple

import msgspec

from ..model.metrics import Datum, Dims, Point, Stats, TaskReading, Values, merge_values
from .sqlite import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS metric_series (
    id INTEGER PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL, dims TEXT NOT NULL,
    last INTEGER NOT NULL, UNIQUE (namespace, name, dims));
CREATE TABLE IF NOT EXISTS metric_points (
    series INTEGER NOT NULL, minute INTEGER NOT NULL, unit TEXT NOT NULL,
    count REAL NOT NULL, sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL, vals TEXT,
    PRIMARY KEY (series, minute, unit)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metric_points_by_minute ON metric_points (minute);
CREATE TABLE IF NOT EXISTS metric_readings (task TEXT PRIMARY KEY, reading BLOB NOT NULL);
"""
_reading_enc = msgspec.json.Encoder()
_reading_dec = msgspec.json.Decoder(TaskReading)
DEFAULT_CAP = 1_000_000  # points kept at most (~100 MB), whatever their age


def _dims_text(dims: Dims) -> str:
    return json.dumps([list(p) for p in dims], separators=(",", ":"))


def _dims_from(text: str) -> Dims:
    return tuple((str(n), str(v)) for n, v in json.loads(text))


def _vals_text(values: Values | None) -> str | None:
    if values is None:
        return None
    return json.dumps([[v, c] for v, c in values.items()], separators=(",", ":"))


def _vals_from(text: str | None) -> Values | None:
    if text is None:
        return None
    return {float(v): float(c) for v, c in json.loads(text)}


class SeriesRow(NamedTuple):
    """A stored metric."""

    id: int
    namespace: str
    name: str
    dims: Dims


class MetricTables:
    def __init__(self, store: Store, cap: int = DEFAULT_CAP):
        self.store = store
        self.cap = cap
        self._ids: dict[tuple[str, str, Dims], int] = {}
        self._last: dict[int, int] = {}  # the latest minute written of each, as stored
        with store.locked() as db:
            db.executescript(_SCHEMA)

    # ---- writing
    def add(self, data: Iterable[Datum], readings: list[TaskReading] | None = None) -> None:
        """Merge the data into their minutes' points, all in one transaction; with
        `readings`, the sampler's last readings (what its next figures count from) are
        replaced by them in the same one, so a restart neither counts a delta twice nor
        loses one."""
        data = list(data)
        if not data and readings is None:
            return
        with self.store.locked() as db:
            db.execute("BEGIN")
            try:
                for d in data:
                    self._add_one(db, d)
                if readings is not None:
                    db.execute("DELETE FROM metric_readings")
                    db.executemany("INSERT INTO metric_readings VALUES (?,?)",
                                   [(r.task_id, _reading_enc.encode(r)) for r in readings])
            except BaseException:
                db.execute("ROLLBACK")
                self._ids.clear()  # ids made in the rolled-back transaction are gone
                self._last.clear()
                raise
            db.execute("COMMIT")

    def _series_id(self, db: sqlite3.Connection, d: Datum) -> int:
        key = (d.namespace, d.name, d.dims)
        sid = self._ids.get(key)
        text = _dims_text(d.dims)
        if sid is None:
            row = db.execute("SELECT id FROM metric_series WHERE namespace=? AND name=? AND "
                             "dims=?", (d.namespace, d.name, text)).fetchone()
            if row is None:
                row = db.execute("INSERT INTO metric_series (namespace, name, dims, last) "
                                 "VALUES (?,?,?,?) RETURNING id",
                                 (d.namespace, d.name, text, d.minute)).fetchone()
            sid = self._ids[key] = int(row[0])
        if self._last.get(sid, -1) < d.minute:  # once a minute per metric, not per datum
            db.execute("UPDATE metric_series SET last=? WHERE id=? AND last<?",
                       (d.minute, sid, d.minute))
            self._last[sid] = d.minute
        return sid

    def _add_one(self, db: sqlite3.Connection, d: Datum) -> None:
        sid = self._series_id(db, d)
        row = db.execute("SELECT count, sum, min, max, vals FROM metric_points WHERE series=? "
                         "AND minute=? AND unit=?", (sid, d.minute, d.unit)).fetchone()
        stats, values = d.stats, d.values
        if row is not None:
            stats = Stats(row[0], row[1], row[2], row[3]).merge(stats)
            values = merge_values(_vals_from(row[4]), values)
        db.execute("INSERT OR REPLACE INTO metric_points VALUES (?,?,?,?,?,?,?,?)",
                   (sid, d.minute, d.unit, stats.count, stats.sum, stats.minimum,
                    stats.maximum, _vals_text(values)))

    def readings(self) -> list[TaskReading]:
        out = []
        for (raw,) in self.store.rows("SELECT reading FROM metric_readings"):
            try:
                out.append(_reading_dec.decode(raw))
            except msgspec.DecodeError:  # an older server's shape: that task starts afresh
                continue
        return out

    # ---- reading
    def find(self, namespace: str, name: str, dims: Dims) -> int | None:
        rows = self.store.rows("SELECT id FROM metric_series WHERE namespace=? AND name=? AND "
                               "dims=?", (namespace, name, _dims_text(dims)))
        return int(rows[0][0]) if rows else None

    def points(self, series: int, start: int, end: float,
               unit: str | None = None) -> list[Point]:
        sql = ("SELECT minute, unit, count, sum, min, max, vals FROM metric_points WHERE "
               "series=? AND minute>=? AND minute<?")
        args: tuple = (series, start, end)
        if unit is not None:
            sql += " AND unit=?"
            args += (unit,)
        return [Point(int(m), u, Stats(c, s, lo, hi), _vals_from(v))
                for m, u, c, s, lo, hi, v in self.store.rows(sql + " ORDER BY minute", args)]

    def series(self, namespace: str | None, name: str | None, since: int,
               after: int = 0) -> list[SeriesRow]:
        """Metrics with a point at or after `since`, by id from after `after` on."""
        sql = "SELECT id, namespace, name, dims FROM metric_series WHERE last>=? AND id>?"
        args: tuple = (since, after)
        if namespace is not None:
            sql += " AND namespace=?"
            args += (namespace,)
        if name is not None:
            sql += " AND name=?"
            args += (name,)
        return [SeriesRow(int(i), ns, n, _dims_from(d))
                for i, ns, n, d in self.store.rows(sql + " ORDER BY id", args)]

    def count(self) -> int:
        return int(self.store.rows("SELECT COUNT(*) FROM metric_points")[0][0])

    # ---- retention
    def sweep(self, before: int) -> int:
        """Drop points of minutes before `before`, then the oldest past the cap, then the
        metrics left with none; returns the points dropped."""
        with self.store.locked() as db:
            gone = db.execute("DELETE FROM metric_points WHERE minute<?", (before,)).rowcount
            over = int(db.execute("SELECT COUNT(*) FROM metric_points").fetchone()[0]) - self.cap
            if over > 0:
                row = db.execute("SELECT minute FROM metric_points ORDER BY minute LIMIT 1 "
                                 "OFFSET ?", (over - 1,)).fetchone()
                if row is not None:  # whole minutes go: the cut falls between two minutes
                    gone += db.execute("DELETE FROM metric_points WHERE minute<=?",
                                       (int(row[0]),)).rowcount
            db.execute("DELETE FROM metric_series WHERE NOT EXISTS (SELECT 1 FROM "
                       "metric_points WHERE series=metric_series.id)")
            self._ids.clear()
            self._last.clear()
        return gone
