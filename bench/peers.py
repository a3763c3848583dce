"""The peers measured beside fargo in the same run, on the same image and machine.

podman: `podman run -d` on a bridge network, with the flags these machines need. netavark
turns on net.ipv4.ip_forward for every bridge network it sets up, even an --internal one, which
would let the host route traffic of other bridges (fargo's test tasks) off the machine. So the
podman CLI (and with it netavark and its bridge) runs inside a network namespace of our own,
via `nsenter --net`: forwarding is switched on in there only, the network is --internal (no
NAT, no gateway) and that namespace has no route anywhere. Image pulls run in the host
namespace, where the loopback registry is.

runc: `runc run -d` of a prepared bundle (fargo's own OCI config for the container, on a shared
read-only busybox rootfs) in a fresh netns made with `ip netns add`: the floor.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fargo.agent.runfiles import wait_child, wait_gone

from .env import IDLE, Cleanup, await_term_trap, busybox_rootfs, log, sh


def launch_parallel(start: Callable[[], tuple[float, str]], total: int,
                    workers: int) -> tuple[float, list[str]]:
    """Start `total` containers from `workers` threads; seconds until every start returned."""
    ids: list[str] = []
    lock = threading.Lock()

    def one(_: int) -> None:
        _, cid = start()
        with lock:
            ids.append(cid)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(total)))
    return time.perf_counter() - t0, ids


class Podman:
    name = "podman"

    def __init__(self, run_id: str, image: str, subnet: str):
        self.run_id = run_id
        self.image = image
        self.subnet = subnet
        self.netns = f"fgb{run_id}-podman"
        self.network = f"fgbench-{run_id}"
        self.label = f"fgbench={run_id}"
        self.base = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]

    def _ns(self, *args: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", *self.base, *args]

    def setup(self, cleanup: Cleanup) -> None:
        sh("ip", "netns", "add", self.netns)
        cleanup.push("podman netns", lambda: sh("ip", "netns", "del", self.netns, check=False))
        sh("ip", "-n", self.netns, "link", "set", "lo", "up")
        sh(*self._ns("network", "create", "--internal", "--disable-dns", "--subnet",
                     self.subnet, self.network))
        cleanup.push("podman network",
                     lambda: sh(*self._ns("network", "rm", "-f", self.network), check=False))
        sh(*self.base, "pull", "-q", "--tls-verify=false", self.image, timeout=300)
        cleanup.push("podman image", lambda: sh(*self.base, "rmi", "-f", self.image, check=False))
        cleanup.push("podman containers", self.remove_all)

    def start(self) -> tuple[float, str]:
        """Seconds for `podman run -d` to return: by then the container process runs."""
        t0 = time.perf_counter()
        cid = sh(*self._ns("run", "-d", "--pull", "never", "--network", self.network,
                           "--label", self.label, "--ulimit", "nofile=1024:1024",
                           "--ulimit", "nproc=1024:1024", "--cpus", "0.25", "--memory", "512m",
                           self.image, *IDLE)).strip()
        return time.perf_counter() - t0, cid

    def check_running(self, cid: str) -> None:
        state = sh(*self.base, "inspect", "-f", "{{.State.Status}}", cid).strip()
        if state != "running":
            raise RuntimeError(f"podman container {cid[:12]} is {state}")

    def stop(self, cid: str) -> float:
        await_term_trap(next(iter(self.pids([cid])), None))
        t0 = time.perf_counter()
        sh(*self._ns("stop", "-t", "10", cid))
        elapsed = time.perf_counter() - t0
        sh(*self._ns("rm", cid))
        return elapsed

    def remove(self, cids: list[str]) -> None:
        for i in range(0, len(cids), 50):
            sh(*self._ns("rm", "-f", "-t", "0", *cids[i:i + 50]), check=False, timeout=600)

    def remove_all(self) -> None:
        out = sh(*self.base, "ps", "-aq", "--filter", f"label={self.label}", check=False)
        self.remove(out.split())

    def pids(self, cids: list[str]) -> list[int]:
        out = sh(*self.base, "inspect", "-f", "{{.State.Pid}}", *cids)
        return [int(x) for x in out.split() if x.isdigit() and int(x) > 0]

    def monitor_pids(self, cids: list[str]) -> list[int]:
        from .env import processes

        wanted = set(cids)
        return [p.pid for p in processes()
                if p.comm == "conmon" and wanted & set(p.cmdline)]


class Runc:
    name = "runc"

    def __init__(self, run_id: str, workdir: Path):
        self.run_id = run_id
        self.workdir = workdir
        self.root = Path(f"/run/fgb{run_id}-runc")
        self.cgroup_parent = f"fgbench-{run_id}"
        self.rootfs = workdir / "rootfs"
        self._seq = itertools.count()

    def setup(self, cleanup: Cleanup) -> None:
        busybox_rootfs(self.rootfs)
        cleanup.push("runc containers", self.remove_all)

    def _bundle(self, cid: str) -> Path:
        from fargo.agent.ocispec import build_config
        from fargo.port.data import ContainerSpec

        bundle = self.workdir / cid
        bundle.mkdir(parents=True)
        spec = ContainerSpec(name="app", args=list(IDLE), readonly_rootfs=True)
        config = build_config(cid, spec, 0, self.rootfs.resolve(),
                              netns_path=f"/run/netns/{cid}")
        # The floor: plain runc, without the user namespace fargo adds (that needs idmapped
        # layers, which this bare bundle does not have).
        linux = config["linux"]
        linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "user"]
        linux.pop("uidMappings", None)
        linux.pop("gidMappings", None)
        # As lean a /sys as fargo's flat one: without a user namespace a plain bind may leave
        # the mounts below /sys behind.
        for mount in config["mounts"]:
            if mount["destination"] == "/sys" and "rbind" in mount["options"]:
                mount["options"] = ["bind" if o == "rbind" else o for o in mount["options"]]
        # Sized like a 0.25 vCPU / 512 MiB task, in a cgroup parent of our own.
        config["linux"]["cgroupsPath"] = f"/{self.cgroup_parent}/{cid}"
        config["linux"]["resources"]["cpu"] = {"quota": 25_000, "period": 100_000}
        config["linux"]["resources"]["memory"] = {"limit": 512 << 20}
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    def start(self) -> tuple[float, str]:
        """Seconds for a fresh netns plus `runc run -d` (the container process then runs)."""
        cid = f"fgb{self.run_id}-{next(self._seq)}"
        bundle = self._bundle(cid)
        t0 = time.perf_counter()
        sh("ip", "netns", "add", cid)
        # The container inherits runc's stdio: a pipe would never reach EOF, so use files.
        with open(bundle / "runc.err", "w+") as err:
            proc = subprocess.Popen(
                ["runc", "--root", str(self.root), "run", "-d", "--pid-file",
                 str(bundle / "pid"), "-b", str(bundle), cid],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            # Woken as runc exits: subprocess's own wait with a timeout polls, and would
            # round a 32 ms start up to 64 ms (its sleeps double from 0.5 ms).
            code = wait_child(proc, 60)
            elapsed = time.perf_counter() - t0
            if code is None:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"runc run {cid}: no answer in 60 s")
            if code != 0:
                err.seek(0)
                raise RuntimeError(f"runc run {cid}: {err.read()[-500:]}")
        return elapsed, cid

    def pid(self, cid: str) -> int:
        return int((self.workdir / cid / "pid").read_text())

    def check_running(self, cid: str) -> None:
        state = json.loads(sh("runc", "--root", str(self.root), "state", cid))["status"]
        if state != "running":
            raise RuntimeError(f"runc container {cid} is {state}")

    def stop(self, cid: str) -> float:
        """SIGTERM until the container's process is gone (no monitor tells us otherwise)."""
        pid = self.pid(cid)
        await_term_trap(pid)
        t0 = time.perf_counter()
        sh("runc", "--root", str(self.root), "kill", cid, "TERM")
        wait_gone(pid, 15)
        elapsed = time.perf_counter() - t0
        self._delete(cid)
        return elapsed

    def _delete(self, cid: str) -> None:
        sh("runc", "--root", str(self.root), "delete", "-f", cid, check=False)
        sh("ip", "netns", "del", cid, check=False)
        shutil.rmtree(self.workdir / cid, ignore_errors=True)

    def remove(self, cids: list[str]) -> None:
        for cid in cids:
            self._delete(cid)

    def remove_all(self) -> None:
        cids = {p.name for p in self.root.iterdir()} if self.root.is_dir() else set()
        netns = Path("/run/netns")
        if netns.is_dir():  # a start interrupted between `ip netns add` and `runc run`
            cids |= {p.name for p in netns.iterdir()
                     if p.name.startswith(f"fgb{self.run_id}-") and p.name[-1].isdigit()}
        self.remove(sorted(cids))
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            parent = hierarchy / self.cgroup_parent
            if parent.is_dir():
                for child in parent.iterdir():
                    if child.is_dir():
                        child.rmdir()
                parent.rmdir()
        if self.root.is_dir():
            shutil.rmtree(self.root, ignore_errors=True)
        log("runc peer cleaned up")

    def pids(self, cids: list[str]) -> list[int]:
        return [self.pid(c) for c in cids]

    def monitor_pids(self, cids: list[str]) -> list[int]:
        return []  # nothing watches a bare runc container
