"""Figure 12 `deploy`: Kubernetes Deployments on EKS Fargate, driven with kubectl as a user
drives them (an EKS cluster, a Fargate profile for the namespace, `fargo kubeconfig`).

12  a Deployment of REPLICAS: seconds from `kubectl apply -f` until `kubectl rollout status`
    returns, beside the same pods applied bare (`kubectl apply -f` of REPLICAS Pods, then
    `kubectl wait --for=condition=Ready`), the two alternated (bare, Deployment, Deployment,
    bare... over ROUNDS) so slow drifts in the host's load hit both alike.
12b a rolling update of ROLLING replicas (maxSurge 25 %, maxUnavailable 25 %, the defaults):
    seconds from `kubectl set image` until `kubectl rollout status` returns, and, from a watch
    of the Deployment's pods (Ready and not terminating counts as available), the most
    replicas ever unavailable beyond maxUnavailable, and the most pods at once."""

from __future__ import annotations

import base64
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from .env import ROOT, Cleanup, log
from .fargo_side import FargoBench
from .stats import Results, Row, Summary

KUBECTL = "/usr/bin/kubectl"
NS = "bench"
ROLE = "arn:aws:iam::000000000000:role/pods"
SLEEPER = "trap 'exit 0' TERM; sleep 3600 & wait"


@dataclass
class DeploySizes:
    replicas: int = 50
    rolling: int = 10
    rounds: int = 2


class DeployBench:
    def __init__(self, fb: FargoBench, results: Results, cleanup: Cleanup, run_id: str,
                 sizes: DeploySizes, tmp: Path):
        self.fb = fb
        self.results = results
        self.cleanup = cleanup
        self.sizes = sizes
        self.tmp = tmp
        self.cluster = f"bench-{run_id}"
        self.config = tmp / "kubeconfig"
        self.eks = fb.server.client("eks")

    # ------------------------------------------------------------ set up
    def setup(self) -> None:
        if not Path(KUBECTL).exists():
            raise RuntimeError(f"figure 12 needs kubectl at {KUBECTL}")
        self.tmp.mkdir(parents=True, exist_ok=True)
        subnets = [s["SubnetId"] for s in
                   self.fb.server.client("ec2").describe_subnets()["Subnets"]]
        self.eks.create_cluster(name=self.cluster, roleArn="arn:aws:iam::000000000000:role/eks",
                                resourcesVpcConfig={"subnetIds": subnets})
        self.cleanup.push("EKS cluster", self._delete_cluster)
        self.eks.create_fargate_profile(clusterName=self.cluster, fargateProfileName="bench",
                                        podExecutionRoleArn=ROLE, subnets=subnets[:1],
                                        selectors=[{"namespace": NS}])
        deadline = time.monotonic() + 30
        while self.eks.describe_fargate_profile(
                clusterName=self.cluster, fargateProfileName="bench")["fargateProfile"][
                    "status"] != "ACTIVE":
            if time.monotonic() > deadline:
                raise RuntimeError("the Fargate profile never became ACTIVE")
            time.sleep(0.05)
        env = dict(os.environ, AWS_ACCESS_KEY_ID=self.fb.server.key_id,
                   AWS_SECRET_ACCESS_KEY=self.fb.server.secret, AWS_DEFAULT_REGION="us-east-1")
        out = subprocess.run([sys.executable, "-m", "fargo", "kubeconfig", self.cluster,
                              "--endpoint", self.fb.server.endpoint], capture_output=True,
                             text=True, cwd=ROOT, env=env, timeout=30, check=True)
        self.config.write_text(out.stdout)
        self.kubectl("create", "namespace", NS)

    def _delete_cluster(self) -> None:
        """The profile (its pods stop), then the cluster."""
        try:
            self.eks.delete_fargate_profile(clusterName=self.cluster, fargateProfileName="bench")
            deadline = time.monotonic() + 120
            while self.eks.list_fargate_profiles(clusterName=self.cluster)[
                    "fargateProfileNames"] and time.monotonic() < deadline:
                time.sleep(0.2)
            self.eks.delete_cluster(name=self.cluster)
        except Exception as err:  # noqa: BLE001 - the server's purge removes the rest
            log(f"figure 12: deleting the EKS cluster: {err}")

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 300,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([KUBECTL, "--kubeconfig", str(self.config), *args], input=stdin,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:3])}: {proc.stderr.strip()[-500:]}")
        return proc

    # ------------------------------------------------------------ bodies
    def _pod_spec(self, image: str) -> dict[str, Any]:
        return {"terminationGracePeriodSeconds": 2,
                "containers": [{"name": "app", "image": image,
                                "command": ["sh", "-c", SLEEPER]}]}

    def _deployment(self, name: str, replicas: int, image: str) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": self._pod_spec(image)}}}

    def _bare(self, name: str, replicas: int, image: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": f"{name}-{i}", "namespace": NS, "labels": {"app": name}},
             "spec": self._pod_spec(image)} for i in range(replicas)]}

    def _gone(self, label: str, timeout: float = 180) -> None:
        """Wait until no pod (and no node of one) with app=LABEL is left."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.kubectl("get", "pods", "-n", NS, "-l", f"app={label}", "-o", "name").stdout
            if not out.strip():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"figure 12: pods app={label} never went away")
            time.sleep(0.2)

    # ------------------------------------------------------------ 12
    def run(self) -> None:
        self.setup()
        self.scale_up()
        self.rolling()

    def scale_up(self) -> None:
        s = self.sizes
        deploy: list[float] = []
        bare: list[float] = []
        applied: dict[str, list[float]] = {"deploy": [], "bare": []}  # kubectl apply alone
        # when a watch of the pods (the server's own account) first saw all of them Ready
        watched: dict[str, list[float]] = {"deploy": [], "bare": []}
        order = ["bare", "deploy", "deploy", "bare"] * math.ceil(s.rounds / 2)
        order = order[:2 * s.rounds]
        for i, kind in enumerate(order):
            name = f"{kind}{i}"
            log(f"figure 12: {s.replicas} pods, {kind} (round {i // 2 + 1} of {s.rounds})")
            watch = PodWatch(self.config, name, target=s.replicas)
            watch.start()
            watch.ready.wait(30)
            if kind == "deploy":
                body = json.dumps(self._deployment(name, s.replicas, self.fb.image))
                t0 = time.monotonic()
                self.kubectl("apply", "-f", "-", stdin=body)
                applied[kind].append(time.monotonic() - t0)
                self.kubectl("rollout", "status", f"deployment/{name}", "-n", NS,
                             "--timeout=600s", timeout=620)
                deploy.append(time.monotonic() - t0)
                watched[kind].append(watch.stop_at(t0))
                self.kubectl("delete", "deployment", name, "-n", NS)
            else:
                body = json.dumps(self._bare(name, s.replicas, self.fb.image))
                t0 = time.monotonic()
                self.kubectl("apply", "-f", "-", stdin=body)
                applied[kind].append(time.monotonic() - t0)
                self.kubectl("wait", "--for=condition=Ready", "pod", "-l", f"app={name}",
                             "-n", NS, "--timeout=600s", timeout=620)
                bare.append(time.monotonic() - t0)
                watched[kind].append(watch.stop_at(t0))
                self.kubectl("delete", "pods", "-l", f"app={name}", "-n", NS, "--wait=false")
            self._gone(name)
        fig = f"12. Deployment of {s.replicas} replicas: kubectl apply → rollout status"
        ratio = Summary.of(deploy).p50 / Summary.of(bare).p50
        self.results.add(Row(fig, "fargo Deployment", "s", summary=Summary.of(deploy),
                             target=f"≤ 1.1 × bare pods ({1.1 * Summary.of(bare).p50:.2f} s)",
                             ok=ratio <= 1.1,
                             note="each run from `kubectl apply` until `kubectl rollout "
                                  "status` exits 0; the apply itself "
                                  f"{Summary.of(applied['deploy']).p50:.2f} s (p50)"))
        self.results.add(Row(fig, "fargo bare pods, apply → kubectl wait Ready (same run)",
                             "s", summary=Summary.of(bare),
                             note=f"the apply itself {Summary.of(applied['bare']).p50:.2f} s "
                                  f"(p50): kubectl sends the {s.replicas} pods one by one"))
        self.results.add(Row(fig, "ratio Deployment / bare pods (p50)", "×", value=ratio,
                             target="≤ 1.1×", ok=ratio <= 1.1))
        seen = {k: Summary.of(v).p50 for k, v in watched.items()}
        self.results.add(Row(fig, "↳ apply → all Ready in a watch: Deployment / bare (p50)",
                             "×", value=seen["deploy"] / seen["bare"],
                             note=f"Deployment {seen['deploy']:.2f} s, bare pods "
                                  f"{seen['bare']:.2f} s: the same moment seen by a watch of "
                                  "the pods instead of kubectl's own wait"))

    # ------------------------------------------------------------ 12b
    def rolling(self) -> None:
        n = self.sizes.rolling
        name = "roll"
        log(f"figure 12b: rolling update of {n} replicas")
        self.kubectl("apply", "-f", "-", stdin=json.dumps(self._deployment(name, n,
                                                                          self.fb.image)))
        self.kubectl("rollout", "status", f"deployment/{name}", "-n", NS, "--timeout=600s",
                     timeout=620)
        surge = math.ceil(n * 0.25)
        unavailable = math.floor(n * 0.25)
        if surge == unavailable == 0:
            unavailable = 1
        watch = PodWatch(self.config, name)
        watch.start()
        try:
            watch.ready.wait(30)
            # A new env value: the template changes, and nothing new has to be pulled.
            env = json.dumps({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "env": [{"name": "ROUND", "value": uuid.uuid4().hex[:6]}]}]}}}})
            t0 = time.monotonic()
            self.kubectl("patch", "deployment", name, "-n", NS, "-p", env)
            self.kubectl("rollout", "status", f"deployment/{name}", "-n", NS,
                         "--timeout=600s", timeout=620)
            elapsed = time.monotonic() - t0
            time.sleep(0.5)  # the last events of the old pods' terminations
        finally:
            watch.stop()
        beyond = max(0, max((n - a for a in watch.available), default=0) - unavailable)
        fig = f"12b. rolling update of {n} replicas (maxSurge {surge}, maxUnavailable " \
              f"{unavailable})"
        self.results.add(Row(fig, "fargo: patch → rollout status", "s", value=elapsed,
                             note=f"{watch.events} pod events watched"))
        self.results.add(Row(fig, "fargo: replicas unavailable beyond maxUnavailable", "pods",
                             value=beyond, target="0", ok=beyond == 0,
                             note=f"fewest available {min(watch.available, default=n)} of "
                                  f"{n}; most pods at once {max(watch.live, default=0)} "
                                  f"(limit {n + surge})"))
        self.kubectl("delete", "deployment", name, "-n", NS)
        self._gone(name)


class PodWatch(threading.Thread):
    """A watch of the pods with app=NAME over the Kubernetes API (as kubectl's), keeping,
    after every event, how many are available (Ready and not terminating) and alive."""

    def __init__(self, config: Path, name: str, target: int = 0):
        super().__init__(daemon=True)
        self.target = target  # `reached`: when first that many were available
        self.reached: float | None = None
        doc = yaml.safe_load(config.read_text())
        cluster = doc["clusters"][0]["cluster"]
        self.url = f"{cluster['server']}/api/v1/namespaces/{NS}/pods"
        self.token = doc["users"][0]["user"]["token"]
        ca = cluster.get("certificate-authority-data")
        self.verify: str | bool = False
        if ca:
            fd, path = tempfile.mkstemp(suffix=".crt")
            os.write(fd, base64.b64decode(ca))
            os.close(fd)
            self.verify = path
        self.selector = f"app={name}"
        self.pods: dict[str, dict[str, Any]] = {}
        self.available: list[int] = []
        self.live: list[int] = []
        self.events = 0
        self.ready = threading.Event()
        self._done = threading.Event()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        listed = requests.get(self.url, params={"labelSelector": self.selector},
                              headers=headers, verify=self.verify, timeout=30).json()
        for pod in listed["items"]:
            self.pods[pod["metadata"]["name"]] = pod
        self._count()
        rv = listed["metadata"]["resourceVersion"]
        self.ready.set()
        # A short read timeout: the watch is taken up again from the last version seen, and
        # `stop` never waits on a read it cannot interrupt.
        while not self._done.is_set():
            try:
                with requests.get(self.url, params={
                        "labelSelector": self.selector, "watch": "1", "resourceVersion": rv,
                        "allowWatchBookmarks": "true"}, headers=headers, verify=self.verify,
                        stream=True, timeout=(10, 1)) as resp:
                    for line in resp.iter_lines():
                        if self._done.is_set():
                            return
                        if line:
                            rv = self._seen(json.loads(line)) or rv
            except requests.RequestException:
                continue

    def _seen(self, event: dict[str, Any]) -> str | None:
        obj = event.get("object") or {}
        meta = obj.get("metadata") or {}
        if event.get("type") in ("ADDED", "MODIFIED", "DELETED") and meta.get("name"):
            self.events += 1
            if event["type"] == "DELETED":
                self.pods.pop(meta["name"], None)
            else:
                self.pods[meta["name"]] = obj
            self._count()
        return meta.get("resourceVersion")

    def _count(self) -> None:
        live = [p for p in self.pods.values() if not p["metadata"].get("deletionTimestamp")]
        ready = [p for p in live if any(c.get("type") == "Ready" and c.get("status") == "True"
                                        for c in (p.get("status") or {}).get("conditions")
                                        or [])]
        self.available.append(len(ready))
        self.live.append(len(live))
        if self.target and self.reached is None and len(ready) >= self.target:
            self.reached = time.monotonic()

    def stop_at(self, t0: float) -> float:
        """Stop; seconds from t0 until all `target` pods were seen Ready (nan if never)."""
        self.stop()
        return self.reached - t0 if self.reached is not None else math.nan

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=15)
        if isinstance(self.verify, str):
            Path(self.verify).unlink(missing_ok=True)


def method_notes(sizes: DeploySizes) -> list[str]:
    return [
        f"Deployments (12): an EKS cluster with one Fargate profile for the namespace, "
        "`fargo kubeconfig`, the real kubectl. 12: a Deployment of "
        f"{sizes.replicas} busybox replicas (0.25 vCPU / 0.5 GB each, grace 2 s), timed "
        "from `kubectl apply -f` until `kubectl rollout status` exits; beside it the same "
        "pods as a List of bare Pods, from `kubectl apply -f` until `kubectl wait "
        f"--for=condition=Ready` exits; {sizes.rounds} of each, alternated (bare, "
        "Deployment, Deployment, bare), everything deleted and gone between runs. 12b: a "
        f"Deployment of {sizes.rolling} replicas with the default strategy (RollingUpdate, "
        "25 % / 25 %), its template changed by `kubectl patch` (an env value), timed until "
        "`kubectl rollout status` exits; a watch of its pods (list, then watch from the "
        "list's resourceVersion) counts after every event the pods Ready and not "
        "terminating: unavailable = replicas − that count, and the figure is how far it "
        "ever went past maxUnavailable.",
    ]
