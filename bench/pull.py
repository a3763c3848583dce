"""Figure 6: cold pull of a 3-layer image of random bytes from the loopback registry.

- skopeo copy docker://... dir:...   download and verify, no unpacking;
- fargo's ImageStore.pull in this process, into an empty store: download, verify, unpack;
- podman pull (peer): download, verify, unpack into its overlay storage;
- fargo end to end: RunTask of a never-seen image (fresh random layers each run), the pull
  phase by the task's own stamps (pullStoppedAt - pullStartedAt) and RunTask → RUNNING.
The runs of the first three are interleaved so background noise hits them alike.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .env import build_big_image, layout_size, log, sh


@dataclass
class PullResults:
    image_mb: float = 0.0
    skopeo: list[float] = field(default_factory=list)
    fargo_store: list[float] = field(default_factory=list)
    podman: list[float] = field(default_factory=list)
    fargo_task_pull: list[float] = field(default_factory=list)
    fargo_task_start: list[float] = field(default_factory=list)


def cold_pull(workdir: Path, registry: str, total_mb: float, runs: int, podman: bool,
              fargo_bench: object | None) -> PullResults:
    from fargo.agent.images import ImageStore
    from tests.imagebuild import push_layout

    res = PullResults()
    layout = build_big_image(workdir / "big", total_mb)
    res.image_mb = layout_size(layout) / (1 << 20)
    push_layout(layout, registry, "bigpull:latest")
    ref = f"{registry}/bigpull:latest"
    log(f"cold pull: {res.image_mb:.1f} MB image in 3 layers, {runs} runs each")
    for r in range(runs):
        dest = workdir / f"skopeo-{r}"
        t0 = time.perf_counter()
        sh("skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"dir:{dest}",
           timeout=600)
        res.skopeo.append(time.perf_counter() - t0)
        shutil.rmtree(dest, ignore_errors=True)

        store_dir = workdir / f"store-{r}"
        store = ImageStore(store_dir)
        t0 = time.perf_counter()
        store.pull(ref)
        res.fargo_store.append(time.perf_counter() - t0)
        shutil.rmtree(store_dir, ignore_errors=True)

        if podman:
            base = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
            t0 = time.perf_counter()
            sh(*base, "pull", "-q", "--tls-verify=false", ref, timeout=600)
            res.podman.append(time.perf_counter() - t0)
            sh(*base, "rmi", "-f", ref, check=False)
    if fargo_bench is not None:
        from .fargo_side import FargoBench

        assert isinstance(fargo_bench, FargoBench)
        for r in range(runs):
            # Fresh random layers: fargo's layer cache must not know them.
            fresh = build_big_image(workdir / f"fresh-{r}", total_mb)
            push_layout(fresh, registry, f"bigrun{r}:latest")
            shutil.rmtree(fresh, ignore_errors=True)
            family = fargo_bench.register(f"{registry}/bigrun{r}:latest")
            t0 = time.perf_counter()
            arn = fargo_bench.run(family=family)[0]
            task = fargo_bench.wait([arn], "RUNNING", timeout=600)[0]
            res.fargo_task_start.append(time.perf_counter() - t0)
            res.fargo_task_pull.append(task["pullStoppedAt"] - task["pullStartedAt"])
            fargo_bench.stop_one(arn)
    shutil.rmtree(workdir / "big", ignore_errors=True)
    return res
