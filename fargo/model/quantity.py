"""Kubernetes resource quantities ("250m", "1", "8Gi", "512M") as CPU units and MiB."""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

_QTY = re.compile(r"^([+]?[0-9]{1,15}(?:\.[0-9]{0,9})?|[+]?\.[0-9]{1,9})"
                  r"(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[0-9]{1,2}|E[0-9]{1,2})?$")
_FACTOR: dict[str | None, int | Decimal] = {
    None: 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "P": 10**15, "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
    "Pi": 2**50, "Ei": 2**60}


def parse(value: object) -> Decimal:
    """The quantity's value in base units; ValueError when it is not a quantity."""
    text = str(value).strip() if isinstance(value, (str, int, float)) else ""
    m = _QTY.match(text)
    if not m or isinstance(value, bool):
        raise ValueError(f"quantities must match the regular expression "
                         f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {str(value)[:40]!r}")
    try:
        number = Decimal(m.group(1))
    except InvalidOperation:
        raise ValueError(f"not a quantity: {text[:40]!r}") from None
    suffix = m.group(2)
    if suffix and suffix[0] in "eE" and suffix[1:].isdigit():
        return number * (Decimal(10) ** int(suffix[1:]))
    return number * Decimal(_FACTOR[suffix])


def cpu_units(value: object) -> int:
    """CPU in ECS units (1024 per vCPU), rounded up."""
    return int((parse(value) * 1024).to_integral_value(rounding=ROUND_CEILING))


def mebibytes(value: object) -> int:
    """Memory in MiB, rounded up."""
    return int((parse(value) / (1 << 20)).to_integral_value(rounding=ROUND_CEILING))
