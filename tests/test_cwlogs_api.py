"""CloudWatch Logs driven with boto3 and the aws CLI against a real `fargo server`: groups,
streams, PutLogEvents' limits, GetLogEvents' and FilterLogEvents' paging (each must end),
filter patterns, retention enforced, tags, refusals; `aws logs tail` (with and without
--follow) from the AWS CLI v2, which has it (pip's v1 does not)."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import time
import uuid

import botocore.exceptions
import pytest

from tests.faceshapes import JSON_TYPE, json_error, send

CLI_V2 = "/usr/bin/aws"  # Debian's awscli package (scripts/setup.sh installs it)
DAY = 86_400_000


def err(exc) -> tuple[str, str]:
    e = exc.value.response["Error"]
    return e["Code"], e["Message"]


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture(scope="module")
def logs(fargo):
    return fargo.client("logs")


@pytest.fixture
def group(logs):
    """A fresh group of this test's own, deleted afterwards."""
    name = "/t/" + uuid.uuid4().hex[:8]
    logs.create_log_group(logGroupName=name)
    yield name
    try:
        logs.delete_log_group(logGroupName=name)
    except botocore.exceptions.ClientError:
        pass


def events(*messages: str, at: int | None = None) -> list[dict]:
    base = now_ms() if at is None else at
    return [{"timestamp": base + i, "message": m} for i, m in enumerate(messages)]


def test_log_groups(logs, fargo):
    name = "/t/" + uuid.uuid4().hex[:8]
    logs.create_log_group(logGroupName=name, tags={"team": "web"},
                          logGroupClass="INFREQUENT_ACCESS")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.create_log_group(logGroupName=name)
    assert err(exc) == ("ResourceAlreadyExistsException", "The specified log group already exists")
    for bad in ("has space", "a:b"):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            logs.create_log_group(logGroupName=bad)
        assert err(exc)[0] == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.create_log_group(logGroupName=name + "k", kmsKeyId="arn:aws:kms:us-east-1:0:key/x")
    assert err(exc)[0] == "InvalidParameterException" and "kmsKeyId" in err(exc)[1]
    [g] = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    arn = f"arn:aws:logs:us-east-1:000000000000:log-group:{name}"
    assert g["arn"] == arn + ":*" and g["logGroupArn"] == arn
    assert (g["logGroupName"], g["storedBytes"], g["metricFilterCount"], g["logGroupClass"]) == \
        (name, 0, 0, "INFREQUENT_ACCESS")
    assert abs(g["creationTime"] - now_ms()) < 60_000 and "retentionInDays" not in g
    [brief] = logs.describe_log_groups(logGroupNamePattern=name[3:])["logGroups"]
    assert set(brief) == {"logGroupName", "creationTime", "arn"}
    others = [f"{name}/{i}" for i in range(3)]
    for o in others:
        logs.create_log_group(logGroupName=o)
    pages = list(logs.get_paginator("describe_log_groups").paginate(
        logGroupNamePrefix=name, PaginationConfig={"PageSize": 1}))
    assert [g["logGroupName"] for p in pages for g in p["logGroups"]] == [name, *others]
    assert len(pages) == 4
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.describe_log_groups(nextToken="not-a-token")
    assert err(exc)[0] == "InvalidParameterException"
    for o in [name, *others]:
        logs.delete_log_group(logGroupName=o)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.delete_log_group(logGroupName=name)
    assert err(exc) == ("ResourceNotFoundException", "The specified log group does not exist.")
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"] == []


def test_log_streams(logs, group, fargo):
    for s in ("b", "a", "c"):
        logs.create_log_stream(logGroupName=group, logStreamName=s)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.create_log_stream(logGroupName=group, logStreamName="a")
    assert err(exc) == ("ResourceAlreadyExistsException",
                        "The specified log stream already exists")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.create_log_stream(logGroupName=group + "-none", logStreamName="a")
    assert err(exc) == ("ResourceNotFoundException", "The specified log group does not exist.")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.create_log_stream(logGroupName=group, logStreamName="x:y")
    assert err(exc)[0] == "InvalidParameterException"
    logs.put_log_events(logGroupName=group, logStreamName="b", logEvents=events("late"))
    logs.put_log_events(logGroupName=group, logStreamName="a",
                        logEvents=events("early", at=now_ms() - 60_000))
    names = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]]
    assert names == ["a", "b", "c"]
    by_time = logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime",
                                        descending=True)["logStreams"]
    assert [s["logStreamName"] for s in by_time] == ["b", "a", "c"]
    b = by_time[0]
    assert b["arn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{group}:log-stream:b"
    assert b["firstEventTimestamp"] == b["lastEventTimestamp"] and b["storedBytes"] == 0
    assert b["lastIngestionTime"] >= b["creationTime"] and b["uploadSequenceToken"]
    assert "lastEventTimestamp" not in by_time[2]  # c has no events
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime",
                                  logStreamNamePrefix="a")
    assert err(exc)[0] == "InvalidParameterException"
    pages = list(logs.get_paginator("describe_log_streams").paginate(
        logGroupIdentifier=f"arn:aws:logs:us-east-1:000000000000:log-group:{group}",
        PaginationConfig={"PageSize": 2}))
    assert [s["logStreamName"] for p in pages for s in p["logStreams"]] == ["a", "b", "c"]
    out = subprocess.run(["aws", "logs", "describe-log-streams", "--log-group-name", group,
                          "--log-stream-name-prefix", "b", "--endpoint-url", fargo.endpoint],
                         capture_output=True, text=True, env=fargo.env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert [s["logStreamName"] for s in json.loads(out.stdout)["logStreams"]] == ["b"]
    logs.delete_log_stream(logGroupName=group, logStreamName="a")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.delete_log_stream(logGroupName=group, logStreamName="a")
    assert err(exc) == ("ResourceNotFoundException", "The specified log stream does not exist.")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.get_log_events(logGroupName=group, logStreamName="a")
    assert err(exc) == ("ResourceNotFoundException", "The specified log stream does not exist.")


def test_put_log_events_limits(logs, group):
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now = now_ms()
    out = logs.put_log_events(logGroupName=group, logStreamName="s", sequenceToken="whatever",
                              logEvents=events("a", "b"))
    assert out["nextSequenceToken"] and "rejectedLogEventsInfo" not in out
    out = logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
        {"timestamp": now - 15 * DAY, "message": "too old"},
        {"timestamp": now, "message": "ok"},
        {"timestamp": now + 3 * 3_600_000, "message": "too new"}])
    assert out["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 1,
                                            "tooNewLogEventStartIndex": 2}
    for bad, words in (
            (events("x", at=now + 10) + events("y", at=now), "chronological order"),
            ([{"timestamp": now, "message": "x" * 1_048_551}], "Log event too large"),
            ([{"timestamp": now, "message": "x" * 1000}] * 1023, "Upload too large"),
            ([{"timestamp": now - DAY - 1, "message": "x"}, {"timestamp": now, "message": "y"}],
             "24 hours")):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=bad)
        assert err(exc)[0] == "InvalidParameterException" and words in err(exc)[1]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.put_log_events(logGroupName=group, logStreamName="nope", logEvents=events("x"))
    assert err(exc) == ("ResourceNotFoundException", "The specified log stream does not exist.")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=events("x"),
                            entity={"keyAttributes": {"Type": "Service", "Name": "n"}})
    assert err(exc)[0] == "InvalidParameterException" and "entit" in err(exc)[1]
    got = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True)
    assert sorted(e["message"] for e in got["events"]) == ["a", "b", "ok"]  # nothing else
    [g] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert g["storedBytes"] == 3 * 26 + 4
    # A batch at the limit is taken whole, though its JSON is larger than 1 MiB.
    logs.create_log_stream(logGroupName=group, logStreamName="big")
    logs.put_log_events(logGroupName=group, logStreamName="big",
                        logEvents=[{"timestamp": now, "message": '"' * 1000}] * 1022)
    [g] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert g["storedBytes"] == 3 * 26 + 4 + 1022 * 1026


def test_get_log_events_paging_ends(logs, group, fargo):
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    base = now_ms() - 30_000
    for k in range(3):
        logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
            {"timestamp": base + k * 1000 + i, "message": f"m{k * 1000 + i:04d}"}
            for i in range(1000)])
    seen, token, calls = [], None, 0
    while True:
        kw = {"nextToken": token} if token else {}
        page = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True,
                                   limit=700, **kw)
        calls += 1
        if page["nextForwardToken"] == token:
            assert page["events"] == []
            break
        seen += [e["message"] for e in page["events"]]
        token = page["nextForwardToken"]
        assert calls < 20
    assert seen == [f"m{i:04d}" for i in range(3000)]
    tail = logs.get_log_events(logGroupName=group, logStreamName="s", limit=5)
    assert [e["message"] for e in tail["events"]] == [f"m{i:04d}" for i in range(2995, 3000)]
    assert tail["nextForwardToken"].startswith("f/") and tail["nextBackwardToken"].startswith("b/")
    back = logs.get_log_events(logGroupName=group, logStreamName="s", limit=5,
                               nextToken=tail["nextBackwardToken"])
    assert [e["message"] for e in back["events"]] == [f"m{i:04d}" for i in range(2990, 2995)]
    ranged = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True,
                                 startTime=base + 1000, endTime=base + 1003)
    assert [e["message"] for e in ranged["events"]] == ["m1000", "m1001", "m1002"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.get_log_events(logGroupName=group, logStreamName="s", nextToken="f/bogus")
    assert err(exc)[0] == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.get_log_events(logGroupName=group, logGroupIdentifier=group, logStreamName="s")
    assert err(exc)[0] == "InvalidParameterException"
    out = subprocess.run(["aws", "logs", "get-log-events", "--log-group-name", group,
                          "--log-stream-name", "s", "--start-from-head", "--limit", "3",
                          "--endpoint-url", fargo.endpoint],
                         capture_output=True, text=True, env=fargo.env(), timeout=60)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [e["message"] for e in doc["events"]] == ["m0000", "m0001", "m0002"]
    assert set(doc["events"][0]) == {"timestamp", "message", "ingestionTime"}


def test_filter_log_events(logs, group, fargo):
    for s in ("web-1", "web-2", "db"):
        logs.create_log_stream(logGroupName=group, logStreamName=s)
    t = now_ms() - 10_000
    logs.put_log_events(logGroupName=group, logStreamName="web-1", logEvents=[
        {"timestamp": t, "message": "ERROR disk full"},
        {"timestamp": t + 2, "message": '{"level": "error", "latency": 250}'},
        {"timestamp": t + 4, "message": "INFO fine"}])
    logs.put_log_events(logGroupName=group, logStreamName="web-2", logEvents=[
        {"timestamp": t + 1, "message": "WARN slow"},
        {"timestamp": t + 3, "message": '{"level": "info", "latency": 50}'}])
    logs.put_log_events(logGroupName=group, logStreamName="db", logEvents=[
        {"timestamp": t + 5, "message": "ERROR timeout"}])

    def messages(**kw) -> list[str]:
        pages = logs.get_paginator("filter_log_events").paginate(logGroupName=group, **kw)
        return [e["message"] for p in pages for e in p["events"]]

    assert messages() == ["ERROR disk full", "WARN slow", '{"level": "error", "latency": 250}',
                          '{"level": "info", "latency": 50}', "INFO fine", "ERROR timeout"]
    assert messages(filterPattern="ERROR") == ["ERROR disk full", "ERROR timeout"]
    assert messages(filterPattern="ERROR -timeout") == ["ERROR disk full"]
    assert messages(filterPattern="?WARN ?INFO") == ["WARN slow", "INFO fine"]
    assert messages(filterPattern='"disk full"') == ["ERROR disk full"]
    assert messages(filterPattern='{ $.level = "error" }') == ['{"level": "error", "latency": 250}']
    assert messages(filterPattern="{ $.latency > 100 || $.latency < 60 }") == [
        '{"level": "error", "latency": 250}', '{"level": "info", "latency": 50}']
    assert messages(filterPattern="[level = ERROR, what, ...]") == ["ERROR disk full",
                                                                    "ERROR timeout"]
    assert messages(logStreamNames=["db", "web-2"]) == ["WARN slow",
                                                        '{"level": "info", "latency": 50}',
                                                        "ERROR timeout"]
    assert messages(logStreamNamePrefix="web-", filterPattern="ERROR") == ["ERROR disk full"]
    assert messages(startTime=t + 2, endTime=t + 4) == [
        '{"level": "error", "latency": 250}', '{"level": "info", "latency": 50}', "INFO fine"]
    pages = list(logs.get_paginator("filter_log_events").paginate(
        logGroupIdentifier=f"arn:aws:logs:us-east-1:000000000000:log-group:{group}:*",
        PaginationConfig={"PageSize": 2}))
    evs = [e for p in pages for e in p["events"]]
    assert len(evs) == 6 and all(len(p["events"]) <= 2 for p in pages)
    assert "nextToken" not in pages[-1] and len(pages) in (3, 4)
    assert len({e["eventId"] for e in evs}) == 6 and evs[0]["logStreamName"] == "web-1"
    assert set(evs[0]) == {"logStreamName", "timestamp", "message", "ingestionTime", "eventId"}
    assert messages(filterPattern="%ERR.R-?t[a-z]+out%") == []  # a space is no regex text
    assert messages(filterPattern="%^[WI][A-Z]+$%") == []
    assert messages(filterPattern="%^[WI][A-Z]+%") == ["WARN slow", "INFO fine"]
    assert messages(filterPattern="%t[a-z]+out$%") == ["ERROR timeout"]
    for bad in ('"unterminated', "{ $.a = }", "%ERR(O)R%", "x" * 1025):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            logs.filter_log_events(logGroupName=group, filterPattern=bad)
        assert err(exc)[0] == "InvalidParameterException", bad
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.filter_log_events(logGroupName=group, logStreamNames=["db"],
                               logStreamNamePrefix="d")
    assert err(exc)[0] == "InvalidParameterException"
    out = subprocess.run(["aws", "logs", "filter-log-events", "--log-group-name", group,
                          "--filter-pattern", "ERROR", "--endpoint-url", fargo.endpoint],
                         capture_output=True, text=True, env=fargo.env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert [e["message"] for e in json.loads(out.stdout)["events"]] == ["ERROR disk full",
                                                                      "ERROR timeout"]


def test_retention_is_enforced(logs, group):
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    old = now_ms() - 3 * DAY
    logs.put_log_events(logGroupName=group, logStreamName="s",
                        logEvents=[{"timestamp": old + i, "message": f"old {i}"}
                                   for i in range(100)])
    logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=events("fresh"))
    stored = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["storedBytes"]
    assert stored > 100 * 26
    for bad in (2, 0, 10_000):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            logs.put_retention_policy(logGroupName=group, retentionInDays=bad)
        assert err(exc)[0] == "InvalidParameterException"
    logs.put_retention_policy(logGroupName=group, retentionInDays=1)
    got = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True)
    assert [e["message"] for e in got["events"]] == ["fresh"]  # hidden at once
    assert [e["message"] for e in logs.filter_log_events(logGroupName=group)["events"]] == \
        ["fresh"]
    deadline = time.time() + 10
    while True:  # the sweep runs soon after the policy changed
        g = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]
        if g["storedBytes"] == len("fresh") + 26:
            break
        assert time.time() < deadline, g
        time.sleep(0.2)
    assert g["retentionInDays"] == 1
    out = logs.put_log_events(logGroupName=group, logStreamName="s",
                              logEvents=[{"timestamp": now_ms() - 2 * DAY, "message": "x"},
                                         {"timestamp": now_ms(), "message": "y"}])
    assert out["rejectedLogEventsInfo"] == {"expiredLogEventEndIndex": 1}
    logs.delete_retention_policy(logGroupName=group)
    assert "retentionInDays" not in logs.describe_log_groups(
        logGroupNamePrefix=group)["logGroups"][0]
    # The swept events are gone for good, not merely hidden.
    got = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True)
    assert [e["message"] for e in got["events"]] == ["fresh", "y"]


def test_tags(logs, group):
    arn = f"arn:aws:logs:us-east-1:000000000000:log-group:{group}"
    logs.tag_log_group(logGroupName=group, tags={"a": "1", "b": "2"})
    logs.untag_log_group(logGroupName=group, tags=["a"])
    assert logs.list_tags_log_group(logGroupName=group)["tags"] == {"b": "2"}
    logs.tag_resource(resourceArn=arn, tags={"c": "3"})
    logs.tag_resource(resourceArn=arn + ":*", tags={"d": "4"})
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"b": "2", "c": "3", "d": "4"}
    logs.untag_resource(resourceArn=arn, tagKeys=["b", "zz"])
    assert logs.list_tags_for_resource(resourceArn=arn + ":*")["tags"] == {"c": "3", "d": "4"}
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.tag_resource(resourceArn=arn, tags={f"k{i}": "v" for i in range(49)})
    assert err(exc)[0] == "TooManyTagsException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.tag_log_group(logGroupName=group, tags={"aws:x": "y"})
    assert err(exc)[0] == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.list_tags_for_resource(resourceArn=arn + "-none")
    assert err(exc) == ("ResourceNotFoundException", "The specified log group does not exist.")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.list_tags_log_group(logGroupName=group + "-none")
    assert err(exc)[0] == "ResourceNotFoundException"


def test_other_operations_are_refused_by_name(logs, group, fargo):
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.put_metric_filter(logGroupName=group, filterName="f", filterPattern="ERROR",
                               metricTransformations=[{"metricName": "m",
                                                       "metricNamespace": "n",
                                                       "metricValue": "1"}])
    assert err(exc) == ("InvalidOperationException", err(exc)[1])
    assert err(exc)[1].startswith("fargo does not implement PutMetricFilter")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        logs.start_query(logGroupName=group, startTime=0, endTime=1, queryString="fields @m")
    assert "fargo does not implement StartQuery" in err(exc)[1]
    r = send(fargo, "POST", "/", b'{"logGroupName": 5}',
             {"X-Amz-Target": "Logs_20140328.CreateLogGroup", "Content-Type": JSON_TYPE},
             service="logs")
    assert json_error(r.status_code, r.headers, r.content) == "SerializationException"


def _read_until(proc: subprocess.Popen, wanted: list[str], timeout: float) -> str:
    """What the process printed until every wanted text has appeared (or the time is up)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    out = ""
    deadline = time.time() + timeout
    while not all(w in out for w in wanted) and time.time() < deadline:
        if sel.select(timeout=max(0.0, deadline - time.time())):
            chunk = os.read(proc.stdout.fileno(), 65536).decode()
            if not chunk:
                break
            out += chunk
    return out


@pytest.mark.skipif(not shutil.which(CLI_V2), reason="the AWS CLI v2 (Debian's awscli) is "
                    "not installed: scripts/setup.sh installs it")
def test_aws_logs_tail(logs, group, fargo):
    logs.create_log_stream(logGroupName=group, logStreamName="app")
    logs.put_log_events(logGroupName=group, logStreamName="app",
                        logEvents=events("INFO before", "ERROR before", at=now_ms() - 60_000))
    env = dict(fargo.env(), AWS_PAGER="", PYTHONUNBUFFERED="1")
    base = [CLI_V2, "logs", "tail", group, "--endpoint-url", fargo.endpoint,
            "--region", "us-east-1", "--format", "short", "--color", "off"]
    done = subprocess.run(base + ["--since", "10m"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert [line.split(" ", 1)[1] for line in done.stdout.splitlines()] == \
        ["INFO before", "ERROR before"]
    follow = subprocess.Popen(base + ["--follow", "--since", "10m", "--filter-pattern", "ERROR"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        first = _read_until(follow, ["ERROR before"], 20)
        assert "ERROR before" in first and "INFO" not in first
        logs.put_log_events(logGroupName=group, logStreamName="app",
                            logEvents=events("ERROR one", "INFO skipped", "ERROR two"))
        later = _read_until(follow, ["ERROR one", "ERROR two"], 15)
        assert "ERROR one" in later and "ERROR two" in later, (later, follow.poll())
        assert "INFO" not in later and "ERROR before" not in later  # no repeats
    finally:
        follow.send_signal(signal.SIGINT)
        try:
            follow.wait(timeout=10)
        except subprocess.TimeoutExpired:
            follow.kill()
            follow.wait()


def test_events_and_deletions_survive_a_sigkill(fargo_servers):
    srv = fargo_servers(name="cwlogs-kill")
    c = srv.client("logs")
    c.create_log_group(logGroupName="/keep")
    c.create_log_stream(logGroupName="/keep", logStreamName="s")
    c.put_retention_policy(logGroupName="/keep", retentionInDays=7)
    c.put_log_events(logGroupName="/keep", logStreamName="s", logEvents=events("one", "two"))
    c.create_log_group(logGroupName="/gone")
    c.create_log_stream(logGroupName="/gone", logStreamName="s")
    for k in range(5):
        c.put_log_events(logGroupName="/gone", logStreamName="s", logEvents=[
            {"timestamp": now_ms() + i, "message": f"x{k} {i}"} for i in range(2000)])
    c.delete_log_group(logGroupName="/gone")
    srv.kill()  # SIGKILL, wherever the deletion's blocks were
    srv.start()
    c = srv.client("logs")
    got = c.get_log_events(logGroupName="/keep", logStreamName="s", startFromHead=True)
    assert [e["message"] for e in got["events"]] == ["one", "two"]
    [g] = c.describe_log_groups()["logGroups"]
    assert (g["logGroupName"], g["retentionInDays"], g["storedBytes"]) == ("/keep", 7, 58)
    c.create_log_group(logGroupName="/gone")  # the name is free, the group empty
    c.create_log_stream(logGroupName="/gone", logStreamName="s")
    assert c.filter_log_events(logGroupName="/gone")["events"] == []
