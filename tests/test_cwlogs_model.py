"""CloudWatch Logs without a server: the rules of model/cwlogs.py (names, batches, retention,
tags, tokens), and control/cwlogs.py over a real SQLite store in a temporary directory with
a clock the test moves (blocks, reads across them, retention, the shippers' LogSink)."""

from __future__ import annotations

import threading

import pytest

from fargo.control.cwlogs import CloudWatchLogs, synthetic_message
from fargo.control.logsink import Event, LogSink
from fargo.model import cwlogs as rules
from fargo.model.errors import ApiError
from fargo.store import cwlogs as blocks
from fargo.store.sqlite import Store

R = "us-east-1"
NOW = 1_800_000_000_000
DAY = rules.DAY_MS


def code(exc) -> str:
    return exc.value.code


# ---- rules


def test_group_and_stream_names():
    assert rules.check_group_name("/ecs/app-1_x.y#z") == "/ecs/app-1_x.y#z"
    for bad in ("", "a b", "a:b", "a*", "x" * 513, "ü"):
        with pytest.raises(ApiError) as exc:
            rules.check_group_name(bad)
        assert code(exc) == "InvalidParameterException"
    with pytest.raises(ApiError):
        rules.check_new_group_name("aws/lambda/x")
    assert rules.check_stream_name("prefix/app/0123abcd ü") == "prefix/app/0123abcd ü"
    for bad in ("", "a:b", "a*b", "x" * 513):
        with pytest.raises(ApiError):
            rules.check_stream_name(bad)


def test_arns_and_identifiers():
    arn = rules.group_arn(R, "/a/b")
    assert arn == "arn:aws:logs:us-east-1:000000000000:log-group:/a/b"
    assert rules.group_of_arn(arn, R) == "/a/b" and rules.group_of_arn(arn + ":*", R) == "/a/b"
    assert rules.group_of_arn(arn, "eu-west-1") is None
    assert rules.group_of_arn(arn.replace("000000000000", "111111111111"), R) is None
    assert rules.group_of_identifier("/a/b", R) == "/a/b"
    assert rules.group_of_identifier(arn, R) == "/a/b"
    with pytest.raises(ApiError) as exc:
        rules.group_of_identifier(arn.replace("us-east-1", "eu-west-1"), R)
    assert code(exc) == "ResourceNotFoundException"
    with pytest.raises(ApiError):
        rules.pick_group("/a", "/a", R)
    with pytest.raises(ApiError):
        rules.pick_group(None, None, R)
    assert rules.stream_arn(R, "g", "s") == arn.replace("/a/b", "g") + ":log-stream:s"


def test_retention_values():
    for days in rules.RETENTION_DAYS:
        assert rules.check_retention(days) == days
    for bad in (0, 2, 4, 366, 3654, -1):
        with pytest.raises(ApiError) as exc:
            rules.check_retention(bad)
        assert "enum value set" in exc.value.message
    assert rules.expiry_cutoff(NOW, None) is None
    assert rules.expiry_cutoff(NOW, 1) == NOW - DAY


def test_tags():
    assert rules.check_tags({"team": "web", "a b": "c:d/e@f"}) == {"team": "web",
                                                                  "a b": "c:d/e@f"}
    for bad in ({"": "x"}, {"k" * 129: "x"}, {"k": "v" * 257}, {"aws:x": "y"}, {"k!": "v"}):
        with pytest.raises(ApiError):
            rules.check_tags(bad)
    many = {f"k{i}": "v" for i in range(50)}
    assert len(rules.check_tags(many)) == 50
    with pytest.raises(ApiError) as exc:
        rules.check_tags({"one-more": "v"}, many)
    assert code(exc) == "TooManyTagsException"


def sizes(*ts: int, size: int = 10) -> list[tuple[int, int]]:
    return [(t, size) for t in ts]


def test_batch_limits():
    assert rules.check_batch(sizes(NOW, NOW + 1), NOW, None) == rules.Accepted(0, 2)
    with pytest.raises(ApiError) as exc:
        rules.check_batch(sizes(NOW + 5, NOW), NOW, None)
    assert "chronological order" in exc.value.message
    with pytest.raises(ApiError) as exc:
        rules.check_batch([(NOW, rules.MAX_EVENT_BYTES + 1)], NOW, None)
    assert exc.value.message.startswith("Log event too large: 1048577 bytes")
    assert rules.check_batch([(NOW, rules.MAX_EVENT_BYTES)], NOW, None).end == 1
    with pytest.raises(ApiError) as exc:  # 26 bytes counted per event
        rules.check_batch([(NOW, 1000)] * 1023, NOW, None)
    assert exc.value.message == "Upload too large: 1049598 bytes exceeds limit of 1048576"
    assert rules.check_batch([(NOW, 1000)] * 1022, NOW, None).end == 1022
    with pytest.raises(ApiError):
        rules.check_batch([(NOW, 1)] * 10_001, NOW, None)
    with pytest.raises(ApiError) as exc:
        rules.check_batch(sizes(NOW - DAY - 1, NOW), NOW, None)
    assert "24 hours" in exc.value.message


def test_batch_rejects_too_old_expired_and_too_new_by_index():
    old, expired, ok, new = NOW - 15 * DAY, NOW - 2 * DAY, NOW - 1000, NOW + 3 * 3_600_000
    got = rules.check_batch(sizes(old, old, ok, ok), NOW, None)
    assert got == rules.Accepted(start=2, end=4, too_old_end=2)
    got = rules.check_batch(sizes(expired, ok, new, new), NOW, 1)
    assert got == rules.Accepted(start=1, end=2, expired_end=1, too_new_start=2)
    got = rules.check_batch(sizes(new), NOW, None)
    assert got == rules.Accepted(start=0, end=0, too_new_start=0)
    got = rules.check_batch(sizes(old, expired), NOW, 1)  # all rejected, no 24-hour rule
    assert (got.start, got.end, got.too_old_end, got.expired_end) == (2, 2, 1, 2)


def test_page_tokens_are_checked():
    token = rules.page_token("dlg", "/a/b")
    assert rules.read_page_token("dlg", token, (str,)) == ("/a/b",)
    for bad in ("x", token + "A", rules.page_token("dls", "/a/b"), rules.page_token("dlg", 5),
                "!!!", rules.page_token("dlg", "a", "b")):
        with pytest.raises(ApiError) as exc:
            rules.read_page_token("dlg", bad, (str,))
        assert exc.value.message == rules.BAD_TOKEN


def test_event_tokens_round_trip():
    for t in (rules.EventToken(True, NOW, -1), rules.EventToken(False, 0, 12345)):
        assert rules.read_event_token(str(t)) == t
        assert str(t).startswith("f/" if t.forward else "b/")
    for bad in ("f/12/s", "x/" + "0" * 40 + "/s", "f/" + "0" * 40):
        with pytest.raises(ApiError):
            rules.read_event_token(bad)
    assert len(rules.event_id(NOW, 3, 9)) == 56


# ---- control over a real store


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def logs(tmp_path, clock) -> CloudWatchLogs:
    return CloudWatchLogs(Store(tmp_path / "state.db"), clock=clock)


def put(logs: CloudWatchLogs, group: str, stream: str, *events: tuple[int, str]) -> None:
    logs.put_log_events(R, group, stream, [Event(t, msg) for t, msg in events])


def test_it_is_a_log_sink(logs):
    sink: LogSink = logs
    assert not sink.group_exists(R, "/ecs/app")
    with pytest.raises(ApiError) as exc:
        sink.ensure_stream(R, "/ecs/app", "p/app/1")
    assert exc.value.message == "The specified log group does not exist."
    sink.ensure_group(R, "/ecs/app")
    sink.ensure_group(R, "/ecs/app")  # again: nothing
    assert sink.group_exists(R, "/ecs/app") and not sink.group_exists("eu-west-1", "/ecs/app")
    sink.ensure_stream(R, "/ecs/app", "p/app/1")
    sink.ensure_stream(R, "/ecs/app", "p/app/1")
    assert sink.shipped("t1/app") == 0
    sink.ship(R, "/ecs/app", "p/app/1", [Event(NOW, "one"), Event(NOW + 1, "two")], "t1/app", 8)
    assert sink.shipped("t1/app") == 8
    page = logs.get_log_events(R, "p/app/1", group="/ecs/app", from_head=True)
    assert [e.message for e in page.events] == ["one", "two"]
    logs.delete_log_stream(R, "/ecs/app", "p/app/1")
    with pytest.raises(ApiError) as exc:
        sink.ship(R, "/ecs/app", "p/app/1", [Event(NOW, "lost?")], "t1/app", 12)
    assert exc.value.message == "The specified log stream does not exist."
    assert sink.shipped("t1/app") == 8  # nothing recorded with the refusal
    sink.forget_source("t1/app")
    assert sink.shipped("t1/app") == 0


def test_ship_drops_what_retention_already_expired(logs):
    logs.ensure_group(R, "g")
    logs.ensure_stream(R, "g", "s")
    logs.put_retention_policy(R, "g", 1)
    logs.ship(R, "g", "s", [Event(NOW - 2 * DAY, "old"), Event(NOW, "new")], "src", 3)
    page = logs.filter_log_events(R, group="g")
    assert [e.message for e in page.events] == ["new"]


def test_small_appends_grow_one_block_and_reads_cross_blocks(logs, tmp_path):
    logs.create_log_group(R, "g")
    logs.create_log_stream(R, "g", "s")
    for i in range(2500):  # one event per call, as a chatty shipper sends them
        put(logs, "g", "s", (NOW + i, f"line {i}"))
    count = logs.tables.store.rows("SELECT COUNT(*), SUM(count) FROM cwl_blocks")[0]
    assert count == (3, 2500)
    seen, token = [], None
    while True:
        page = logs.get_log_events(R, "s", group="g", from_head=True, token=token, limit=700)
        if not page.events:
            assert page.forward == token  # the same token back: the end
            break
        seen += [e.message for e in page.events]
        token = page.forward
    assert seen == [f"line {i}" for i in range(2500)]


def test_events_come_back_in_time_order_whatever_order_batches_came(logs):
    logs.create_log_group(R, "g")
    logs.create_log_stream(R, "g", "a")
    logs.create_log_stream(R, "g", "b")
    put(logs, "g", "a", (NOW + 10, "a10"), (NOW + 30, "a30"))
    put(logs, "g", "b", (NOW + 5, "b5"), (NOW + 20, "b20"))
    put(logs, "g", "a", (NOW + 1, "a1"), (NOW + 25, "a25"))  # an older batch after
    page = logs.get_log_events(R, "a", group="g", from_head=True)
    assert [e.message for e in page.events] == ["a1", "a10", "a25", "a30"]
    page = logs.filter_log_events(R, group="g")
    assert [e.message for e in page.events] == ["a1", "b5", "a10", "b20", "a25", "a30"]
    assert [e.stream for e in page.events] == ["a", "b", "a", "b", "a", "a"]
    ids = [e.event_id for e in page.events]
    assert len(set(ids)) == 6 and ids == [e.event_id for e in
                                          logs.filter_log_events(R, group="g").events]
    page = logs.filter_log_events(R, group="g", start=NOW + 10, end=NOW + 25)
    assert [e.message for e in page.events] == ["a10", "b20", "a25"]  # both ends included
    page = logs.get_log_events(R, "a", group="g", start=NOW + 10, end=NOW + 25, from_head=True)
    assert [e.message for e in page.events] == ["a10"]  # GetLogEvents' end is excluded


def test_get_log_events_tail_and_backward_paging(logs):
    logs.create_log_group(R, "g")
    logs.create_log_stream(R, "g", "s")
    put(logs, "g", "s", *[(NOW + i, f"m{i}") for i in range(10)])
    page = logs.get_log_events(R, "s", group="g", limit=3)  # the latest, oldest first
    assert [e.message for e in page.events] == ["m7", "m8", "m9"]
    back = logs.get_log_events(R, "s", group="g", token=page.backward, limit=3)
    assert [e.message for e in back.events] == ["m4", "m5", "m6"]
    while back.events:
        last = back.backward
        back = logs.get_log_events(R, "s", group="g", token=last, limit=4)
    assert back.backward == last
    fwd = logs.get_log_events(R, "s", group="g", token=page.forward)
    assert fwd.events == [] and fwd.forward == page.forward
    put(logs, "g", "s", (NOW + 20, "later"))
    fwd = logs.get_log_events(R, "s", group="g", token=page.forward)
    assert [e.message for e in fwd.events] == ["later"]
    empty = logs.get_log_events(R, "s", group="g", start=NOW + 100, from_head=True)
    assert empty.events == []
    again = logs.get_log_events(R, "s", group="g", start=NOW + 100, token=empty.forward)
    assert again.forward == empty.forward


def test_filter_paging_visits_every_event_once(logs):
    logs.load_synthetic(R, "g", 5000, streams=3, start_ms=NOW, step_ms=1)
    token, seen = None, []
    while True:
        page = logs.filter_log_events(R, group="g", limit=777, token=token)
        seen += [e.message for e in page.events]
        token = page.token
        if token is None:
            break
    assert seen == [synthetic_message(i) for i in range(5000)]
    errors = logs.filter_log_events(R, group="g", pattern="ERROR")
    assert [e.message for e in errors.events] == [synthetic_message(i) for i in range(5000)
                                                 if i % 1000 == 999]
    one = logs.filter_log_events(R, group="g", streams=["s1"], pattern="?ERROR ?WARN")
    assert {e.stream for e in one.events} == {"s1"} and one.events
    pre = logs.filter_log_events(R, group="g", stream_prefix="s2", limit=5)
    assert {e.stream for e in pre.events} == {"s2"}
    with pytest.raises(ApiError):
        logs.filter_log_events(R, group="g", streams=["s1"], stream_prefix="s")


def test_the_scan_budget_hands_a_token_that_progresses(logs, monkeypatch):
    import fargo.control.cwlogs as control
    monkeypatch.setattr(control, "SCAN_BLOCKS", 2)
    logs.load_synthetic(R, "g", 10_000, streams=1, start_ms=NOW)
    token, calls, found = None, 0, 0
    while True:
        page = logs.filter_log_events(R, group="g", pattern="nomatch", token=token)
        calls += 1
        found += len(page.events)
        if page.token is None:
            break
        assert page.token != token
        token = page.token
    assert found == 0 and calls > 2


def test_retention_hides_then_sweeps_expired_events(logs, clock):
    logs.create_log_group(R, "g")
    logs.create_log_stream(R, "g", "s")
    old = [(NOW - 3 * DAY + i, f"old {i}") for i in range(1500)]
    put(logs, "g", "s", *old[:1000])
    put(logs, "g", "s", *old[1000:])
    put(logs, "g", "s", (NOW - 1000, "fresh"))
    stored = logs.describe_log_groups(R)[0][0].stored
    assert stored == sum(len(m.encode()) + 26 for _, m in old) + len("fresh") + 26
    logs.put_retention_policy(R, "g", 1)
    assert [e.message for e in logs.filter_log_events(R, group="g").events] == ["fresh"]
    assert [e.message for e in logs.get_log_events(R, "s", group="g").events] == ["fresh"]
    assert logs.sweep() == 1500
    assert logs.describe_log_groups(R)[0][0].stored == len("fresh") + 26
    clock.now += 2 * DAY  # now the fresh one has expired too
    assert logs.filter_log_events(R, group="g").events == []
    assert logs.sweep() == 1
    assert logs.tables.store.rows("SELECT COUNT(*) FROM cwl_blocks")[0][0] in (0, 1)
    assert logs.describe_log_groups(R)[0][0].stored == 0


def test_deleting_a_group_takes_its_blocks_in_steps(logs, monkeypatch):
    monkeypatch.setattr(blocks, "PURGE_STEP", 3)
    logs.load_synthetic(R, "g", 12_000, streams=2)
    logs.load_synthetic(R, "keep", 10, streams=1)
    logs.delete_log_group(R, "g")
    with pytest.raises(ApiError) as exc:
        logs.filter_log_events(R, group="g")
    assert code(exc) == "ResourceNotFoundException"
    assert logs.tables.doomed()
    logs.sweep()
    assert not logs.tables.doomed()
    assert logs.tables.store.rows("SELECT COUNT(*) FROM cwl_blocks")[0][0] == 1
    logs.create_log_group(R, "g")  # the name again: a new, empty group
    logs.create_log_stream(R, "g", "s0")
    assert logs.get_log_events(R, "s0", group="g").events == []


def test_concurrent_ship_and_put_lose_nothing(logs):
    logs.create_log_group(R, "g")
    logs.create_log_stream(R, "g", "s")

    def shipper(k: int) -> None:
        for i in range(200):
            logs.ship(R, "g", "s", [Event(NOW + i, f"ship{k} {i}")], f"src{k}", i + 1)

    threads = [threading.Thread(target=shipper, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for i in range(200):
        put(logs, "g", "s", (NOW + i, f"api {i}"))
    for t in threads:
        t.join()
    token, seen = None, []
    while True:
        page = logs.filter_log_events(R, group="g", token=token)
        seen += [e.message for e in page.events]
        if (token := page.token) is None:
            break
    assert len(seen) == len(set(seen)) == 800
    assert [logs.shipped(f"src{k}") for k in range(3)] == [200, 200, 200]


def test_describe_paging_and_filters(logs):
    for name in ("/b/x", "/a/one", "/a/two", "/a/three", "/c/DataLogs"):
        logs.create_log_group(R, name, log_group_class="INFREQUENT_ACCESS"
                              if name == "/a/two" else None)
    groups, token = logs.describe_log_groups(R, limit=2)
    names = [g.name for g in groups]
    while token:
        groups, token = logs.describe_log_groups(R, limit=2, token=token)
        names += [g.name for g in groups]
    assert names == ["/a/one", "/a/three", "/a/two", "/b/x", "/c/DataLogs"]
    assert [g.name for g in logs.describe_log_groups(R, prefix="/a/")[0]] == \
        ["/a/one", "/a/three", "/a/two"]
    assert [g.name for g in logs.describe_log_groups(R, pattern="Data")[0]] == ["/c/DataLogs"]
    assert [g.name for g in logs.describe_log_groups(R, pattern="data")[0]] == []
    assert [g.name for g in logs.describe_log_groups(
        R, log_group_class="INFREQUENT_ACCESS")[0]] == ["/a/two"]
    assert [g.name for g in logs.describe_log_groups(
        R, identifiers=["/b/x", rules.group_arn(R, "/a/one"), "/nope"])[0]] == ["/a/one", "/b/x"]
    with pytest.raises(ApiError):
        logs.describe_log_groups(R, prefix="/a", pattern="a")
    with pytest.raises(ApiError):
        logs.describe_log_groups(R, token="garbage")
    assert logs.describe_log_groups("eu-west-1")[0] == []  # groups are per region
