"""CloudWatch Logs' rules, as the API reference states them: names of log groups and streams,
their ARNs, retention periods, tags, PutLogEvents' batch limits, and the page tokens the
faces hand out. Pure: the clock is passed in."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from .errors import ApiError
from .names import ACCOUNT

GROUP_NAME = re.compile(r"[\.\-_/#A-Za-z0-9]+")
GROUP_NAME_PATTERN = r"[\.\-_/#A-Za-z0-9]+"
MAX_NAME = 512
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                  2192, 2557, 2922, 3288, 3653)
GROUP_CLASSES = ("STANDARD", "INFREQUENT_ACCESS")  # DELIVERY is refused by name
MAX_GROUPS = 1_000_000  # per region per account
MAX_TAGS = 50
DESCRIBE_LIMIT = 50

# PutLogEvents (the API reference's constraints).
MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576  # UTF-8 messages plus EVENT_OVERHEAD each
EVENT_OVERHEAD = 26
MAX_EVENT_BYTES = MAX_BATCH_BYTES - EVENT_OVERHEAD  # "no larger than 1 MB", with its overhead
DAY_MS = 86_400_000
MAX_PAST_MS = 14 * DAY_MS
MAX_FUTURE_MS = 2 * 3_600_000
MAX_SPAN_MS = DAY_MS

# GetLogEvents and FilterLogEvents pages.
MAX_EVENTS = 10_000
MAX_PAGE_BYTES = 1_048_576

_TAG_TEXT = re.compile(r"[\w\s_.:/=+\-@]*")
_ARN = re.compile(r"arn:aws[a-z-]*:logs:([a-z0-9-]+):([0-9]{12}):log-group:([^:]+)(:\*)?")


def invalid(message: str) -> ApiError:
    return ApiError(message, code="InvalidParameterException")


def constraint(field: str, value: object, rule: str) -> ApiError:
    """AWS's wording for a member that breaks its model's constraint."""
    shown = str(value)
    shown = shown if len(shown) <= 100 else shown[:100] + "…"
    return invalid(f"1 validation error detected: Value '{shown}' at '{field}' failed to "
                   f"satisfy constraint: {rule}")


def group_not_found() -> ApiError:
    return ApiError("The specified log group does not exist.", code="ResourceNotFoundException")


def stream_not_found() -> ApiError:
    return ApiError("The specified log stream does not exist.", code="ResourceNotFoundException")


def group_exists() -> ApiError:
    return ApiError("The specified log group already exists",
                    code="ResourceAlreadyExistsException")


def stream_exists() -> ApiError:
    return ApiError("The specified log stream already exists",
                    code="ResourceAlreadyExistsException")


def not_implemented(what: str) -> ApiError:
    """What fargo refuses by name rather than accept and ignore."""
    return invalid(f"fargo does not implement {what}.")


def check_group_name(name: str, field: str = "logGroupName") -> str:
    if not 1 <= len(name) <= MAX_NAME:
        raise constraint(field, name, f"Member must have length between 1 and {MAX_NAME}")
    if not GROUP_NAME.fullmatch(name):
        raise constraint(field, name, "Member must satisfy regular expression pattern: "
                         + GROUP_NAME_PATTERN)
    return name


def check_new_group_name(name: str) -> str:
    check_group_name(name)
    if name.startswith("aws/"):
        raise invalid("Log group names can't start with the string aws/ (reserved for AWS).")
    return name


def check_stream_name(name: str, field: str = "logStreamName") -> str:
    if not 1 <= len(name) <= MAX_NAME:
        raise constraint(field, name, f"Member must have length between 1 and {MAX_NAME}")
    if ":" in name or "*" in name:
        raise constraint(field, name, "Member must satisfy regular expression pattern: [^:*]*")
    return name


def group_arn(region: str, name: str) -> str:
    """The ARN without the trailing `:*` (logGroupArn; the tagging APIs take it)."""
    return f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{name}"


def stream_arn(region: str, group: str, stream: str) -> str:
    return f"{group_arn(region, group)}:log-stream:{stream}"


def group_of_arn(arn: str, region: str) -> str | None:
    """The log group an ARN of this region and account names (`:*` or not), else None."""
    m = _ARN.fullmatch(arn)
    if not m or (m.group(1), m.group(2)) != (region, ACCOUNT):
        return None
    return m.group(3) if GROUP_NAME.fullmatch(m.group(3)) else None


def group_of_identifier(identifier: str, region: str) -> str:
    """logGroupIdentifier: a name, or a log group's ARN. An ARN of another region or account
    names no group here."""
    if identifier.startswith("arn:"):
        name = group_of_arn(identifier, region)
        if name is None:
            raise group_not_found()
        return name
    return check_group_name(identifier, "logGroupIdentifier")


def pick_group(name: str | None, identifier: str | None, region: str) -> str:
    """Exactly one of logGroupName and logGroupIdentifier."""
    if name is not None and identifier is not None:
        raise invalid("LogGroup name and LogGroup identifier are mutually exclusive "
                      "parameters.")
    if identifier is not None:
        return group_of_identifier(identifier, region)
    if name is None:
        raise invalid("Either logGroupName or logGroupIdentifier must be specified.")
    return check_group_name(name)


def check_retention(days: int) -> int:
    if days not in RETENTION_DAYS:
        raise constraint("retentionInDays", days, "Member must satisfy enum value set: "
                         f"[{', '.join(map(str, RETENTION_DAYS))}]")
    return days


def check_tags(tags: dict[str, str], existing: dict[str, str] | None = None) -> dict[str, str]:
    """Keys 1-128 and values up to 256 of letters, digits, spaces and _.:/=+-@; no aws:
    keys; 50 in all with those already there."""
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or not _TAG_TEXT.fullmatch(key):
            raise constraint(f"tags.{key[:128]}.key", key, "Member must satisfy regular "
                             r"expression pattern: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]+)$")
        if len(value) > 256 or not _TAG_TEXT.fullmatch(value):
            raise constraint(f"tags.{key[:128]}.value", value, "Member must satisfy regular "
                             r"expression pattern: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$")
        if key.lower().startswith("aws:"):
            raise invalid(f"Tag keys beginning with 'aws:' are reserved: {key[:128]}")
    merged = {**(existing or {}), **tags}
    if len(merged) > MAX_TAGS:
        raise ApiError(f"A log group may have at most {MAX_TAGS} tags.",
                       code="TooManyTagsException")
    return merged


def check_limit(limit: int | None, most: int, field: str = "limit") -> int:
    if limit is None:
        return most
    if not 1 <= limit <= most:
        raise constraint(field, limit, f"Member must have value between 1 and {most}")
    return limit


# ---- PutLogEvents' batch


@dataclass(frozen=True)
class Accepted:
    """Which events of a batch are stored: indices [start, end); the rest are reported as
    rejectedLogEventsInfo (the *_end indices exclusive, too_new_start inclusive)."""

    start: int
    end: int
    too_old_end: int | None = None
    expired_end: int | None = None
    too_new_start: int | None = None


def event_bytes(message: str) -> int:
    return len(message.encode("utf-8", "surrogatepass")) + EVENT_OVERHEAD


def check_batch(events: Sequence[tuple[int, int]], now_ms: int,
                retention_days: int | None) -> Accepted:
    """events: (timestamp, UTF-8 size of the message) in the order given. InvalidParameter
    for what fails the whole call; the too old, expired and too new ones are left out."""
    if not 1 <= len(events) <= MAX_BATCH_EVENTS:
        raise constraint("logEvents", len(events), f"Member must have length between 1 and "
                         f"{MAX_BATCH_EVENTS}")
    total = 0
    for _, size in events:
        if size + EVENT_OVERHEAD > MAX_BATCH_BYTES:
            raise invalid(f"Log event too large: {size + EVENT_OVERHEAD} bytes exceeds limit "
                          f"of {MAX_BATCH_BYTES}")
        total += size + EVENT_OVERHEAD
    if total > MAX_BATCH_BYTES:
        raise invalid(f"Upload too large: {total} bytes exceeds limit of {MAX_BATCH_BYTES}")
    for (a, _), (b, _) in zip(events, events[1:], strict=False):
        if b < a:
            raise invalid("Log events in a single PutLogEvents request must be in "
                          "chronological order.")
    too_old = sum(1 for ts, _ in events if ts < now_ms - MAX_PAST_MS)
    cutoff = expiry_cutoff(now_ms, retention_days)
    expired = sum(1 for ts, _ in events if ts < cutoff) if cutoff is not None else 0
    too_new = sum(1 for ts, _ in events if ts > now_ms + MAX_FUTURE_MS)
    start, end = max(too_old, expired), len(events) - too_new
    if start < end and events[end - 1][0] - events[start][0] > MAX_SPAN_MS:
        raise invalid("The batch of log events in a single PutLogEvents request cannot span "
                      "more than 24 hours.")
    return Accepted(start=start, end=max(start, end), too_old_end=too_old or None,
                    expired_end=expired or None,
                    too_new_start=len(events) - too_new if too_new else None)


def expiry_cutoff(now_ms: int, retention_days: int | None) -> int | None:
    """Events with a timestamp before this are past the group's retention."""
    return None if retention_days is None else now_ms - retention_days * DAY_MS


# ---- tokens: opaque to clients, checked strictly when they come back

BAD_TOKEN = "The specified nextToken is invalid."


def page_token(kind: str, *parts: str | int) -> str:
    """A listing's nextToken: where the next page starts, tagged with what it pages."""
    return base64.urlsafe_b64encode(orjson.dumps([kind, *parts])).decode().rstrip("=")


def read_page_token(kind: str, token: str, shape: tuple[type, ...]) -> tuple:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise invalid(BAD_TOKEN) from None
    if (not isinstance(doc, list) or len(doc) != len(shape) + 1 or doc[0] != kind
            or not all(type(v) is t for v, t in zip(doc[1:], shape, strict=True))
            or page_token(kind, *doc[1:]) != token):
        raise invalid(BAD_TOKEN)
    return tuple(doc[1:])


# GetLogEvents' tokens: a direction and a position (timestamp, sequence number) in the stream;
# "f/…" reads the events after it, "b/…" those before. The same token back means the end.
_EVENT_TOKEN = re.compile(r"([fb])/([0-9]{20})([0-9]{20})/s")


@dataclass(frozen=True)
class EventToken:
    forward: bool
    ts: int
    seq: int  # -1: before every event of that timestamp

    def __str__(self) -> str:
        return f"{'f' if self.forward else 'b'}/{self.ts:020d}{self.seq + 1:020d}/s"


def read_event_token(token: str) -> EventToken:
    m = _EVENT_TOKEN.fullmatch(token)
    if not m:
        raise invalid(BAD_TOKEN)
    return EventToken(m.group(1) == "f", int(m.group(2)), int(m.group(3)) - 1)


def event_id(ts: int, stream_id: int, seq: int) -> str:
    """A stable 56-digit eventId (`aws logs tail --follow` tells repeats apart by it)."""
    return f"{ts:020d}{stream_id:016d}{seq:020d}"


def sequence_token(stream_id: int, next_seq: int) -> str:
    """uploadSequenceToken and nextSequenceToken: still handed out, ignored when sent back."""
    return f"{stream_id:028d}{next_seq:028d}"
