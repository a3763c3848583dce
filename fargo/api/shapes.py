"""Checking requests against the botocore service models that ship with boto3."""

from __future__ import annotations

import functools
import re

import botocore.session
from botocore.model import OperationModel, ServiceModel
from botocore.validate import ParamValidator

from ..model.errors import ApiError

_CLASS = re.compile(r"<class '(\w+)'>")


@functools.cache
def service(name: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(name)


def operation(service_name: str, action: str) -> OperationModel | None:
    model = service(service_name)
    if action not in model.operation_names:
        return None
    return model.operation_model(action)


def validate(op: OperationModel, params: object, type_error: str, missing_error: str) -> None:
    """Raise the service's own error type naming every bad parameter."""
    if not isinstance(params, dict):
        raise ApiError("The request body must be a JSON object.", code=type_error)
    if op.input_shape is None:  # an operation that takes nothing
        return
    report = ParamValidator().validate(params, op.input_shape)
    if not report.has_errors():
        return
    kinds = {e[0] for e in report._errors}
    text = _CLASS.sub(r"\1", report.generate_report())
    if len(text) > 1000:
        text = text[:1000] + "…"
    code = missing_error if kinds <= {"missing required field", "invalid range",
                                       "invalid length"} else type_error
    raise ApiError(text, code=code)
