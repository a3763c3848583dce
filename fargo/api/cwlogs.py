"""The CloudWatch Logs face: each request, already checked against botocore's logs shape by
awsjson.dispatch_json, becomes a call to control/cwlogs.py with named arguments; what it
returns is rendered in the API's member names. Reads and writes of events run in a worker
thread (the store's lock serializes their statements), so a long FilterLogEvents does not
hold up the server's loop. Every other operation of the model is refused by name."""

from __future__ import annotations

import asyncio

from ..control.cwlogs import CloudWatchLogs, LogGroup, LogStream, OutputEvent
from ..control.logsink import Event
from ..model.errors import ApiError
from . import shapes
from .awsjson import Handler, JsonObject

SERVICE = "logs"
PREFIX = "Logs_20140328"


def _group(g: LogGroup, brief: bool) -> JsonObject:
    out: JsonObject = {"logGroupName": g.name, "creationTime": g.created, "arn": g.arn + ":*"}
    if brief:  # with logGroupNamePattern AWS answers these three only
        return out
    if g.retention is not None:
        out["retentionInDays"] = g.retention
    out.update({"metricFilterCount": 0, "storedBytes": g.stored, "logGroupClass": g.cls,
                "logGroupArn": g.arn, "deletionProtectionEnabled": False})
    return out


def _stream(s: LogStream) -> JsonObject:
    out: JsonObject = {"logStreamName": s.name, "creationTime": s.created}
    if s.first_ts is not None:
        out["firstEventTimestamp"] = s.first_ts
    if s.last_ts is not None:
        out["lastEventTimestamp"] = s.last_ts
    if s.last_ingest is not None:
        out["lastIngestionTime"] = s.last_ingest
    # storedBytes of a stream: "always reported as zero" since 2019, as AWS does.
    out.update({"uploadSequenceToken": s.upload_token, "arn": s.arn, "storedBytes": 0})
    return out


def _event(e: OutputEvent) -> JsonObject:
    return {"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion_time}


def _filtered(e: OutputEvent) -> JsonObject:
    return {"logStreamName": e.stream, "timestamp": e.timestamp, "message": e.message,
            "ingestionTime": e.ingestion_time, "eventId": e.event_id}


def _paged(out: JsonObject, token: str | None) -> JsonObject:
    if token is not None:
        out["nextToken"] = token
    return out


def handlers(logs: CloudWatchLogs) -> dict[str, Handler]:
    """Action name -> handler(params, region), as awsjson.dispatch_json calls them.
    `unmask` is taken as it is: fargo masks nothing, so every event reads unmasked anyway;
    `interleaved` is ignored as AWS ignores it; `sequenceToken` too."""

    def create_log_group(p: JsonObject, region: str) -> JsonObject:
        logs.create_log_group(region, p["logGroupName"], tags=p.get("tags"),
                              kms_key_id=p.get("kmsKeyId"),
                              log_group_class=p.get("logGroupClass"),
                              deletion_protection=p.get("deletionProtectionEnabled"))
        return {}

    def delete_log_group(p: JsonObject, region: str) -> JsonObject:
        logs.delete_log_group(region, p["logGroupName"])
        return {}

    def describe_log_groups(p: JsonObject, region: str) -> JsonObject:
        pattern = p.get("logGroupNamePattern")
        groups, token = logs.describe_log_groups(
            region, prefix=p.get("logGroupNamePrefix"), pattern=pattern, limit=p.get("limit"),
            token=p.get("nextToken"), log_group_class=p.get("logGroupClass"),
            identifiers=p.get("logGroupIdentifiers"),
            include_linked=bool(p.get("includeLinkedAccounts")),
            accounts=p.get("accountIdentifiers"))
        return _paged({"logGroups": [_group(g, pattern is not None) for g in groups]}, token)

    def create_log_stream(p: JsonObject, region: str) -> JsonObject:
        logs.create_log_stream(region, p["logGroupName"], p["logStreamName"])
        return {}

    def delete_log_stream(p: JsonObject, region: str) -> JsonObject:
        logs.delete_log_stream(region, p["logGroupName"], p["logStreamName"])
        return {}

    def describe_log_streams(p: JsonObject, region: str) -> JsonObject:
        streams, token = logs.describe_log_streams(
            region, group=p.get("logGroupName"), identifier=p.get("logGroupIdentifier"),
            prefix=p.get("logStreamNamePrefix"), order_by=p.get("orderBy"),
            descending=bool(p.get("descending")), limit=p.get("limit"),
            token=p.get("nextToken"))
        return _paged({"logStreams": [_stream(s) for s in streams]}, token)

    async def put_log_events(p: JsonObject, region: str) -> JsonObject:
        events = [Event(e["timestamp"], e["message"]) for e in p["logEvents"]]
        result = await asyncio.to_thread(logs.put_log_events, region, p["logGroupName"],
                                         p["logStreamName"], events, entity=p.get("entity"))
        out: JsonObject = {"nextSequenceToken": result.next_token}
        a = result.accepted
        rejected = {k: v for k, v in (("tooNewLogEventStartIndex", a.too_new_start),
                                      ("tooOldLogEventEndIndex", a.too_old_end),
                                      ("expiredLogEventEndIndex", a.expired_end))
                    if v is not None}
        if rejected:
            out["rejectedLogEventsInfo"] = rejected
        return out

    async def get_log_events(p: JsonObject, region: str) -> JsonObject:
        page = await asyncio.to_thread(
            lambda: logs.get_log_events(
                region, p["logStreamName"], group=p.get("logGroupName"),
                identifier=p.get("logGroupIdentifier"), start=p.get("startTime"),
                end=p.get("endTime"), token=p.get("nextToken"), limit=p.get("limit"),
                from_head=bool(p.get("startFromHead"))))
        return {"events": [_event(e) for e in page.events], "nextForwardToken": page.forward,
                "nextBackwardToken": page.backward}

    async def filter_log_events(p: JsonObject, region: str) -> JsonObject:
        page = await asyncio.to_thread(
            lambda: logs.filter_log_events(
                region, group=p.get("logGroupName"), identifier=p.get("logGroupIdentifier"),
                streams=p.get("logStreamNames"), stream_prefix=p.get("logStreamNamePrefix"),
                start=p.get("startTime"), end=p.get("endTime"),
                pattern=p.get("filterPattern"), limit=p.get("limit"),
                token=p.get("nextToken")))
        # searchedLogStreams "returns an empty list" since 2020.
        return _paged({"events": [_filtered(e) for e in page.events],
                       "searchedLogStreams": []}, page.token)

    def put_retention_policy(p: JsonObject, region: str) -> JsonObject:
        logs.put_retention_policy(region, p["logGroupName"], p["retentionInDays"])
        return {}

    def delete_retention_policy(p: JsonObject, region: str) -> JsonObject:
        logs.delete_retention_policy(region, p["logGroupName"])
        return {}

    def tag_log_group(p: JsonObject, region: str) -> JsonObject:
        logs.tag_log_group(region, p["logGroupName"], p["tags"])
        return {}

    def untag_log_group(p: JsonObject, region: str) -> JsonObject:
        logs.untag_log_group(region, p["logGroupName"], p["tags"])
        return {}

    def list_tags_log_group(p: JsonObject, region: str) -> JsonObject:
        return {"tags": logs.list_tags_log_group(region, p["logGroupName"])}

    def tag_resource(p: JsonObject, region: str) -> JsonObject:
        logs.tag_resource(region, p["resourceArn"], p["tags"])
        return {}

    def untag_resource(p: JsonObject, region: str) -> JsonObject:
        logs.untag_resource(region, p["resourceArn"], p["tagKeys"])
        return {}

    def list_tags_for_resource(p: JsonObject, region: str) -> JsonObject:
        return {"tags": logs.list_tags_for_resource(region, p["resourceArn"])}

    implemented: dict[str, Handler] = {
        "CreateLogGroup": create_log_group, "DeleteLogGroup": delete_log_group,
        "DescribeLogGroups": describe_log_groups, "CreateLogStream": create_log_stream,
        "DeleteLogStream": delete_log_stream, "DescribeLogStreams": describe_log_streams,
        "PutLogEvents": put_log_events, "GetLogEvents": get_log_events,
        "FilterLogEvents": filter_log_events, "PutRetentionPolicy": put_retention_policy,
        "DeleteRetentionPolicy": delete_retention_policy, "TagLogGroup": tag_log_group,
        "UntagLogGroup": untag_log_group, "ListTagsLogGroup": list_tags_log_group,
        "TagResource": tag_resource, "UntagResource": untag_resource,
        "ListTagsForResource": list_tags_for_resource}
    refused = {op: _refuse(op) for op in shapes.service(SERVICE).operation_names
               if op not in implemented}
    return {**refused, **implemented}


def _refuse(op: str) -> Handler:
    def handler(p: JsonObject, region: str) -> JsonObject:
        raise ApiError(f"fargo does not implement {op}: of CloudWatch Logs it keeps log "
                       "groups, streams, their events, retention and tags.",
                       code="InvalidOperationException")
    return handler
