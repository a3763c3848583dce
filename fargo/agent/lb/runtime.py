"""HAProxy's two command sockets, and what their answers say.

The stats socket is the worker's runtime API (servers added, drained, removed; `show stat`);
the master socket is the master CLI (`reload`, `show proc`). Each command is one connection:
the command, a half-close (the master CLI answers only then), the answer up to EOF.
The parsers below are pure."""

from __future__ import annotations

import csv
import io
import re
import socket
import time
from dataclasses import dataclass

from ...port.loadbalancer import LoadBalancerError, TargetCheck
from .config import pool_of

SOCKET_TIMEOUT_S = 10.0


def command(path: str, line: str, timeout: float = SOCKET_TIMEOUT_S) -> str:
    """One command (or several joined by ';') and its whole answer."""
    if "\n" in line:
        raise LoadBalancerError(f"a runtime command is one line: {line!r}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(line.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks).decode(errors="replace")
    finally:
        sock.close()


def command_retrying(path: str, line: str, within: float = 5.0) -> str:
    """command(), waiting out a socket that is not there yet or being replaced (a reload
    binds it anew)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return command(path, line)
        except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


# ---------------------------------------------------------------- show servers state


@dataclass(frozen=True)
class ServerState:
    backend: str
    name: str
    address: str
    port: int
    admin: int  # SRV_ADMF_* bits: 0x01 maintenance forced, 0x08 drain forced
    weight: int

    @property
    def draining(self) -> bool:
        return bool(self.admin & 0x08)

    @property
    def maint(self) -> bool:
        return bool(self.admin & 0x01)


def parse_servers_state(text: str) -> dict[str, ServerState]:
    """`show servers state` ("<backend>/<server>" -> state). Its first line is the format
    version (1), the second the field names."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "1":
        raise LoadBalancerError(f"unexpected answer to 'show servers state': {text[:200]!r}")
    fields: list[str] = []
    out: dict[str, ServerState] = {}
    for line in lines[1:]:
        if line.startswith("#"):
            fields = line[1:].split()
            continue
        values = line.split()
        if not values or not fields:
            continue
        row = dict(zip(fields, values, strict=False))
        try:
            state = ServerState(row["be_name"], row["srv_name"], row["srv_addr"],
                                int(row["srv_port"]), int(row["srv_admin_state"]),
                                int(row["srv_uweight"]))
        except (KeyError, ValueError):
            continue
        out[f"{state.backend}/{state.name}"] = state
    return out


# ---------------------------------------------------------------- show stat


_OK = {"L4OK", "L6OK", "L7OK", "L7OKC"}


def parse_stat(text: str) -> list[TargetCheck]:
    """`show stat` CSV, its server rows as TargetChecks.

    status: MAINT and DRAIN (NOLB too: up, but given nothing) as they are; UP while HAProxy
    counts the server up (also "UP 1/2", failing but not yet down); otherwise DOWN, except
    INIT for a server not up since it joined that has no failed check yet (no check done,
    or passing ones still short of the healthy threshold: servers join down, see
    plane.py). check: the last check's status without HAProxy's "* " (running) mark, None
    before the first; code: that check's HTTP status."""
    body = text.lstrip("# ")
    rows = list(csv.DictReader(io.StringIO(body)))
    out: list[TargetCheck] = []
    for row in rows:
        pool = pool_of(row.get("pxname") or "")
        name = row.get("svname") or ""
        if pool is None or name in ("FRONTEND", "BACKEND") or ":" not in name:
            continue
        ip, _, port_text = name.rpartition(":")
        if not port_text.isdigit():
            continue
        raw = (row.get("status") or "").strip()
        check = (row.get("check_status") or "").replace("*", "").strip() or None
        if check == "INI":
            check = None
        code_text = (row.get("check_code") or "").strip()
        code = int(code_text) if code_text.isdigit() else None
        out.append(TargetCheck(pool=pool, ip=ip, port=int(port_text),
                               status=_status(raw, check, row.get("chkdown") or "0"),
                               check=check, code=code))
    return out


def _status(raw: str, check: str | None, chkdown: str) -> str:
    head = raw.split(" ")[0].split("(")[0].rstrip("*")
    if head == "MAINT":
        return "MAINT"
    if head in ("DRAIN", "NOLB"):
        return "DRAIN"
    if head in ("UP", "no"):  # "no check": always up
        return "UP"
    # A server joins forced down (one UP->DOWN transition on its count): until it has been
    # up, or a check failed, it is still being checked for the first time.
    never_up = (int(chkdown) if chkdown.isdigit() else 0) <= 1
    if never_up and (check is None or check in _OK):
        return "INIT"
    return "DOWN"


# ---------------------------------------------------------------- show proc (master CLI)


@dataclass(frozen=True)
class Procs:
    master: int
    reloads: int
    failed: int
    workers: tuple[int, ...]  # current workers (old ones finishing connections not included)


_MASTER_RE = re.compile(r"^(\d+)\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]")
_WORKER_RE = re.compile(r"^(\d+)\s+worker\b")


def parse_procs(text: str) -> Procs:
    master = reloads = failed = 0
    workers: list[int] = []
    section = ""
    for line in text.splitlines():
        if line.startswith("#"):
            section = line.strip("# ").strip()
            continue
        found = _MASTER_RE.match(line)
        if found:
            master, reloads, failed = (int(g) for g in found.groups())
            continue
        worker = _WORKER_RE.match(line)
        if worker and section == "workers":
            workers.append(int(worker.group(1)))
    if not master:
        raise LoadBalancerError(f"unexpected answer to 'show proc': {text[:200]!r}")
    return Procs(master, reloads, failed, tuple(workers))


def worker_pid(info: str) -> int | None:
    """The Pid line of `show info`."""
    for line in info.splitlines():
        if line.startswith("Pid:"):
            value = line.split(":", 1)[1].strip()
            return int(value) if value.isdigit() else None
    return None
