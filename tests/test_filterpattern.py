"""CloudWatch Logs' filter patterns (model/filterpattern.py): what each kind matches, what is
refused, and that no text makes the parser raise anything but its own error or take long."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fargo.model.filterpattern import (
    MAX_DEPTH,
    FilterPatternError,
    Terms,
    glob_match,
    parse,
    split_fields,
)


def m(pattern: str, message: str) -> bool:
    return parse(pattern).matches(message)


def test_terms_are_case_sensitive_substrings_all_of_which_must_appear():
    assert m("ERROR", "[ERROR] disk full")
    assert not m("ERROR", "error: disk full")
    assert m("ERROR disk", "ERROR: the disk is full")
    assert not m("ERROR disk", "ERROR: the volume is full")
    assert m("", "anything") and m("   ", "anything")


def test_quoted_phrases_alternatives_and_exclusions():
    assert m('"disk full"', "ERROR: disk full now")
    assert not m('"disk full"', "full disk")
    assert m('"say \\"hi\\""', 'they say "hi" often')
    assert m("?ERROR ?WARN", "WARN low memory") and m("?ERROR ?WARN", "ERROR x")
    assert not m("?ERROR ?WARN", "INFO all good")
    assert m("ERROR -timeout", "ERROR disk") and not m("ERROR -timeout", "ERROR timeout")
    assert m('-"health check"', "GET /") and not m('-"health check"', "health check ok")
    assert m('?"Error code" ?Exception', "an Exception happened")


def test_term_patterns_tell_blocks_what_they_need():
    p = parse('ERROR "disk full" -x')
    assert isinstance(p, Terms)
    assert p.required == (b"ERROR", b"disk full") and not p.terms_only
    assert parse("ERROR").terms_only
    assert parse("?a ?b").required == ()


def test_json_equality_wildcards_and_numbers():
    msg = '{"level": "error", "latency": 150, "user": {"id": 7, "name": "ann"}, "tags": ["a", "b"]}'
    assert m('{ $.level = "error" }', msg)
    assert m("{ $.level = error }", msg)
    assert not m('{ $.level = "info" }', msg)
    assert m('{ $.level != "info" }', msg)
    assert m('{ $.level = "err*" }', msg) and m('{ $.level = "*ro*" }', msg)
    assert not m('{ $.level = "warn*" }', msg)
    assert m("{ $.latency > 100 }", msg) and not m("{ $.latency < 100 }", msg)
    assert m("{ $.latency >= 150 }", msg) and m("{ $.latency <= 150.0 }", msg)
    assert m("{ $.latency = 150 }", msg) and m("{ $.latency != 151 }", msg)
    assert m("{ $.user.id = 7 }", msg) and m('{ $.user.name = "ann" }', msg)
    assert m('{ $.tags[1] = "b" }', msg) and not m('{ $.tags[5] = "b" }', msg)
    assert not m('{ $.missing != "x" }', msg)  # a comparison needs the field
    assert not m('{ $.level = "error" }', "not json at all")
    assert not m('{ $.level = "error" }', '{"level": ')


def test_json_boolean_logic_parentheses_and_is():
    msg = '{"a": 1, "b": "x", "ok": true, "bad": false, "n": null}'
    assert m('{ $.a = 1 && $.b = "x" }', msg)
    assert not m('{ $.a = 2 && $.b = "x" }', msg)
    assert m('{ $.a = 2 || $.b = "x" }', msg)
    assert m('{ ($.a = 2 || $.a = 1) && ($.b = "y" || $.b = "x") }', msg)
    assert m("{ $.ok IS TRUE }", msg) and m("{ $.bad IS FALSE }", msg)
    assert not m("{ $.bad IS TRUE }", msg)
    assert m("{ $.n IS NULL }", msg) and not m("{ $.a IS NULL }", msg)
    assert m("{ $.zzz NOT EXISTS }", msg) and not m("{ $.a NOT EXISTS }", msg)
    assert m("{ $.a EXISTS }", msg)


def test_space_delimited_fields():
    line = '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534'
    assert split_fields(line) == ["127.0.0.1", "-", "frank", "10/Oct/2000:13:25:15 -0700",
                                  "GET /index.html HTTP/1.0", "404", "1534"]
    assert m("[ip, user, username, timestamp, request, status_code, bytes]", line)
    assert m("[ip, user, username, timestamp, request, status_code = 404, bytes]", line)
    assert not m("[ip, user, username, timestamp, request, status_code = 200, bytes]", line)
    assert m("[..., status_code = 404, bytes > 1000]", line)
    assert m("[ip = 127.0.0.*, ...]", line) and not m("[ip = 10.*, ...]", line)
    assert m("[ip, user, ..., status_code = 4*, bytes]", line)
    assert m("[ip, user, username, timestamp, request = *html*, status_code = 200 "
             "|| status_code = 404, bytes]", line)
    assert not m("[ip, user, username, timestamp, request = *html* && request != *index*, "
                 "status_code, bytes]", line)
    assert not m("[a, b]", line)  # the fields must all be named
    assert m("[w1 = ERROR, w2]", "ERROR disk") and not m("[w1 = ERROR, w2]", "INFO disk")


def test_regular_expressions_in_aws_subset_run_on_re2():
    assert m("%AUTHORIZED%", "[ERROR 401] UNAUTHORIZED REQUEST")
    assert m("%^ERR[A-Z]+%", "ERROR x") and not m("%^ERR[A-Z]+%", "x ERROR")
    assert m("%colou?r%", "my color") and m("%gray|grey%", "grey")
    assert m("%10\\.0\\.0\\.1%", "from 10.0.0.1") and not m("%10\\.0\\.0\\.1%", "10a0b0c1")
    assert m("{ $.msg = %time.?out% }", '{"msg": "a time-out"}')
    assert not m("{ $.msg != %time.?out% }", '{"msg": "a timeout"}')
    assert m("[a, b = %^4[0-9]{2}$%]", "x 404") and not m("[a, b = %^4[0-9]{2}$%]", "x 4040")
    start = time.perf_counter()  # the classic backtracking bomb is linear in RE2
    assert not m("%a+a+a+a+a+a+a+a+b%", "a" * 100_000)
    assert not m("%a*a*a*a*a*a*a*a*b%", "a" * 100_000)
    assert time.perf_counter() - start < 2.0


def test_glob():
    assert glob_match("a*c", "abc") and glob_match("a*c", "ac") and not glob_match("a*c", "ab")
    assert glob_match("*", "") and glob_match("**", "x") and glob_match("a*b*c", "aXbYc")
    assert not glob_match("ab*ba", "aba")  # the two ends may not overlap
    assert not glob_match("a*b*c", "acb")


@pytest.mark.parametrize("bad", [
    '"unterminated', 'ERR"OR', "?", "-", '"a"b',
    "{ $.a = }", "{ $.a }", "{ a = 1 }", "{ $.a = 1", "{ $.a = 1 && }", "{ ($.a = 1 }",
    "{ $.a > x }", '{ $.a < "5" }', "{ $.a IS MAYBE }", "{ $.a[x] = 1 }", "{ $. = 1 }",
    "{ $.a = 1 } x", "[a, b", "[a = 1, a]", "[a, b = 1 && c = 2]", "[a, ,b]", "[]",
    "%(ERROR)%", "%a b%", "%%", "%ERR", "%ü%", "%a{2000}%", "{ $.a = %x }",
    "{ $.a = %x% || $.a = %y% || $.a = %z% }", "[..., a, ...]", "x" * 1025,
    "{ " + "(" * (MAX_DEPTH + 1) + "$.a = 1" + ")" * (MAX_DEPTH + 1) + " }",
])
def test_malformed_patterns_are_refused(bad):
    with pytest.raises(FilterPatternError) as exc:
        parse(bad)
    assert exc.value.code == "InvalidParameterException"
    assert exc.value.message.startswith("Invalid filter pattern")


def test_what_fargo_does_not_parse_is_refused_by_name():
    for text in ("[..., a, ...]",):
        with pytest.raises(FilterPatternError) as exc:
            parse(text)
        assert "fargo does not implement" in exc.value.message


def test_nesting_up_to_the_limit_parses():
    depth = MAX_DEPTH
    p = parse("{ " + "(" * depth + "$.a = 1" + ")" * depth + " }")
    assert p.matches('{"a": 1}')


_ALPHABET = st.sampled_from(list('{}[]()$.=!<>&|"\\*?-%, \taAzZ019_:') + ["IS", "NOT", "EXISTS",
                                                                       "TRUE", "NULL", "..."])


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.text(max_size=80), st.lists(_ALPHABET, max_size=60).map("".join)))
def test_parse_raises_nothing_but_its_error(text):
    try:
        p = parse(text)
    except FilterPatternError:
        return
    # Whatever parses matches or not without raising, on any message.
    for message in ("", "ERROR x", '{"a": 1, "b": [1, "x"]}', text, "[a] \"b c\" d"):
        assert p.matches(message) in (True, False)


def test_hostile_patterns_match_in_linear_time():
    message = "a" * 100_000
    start = time.perf_counter()
    assert not m("a" * 1000 + "b", message)
    assert not m('{ $.x = "' + "*a" * 300 + 'b" }', '{"x": "' + message + '"}')
    assert not m("[x = " + "*a" * 200 + "b]", message)
    assert time.perf_counter() - start < 2.0
