"""CloudWatch Logs in the same SQLite file as the rest of the state (own tables, the Store's
connection and lock). Log groups and streams are rows; events are kept in blocks: a row holds
up to BLOCK_EVENTS events of one stream, zlib-compressed, with their time range, so a read
decompresses only the blocks its time range touches. A block's payload is the events'
timestamps, ingestion times and sequence numbers (int64 arrays), their sizes (uint32), then
the messages' UTF-8 back to back: a term can be looked for in a whole block at once.

A stream's small appends grow its last block until it is full (one block, not one row per
PutLogEvents). Deleting a group or stream removes its rows and marks its streams' blocks
doomed in one transaction; the blocks go in short steps after (purge), also after a crash.
The awslogs shipper's read offsets are kept here too, committed with the events they
produced."""

from __future__ import annotations

import itertools
import sqlite3
import sys
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import orjson

from .sqlite import Store

BLOCK_EVENTS = 1000
BLOCK_BYTES = 256 * 1024  # raw message bytes a block grows to by appends
LEVEL = 1  # zlib: logs compress well even at the fastest level
PURGE_STEP = 256  # doomed blocks deleted per transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cwl_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT, region TEXT NOT NULL, name TEXT NOT NULL,
    created INTEGER NOT NULL, retention INTEGER, class TEXT NOT NULL, tags TEXT NOT NULL,
    stored INTEGER NOT NULL DEFAULT 0, UNIQUE (region, name));
CREATE TABLE IF NOT EXISTS cwl_streams (
    id INTEGER PRIMARY KEY AUTOINCREMENT, grp INTEGER NOT NULL, name TEXT NOT NULL,
    created INTEGER NOT NULL, first_ts INTEGER, last_ts INTEGER, last_ingest INTEGER,
    next_seq INTEGER NOT NULL DEFAULT 0, stored INTEGER NOT NULL DEFAULT 0,
    tail INTEGER, UNIQUE (grp, name));
CREATE TABLE IF NOT EXISTS cwl_blocks (
    id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, stream INTEGER NOT NULL,
    min_ts INTEGER NOT NULL, max_ts INTEGER NOT NULL, count INTEGER NOT NULL,
    raw INTEGER NOT NULL, stored INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS cwl_blocks_by_group ON cwl_blocks (grp, min_ts);
CREATE INDEX IF NOT EXISTS cwl_blocks_by_stream ON cwl_blocks (stream, min_ts);
CREATE TABLE IF NOT EXISTS cwl_doomed (stream INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS cwl_shipped (source TEXT PRIMARY KEY, offset INTEGER NOT NULL);
"""
_OVERHEAD = 26  # bytes counted per event in storedBytes, as PutLogEvents counts them


@dataclass(frozen=True)
class GroupRow:
    id: int
    region: str
    name: str
    created: int
    retention: int | None
    cls: str
    tags: dict[str, str]
    stored: int


@dataclass(frozen=True)
class StreamRow:
    id: int
    grp: int
    name: str
    created: int
    first_ts: int | None
    last_ts: int | None
    last_ingest: int | None
    next_seq: int


@dataclass(frozen=True)
class BlockMeta:
    id: int
    stream: int
    min_ts: int
    max_ts: int
    count: int


@dataclass
class Block:
    """A block's events, decoded: parallel arrays, messages by offset into `text`."""

    ts: array
    ingest: array
    seq: array
    ends: list[int]
    text: bytes

    def __len__(self) -> int:
        return len(self.ts)

    def message(self, i: int) -> bytes:
        return self.text[self.ends[i - 1] if i else 0:self.ends[i]]


def _le(a: array) -> array:
    if sys.byteorder == "big":
        a.byteswap()
    return a


def encode(ts: Sequence[int], ingest: Sequence[int], seq: Sequence[int],
           messages: Sequence[bytes]) -> bytes:
    header = b"".join(_le(array(code, values)).tobytes() for code, values in
                      (("q", ts), ("q", ingest), ("q", seq), ("I", [len(m) for m in messages])))
    return zlib.compress(header + b"".join(messages), LEVEL)


def decode(data: bytes, count: int) -> Block:
    raw = zlib.decompress(data)
    parts: list[array] = []
    at = 0
    for code, width in (("q", 8), ("q", 8), ("q", 8), ("I", 4)):
        a = array(code)
        a.frombytes(raw[at:at + width * count])
        parts.append(_le(a))
        at += width * count
    return Block(parts[0], parts[1], parts[2], list(itertools.accumulate(parts[3])), raw[at:])


def _group(row: tuple) -> GroupRow:
    return GroupRow(row[0], row[1], row[2], row[3], row[4], row[5], orjson.loads(row[6]), row[7])


_GROUP_COLS = "id, region, name, created, retention, class, tags, stored"
_STREAM_COLS = "id, grp, name, created, first_ts, last_ts, last_ingest, next_seq"


def _after_prefix(prefix: str) -> str:
    """The least string above every string that begins with prefix."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class LogTables:
    def __init__(self, store: Store):
        self.store = store
        with store.locked() as db:
            db.executescript(_SCHEMA)

    @staticmethod
    def _tx(db: sqlite3.Connection) -> _Tx:
        return _Tx(db)

    # ---- groups
    def group(self, region: str, name: str) -> GroupRow | None:
        rows = self.store.rows(f"SELECT {_GROUP_COLS} FROM cwl_groups WHERE region=? AND name=?",
                               (region, name))
        return _group(rows[0]) if rows else None

    def count_groups(self, region: str) -> int:
        return int(self.store.rows("SELECT COUNT(*) FROM cwl_groups WHERE region=?",
                                   (region,))[0][0])

    def add_group(self, region: str, name: str, created: int, cls: str,
                  tags: dict[str, str]) -> bool:
        """Whether it was made (False: there is one of that name)."""
        with self.store.locked() as db:
            cur = db.execute("INSERT OR IGNORE INTO cwl_groups (region, name, created, class, "
                             "tags) VALUES (?,?,?,?,?)",
                             (region, name, created, cls, orjson.dumps(tags).decode()))
            return cur.rowcount > 0

    def delete_group(self, gid: int) -> bool:
        """The group and its streams go now; their blocks are doomed (see purge)."""
        with self.store.locked() as db, self._tx(db):
            db.execute("INSERT OR IGNORE INTO cwl_doomed SELECT id FROM cwl_streams WHERE grp=?",
                       (gid,))
            db.execute("DELETE FROM cwl_streams WHERE grp=?", (gid,))
            gone = db.execute("DELETE FROM cwl_groups WHERE id=?", (gid,)).rowcount
        return gone > 0

    def groups(self, region: str, *, prefix: str | None = None, after: str | None = None,
               limit: int | None = None) -> list[GroupRow]:
        """By name, those beginning with prefix (after `after`)."""
        sql = f"SELECT {_GROUP_COLS} FROM cwl_groups WHERE region=?"
        args: list[object] = [region]
        if prefix:
            sql += " AND name >= ? AND name < ?"
            args += [prefix, _after_prefix(prefix)]
        if after is not None:
            sql += " AND name > ?"
            args.append(after)
        sql += " ORDER BY name"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_group(r) for r in self.store.rows(sql, tuple(args))]

    def retained(self) -> list[tuple[int, int]]:
        """(group id, retention days) of every group with a retention policy."""
        return [(r[0], r[1]) for r in
                self.store.rows("SELECT id, retention FROM cwl_groups WHERE retention IS NOT NULL")]

    def set_retention(self, gid: int, days: int | None) -> None:
        self.store.execute("UPDATE cwl_groups SET retention=? WHERE id=?", (days, gid))

    def set_tags(self, gid: int, tags: dict[str, str]) -> None:
        self.store.execute("UPDATE cwl_groups SET tags=? WHERE id=?",
                           (orjson.dumps(tags).decode(), gid))

    # ---- streams
    def stream(self, gid: int, name: str) -> StreamRow | None:
        rows = self.store.rows(f"SELECT {_STREAM_COLS} FROM cwl_streams WHERE grp=? AND name=?",
                               (gid, name))
        return StreamRow(*rows[0]) if rows else None

    def add_stream(self, gid: int, name: str, created: int) -> bool:
        with self.store.locked() as db:
            if not db.execute("SELECT 1 FROM cwl_groups WHERE id=?", (gid,)).fetchall():
                return False
            return db.execute("INSERT OR IGNORE INTO cwl_streams (grp, name, created) VALUES "
                              "(?,?,?)", (gid, name, created)).rowcount > 0

    def delete_stream(self, sid: int) -> bool:
        with self.store.locked() as db, self._tx(db):
            rows = db.execute("SELECT grp, stored FROM cwl_streams WHERE id=?", (sid,)).fetchall()
            if not rows:
                return False
            db.execute("INSERT OR IGNORE INTO cwl_doomed VALUES (?)", (sid,))
            db.execute("DELETE FROM cwl_streams WHERE id=?", (sid,))
            db.execute("UPDATE cwl_groups SET stored = MAX(0, stored - ?) WHERE id=?",
                       (rows[0][1], rows[0][0]))
        return True

    def streams(self, gid: int, *, prefix: str | None = None, by_time: bool = False,
                descending: bool = False, after: tuple[int, str] | None = None,
                limit: int | None = None) -> list[StreamRow]:
        """By name (or by last event time, then name), those beginning with prefix, after
        `after` ((last event time, name); the time is 0 when ordered by name)."""
        sql = f"SELECT {_STREAM_COLS} FROM cwl_streams WHERE grp=?"
        args: list[object] = [gid]
        if prefix:
            sql += " AND name >= ? AND name < ?"
            args += [prefix, _after_prefix(prefix)]
        cmp = "<" if descending else ">"
        if after is not None:
            if by_time:
                sql += f" AND (COALESCE(last_ts, 0), name) {cmp} (?, ?)"
                args += [after[0], after[1]]
            else:
                sql += f" AND name {cmp} ?"
                args.append(after[1])
        order = "DESC" if descending else "ASC"
        sql += (f" ORDER BY COALESCE(last_ts, 0) {order}, name {order}" if by_time
                else f" ORDER BY name {order}")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [StreamRow(*r) for r in self.store.rows(sql, tuple(args))]

    def stream_names(self, gid: int) -> dict[int, str]:
        return dict(self.store.rows("SELECT id, name FROM cwl_streams WHERE grp=?", (gid,)))

    # ---- events
    def append(self, sid: int, events: Sequence[tuple[int, bytes]], ingest: int,
               source: str | None = None, offset: int | None = None) -> int | None:
        """Append the events ((timestamp, UTF-8 message), in the order given) to the
        stream, and the source's offset with them, in one transaction. The stream's next
        sequence number after, or None if the stream is gone."""
        with self.store.locked() as db, self._tx(db):
            rows = db.execute("SELECT grp, next_seq, tail FROM cwl_streams WHERE id=?",
                              (sid,)).fetchall()
            if not rows:
                return None
            gid, seq, tail = rows[0]
            if source is not None and offset is not None:
                db.execute("INSERT OR REPLACE INTO cwl_shipped VALUES (?,?)", (source, offset))
            if not events:
                return int(seq)
            todo = list(events)
            if tail is not None:
                taken = self._grow(db, tail, todo, ingest, seq)
                seq += taken
                todo = todo[taken:]
            while todo:
                chunk = _fill(todo)
                tail = self._insert(db, gid, sid, chunk, ingest, seq)
                seq += len(chunk)
                todo = todo[len(chunk):]
            stored = sum(len(m) + _OVERHEAD for _, m in events)
            lo, hi = min(ts for ts, _ in events), max(ts for ts, _ in events)
            db.execute("UPDATE cwl_streams SET next_seq=?, tail=?, stored=stored+?, "
                       "first_ts=MIN(COALESCE(first_ts, ?), ?), "
                       "last_ts=MAX(COALESCE(last_ts, ?), ?), last_ingest=? WHERE id=?",
                       (seq, tail, stored, lo, lo, hi, hi, ingest, sid))
            db.execute("UPDATE cwl_groups SET stored=stored+? WHERE id=?", (stored, gid))
        return int(seq)

    @staticmethod
    def _insert(db: sqlite3.Connection, gid: int, sid: int, chunk: Sequence[tuple[int, bytes]],
                ingest: int, seq: int) -> int:
        ts = [t for t, _ in chunk]
        messages = [m for _, m in chunk]
        data = encode(ts, [ingest] * len(chunk), range(seq, seq + len(chunk)), messages)
        raw = sum(len(m) for m in messages)
        cur = db.execute("INSERT INTO cwl_blocks (grp, stream, min_ts, max_ts, count, raw, "
                         "stored, data) VALUES (?,?,?,?,?,?,?,?)",
                         (gid, sid, min(ts), max(ts), len(chunk), raw,
                          raw + _OVERHEAD * len(chunk), data))
        return int(cur.lastrowid or 0)

    @staticmethod
    def _grow(db: sqlite3.Connection, tail: int, todo: Sequence[tuple[int, bytes]], ingest: int,
              seq: int) -> int:
        """Add what fits of todo to the stream's last block; how many were added."""
        rows = db.execute("SELECT count, raw, data FROM cwl_blocks WHERE id=?",
                          (tail,)).fetchall()
        if not rows or rows[0][0] >= BLOCK_EVENTS or rows[0][1] >= BLOCK_BYTES:
            return 0
        count, raw, data = rows[0]
        room, size, n = BLOCK_EVENTS - count, raw, 0
        while n < len(todo) and n < room and size + len(todo[n][1]) <= BLOCK_BYTES:
            size += len(todo[n][1])
            n += 1
        if n == 0:
            return 0
        old = decode(data, count)
        ts = list(old.ts) + [t for t, _ in todo[:n]]
        messages = [old.message(i) for i in range(count)] + [m for _, m in todo[:n]]
        data = encode(ts, list(old.ingest) + [ingest] * n, list(old.seq) + list(range(seq, seq + n)),
                      messages)
        db.execute("UPDATE cwl_blocks SET min_ts=?, max_ts=?, count=?, raw=?, "
                   "stored=stored+?, data=? WHERE id=?",
                   (min(ts), max(ts), count + n, size, size - raw + _OVERHEAD * n, data, tail))
        return n

    def metas(self, *, gid: int | None = None, sid: int | None = None, lo: int = 0,
              hi: int | None = None) -> list[BlockMeta]:
        """The blocks of a group (or one stream) holding events in [lo, hi], by their
        earliest event."""
        where, key = ("stream=?", sid) if sid is not None else ("grp=?", gid)
        sql = (f"SELECT id, stream, min_ts, max_ts, count FROM cwl_blocks WHERE {where} "
               "AND max_ts >= ?")
        args: list[object] = [key, lo]
        if hi is not None:
            sql += " AND min_ts <= ?"
            args.append(hi)
        rows = self.store.rows(sql + " ORDER BY min_ts, id", tuple(args))
        return [BlockMeta(*r) for r in rows]

    def payloads(self, ids: Iterable[int]) -> dict[int, tuple[int, bytes]]:
        """Blocks' (count, data) by id; a block deleted meanwhile is simply not there."""
        wanted = list(ids)
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        return {r[0]: (r[1], r[2]) for r in self.store.rows(
            f"SELECT id, count, data FROM cwl_blocks WHERE id IN ({marks})", tuple(wanted))}

    # ---- retention and deletion
    def expire(self, gid: int, cutoff: int) -> int:
        """Remove up to a step of the group's events older than cutoff: whole blocks, or the
        expired part of one block. How many events went (0: none left)."""
        with self.store.locked() as db, self._tx(db):
            rows = db.execute("SELECT id, stream, count, stored FROM cwl_blocks WHERE grp=? "
                              "AND min_ts < ? AND max_ts < ? LIMIT ?",
                              (gid, cutoff, cutoff, PURGE_STEP)).fetchall()
            if rows:
                db.executemany("DELETE FROM cwl_blocks WHERE id=?", [(r[0],) for r in rows])
                self._uncount(db, gid, [(r[1], r[3]) for r in rows])
                return sum(r[2] for r in rows)
            rows = db.execute("SELECT id, stream, count, data FROM cwl_blocks WHERE grp=? "
                              "AND min_ts < ? AND max_ts >= ? LIMIT 1",
                              (gid, cutoff, cutoff)).fetchall()
            if not rows:
                return 0
            bid, sid, count, data = rows[0]
            block = decode(data, count)
            keep = [i for i in range(count) if block.ts[i] >= cutoff]
            messages = [block.message(i) for i in keep]
            raw = sum(len(m) for m in messages)
            gone = sum(len(block.message(i)) + _OVERHEAD for i in range(count)
                       if block.ts[i] < cutoff)
            db.execute("UPDATE cwl_blocks SET min_ts=?, max_ts=?, count=?, raw=?, stored=?, "
                       "data=? WHERE id=?",
                       (min(block.ts[i] for i in keep), max(block.ts[i] for i in keep),
                        len(keep), raw, raw + _OVERHEAD * len(keep),
                        encode([block.ts[i] for i in keep], [block.ingest[i] for i in keep],
                               [block.seq[i] for i in keep], messages), bid))
            self._uncount(db, gid, [(sid, gone)])
            return count - len(keep)

    @staticmethod
    def _uncount(db: sqlite3.Connection, gid: int, gone: list[tuple[int, int]]) -> None:
        db.executemany("UPDATE cwl_streams SET stored = MAX(0, stored - ?) WHERE id=?",
                       [(size, sid) for sid, size in gone])
        db.execute("UPDATE cwl_groups SET stored = MAX(0, stored - ?) WHERE id=?",
                   (sum(size for _, size in gone), gid))

    def purge(self) -> int:
        """Delete a step of the doomed streams' blocks; how much was done (0: nothing left)."""
        with self.store.locked() as db, self._tx(db):
            doomed = [r[0] for r in db.execute("SELECT stream FROM cwl_doomed LIMIT 16")]
            done = 0
            for sid in doomed:
                ids = [r[0] for r in db.execute("SELECT id FROM cwl_blocks WHERE stream=? "
                                                "LIMIT ?", (sid, PURGE_STEP))]
                db.executemany("DELETE FROM cwl_blocks WHERE id=?", [(i,) for i in ids])
                done += len(ids)
                if len(ids) == PURGE_STEP:
                    break  # more of this stream next step
                db.execute("DELETE FROM cwl_doomed WHERE stream=?", (sid,))
                done += 1
                if done >= PURGE_STEP:
                    break
            return done

    def doomed(self) -> bool:
        return bool(self.store.rows("SELECT 1 FROM cwl_doomed LIMIT 1"))

    # ---- the shippers' offsets
    def shipped(self, source: str) -> int:
        rows = self.store.rows("SELECT offset FROM cwl_shipped WHERE source=?", (source,))
        return int(rows[0][0]) if rows else 0

    def forget_source(self, source: str) -> None:
        self.store.execute("DELETE FROM cwl_shipped WHERE source=?", (source,))

    # ---- a bench's bulk load
    def load(self, gid: int, sid: int, events: Iterator[tuple[int, bytes]], ingest: int) -> int:
        """Append many events in full blocks, a block per statement, one transaction per
        BLOCK_EVENTS * 100 events; as append, without growing the last block."""
        total = 0
        while True:
            batch = list(itertools.islice(events, BLOCK_EVENTS * 100))
            if not batch:
                return total
            self.append(sid, batch, ingest)
            total += len(batch)


class _Tx:
    """BEGIN ... COMMIT (ROLLBACK on any error) on the Store's autocommit connection."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN")

    def __exit__(self, kind: object, err: object, tb: object) -> None:
        self.db.execute("ROLLBACK" if kind is not None else "COMMIT")


def _fill(todo: Sequence[tuple[int, bytes]]) -> Sequence[tuple[int, bytes]]:
    """The events from the front of todo that make one block (at least one)."""
    size, n = 0, 0
    while n < len(todo) and n < BLOCK_EVENTS and (n == 0 or size + len(todo[n][1]) <= BLOCK_BYTES):
        size += len(todo[n][1])
        n += 1
    return todo[:n]
