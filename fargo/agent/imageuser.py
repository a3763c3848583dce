"""A container's user, as Docker resolves it: names looked up in the image's own /etc/passwd
and /etc/group, read from the host without trusting the image's files or symlinks."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..port.errors import SandboxError


def resolve_in_root(root: Path, path: str) -> Path:
    """Resolve `path` as if `root` were `/`: symlinks in an image cannot escape its rootfs."""
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise SandboxError(f"too many symlinks resolving {path} in {root}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def _read_db(rootfs: Path, name: str) -> list[list[str]]:
    """/etc/passwd or /etc/group of an image, read as host root: only a regular file, and only
    its first MiB (an image may ship a FIFO or a device node there)."""
    try:
        fd = os.open(resolve_in_root(rootfs, f"/etc/{name}"),
                     os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return []
            text = f.read(1 << 20).decode(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(rootfs: Path, user: str) -> tuple[int, int, list[int], str]:
    """Docker's rules for `user`: returns (uid, gid, additional gids, home directory)."""
    user_part, _, group_part = user.partition(":")
    passwd = _read_db(rootfs, "passwd")
    entry = None
    if user_part == "":
        user_part = "0"
    if user_part.isdigit():
        uid = int(user_part)
        entry = next((e for e in passwd if len(e) >= 6 and e[2] == user_part), None)
    else:
        entry = next((e for e in passwd if len(e) >= 6 and e[0] == user_part), None)
        if entry is None:
            raise SandboxError(f"unable to find user {user_part}: no matching entries in passwd")
        uid = int(entry[2])
    gid = int(entry[3]) if entry else 0
    home = entry[5] if entry else "/"
    groups = _read_db(rootfs, "group")
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            g = next((e for e in groups if len(e) >= 3 and e[0] == group_part), None)
            if g is None:
                raise SandboxError(f"unable to find group {group_part}")
            gid = int(g[2])
    extra: list[int] = []
    if entry is not None:
        for g in groups:
            if len(g) >= 4 and entry[0] in g[3].split(",") and g[2].isdigit():
                if int(g[2]) != gid and int(g[2]) not in extra:
                    extra.append(int(g[2]))
    return uid, gid, extra, home
