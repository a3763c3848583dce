"""User namespaces: each task's uids and gids 0..65535 map to a host range of its own.

Task slot n owns host ids FIRST_ID + n*RANGE .. + RANGE-1. FIRST_ID lies far above the
ranges `useradd` hands out in /etc/subuid (100000 upward), so no host user or rootless
container shares a task's ids, and per-task ranges keep tasks apart from each other too.

Slots are claimed with one O_EXCL file each in a host-wide directory (several fargo servers on
one host must not share a range); the file names the task directory that owns it, so a slot
whose owner is gone (a server killed mid-way) is reclaimed.

The rootfs must look owned by the mapped ids. Image layers are shared by every task, so they
are not chowned: each container's overlay uses *idmapped* mounts of the layers
(mount_setattr(MOUNT_ATTR_IDMAP), kernel >= 5.12), which shift ids as they are read, for the
price of one open_tree + mount_setattr per layer (tens of microseconds). An idmapped mount
needs a user namespace holding the mapping; making one costs a helper process (a ms or two
of CPU), so one is kept per range for the life of the process, and the one the next claim
will most likely take is made ahead, on a background thread at idle priority (warm_next).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

from ..port.errors import UsernsError
from .libc import last_errno, libc, lift_fd
from .spawner import SPAWNER, Child

FIRST_ID = 1_000_000_000
RANGE = 65536
MAX_SLOTS = 4096  # FIRST_ID + MAX_SLOTS * RANGE stays below 2**32 - 1 (the invalid id)

_SYS_OPEN_TREE = 428
_SYS_MOUNT_SETATTR = 442
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = os.O_CLOEXEC
_AT_EMPTY_PATH = 0x1000
_MOUNT_ATTR_IDMAP = 0x100000
_UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
# By path: unshare would try every directory of PATH in turn, an execve each.
_CAT = shutil.which("cat") or "/bin/cat"

_lock = threading.Lock()
_userns_fds: dict[int, int] = {}
_ahead = threading.Event()  # a claim was made: make the next slot's namespace
_ahead_slots: list[Path] = []  # the slot directories claims were made in, for that thread
# Slots this process claimed and has not released: a claim skips them without reading their
# files, so claiming stays cheap with hundreds of tasks running.
_held: dict[Path, set[int]] = {}


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def base_of(slot: int) -> int:
    return FIRST_ID + slot * RANGE


def mappings(base: int) -> list[dict[str, int]]:
    """OCI uidMappings/gidMappings for a task whose range starts at base."""
    return [{"containerID": 0, "hostID": base, "size": RANGE}]


# ---------------------------------------------------------------- slots


def claim_slot(slots_dir: Path, owner: Path) -> int:
    """The lowest free slot, now recorded as owner's (a task directory holding task.json)."""
    slots_dir.mkdir(parents=True, exist_ok=True)
    # One claimer at a time host-wide, so a stale slot is never reclaimed twice.
    with open(slots_dir / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _claim(slots_dir, owner)


def _claim(slots_dir: Path, owner: Path) -> int:
    held = _held.setdefault(slots_dir, set())
    for slot in range(MAX_SLOTS):
        if slot in held:  # this process's own live claims: no need to look at their files
            continue
        path = slots_dir / str(slot)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if not _stale(path):
                    break
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(owner))
            held.add(slot)
            return slot
    raise UsernsError(f"no free user-namespace slot ({MAX_SLOTS} in use)")


def _stale(path: Path) -> bool:
    try:
        owner = path.read_text()
    except OSError:
        return False
    # Under the lock a file is complete, unless its writer died: empty is stale too.
    return not owner or not (Path(owner) / "task.json").exists()


def release_slot(slots_dir: Path, slot: int, owner: Path) -> None:
    path = slots_dir / str(slot)
    with contextlib.suppress(OSError):
        if path.read_text() == str(owner):
            path.unlink()
    _held.get(slots_dir, set()).discard(slot)


# ---------------------------------------------------------------- idmapped mounts


def userns_fd(base: int) -> int:
    """An fd of a user namespace mapping 0..RANGE-1 to base..; cached per base."""
    with _lock:
        fd = _userns_fds.get(base)
        if fd is None:
            fd = _userns_fds[base] = _make_userns(base)
        return fd


def made(base: int) -> bool:
    """Whether the user namespace of the range at base is made already (not under _lock,
    which a start making its own holds while it does)."""
    return base in _userns_fds


def warm_next(slots_dir: Path) -> None:
    """Have the user namespace of the slot the next claim would take made in the background
    (a guess: a claim elsewhere may take it first; then it serves a later one)."""
    with _lock:
        if slots_dir not in _ahead_slots:
            _ahead_slots.append(slots_dir)
            if len(_ahead_slots) == 1:
                threading.Thread(target=_warm_loop, name="fargo-userns", daemon=True).start()
    _ahead.set()


def _warm_loop() -> None:
    # Idle priority: what it makes is off every start's path, and must not slow one down
    # (the holder process it has the spawn helper start gets the same policy).
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    while True:
        _ahead.wait()
        _ahead.clear()
        for slots_dir in list(_ahead_slots):
            base = _next_free_base(slots_dir)
            if base is None or base in _userns_fds:
                continue
            try:
                fd = _make_userns(base)  # not under _lock: a start's own make never waits
            except UsernsError:
                continue  # the start that takes the slot makes it, and says why not
            with _lock:
                if base in _userns_fds:
                    os.close(fd)
                else:
                    _userns_fds[base] = fd


def _next_free_base(slots_dir: Path) -> int | None:
    held = _held.get(slots_dir, set())
    for slot in range(MAX_SLOTS):
        if slot not in held and not (slots_dir / str(slot)).exists():
            return base_of(slot)
    return None


def _make_userns(base: int) -> int:
    """A helper process unshares a user namespace; we write its maps and keep an fd to it.

    The helper is util-linux's `unshare` running `cat`, in the C locale, so that neither
    program reads the locale files as it starts (a quarter of its CPU). It is started by the
    spawn helper (spawner.py), whose descriptor table is small: from the server, with 500
    tasks running, the child's copy and closing of the server's ~3,000 descriptors before
    its exec cost 2.6 ms of CPU per new range. cat echoes our byte only once it runs, after
    the unshare, and lives while we hold its stdin open: its pid names it until then."""
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    try:
        with open(os.devnull, "wb") as null:
            try:
                # The helper's lock is shared with every start's conmon; the holder itself
                # runs at the priority this thread had.
                with _not_idle() as was_idle:
                    pid = SPAWNER.spawn(Child(
                        argv=[_UNSHARE, "--user", _CAT], env={"LC_ALL": "C"}, cwd="/",
                        stdin=stdin_r, stdout=stdout_w, stderr=null.fileno(), idle=was_idle))
            except OSError as err:
                raise UsernsError(f"cannot create a user namespace: {err.strerror}") from None
        if pid is None:  # no spawn helper
            return _make_userns_here(base)
        os.close(stdin_r)
        os.close(stdout_w)
        stdin_r = stdout_w = -1
        try:
            os.write(stdin_w, b"u")
            if os.read(stdout_r, 1) != b"u":
                raise UsernsError("cannot create a user namespace")
            return _keep_userns(pid, base)
        except OSError as err:
            raise UsernsError(f"cannot create a user namespace: {err.strerror}") from None
    finally:  # cat reads EOF and ends; the spawn helper reaps it
        for fd in (stdin_r, stdin_w, stdout_r, stdout_w):
            if fd >= 0:
                os.close(fd)


@contextlib.contextmanager
def _not_idle() -> Iterator[bool]:
    """The calling thread at normal priority for a while, if it was at idle priority (what
    it yields): a lock it takes then is not held by a thread that runs only when a CPU is
    free."""
    idle = os.sched_getscheduler(0) == os.SCHED_IDLE
    if idle:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    try:
        yield idle
    finally:
        if idle:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _make_userns_here(base: int) -> int:
    """_make_userns without the spawn helper: the server starts the helper itself."""
    proc = subprocess.Popen([_UNSHARE, "--user", _CAT], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={"LC_ALL": "C"})
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b"u")
        proc.stdin.flush()
        if proc.stdout.read(1) != b"u":
            raise UsernsError("cannot create a user namespace")
        return _keep_userns(proc.pid, base)
    except OSError as err:
        raise UsernsError(f"cannot create a user namespace: {err.strerror}") from None
    finally:
        proc.kill()  # whatever state it is in, it has served
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()


def _keep_userns(pid: int, base: int) -> int:
    """The maps of running process pid's user namespace written, and an fd of it."""
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(f"0 {base} {RANGE}\n")
    # Kept for the server's life: above the descriptors short-lived work needs.
    return lift_fd(os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC))


def idmapped_tree(path: Path, base: int) -> int:
    """A detached idmapped copy of the mount at path: an fd, usable as /proc/self/fd/N.

    Closing the fd unmounts it; a filesystem mounted on top (overlayfs) keeps its own
    reference, so the caller closes it right after that mount.
    """
    ns_fd = userns_fd(base)  # first: should it fail, no open tree is left behind
    fd = libc.syscall(_SYS_OPEN_TREE, -100, os.fsencode(path),
                      _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC)
    if fd < 0:
        raise UsernsError(f"open_tree {path}: {os.strerror(last_errno())}")
    attr = _MountAttr(_MOUNT_ATTR_IDMAP, 0, 0, ns_fd)
    if libc.syscall(_SYS_MOUNT_SETATTR, fd, b"", _AT_EMPTY_PATH, ctypes.byref(attr),
                    ctypes.sizeof(attr)) < 0:
        err = last_errno()
        os.close(fd)
        if err in (errno.EINVAL, errno.ENOSYS, errno.EPERM):
            raise UsernsError(f"cannot idmap {path}: {os.strerror(err)} (the filesystem or "
                              "kernel lacks idmapped mounts)")
        raise UsernsError(f"mount_setattr {path}: {os.strerror(err)}")
    return int(fd)
