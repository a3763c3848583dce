"""Fargate task sizes: the cpu/memory table and the string forms users may write."""

from __future__ import annotations

import re

from .errors import ClientException

# cpu units -> allowed memory MiB, as FARGATE.md section 1 lists them.
SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

# Bounded digit counts: no value in the table needs more, and huge ones must not reach int().
_NUMBER = r"(\d{1,4}(?:\.\d{0,4})?|\.\d{1,4})"
_VCPU = re.compile(rf"^\s*{_NUMBER}\s*vcpu\s*$", re.IGNORECASE)
_GB = re.compile(rf"^\s*{_NUMBER}\s*gb\s*$", re.IGNORECASE)
_PLAIN = re.compile(r"^\s*\d{1,7}\s*$")


def parse_cpu(value: str | int, what: str = "cpu") -> int:
    """'256' -> 256, '1 vCPU' -> 1024, '.25 vcpu' -> 256."""
    text = str(value)
    if _PLAIN.match(text):
        return int(text)
    m = _VCPU.match(text)
    if m:
        return round(float(m.group(1)) * 1024)
    raise ClientException(f"Invalid '{what}' setting for task: {text[:64]!r} is not a cpu value.")


def parse_memory(value: str | int, what: str = "memory") -> int:
    """'512' -> 512 MiB, '2GB' -> 2048, '0.5GB' -> 512."""
    text = str(value)
    if _PLAIN.match(text):
        return int(text)
    m = _GB.match(text)
    if m:
        return round(float(m.group(1)) * 1024)
    raise ClientException(f"Invalid '{what}' setting for task: {text[:64]!r} is not a memory value.")


def check_task_size(cpu: int, memory: int) -> None:
    """Raise the ClientException AWS gives for a pair outside the table."""
    if cpu not in SIZES:
        raise ClientException(
            f"Invalid 'cpu' setting for task. No Fargate configuration exists for given values: "
            f"{cpu} CPU, {memory} memory. Valid cpu values are {', '.join(map(str, SIZES))}."
        )
    if memory not in SIZES[cpu]:
        allowed = SIZES[cpu]
        raise ClientException(
            f"Invalid 'memory' setting for task. No Fargate configuration exists for given values: "
            f"{cpu} CPU, {memory} memory. With {cpu} CPU units memory must be one of "
            f"{allowed[0]}-{allowed[-1]} MiB in the documented steps."
        )


def smallest_fit(cpu: int, memory: int) -> tuple[int, int]:
    """The smallest table size with at least `cpu` units and `memory` MiB (memory in whole GiB).

    Used to size pods (FARGATE.md section 7); raises when nothing is big enough.
    """
    for units, mems in SIZES.items():
        if units < cpu:
            continue
        for mem in mems:
            if mem >= memory and (mem % 1024 == 0 or mem == 512):
                return units, mem
    raise ClientException(f"No Fargate size holds {cpu} CPU units and {memory} MiB.")
