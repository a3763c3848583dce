"""Shared fixtures: a real registry with the busybox test image, and real fargo servers: the
session's own (`fargo`), and any more a test asks of the `fargo_servers` factory.

Tests that need no root, no server and no network carry the `pure` marker and run alone with
`python3 -m pytest -m pure -q`: whole modules are listed in PURE_MODULES below, single tests
elsewhere take `@pytest.mark.pure`."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import boto3
import pytest
import requests

from fargo.agent.registry import LocalRegistry
from tests.imagebuild import build_busybox_oci, push_layout

ROOT = Path(__file__).resolve().parent.parent
PURE_MODULES = {"test_model", "test_runtimeclass_model", "test_eks_model", "test_secgroups_model",
                "test_fakeplane",
                "test_billing_model", "test_metrics_model", "test_metrics_store",
                "test_logconfig_model", "test_logship", "test_filterpattern",
                "test_cwlogs_model", "test_serviceproxy_model", "test_ingress_model",
                "test_netpolicy_model", "test_kube_services_model",
                "test_isolation_model", "test_procwait", "test_exitwake"}


def pytest_itemcollected(item: pytest.Item) -> None:
    if item.path.stem in PURE_MODULES:
        item.add_marker(pytest.mark.pure)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Iterator[LocalRegistry]:
    reg = LocalRegistry(tmp_path_factory.mktemp("registry"), port=free_port())
    reg.start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def busybox_image(registry, tmp_path_factory) -> str:
    """`REGISTRY/busybox:latest`, pushed once for the whole run."""
    layout = build_busybox_oci(tmp_path_factory.mktemp("layout") / "busybox")
    push_layout(layout, registry.address, "busybox:latest")
    return f"{registry.address}/busybox:latest"


_CIDR_CLAIMS = Path("/tmp/fargo-test-cidrs")  # one file per second octet a live run holds


def _claim(octet: int) -> bool:
    """Take the octet for this process unless a live process (this run's other pytest
    workers, or another run) holds it: a file made with O_EXCL names the holder's pid."""
    _CIDR_CLAIMS.mkdir(exist_ok=True)
    path = _CIDR_CLAIMS / str(octet)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(path.read_text() or "0")
                os.kill(holder, 0)
                return False  # held by a live process (this one included)
            except (ValueError, ProcessLookupError, FileNotFoundError):
                path.unlink(missing_ok=True)  # its holder is gone: free again
                continue
            except PermissionError:
                return False
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def free_vpc_cidr() -> str:
    """A 10.X.0.0/16 for a test server's VPC that no address on this host is in (other
    servers, of this run or another, hold bridges there) and no live test process (pytest's
    parallel workers included) has claimed."""
    out = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    used = {int(a.split(".")[1]) for a in out.split() if a.startswith("10.") and "/" in a}
    free = [n for n in range(100, 200) if n not in used]
    random.shuffle(free)
    for octet in free:
        if _claim(octet):
            return f"10.{octet}.0.0/16"
    return f"10.{random.randrange(100, 200)}.0.0/16"


class FargoServer:
    """`fargo server` in a child process, with its own state dir, port, prefix and VPC range."""

    def __init__(self, state_dir: Path, extra: list[str] | None = None):
        self.key_id = self.secret = ""
        self.state_dir = state_dir
        self.port = free_port()
        self.kube_port = free_port()
        self.prefix = "t" + uuid.uuid4().hex[:4]
        self.run_dir = Path(f"/run/{self.prefix}-tasks")  # the tasks' runtime files (tmpfs)
        self.cidr = free_vpc_cidr()
        self.extra = extra or []
        self.proc: subprocess.Popen | None = None
        self.purged = False  # since its last start
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = state_dir / "server.log"

    def start(self) -> None:
        self.purged = False
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "fargo", "server", "--port", str(self.port),
               "--state-dir", str(self.state_dir), "--no-registry", "--prefix", self.prefix,
               "--vpc-cidr", self.cidr, "--kube-port", str(self.kube_port), *self.extra]
        out = self.log.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("fargo server exited:\n" + self.log.read_text())
            try:
                if requests.get(self.endpoint + "/fargo/health", timeout=1).ok:
                    self._read_credentials()
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("fargo server did not come up:\n" + self.log.read_text())

    def _read_credentials(self) -> None:
        """The access key the server made on its first start, as `fargo credentials` prints it."""
        out = subprocess.run([sys.executable, "-m", "fargo", "credentials", "--state-dir",
                              str(self.state_dir)], capture_output=True, text=True, check=True,
                             cwd=ROOT).stdout
        values = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
        self.key_id, self.secret = values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"]

    def env(self) -> dict[str, str]:
        """Environment for CLI clients (aws, fargo logs) that should sign as this server's key."""
        return dict(os.environ, AWS_ACCESS_KEY_ID=self.key_id, AWS_SECRET_ACCESS_KEY=self.secret,
                    AWS_DEFAULT_REGION="us-east-1", FARGO_ENDPOINT=self.endpoint)

    def post(self, body: bytes | str, headers: dict[str, str], service: str = "ecs",
             sign: bool = True, **signing) -> requests.Response:
        """A raw POST to /, signed with SigV4 as an SDK would (unless sign=False)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        data = body.encode() if isinstance(body, str) else body
        req = AWSRequest(method="POST", url=self.endpoint + "/", data=data, headers=headers)
        if sign:
            creds = Credentials(signing.get("key_id", self.key_id),
                                signing.get("secret", self.secret), signing.get("token"))
            SigV4Auth(creds, signing.get("service", service),
                      signing.get("region", "us-east-1")).add_auth(req)
        return requests.post(self.endpoint + "/", data=data, headers=dict(req.headers.items()),
                             timeout=10)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def purge(self) -> None:
        """Remove every container, mount, netns and bridge this server's tasks left behind."""
        self.purged = True
        self.kill(signal.SIGTERM)
        subprocess.run([sys.executable, "-m", "fargo", "purge", "--state-dir",
                        str(self.state_dir), "--prefix", self.prefix], check=False, cwd=ROOT)

    def client(self, service: str = "ecs", region: str = "us-east-1"):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=region,
                            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret)


class FargoServers:
    """The one way tests get a server: `servers("--cpu", "512", name="small")` starts one with
    those flags, its state in base/name; each is purged when the owner closes the factory,
    unless the test purged it itself (to check what a purge leaves)."""

    def __init__(self, base: Path):
        self.base = base
        self.made: list[FargoServer] = []

    def __call__(self, *extra: str, name: str = "fargo", state_dir: Path | None = None,
                 start: bool = True) -> FargoServer:
        srv = FargoServer(state_dir or self.base / name, list(extra))
        self.made.append(srv)
        if start:
            srv.start()
        return srv

    def close(self) -> None:
        for srv in reversed(self.made):
            if not srv.purged:
                srv.purge()

    def __enter__(self) -> FargoServers:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@pytest.fixture
def fargo_servers(tmp_path) -> Iterator[FargoServers]:
    """Extra servers for one test, purged after it."""
    with FargoServers(tmp_path) as servers:
        yield servers


@pytest.fixture(scope="session")
def fargo(tmp_path_factory) -> Iterator[FargoServer]:
    with FargoServers(tmp_path_factory.mktemp("fargo-state")) as servers:
        yield servers(state_dir=servers.base)


@pytest.fixture(scope="session")
def ecs(fargo):
    return fargo.client("ecs")


@pytest.fixture(scope="session")
def ec2(fargo):
    return fargo.client("ec2")


@pytest.fixture(scope="session")
def subnet_id(ec2) -> str:
    return ec2.describe_subnets()["Subnets"][0]["SubnetId"]


def wait_status(ecs, arn: str, status: str, timeout: float = 30, cluster: str | None = None):
    """Poll DescribeTasks until lastStatus is `status`; returns the task."""
    deadline = time.time() + timeout
    kw = {"cluster": cluster} if cluster else {}
    task = None
    while time.time() < deadline:
        task = ecs.describe_tasks(tasks=[arn], **kw)["tasks"][0]
        if task["lastStatus"] == status:
            return task
        if task["lastStatus"] == "STOPPED" and status != "STOPPED":
            raise AssertionError(f"task stopped early: {task.get('stoppedReason')} {task}")
        time.sleep(0.05)
    raise AssertionError(f"task never reached {status}: {task}")


def http_body(url: str, tries: int = 50) -> str | None:
    """GET url, retrying while nothing listens yet (a just-RUNNING server may still be binding)."""
    for _ in range(tries):
        try:
            return requests.get(url, timeout=2).text
        except requests.ConnectionError:
            time.sleep(0.1)
    return None


os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
