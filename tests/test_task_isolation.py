"""What a task reaches on the network: nothing of the host (a listener on 0.0.0.0 stays out of
reach through the task's gateway and through any other host address), while the host still
reaches the task, and fargo's API at its VPC's endpoint address, signed with the task role's
credentials, as boto3 inside the task uses it (the host's python3 and boto3 in a test image)."""

from __future__ import annotations

import ipaddress
import json
import random
import secrets
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fargo.agent.metadata import LISTEN_PORT, METADATA_IP
from fargo.agent.netplane import HostNetworkPlane
from fargo.agent.netsys import enter_netns, run_in_thread
from fargo.model.ipam import Ipam
from fargo.model.spec import task_env
from fargo.model.taskrecord import Interface, Task
from fargo.model.vpc import Subnet
from tests.conftest import http_body, wait_status
from tests.imagebuild import build_python_oci, push_layout, trace_python
from tests.test_tasks import detail, logs, run

ROLE = "arn:aws:iam::000000000000:role/isolation-probe"

# Inside the task: boto3 finds the endpoint (AWS_ENDPOINT_URL), the region and the role's
# credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI) in the environment fargo sets.
WORKLOAD = '''
import http.client, json, os
import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

cluster = os.environ["CLUSTER"]


def refused(client):
    try:
        client.list_tasks(cluster=cluster)
    except ClientError as err:
        return err.response["Error"]["Code"]
    return "accepted"


ecs = boto3.client("ecs")
creds = boto3.Session().get_credentials().get_frozen_credentials()
forged = boto3.client("ecs", aws_access_key_id=creds.access_key,
                      aws_secret_access_key="not-the-secret", aws_session_token=creds.token)
out = {"endpoint": ecs.meta.endpoint_url, "key": creds.access_key,
       "tasks": ecs.list_tasks(cluster=cluster)["taskArns"],
       "unsigned": refused(boto3.client("ecs", config=Config(signature_version=UNSIGNED))),
       "forged": refused(forged)}
# Only the signed AWS faces are offered in tasks: not the host's health probe or webhooks.
for path in ("/fargo/health", "/admission/validate"):
    conn = http.client.HTTPConnection(ecs.meta.endpoint_url.split("//")[1], timeout=5)
    conn.request("GET" if path == "/fargo/health" else "POST", path, body=b"{}")
    out[path] = conn.getresponse().status
print("RESULT " + json.dumps(out), flush=True)
'''


class _Stub(BaseHTTPRequestHandler):
    """What the workload talks to while it is traced on the host: a credentials endpoint and
    an ECS that answers signed requests and refuses unsigned ones, as fargo does."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._send(200, {"AccessKeyId": "ASIATRACE", "SecretAccessKey": "s", "Token": "t",
                         "Expiration": "2999-01-01T00:00:00Z", "RoleArn": ROLE})

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "Authorization" in self.headers:
            self._send(200, {"taskArns": []})
        else:
            self._send(400, {"__type": "MissingAuthenticationTokenException", "message": "no"})

    def _send(self, status: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def python_image(registry, tmp_path_factory) -> str:
    """busybox plus the host's python3 with just what WORKLOAD needs, traced on the host
    against a stub, pushed once for this module."""
    tmp = tmp_path_factory.mktemp("pyimage")
    script = tmp / "run.py"
    script.write_text(WORKLOAD)
    stub = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{stub.server_address[1]}"
    try:
        files = trace_python(script, {
            "PATH": "/usr/bin:/bin", "HOME": str(tmp), "CLUSTER": "default",
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": url,
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": url + "/creds"})
    finally:
        stub.shutdown()
        stub.server_close()
    layout = build_python_oci(tmp / "layout", files, {"app/run.py": WORKLOAD.encode()})
    size = sum(f.stat().st_size for f in (layout / "blobs").rglob("*") if f.is_file())
    print(f"\npython image: {len(files)} files traced, {size / 1e6:.1f} MB of blobs")
    push_layout(layout, registry.address, "python-boto:latest")
    return f"{registry.address}/python-boto:latest"


def register(ecs, image: str, command: list[str], role: bool = False, **kw) -> str:
    fam = "iso" + uuid.uuid4().hex[:10]
    ecs.register_task_definition(
        family=fam, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256",
        memory="512", containerDefinitions=[{"name": "app", "image": image, "command": command,
                                             "stopTimeout": 2, **kw}],
        **({"taskRoleArn": ROLE} if role else {}))
    return fam


# ---------------------------------------------------------------- nothing of the host


class Listener:
    """A host service on 0.0.0.0, as sshd or a database would be: it greets and hangs up, and
    notes who connected."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.peers: list[str] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._done.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.peers.append(peer[0])
            with conn:
                conn.sendall(b"host-service\n")

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    srv = Listener()
    yield srv
    srv.close()


def host_address(exclude: set[str]) -> str | None:
    """A global address of this host other than fargo's gateways (its main one, typically)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        addr = line.split()[3].split("/")[0]
        if addr not in exclude:
            return addr
    return None


@pytest.mark.parametrize("platform", ["1.4.0", "1.4.0-gvisor"], ids=["runc", "gvisor"])
def test_a_task_reaches_nothing_of_the_host(ecs, ec2, fargo, busybox_image, subnet_id,
                                            listener, platform):
    gateways = {Ipam.gateway(s["CidrBlock"]) for s in ec2.describe_subnets()["Subnets"]}
    cidr = next(s["CidrBlock"] for s in ec2.describe_subnets()["Subnets"]
                if s["SubnetId"] == subnet_id)
    gateway = Ipam.gateway(cidr)
    other = host_address(gateways)
    targets = [gateway] + ([other] if other else [])
    probe = "; ".join(f"if timeout 3 nc -w 1 {a} {listener.port} </dev/null; then echo "
                      f"'{a} open'; else echo '{a} closed'; fi" for a in targets)
    fam = register(ecs, busybox_image, ["sh", "-c", f"{probe}; echo READY; trap 'exit 0' TERM;"
                                                    " httpd -f -p 8080 -h /www & wait"])
    t = wait_status(ecs, run(ecs, fam, subnet_id, platformVersion=platform)["taskArn"],
                    "RUNNING")
    try:
        deadline = time.time() + 30
        while "READY" not in (out := logs(fargo, t["taskArn"])):
            assert time.time() < deadline, out
            time.sleep(0.2)
        for a in targets:
            assert f"{a} closed" in out, out
        assert "host-service" not in out and listener.peers == [], (out, listener.peers)
        # The listener was there on both addresses all along, and the host still reaches
        # the task (replies to what the host opens pass).
        for a in targets:
            with socket.create_connection((a, listener.port), timeout=2) as conn:
                assert conn.recv(64) == b"host-service\n"
        assert http_body(f"http://{detail(t, 'privateIPv4Address')}:8080/") == \
            "hello from fargo\n"
    finally:
        ecs.stop_task(task=t["taskArn"])
        wait_status(ecs, t["taskArn"], "STOPPED")
    # The host forgets the task's flows before its address is handed out again: the next
    # task given it inherits nothing accepted as established.
    ip = detail(t, "privateIPv4Address")
    deadline = time.time() + 5
    while _flows(ip) and time.time() < deadline:
        time.sleep(0.1)
    assert _flows(ip) == 0


def _flows(ip: str) -> int:
    from pyroute2 import Conntrack
    from pyroute2.conntrack import NFCTAttrTuple

    ct = Conntrack()
    try:
        return sum(len(list(ct.dump_entries(tuple_orig=NFCTAttrTuple(**{side: ip}))))
                   for side in ("saddr", "daddr"))
    finally:
        ct.close()


# ---------------------------------------------------------------- fargo's API, on purpose


def test_boto3_in_a_task_uses_the_api_endpoint_with_the_role(ecs, ec2, fargo, python_image,
                                                             subnet_id):
    vpc = ec2.describe_vpcs()["Vpcs"][0]["CidrBlock"]
    endpoint = str(ipaddress.ip_network(vpc).network_address + 2)
    fam = register(ecs, python_image, ["python3", "-I", "/app/run.py"], role=True,
                   environment=[{"name": "CLUSTER", "value": "default"}])
    t0 = time.monotonic()
    t = wait_status(ecs, run(ecs, fam, subnet_id)["taskArn"], "STOPPED", timeout=60)
    out = logs(fargo, t["taskArn"])
    print(f"python task ran in {time.monotonic() - t0:.1f}s")
    assert t["containers"][0].get("exitCode") == 0, (t.get("stoppedReason"), out)
    result = json.loads(next(line for line in out.splitlines()
                             if line.startswith("RESULT "))[7:])
    assert result["endpoint"] == f"http://{endpoint}"
    assert result["key"].startswith("ASIA")  # the role's short-lived key, not a long-term one
    assert t["taskArn"] in result["tasks"]  # it listed itself
    assert result["unsigned"] == "MissingAuthenticationTokenException"
    assert result["forged"] == "InvalidSignatureException"  # the key alone proves nothing
    assert result["/fargo/health"] == 404 and result["/admission/validate"] in (404, 405)


def test_endpoint_listeners_inside_the_netns() -> None:
    """The data plane alone: the attach opens the API endpoint's listener when given the
    address, api_listener opens one when it was not (and again after a restart, as the
    metadata one is); both answer on port 80 inside the netns and nowhere else."""
    plane = HostNetworkPlane("t" + secrets.token_hex(2))
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    cidr = next(c for c in (f"10.214.{random.randint(1, 254)}.0/24" for _ in range(50))
                if c.rsplit(".", 2)[0] + "." not in used)
    subnet = Subnet("subnet-iso", "vpc-iso", cidr, "us-east-1a", "use1-az1")
    endpoint = Ipam.endpoint(cidr)

    def answers(path: str, address: str, sock: socket.socket) -> None:
        def connect() -> None:
            enter_netns(path)
            socket.create_connection((address, 80), timeout=2).close()

        run_in_thread(connect)
        sock.setblocking(True)
        sock.settimeout(2)
        sock.accept()[0].close()

    try:
        for tid, given in ((uuid.uuid4().hex, endpoint), (uuid.uuid4().hex, "")):
            plane.attach(tid, subnet, Ipam.pick(cidr, set()) or "", endpoint=given)
            for when in ("attached", "re-adopted"):
                meta, api = plane.metadata_listener(tid), plane.api_listener(tid, endpoint)
                with meta, api:
                    assert api.getsockname()[0] == endpoint
                    answers(plane.netns_path(tid), endpoint, api)
                    answers(plane.netns_path(tid), METADATA_IP, meta)
                    if when == "attached":  # eth0 answers no ARP for its lo addresses:
                        with pytest.raises(OSError):  # from the bridge, nothing is there
                            socket.create_connection((endpoint, LISTEN_PORT), 0.2).close()
            plane.detach(tid)
    finally:
        plane.cleanup()


# ---------------------------------------------------------------- the rule (pure)


@pytest.mark.pure
def test_endpoint_address_and_environment() -> None:
    assert Ipam.endpoint("10.89.0.0/16") == "10.89.0.2"
    # No task ever gets it: in a subnet at the VPC's base it is one of the reserved head.
    assert not Ipam.usable("10.89.0.0/18", "10.89.0.2")
    assert "10.89.0.2" not in set(Ipam.hosts("10.89.0.0/28"))
    task = Task(id="t1", arn="arn", cluster_arn="c", task_definition_arn="td", family="f",
                region="us-east-1", cpu=256, memory=512, created_at=0.0,
                availability_zone="us-east-1a",
                interface=Interface("att", "eni-1", "subnet-1", "10.89.0.5", "ip"),
                containers=[], plan=[])
    assert "AWS_ENDPOINT_URL" not in task_env(task, "app")  # a record from before: none
    task.interface.endpoint = "10.89.0.2"
    assert task_env(task, "app")["AWS_ENDPOINT_URL"] == "http://10.89.0.2"
