"""The holder: a mount namespace of fargo's own for what each task would otherwise mount on
the host and keep mounted for its whole life (its netns pin, its ephemeral storage).

Every mount in the host's table is copied into each new container's mount namespace and read
by runc several times: ~22 µs per mount for every later `runc create`, so the two a task kept
made each start ~22 ms dearer with 500 tasks running. In the holder they cost nothing: it is
one mount namespace per host, shared by every server (as /var/run/netns is), holding only the
root filesystem, /proc, /dev and a tmpfs at /run with the netns pins in /run/netns and the
task filesystems under /run/storage. One bind mount of its namespace file on the host (PIN)
keeps it, so it outlives any server and holds the tasks' netns and storage across a SIGKILL
of one, as their host mounts did.

From the host its files are reached by path through a directory fd this process holds in the
holder (`/proc/<pid>/fd/<n>/netns/<name>`, `outside`): open, setns, runc and nsenter take a pin
as any netns path, and file calls work there as anywhere. Mounting and unmounting there needs
a thread inside (`inside`: a netlink worker that enters and leaves it, netsys.enter_mount_ns),
and a mount elsewhere (an overlay's upper dir, a bind) takes a detached copy of a directory
made inside (`clone`), as the kernel takes no mount of another namespace for either. To look
by hand: `nsenter --mount=/run/fargo-holder.mnt ip netns list`."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from ..port.errors import NetworkError
from .libc import (
    MNT_DETACH,
    MS_BIND,
    MS_PRIVATE,
    MS_REC,
    last_errno,
    libc,
    lift_fd,
    mount,
    try_mount,
    umount2,
)
from .netsys import enter_mount_ns, host_mount_ns, run_in_thread

PIN = "/run/fargo-holder.mnt"  # the holder's namespace file, bound here on the host
_LOCK = "/run/fargo-holder.lock"  # held to make or drop the holder, or change what it holds
_ROOT = "/run"  # inside the holder: its own tmpfs, what `outside` paths are relative to
NETNS = "netns"  # the pins, under _ROOT
STORAGE = "storage"  # <server key>/<task id>: the task filesystems' mount points
# The holder's copies of the host's mounts that stay (all the others go): enough for
# `nsenter --mount=PIN ip netns exec <pin> <command>` to work by hand.
_KEEP = ("/", "/proc", "/dev", "/dev/pts")

_SYS_OPEN_TREE = 428
_OPEN_TREE_CLONE = 1

T = TypeVar("T")


def _nsfs_dev() -> int:
    return os.stat("/proc/self/ns/net").st_dev


class _Holder:
    """This process's way into the holder: its namespace fd and an fd of its /run, checked
    against PIN before use (another server may have dropped an empty one and made a new one)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._ns: int | None = None
        self._dir: int | None = None
        self._ino = 0

    def _current(self) -> bool:
        try:
            st = os.stat(PIN)
        except FileNotFoundError:
            return False
        return self._ns is not None and st.st_ino == self._ino and st.st_dev == _nsfs_dev()

    def _close(self) -> None:
        for fd in (self._ns, self._dir):
            if fd is not None:
                os.close(fd)
        self._ns = self._dir = None

    def fds(self, make: bool) -> tuple[int, int] | None:
        """(the namespace's fd, its /run's), the holder made first when make; None without
        one. Making one is for a caller holding the lock."""
        with self._guard:
            if self._current():
                assert self._ns is not None and self._dir is not None
                return self._ns, self._dir
            self._close()
            try:
                held = os.stat(PIN).st_dev == _nsfs_dev()
            except FileNotFoundError:
                held = False
            if not held:
                if not make:
                    return None
                _make()
            ns = os.open(PIN, os.O_RDONLY | os.O_CLOEXEC)
            try:
                root = run_in_thread(lambda: _in(ns, lambda: os.open(
                    _ROOT, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)))
            except BaseException:
                os.close(ns)
                raise
            self._ino = os.fstat(ns).st_ino
            self._ns, self._dir = lift_fd(ns), lift_fd(root)
            return self._ns, self._dir

    def forget(self) -> None:
        with self._guard:
            self._close()


_holder = _Holder()


def _in(ns_fd: int, fn: Callable[[], T]) -> T:
    """fn run by the calling thread inside the holder, the thread back in the host's mount
    namespace afterwards (or NetworkError: then it must not be used again)."""
    enter_mount_ns(ns_fd)
    try:
        return fn()
    finally:
        enter_mount_ns(host_mount_ns())


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """The host-wide lock: what the holder holds is mounted and dropped one at a time (tens
    of µs each), so no server drops the holder as another mounts in it, and no two make one."""
    fd = os.open(_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and the lock with it


def _ns_fd() -> int:
    """The holder's namespace fd, the holder made if need be (the caller holds the lock)."""
    fds = _holder.fds(make=True)
    assert fds is not None
    return fds[0]


def _make() -> None:
    """A new holder bound at PIN (the caller holds the lock)."""
    made: list[BaseException | int] = []
    bound = threading.Event()

    def build() -> None:
        # This thread ends in the new namespace; nothing else of the process does.
        try:
            enter_mount_ns(None)  # unshare(CLONE_NEWNS): a copy of the host's mounts
            mount("none", "/", None, MS_REC | MS_PRIVATE, what="holder: private mounts",
                  error=NetworkError)
            _drop_copies()
            mount("fargo-holder", _ROOT, "tmpfs", 0, "mode=0755,size=4m",
                  what="holder: tmpfs", error=NetworkError)
            for sub in (NETNS, STORAGE):
                os.mkdir(os.path.join(_ROOT, sub), 0o755)
            made.append(threading.get_native_id())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            made.append(exc)
        finally:
            if not made:
                made.append(NetworkError("holder: not made"))
        bound.wait()

    thread = threading.Thread(target=build, name="fargo-holder", daemon=True)
    thread.start()
    try:
        while not made:
            thread.join(0.001)
        result = made[0]
        if isinstance(result, BaseException):
            raise result
        os.close(os.open(PIN, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        mount(f"/proc/self/task/{result}/ns/mnt", PIN, None, MS_BIND,
              what="binding the holder", error=NetworkError)
    finally:
        bound.set()
        thread.join()


def _drop_copies() -> None:
    """Detach the holder's copies of the host's mounts but _KEEP's: a copy would hold its
    filesystem (a task's storage, a loop device) long after the host unmounted it."""
    for _ in range(8):  # stacked mounts show one layer per pass
        points = [_unescape(line.split()[4]) for line in open("/proc/thread-self/mountinfo")]
        extra = [p for p in points if p not in _KEEP]
        if not extra:
            return
        for point in sorted(set(extra), key=lambda p: p.count("/"), reverse=True):
            umount2(point, MNT_DETACH)
    raise NetworkError("holder: could not drop the host's mounts from it")


def _unescape(field: str) -> str:
    """A mountinfo path: space, tab, newline and backslash come as octal escapes."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


# ---------------------------------------------------------------- what it holds


def outside(rel: str) -> str:
    """Where the holder's _ROOT/rel is reached from the host (whether or not it exists): this
    process's path, valid while it runs."""
    fds = _holder.fds(make=False)
    if fds is None:
        with _locked():
            fds = _holder.fds(make=True)
    assert fds is not None
    return f"/proc/{os.getpid()}/fd/{fds[1]}/{rel}"


def inner(rel: str) -> str:
    """The same place as `outside(rel)`, as a thread inside the holder names it."""
    return os.path.join(_ROOT, rel)


def inside(fn: Callable[[], T]) -> T:
    """fn on a worker thread inside the holder (made if need be), under the lock: mounts
    and unmounts there name their places by `inner`."""
    with _locked():
        ns = _ns_fd()
        return run_in_thread(lambda: _in(ns, fn))


def clone(rel: str) -> int:
    """An fd of a detached copy of the holder's directory _ROOT/rel (open_tree): a mount the
    host's may take as an overlay's upper dir or move into place; it goes with its last fd."""
    def copy() -> int:
        fd = libc.syscall(_SYS_OPEN_TREE, -100, os.fsencode(inner(rel)),
                          _OPEN_TREE_CLONE | os.O_CLOEXEC)
        if fd < 0:
            err = last_errno()
            raise OSError(err, f"open_tree {rel}: {os.strerror(err)}")
        return int(fd)

    with _locked():
        ns = _ns_fd()
        return run_in_thread(lambda: _in(ns, copy))


def listing(rel: str) -> list[str]:
    """The names in the holder's _ROOT/rel (none when there is no holder or no such dir)."""
    fds = _holder.fds(make=False)
    if fds is None:
        return []
    try:
        return sorted(os.listdir(f"/proc/self/fd/{fds[1]}/{rel}"))
    except FileNotFoundError:
        return []


def drop_if_empty() -> bool:
    """Unbind the holder when it holds nothing (it then ends); True if there is none now."""
    with _locked():
        if listing(NETNS) or any(listing(f"{STORAGE}/{key}") for key in listing(STORAGE)):
            return False
        _holder.forget()
        if os.path.lexists(PIN):
            err = umount2(PIN, MNT_DETACH)
            if err not in (0, errno.EINVAL, errno.ENOENT):
                raise NetworkError(f"unbinding the holder: {os.strerror(err)}")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(PIN)
        return True


def storage_rel(state_dir: Path, tid: str) -> str:
    """Where a task's filesystem is mounted in the holder (relative to its _ROOT): under a
    directory of its server's state dir's own, so servers of other state dirs never meet."""
    key = hashlib.sha256(os.fsencode(Path(state_dir).resolve())).hexdigest()[:16]
    return f"{STORAGE}/{key}/{tid}"


# ---------------------------------------------------------------- netns pins


def path(name: str) -> str:
    """Where the netns pinned as name is reached from the host (pinned or not yet)."""
    return outside(f"{NETNS}/{name}")


def pin_here(name: str) -> None:
    """Pin the calling thread's netns as name (a leftover pin of the name goes first). The
    thread is a netlink worker in its new netns: only its mount namespace moves."""
    def bind() -> None:
        pin = inner(f"{NETNS}/{name}")
        _unpin(pin)
        os.close(os.open(pin, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
        err = try_mount("/proc/thread-self/ns/net", pin, None, MS_BIND)
        if err:
            os.unlink(pin)
            raise NetworkError(f"pinning netns {name}: {os.strerror(err)}")

    with _locked():
        _in(_ns_fd(), bind)


def unpin(name: str) -> None:
    """Drop the pin (the netns ends once nothing else holds it). Idempotent."""
    with _locked():
        fds = _holder.fds(make=False)
        if fds is None:
            return
        ns = fds[0]
        run_in_thread(lambda: _in(ns, lambda: _unpin(inner(f"{NETNS}/{name}"))))


def _unpin(pin: str) -> None:
    if not os.path.lexists(pin):
        return
    err = umount2(pin, MNT_DETACH)
    if err not in (0, errno.EINVAL, errno.ENOENT):
        raise NetworkError(f"unpinning {os.path.basename(pin)}: {os.strerror(err)}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pin)


def pinned(pin_path: str) -> bool:
    """Whether the path holds a netns (a pin file left without its mount holds none)."""
    try:
        return os.stat(pin_path).st_dev == _nsfs_dev()
    except OSError:
        return False


def names() -> list[str]:
    """Every pin the holder has, of every server of the host."""
    return listing(NETNS)
