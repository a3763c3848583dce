"""API errors as the AWS protocols name them; raised anywhere, rendered by api/."""

from __future__ import annotations


class ApiError(Exception):
    """An error with an AWS error code (the `__type` of JSON protocols) and an HTTP status."""

    code = "ClientException"
    status = 400

    def __init__(self, message: str, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status


class ClientException(ApiError):
    code = "ClientException"


class InvalidParameterException(ApiError):
    code = "InvalidParameterException"


class ClusterNotFoundException(ApiError):
    code = "ClusterNotFoundException"


class ConflictException(ApiError):
    code = "ConflictException"


class ResourceNotFoundException(ApiError):
    code = "ResourceNotFoundException"


class ServerException(ApiError):
    code = "ServerException"
    status = 500
