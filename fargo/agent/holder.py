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
by hand: `nsenter --mount=/run/fargo-holder/mnt ip netns list`."""

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
from .netsys import enter_mount_ns, host_mount_ns, remove_netns, run_in_thread

# The holder's namespace file is bound at PIN on the host, in a private bind of its own
# directory: the kernel refuses a mount namespace's file in a shared mount (EINVAL), and
# /run is shared on a systemd host.
_DIR = "/run/fargo-holder"
PIN = f"{_DIR}/mnt"
_OLD_PIN = "/run/fargo-holder.mnt"  # where servers before the directory bound it
_LOCK = "/run/fargo-holder.lock"  # shared to use the holder, exclusive to make or drop it
_ROOT = "/run"  # inside the holder: its own tmpfs, what `outside` paths are relative to
NETNS = "netns"  # the pins, under _ROOT
STORAGE = "storage"  # <server key>/<task id>: the task filesystems' mount points
OWNERS = "owners"  # <server key>: the state dir whose task filesystems those are
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
        self.pin = PIN  # where the one in use is bound

    def _current(self) -> bool:
        try:
            st = os.stat(self.pin)
        except FileNotFoundError:
            return False
        return self._ns is not None and st.st_ino == self._ino and st.st_dev == _nsfs_dev()

    def _open(self) -> int | None:
        """An fd of the bound holder's namespace, None if none is bound (or one is being
        dropped: a pin file without its mount is no holder)."""
        for pin in (PIN, _OLD_PIN):
            try:
                fd = os.open(pin, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            if os.fstat(fd).st_dev == _nsfs_dev():
                self.pin = pin
                return fd
            os.close(fd)
        return None

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
            ns = self._open()
            if ns is None:
                if not make:
                    return None
                _make()
                ns = self._open()
                if ns is None:
                    raise NetworkError("holder: made but not bound")
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
def _locked(how: int) -> Iterator[None]:
    """The host-wide lock, on an open of its own (flock is per open file): shared by whoever
    mounts or unmounts in the holder, as many at once as like (a task's storage may take
    long to flush), exclusive to make or drop it, so none drops it under another's feet."""
    fd = os.open(_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, how)
        yield
    finally:
        os.close(fd)  # and the lock with it


@contextlib.contextmanager
def _in_use(make: bool = True) -> Iterator[int | None]:
    """The holder's namespace fd, kept from being dropped until the block ends; made first
    (under the exclusive lock) when there is none and make, else None."""
    while True:
        with _locked(fcntl.LOCK_SH):
            fds = _holder.fds(make=False)
            if fds is not None or not make:
                yield None if fds is None else fds[0]
                return
        _made()  # a shared lock cannot be raised in place


def _made() -> None:
    """A holder made if there is none, under the exclusive lock."""
    with _locked(fcntl.LOCK_EX):
        _holder.fds(make=True)


def _make() -> None:
    """A new holder bound at PIN (the caller holds the lock).

    The kernel binds a mount namespace's file only into an older namespace, and judges age
    by the namespaces' ids, which each CPU hands out from a batch of its own: a holder made
    on one CPU can look older than a young namespace this server runs in (a container's, a
    sandboxed service's) made on another. Then it is made again on each CPU in turn; on the
    one that made this server's namespace, it is younger."""
    _private_dir()
    os.close(os.open(PIN, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    err = 0
    for cpu in (None, *sorted(os.sched_getaffinity(0))):
        err = _build(lambda tid: try_mount(f"/proc/self/task/{tid}/ns/mnt", PIN, None,
                                           MS_BIND), cpu)
        if err != errno.EINVAL:
            break
    if err:
        raise NetworkError(f"binding the holder: {os.strerror(err)}")


def _build(bind: Callable[[int], int], cpu: int | None) -> int:
    """A new mount namespace made by a thread of its own (on cpu, if given), handed by that
    thread's id to bind while it lives; bind's errno back (the namespace goes with the
    thread unless bound)."""
    made: list[BaseException | int] = []
    bound = threading.Event()

    def build() -> None:
        # This thread ends in the new namespace; nothing else of the process does.
        try:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})  # this thread only
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
        return bind(result)
    finally:
        bound.set()
        thread.join()


def _private_dir() -> None:
    """_DIR as a private bind mount of itself (kept while a holder is bound in it). Made
    private first as it is: that fails (EINVAL) unless it is a mount already."""
    os.makedirs(_DIR, mode=0o700, exist_ok=True)
    if try_mount("none", _DIR, None, MS_PRIVATE) == 0:
        return
    mount(_DIR, _DIR, None, MS_BIND, what="binding the holder's directory",
          error=NetworkError)
    mount("none", _DIR, None, MS_PRIVATE, what="making the holder's directory private",
          error=NetworkError)


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
    process's path, valid while it runs. The holder is made if there is none."""
    found = reach(rel)
    if found is None:
        _made()
        found = reach(rel)
    assert found is not None
    return found


def reach(rel: str) -> str | None:
    """As `outside`, but None when there is no holder (nothing is in one then)."""
    fds = _holder.fds(make=False)
    return None if fds is None else f"/proc/{os.getpid()}/fd/{fds[1]}/{rel}"


def inner(rel: str) -> str:
    """The same place as `outside(rel)`, as a thread inside the holder names it."""
    return os.path.join(_ROOT, rel)


def inside(fn: Callable[[], T]) -> T:
    """fn on a worker thread inside the holder (made if need be), kept while it runs: mounts
    and unmounts there name their places by `inner`."""
    with _in_use() as ns:
        assert ns is not None
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

    with _in_use() as ns:
        assert ns is not None
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
    with _locked(fcntl.LOCK_EX):
        if listing(NETNS) or any(listing(f"{STORAGE}/{key}") for key in listing(STORAGE)):
            return False
        _holder.forget()
        for pin in (PIN, _OLD_PIN):
            remove_netns(pin)  # a bound namespace file goes as a netns pin does
        if os.path.isdir(_DIR):
            err = umount2(_DIR, MNT_DETACH)
            if err not in (0, errno.EINVAL, errno.ENOENT):
                raise NetworkError(f"unbinding {_DIR}: {os.strerror(err)}")
            with contextlib.suppress(OSError):  # ENOTEMPTY: a file of someone else's
                os.rmdir(_DIR)
        return True


def _key(state_dir: Path) -> str:
    return hashlib.sha256(os.fsencode(Path(state_dir).resolve())).hexdigest()[:16]


def storage_rel(state_dir: Path, tid: str) -> str:
    """Where a task's filesystem is mounted in the holder (relative to its _ROOT): under a
    directory of its server's state dir's own, so servers of other state dirs never meet."""
    return f"{STORAGE}/{_key(state_dir)}/{tid}"


def own_storage(state_dir: Path) -> None:
    """Note (from a thread inside) whose state dir the task filesystems of its key are, so
    that they can be swept once no server can ever come back for them (`sweep`)."""
    note = inner(f"{OWNERS}/{_key(state_dir)}")
    if not os.path.exists(note):
        os.makedirs(os.path.dirname(note), exist_ok=True)
        Path(note).write_text(str(Path(state_dir).resolve()))


def sweep() -> list[str]:
    """Unmount the task filesystems of every state dir that is gone (its server was killed
    and never came back to purge them, and the dir was deleted): nothing else ever would,
    and they would keep the holder. The state dirs swept, for the log."""
    swept = []
    for key in listing(OWNERS):
        note = reach(f"{OWNERS}/{key}")
        try:
            owner = Path(note).read_text() if note else ""
        except FileNotFoundError:  # swept meanwhile by another server
            continue
        if not owner or os.path.exists(owner):
            continue

        def drop(key: str = key) -> None:
            base = inner(f"{STORAGE}/{key}")
            for tid in os.listdir(base) if os.path.isdir(base) else []:
                umount2(os.path.join(base, tid), MNT_DETACH)
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(base, tid))
            with contextlib.suppress(OSError):
                os.rmdir(base)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(inner(f"{OWNERS}/{key}"))

        inside(drop)
        swept.append(owner)
    return swept


# ---------------------------------------------------------------- netns pins


def path(name: str) -> str:
    """Where the netns pinned as name is reached from the host (pinned or not yet)."""
    return outside(f"{NETNS}/{name}")


def found(name: str) -> str | None:
    """Where the pin named so is reached from the host, None when there is no holder."""
    return reach(f"{NETNS}/{name}")


def pin_here(name: str) -> str:
    """Pin the calling thread's netns as name (a leftover pin of the name goes first), and
    say where the pin is reached from the host. The thread is a netlink worker in its new
    netns: only its mount namespace moves."""
    def bind() -> None:
        pin = inner(f"{NETNS}/{name}")
        remove_netns(pin)
        os.close(os.open(pin, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
        err = try_mount("/proc/thread-self/ns/net", pin, None, MS_BIND)
        if err:
            os.unlink(pin)
            raise NetworkError(f"pinning netns {name}: {os.strerror(err)}")

    with _in_use() as ns:
        assert ns is not None
        _in(ns, bind)
        return path(name)


def unpin(name: str) -> None:
    """Drop the pin (the netns ends once nothing else holds it). Idempotent."""
    with _in_use(make=False) as ns:
        if ns is not None:
            run_in_thread(lambda: _in(ns, lambda: remove_netns(inner(f"{NETNS}/{name}"))))


def pinned(pin_path: str) -> bool:
    """Whether the path holds a netns (a pin file left without its mount holds none)."""
    try:
        return os.stat(pin_path).st_dev == _nsfs_dev()
    except OSError:
        return False


def names() -> list[str]:
    """Every pin the holder has, of every server of the host."""
    return listing(NETNS)
