"""Checking requests against the botocore service models that ship with boto3.

A model fargo serves only a few operations of (EC2: 15 of its 765) is trimmed to the shapes
those need, in a child process: loaded whole in the server, EC2's took 16 MB of its
memory for good (Python keeps what a freed parse used), a tenth of its whole RSS. The
other operations keep their names, so a real action fargo does not serve is still refused
by name (not as unknown)."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

import botocore.loaders
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


_SERVED: dict[str, frozenset[str]] = {}  # service -> the only operations it needs shapes for


def serve_only(name: str, operations: Iterable[str]) -> None:
    """Before the model is first used: only these operations of it will be answered."""
    _SERVED[name] = frozenset(operations)


@functools.cache
def service(name: str) -> ServiceModel:
    served = _SERVED.get(name)
    if served is None:
        return botocore.session.get_session().get_service_model(name)
    try:
        proc = subprocess.run([sys.executable, "-m", "fargo.api.shapes", name, *sorted(served)],
                              capture_output=True, check=True, timeout=120)
        return ServiceModel(json.loads(proc.stdout), service_name=name)
    except (OSError, subprocess.SubprocessError, ValueError):
        # No child (a sandboxed host, a broken interpreter): the whole model, in-process,
        # rather than a failed request.
        return botocore.session.get_session().get_service_model(name)


def trimmed(model: dict[str, Any], served: frozenset[str]) -> dict[str, Any]:
    """The model with shapes only for the served operations (and every error shape); the
    others keep their names and HTTP bindings, without input or output."""
    shapes: dict[str, Any] = model["shapes"]
    wanted = [n for n, shape in shapes.items() if shape.get("exception")]
    operations: dict[str, Any] = {}
    for name, op in model["operations"].items():
        if name not in served:
            operations[name] = {"name": name, "http": op.get("http", {})}
            continue
        operations[name] = op
        wanted += [op[k]["shape"] for k in ("input", "output") if k in op]
        wanted += [e["shape"] for e in op.get("errors", [])]
    kept: dict[str, Any] = {}
    while wanted:
        name = wanted.pop()
        if name in kept:
            continue
        shape = kept[name] = shapes[name]
        if shape.get("type") == "structure":
            wanted += [m["shape"] for m in shape.get("members", {}).values()]
        elif shape.get("type") == "list":
            wanted.append(shape["member"]["shape"])
        elif shape.get("type") == "map":
            wanted += [shape["key"]["shape"], shape["value"]["shape"]]
    return dict(model, operations=operations, shapes=kept)


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


if __name__ == "__main__":  # the child of service(): the trimmed model as JSON on stdout
    _model = botocore.loaders.create_loader().load_service_model(sys.argv[1], "service-2")
    json.dump(trimmed(_model, frozenset(sys.argv[2:])), sys.stdout)
