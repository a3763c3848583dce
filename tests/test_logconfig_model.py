"""The awslogs driver's and EKS's log router's pure rules (model/logconfig.py,
model/logrouter.py, model/configmap.py): what a task definition may say, the routes, and how
k8s-file lines become CloudWatch events with the offsets a restart resumes at."""

from __future__ import annotations

import calendar
import copy
import random
import time

import pytest

from fargo.model import logrouter, taskdef
from fargo.model.configmap import check_configmap
from fargo.model.errors import ClientException
from fargo.model.kubeerrors import KubeError
from fargo.model.logconfig import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT,
    Grouper,
    LogRoute,
    Router,
    Stamps,
    batches,
    compile_pattern,
    ecs_routes,
    strftime_regex,
)

ROLE = "arn:aws:iam::123456789012:role/exec"


def td(options: dict[str, str] | None = None, driver: str = "awslogs", role: str | None = ROLE,
       **conf: object) -> dict:
    opts = {"awslogs-group": "/ecs/app", "awslogs-stream-prefix": "ecs",
            "awslogs-region": "us-east-1"} if options is None else options
    c = {"name": "app", "image": "busybox",
         "logConfiguration": {"logDriver": driver, "options": opts, **conf}}
    out = {"family": "f", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
           "cpu": "256", "memory": "512", "containerDefinitions": [c]}
    if role:
        out["executionRoleArn"] = role
    return out


def refused(d: dict) -> str:
    with pytest.raises(ClientException) as err:
        taskdef.normalize(d)
    return err.value.message


def with_opts(**extra: str) -> dict:
    base = {"awslogs-group": "/ecs/app", "awslogs-stream-prefix": "ecs"}
    base.update({k.replace("_", "-"): v for k, v in extra.items()})
    return td(base)


# ---- task definitions
def test_valid_awslogs_registers_as_given():
    out = taskdef.normalize(td())
    assert "FARGATE" in out["compatibilities"]
    assert out["containerDefinitions"][0]["logConfiguration"]["options"]["awslogs-group"] == \
        "/ecs/app"


def test_fargate_rules_in_aws_words():
    assert refused(td({"awslogs-group": "g"})) == (
        "Fargate requires log configuration options to include awslogs-stream-prefix to "
        "support log driver awslogs.")
    assert refused(td(role=None)) == ("Fargate requires task definition to have execution "
                                      "role ARN to support log driver awslogs.")
    assert "not supported on Fargate" in refused(td(driver="json-file"))


def test_what_fargo_does_not_run_is_refused_by_name():
    assert "'splunk' is not supported by fargo" in refused(td({"splunk-url": "x"}, "splunk"))
    assert "'awsfirelens' is not supported by fargo" in refused(td({}, "awsfirelens"))
    assert "secretOptions' parameter is not supported by fargo" in refused(
        td(secretOptions=[{"name": "a", "valueFrom": "arn:x"}]))
    for key in ("awslogs-endpoint", "awslogs-credentials-endpoint", "tag"):
        assert f"awslogs option '{key}' is not supported by fargo" in refused(
            with_opts(**{key: "x"}))
    assert "unknown log opt 'colour' for awslogs" in refused(with_opts(colour="x"))


def test_option_values_are_checked():
    assert "awslogs-group" in refused(td({"awslogs-stream-prefix": "ecs"}))
    assert "awslogs-create-group" in refused(with_opts(awslogs_create_group="yes"))
    taskdef.normalize(with_opts(awslogs_create_group="True"))
    assert "at the same time" in refused(with_opts(awslogs_datetime_format="%Y",
                                                   awslogs_multiline_pattern="^x"))
    # Backreferences and lookarounds need backtracking: RE2 (Go's regexp) refuses them.
    assert "not a valid regular expression" in refused(
        with_opts(awslogs_multiline_pattern=r"^(a)\1"))
    assert "not a valid regular expression" in refused(
        with_opts(awslogs_multiline_pattern=r"(?=INFO)"))
    assert "not a valid regular expression" in refused(with_opts(awslogs_datetime_format="[%Y"))
    assert "mode" in refused(with_opts(mode="sometimes"))
    assert "only supported with 'mode' non-blocking" in refused(with_opts(max_buffer_size="4m"))
    assert "is not a size" in refused(with_opts(mode="non-blocking", max_buffer_size="lots"))
    taskdef.normalize(with_opts(mode="non-blocking", max_buffer_size="25m"))
    assert "not a region" in refused(with_opts(awslogs_region="mars"))


def test_routes_of_a_task():
    plan = taskdef.normalize(with_opts(awslogs_create_group="true",
                                       awslogs_multiline_pattern="^INFO"))["containerDefinitions"]
    plan.append({"name": "quiet", "image": "busybox"})
    (route,) = ecs_routes("0123abc", "eu-west-1", plan)
    assert route == LogRoute(container="app", source="0123abc/app", region="eu-west-1",
                             group="/ecs/app", stream="ecs/app/0123abc", create_group=True,
                             start_pattern="^INFO")
    plan = taskdef.normalize(with_opts(awslogs_datetime_format="%Y-%m-%d"))[
        "containerDefinitions"]
    assert ecs_routes("t", "us-east-1", plan)[0].start_pattern == strftime_regex("%Y-%m-%d")


def test_strftime_regex_matches_as_docker_reads_it():
    pattern = compile_pattern(strftime_regex(r"\[%b %d, %Y %H:%M:%S\]"))
    assert pattern.search(b"[Mar 05, 2024 13:04:59] started")
    assert not pattern.search(b"  at [Mar 05, 2024 13:04:59]")  # anchored at the start
    assert not pattern.search(b"[Mar 32, 2024 13:04:59]")
    assert compile_pattern(strftime_regex("%Y-%m-%dT%H:%M:%S%L%z")).search(
        b"2024-01-02T03:04:05.123+0100 x")


def test_a_backtracking_bomb_runs_in_linear_time():
    pattern = compile_pattern(r"^(a+)+$")
    began = time.perf_counter()
    assert pattern.search(b"a" * 200_000 + b"!") is None
    assert time.perf_counter() - began < 0.5


# ---- lines to events
def stamp(sec: int, nanos: int = 0) -> bytes:
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{nanos:09d}+00:00"
            ).encode()


T0 = calendar.timegm((2024, 1, 2, 3, 4, 5, 0, 0, 0))


def line(msg: str | bytes, sec: int = T0, nanos: int = 0, stream: str = "stdout",
         tag: str = "F") -> bytes:
    raw = msg.encode() if isinstance(msg, str) else msg
    return stamp(sec, nanos) + f" {stream} {tag} ".encode() + raw + b"\n"


def test_stamps_in_milliseconds_with_zones():
    s = Stamps()
    assert s.ms(b"2024-01-02T03:04:05.123456789+00:00") == T0 * 1000 + 123
    assert s.ms(b"2024-01-02T03:04:05.999999999+00:00") == T0 * 1000 + 999
    assert s.ms(b"2024-01-02T04:04:05.5+01:00") == T0 * 1000 + 500
    assert s.ms(b"2024-01-02T03:04:05Z") == T0 * 1000


def test_each_line_an_event_with_its_own_time():
    data = line("one", nanos=1_000_000) + line("two", nanos=2_500_000, stream="stderr")
    cut = Grouper(None).cut(data, 100, 0, False)
    assert cut.messages == ["one", "two"]
    assert cut.stamps == [T0 * 1000 + 1, T0 * 1000 + 2]
    assert cut.ends == [100 + len(line("one", nanos=1_000_000)), 100 + len(data)]
    assert cut.done == 100 + len(data)


def test_an_unfinished_last_line_waits():
    whole = line("one")
    cut = Grouper(None).cut(whole + whole[:20], 0, 0, False)
    assert cut.messages == ["one"] and cut.done == len(whole)


def test_partial_lines_are_joined():
    data = line("he", tag="P") + line("ll", tag="P") + line("o") + line("next")
    cut = Grouper(None).cut(data, 0, 0, False)
    assert cut.messages == ["hello", "next"]
    assert cut.ends[0] == len(line("he", tag="P") + line("ll", tag="P") + line("o"))


def test_a_partial_line_held_until_its_end_or_idle():
    data = line("done") + line("waiting", tag="P")
    cut = Grouper(None).cut(data, 0, T0 * 1000, False)
    assert cut.messages == ["done"] and cut.done == len(line("done"))  # resumes at the P line
    idle = Grouper(None).cut(data, 0, T0 * 1000 + 2500, False)
    assert idle.messages == ["done", "waiting"] and idle.done == len(data)
    final = Grouper(None).cut(data, 0, T0 * 1000, True)
    assert final.messages == ["done", "waiting"]


def test_another_streams_line_ends_a_partial_one():
    data = line("out-", tag="P") + line("err", stream="stderr") + line("rest")
    cut = Grouper(None).cut(data, 0, 0, False)
    assert cut.messages == ["out-", "err", "rest"]


def test_long_partial_chains_stop_at_the_event_limit():
    piece = "x" * 8192
    n = MAX_EVENT // 8192 + 3
    data = b"".join(line(piece, tag="P") for _ in range(n)) + line("end")
    cut = Grouper(None).cut(data, 0, 0, False)
    assert all(size <= MAX_EVENT for size in cut.sizes)
    assert "".join(cut.messages) == piece * n + "end"
    assert len(cut.messages) == 2


def test_empty_lines_make_no_event_but_are_passed_over():
    data = line("") + line("a") + line("")
    cut = Grouper(None).cut(data, 0, 0, False)
    assert cut.messages == ["a"] and cut.done == len(data)
    (only,) = batches(cut)
    assert only == (0, 1, len(data))


def test_invalid_utf8_is_replaced_and_counted():
    cut = Grouper(None).cut(line(b"caf\xe9"), 0, 0, False)
    assert cut.messages == ["caf\ufffd"] and cut.sizes == [6]


def test_multiline_pattern_joins_lines_until_the_next_start():
    data = (line("INFO start") + line("  at a()") + line("  at b()", stream="stderr")
            + line("INFO next"))
    cut = Grouper("^INFO").cut(data, 0, T0 * 1000, False)
    assert cut.messages == ["INFO start\n  at a()\n  at b()\n"]
    held = len(data) - len(line("INFO next"))
    assert cut.ends == [held] and cut.done == held  # the held event is read again next time
    final = Grouper("^INFO").cut(data, 0, T0 * 1000, True)
    assert final.messages[-1] == "INFO next\n" and final.done == len(data)
    idle = Grouper("^INFO").cut(data, 0, T0 * 1000 + 2500, False)
    assert len(idle.messages) == 2 and idle.done == len(data)


def test_multiline_event_time_is_its_first_lines():
    data = line("INFO a", nanos=5_000_000) + line("more", sec=T0 + 1) + line("INFO b", T0 + 2)
    cut = Grouper("^INFO").cut(data, 0, 0, False)
    assert cut.stamps == [T0 * 1000 + 5]


def test_datetime_format_starts_events():
    fmt = strftime_regex("%Y-%m-%d %H:%M:%S")
    data = line("2024-01-02 03:04:05 boom") + line("Traceback") + line("2024-01-02 03:04:06 ok")
    cut = Grouper(fmt).cut(data, 0, 0, True)
    assert cut.messages == ["2024-01-02 03:04:05 boom\nTraceback\n", "2024-01-02 03:04:06 ok\n"]


def test_batches_keep_to_put_log_events_limits():
    data = b"".join(line(f"l{i}") for i in range(MAX_BATCH_EVENTS + 5))
    cut = Grouper(None).cut(data, 0, 0, False)
    (a, b) = batches(cut)
    assert a[0:2] == (0, MAX_BATCH_EVENTS) and a[2] == cut.ends[MAX_BATCH_EVENTS - 1]
    assert b == (MAX_BATCH_EVENTS, MAX_BATCH_EVENTS + 5, cut.done)
    big = "y" * 200_000
    cut = Grouper(None).cut(b"".join(line(big) for _ in range(12)), 0, 0, False)
    out = batches(cut)
    for first, last, _ in out:
        assert sum(cut.sizes[first:last]) + 26 * (last - first) <= MAX_BATCH_BYTES
    assert out[-1][1] == 12 and len(out) == 3


def test_batches_never_span_a_day():
    data = line("a") + line("b", sec=T0 + 25 * 3600)
    out = batches(Grouper(None).cut(data, 0, 0, False))
    assert [o[:2] for o in out] == [(0, 1), (1, 2)]


@pytest.mark.parametrize("pattern", [None, "^INFO"])
def test_resuming_from_any_cut_ships_each_line_once(pattern: str | None):
    """A shipper killed after any batch, or reading any amount at a time, resumes at the
    offset it committed: the events are those of one pass over the whole log, once each."""
    rng = random.Random(7)
    parts = []
    for i in range(400):
        kind = rng.random()
        if kind < 0.15:
            parts.append(line(f"part{i}-", tag="P", stream=rng.choice(["stdout", "stderr"])))
        elif kind < 0.4:
            parts.append(line(f"INFO {i}", nanos=i))
        else:
            parts.append(line(f"  detail {i}", nanos=i, stream=rng.choice(["stdout", "stderr"])))
    log = b"".join(parts)
    whole = Grouper(pattern).cut(log, 0, 0, True)
    assert len(whole.messages) > 80
    for _ in range(30):
        got: list[str] = []
        offset, window = 0, 0
        while offset < len(log):
            window = window * 2 if window else rng.randint(1, 3000)
            end = min(len(log), offset + window)
            cut = Grouper(pattern).cut(log[offset:end], offset, 0, end == len(log))
            out = batches(cut)
            shipped = out if rng.random() < 0.7 else out[:rng.randint(0, len(out))]
            before = offset
            for first, last, at in shipped:  # then killed, or not
                got += cut.messages[first:last]
                offset = at
            if offset != before:
                window = 0
        assert got == whole.messages


# ---- EKS's log router
CM = {"output.conf": """[OUTPUT]
    Name cloudwatch_logs
    Match   *
    region us-west-2
    log_group_name fluent-bit-cloudwatch
    log_stream_prefix from-fluent-bit-
    auto_create_group true
"""}
CRIO = {"parsers.conf": """[PARSER]
    Name crio
    Format Regex
    Regex ^(?<time>[^ ]+) (?<stream>stdout|stderr) (?<logtag>P|F) (?<log>.*)$
    Time_Key    time
    Time_Format %Y-%m-%dT%H:%M:%S.%L%z
""", "filters.conf": """[FILTER]
    Name parser
    Match *
    Key_name log
    Parser crio
"""}


def resolve(data: dict[str, str] | None, containers: tuple[str, ...] = ("app",)
            ) -> logrouter.Logging:
    return logrouter.resolve(data, task_id="t1", pod_ns="default", pod="web",
                             containers=list(containers))


def test_router_streams_are_prefix_and_tag():
    got = resolve(CM, ("app", "side"))
    assert got.annotation == "LoggingEnabled" and got.problem is None
    assert [r.stream for r in got.routes] == [
        "from-fluent-bit-kube.var.log.containers.web_default_app-t1-app.log",
        "from-fluent-bit-kube.var.log.containers.web_default_side-t1-side.log"]
    assert got.routes[0].create_group and got.routes[0].region == "us-west-2"
    assert [r.source for r in got.routes] == ["t1/app", "t1/side"]


def test_router_without_configmap_or_with_a_bad_one():
    assert resolve(None).annotation == "LoggingDisabled: LOGGING_CONFIGMAP_NOT_FOUND"
    bad = resolve({"output.conf": "[OUTPUT]\n    Name amazon_data_firehose\n    Match *\n"})
    assert bad.routes == [] and bad.problem == (
        "Disabled logging for pod due to invalid configmap. amazon_data_firehose is not a "
        "supported output plugin. Please fix the logging configmap")
    es = resolve({"output.conf": "[OUTPUT]\n    Name es\n    Match *\n"})
    assert "output plugin es is not supported by fargo" in str(es.problem)
    nest = resolve({**CM, "filters.conf": "[FILTER]\n    Name nest\n    Match *\n"})
    assert "filter nest is not supported by fargo" in str(nest.problem)
    retention = resolve({"output.conf": CM["output.conf"] + "    log_retention_days 7\n"})
    assert "option 'log_retention_days' is not supported by fargo" in str(retention.problem)
    assert "exceeds 5300" in str(resolve({"output.conf": CM["output.conf"] + "#" * 6000}).problem)


def test_router_match_picks_outputs_per_container():
    two = {"output.conf": CM["output.conf"] + """[OUTPUT]
    Name cloudwatch_logs
    Match kube.var.log.containers.web_default_side-*
    region us-west-2
    log_group_name side
    log_stream_name side-stream
"""}
    got = resolve(two, ("app", "side"))
    assert [(r.container, r.group, r.source) for r in got.routes] == [
        ("app", "fluent-bit-cloudwatch", "t1/app"), ("side", "fluent-bit-cloudwatch", "t1/side"),
        ("side", "side", "t1/side/1")]
    assert got.routes[2].stream == "side-stream"


def test_router_records_default_json_log_key_and_parser():
    raw = line("hello there")
    plain = Router(resolve(CM).routes[0]).cut(raw, 0, 0, False)
    assert plain.messages == ['{"log":"' + raw[:-1].decode() + '"}']
    assert plain.stamps == [T0 * 1000]
    keyed = {"output.conf": CM["output.conf"] + "    log_key log\n", **CRIO}
    route = resolve(keyed).routes[0]
    cut = Router(route).cut(raw + line("P piece", tag="P"), 0, 0, False)
    assert cut.messages == ["hello there", "P piece"]  # no joining: a record per line
    parsed = Router(resolve({**CM, **CRIO}).routes[0]).cut(raw, 0, 0, False)
    assert parsed.messages == ['{"stream":"stdout","logtag":"F","log":"hello there"}']


def test_router_grep_and_exclude():
    conf = {**CM, "filters.conf": """[FILTER]
    Name grep
    Match *
    Regex log important
    Exclude log noise
"""}
    route = resolve(conf).routes[0]
    data = line("important") + line("boring") + line("important noise")
    cut = Router(route).cut(data, 0, 0, False)
    assert len(cut.messages) == 1 and "important" in cut.messages[0]
    assert cut.done == len(data)


# ---- ConfigMaps
def test_configmap_checks():
    check_configmap({"metadata": {"name": "aws-logging"}, "data": {"output.conf": "x"},
                     "binaryData": {"blob": "aGk="}}, None)
    for bad in ({"data": {"a b": "x"}}, {"data": {"a": 1}}, {"binaryData": {"a": "!!"}},
                {"data": {"a": "x"}, "binaryData": {"a": "aGk="}},
                {"data": {"a": "x" * (1 << 20 | 1)}}):
        with pytest.raises(KubeError) as err:
            check_configmap({"metadata": {"name": "c"}, **bad}, None)
        assert err.value.code == 422
    frozen = {"metadata": {"name": "c", "uid": "u"}, "data": {"a": "1"}, "immutable": True}
    changed = copy.deepcopy(frozen)
    changed["data"]["a"] = "2"
    with pytest.raises(KubeError, match="immutable"):
        check_configmap(changed, frozen)
    relabelled = copy.deepcopy(frozen)
    relabelled["metadata"]["labels"] = {"x": "y"}
    check_configmap(relabelled, frozen)
