"""Task netns pins kept out of the host's mount table, in a mount namespace of their own.

A netns lives as long as something holds it. fargo held each task's with a bind mount under
/var/run/netns, as `ip netns add` does; but every mount in the host's table is copied into each
new container's mount namespace and read by runc several times, ~22 µs per mount for every
later `runc create`: 500 tasks' pins made each start ~11 ms dearer. The pins now live in the
*holder*: one mount namespace per host, shared by every server (as /var/run/netns is), holding
only the root filesystem, /proc, /dev and a tmpfs at /run whose /run/netns has the pins. One bind
mount of its namespace file on the host (PIN) keeps it, so like the pins before it outlives any
server and holds the tasks' netns across a SIGKILL of one.

From the host a pin is reached by path through a directory fd this process holds in the holder
(`/proc/<pid>/fd/<n>/<name>`): open, setns, runc and nsenter take it as any netns path. Only
binding and unbinding a pin needs a thread inside the holder (netsys.enter_mount_ns). To look
at them by hand: `nsenter --mount=/run/fargo-netns.mnt ip netns list`."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from ..port.errors import NetworkError
from .libc import MNT_DETACH, MS_BIND, MS_PRIVATE, MS_REC, lift_fd, mount, try_mount, umount2
from .netsys import enter_mount_ns, host_mount_ns, run_in_thread

PIN = "/run/fargo-netns.mnt"  # the holder's namespace file, bound here on the host
_LOCK = "/run/fargo-netns.lock"  # held to make, drop, or change the pins of the holder
_INNER = "/run/netns"  # inside the holder: where the pins are
# The holder's copies of the host's mounts that stay (all the others go): enough for
# `nsenter --mount=PIN ip netns exec <pin> <command>` to work by hand.
_KEEP = ("/", "/proc", "/dev", "/dev/pts")

T = TypeVar("T")


def _nsfs_dev() -> int:
    return os.stat("/proc/self/ns/net").st_dev


class _Holder:
    """This process's way into the holder: its namespace fd and a directory fd of its pins,
    checked against PIN before use (another server may have dropped an empty one and made a
    new one)."""

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

    def dir_fd(self, make: bool) -> int | None:
        """The fd of the pins' directory (the holder made first when make); None without one."""
        with self._guard:
            if self._current():
                return self._dir
            self._close()
            try:
                st = os.stat(PIN)
                held = st.st_dev == _nsfs_dev()
            except FileNotFoundError:
                held = False
            if not held:
                if not make:
                    return None
                _make()
            ns = os.open(PIN, os.O_RDONLY | os.O_CLOEXEC)
            try:
                inner = run_in_thread(lambda: _in(ns, lambda: os.open(
                    _INNER, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)))
            except BaseException:
                os.close(ns)
                raise
            self._ino = os.fstat(ns).st_ino
            self._ns, self._dir = lift_fd(ns), lift_fd(inner)
            return self._dir

    def ns_fd(self) -> int:
        with self._guard:
            assert self._ns is not None
            return self._ns

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
    """The host-wide lock: pins are made and dropped one at a time (tens of µs each), so no
    server drops the holder as another pins in it, and no two make one."""
    fd = os.open(_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and the lock with it


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
            mount("fargo-netns", "/run", "tmpfs", 0, "mode=0755,size=4m",
                  what="holder: tmpfs", error=NetworkError)
            os.mkdir(_INNER, 0o755)
            made.append(threading.get_native_id())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            made.append(exc)
        finally:
            if not made:
                made.append(NetworkError("holder: not made"))
        bound.wait()

    thread = threading.Thread(target=build, name="fargo-netns-holder", daemon=True)
    thread.start()
    try:
        while not made:
            thread.join(0.001)
        result = made[0]
        if isinstance(result, BaseException):
            raise result
        os.close(os.open(PIN, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        mount(f"/proc/self/task/{result}/ns/mnt", PIN, None, MS_BIND,
              what="binding the netns holder", error=NetworkError)
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


# ---------------------------------------------------------------- the pins


def path(name: str) -> str:
    """Where the netns pinned as name is reached from the host (pinned or not yet): only this
    process's path, valid while it runs."""
    fd = _holder.dir_fd(make=False)
    if fd is None:
        with _locked():
            fd = _holder.dir_fd(make=True)
    return f"/proc/{os.getpid()}/fd/{fd}/{name}"


def pin_here(name: str) -> None:
    """Pin the calling thread's netns as name (a leftover pin of the name goes first)."""
    with _locked():
        _holder.dir_fd(make=True)
        ns = _holder.ns_fd()

        def bind() -> None:
            pin = os.path.join(_INNER, name)
            _unpin(pin)
            os.close(os.open(pin, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
            err = try_mount("/proc/thread-self/ns/net", pin, None, MS_BIND)
            if err:
                os.unlink(pin)
                raise NetworkError(f"pinning netns {name}: {os.strerror(err)}")

        # The thread is in its new netns: _in moves only its mount namespace.
        _in(ns, bind)


def unpin(name: str) -> None:
    """Drop the pin (the netns ends once nothing else holds it). Idempotent."""
    with _locked():
        if _holder.dir_fd(make=False) is None:
            return
        ns = _holder.ns_fd()
        run_in_thread(lambda: _in(ns, lambda: _unpin(os.path.join(_INNER, name))))


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
    fd = _holder.dir_fd(make=False)
    return [] if fd is None else sorted(os.listdir(f"/proc/self/fd/{fd}"))


def drop_if_empty() -> bool:
    """Unbind the holder when it pins nothing (it then ends); True if there is none now."""
    with _locked():
        if names():
            return False
        _holder.forget()
        if os.path.lexists(PIN):
            err = umount2(PIN, MNT_DETACH)
            if err not in (0, errno.EINVAL, errno.ENOENT):
                raise NetworkError(f"unbinding the netns holder: {os.strerror(err)}")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(PIN)
        return True
