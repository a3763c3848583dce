"""The data plane of one host, as the task reconciler sees it: network, images, sandbox."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ..model.vpc import Subnet
from . import userns
from .firewall import Firewall
from .images import Image, ImageStore
from .metadata import listen_inside, open_listener
from .network import Attachment, HostNetwork
from .sandbox import ContainerSpec, Sandbox, SandboxError
from .storage import DEFAULT_GIB, TaskStorage

log = logging.getLogger("fargo.agent")


def resolve_command(cdef: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Docker's rule: an entryPoint given in the definition also drops the image's Cmd."""
    entry = cdef.get("entryPoint")
    cmd = cdef.get("command")
    if entry is None:
        entry = config.get("Entrypoint") or []
        if cmd is None:
            cmd = config.get("Cmd") or []
    args = list(entry) + list(cmd or [])
    if not args:
        raise ValueError(f"container {cdef['name']!r}: no command given and the image has none")
    return args


def resolve_env(cdef: dict[str, Any], config: dict[str, Any],
                task_env: dict[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env.update(task_env)
    for item in cdef.get("environment") or []:
        env[item["name"]] = item.get("value", "")
    return env


class HostAgent:
    def __init__(self, state_dir: Path, prefix: str = "fg"):
        self.root = state_dir
        self.images = ImageStore(state_dir / "images")
        self.network = HostNetwork(prefix=prefix)
        self.firewall = Firewall(prefix)
        self.sandbox = Sandbox(state_dir / "tasks", runtime_root=Path(f"/run/{prefix}-runc"),
                               run_dir=Path(f"/run/{prefix}-tasks"),
                               rootfs_dir=Path(f"/run/{prefix}-rootfs"))
        self.storage = TaskStorage(state_dir / "storage")
        self._stop_signals: dict[tuple[str, str], str] = {}
        self._checked: dict[tuple[str, str], float] = {}
        self._exit_paths: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()
        self._listeners: dict[str, socket.socket] = {}  # opened at attach, not yet taken

    def _rootfs_dir(self, tid: str, name: str) -> Path:
        return self.root / "rootfs" / tid / name

    # network
    def attach_network(self, tid: str, subnet: Subnet, ip: str) -> Attachment:
        # The attach converges the subnet's bridge when this process has not yet (or it has
        # changed since); the metadata endpoint's socket is opened while it is in the netns.
        att = self.network.attach(tid, subnet.id, subnet.cidr, ip, inside=listen_inside)
        with self._lock:
            self._listeners[tid] = att.made_inside
        return att

    def metadata_listener(self, tid: str) -> socket.socket:
        """A listening socket for 169.254.170.2 inside the task's own netns: the one its
        attach opened, or (a re-adopted task) a new one."""
        with self._lock:
            sock = self._listeners.pop(tid, None)
        return sock or open_listener(self.network.netns_path(tid))

    # images
    def pull(self, ref: str, credentials: tuple[str, str] | None) -> Image:
        return self.images.pull(ref, credentials)

    # sandbox
    def create_sandbox(self, tid: str, cpu: int, memory: int,
                       storage_gib: int = DEFAULT_GIB) -> None:
        """The task's cgroups and user-namespace range, and its ephemeral storage: a
        filesystem of storage_gib at rootfs/<tid>, where its containers' writable layers go."""
        self.sandbox.create_task(tid, cpu, memory)
        # The range's user namespace, which every idmapped layer mount of the task needs:
        # made now, while the network is being made, rather than in the first mount.
        userns.userns_fd(self.sandbox.id_base(tid))
        self.storage.mount(tid, storage_gib, self.root / "rootfs" / tid)

    def prepare_rootfs(self, tid: str, name: str, image: Image) -> Path:
        """Mount a container's rootfs (its image's layers under a fresh writable layer); done
        while the task's network is still being made. Already mounted: left as it is."""
        workdir = self._rootfs_dir(tid, name)
        # Mounted where runc takes it from, not in the task's storage and bound there: one
        # mount less per container, and every mount makes each runc read of mountinfo longer.
        target = self.sandbox.rootfs_target(tid, name)
        if os.path.ismount(target):
            return target
        return self.images.mount_rootfs(image, workdir, id_base=self.sandbox.id_base(tid),
                                        target=target)

    def create_container(self, tid: str, cdef: dict[str, Any], image: Image,
                         task_env: dict[str, str]) -> None:
        config = image.config or {}
        rootfs = self.prepare_rootfs(tid, cdef["name"], image)
        linux = cdef.get("linuxParameters") or {}
        spec = ContainerSpec(
            name=cdef["name"], rootfs=rootfs, args=resolve_command(cdef, config),
            env=resolve_env(cdef, config, task_env),
            cwd=cdef.get("workingDirectory") or config.get("WorkingDir") or "/",
            user=cdef.get("user") or config.get("User") or "",
            netns_path=self.network.netns_path(tid),
            cpu_shares=int(cdef["cpu"]) if cdef.get("cpu") else None,
            memory_mib=cdef.get("memory"), memory_reservation_mib=cdef.get("memoryReservation"),
            stop_signal=config.get("StopSignal") or "SIGTERM",
            readonly_rootfs=bool(cdef.get("readonlyRootFilesystem")),
            extra_caps=list((linux.get("capabilities") or {}).get("add") or []),
            dropped_caps=list((linux.get("capabilities") or {}).get("drop") or []),
        )
        self._stop_signals[(tid, cdef["name"])] = spec.stop_signal
        self.sandbox.create_container(tid, spec)

    def start_container(self, tid: str, name: str) -> None:
        self.sandbox.start_container(tid, name)

    def remove_container(self, tid: str, name: str) -> None:
        """Delete one ended container and its writable layer, so the same name can be
        created afresh (a pod's restartPolicy); its log file stays and grows."""
        self.sandbox.delete_container(tid, name)
        self.images.unmount_rootfs(self._rootfs_dir(tid, name))
        self._checked.pop((tid, name), None)

    def exited(self, tid: str, name: str) -> bool:
        """Cheap enough to ask every few tens of milliseconds: a stat, and only when that
        finds nothing and a while has passed, a look at whether its conmon still lives."""
        path = self._exit_paths.get((tid, name))
        if path is None:  # the path is fixed for the container's life: build it once
            path = self._exit_paths[(tid, name)] = os.fsencode(self.sandbox.exit_file(tid, name))
        if os.path.exists(path):
            return True
        now = time.monotonic()
        last = self._checked.get((tid, name), 0.0)
        if last == float("inf"):
            return True  # found gone before: stays gone
        if now - last < 1.0:
            return False
        gone = self.sandbox.monitor_gone(tid, name)
        self._checked[(tid, name)] = float("inf") if gone else now
        return gone

    def result(self, tid: str, name: str) -> tuple[int | None, bool]:
        st = self.sandbox.state(tid, name)
        return st.exit_code, st.oom_killed

    def signal(self, tid: str, name: str, sig: str | None) -> None:
        if sig is None:
            sig = self._stop_signals.get((tid, name)) or self.sandbox.stop_signal(tid, name)
        self.sandbox.signal(tid, name, sig)

    def log_path(self, tid: str, name: str) -> Path:
        return self.sandbox.log_path(tid, name)

    def destroy(self, tid: str) -> None:
        """Everything the task held on the host goes; its logs stay."""
        with self._lock:
            unused = self._listeners.pop(tid, None)
        if unused:
            unused.close()
        for key in [k for k in list(self._stop_signals) if k[0] == tid]:
            self._stop_signals.pop(key, None)
        for cache in (self._checked, self._exit_paths):
            # list(): one copy in C, while the loop thread may be adding keys
            for key in [k for k in list(cache) if k[0] == tid]:
                cache.pop(key, None)
        try:
            self.sandbox.destroy_task(tid)
        finally:
            try:
                base = self.root / "rootfs" / tid
                if base.exists():
                    for d in base.iterdir():
                        if d.name != "lost+found":  # the storage filesystem's own
                            # Also when destroy_task failed half-way: an overlay left mounted
                            # would pin the task's filesystem and its loop device.
                            with contextlib.suppress(SandboxError):
                                self.images.unmount_rootfs(
                                    d, target=self.sandbox.rootfs_target(tid, d.name))
                            self.images.unmount_rootfs(d)  # where older servers mounted it
                    self.storage.unmount(base)
                    _rmtree_quiet(base)
            finally:
                self.network.detach(tid)  # the interface goes even if a mount would not


    def forget(self, tid: str) -> None:
        """Drop a long-stopped task's remaining files (its logs)."""
        self.sandbox.forget_task(tid)

    def purge(self) -> None:
        """Remove every task sandbox this host holds, then the bridges: a clean slate."""
        tids = set(self.sandbox.list_tasks())
        rootfs = self.root / "rootfs"
        if rootfs.exists():
            tids |= {d.name for d in rootfs.iterdir()}
        for tid in sorted(tids):
            try:
                self.destroy(tid)
            except Exception:  # noqa: BLE001 - purge goes on with the rest
                log.exception("purging task %s", tid)
        self.network.cleanup()
        self.firewall.remove()  # the security groups' nftables tables of this prefix
        self.sandbox.cleanup()


def _rmtree_quiet(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
