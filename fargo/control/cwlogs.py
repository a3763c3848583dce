"""CloudWatch Logs: log groups and streams, their events, retention and tags; the LogSink the
awslogs shipper feeds (control/logsink.py); a retention sweep. The rules are in
model/cwlogs.py and model/filterpattern.py, the tables in store/cwlogs.py; api/cwlogs.py
parses the requests and renders the answers.

Reads merge a group's blocks by their events' (timestamp, stream, sequence number): a block
is decompressed only when its time range is reached, and one whose text lacks a term the
pattern needs is never split into events. Events past their group's retention are never
returned, and the sweep deletes them (each step one short transaction, so the API's calls
and the shipper's interleave with it)."""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..model.cwlogs import (
    DESCRIBE_LIMIT,
    EVENT_OVERHEAD,
    GROUP_CLASSES,
    MAX_EVENTS,
    MAX_GROUPS,
    MAX_PAGE_BYTES,
    Accepted,
    EventToken,
    check_batch,
    check_group_name,
    check_limit,
    check_new_group_name,
    check_retention,
    check_stream_name,
    check_tags,
    event_id,
    expiry_cutoff,
    group_arn,
    group_exists,
    group_not_found,
    group_of_arn,
    group_of_identifier,
    invalid,
    not_implemented,
    page_token,
    pick_group,
    read_event_token,
    read_page_token,
    sequence_token,
    stream_arn,
    stream_exists,
    stream_not_found,
)
from ..model.errors import ApiError
from ..model.filterpattern import Pattern, Terms
from ..model.filterpattern import parse as parse_pattern
from ..store.cwlogs import Block, BlockMeta, GroupRow, LogTables, StreamRow, decode
from ..store.sqlite import Store
from .logsink import Event
from .passloop import PassLoop

log = logging.getLogger("fargo.cwlogs")

SWEEP_EVERY = 300.0  # seconds between retention sweeps (and soon after a policy changes)
SCAN_BLOCKS = 4000  # blocks one FilterLogEvents call reads at most before it hands a token
_FETCH = 32  # block payloads read per statement

# An event as reads carry it: its key (timestamp, stream id, sequence number) first.
Row = tuple[int, int, int, int, bytes]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class LogGroup:
    name: str
    arn: str  # logGroupArn: no trailing :*
    created: int
    retention: int | None
    cls: str
    stored: int
    tags: dict[str, str]


@dataclass(frozen=True)
class LogStream:
    name: str
    arn: str
    created: int
    first_ts: int | None
    last_ts: int | None
    last_ingest: int | None
    upload_token: str


@dataclass(slots=True)
class OutputEvent:
    timestamp: int
    message: str
    ingestion_time: int
    stream: str
    stream_id: int
    seq: int

    @property
    def event_id(self) -> str:
        return event_id(self.timestamp, self.stream_id, self.seq)


@dataclass(frozen=True)
class PutResult:
    next_token: str
    accepted: Accepted


@dataclass(frozen=True)
class EventsPage:
    events: list[OutputEvent]
    forward: str
    backward: str


@dataclass(frozen=True)
class FilterPage:
    events: list[OutputEvent]
    token: str | None


def synthetic_message(i: int) -> str:
    """The i-th line of load_synthetic's events (a bench writes the same lines for grep):
    one in 1000 is an ERROR, the rest INFO or WARN."""
    level = "ERROR" if i % 1000 == 999 else ("WARN" if i % 10 == 3 else "INFO")
    return (f"{level} req={i:08d} GET /api/v1/items/{i % 997} status="
            f"{500 if level == 'ERROR' else 200} latency_ms={(i * 7) % 450} user=u{i % 313}")


def _hits(block: Block, term: bytes) -> list[int]:
    """Indices of the block's events whose message contains term: one pass of find over the
    block's text; a match running across two messages counts for neither."""
    text, ends = block.text, block.ends
    out: list[int] = []
    pos = text.find(term)
    while pos >= 0:
        i = bisect_right(ends, pos)
        if i >= len(ends):
            break
        if pos + len(term) <= ends[i]:
            out.append(i)
        # Any later match inside message i would also run past its end: go on at the next.
        pos = text.find(term, ends[i])
    return out


def _term_hits(block: Block, p: Terms) -> Sequence[int]:
    """Exactly the events of the block a term pattern matches, from the terms' hits: a find
    pass over the block's text per term, no event split unless it holds a term."""
    found: set[int] | None = None
    for term in sorted(p.every, key=len, reverse=True):  # the longest first: likely rarest
        hits = set(_hits(block, term))
        found = hits if found is None else found & hits
        if not found:
            return ()
    if p.any_of:
        either = set().union(*(_hits(block, t) for t in p.any_of))
        found = either if found is None else found & either
    if p.none_of:
        excluded = set().union(*(_hits(block, t) for t in p.none_of))
        found = (set(range(len(block))) if found is None else found) - excluded
    return sorted(found) if found is not None else range(len(block))


@dataclass(frozen=True)
class _Select:
    """Which events of the blocks a read wants: [lo, hi] by timestamp, strictly after and
    before the keys given, and matching the pattern."""

    lo: int
    hi: int | None
    after: tuple[int, int, int] | None = None
    before: tuple[int, int, int] | None = None
    pattern: Pattern | None = None

    def pick(self, meta: BlockMeta, block: Block) -> list[Row]:
        p = self.pattern
        if p is not None and p.required and not all(t in block.text for t in p.required):
            return []
        if isinstance(p, Terms):
            indices: Sequence[int] = _term_hits(block, p)
            verify = False
        else:
            indices, verify = range(len(block)), p is not None
        sid, ts, seq, ingest = meta.stream, block.ts, block.seq, block.ingest
        lo, hi, after, before = self.lo, self.hi, self.after, self.before
        out: list[Row] = []
        for i in indices:
            t = ts[i]
            if t < lo or (hi is not None and t > hi):
                continue
            key = (t, sid, seq[i])
            if (after is not None and key <= after) or (before is not None and key >= before):
                continue
            message = block.message(i)
            if verify and p is not None and not p.match(message):
                continue
            out.append((t, sid, seq[i], ingest[i], message))
        return out


class CloudWatchLogs:
    """The use cases, the LogSink of the shippers, and the retention sweep."""

    def __init__(self, store: Store, clock: Callable[[], int] = now_ms):
        self.tables = LogTables(store)
        self.clock = clock
        self._loop = PassLoop(self._sweep_pass, every=SWEEP_EVERY, settle=0.05, log=log,
                              what="CloudWatch Logs retention sweep")

    # ---- lifecycle
    def start(self) -> None:
        self._loop.start()
        self._loop.poke()  # what a crash left half deleted, and expiries due while down

    async def close(self) -> None:
        await self._loop.close()

    def poke(self) -> None:
        self._loop.poke()

    async def _sweep_pass(self) -> None:
        await asyncio.to_thread(self.sweep)

    # ---- lookups
    def _group_row(self, region: str, name: str) -> GroupRow:
        row = self.tables.group(region, name)
        if row is None:
            raise group_not_found()
        return row

    def _stream_row(self, group: GroupRow, name: str) -> StreamRow:
        row = self.tables.stream(group.id, check_stream_name(name))
        if row is None:
            raise stream_not_found()
        return row

    def _cutoff(self, group: GroupRow) -> int:
        return expiry_cutoff(self.clock(), group.retention) or 0

    @staticmethod
    def _group(row: GroupRow) -> LogGroup:
        return LogGroup(row.name, group_arn(row.region, row.name), row.created, row.retention,
                        row.cls, row.stored, row.tags)

    @staticmethod
    def _stream(group: GroupRow, row: StreamRow) -> LogStream:
        return LogStream(row.name, stream_arn(group.region, group.name, row.name), row.created,
                         row.first_ts, row.last_ts, row.last_ingest,
                         sequence_token(row.id, row.next_seq))

    # ---- log groups
    def create_log_group(self, region: str, name: str, *, tags: dict[str, str] | None = None,
                         kms_key_id: str | None = None, log_group_class: str | None = None,
                         deletion_protection: bool | None = None) -> None:
        check_new_group_name(name)
        if kms_key_id is not None:
            raise not_implemented("KMS encryption of log groups (kmsKeyId): events are kept "
                                  "in the state file, readable by its owner only")
        if log_group_class is not None and log_group_class not in GROUP_CLASSES:
            raise not_implemented(f"the log group class {log_group_class[:30]}")
        if deletion_protection:
            raise not_implemented("deletion protection of log groups "
                                  "(deletionProtectionEnabled)")
        checked = check_tags(tags or {})
        if self.tables.group(region, name) is not None:
            raise group_exists()
        if self.tables.count_groups(region) >= MAX_GROUPS:
            raise ApiError("Resource limit exceeded.", code="LimitExceededException")
        if not self.tables.add_group(region, name, self.clock(), log_group_class or "STANDARD",
                                     checked):
            raise group_exists()

    def delete_log_group(self, region: str, name: str) -> None:
        row = self._group_row(region, check_group_name(name))
        if not self.tables.delete_group(row.id):
            raise group_not_found()
        self.poke()  # its blocks go in the sweep's short steps

    def describe_log_groups(self, region: str, *, prefix: str | None = None,
                            pattern: str | None = None, limit: int | None = None,
                            token: str | None = None, log_group_class: str | None = None,
                            identifiers: list[str] | None = None,
                            include_linked: bool = False,
                            accounts: list[str] | None = None) -> tuple[list[LogGroup], str | None]:
        if include_linked or accounts:
            raise not_implemented("cross-account observability (includeLinkedAccounts, "
                                  "accountIdentifiers)")
        if prefix is not None and pattern is not None:
            raise invalid("logGroupNamePrefix and logGroupNamePattern are mutually exclusive. "
                          "Only one of these parameters can be passed.")
        if identifiers is not None and (prefix is not None or pattern is not None):
            raise invalid("logGroupIdentifiers cannot be combined with logGroupNamePrefix or "
                          "logGroupNamePattern.")
        if prefix is not None:
            check_group_name(prefix, "logGroupNamePrefix")
        size = check_limit(limit, DESCRIBE_LIMIT)
        after = read_page_token("dlg", token, (str,))[0] if token is not None else None
        wanted = {group_of_identifier(i, region) for i in identifiers} if identifiers else None
        out: list[LogGroup] = []
        while True:
            rows = self.tables.groups(region, prefix=prefix, after=after, limit=500)
            for row in rows:
                after = row.name
                if pattern and pattern not in row.name:
                    continue
                if log_group_class is not None and row.cls != log_group_class:
                    continue
                if wanted is not None and row.name not in wanted:
                    continue
                if len(out) == size:
                    return out, page_token("dlg", out[-1].name)
                out.append(self._group(row))
            if len(rows) < 500:
                return out, None

    def put_retention_policy(self, region: str, name: str, days: int) -> None:
        check_retention(days)
        row = self._group_row(region, check_group_name(name))
        self.tables.set_retention(row.id, days)
        self.poke()

    def delete_retention_policy(self, region: str, name: str) -> None:
        row = self._group_row(region, check_group_name(name))
        self.tables.set_retention(row.id, None)

    # ---- tags
    def tag_log_group(self, region: str, name: str, tags: dict[str, str]) -> None:
        row = self._group_row(region, check_group_name(name))
        try:
            merged = check_tags(tags, row.tags)
        except ApiError as err:
            raise invalid(err.message) from None
        self.tables.set_tags(row.id, merged)

    def untag_log_group(self, region: str, name: str, keys: list[str]) -> None:
        row = self._group_row(region, check_group_name(name))
        self.tables.set_tags(row.id, {k: v for k, v in row.tags.items() if k not in keys})

    def list_tags_log_group(self, region: str, name: str) -> dict[str, str]:
        return dict(self._group_row(region, check_group_name(name)).tags)

    def _arn_group(self, region: str, arn: str) -> GroupRow:
        name = group_of_arn(arn, region)
        if name is None:
            if arn.startswith("arn:") and ":logs:" in arn and ":log-group:" not in arn:
                raise not_implemented("tags of CloudWatch Logs resources other than log "
                                      "groups")
            if not arn.startswith("arn:"):
                raise invalid(f"Invalid resource ARN: {arn[:200]}")
            raise ApiError("The specified resource does not exist.",
                           code="ResourceNotFoundException")
        return self._group_row(region, name)

    def tag_resource(self, region: str, arn: str, tags: dict[str, str]) -> None:
        row = self._arn_group(region, arn)
        self.tables.set_tags(row.id, check_tags(tags, row.tags))

    def untag_resource(self, region: str, arn: str, keys: list[str]) -> None:
        row = self._arn_group(region, arn)
        self.tables.set_tags(row.id, {k: v for k, v in row.tags.items() if k not in keys})

    def list_tags_for_resource(self, region: str, arn: str) -> dict[str, str]:
        return dict(self._arn_group(region, arn).tags)

    # ---- log streams
    def create_log_stream(self, region: str, group: str, stream: str) -> None:
        row = self._group_row(region, check_group_name(group))
        check_stream_name(stream)
        if self.tables.stream(row.id, stream) is not None:
            raise stream_exists()
        if not self.tables.add_stream(row.id, stream, self.clock()):
            if self.tables.group(region, group) is None:
                raise group_not_found()
            raise stream_exists()

    def delete_log_stream(self, region: str, group: str, stream: str) -> None:
        g = self._group_row(region, check_group_name(group))
        if not self.tables.delete_stream(self._stream_row(g, stream).id):
            raise stream_not_found()
        self.poke()

    def describe_log_streams(self, region: str, *, group: str | None = None,
                             identifier: str | None = None, prefix: str | None = None,
                             order_by: str | None = None, descending: bool = False,
                             limit: int | None = None,
                             token: str | None = None) -> tuple[list[LogStream], str | None]:
        g = self._group_row(region, pick_group(group, identifier, region))
        by_time = order_by == "LastEventTime"
        if by_time and prefix is not None:
            raise invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
        if prefix is not None:
            check_stream_name(prefix, "logStreamNamePrefix")
        size = check_limit(limit, DESCRIBE_LIMIT)
        after = read_page_token("dls", token, (int, str)) if token is not None else None
        rows = self.tables.streams(g.id, prefix=prefix, by_time=by_time, descending=descending,
                                   after=(int(after[0]), str(after[1])) if after else None,
                                   limit=size + 1)
        out = [self._stream(g, r) for r in rows[:size]]
        if len(rows) > size:
            last = rows[size - 1]
            return out, page_token("dls", (last.last_ts or 0) if by_time else 0, last.name)
        return out, None

    # ---- events in
    def put_log_events(self, region: str, group: str, stream: str, events: Sequence[Event], *,
                       entity: object | None = None) -> PutResult:
        """sequenceToken is not taken at all: AWS ignores it now, and so does the face."""
        if entity is not None:
            raise not_implemented("entities of log events (the entity parameter)")
        g = self._group_row(region, check_group_name(group))
        s = self._stream_row(g, stream)
        now = self.clock()
        encoded = [e.message.encode("utf-8", "surrogatepass") for e in events]
        accepted = check_batch([(e.timestamp, len(m)) for e, m in zip(events, encoded, strict=True)],
                               now, g.retention)
        kept = [(events[i].timestamp, encoded[i]) for i in range(accepted.start, accepted.end)]
        next_seq = self.tables.append(s.id, kept, now)
        if next_seq is None:
            raise stream_not_found()
        return PutResult(sequence_token(s.id, next_seq), accepted)

    # ---- LogSink (control/logsink.py)
    def group_exists(self, region: str, group: str) -> bool:
        return self.tables.group(region, group) is not None

    def ensure_group(self, region: str, group: str) -> None:
        if self.tables.group(region, group) is None:
            check_new_group_name(group)
            self.tables.add_group(region, group, self.clock(), "STANDARD", {})

    def ensure_stream(self, region: str, group: str, stream: str) -> None:
        g = self._group_row(region, group)
        if self.tables.stream(g.id, check_stream_name(stream)) is None:
            if not self.tables.add_stream(g.id, stream, self.clock()) and \
                    self.tables.group(region, group) is None:
                raise group_not_found()

    def shipped(self, source: str) -> int:
        return self.tables.shipped(source)

    def ship(self, region: str, group: str, stream: str, events: Sequence[Event], source: str,
             offset: int) -> None:
        g = self._group_row(region, group)
        s = self._stream_row(g, stream)
        cutoff = self._cutoff(g)
        kept = [(e.timestamp, e.message.encode("utf-8", "surrogatepass")) for e in events
                if e.timestamp >= cutoff]
        if self.tables.append(s.id, kept, self.clock(), source, offset) is None:
            raise stream_not_found()

    def forget_source(self, source: str) -> None:
        self.tables.forget_source(source)

    # ---- events out
    def _ascending(self, metas: list[BlockMeta], select: _Select) -> Iterator[Row | int]:
        """The selected events in key order. Before each block it yields that block's
        earliest timestamp: every event before it has been yielded by then."""
        heap: list[Row] = []
        fetch = 4  # a short read needs few blocks; a long one reads more at a time
        i = 0
        while i < len(metas):
            chunk = metas[i:i + fetch]
            i += len(chunk)
            fetch = min(fetch * 2, _FETCH)
            payloads = self.tables.payloads(m.id for m in chunk)
            for meta in chunk:
                while heap and heap[0][0] < meta.min_ts:
                    yield heapq.heappop(heap)
                yield meta.min_ts
                found = payloads.get(meta.id)
                if found is not None:
                    for row in select.pick(meta, decode(found[1], found[0])):
                        heapq.heappush(heap, row)
        while heap:
            yield heapq.heappop(heap)

    def _descending(self, metas: list[BlockMeta], select: _Select) -> Iterator[Row]:
        """The selected events, latest first."""
        order = sorted(metas, key=lambda m: (m.max_ts, m.id), reverse=True)
        heap: list[tuple[tuple[int, int, int], Row]] = []
        fetch, i = 4, 0
        while i < len(order):
            chunk = order[i:i + fetch]
            i += len(chunk)
            fetch = min(fetch * 2, _FETCH)
            payloads = self.tables.payloads(m.id for m in chunk)
            for meta in chunk:
                while heap and -heap[0][0][0] > meta.max_ts:
                    yield heapq.heappop(heap)[1]
                found = payloads.get(meta.id)
                if found is not None:
                    for row in select.pick(meta, decode(found[1], found[0])):
                        heapq.heappush(heap, ((-row[0], -row[1], -row[2]), row))
        while heap:
            yield heapq.heappop(heap)[1]

    @staticmethod
    def _output(row: Row, names: dict[int, str]) -> OutputEvent:
        return OutputEvent(row[0], row[4].decode("utf-8", "surrogatepass"), row[3],
                           names.get(row[1], ""), row[1], row[2])

    def get_log_events(self, region: str, stream: str, *, group: str | None = None,
                       identifier: str | None = None, start: int | None = None,
                       end: int | None = None, token: str | None = None,
                       limit: int | None = None, from_head: bool = False) -> EventsPage:
        g = self._group_row(region, pick_group(group, identifier, region))
        s = self._stream_row(g, stream)
        size = check_limit(limit, MAX_EVENTS)
        lo = max(start or 0, self._cutoff(g))
        hi = end - 1 if end is not None else None
        given = read_event_token(token) if token is not None else None
        forward = given.forward if given is not None else from_head
        if given is not None and forward:
            lo = max(lo, given.ts)  # only the blocks from the position on
        elif given is not None:
            hi = given.ts if hi is None else min(hi, given.ts)
        if hi is not None and hi < lo:
            metas: list[BlockMeta] = []
        else:
            metas = self.tables.metas(sid=s.id, lo=lo, hi=hi)
        pos = (given.ts, s.id, given.seq) if given is not None else None
        select = _Select(lo, hi, after=pos if forward else None,
                         before=pos if not forward else None)
        rows: list[Row] = []
        budget = MAX_PAGE_BYTES
        source: Iterator[Row | int] = (self._ascending(metas, select) if forward
                                       else iter(self._descending(metas, select)))
        for item in source:
            if isinstance(item, int):
                continue
            budget -= len(item[4]) + EVENT_OVERHEAD
            if rows and budget < 0:
                break
            rows.append(item)
            if len(rows) >= size:
                break
        if not forward:
            rows.reverse()
        names = {s.id: s.name}
        events = [self._output(r, names) for r in rows]
        if rows:
            first, last = rows[0], rows[-1]
            return EventsPage(events, str(EventToken(True, last[0], last[2])),
                              str(EventToken(False, first[0], first[2])))
        if given is None:
            at = EventToken(True, lo, -1)
            return EventsPage([], str(at), str(EventToken(False, lo, -1)))
        if forward:  # the end: the same token back
            return EventsPage([], str(given), str(EventToken(False, given.ts, given.seq + 1)))
        return EventsPage([], str(EventToken(True, given.ts, max(-1, given.seq - 1))),
                          str(given))

    def filter_log_events(self, region: str, *, group: str | None = None,
                          identifier: str | None = None, streams: list[str] | None = None,
                          stream_prefix: str | None = None, start: int | None = None,
                          end: int | None = None, pattern: str | None = None,
                          limit: int | None = None, token: str | None = None) -> FilterPage:
        g = self._group_row(region, pick_group(group, identifier, region))
        if streams is not None and stream_prefix is not None:
            raise invalid("logStreamNames and logStreamNamePrefix are mutually exclusive: "
                          "specify one or the other.")
        size = check_limit(limit, MAX_EVENTS)
        matcher = parse_pattern(pattern) if pattern else None
        after: tuple[int, int, int] | None = None
        if token is not None:
            ts, sid, seq = read_page_token("fle", token, (int, int, int))
            after = (int(ts), int(sid), int(seq))
        names = self.tables.stream_names(g.id)
        if streams is not None:
            wanted = {check_stream_name(n, "logStreamNames") for n in streams}
            chosen = {sid for sid, name in names.items() if name in wanted}
        elif stream_prefix is not None:
            check_stream_name(stream_prefix, "logStreamNamePrefix")
            chosen = {sid for sid, name in names.items() if name.startswith(stream_prefix)}
        else:
            chosen = None
        lo = max(start or 0, self._cutoff(g), after[0] if after else 0)
        if end is not None and end < lo:
            return FilterPage([], None)
        metas = [m for m in self.tables.metas(gid=g.id, lo=lo, hi=end)
                 if (chosen is None or m.stream in chosen) and m.stream in names]
        select = _Select(lo, end, after=after, pattern=matcher)
        rows: list[Row] = []
        budget, scanned = MAX_PAGE_BYTES, 0
        for item in self._ascending(metas, select):
            if isinstance(item, int):
                scanned += 1
                if scanned > SCAN_BLOCKS and item > lo:
                    # Enough read for one call: every event before `item` has been handed.
                    events = [self._output(r, names) for r in rows]
                    return FilterPage(events, page_token("fle", item, -1, -1))
                continue
            budget -= len(item[4]) + EVENT_OVERHEAD
            if rows and budget < 0:
                break
            rows.append(item)
            if len(rows) >= size:
                break
        else:
            return FilterPage([self._output(r, names) for r in rows], None)
        last = rows[-1]
        return FilterPage([self._output(r, names) for r in rows],
                          page_token("fle", last[0], last[1], last[2]))

    # ---- retention
    def sweep(self) -> int:
        """Delete what is past each group's retention and what deleted groups and streams
        left; how many events went by retention."""
        gone = 0
        now = self.clock()
        for gid, days in self.tables.retained():
            cutoff = expiry_cutoff(now, days)
            if cutoff is None:
                continue
            while n := self.tables.expire(gid, cutoff):
                gone += n
        while self.tables.purge():
            pass
        return gone

    # ---- a bench's data
    def load_synthetic(self, region: str, group: str, count: int, *, streams: int = 4,
                       start_ms: int | None = None, step_ms: int = 1,
                       message: Callable[[int], str] = synthetic_message) -> None:
        """Create the group (and `streams` streams, s0, s1, …) and append `count` events,
        the i-th at start_ms + i * step_ms (default: ending now) with message(i), dealt to
        the streams in turn; no batch rules, full blocks, large transactions."""
        start = start_ms if start_ms is not None else self.clock() - count * step_ms
        self.ensure_group(region, group)
        g = self._group_row(region, group)
        ids = []
        for k in range(streams):
            self.ensure_stream(region, group, f"s{k}")
            ids.append(self._stream_row(g, f"s{k}").id)
        per = [(k, range(k, count, streams)) for k in range(streams)]
        ingest = self.clock()
        for k, indices in per:
            events = ((start + i * step_ms, message(i).encode()) for i in indices)
            self.tables.load(g.id, ids[k], events, ingest)


__all__ = ["CloudWatchLogs", "EventsPage", "FilterPage", "LogGroup", "LogStream",
           "OutputEvent", "PutResult", "synthetic_message"]
