"""HTTP statuses of the AWS faces' errors: the faces, not the rules, decide them. An error
the rules raise carries a code; its status is the one the service's botocore model gives that
code (EKS's REST-JSON errors have their own), 500 for a server fault, else 400 as every JSON
and query protocol error is. An error a face raises itself may carry its status."""

from __future__ import annotations

import functools

from ..model.errors import ApiError
from . import shapes

SERVER_FAULTS = {"ServerException", "InternalFailure", "InternalServiceError", "InternalError"}


class HttpError(ApiError):
    """An error a face raises with the HTTP status its protocol gives it (authentication,
    fargo's own REST paths, a refused HTTP request)."""

    def __init__(self, message: str, code: str, status: int):
        super().__init__(message, code=code)
        self.status = status


@functools.cache
def _modelled(service: str, code: str) -> int | None:
    for shape in shapes.service(service).error_shapes:
        if shape.name == code:
            status = shape.metadata.get("error", {}).get("httpStatusCode")
            return int(status) if status else None
    return None


def http_status(err: ApiError, service: str | None = None) -> int:
    if isinstance(err, HttpError):
        return err.status
    if err.code in SERVER_FAULTS:
        return 500
    return (_modelled(service, err.code) if service else None) or 400
