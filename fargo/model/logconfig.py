"""Containers' log routes to CloudWatch Logs: the awslogs driver's options as a task definition
gives them (what Fargate requires, what fargo runs, what it refuses by name), the route each
container's output takes, and how a container's k8s-file log becomes CloudWatch events.

User-given patterns (awslogs-multiline-pattern, the regex awslogs-datetime-format becomes, the
EKS log router's grep and parser regexes) are compiled with RE2, the engine behind Docker's Go
regexp that the awslogs driver uses: the same syntax, and matching in time linear in the
line, so no pattern can make a line take exponential time (backreferences and lookarounds,
which need backtracking, are refused at compile time as Go refuses them)."""

from __future__ import annotations

import calendar
import datetime
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import re2

from .errors import ClientException

FARGATE_DRIVERS = ("awslogs", "splunk", "awsfirelens")
# The awslogs options fargo runs as Docker's awslogs driver (under ECS's agent) runs them.
AWSLOGS_OPTIONS = frozenset({
    "awslogs-group", "awslogs-region", "awslogs-stream-prefix", "awslogs-create-group",
    "awslogs-datetime-format", "awslogs-multiline-pattern", "mode", "max-buffer-size",
})
# Options Docker's driver knows that fargo does not run: refused by name.
AWSLOGS_NOT_RUN = frozenset({
    "awslogs-endpoint", "awslogs-credentials-endpoint", "awslogs-stream", "awslogs-create-stream",
    "awslogs-force-flush-interval-seconds", "awslogs-max-buffered-events", "awslogs-format",
    "tag", "env", "env-regex", "labels", "labels-regex",
})
_BOOL = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
         "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kKmMgGtTpP]?)[iI]?[bB]?$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")

MAX_EVENT = 262_144 - 26  # bytes of one event's message, as Docker's awslogs driver cuts them
EVENT_OVERHEAD = 26  # bytes PutLogEvents counts per event besides its message
MAX_BATCH_BYTES = 1_048_576
MAX_BATCH_EVENTS = 10_000
MAX_BATCH_SPAN_MS = 24 * 3600 * 1000
IDLE_MS = 2000  # an unfinished event (multiline, or a line without its end) goes after this idle
HOLD_MS = 5000  # ... or once this old, as Docker's driver flushes its buffer


def _fail(msg: str) -> None:
    raise ClientException(msg)


def compile_pattern(pattern: str) -> Any:
    """An RE2 regex (an re2 module object); re2.error (text in its args) when it does not
    compile. Matching runs over a line's raw UTF-8 bytes."""
    options = re2.Options()
    options.log_errors = False  # errors come back as exceptions, not on the server's stderr
    options.max_mem = 8 << 20
    return re2.compile(pattern, options)


def _re2_error(err: Exception) -> str:
    arg = err.args[0] if err.args else err
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


# strftime directives awslogs-datetime-format may use, as the regex each one stands for (the
# rest of the format is regex text itself, as Docker reads it: `\[` for a bracket).
_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_MONTHS = ("January February March April May June July August September October November "
           "December").split()
STRFTIME = {
    "a": "(?:" + "|".join(d[:3] for d in _DAYS) + ")",
    "A": "(?:" + "|".join(_DAYS) + ")",
    "w": "[0-6]",
    "d": "(?:0[1-9]|[12][0-9]|3[01])",
    "b": "(?:" + "|".join(m[:3] for m in _MONTHS) + ")",
    "B": "(?:" + "|".join(_MONTHS) + ")",
    "m": "(?:0[1-9]|1[0-2])",
    "Y": r"\d{4}",
    "y": r"\d{2}",
    "H": "(?:[01][0-9]|2[0-3])",
    "I": "(?:0[0-9]|1[0-2])",
    "p": "[AP]M",
    "M": "[0-5][0-9]",
    "S": "[0-5][0-9]",
    "f": r"\d{6}",
    "L": r"\.\d{3}",
    "z": r"[+-]\d{4}",
    "Z": "[A-Z]{1,4}T",
    "j": "(?:00[1-9]|0[1-9][0-9]|[12][0-9][0-9]|3[0-5][0-9]|36[0-6])",
    "%": "%",
}


def strftime_regex(fmt: str) -> str:
    """awslogs-datetime-format as the regex a new event's first line starts with. An unknown
    directive stays as it is written, as Docker leaves it."""
    out: list[str] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%" and i + 1 < len(fmt) and fmt[i + 1] in STRFTIME:
            out.append(STRFTIME[fmt[i + 1]])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "^" + "".join(out)


# ---- task definitions
def check_fargate_logging(c: dict[str, Any], td: dict[str, Any]) -> None:
    """Fargate's own rules for a container's logConfiguration (ClientException, AWS's words)."""
    conf = c.get("logConfiguration")
    if not conf:
        return
    driver = conf.get("logDriver")
    if driver not in FARGATE_DRIVERS:
        _fail(f"Container '{c.get('name')}': log driver {driver} is not supported on Fargate; "
              "Fargate supports the log drivers awslogs, splunk and awsfirelens.")
    if driver == "awslogs":
        if not (conf.get("options") or {}).get("awslogs-stream-prefix"):
            _fail("Fargate requires log configuration options to include awslogs-stream-prefix "
                  "to support log driver awslogs.")
        if not td.get("executionRoleArn"):
            _fail("Fargate requires task definition to have execution role ARN to support log "
                  "driver awslogs.")


def check_log_configuration(c: dict[str, Any]) -> None:
    """What fargo runs of a logConfiguration: the awslogs driver and its options; anything
    else is refused by name, and the options are checked as Docker's driver checks them."""
    conf = c.get("logConfiguration")
    if not conf:
        return
    name = str(c.get("name"))[:255]
    where = f"Container '{name}':"
    driver = conf.get("logDriver")
    if conf.get("secretOptions"):
        _fail(f"{where} the 'logConfiguration.secretOptions' parameter is not supported by "
              "fargo.")
    if driver != "awslogs":
        _fail(f"{where} the log driver '{driver}' is not supported by fargo (it runs awslogs).")
    opts: dict[str, str] = conf.get("options") or {}
    for key in opts:
        if key in AWSLOGS_NOT_RUN:
            _fail(f"{where} the awslogs option '{key}' is not supported by fargo.")
        if key not in AWSLOGS_OPTIONS:
            _fail(f"{where} unknown log opt '{key}' for awslogs log driver.")
    if not opts.get("awslogs-group"):
        _fail(f"{where} must specify a value for log opt 'awslogs-group'.")
    region = opts.get("awslogs-region")
    if region is not None and not _REGION.match(region):
        _fail(f"{where} awslogs-region '{region[:64]}' is not a region name.")
    create = opts.get("awslogs-create-group")
    if create is not None and create not in _BOOL:
        _fail(f"{where} must specify valid value for log opt 'awslogs-create-group': "
              f"'{create[:64]}' is not a boolean (true or false).")
    if "awslogs-datetime-format" in opts and "awslogs-multiline-pattern" in opts:
        _fail(f"{where} you cannot configure log opt 'awslogs-datetime-format' and "
              "'awslogs-multiline-pattern' at the same time.")
    for key in ("awslogs-datetime-format", "awslogs-multiline-pattern"):
        if key in opts:
            value = opts[key]
            text = strftime_regex(value) if key == "awslogs-datetime-format" else value
            if not value:
                _fail(f"{where} log opt '{key}' must not be empty.")
            try:
                compile_pattern(text)
            except re2.error as err:
                _fail(f"{where} log opt '{key}' is not a valid regular expression (RE2 "
                      f"syntax, as Docker's Go regexp reads it): {_re2_error(err)}.")
    mode = opts.get("mode")
    if mode not in (None, "blocking", "non-blocking"):
        _fail(f"{where} log opt 'mode' must be blocking or non-blocking, not '{mode[:64]}'.")
    size = opts.get("max-buffer-size")
    if size is not None:
        if mode != "non-blocking":
            _fail(f"{where} log opt 'max-buffer-size' is only supported with 'mode' "
                  "non-blocking.")
        if parse_size(size) is None:
            _fail(f"{where} log opt 'max-buffer-size' '{size[:64]}' is not a size (such as "
                  "25m).")


def parse_size(text: str) -> int | None:
    """A size as Docker reads one ("4m", "25MiB", "1.5g"), in bytes; None if it is none."""
    m = _SIZE.match(text.strip())
    if not m:
        return None
    scale = 1024 ** " kmgtp".index(m.group(2).lower() or " ")
    value = int(float(m.group(1)) * scale)
    return value if value > 0 else None


# ---- routes
@dataclass
class FilterStep:
    """One of the EKS log router's [FILTER]s that applies to a container, in order:
    grep (keep records whose `key` matches), exclude (drop them), or parser (parse `key`)."""

    kind: str  # grep | exclude | parser
    key: str
    pattern: str = ""  # RE2; a parser's named groups become the record's keys
    format: str = "regex"  # parser: regex | json
    time_key: str | None = None
    time_format: str | None = None
    time_keep: bool = False
    reserve_data: bool = False
    preserve_key: bool = False


@dataclass
class LogRoute:
    """Where one container's output goes, fixed when its task starts."""

    container: str
    source: str  # the sink's key for how far this route has read ("TASKID/CONTAINER")
    region: str
    group: str
    stream: str
    create_group: bool = False
    # awslogs: a line matching it starts a new event (multiline pattern, or the datetime
    # format's regex); None: every line is an event.
    start_pattern: str | None = None
    # EKS's log router (Fluent Bit): every k8s-file line is a record {"log": LINE}, filtered,
    # then sent whole as JSON, or only its log_key.
    router: bool = False
    filters: list[FilterStep] = field(default_factory=list)
    log_key: str | None = None


def ecs_routes(task_id: str, region: str, plan: list[dict[str, Any]]) -> list[LogRoute]:
    """The awslogs routes of a task's containers (checked at registration)."""
    routes = []
    for cdef in plan:
        conf = cdef.get("logConfiguration") or {}
        if conf.get("logDriver") != "awslogs":
            continue
        opts = conf.get("options") or {}
        start = None
        if opts.get("awslogs-multiline-pattern"):
            start = opts["awslogs-multiline-pattern"]
        elif opts.get("awslogs-datetime-format"):
            start = strftime_regex(opts["awslogs-datetime-format"])
        name = cdef["name"]
        routes.append(LogRoute(
            container=name, source=f"{task_id}/{name}",
            region=opts.get("awslogs-region") or region, group=opts["awslogs-group"],
            stream=f"{opts.get('awslogs-stream-prefix')}/{name}/{task_id}",
            create_group=_BOOL.get(opts.get("awslogs-create-group", "false"), False),
            start_pattern=start))
    return routes


# ---- k8s-file lines to events
@dataclass
class Cut:
    """The events a run of a container's log holds, in file order."""

    stamps: list[int] = field(default_factory=list)  # ms since the epoch
    messages: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # UTF-8 bytes of each message
    ends: list[int] = field(default_factory=list)  # offset just after each one's last line
    # Every line before `done` is in an event above; from `done` on, nothing is (a held,
    # unfinished event starts there): the offset to resume at, after a restart too.
    done: int = 0


class Stamps:
    """conmon's RFC 3339 timestamps (`2024-01-02T03:04:05.123456789+00:00`) in ms, the
    calendar work done once per second."""

    def __init__(self) -> None:
        self._key = b""
        self._base = 0

    def ms(self, ts: bytes) -> int:
        rest = ts[19:]
        frac = b""
        if rest[:1] == b".":
            cut = 1
            while cut < len(rest) and 48 <= rest[cut] <= 57:
                cut += 1
            frac, rest = rest[1:cut][:3].ljust(3, b"0"), rest[cut:]
        key = ts[:19] + rest  # the second and the zone
        if key != self._key:
            self._base = _second_ms(ts[:19], rest)
            self._key = key
        return self._base + (int(frac) if frac else 0)


def _second_ms(key: bytes, zone: bytes) -> int:
    try:
        t = (int(key[0:4]), int(key[5:7]), int(key[8:10]), int(key[11:13]), int(key[14:16]),
             int(key[17:19]), 0, 0, 0)
        secs = calendar.timegm(t)
        if zone and zone[:1] in (b"+", b"-"):
            off = int(zone[1:3]) * 3600 + int(zone[4:6] or b"0") * 60
            secs -= off if zone[:1] == b"+" else -off
    except ValueError:
        return 0
    return secs * 1000


def _text(raw: bytes) -> tuple[str, int]:
    try:
        return raw.decode(), len(raw)
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        return text, len(text.encode())


def _utf8_cut(raw: bytes, limit: int) -> int:
    """The largest cut at or below limit that does not split a UTF-8 character."""
    cut = min(limit, len(raw))
    while 0 < cut < len(raw) and (raw[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut or limit


class Grouper:
    """One awslogs route's reading of k8s-file lines: partial lines (P) joined with the rest
    of their line, events cut at the start pattern's lines when there is one (each line
    followed by a newline, as Docker's driver joins them), at most MAX_EVENT bytes each."""

    def __init__(self, start_pattern: str | None):
        self.start = compile_pattern(start_pattern) if start_pattern else None
        self.stamps = Stamps()

    def cut(self, data: bytes, base: int, now_ms: int, final: bool) -> Cut:
        """The events of data, the log's bytes from offset base (whole lines only, unless
        final: the writer has ended and data runs to the end of the log)."""
        out = Cut(done=base)
        end = data.rfind(b"\n") + 1
        lines = data[:end].split(b"\n")
        lines.pop()
        if final and end < len(data):
            lines.append(data[end:])
        pattern: Any = self.start
        grouping = pattern is not None
        stamps, messages, sizes, ends = out.stamps, out.messages, out.sizes, out.ends
        stamp = self.stamps.ms
        push_stamp, push_message = stamps.append, messages.append
        push_size, push_end = sizes.append, ends.append
        off = base
        chain: list[Any] | None = None  # an unfinished line: [stream, ms, parts, size, start, last ms]
        held: list[Any] | None = None  # grouping: [ms, parts, size, start, last ms, end]
        key, key_ms = b"", 0

        def line_done(ms: int, raw: bytes, start: int, stop: int) -> None:
            nonlocal held
            if not grouping:
                if raw:
                    text, size = _text(raw[:_utf8_cut(raw, MAX_EVENT)])
                    stamps.append(ms)
                    messages.append(text)
                    sizes.append(size)
                    ends.append(stop)
                return
            if held is not None and (pattern.search(raw) is not None
                                     or held[2] + len(raw) + 1 > MAX_EVENT):
                self._emit_held(out, held)
                held = None
            if held is None:
                held = [ms, [], 0, start, ms, stop]
            piece = raw[:_utf8_cut(raw, MAX_EVENT - 1)]
            held[1].append(piece)
            held[2] += len(piece) + 1
            held[4], held[5] = ms, stop

        for line in lines:
            nxt = off + len(line) + 1
            parts = line.split(b" ", 3)
            if len(parts) >= 3:
                ts = parts[0]
                if len(ts) == 35 and ts[:19] == key:  # the same second as the line before
                    ms = key_ms + int(ts[20:23])
                else:
                    ms = stamp(ts)
                    key, key_ms = ts[:19], ms - (int(ts[20:23]) if len(ts) == 35 else 0)
                stream, partial = parts[1], parts[2][:1] == b"P"
                msg = parts[3] if len(parts) == 4 else b""
                if chain is None and not partial and not grouping and len(msg) <= MAX_EVENT:
                    # The common line: whole, an event of its own.
                    if msg:
                        try:
                            push_message(msg.decode())
                            push_size(len(msg))
                        except UnicodeDecodeError:
                            text, size = _text(msg)
                            push_message(text)
                            push_size(size)
                        push_stamp(ms)
                        push_end(nxt)
                    off = nxt
                    continue
            else:  # not conmon's shape: a whole line of its own, in the time of the last
                ms = stamps[-1] if stamps else now_ms
                stream, partial, msg = b"?", False, line
            if chain is not None and (chain[0] != stream or chain[3] + len(msg) > MAX_EVENT):
                # Another stream's line (or the limit) ends it: lines stay whole in the file.
                line_done(chain[1], b"".join(chain[2]), chain[4], off)
                chain = None
            if chain is None:
                if partial:
                    chain = [stream, ms, [msg], len(msg), off, ms]
                else:
                    line_done(ms, msg, off, nxt)
            else:
                chain[2].append(msg)
                chain[3] += len(msg)
                chain[5] = ms
                if not partial:
                    line_done(chain[1], b"".join(chain[2]), chain[4], nxt)
                    chain = None
            off = nxt
        if chain is not None and (final or now_ms - chain[5] >= IDLE_MS
                                  or now_ms - chain[1] >= HOLD_MS):
            line_done(chain[1], b"".join(chain[2]), chain[4], off)
            chain = None
        if held is not None and chain is None and (
                final or now_ms - held[4] >= IDLE_MS or now_ms - held[0] >= HOLD_MS):
            self._emit_held(out, held)
            held = None
        if held is not None:
            out.done = held[3]
        elif chain is not None:
            out.done = chain[4]
        else:
            out.done = off
        return out

    @staticmethod
    def _emit_held(out: Cut, held: list[Any]) -> None:
        raw = b"\n".join(held[1]) + b"\n"
        text, size = _text(raw)
        out.stamps.append(held[0])
        out.messages.append(text)
        out.sizes.append(size)
        out.ends.append(held[5])


def batches(cut: Cut) -> list[tuple[int, int, int]]:
    """Cut's events in PutLogEvents batches: (first, past-last, offset after the batch); the
    last batch's offset is cut.done (lines that made no event are passed over with it)."""
    out: list[tuple[int, int, int]] = []
    n = len(cut.stamps)
    sizes, stamps = cut.sizes, cut.stamps
    i = 0
    while i < n:
        j = min(n, i + MAX_BATCH_EVENTS)
        if sum(sizes[i:j]) + EVENT_OVERHEAD * (j - i) > MAX_BATCH_BYTES:
            total, j = 0, i
            while j < n and total + sizes[j] + EVENT_OVERHEAD <= MAX_BATCH_BYTES:
                total += sizes[j] + EVENT_OVERHEAD
                j += 1
            j = max(j, i + 1)
        window = stamps[i:j]
        if max(window) - min(window) > MAX_BATCH_SPAN_MS:  # rare: find where it spans a day
            lo = hi = stamps[i]
            k = i + 1
            while k < j:
                lo, hi = min(lo, stamps[k]), max(hi, stamps[k])
                if hi - lo > MAX_BATCH_SPAN_MS:
                    break
                k += 1
            j = k
        out.append((i, j, cut.ends[j - 1]))
        i = j
    if out:
        out[-1] = (out[-1][0], n, cut.done)
    else:
        out.append((0, 0, cut.done))
    return out


# ---- EKS's log router: records and their message
def router_message(line: bytes, ms: int, route: LogRoute,
                   compiled: Callable[[str], Any]) -> tuple[int, str] | None:
    """One k8s-file line through an EKS route's filters: (timestamp, message), or None when
    a filter drops it (or its log_key is missing, as Fluent Bit's cloudwatch_logs drops)."""
    record: dict[str, Any] = {"log": line.decode("utf-8", "replace")}
    for step in route.filters:
        value = record.get(step.key)
        if step.kind in ("grep", "exclude"):
            hit = isinstance(value, str) and compiled(step.pattern).search(value) is not None
            if hit == (step.kind == "exclude"):
                return None
            continue
        if not isinstance(value, str):
            continue
        parsed = _parse_value(value, step, compiled)
        if parsed is None:
            continue  # Fluent Bit keeps a record its parser does not match as it was
        if step.time_key and step.time_key in parsed:
            at = _parse_time(str(parsed[step.time_key]), step.time_format)
            if at is not None:
                ms = at
            if not step.time_keep:
                parsed.pop(step.time_key)
        new = dict(record) if step.reserve_data else {}
        if not step.preserve_key:
            new.pop(step.key, None)
        elif not step.reserve_data:
            new[step.key] = value
        new.update(parsed)
        record = new
    if route.log_key is not None:
        if route.log_key not in record:
            return None
        value = record[route.log_key]
        text = value if isinstance(value, str) else _json(value)
    else:
        text = _json(record)
    return (ms, text) if text else None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _parse_value(value: str, step: FilterStep, compiled: Callable[[str], Any]
                 ) -> dict[str, Any] | None:
    if step.format == "json":
        try:
            doc = json.loads(value)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None
    pattern = compiled(step.pattern)
    m = pattern.search(value)
    if m is None:
        return None
    # The record's keys in the order of their groups, as Fluent Bit's regex parser adds them.
    named = sorted(pattern.groupindex.items(), key=lambda item: item[1])
    return {k: m.group(i) for k, i in named if m.group(i) is not None}


def _parse_time(text: str, fmt: str | None) -> int | None:
    """A parser's Time_Key value in ms by its Time_Format (%L: the fraction of a second)."""
    if not fmt:
        return None
    if "%L" in fmt:  # strptime's %f takes at most 6 digits
        fmt = fmt.replace("%L", "%f")
        text = re.sub(r"\.(\d{6})\d+", r".\1", text, count=1)
    try:
        at = datetime.datetime.strptime(text, fmt)
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=datetime.UTC)
    return (at - _EPOCH) // datetime.timedelta(milliseconds=1)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class Router:
    """One EKS log router route's reading of k8s-file lines: every line a record (Fargate's
    tail input joins no partial lines), through the route's filters to its message."""

    def __init__(self, route: LogRoute):
        self.route = route
        self.stamps = Stamps()
        self._patterns: dict[str, Any] = {}

    def _compiled(self, pattern: str) -> Any:
        found = self._patterns.get(pattern)
        if found is None:
            found = self._patterns[pattern] = compile_pattern(pattern)
        return found

    def cut(self, data: bytes, base: int, now_ms: int, final: bool) -> Cut:
        out = Cut(done=base)
        end = data.rfind(b"\n") + 1
        lines = data[:end].split(b"\n")
        lines.pop()
        if final and end < len(data):
            lines.append(data[end:])
        off = base
        for line in lines:
            off += len(line) + 1
            ts = line[:line.find(b" ")] if b" " in line else b""
            ms = self.stamps.ms(ts) if len(ts) >= 19 else now_ms
            got = router_message(line, ms, self.route, self._compiled)
            if got is None:
                continue
            text = got[1]
            size = len(text.encode())
            if size > MAX_EVENT:
                raw = text.encode()
                text = raw[:_utf8_cut(raw, MAX_EVENT)].decode("utf-8", "replace")
                size = len(text.encode())
            out.stamps.append(got[0])
            out.messages.append(text)
            out.sizes.append(size)
            out.ends.append(min(off, base + len(data)))
        out.done = min(off, base + len(data))
        return out
