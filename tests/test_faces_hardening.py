"""Every answer of every face is in that face's error shape, whatever goes wrong (issue 11,
points 3 and 4): bodies not in their Content-Encoding, lone surrogates, request lines and
headers past aiohttp's defaults, EC2 queries by GET, unknown paths and methods, numbers past
their type, nesting, non-UTF-8, and refused HTTP on the Kubernetes port. Raw requests are
SigV4-signed over exactly the bytes sent, as an SDK would sign them."""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import uuid
import zlib

import botocore.exceptions
import pytest
import requests

from tests.faceshapes import (
    ECS_TARGET,
    FORM_TYPE,
    JSON_TYPE,
    SHAPES,
    ec2_error,
    eks_error,
    error_of,
    json_error,
    kube_error,
    send,
)

LIST_CLUSTERS = {"Content-Type": JSON_TYPE, "X-Amz-Target": ECS_TARGET + "ListClusters"}


def code_of(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


# ---- point 3: the four 500s
@pytest.mark.parametrize("encoding,body", [
    ("gzip", b"{}"), ("deflate", b"{}"), ("gzip", gzip.compress(b"{}")[:-6]),
    ("br", b"{}"), ("zstd", b"{}"), ("x-unknown", b"{}"),
], ids=["gzip-plain", "deflate-plain", "gzip-cut", "br", "zstd", "unknown"])  # stable ids
def test_body_not_in_its_encoding_is_a_json_error(fargo, encoding, body):
    r = send(fargo, "POST", "/", body, {**LIST_CLUSTERS, "Content-Encoding": encoding})
    assert json_error(r.status_code, r.headers, r.content) == "SerializationException"
    assert "gzip" in r.json()["message"] or encoding in r.json()["message"]


def test_body_not_in_its_encoding_on_ec2_and_eks(fargo):
    r = send(fargo, "POST", "/", b"Action=DescribeVpcs", {"Content-Type": FORM_TYPE,
             "Content-Encoding": "gzip"}, service="ec2")
    assert ec2_error(r.status_code, r.headers, r.content) == "InvalidRequest"
    r = send(fargo, "GET", "/clusters", b"xx", {"Content-Encoding": "deflate"}, service="eks")
    assert eks_error(r.status_code, r.headers, r.content) == "BadRequestException"


def test_bodies_in_gzip_and_deflate_are_read(fargo):
    """What aiohttp decoded before is still decoded (the signature covers the bytes sent)."""
    for encoding, packed in (("gzip", gzip.compress(b"{}")), ("deflate", zlib.compress(b"{}")),
                             ("deflate", zlib.compress(b"{}")[2:-4])):  # raw deflate too
        r = send(fargo, "POST", "/", packed, {**LIST_CLUSTERS, "Content-Encoding": encoding})
        assert r.status_code == 200 and "clusterArns" in r.json(), r.text
    r = send(fargo, "POST", "/", gzip.compress(b"Action=DescribeVpcs&Version=2016-11-15"),
             {"Content-Type": FORM_TYPE, "Content-Encoding": "gzip"}, service="ec2")
    assert r.status_code == 200 and "<vpcSet>" in r.text


def test_gzip_bomb_stops_at_the_body_limit(fargo):
    bomb = gzip.compress(b"[" + b" " * (8 * 1024 * 1024) + b"]")
    r = send(fargo, "POST", "/", bomb, {**LIST_CLUSTERS, "Content-Encoding": "gzip"})
    assert json_error(r.status_code, r.headers, r.content) == "SerializationException"
    assert "larger than" in r.json()["message"]


def test_lone_surrogates_are_refused_not_echoed(ecs):
    for call in (lambda: ecs.describe_clusters(clusters=["\udfff"]),
                 lambda: ecs.describe_tasks(tasks=["\udfff"]),
                 lambda: ecs.describe_tasks(tasks=["ok", "a\ud800b"])):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call()
        assert code_of(exc) == "SerializationException"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # A pair is one character, not a lone surrogate: echoed back as sent.
    out = ecs.describe_clusters(clusters=["\U0001f600"])
    assert out["failures"][0]["arn"].endswith("\U0001f600")


# ---- point 4: limits at least AWS's, and what is past them in the face's shape
def _with_header(client, size: int) -> None:
    def add(request, **kw):
        request.headers["X-Padding"] = "p" * size
    client.meta.events.register("before-sign", add)


def test_large_headers_and_uri_labels(fargo):
    ecs, ec2, eks = fargo.client("ecs"), fargo.client("ec2"), fargo.client("eks")
    _with_header(ecs, 20_000)  # past aiohttp's 8,190, within AWS's 16 KiB+
    assert "clusterArns" in ecs.list_clusters()
    _with_header(ec2, 20_000)
    assert ec2.describe_vpcs()["Vpcs"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:  # a 20,000-byte label
        eks.describe_cluster(name="n" * 20_000)
    assert code_of(exc) == "ResourceNotFoundException"
    # Past fargo's 64 KiB: refused, in each face's own shape (not error code '400').
    big_ecs, big_ec2, big_eks = (fargo.client(s) for s in ("ecs", "ec2", "eks"))
    _with_header(big_ecs, 70_000)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        big_ecs.list_clusters()
    assert code_of(exc) == "SerializationException"
    _with_header(big_ec2, 70_000)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        big_ec2.describe_vpcs()
    assert code_of(exc) == "InvalidRequest"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        big_eks.describe_cluster(name="n" * 70_000)
    assert code_of(exc) == "BadRequestException"
    assert "request line" in exc.value.response["Error"]["Message"]


def test_ec2_query_by_get_is_served(fargo):
    """EC2's query API takes GET with the query string as well as POST."""
    r = send(fargo, "GET", "/?Action=DescribeVpcs&Version=2016-11-15", service="ec2")
    assert r.status_code == 200 and "<DescribeVpcsResponse" in r.text
    r = send(fargo, "GET", "/?Action=DescribeVpcs&VpcId.1=vpc-00000000", service="ec2")
    assert ec2_error(r.status_code, r.headers, r.content) == "InvalidVpcID.NotFound"
    r = send(fargo, "POST", "/", b"Action=DescribeVpcs&VpcId.1=%ff",
             {"Content-Type": FORM_TYPE}, service="ec2")
    assert ec2_error(r.status_code, r.headers, r.content) == "InvalidParameterValue"
    r = send(fargo, "PUT", "/?Action=DescribeVpcs", service="ec2")
    assert r.status_code == 405
    assert ec2_error(r.status_code, r.headers, r.content) == "InvalidAction"
    r = send(fargo, "GET", "/?Action=DescribeVpcs", sign=False)
    assert ec2_error(r.status_code, r.headers, r.content) == "AuthFailure"


@pytest.mark.parametrize("method,path,face", [
    ("GET", "/nope", "json"), ("POST", "/fargo/health", "json"), ("DELETE", "/", "ec2"),
    ("PATCH", "/clusters/x", "eks"), ("GET", "/clusters/a/b/c/d", "eks"),
    ("PUT", "/clusters", "eks"), ("GET", "/eks", "kube"), ("POST", "/openapi/v3", "kube"),
    ("GET", "/eks/" + "c" * 30_000 + "/api/v1/pods", "kube"), ("GET", "/admission/mutate", "kube"),
])
def test_unknown_paths_and_methods(fargo, method, path, face):
    r = send(fargo, method, path, sign=False)
    assert r.status_code in (401, 403, 404, 405), r.text
    error_of(face, r)


def test_json_protocol_wants_post(fargo):
    r = send(fargo, "GET", "/", headers=LIST_CLUSTERS)
    assert r.status_code == 405
    assert json_error(r.status_code, r.headers, r.content) == "UnknownOperationException"


@pytest.mark.parametrize("body,code", [
    (json.dumps({"taskDefinition": "x", "count": 2 ** 63}), "InvalidParameterException"),
    (json.dumps({"taskDefinition": "x", "count": 10 ** 30}), "SerializationException"),
    (json.dumps({"taskDefinition": "x", "overrides": {"memory": "1", "containerOverrides": [
        {"name": "a", "cpu": -(2 ** 40)}]}}), "InvalidParameterException"),
    ('{"taskDefinition": "x", "count": NaN}', "SerializationException"),
    ("[" * 5000 + "]" * 5000, "SerializationException"),
    ('\ufeff{"taskDefinition": "x"}', "SerializationException"),
    ('{"taskDefinition": "x"}'.encode("utf-16"), "SerializationException"),
])
def test_numbers_nesting_and_encodings_on_json(fargo, body, code):
    raw = body if isinstance(body, bytes) else body.encode()
    r = send(fargo, "POST", "/", raw, {"Content-Type": JSON_TYPE,
                                       "X-Amz-Target": ECS_TARGET + "RunTask"})
    assert json_error(r.status_code, r.headers, r.content) == code


def test_numbers_nesting_and_encodings_on_eks(fargo):
    for body in (b"[" * 5000 + b"]" * 5000, b"\xff\xfe{}", b'{"name": "\\udfff"}'):
        r = send(fargo, "POST", "/clusters", body, {"Content-Type": "application/json"},
                 service="eks")
        assert eks_error(r.status_code, r.headers, r.content) == "BadRequestException"
    r = send(fargo, "GET", "/clusters?maxResults=99999999999999999999", service="eks")
    assert eks_error(r.status_code, r.headers, r.content) == "InvalidParameterException"


def test_secrets_manager_shapes(fargo):
    headers = {"Content-Type": JSON_TYPE, "X-Amz-Target": "secretsmanager.CreateSecret"}
    for body in (b'{"Name": "\\udfff"}', b"\xff", b'{"Name": 5}'):
        r = send(fargo, "POST", "/", body, headers, service="secretsmanager")
        assert json_error(r.status_code, r.headers, r.content) == "SerializationException"


def _raw_exchange(port: int, data: bytes, tls: bool) -> bytes:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        sock = ctx.wrap_socket(sock)
    with sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


def _split(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("data,face", [
    (b"GARBAGE\r\n\r\n", "json"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: a.b\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"ZZZ\r\n", "json"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nAction",
     "ec2"),
    (b"GET /clusters HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", "eks"),
    (b"GET /eks/c/api/v1/pods HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 70_000 + b"\r\n\r\n", "kube"),
])
def test_http_the_parser_refuses(fargo, data, face):
    status, headers, body = _split(_raw_exchange(fargo.port, data, tls=False))
    SHAPES[face](status, headers, body)


def test_admission_webhook_refusals_are_statuses(fargo):
    for body in (b"{nope", b"[" * 5000, b'{"request": {"uid": 5}}'):
        r = send(fargo, "POST", "/admission/validate", body, {"Content-Type": "application/json"},
                 sign=False)
        assert kube_error(r.status_code, r.headers, r.content) == "BadRequest"


def test_kube_port_refusals_are_statuses(fargo):
    for data in (b"GARBAGE\r\n\r\n",
                 b"GET /eks/c/api/v1/pods HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 70_000 + b"\r\n\r\n",
                 b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"):
        status, headers, body = _split(_raw_exchange(fargo.kube_port, data, tls=True))
        assert kube_error(status, headers, body)
        assert status in (400, 414, 431)


@pytest.fixture(scope="module")
def kube(fargo):
    """An EKS cluster of the session's server, its kube base URL and bearer token."""
    eks, ec2 = fargo.client("eks"), fargo.client("ec2")
    name = "h" + uuid.uuid4().hex[:8]
    eks.create_cluster(name=name, roleArn="arn:aws:iam::000000000000:role/eks",
                       resourcesVpcConfig={"subnetIds": [
                           s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]]})
    token = send(fargo, "GET", f"/fargo/v1/eks/{name}/token", service="fargo").json()["token"]
    yield (f"https://127.0.0.1:{fargo.kube_port}/eks/{name}",
           {"Authorization": f"Bearer {token}"}, str(fargo.state_dir / "tls" / "ca.pem"))
    eks.delete_cluster(name=name)


@pytest.mark.parametrize("method,path,headers,body", [
    ("GET", "/api/v1/pods?watch=1&timeoutSeconds=abc", {}, None),
    ("GET", "/api/v1/pods?watch=1&timeoutSeconds=-1", {}, None),
    ("GET", "/api/v1/pods?watch=1&resourceVersion=%ff", {}, None),
    ("GET", "/api/v1/pods?labelSelector=%21%21%28", {}, None),
    ("GET", "/api/v1/pods?limit=abc", {}, None),
    ("GET", "/api/v1/pods?watch=maybe", {}, None),
    ("POST", "/api/v1/namespaces", {"Content-Type": "application/json",
                                    "Content-Encoding": "gzip"}, b"{}"),
    ("POST", "/api/v1/namespaces", {"Content-Type": "application/json",
                                    "Content-Encoding": "br"}, b"{}"),
    ("POST", "/api/v1/namespaces", {"Content-Type": "application/json"}, b"[" * 5000),
    ("POST", "/api/v1/namespaces", {"Content-Type": "application/json"}, b"\xff\xfe"),
    ("POST", "/api/v1/namespaces", {"Content-Type": "application/json"},
     b'{"metadata": {"name": "nan"}, "spec": {"x": NaN}}'),
    ("POST", "/api/v1/namespaces", {"Content-Type": "application/yaml"},
     b"metadata: &m {name: bomb}\nspec: {a: *m, b: *m}\n"),
    ("DELETE", "/api/v1/namespaces/x", {"Content-Type": "application/json"}, b"{nope"),
    ("PUT", "/api/v1/nodes", {}, b"{}"),
])
def test_kube_face_refusals(kube, method, path, headers, body):
    base, auth, ca = kube
    r = requests.request(method, base + path, headers={**auth, **headers}, data=body,
                         verify=ca, timeout=10)
    assert kube_error(r.status_code, r.headers, r.content)


@pytest.mark.parametrize("path,headers,face", [
    ("/", LIST_CLUSTERS, "json"), ("/", {"Content-Type": FORM_TYPE}, "ec2"),
    ("/clusters", {}, "eks"),
])
def test_an_expectation_aiohttp_refuses_is_in_the_face_shape(fargo, path, headers, face):
    """aiohttp answers an Expect it does not know before any middleware runs."""
    r = send(fargo, "POST", path, b"{}", {**headers, "Expect": "the-unexpected"}, sign=False)
    assert 400 <= r.status_code < 500, r.text
    error_of(face, r)


def test_too_many_headers_are_refused_in_the_face_shape(fargo):
    """At most 128 headers (aiohttp's own bound, far past what an SDK sends): what a request
    may make the server hold before it is authenticated stays bounded."""
    many = {**LIST_CLUSTERS, **{f"X-Filler-{i}": "x" * 100 for i in range(200)}}
    r = send(fargo, "POST", "/", b"{}", many)
    assert 400 <= r.status_code < 500, r.text
    error_of("json", r)
    assert send(fargo, "POST", "/", b"{}", {**LIST_CLUSTERS, **{
        f"X-Filler-{i}": "x" for i in range(100)}}).status_code == 200
