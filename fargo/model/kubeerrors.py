"""Kubernetes API errors: each becomes a `kind: Status` body with its reason and HTTP code."""

from __future__ import annotations

from typing import Any


class KubeError(Exception):
    def __init__(self, code: int, reason: str, message: str,
                 details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                "status": "Failure", "message": self.message,
                                "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


def not_found(resource: str, name: str) -> KubeError:
    return KubeError(404, "NotFound", f'{resource} "{name}" not found',
                     {"name": name, "kind": resource})


def already_exists(resource: str, name: str) -> KubeError:
    return KubeError(409, "AlreadyExists", f'{resource} "{name}" already exists',
                     {"name": name, "kind": resource})


def bad_request(message: str) -> KubeError:
    return KubeError(400, "BadRequest", message)


def invalid(kind: str, name: str, causes: list[tuple[str, str]]) -> KubeError:
    """422 with one cause per (field, message), the way the apiserver words it."""
    text = "; ".join(f"{f}: {m}" for f, m in causes)
    return KubeError(422, "Invalid", f'{kind} "{name}" is invalid: {text}',
                     {"name": name, "kind": kind,
                      "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f}
                                 for f, m in causes]})


def method_not_allowed(method: str) -> KubeError:
    return KubeError(405, "MethodNotAllowed",
                     f"the server does not allow this method on the requested resource ({method})")


def unknown_path() -> KubeError:
    return KubeError(404, "NotFound", "the server could not find the requested resource")
