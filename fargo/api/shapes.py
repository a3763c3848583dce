"""Checking requests against the botocore service models that ship with boto3."""

from __future__ import annotations

import functools
import re

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape
from botocore.validate import ParamValidator

from ..model.errors import ApiError

_CLASS = re.compile(r"<class '(\w+)'>")
# AWS's services hold these in Java's int and long: a larger number is refused, not stored.
_BOUNDS = {"integer": (-(2 ** 31), 2 ** 31 - 1), "long": (-(2 ** 63), 2 ** 63 - 1)}


def _out_of_range(value: object, shape: Shape, name: str) -> tuple[str, bool] | None:
    """The first value (by its parameter's name) botocore's validator lets through but AWS
    refuses, in a value that already has the shape's types: a number past its type's range,
    a string outside its enum, or JSON true/false where a number goes (Python's bool is an
    int). Returns (message, whether it is a type error)."""
    bounds = _BOUNDS.get(shape.type_name)
    if bounds is not None:
        if isinstance(value, bool):
            return (f"Invalid type for parameter {name}, value: {value}, type: bool, valid "
                    "types: int", True)
        ok = not isinstance(value, int) or bounds[0] <= value <= bounds[1]
        return None if ok else (f"Invalid value for parameter {name}, value: {value}, valid "
                                f"range: {bounds[0]} to {bounds[1]}", False)
    enum = getattr(shape, "enum", None)
    if shape.type_name == "string" and enum and isinstance(value, str) and value not in enum:
        valid = ", ".join(enum)
        return (f"Invalid value for parameter {name}, value: {value[:64]}, valid values: "
                f"{valid[:400]}", False)
    found: tuple[str, bool] | None = None
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for key, member in shape.members.items():
            if key in value and (found := _out_of_range(value[key], member, f"{name}.{key}")):
                break
    elif isinstance(shape, ListShape) and isinstance(value, list):
        for i, item in enumerate(value):
            if found := _out_of_range(item, shape.member, f"{name}[{i}]"):
                break
    elif isinstance(shape, MapShape) and isinstance(value, dict):
        for key, item in value.items():
            if found := _out_of_range(item, shape.value, f"{name}.{key}"):
                break
    return found


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
    try:
        report = ParamValidator().validate(params, op.input_shape)
    except Exception:  # noqa: BLE001 - botocore fails on timestamps no clock holds (1e20)
        raise ApiError("A parameter is out of range (a timestamp no clock holds).",
                       code=type_error) from None
    if not report.has_errors():
        if found := _out_of_range(params, op.input_shape, "input"):
            message, is_type = found
            raise ApiError(message.replace("parameter input.", "parameter ", 1),
                           code=type_error if is_type else missing_error)
        return
    kinds = {e[0] for e in report._errors}
    text = _CLASS.sub(r"\1", report.generate_report())
    if len(text) > 1000:
        text = text[:1000] + "…"
    code = missing_error if kinds <= {"missing required field", "invalid range",
                                       "invalid length"} else type_error
    raise ApiError(text, code=code)
