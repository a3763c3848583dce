"""What the host can hold: CPU units and MiB promised to tasks against what it has."""

from __future__ import annotations

import os


def host_resources() -> tuple[int, int]:
    """(cpu units, memory MiB) of this machine, keeping 256 MiB back for fargo itself."""
    cpus = len(os.sched_getaffinity(0))
    with open("/proc/meminfo") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    return cpus * 1024, max(kib // 1024 - 256, 0)


class Capacity:
    def __init__(self, cpu_units: int, memory_mib: int, overcommit: float = 1.0):
        self.cpu_total = int(cpu_units * overcommit)
        self.mem_total = int(memory_mib * overcommit)
        self._held: dict[str, tuple[int, int]] = {}

    @property
    def used(self) -> tuple[int, int]:
        return (sum(c for c, _ in self._held.values()), sum(m for _, m in self._held.values()))

    def fits(self, cpu: int, mem: int) -> bool:
        used_cpu, used_mem = self.used
        return used_cpu + cpu <= self.cpu_total and used_mem + mem <= self.mem_total

    def reserve(self, key: str, cpu: int, mem: int) -> None:
        self._held[key] = (cpu, mem)

    def release(self, key: str) -> None:
        self._held.pop(key, None)

    def describe(self) -> str:
        used_cpu, used_mem = self.used
        return (f"host has {self.cpu_total - used_cpu} of {self.cpu_total} CPU units and "
                f"{self.mem_total - used_mem} of {self.mem_total} MiB free")
