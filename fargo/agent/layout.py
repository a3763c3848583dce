"""Where the sandbox keeps each task's and container's files, and the task record it writes.

Layout under run_dir/<task_id>/ (run_dir is root unless given):
    task.json                 the TaskRecord: sizes, id range, cgroup directories
    exits/<task_id>.<name>    conmon's exit file (the exit code as text)
    sock/                     conmon's attach-socket symlinks (unused, but conmon insists)
    <name>/config.json        the OCI bundle (rootfs is the caller's, referenced by path)
    <name>/spec.json, pid, conmon.pid, started_at, oom_killed, persist/
and under root/<task_id>/:
    <name>/container.log      k8s-file log; kept when the container or task is deleted

Servers from before run_dir kept everything under root; such a task is found where it is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..port.errors import ContainerGone, SandboxError
from .runfiles import atomic_write, read_int

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
TASK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# Per-run files in a container dir: ours plus conmon's control fifos and attach socket.
RUN_FILES = ("config.json", "pid", "conmon.pid", "ctl", "winsz", "attach")


@dataclass
class TaskRecord:
    """task.json: what a later process (or a restarted server) needs to know of a task."""

    task_id: str
    cpu_units: int
    memory_mib: int
    cgroups: dict[str, str] = field(default_factory=dict)  # hierarchy key -> directory
    created_at: float = 0.0
    id_slot: int | None = None  # None while the record is provisional
    id_base: int | None = None
    isolation: str = "runc"  # or "gvisor": agent/gvisor.py made it
    platform: str = ""  # gvisor: the runsc platform every call for this task must name
    lone: bool = False  # gvisor: its only container is the sandbox's root (no pause)

    def to_json(self) -> str:
        # Shallow (asdict copies deeply, field by field): the fields are plain values and
        # one dict of strings, and a start writes the record twice.
        raw = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.id_slot is None:  # provisional: written as before, without the id range
            raw.pop("id_slot")
            raw.pop("id_base")
        return json.dumps(raw)

    @classmethod
    def from_json(cls, text: str) -> TaskRecord | None:
        try:
            raw = json.loads(text)
        except ValueError:
            return None
        if not isinstance(raw, dict):
            return None
        slot, base = raw.get("id_slot"), raw.get("id_base")
        try:
            return cls(task_id=str(raw.get("task_id", "")),
                       cpu_units=int(raw.get("cpu_units", 0)),
                       memory_mib=int(raw.get("memory_mib", 0)),
                       cgroups=dict(raw.get("cgroups") or {}),
                       created_at=float(raw.get("created_at", 0.0)),
                       id_slot=slot if isinstance(slot, int) else None,
                       id_base=base if isinstance(base, int) else None,
                       isolation=str(raw.get("isolation") or "runc"),
                       platform=str(raw.get("platform") or ""),
                       lone=raw.get("lone") is True)
        except (TypeError, ValueError):
            return None


def checked(task_id: str, name: str | None = None) -> None:
    """Ids become path components and runc ids: refuse anything but plain names."""
    if not TASK_ID_RE.match(task_id):
        raise SandboxError(f"bad task id {task_id!r}")
    if name is not None and not NAME_RE.match(name):
        raise SandboxError(f"bad container name {name!r}")


def container_id(task_id: str, name: str) -> str:
    """runc's id: '.' cannot occur in either part, so the split is unambiguous."""
    return f"{task_id}.{name}"


class Layout:
    def __init__(self, root: Path, run_dir: Path) -> None:
        self.root = root
        self.run_dir = run_dir

    def task_dir(self, task_id: str) -> Path:
        checked(task_id)
        run = self.run_dir / task_id
        if self.run_dir != self.root and not run.exists():
            legacy = self.root / task_id
            if (legacy / "task.json").exists() or (legacy / "exits").is_dir():
                return legacy  # made by a server from before run_dir: it stays where it is
        return run

    def ctr_dir(self, task_id: str, name: str) -> Path:
        checked(task_id, name)
        return self.task_dir(task_id) / name

    def exit_dir(self, task_id: str) -> Path:
        return self.task_dir(task_id) / "exits"

    def exit_file(self, task_id: str, name: str) -> Path:
        return self.exit_dir(task_id) / container_id(task_id, name)

    def log_dir(self, task_id: str, name: str) -> Path:
        checked(task_id, name)
        return self.root / task_id / name

    def log_path(self, task_id: str, name: str) -> Path:
        return self.log_dir(task_id, name) / "container.log"

    def read_record(self, task_id: str) -> TaskRecord | None:
        try:
            text = (self.task_dir(task_id) / "task.json").read_text()
        except OSError:
            return None
        return TaskRecord.from_json(text)

    def write_record(self, record: TaskRecord) -> None:
        atomic_write(self.task_dir(record.task_id) / "task.json", record.to_json())

    def has_record(self, task_id: str) -> bool:
        return (self.task_dir(task_id) / "task.json").exists()

    def task_ids(self) -> set[str]:
        """Tasks with a record, in run_dir and (servers from before run_dir) under root."""
        found: set[str] = set()
        for base in {self.run_dir, self.root}:
            if base.is_dir():
                found.update(p.name for p in base.iterdir() if (p / "task.json").exists())
        return found

    def bundles(self, task_id: str) -> set[str]:
        """Names of the task's containers that have a bundle."""
        task_dir = self.task_dir(task_id)
        if not task_dir.is_dir():
            return set()
        return {p.name for p in task_dir.iterdir() if (p / "config.json").exists()}


def joined_netns(config: dict[str, Any], ctr_dir: Path) -> str | None:
    """The netns a running container joined by path (None: one of its own), as a path that
    holds now: its process's own (/proc/<pid>/ns/net). The path in the config may no longer
    lead there: a task's netns is reached through a descriptor of the server that made the
    container (agent/holder.py), gone with that server."""
    if not any(ns.get("type") == "network" and ns.get("path")
               for ns in config["linux"]["namespaces"]):
        return None
    pid = read_int(ctr_dir / "pid")
    if pid is None:
        raise ContainerGone(f"container {ctr_dir.name} is not running")
    return f"/proc/{pid}/ns/net"
