"""What each face's error looks like on the wire, and a raw signed request to any face: shared
by the hardening and fuzz tests."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import cbor2
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ECS_TARGET = "AmazonEC2ContainerServiceV20141113."
JSON_TYPE = "application/x-amz-json-1.1"
FORM_TYPE = "application/x-www-form-urlencoded"
CW_JSON_TYPE = "application/x-amz-json-1.0"


def send(srv, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
         service: str = "ecs", sign: bool = True, timeout: float = 10) -> requests.Response:
    """A request as an SDK sends it (SigV4 over exactly these bytes), or unsigned."""
    url = srv.endpoint + path
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    if sign:
        SigV4Auth(Credentials(srv.key_id, srv.secret), service, "us-east-1").add_auth(req)
    return requests.request(method, url, data=body, headers=dict(req.headers.items()),
                            timeout=timeout)


def json_error(status: int, headers, body: bytes) -> str:
    """AWS JSON 1.1: {"__type", "message"}; returns the code."""
    assert 400 <= status < 500, (status, body[:300])
    doc = json.loads(body)
    assert isinstance(doc, dict) and doc.get("__type") and isinstance(doc.get("message"), str), \
        body[:300]
    return str(doc["__type"])


def ec2_error(status: int, headers, body: bytes) -> str:
    """EC2 query: <Response><Errors><Error><Code/><Message/>; returns the code."""
    assert 400 <= status < 500, (status, body[:300])
    root = ET.fromstring(body)
    assert root.tag == "Response", body[:300]
    code = root.findtext("Errors/Error/Code")
    assert code and root.find("Errors/Error/Message") is not None, body[:300]
    return code


def eks_error(status: int, headers, body: bytes) -> str:
    """REST-JSON: the code in x-amzn-ErrorType, {"message"} in the body; returns the code."""
    assert 400 <= status < 500, (status, body[:300])
    code = {k.lower(): v for k, v in headers.items()}.get("x-amzn-errortype")
    doc = json.loads(body)
    assert code and isinstance(doc, dict) and isinstance(doc.get("message"), str), body[:300]
    return str(code)


def kube_error(status: int, headers, body: bytes) -> str:
    """A Kubernetes Status whose code is the HTTP status; returns its reason."""
    assert 400 <= status < 500, (status, body[:300])
    doc = json.loads(body)
    assert doc.get("kind") == "Status" and doc.get("status") == "Failure", body[:300]
    assert doc.get("code") == status and doc.get("reason"), body[:300]
    return str(doc["reason"])


def elbv2_error(status: int, headers, body: bytes) -> str:
    """The query protocol of ELBv2: <ErrorResponse><Error><Type/><Code/><Message/>; what the
    server refuses before placing a request in a face is in EC2's shape, which botocore's
    query parser reads too. Returns the code."""
    assert 400 <= status < 500, (status, body[:300])
    root = ET.fromstring(body)
    if root.tag == "Response":
        return ec2_error(status, headers, body)
    ns = "{http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/}"
    assert root.tag == ns + "ErrorResponse", body[:300]
    code = root.findtext(f"{ns}Error/{ns}Code")
    assert code and root.find(f"{ns}Error/{ns}Message") is not None, body[:300]
    assert root.findtext(f"{ns}Error/{ns}Type") in ("Sender", "Receiver"), body[:300]
    return code


def cbor_error(status: int, headers, body: bytes) -> str:
    """Smithy RPC v2 CBOR: a CBOR map whose __type botocore's RpcV2CBOR parser reads as the
    code (after any '#'), with a message; returns the code."""
    assert 400 <= status < 500, (status, body[:300])
    assert {k.lower(): v for k, v in headers.items()}.get("smithy-protocol") == "rpc-v2-cbor"
    doc = cbor2.loads(body)
    assert isinstance(doc, dict) and isinstance(doc.get("__type"), str) and doc["__type"], doc
    assert isinstance(doc.get("message"), str), doc
    return doc["__type"].rpartition("#")[2]


def cwquery_error(status: int, headers, body: bytes) -> str:
    """CloudWatch's query protocol: <ErrorResponse><Error><Type/><Code/><Message/>, as
    botocore's query parser reads it (EC2's shape for what is refused before the face).
    Returns the code."""
    assert 400 <= status < 500, (status, body[:300])
    root = ET.fromstring(body)
    if root.tag == "Response":
        return ec2_error(status, headers, body)
    ns = "{http://monitoring.amazonaws.com/doc/2010-08-01/}"
    assert root.tag == ns + "ErrorResponse", body[:300]
    code = root.findtext(f"{ns}Error/{ns}Code")
    assert code and root.find(f"{ns}Error/{ns}Message") is not None, body[:300]
    assert root.findtext(f"{ns}Error/{ns}Type") in ("Sender", "Receiver"), body[:300]
    return code


SHAPES = {"json": json_error, "ec2": ec2_error, "eks": eks_error, "kube": kube_error,
          "elbv2": elbv2_error, "cbor": cbor_error, "cwquery": cwquery_error}


def error_of(face: str, r: requests.Response) -> str:
    return SHAPES[face](r.status_code, r.headers, r.content)
