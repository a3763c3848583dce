"""The HTTP server under every face. Which face a request is for follows from its path and
headers (`face_of`); whatever goes wrong answers in that face's error shape (`refuse`), even
a request aiohttp's parser gave up on before any handler ran (`Runner`)."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong

from ..model.kubeerrors import KubeError
from . import awsjson, ec2query
from . import eks as eks_face
from .errors import HttpError
from .kube.wire import status_response

log = logging.getLogger("fargo.api")

# AWS's front ends take request lines and single headers of 16 KiB and headers of 64 KiB in
# all; aiohttp's defaults are 8,190 bytes and 128 headers. fargo takes lines and headers of
# 64 KiB, and keeps aiohttp's 128 headers: what a request may make the server hold before it
# is authenticated stays bounded (8 MiB), also for the tasks that reach it. Bodies are
# decoded by api/body.py, in the face's own words, not by aiohttp.
MAX_LINE = 64 * 1024
MAX_FIELD = 64 * 1024
MAX_HEADERS = 128
HANDLER_ARGS: dict[str, Any] = {"max_line_size": MAX_LINE, "max_field_size": MAX_FIELD,
                                "max_headers": MAX_HEADERS, "auto_decompress": False}


class Face(enum.Enum):
    JSON = "json"  # AWS JSON 1.1 (ECS, Secrets Manager) and fargo's own paths
    EC2 = "ec2"    # the query protocol: XML errors
    EKS = "eks"    # REST-JSON: the code in x-amzn-ErrorType
    KUBE = "kube"  # each cluster's Kubernetes API: a Status


def face_of(method: str, path: str, headers: Mapping[str, str], tls: bool = False) -> Face:
    """`headers` with lower-case names, or a case-insensitive mapping. The kube port (TLS)
    serves only Kubernetes paths, so what it cannot place is the kube face's."""
    if path in ("/eks", "/openapi", "/admission") or \
            path.startswith(("/eks/", "/openapi/", "/admission/")):
        return Face.KUBE
    if path == "/clusters" or path.startswith("/clusters/"):
        return Face.EKS
    if path == "/":
        json = "x-amz-target" in headers or "json" in headers.get("content-type", "")
        return Face.JSON if json else Face.EC2
    return Face.KUBE if tls else Face.JSON


class Kind(enum.Enum):
    """What went wrong, for the code each face gives it."""
    UNREADABLE = "unreadable"  # not valid HTTP, too long, a body that cannot be decoded
    NOT_FOUND = "not_found"    # no such path
    METHOD = "method"          # the path does not take that method
    FAULT = "fault"            # fargo's own failure


_CODES = {
    Face.JSON: {Kind.UNREADABLE: "SerializationException", Kind.NOT_FOUND:
                "UnknownOperationException", Kind.METHOD: "UnknownOperationException",
                Kind.FAULT: "ServerException"},
    Face.EC2: {Kind.UNREADABLE: "InvalidRequest", Kind.NOT_FOUND: "InvalidAction",
               Kind.METHOD: "InvalidAction", Kind.FAULT: "InternalError"},
    Face.EKS: {Kind.UNREADABLE: "BadRequestException", Kind.NOT_FOUND: "NotFoundException",
               Kind.METHOD: "BadRequestException", Kind.FAULT: "ServerException"},
}
_KUBE_REASONS = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed",
                 413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 500: "InternalError"}


def refuse(face: Face, kind: Kind, status: int, message: str) -> web.Response:
    """The error in the face's shape. The AWS faces answer what they cannot read with 400 as
    AWS does (the code says why); the Kubernetes face keeps the HTTP status itself."""
    if face is Face.KUBE:
        reason = _KUBE_REASONS.get(status, "InternalError" if status >= 500 else "BadRequest")
        return status_response(KubeError(status, reason, message))
    if kind is Kind.UNREADABLE:
        status = 400
    err = HttpError(message, _CODES[face][kind], status)
    if face is Face.EC2:
        return ec2query.error_response(err)
    if face is Face.EKS:
        return eks_face.error_response(err)
    return awsjson.error_response(err)


def face_of_request(request: web.BaseRequest) -> Face:
    return face_of(request.method, request.path, request.headers, request.secure)


# ---- requests aiohttp's parser refused: no handler, no middleware runs for them
_SNIFF = 16 * 1024  # of a connection's first bytes, enough for the request line and headers


def _face_from_head(head: bytes, tls: bool) -> Face:
    """The face of a request from its first bytes, however far its parsing got."""
    line, _, rest = head.partition(b"\r\n")
    method, _, target = line.partition(b" ")
    path = target.split(b" ", 1)[0].split(b"?", 1)[0].decode("latin-1")
    headers: dict[str, str] = {}
    for raw in rest.split(b"\r\n"):
        name, sep, value = raw.partition(b":")
        if sep:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return face_of(method.decode("latin-1"), path or "?", headers, tls)


class _Handler(web.RequestHandler):
    """aiohttp's protocol, remembering what it needs to tell a refused request's face. Each
    connection is one client, and SDK clients keep one service to a connection: the first
    request's face is every later one's."""

    def __init__(self, manager: web.Server, **kwargs: Any):
        super().__init__(manager, **kwargs)
        self._fargo_head: bytes | None = b""
        self._fargo_face: Face | None = None
        self._fargo_line_done = False

    def data_received(self, data: bytes) -> None:
        head = self._fargo_head
        if head is not None:
            head += data[:_SNIFF - len(head)]
            self._fargo_line_done = b"\r\n" in head
            if b"\r\n\r\n" in head or len(head) >= _SNIFF:
                self._fargo_face = _face_from_head(head, self._tls())
                head = None
            self._fargo_head = head
        super().data_received(data)

    def _tls(self) -> bool:
        return self.transport is not None and \
            self.transport.get_extra_info("sslcontext") is not None

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer is under way: the connection is lost
            raise ConnectionError("the response has been sent already")
        face = self._fargo_face or _face_from_head(self._fargo_head or b"", self._tls())
        if status >= 500:
            log.error("unhandled error on a request", exc_info=exc)
            resp = refuse(face, Kind.FAULT, 500, "Internal error in fargo.")
        elif isinstance(exc, LineTooLong):
            if self._fargo_line_done:
                resp = refuse(face, Kind.UNREADABLE, 431,
                              f"A request header is longer than {MAX_FIELD} bytes.")
            else:
                resp = refuse(face, Kind.UNREADABLE, 414,
                              f"The request line is longer than {MAX_LINE} bytes.")
        else:
            log.debug("refused a request that is not valid HTTP", exc_info=exc)
            text = getattr(exc, "message", None) or message or "Bad request"
            resp = refuse(face, Kind.UNREADABLE, status,
                          f"The request is not valid HTTP: {str(text)[:200]}")
        resp.force_close()
        return resp


class _Server(web.Server):
    """aiohttp's server, making _Handler protocols (aiohttp has no hook for the answer to a
    request its parser refuses: aio-libs/aiohttp#3287)."""

    def __init__(self, handler: Any, *, request_factory: Any, **kwargs: Any):
        super().__init__(handler, request_factory=request_factory, **kwargs)
        self._fargo_loop = asyncio.get_running_loop()
        self._fargo_args = kwargs

    def __call__(self) -> web.RequestHandler:
        return _Handler(self, loop=self._fargo_loop, **self._fargo_args)


class Runner(web.AppRunner):
    """web.AppRunner with fargo's limits, its protocol and no access log."""

    def __init__(self, app: web.Application):
        super().__init__(app, access_log=None, **HANDLER_ARGS)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # the app's start-up, and its handler
        app_handler = plain.request_handler

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            # What aiohttp refuses before any middleware runs (an Expect it does not know):
            # in the face's shape too.
            try:
                return await app_handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                return refuse(face_of_request(request), Kind.UNREADABLE, exc.status,
                              exc.reason or "Bad request")

        return _Server(handle, request_factory=plain.request_factory,
                       access_log=None, **HANDLER_ARGS)
