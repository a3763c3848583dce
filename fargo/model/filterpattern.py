"""CloudWatch Logs' filter pattern syntax, parsed and matched without regular expressions: a
pattern is the user's text, and nothing of it is compiled into a backtracking matcher.

- terms: `ERROR Exception` (each must appear, case-sensitive substrings), `"quoted phrase"`,
  `?ERROR ?WARN` (at least one of them), `-DEBUG` (none of them);
- JSON: `{ $.level = "error" && ($.latency > 100 || $.user.id = 7) }`, selectors `$.a.b` and
  `$.a[0]`, `= != < <= > >=`, `*` wildcards in string values, `IS TRUE|FALSE|NULL`,
  `EXISTS`, `NOT EXISTS`;
- space-delimited: `[ip, user, ..., status = 404 || status = 410, bytes > 1000]` (one `...`).

- regular expressions between `%`: a whole pattern (`%ERR[A-Z]+%`) or a value in a JSON or
  space-delimited one (`{ $.msg = %time.?out% }`), in AWS's subset (no parentheses, ASCII),
  at most two in a pattern.

Parsing is a linear scan with nesting bounded by MAX_DEPTH; matching is substring search, a
`*`-only glob whose leftmost-first search is linear, and RE2 (a regex never backtracks).
What fargo does not parse (several `...`) is refused by name. Every refusal is a
FilterPatternError."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import re2

from .errors import ApiError

MAX_LENGTH = 1024
MAX_DEPTH = 16
MAX_REGEXES = 2  # in a JSON or space-delimited pattern
# AWS's regex subset: letters, digits, these symbols and these operators; no ( ).
_REGEX_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                   "_#=@/;,:-" "^$?[]{}|\\*+.")
_OPS = ("=", "!=", "<", "<=", ">", ">=")


class FilterPatternError(ApiError):
    code = "InvalidParameterException"

    def __init__(self, reason: str):
        super().__init__(f"Invalid filter pattern: {reason}")


class Pattern:
    """A parsed pattern. `required`: byte strings every matching message contains (a block
    of events that lacks one holds no match); `terms_only`: matching is exactly that."""

    required: tuple[bytes, ...] = ()
    terms_only = False

    def match(self, message: bytes) -> bool:
        return True

    def matches(self, message: str) -> bool:
        return self.match(message.encode("utf-8", "surrogatepass"))


class MatchAll(Pattern):
    pass


@dataclass
class Terms(Pattern):
    every: tuple[bytes, ...] = ()
    any_of: tuple[bytes, ...] = ()
    none_of: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        self.required = self.every
        self.terms_only = bool(self.every) and not self.any_of and not self.none_of

    def match(self, message: bytes) -> bool:
        return (all(t in message for t in self.every)
                and (not self.any_of or any(t in message for t in self.any_of))
                and not any(t in message for t in self.none_of))


def parse(text: str) -> Pattern:
    """The pattern of a FilterLogEvents' filterPattern; FilterPatternError if malformed."""
    if len(text) > MAX_LENGTH:
        raise FilterPatternError(f"longer than {MAX_LENGTH} characters")
    body = text.strip()
    if not body:
        return MatchAll()
    if body.startswith("{"):
        return _JsonParser(body).parse()
    if body.startswith("["):
        return _DelimitedParser(body).parse()
    if body.startswith("%"):
        if len(body) < 3 or not body.endswith("%") or "%" in body[1:-1]:
            raise FilterPatternError("a regular expression is written between two %")
        return Regex(regex=compile_regex(body[1:-1]))
    return _parse_terms(body)


def compile_regex(text: str) -> Any:
    """An RE2 regex of AWS's subset, searched over a message's UTF-8 bytes."""
    bad = sorted(set(text) - _REGEX_CHARS)
    if not text or bad:
        raise FilterPatternError("a regular expression may hold letters, digits, _#=@/;,:- "
                                 "and the operators ^$?[]{}|\\*+. only"
                                 + (f", not {''.join(bad)[:20]!r}" if bad else ""))
    options = re2.Options()
    options.log_errors = False
    options.max_mem = 8 << 20
    try:
        return re2.compile(text.encode("ascii"), options)
    except re2.error as err:
        arg = err.args[0] if err.args else err
        why = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
        raise FilterPatternError(f"regular expression: {why[:200]}") from None


@dataclass
class Regex(Pattern):
    regex: Any = None

    def match(self, message: bytes) -> bool:
        return self.regex.search(message) is not None


def _utf8(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def _quoted(text: str, i: int) -> tuple[str, int]:
    """The string of a "quoted" token starting at text[i] == '"', and the index after it.
    `\\"` and `\\\\` are escapes; any other backslash is kept as written."""
    out: list[str] = []
    j = i + 1
    while j < len(text):
        ch = text[j]
        if ch == "\\" and j + 1 < len(text) and text[j + 1] in '"\\':
            out.append(text[j + 1])
            j += 2
            continue
        if ch == '"':
            return "".join(out), j + 1
        out.append(ch)
        j += 1
    raise FilterPatternError("unterminated quoted string")


def _parse_terms(text: str) -> Terms:
    every: list[bytes] = []
    any_of: list[bytes] = []
    none_of: list[bytes] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        kind = ""
        if text[i] in "?-":
            kind = text[i]
            i += 1
        if i < len(text) and text[i] == '"':
            term, i = _quoted(text, i)
            if i < len(text) and not text[i].isspace():
                raise FilterPatternError("a quoted term must be followed by a space")
        else:
            j = i
            while j < len(text) and not text[j].isspace():
                if text[j] == '"':
                    raise FilterPatternError("a quotation mark inside a term: quote the "
                                             "whole term")
                j += 1
            term, i = text[i:j], j
        if not term:
            raise FilterPatternError("an empty term")
        {"": every, "?": any_of, "-": none_of}[kind].append(_utf8(term))
    return Terms(tuple(every), tuple(any_of), tuple(none_of))


def glob_match(pattern: str, value: str) -> bool:
    """`*` matches any run of characters; nothing else is special. Leftmost-first search of
    each piece between stars: linear, no backtracking needed for `*`-only globs."""
    if "*" not in pattern:
        return pattern == value
    pieces = pattern.split("*")
    first, last = pieces[0], pieces[-1]
    if len(value) < len(first) + len(last) or not value.startswith(first) \
            or not value.endswith(last):
        return False
    pos, stop = len(first), len(value) - len(last)
    for piece in pieces[1:-1]:
        if not piece:
            continue
        found = value.find(piece, pos, stop)
        if found < 0:
            return False
        pos = found + len(piece)
    return True


def _number(text: str) -> float | None:
    """A literal that reads as a number (as JSON writes them, with an optional sign)."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not (body[0].isdigit() or (body[0] == "." and body[1:2].isdigit())):
        return None
    if not all(c.isdigit() or c in ".eE+-" for c in body):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Literal:
    text: str
    number: float | None  # unquoted and numeric
    regex: Any = None  # %...%: a value matches when the regex finds a match in it


def _compare(op: str, lit: Literal, value: object, *, numeric_text: bool) -> bool:
    """Whether a field's value satisfies `op lit`. numeric_text: the value is a field of a
    space-delimited message, text that may read as a number."""
    if lit.number is not None:
        if numeric_text and isinstance(value, str):
            value = _number(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return op == "!="
        n = float(value)
        return {"=": n == lit.number, "!=": n != lit.number, "<": n < lit.number,
                "<=": n <= lit.number, ">": n > lit.number, ">=": n >= lit.number}[op]
    if not isinstance(value, str):
        return op == "!="
    if lit.regex is not None:
        same = lit.regex.search(value.encode("utf-8", "surrogatepass")) is not None
    else:
        same = glob_match(lit.text, value)
    return same if op == "=" else not same


# ---- JSON patterns

_MISSING = object()


@dataclass(frozen=True)
class Selector:
    path: tuple[str | int, ...]

    def resolve(self, doc: object) -> object:
        node = doc
        for step in self.path:
            if isinstance(step, int):
                if not isinstance(node, list) or step >= len(node):
                    return _MISSING
                node = node[step]
            else:
                if not isinstance(node, dict) or step not in node:
                    return _MISSING
                node = node[step]
        return node


Check = Callable[[object], bool]


@dataclass
class JsonPattern(Pattern):
    check: Check = field(default=lambda doc: False)

    def match(self, message: bytes) -> bool:
        if message.lstrip()[:1] not in (b"{", b"["):
            return False
        try:
            doc = orjson.loads(message)
        except orjson.JSONDecodeError:
            return False
        return self.check(doc)


def _any(checks: list[Check]) -> Check:
    return lambda doc: any(c(doc) for c in checks)


def _all(checks: list[Check]) -> Check:
    return lambda doc: all(c(doc) for c in checks)


_JSON_STOP = set(" \t\r\n()=!<>&|\"{}")


class _Scanner:
    """Tokens of a JSON or space-delimited pattern's body, one at a time."""

    def __init__(self, text: str):
        self.text = text
        self.i = 0
        self.regexes = 0

    def skip(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def peek(self, s: str) -> bool:
        self.skip()
        return self.text.startswith(s, self.i)

    def take(self, s: str) -> bool:
        if self.peek(s):
            self.i += len(s)
            return True
        return False

    def expect(self, s: str) -> None:
        if not self.take(s):
            raise FilterPatternError(f"expected '{s}' at position {self.i + 1}")

    def op(self) -> str:
        self.skip()
        for op in ("!=", "<=", ">=", "=", "<", ">"):
            if self.text.startswith(op, self.i):
                self.i += len(op)
                return op
        raise FilterPatternError(f"expected an operator (=, !=, <, <=, >, >=) at position "
                                 f"{self.i + 1}")

    def word(self, stop: set[str]) -> str:
        self.skip()
        j = self.i
        while j < len(self.text) and self.text[j] not in stop and not self.text[j].isspace():
            j += 1
        out, self.i = self.text[self.i:j], j
        return out

    def literal(self, stop: set[str]) -> Literal:
        self.skip()
        if self.i < len(self.text) and self.text[self.i] == '"':
            text, self.i = _quoted(self.text, self.i)
            return Literal(text, None)
        if self.i < len(self.text) and self.text[self.i] == "%":
            end = self.text.find("%", self.i + 1)
            if end < 0:
                raise FilterPatternError("a regular expression is written between two %")
            self.regexes += 1
            if self.regexes > MAX_REGEXES:
                raise FilterPatternError(f"at most {MAX_REGEXES} regular expressions in a "
                                         "pattern")
            text, self.i = self.text[self.i + 1:end], end + 1
            return Literal(text, None, compile_regex(text))
        text = self.word(stop)
        if not text:
            raise FilterPatternError(f"expected a value at position {self.i + 1}")
        return Literal(text, _number(text))

    def done(self) -> bool:
        self.skip()
        return self.i >= len(self.text)


class _JsonParser:
    def __init__(self, text: str):
        if not text.endswith("}"):
            raise FilterPatternError("a JSON pattern ends with '}'")
        self.s = _Scanner(text[1:-1])
        self.depth = 0

    def parse(self) -> JsonPattern:
        check = self.expr()
        if not self.s.done():
            raise FilterPatternError(f"unexpected text at position {self.s.i + 2}")
        return JsonPattern(check=check)

    def expr(self) -> Check:
        checks = [self.conjunction()]
        while self.s.take("||"):
            checks.append(self.conjunction())
        return checks[0] if len(checks) == 1 else _any(checks)

    def conjunction(self) -> Check:
        checks = [self.unary()]
        while self.s.take("&&"):
            checks.append(self.unary())
        return checks[0] if len(checks) == 1 else _all(checks)

    def unary(self) -> Check:
        if self.s.take("("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise FilterPatternError(f"nested deeper than {MAX_DEPTH} parentheses")
            check = self.expr()
            self.s.expect(")")
            self.depth -= 1
            return check
        return self.condition()

    def selector(self) -> Selector:
        s = self.s
        s.expect("$")
        path: list[str | int] = []
        while s.i < len(s.text) and s.text[s.i] in ".[":
            if s.text[s.i] == ".":
                s.i += 1
                j = s.i
                while j < len(s.text) and s.text[j] not in _JSON_STOP and s.text[j] not in ".[]":
                    j += 1
                if j == s.i:
                    raise FilterPatternError(f"a field name expected at position {s.i + 2}")
                path.append(s.text[s.i:j])
                s.i = j
            else:
                j = s.text.find("]", s.i)
                index = s.text[s.i + 1:j] if j > 0 else ""
                if not (index.isascii() and index.isdigit()) or len(index) > 9:
                    raise FilterPatternError("an array index is a number: $.field[0]")
                path.append(int(index))
                s.i = j + 1
        if not path:
            raise FilterPatternError("a selector names a field: $.field")
        if s.i < len(s.text) and not (s.text[s.i].isspace() or s.text[s.i] in _JSON_STOP):
            raise FilterPatternError(f"unexpected character in a selector at position "
                                     f"{s.i + 2}")
        return Selector(tuple(path))

    def condition(self) -> Check:
        sel = self.selector()
        s = self.s
        if s.take("IS"):
            word = s.word(_JSON_STOP)
            if word == "TRUE":
                return lambda doc: sel.resolve(doc) is True
            if word == "FALSE":
                return lambda doc: sel.resolve(doc) is False
            if word == "NULL":
                return lambda doc: sel.resolve(doc) is None
            raise FilterPatternError("IS takes TRUE, FALSE or NULL")
        if s.take("NOT"):
            if s.word(_JSON_STOP) != "EXISTS":
                raise FilterPatternError("NOT takes EXISTS")
            return lambda doc: sel.resolve(doc) is _MISSING
        if s.peek("EXISTS"):
            s.take("EXISTS")
            return lambda doc: sel.resolve(doc) is not _MISSING
        op = s.op()
        lit = s.literal(_JSON_STOP)
        if op not in ("=", "!=") and lit.number is None:
            raise FilterPatternError(f"{op} compares numbers, not '{lit.text[:50]}'")

        def check(doc: object) -> bool:
            value = sel.resolve(doc)
            return value is not _MISSING and _compare(op, lit, value, numeric_text=False)
        return check


# ---- space-delimited patterns

_DELIM_STOP = set(" \t\r\n,]&|=!<>\"")


@dataclass(frozen=True)
class Condition:
    name: str
    op: str
    value: Literal


@dataclass
class Delimited(Pattern):
    names: tuple[str | None, ...] = ()  # None: the `...`
    # Each slot's condition: OR of ANDs of comparisons.
    conditions: tuple[tuple[tuple[Condition, ...], ...], ...] = ()

    def __post_init__(self) -> None:
        # A slot's plain `= text` (no wildcard, not a number) in its only alternative is text
        # every matching message holds.
        self.required = tuple(_utf8(c.value.text) for disj in self.conditions if len(disj) == 1
                              for c in disj[0] if c.op == "=" and c.value.number is None
                              and c.value.regex is None and "*" not in c.value.text
                              and c.value.text)

    def match(self, message: bytes) -> bool:
        fields = split_fields(message.decode("utf-8", "replace"))
        bound: dict[str, str] = {}
        if None in self.names:
            k = self.names.index(None)
            after = len(self.names) - k - 1
            if len(fields) < len(self.names) - 1:
                return False
            pairs = list(zip(self.names[:k], fields[:k], strict=True))
            if after:
                pairs += list(zip(self.names[k + 1:], fields[-after:], strict=True))
        else:
            if len(fields) != len(self.names):
                return False
            pairs = list(zip(self.names, fields, strict=True))
        for name, value in pairs:
            if name is not None:
                bound[name] = value
        return all(any(all(_compare(c.op, c.value, bound[c.name], numeric_text=True)
                           for c in conj) for conj in disj)
                   for disj in self.conditions if disj)


def split_fields(message: str) -> list[str]:
    """A message's space-delimited fields; "quoted" and [bracketed] runs are one field each,
    without their quotes or brackets."""
    if '"' not in message and "[" not in message:
        return message.split()
    out: list[str] = []
    i, n = 0, len(message)
    while i < n:
        ch = message[i]
        if ch.isspace():
            i += 1
            continue
        close = {'"': '"', "[": "]"}.get(ch)
        if close:
            j = message.find(close, i + 1)
            j = n if j < 0 else j
            out.append(message[i + 1:j])
            i = j + 1
            continue
        j = i
        while j < n and not message[j].isspace():
            j += 1
        out.append(message[i:j])
        i = j
    return out


class _DelimitedParser:
    def __init__(self, text: str):
        if not text.endswith("]"):
            raise FilterPatternError("a space-delimited pattern ends with ']'")
        self.s = _Scanner(text[1:-1])

    def parse(self) -> Delimited:
        names: list[str | None] = []
        conditions: list[tuple[tuple[Condition, ...], ...]] = []
        while True:
            if self.s.take("..."):
                if None in names:
                    raise FilterPatternError("fargo does not implement more than one '...' in "
                                             "a space-delimited pattern")
                names.append(None)
                conditions.append(())
            else:
                name = self.name()
                if name in names:
                    raise FilterPatternError(f"the field name '{name[:50]}' is used twice")
                names.append(name)
                conditions.append(self.slot(name))
            if self.s.done():
                break
            self.s.expect(",")
        defined = {n for n in names if n is not None}
        for disj in conditions:
            for conj in disj:
                for c in conj:
                    if c.name not in defined:
                        raise FilterPatternError(f"no field is named '{c.name[:50]}'")
        return Delimited(names=tuple(names), conditions=tuple(conditions))

    def name(self) -> str:
        word = self.s.word(_DELIM_STOP)
        if not word or not all(c.isalnum() or c == "_" for c in word):
            raise FilterPatternError(f"a field name expected at position {self.s.i + 2}")
        return word

    def slot(self, first: str) -> tuple[tuple[Condition, ...], ...]:
        s = self.s
        if s.done() or s.peek(","):
            return ()
        disj: list[tuple[Condition, ...]] = []
        conj: list[Condition] = []
        name = first
        while True:
            op = s.op()
            lit = s.literal(_DELIM_STOP)
            if op not in ("=", "!=") and lit.number is None:
                raise FilterPatternError(f"{op} compares numbers, not '{lit.text[:50]}'")
            conj.append(Condition(name, op, lit))
            if s.take("&&"):
                name = self.name()
            elif s.take("||"):
                disj.append(tuple(conj))
                conj = []
                name = self.name()
            else:
                break
        disj.append(tuple(conj))
        return tuple(disj)
