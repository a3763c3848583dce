"""The kernel calls the network's parts share: the netlink threads, netns pins, sysctls and
link lookups over pyroute2's IPRoute.

All netlink work runs on a thread of its own, never the caller's:
- creating a netns means ``unshare(CLONE_NEWNET)``, which switches only the calling thread, and
  entering one (setns) likewise: the caller (and any thread pool) stays in the host namespace;
- pyroute2's synchronous ``IPRoute`` drives its own asyncio loop and fails inside a thread that
  already runs one (e.g. an aiohttp handler), so it must not run on the caller's thread.
Those threads are kept between jobs (a start makes three of them, a stop one): each goes back
to the host's netns after a job, and one that cannot is let go. This is also what makes the
attach fast: no ``ip`` processes and no pyroute2 fork helpers."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..port.errors import NetworkError
from .libc import (
    MNT_DETACH,
    MS_BIND,
    MS_REC,
    errno_message,
    libc,
    lift_fd,
    mount,
    try_mount,
    umount2,
)
from .netnames import NETNS_DIR

_CLONE_NEWNET = 0x40000000
_CLONE_NEWNS = 0x00020000
_CLONE_FS = 0x00000200
_MS_SHARED = 1 << 20

T = TypeVar("T")


def lift(sock: socket.socket) -> socket.socket:
    """sock, on a descriptor above FD_SETSIZE (see libc.lift_fd)."""
    blocking = sock.getblocking()
    moved = socket.socket(fileno=lift_fd(sock.detach()))
    moved.setblocking(blocking)
    return moved


def run_in_thread(fn: Callable[[], T]) -> T:
    """Run fn on a netlink thread (see the module docstring); hand back its result or error."""
    with _idle_lock:
        worker = _idle.pop() if _idle else None
    if worker is None:
        worker = _Worker()
    ok, value = worker.run(fn)
    if worker.reusable:
        with _idle_lock:
            kept = len(_idle) < MAX_IDLE_WORKERS
            if kept:
                _idle.append(worker)
        if not kept:
            worker.retire()
    if not ok:
        raise value
    result: T = value
    return result


MAX_IDLE_WORKERS = 4  # as many netlink jobs as run at once in a launch's starts
_idle: list[_Worker] = []
_idle_lock = threading.Lock()
_host_fd: list[int] = []  # the host's netns: where every netlink thread is born
_host_mnt: list[int] = []  # and its mount namespace
_thread = threading.local()  # .own_fs: this thread unshared its fs_struct (enter_mount_ns)


def _host_ns(kept: list[int], name: str) -> int:
    with _idle_lock:
        if not kept:
            # /proc/self is the main thread's, which never leaves the host's namespaces.
            kept.append(lift_fd(os.open(f"/proc/self/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)))
        return kept[0]


def _host_netns() -> int:
    return _host_ns(_host_fd, "net")


def host_mount_ns() -> int:
    return _host_ns(_host_mnt, "mnt")


def enter_mount_ns(fd: int | None) -> None:
    """Move the *calling thread* into the mount namespace of fd (None: a new one, a copy of
    its current one). A thread of a process can only do so with a root and cwd of its own, so
    the thread first unshares those (once); a netlink worker goes back to the host's mount
    namespace after its job."""
    if not getattr(_thread, "own_fs", False):
        _check("unshare fs", libc.unshare(_CLONE_FS))
        _thread.own_fs = True
    if fd is None:
        _check("unshare mount namespace", libc.unshare(_CLONE_NEWNS))
    else:
        _check("setns mount namespace", libc.setns(fd, _CLONE_NEWNS))
        if fd == host_mount_ns():
            _home_cwd()


def _home_cwd() -> None:
    """setns leaves the thread's cwd at the namespace's root: back to the process's (the
    main thread's), so that relative paths mean on every thread what they mean on it."""
    with contextlib.suppress(OSError):
        os.chdir("/proc/self/cwd")


def _back_home(host_net: int) -> bool:
    """The calling thread back in the host's netns (and mount namespace, if it left it)."""
    if libc.setns(host_net, _CLONE_NEWNET) != 0:
        return False
    if not getattr(_thread, "own_fs", False):
        return True
    if libc.setns(host_mount_ns(), _CLONE_NEWNS) != 0:
        return False
    _home_cwd()
    return True


class _Worker:
    """A thread that runs one job at a time for run_in_thread, back in the host's netns after
    each; `reusable` is False once it could not get back (it has then ended)."""

    def __init__(self) -> None:
        self.reusable = True
        self._host = _host_netns()
        self._fn: Callable[[], Any] | None = None
        self._result: tuple[bool, Any] = (False, None)
        self._go = threading.Semaphore(0)
        self._done = threading.Semaphore(0)
        threading.Thread(target=self._loop, name="fargo-netlink", daemon=True).start()

    def run(self, fn: Callable[[], Any]) -> tuple[bool, Any]:
        """(True, fn's result) or (False, what it raised), fn run on this worker's thread."""
        self._fn = fn
        self._go.release()
        self._done.acquire()
        result, self._result = self._result, (False, None)
        return result

    def retire(self) -> None:
        self._fn = None
        self._go.release()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            fn, self._fn = self._fn, None
            if fn is None:
                return  # retired
            try:
                self._result = (True, fn())
            except BaseException as exc:  # re-raised on the caller's thread
                self._result = (False, exc)
            # Whatever namespaces the job left this thread in, the next starts in the host's.
            self.reusable = _back_home(self._host)
            self._done.release()
            if not self.reusable:
                return


def with_ipr(fn: Callable[[IPRoute], T]) -> T:
    with IPRoute() as ipr:
        return fn(ipr)


def _check(what: str, result: int) -> None:
    if result != 0:
        raise NetworkError(errno_message(what))


# ---------------------------------------------------------------- netns pins


def _prepare_netns_dir() -> None:
    """Make NETNS_DIR a shared mount like `ip netns add` does, so mounts in it propagate."""
    os.makedirs(NETNS_DIR, exist_ok=True)
    if try_mount("none", NETNS_DIR, None, _MS_SHARED | MS_REC) == 0:
        return
    # EINVAL: not a mount point yet; bind it onto itself, then share it.
    mount(NETNS_DIR, NETNS_DIR, "none", MS_BIND | MS_REC, what="bind netns dir",
          error=NetworkError)
    mount("none", NETNS_DIR, None, _MS_SHARED | MS_REC, what="share netns dir",
          error=NetworkError)


def enter_new_netns(path: str) -> None:
    """Move the *calling thread* into a new netns and pin it at path (bind mount)."""
    if not os.path.ismount(NETNS_DIR):
        _prepare_netns_dir()
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    os.close(fd)
    try:
        _check("unshare netns", libc.unshare(_CLONE_NEWNET))
        # /proc/thread-self, not /proc/self: that is the main thread's
        mount("/proc/thread-self/ns/net", path, "none", MS_BIND, what="mount netns",
              error=NetworkError)
    except BaseException:
        os.unlink(path)
        raise


def new_netns() -> None:
    """Move the *calling thread* into a new, empty netns (its pin is the caller's to make)."""
    _check("unshare netns", libc.unshare(_CLONE_NEWNET))


def setns(fd: int) -> None:
    """Move the calling thread into the netns of fd."""
    _check("setns", libc.setns(fd, _CLONE_NEWNET))


def enter_netns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        setns(fd)
    finally:
        os.close(fd)


def remove_netns(path: str) -> None:
    if not os.path.lexists(path):
        return
    err = umount2(path, MNT_DETACH)
    if err not in (0, errno.EINVAL, errno.ENOENT):
        raise NetworkError(f"umount netns: {os.strerror(err)}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------- sysctls


def write_sysctl(path: str, value: str) -> None:
    """Best effort: a missing key (e.g. IPv6 disabled in the kernel) is not an error."""
    try:
        with open(path, "w") as fh:
            fh.write(value)
    except FileNotFoundError:
        pass


def write_sysctls(base: str, values: Mapping[str, str]) -> None:
    """Several keys below one /proc/sys directory (of the calling thread's netns), found
    from one open of it. Every netns's `ipv4` and `ipv6` entries sit in one hash chain of
    /proc/sys/net, so each lookup of a whole path walks past those of every other netns:
    0.05-0.25 ms each with 500 running. Best effort, as write_sysctl."""
    try:
        top = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:  # e.g. no IPv6 in this kernel
        return
    try:
        for rel, value in values.items():
            try:
                fd = os.open(rel, os.O_WRONLY | os.O_CLOEXEC, dir_fd=top)
            except FileNotFoundError:
                continue
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
    finally:
        os.close(top)


def task_netns_defaults() -> None:
    """Settings of the calling thread's new task netns, written before any interface is made
    in it, which then inherits them: nothing is left to write when eth0 comes, the start's
    attach sets no sysctl in the netns."""
    write_sysctls("/proc/sys/net/ipv4", {
        # eth0 answers ARP for its own address only, not for the endpoints on lo.
        "conf/default/arp_ignore": "1",
        # Containers run in user namespaces of their own, so their root holds no capability
        # over this netns (the host's user namespace owns it): let any uid bind ports < 1024
        # and open ICMP echo sockets (ping), as root could.
        "ip_unprivileged_port_start": "0",
        "ping_group_range": "0 2147483647",
    })
    # awsvpc here is IPv4 only: eth0 is born without IPv6, so no link-local address, no
    # RS/DAD/MLD, and no address a router advertisement could add (lo, made before, keeps
    # ::1). The default's write takes no rtnl lock, unlike a link's.
    write_sysctls("/proc/sys/net/ipv6/conf/default", {"disable_ipv6": "1"})


def read_sysctl(path: str) -> str | None:
    """None when it cannot be read (missing, or its device going away: ENODEV)."""
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def quiet_ipv6(ifname: str) -> None:
    """IPv6 off on a link that is still down: no link-local address, no RS/DAD/MLD chatter.
    Sysctls under /proc/sys/net belong to the netns of the *calling thread*."""
    write_sysctl(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "1")


# ---------------------------------------------------------------- links (IPRoute)


def link(ipr: IPRoute, name: str) -> Any | None:
    """The link called name (its netlink message), None only when there is no such link.

    (pyroute2's link_lookup answers [] for *any* netlink error: a transient one then looked
    like a missing bridge, and the bridge's own subnet like an overlap.)"""
    for attempt in range(3):
        try:
            return ipr.link("get", ifname=name)[0]
        except NetlinkError as err:
            if err.code == errno.ENODEV:
                return None
            if attempt == 2:
                raise NetworkError(f"looking up {name}: {err}") from err
            time.sleep(0.01)
    return None


def index(ipr: IPRoute, name: str) -> int | None:
    found = link(ipr, name)
    return None if found is None else int(found["index"])


def delete_link(ipr: IPRoute, name: str) -> None:
    idx = index(ipr, name)
    if idx is None:
        return
    try:
        ipr.link("del", index=idx)
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:
            raise


def ignore_exists(fn: Callable[[], object]) -> None:
    try:
        fn()
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise


def link_kind(msg: Any) -> str | None:
    info = msg.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info else None
