"""API errors as the AWS protocols name them; raised anywhere, rendered by api/."""

from __future__ import annotations


class ApiError(Exception):
    """An error with an AWS error code (the `__type` of JSON protocols); its HTTP status is
    the face's business (api/errors.py)."""

    code = "ClientException"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


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


class ServiceNotFoundException(ApiError):
    code = "ServiceNotFoundException"


class ServiceNotActiveException(ApiError):
    code = "ServiceNotActiveException"
