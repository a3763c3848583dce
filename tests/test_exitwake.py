"""control/tasks/exitwake.py: a task is woken by the kernel when a container's monitor ends."""

from __future__ import annotations

import asyncio
import os
import subprocess

from fargo.control.tasks.exitwake import ExitWakers


class Monitors:
    """The one Runtime call ExitWakers makes, over real processes standing in for conmon."""

    def __init__(self) -> None:
        self.procs: dict[tuple[str, str], subprocess.Popen[bytes]] = {}

    def exit_fd(self, tid: str, name: str) -> int | None:
        proc = self.procs.get((tid, name))
        return os.pidfd_open(proc.pid) if proc else None


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_monitor_ending_pokes_its_task_and_only_then() -> None:
    async def main() -> None:
        runtime = Monitors()
        runtime.procs[("t1", "app")] = subprocess.Popen(["sleep", "30"])
        runtime.procs[("t2", "app")] = subprocess.Popen(["sleep", "30"])
        poked: asyncio.Queue[str] = asyncio.Queue()
        wakers = ExitWakers(runtime, poked.put_nowait)  # type: ignore[arg-type]
        wakers.arm("t1", "app")
        wakers.arm("t2", "app")
        assert not wakers.unarmed
        await asyncio.sleep(0.05)
        assert poked.empty()  # both still run
        runtime.procs[("t2", "app")].kill()
        assert await asyncio.wait_for(poked.get(), 5) == "t2"
        assert ("t2", "app") in wakers.unarmed  # looked at until its end is written down
        wakers.disarm("t2", "app")
        assert not wakers.unarmed
        wakers.close()
        for proc in runtime.procs.values():
            proc.kill()
            proc.wait()

    asyncio.run(main())


def test_without_a_descriptor_the_container_is_polled() -> None:
    async def main() -> None:
        wakers = ExitWakers(Monitors(), lambda tid: None)  # type: ignore[arg-type]
        wakers.arm("t1", "app")
        assert wakers.unarmed == {("t1", "app")}
        wakers.disarm_task("t1")
        assert not wakers.unarmed

    asyncio.run(main())


def test_disarming_a_task_closes_its_descriptors() -> None:
    async def main() -> None:
        runtime = Monitors()
        runtime.procs[("t1", "a")] = subprocess.Popen(["sleep", "30"])
        runtime.procs[("t1", "b")] = subprocess.Popen(["sleep", "30"])
        wakers = ExitWakers(runtime, lambda tid: None)  # type: ignore[arg-type]
        before = open_fds()
        wakers.arm("t1", "a")
        wakers.arm("t1", "b")
        wakers.arm("t1", "a")  # armed once only
        assert open_fds() == before + 2
        wakers.disarm_task("t1")
        assert open_fds() == before
        for proc in runtime.procs.values():
            proc.kill()
            proc.wait()

    asyncio.run(main())
