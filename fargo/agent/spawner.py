"""Processes a start needs (each container's conmon, each user namespace's holder) started
by a small helper process of the server's, not by the server itself.

Starting a process copies the starter's descriptor table into the child and closes it again
before exec: the server holds ~6 descriptors per running task (the listeners in its netns,
the pidfd of its monitor, its user namespace), so with 500 running a start's conmon cost
~1-2 ms more to start than on an empty host (2,000 descriptors: 0.9 -> 2.0 ms a spawn), and
the server's thread waited through it. The helper holds only its socket to the server: it
takes the child's argv, environment, cwd and descriptors (by SCM_RIGHTS), starts it, and
answers with its pid (or the errno of the failure). It reaps what it starts; a caller reads
what it needs (stderr, a sync pipe) from descriptors of its own.

The helper ends when the server does: its socket then reads EOF (nothing else holds the
server's end, which no child inherits). What it started lives on, as conmon daemons do.
Without a helper (it could not start, or died), the caller starts the process itself:
`spawn` returns None."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

_MAX_MESSAGE = 1 << 20  # argv and environment of one child, as JSON
_MAX_FDS = 16


@dataclass(frozen=True)
class Child:
    """What to start: the three standard descriptors and any more it keeps (pass_fds, each
    at whatever number the helper received it as; fd_env names the environment variables
    that say which, by index into pass_fds)."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: str
    stdin: int
    stdout: int
    stderr: int
    pass_fds: Sequence[int] = ()
    fd_env: Mapping[str, int] | None = None
    new_session: bool = True
    idle: bool = False  # started at idle CPU priority (SCHED_IDLE), which it keeps


class Spawner:
    """The server's side: one helper, started at first use, one request at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._helper: subprocess.Popen[bytes] | None = None
        self._broken = False

    def spawn(self, child: Child) -> int | None:
        """The pid of the started child; OSError as Popen would raise it; None when there is
        no helper to ask (the caller starts the child itself)."""
        fds = [child.stdin, child.stdout, child.stderr, *child.pass_fds]
        if len(fds) > _MAX_FDS:
            return None
        request = json.dumps({"argv": list(child.argv), "env": dict(child.env),
                              "cwd": child.cwd, "fd_env": dict(child.fd_env or {}),
                              "new_session": child.new_session, "idle": child.idle}).encode()
        if len(request) > _MAX_MESSAGE:
            return None
        with self._lock:
            sock = self._ensure()
            if sock is None:
                return None
            try:
                socket.send_fds(sock, [request], fds)
            except OSError:  # the helper was gone already: the caller starts this one
                self._give_up()
                return None
            try:
                reply = sock.recv(4096)
            except OSError:
                reply = b""
            if not reply:
                # Gone while at it: the child may have started, so it is not started again.
                self._give_up()
                raise OSError(errno.EIO, "the spawn helper ended while starting it",
                              child.argv[0])
        answer = json.loads(reply)
        if "pid" in answer:
            return int(answer["pid"])
        raise OSError(int(answer["errno"]), answer["message"], child.argv[0])

    def warm(self) -> None:
        """Start the helper now rather than in the first start's path."""
        with self._lock:
            self._ensure()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _ensure(self) -> socket.socket | None:
        if self._sock is not None or self._broken:
            return self._sock
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._helper = subprocess.Popen(
                [sys.executable, "-m", "fargo.agent.spawner", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            log.exception("starting the spawn helper")
            ours.close()
            self._broken = True
            return None
        finally:
            theirs.close()
        self._sock = ours
        return ours

    def _give_up(self) -> None:
        """The helper is gone: from now on callers start their children themselves."""
        log.warning("the spawn helper is gone; starting processes from the server")
        self._drop()
        self._broken = True

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()  # the helper sees EOF and ends
            self._sock = None
        if self._helper is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._helper.wait(timeout=2)
            if self._helper.returncode is None:
                self._helper.kill()
                self._helper.wait()
            self._helper = None


# The process's own: every conmon of this server, and every user namespace's holder.
SPAWNER = Spawner()


# ---------------------------------------------------------------- the helper


def _serve(sock: socket.socket) -> None:
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, _MAX_FDS)
        except OSError:
            return
        if not message:
            return  # the server closed its end (or ended)
        proc = None
        try:
            reply, proc = _start(json.loads(message), fds)
        except (ValueError, KeyError, TypeError, IndexError) as exc:  # not the server's words
            reply = {"errno": errno.EINVAL, "message": f"bad spawn request: {exc}"}
        finally:
            for fd in fds:
                os.close(fd)
        try:
            sock.send(json.dumps(reply).encode())
        except OSError:
            return
        finally:
            if proc is not None:
                # Reaped as it ends (conmon's first process ends within milliseconds); the
                # thread is started once the caller has its answer, not before.
                threading.Thread(target=proc.wait, daemon=True).start()


def _start(request: dict[str, object],
           fds: list[int]) -> tuple[dict[str, object], subprocess.Popen[bytes] | None]:
    """The answer to a request, and the child started if one was (for its reaper)."""
    if len(fds) < 3:
        return {"errno": errno.EINVAL, "message": "a child needs stdin, stdout and stderr"}, None
    env = dict(request["env"])  # type: ignore[call-overload]
    extra = fds[3:]
    for name, index in dict(request["fd_env"]).items():  # type: ignore[call-overload]
        env[name] = str(extra[int(index)])
    idle = bool(request.get("idle"))
    try:
        if idle:  # the child inherits this thread's policy (Popen's vfork and exec keep it)
            _policy(os.SCHED_IDLE)
        proc = subprocess.Popen(
            list(request["argv"]), env=env, cwd=str(request["cwd"]),  # type: ignore[call-overload]
            stdin=fds[0], stdout=fds[1], stderr=fds[2], pass_fds=tuple(extra),
            start_new_session=bool(request["new_session"]))
    except OSError as err:
        return {"errno": err.errno or errno.EIO, "message": err.strerror or str(err)}, None
    finally:
        if idle:
            _policy(os.SCHED_OTHER)
    return {"pid": proc.pid}, proc


def _policy(policy: int) -> None:
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, policy, os.sched_param(0))


def _main(argv: list[str]) -> int:
    # No signal is ignored or blocked here: children inherit both, and a container's
    # process must start as it would from the server. In a session of its own, no Ctrl-C
    # meant for the server reaches it.
    _serve(socket.socket(fileno=int(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
