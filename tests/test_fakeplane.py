"""The in-memory data plane that control's unit tests run against behaves like a host would."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from fargo.model.vpc import Subnet
from fargo.port.data import ContainerExit, ContainerSpec, SandboxSpec, TaskStats
from fargo.port.errors import ContainerGone, NetworkError, PullError, SandboxError
from fargo.port.firewall import FirewallSpec
from fargo.port.protocols import Images, Network, Runtime
from tests.fakeplane import FakePlane

SUBNET = Subnet("subnet-1", "vpc-1", "10.7.0.0/24", "us-east-1a", "use1-az1")


def _as_ports(plane: FakePlane) -> tuple[Images, Runtime, Network]:
    """mypy on tests checks that the fakes satisfy the port's Protocols."""
    return plane.images, plane.runtime, plane.network


@pytest.fixture
def plane() -> Iterator[FakePlane]:
    p = FakePlane()
    yield p
    p.close()


def _running(plane: FakePlane, tid: str = "t1", name: str = "app",
             stop_signal: str = "SIGTERM") -> None:
    image = plane.images.pull("busybox", None)
    plane.runtime.create_sandbox(tid, SandboxSpec(256, 512))
    plane.runtime.create_container(
        tid, ContainerSpec(name=name, args=["sh"], stop_signal=stop_signal), image)
    plane.runtime.start_container(tid, name)


def test_pull_gives_the_added_config_or_fails(plane: FakePlane) -> None:
    plane.images.add("busybox", {"Cmd": ["sh"], "User": "1000"})
    plane.images.add("private/app", {}, credentials=("u", "p"))
    assert plane.images.pull("busybox", None).config == {"Cmd": ["sh"], "User": "1000"}
    assert plane.images.pull("private/app", ("u", "p")).ref == "private/app"
    with pytest.raises(PullError, match="unauthorized"):
        plane.images.pull("private/app", ("u", "wrong"))
    with pytest.raises(PullError, match="not found"):
        plane.images.pull("missing", None)


def test_a_held_pull_waits_for_its_release(plane: FakePlane) -> None:
    plane.images.add("slow")
    plane.images.hold("slow")
    done = threading.Event()

    def pull() -> None:
        plane.images.pull("slow", None)
        done.set()

    threading.Thread(target=pull).start()
    assert not done.wait(0.1)
    plane.images.release("slow")
    assert done.wait(2)


def test_containers_run_until_told_to_exit(plane: FakePlane) -> None:
    plane.images.add("busybox")
    _running(plane)
    assert not plane.runtime.exited("t1", "app")
    assert plane.runtime.running("t1") == ["app"]
    plane.runtime.exit("t1", "app", 137, oom=True)
    assert plane.runtime.exited("t1", "app")
    assert plane.runtime.result("t1", "app") == ContainerExit(137, oom_killed=True)
    plane.runtime.remove_container("t1", "app")
    assert plane.runtime.exited("t1", "app")  # unknown to the runtime: gone
    with pytest.raises(ContainerGone):
        plane.runtime.result("t1", "app")


def test_signals_end_containers_unless_ignored(plane: FakePlane) -> None:
    plane.images.add("busybox")
    _running(plane, name="polite", stop_signal="SIGINT")
    plane.runtime.signal("t1", "polite", None)  # its own stop signal
    assert plane.runtime.result("t1", "polite") == ContainerExit(130)

    plane.runtime.create_container("t1", ContainerSpec(name="stubborn", args=["sh"]),
                                   plane.images.known["busybox"])
    plane.runtime.start_container("t1", "stubborn")
    plane.runtime.container("t1", "stubborn").ignored.add("SIGTERM")
    plane.runtime.signal("t1", "stubborn", "SIGTERM")
    assert not plane.runtime.exited("t1", "stubborn")
    plane.runtime.signal("t1", "stubborn", "KILL")
    assert plane.runtime.result("t1", "stubborn") == ContainerExit(137)
    assert plane.runtime.container("t1", "stubborn").signals == ["SIGTERM", "SIGKILL"]


def test_a_signal_can_take_a_while(plane: FakePlane) -> None:
    plane.images.add("busybox")
    _running(plane)
    plane.runtime.signal_delay = 0.2
    t0 = time.monotonic()
    plane.runtime.signal("t1", "app", None)
    assert not plane.runtime.exited("t1", "app")
    while not plane.runtime.exited("t1", "app"):
        assert time.monotonic() - t0 < 2
        time.sleep(0.01)
    assert time.monotonic() - t0 >= 0.2
    assert plane.runtime.result("t1", "app") == ContainerExit(143)


def test_failures_are_injected_per_method_and_task(plane: FakePlane) -> None:
    plane.images.add("busybox")
    plane.fail("start_container", SandboxError("runc said no"), tid="t2")
    _running(plane, tid="t1")  # another task: unaffected
    with pytest.raises(SandboxError, match="runc said no"):
        _running(plane, tid="t2")
    plane.runtime.start_container("t2", "app")  # only once
    plane.fail("pull", PullError("down"), times=None)
    for _ in range(2):
        with pytest.raises(PullError):
            plane.images.pull("busybox", None)
    plane.clear_failures()
    plane.images.pull("busybox", None)
    assert plane.calls_to("start_container") == [("t1", "app"), ("t2", "app"), ("t2", "app")]


def test_logs_stats_and_destroy(plane: FakePlane) -> None:
    plane.images.add("busybox")
    _running(plane)
    assert not plane.runtime.read_log("t1", "app", 0, 10).exists
    plane.runtime.write_log("t1", "app", b"hello world\n")
    chunk = plane.runtime.read_log("t1", "app", 6, 100)
    assert (chunk.data, chunk.next_offset, chunk.exists) == (b"world\n", 12, True)
    plane.runtime.set_stats("t1", TaskStats(memory_usage_bytes=1 << 20))
    assert plane.runtime.stats("t1").memory_usage_bytes == 1 << 20
    plane.runtime.destroy("t1")
    plane.runtime.destroy("t1")  # nothing left: no error
    with pytest.raises(ContainerGone):
        plane.runtime.stats("t1")
    assert plane.runtime.read_log("t1", "app", 0, 100).data == b"hello world\n"  # logs stay
    plane.runtime.forget("t1")
    assert not plane.runtime.read_log("t1", "app", 0, 100).exists
    with pytest.raises(SandboxError):
        plane.runtime.start_container("t1", "app")


def test_network_attach_listener_and_groups(plane: FakePlane) -> None:
    with pytest.raises(NetworkError):
        plane.network.metadata_listener("t1")
    made = plane.network.attach("t1", SUBNET, "10.7.0.5")
    assert made.gateway == "10.7.0.1" and made.prefixlen == 24
    assert "subnet-1" in plane.network.bridges
    with pytest.raises(NetworkError):
        plane.network.attach("t2", SUBNET, "10.8.0.5")
    sock = plane.network.metadata_listener("t1")
    with socket.create_connection(sock.getsockname(), timeout=2):
        pass
    plane.network.join_groups("t1", "10.7.0.5", ["sg-a", "sg-b"])
    plane.network.leave_groups("t1", "10.7.0.5", ["sg-a"])
    assert plane.network.groups == {"t1": {"sg-b"}}
    spec = FirewallSpec(nets=[SUBNET.cidr], members={"sg-b": {"10.7.0.5"}})
    plane.network.apply_firewall(spec)
    spec.members["sg-b"].add("10.7.0.6")  # the fake keeps what was applied, not the caller's
    assert plane.network.firewall is not None
    assert plane.network.firewall.members == {"sg-b": {"10.7.0.5"}}
    plane.network.detach("t1")
    assert plane.methods("network") == [
        "metadata_listener", "attach", "attach", "metadata_listener", "join_groups",
        "leave_groups", "apply_firewall", "detach"]
