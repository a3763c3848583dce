"""CloudWatch's metrics face, in the three protocols of its botocore model: Smithy RPC v2
CBOR (POST /service/GraniteServiceVersion20100801/operation/OP, `smithy-protocol:
rpc-v2-cbor`), AWS JSON 1.0 (X-Amz-Target GraniteServiceVersion20100801.OP; what botocore
1.43 and the aws CLI send: it ranks json before CBOR) and the query protocol of older SDKs
(api/cloudwatch_query.py). Each reads the request into the same parameters (checked against
botocore's shape), the same handlers answer, and each writes the answer and the errors in its
own shape. CloudWatch is query-compatible: the JSON and CBOR errors carry `__type` (the error
shape's name) and the query code in x-amzn-query-error, which is what botocore's exceptions
are matched by. Operations of the model fargo does not serve (alarms, dashboards, streams,
Insights rules, anomaly detectors) are refused by name."""

from __future__ import annotations

import datetime
import functools
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiohttp import web
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape
from botocore.utils import parse_timestamp

from ..control.metrics import DataAnswer, Datapoint, Metrics
from ..model.errors import ApiError
from ..model.metricrules import (
    DataQuery,
    InvalidParameterValue,
    MetricId,
    MetricInput,
    StatisticSetInput,
    StatisticsQuery,
    check_dims,
)
from ..model.names import ACCOUNT
from . import body, cborwire, shapes
from .auth import authenticate, permit
from .body import BodyError
from .errors import HttpError, http_status

SERVICE = "cloudwatch"  # botocore's name
SIGNING = "monitoring"  # the SigV4 scope's service
PREFIX = "GraniteServiceVersion20100801"  # the JSON target's and CBOR path's service name
CBOR_PATH = f"/service/{PREFIX}/operation/"
METRICS = web.AppKey("cloudwatch_metrics", Metrics)
# What a task role's credentials may call (they may only read; api/auth.py's permit).
READS = frozenset({"GetMetricData", "GetMetricStatistics", "ListMetrics"})
# The query protocol's codes of errors the model does not list (auth, the protocol's own).
_QUERY_CODES = {
    "MissingAuthenticationTokenException": ("MissingAuthenticationToken", 403),
    "UnrecognizedClientException": ("InvalidClientTokenId", 403),
    "InvalidSignatureException": ("SignatureDoesNotMatch", 403),
    "ExpiredTokenException": ("ExpiredToken", 400),
    "AccessDeniedException": ("AccessDenied", 403),
    "SerializationException": ("MalformedInput", 400),
    "UnknownOperationException": ("InvalidAction", 400),
}

Handler = Callable[[dict[str, Any]], dict[str, Any]]


# ---- errors
@functools.cache
def query_code(code: str) -> str:
    """The query protocol's name of an error (the model's error code for a modelled one)."""
    for shape in shapes.service(SERVICE).error_shapes:
        if shape.name == code:
            return str(shape.metadata.get("error", {}).get("code", code))
    return _QUERY_CODES.get(code, (code, 400))[0]


def status_of(err: ApiError) -> int:
    return http_status(err, SERVICE)


def _error_headers(err: ApiError, status: int) -> dict[str, str]:
    fault = "Receiver" if status >= 500 else "Sender"
    return {"x-amzn-RequestId": str(uuid.uuid4()),
            "x-amzn-query-error": f"{query_code(err.code)};{fault}"}


def json_error(err: ApiError) -> web.Response:
    status = status_of(err)
    return web.Response(body=orjson.dumps({"__type": err.code, "message": err.message}),
                        status=status, content_type="application/x-amz-json-1.0",
                        headers=_error_headers(err, status))


def cbor_error(err: ApiError) -> web.Response:
    status = status_of(err)
    headers = {**_error_headers(err, status), "smithy-protocol": "rpc-v2-cbor"}
    return web.Response(body=cborwire.dumps({"__type": err.code, "message": err.message}),
                        status=status, content_type="application/cbor", headers=headers)


def unsupported(action: str) -> ApiError:
    return ApiError(f"{action[:100]} is not supported by fargo: its CloudWatch keeps metrics "
                    "(PutMetricData, GetMetricData, GetMetricStatistics, ListMetrics), no "
                    "alarms, dashboards, metric streams, Insights rules or anomaly "
                    "detectors.", code="InvalidAction")


# ---- reading the parameters into control's arguments
def epoch(value: Any, name: str) -> float:
    """A timestamp as any protocol gives it: a datetime (CBOR's tag 1), epoch seconds
    (JSON), or ISO 8601 text (query)."""
    try:
        if isinstance(value, datetime.datetime):
            when = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
            return when.timestamp()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return parse_timestamp(str(value)).timestamp()
    except (ValueError, OverflowError, OSError, TypeError):
        raise InvalidParameterValue(f"The parameter {name} is not a valid timestamp.") \
            from None


def _pairs(items: list[dict[str, Any]] | None) -> list[tuple[str, str]]:
    return [(str(d["Name"]), str(d["Value"])) for d in items or []]


def _metric(doc: dict[str, Any], path: str) -> MetricId:
    if "Namespace" not in doc or "MetricName" not in doc:
        missing = "Namespace" if "Namespace" not in doc else "MetricName"
        raise ApiError(f"The parameter {path}.{missing} is required.",
                       code="MissingRequiredParameterException")
    return MetricId(doc["Namespace"], doc["MetricName"],
                    check_dims(_pairs(doc.get("Dimensions")), f"{path}.Dimensions"))


def _floats(items: list[Any] | None) -> list[float] | None:
    return None if items is None else [float(v) for v in items]


def put_metric_data(metrics: Metrics, p: dict[str, Any]) -> dict[str, Any]:
    if p.get("EntityMetricData"):
        raise InvalidParameterValue("The parameter EntityMetricData is not supported by "
                                    "fargo: it has no entities to relate metrics to.")
    data = []
    for i, m in enumerate(p.get("MetricData") or []):
        s = m.get("StatisticValues")
        data.append(MetricInput(
            name=m["MetricName"], dims=_pairs(m.get("Dimensions")),
            timestamp=epoch(m["Timestamp"], f"MetricData.member.{i + 1}.Timestamp")
            if "Timestamp" in m else None,
            value=float(m["Value"]) if "Value" in m else None,
            values=_floats(m.get("Values")), counts=_floats(m.get("Counts")),
            statistic=StatisticSetInput(float(s["SampleCount"]), float(s["Sum"]),
                                        float(s["Minimum"]), float(s["Maximum"]))
            if s is not None else None,
            unit=m.get("Unit"), storage_resolution=m.get("StorageResolution")))
    metrics.put(p["Namespace"], data)
    return {}


def _datapoint(d: Datapoint) -> dict[str, Any]:
    doc: dict[str, Any] = {"Timestamp": d.timestamp, **d.statistics, "Unit": d.unit}
    if d.extended:
        doc["ExtendedStatistics"] = d.extended
    return doc


def get_metric_statistics(metrics: Metrics, p: dict[str, Any]) -> dict[str, Any]:
    q = StatisticsQuery(
        metric=MetricId(p["Namespace"], p["MetricName"],
                        check_dims(_pairs(p.get("Dimensions")), "Dimensions")),
        start=epoch(p["StartTime"], "StartTime"), end=epoch(p["EndTime"], "EndTime"),
        period=int(p["Period"]), statistics=tuple(p.get("Statistics") or ()),
        extended=tuple(p.get("ExtendedStatistics") or ()), unit=p.get("Unit"))
    return {"Label": q.metric.name,
            "Datapoints": [_datapoint(d) for d in metrics.statistics(q)]}


def _data_query(doc: dict[str, Any], i: int) -> DataQuery:
    stat = doc.get("MetricStat")
    path = f"MetricDataQueries.member.{i + 1}"
    return DataQuery(
        id=doc["Id"],
        metric=_metric(stat["Metric"], f"{path}.MetricStat.Metric") if stat else None,
        period=int(stat["Period"]) if stat else None,
        stat=stat["Stat"] if stat else None, unit=stat.get("Unit") if stat else None,
        expression=doc.get("Expression"), label=doc.get("Label"),
        return_data=doc.get("ReturnData", True), account_id=doc.get("AccountId"),
        outer_period=doc.get("Period"))


def _data_answer(a: DataAnswer) -> dict[str, Any]:
    out: dict[str, Any] = {
        "MetricDataResults": [{"Id": r.id, "Label": r.label, "Timestamps": r.timestamps,
                               "Values": r.values, "StatusCode": r.status}
                              for r in a.results],
        "Messages": []}
    if a.next_token:
        out["NextToken"] = a.next_token
    return out


def get_metric_data(metrics: Metrics, p: dict[str, Any]) -> dict[str, Any]:
    zone = (p.get("LabelOptions") or {}).get("Timezone")
    if zone not in (None, "+0000", "-0000"):
        raise InvalidParameterValue("The parameter LabelOptions.Timezone is not supported by "
                                    "fargo: labels are given as sent, in UTC.")
    queries = [_data_query(q, i) for i, q in enumerate(p.get("MetricDataQueries") or [])]
    answer = metrics.data(queries, epoch(p["StartTime"], "StartTime"),
                          epoch(p["EndTime"], "EndTime"),
                          ascending=p.get("ScanBy") == "TimestampAscending",
                          max_datapoints=p.get("MaxDatapoints"),
                          next_token=p.get("NextToken"))
    return _data_answer(answer)


def list_metrics(metrics: Metrics, p: dict[str, Any]) -> dict[str, Any]:
    owner = p.get("OwningAccount")
    filters = [(str(d["Name"]), d.get("Value")) for d in p.get("Dimensions") or []]
    found, token = metrics.list(p.get("Namespace"), p.get("MetricName"), filters,
                                p.get("RecentlyActive") == "PT3H", p.get("NextToken"))
    if owner is not None and owner != ACCOUNT:
        found, token = [], None  # fargo's one account owns them all
    out: dict[str, Any] = {"Metrics": [
        {"Namespace": m.namespace, "MetricName": m.name,
         "Dimensions": [{"Name": n, "Value": v} for n, v in m.dims]} for m in found]}
    if p.get("IncludeLinkedAccounts"):
        out["OwningAccounts"] = [ACCOUNT] * len(found)
    if token:
        out["NextToken"] = token
    return out


def handlers(metrics: Metrics) -> dict[str, Handler]:
    return {
        "PutMetricData": functools.partial(put_metric_data, metrics),
        "GetMetricStatistics": functools.partial(get_metric_statistics, metrics),
        "GetMetricData": functools.partial(get_metric_data, metrics),
        "ListMetrics": functools.partial(list_metrics, metrics),
    }


# ---- the common path of the three protocols
def operation(action: str) -> OperationModel:
    op = shapes.operation(SERVICE, action)
    if op is None:
        raise ApiError(f"Unknown operation {action[:200]!r}.", code="UnknownOperationException")
    return op


def check(op: OperationModel, params: Any) -> dict[str, Any]:
    """botocore's shape check, in CloudWatch's words: a missing member is MissingParameter,
    anything else InvalidParameterValue."""
    missing, invalid = "MissingRequiredParameterException", "InvalidParameterValueException"
    try:
        shapes.validate(op, params, invalid, missing)
    except ApiError as err:
        if err.code == missing and "Missing required parameter" not in err.message:
            err.code = invalid
        raise
    assert isinstance(params, dict)
    return params


def answer(request: web.Request, op: OperationModel, params: dict[str, Any]) -> dict[str, Any]:
    """The handler's answer to checked parameters (access first: a task role only reads)."""
    if op.name not in READS:
        permit(request, op.name, "json")
    handler = handlers(request.app[METRICS]).get(op.name)
    if handler is None:
        raise unsupported(op.name)
    return handler(params)


def shaped(shape: Shape | None, value: Any, stamp: Callable[[float], Any]) -> Any:
    """An answer with its timestamps written as the protocol writes them."""
    if shape is None or value is None:
        return value
    if isinstance(shape, StructureShape):
        return {k: shaped(shape.members.get(k), v, stamp) for k, v in value.items()}
    if isinstance(shape, ListShape):
        return [shaped(shape.member, v, stamp) for v in value]
    if isinstance(shape, MapShape):
        return {k: shaped(shape.value, v, stamp) for k, v in value.items()}
    if shape.type_name == "timestamp":
        return stamp(float(value))
    if shape.type_name in ("double", "float"):
        return float(value)
    return value


async def _signed_body(request: web.Request) -> bytes:
    sent = await body.read(request)
    authenticate(request, sent, SIGNING, "json")
    return body.decoded(request, sent)


async def serve_json(request: web.Request) -> web.Response:
    """AWS JSON 1.0: X-Amz-Target GraniteServiceVersion20100801.OP."""
    try:
        if request.method != "POST":
            raise HttpError(f"The JSON protocol takes POST, not {request.method}.",
                            "UnknownOperationException", 405)
        data = await _signed_body(request)
        target = request.headers.get("X-Amz-Target", "")
        op = operation(target.removeprefix(PREFIX + "."))
        try:
            params = orjson.loads(data or b"{}")
        except orjson.JSONDecodeError as err:
            raise ApiError(f"Malformed request body: {err}"[:300],
                           code="SerializationException") from None
        result = answer(request, op, check(op, params))
        out = shaped(op.output_shape, result, lambda t: t)
    except ApiError as err:
        return json_error(err)
    except BodyError as err:
        return json_error(HttpError(err.message, "SerializationException", 400))
    return web.Response(body=orjson.dumps(out or {}), content_type="application/x-amz-json-1.0",
                        headers={"x-amzn-RequestId": str(uuid.uuid4())})


async def serve_cbor(request: web.Request) -> web.Response:
    """Smithy RPC v2 CBOR: POST /service/GraniteServiceVersion20100801/operation/OP."""
    try:
        if request.match_info.get("service") != PREFIX:
            raise ApiError(f"Unknown service {request.match_info.get('service', '')[:100]!r}"
                           f": this path serves {PREFIX} (CloudWatch).",
                           code="UnknownOperationException")
        data = await _signed_body(request)
        op = operation(request.match_info.get("operation", ""))
        try:
            params = cborwire.loads(data) if data else {}
        except cborwire.CborError as err:
            raise ApiError(f"Malformed CBOR request body: {err}",
                           code="SerializationException") from None
        result = answer(request, op, check(op, params))
        out = shaped(op.output_shape, result, cborwire.Timestamp)
    except ApiError as err:
        return cbor_error(err)
    except BodyError as err:
        return cbor_error(HttpError(err.message, "SerializationException", 400))
    return web.Response(body=cborwire.dumps(out or {}), content_type="application/cbor",
                        headers={"x-amzn-RequestId": str(uuid.uuid4()),
                                 "smithy-protocol": "rpc-v2-cbor"})


def install(app: web.Application, metrics: Metrics) -> None:
    """The CBOR route and the handlers (the JSON and query ones are found by api/app.py's
    root)."""
    app[METRICS] = metrics
    app.router.add_post("/service/{service}/operation/{operation}", serve_cbor)


def serves_json(headers: Mapping[str, str]) -> bool:
    return headers.get("X-Amz-Target", "").startswith(PREFIX + ".")
