"""kubectl exec (with and without -it), cp both ways, attach and port-forward, by the real
kubectl 1.32 over the protocols it speaks by default (WebSocket v5.channel.k8s.io; SPDY/3.1
tunnelled over a WebSocket for port-forward), against pods in real runc sandboxes."""

from __future__ import annotations

import asyncio
import base64
import fcntl
import filecmp
import hashlib
import json
import os
import pty
import re
import select
import socket
import ssl
import struct
import subprocess
import termios
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import requests
import yaml

from tests.conftest import FargoServer, FargoServers
from tests.imagebuild import build_busybox_oci, push_layout
from tests.test_kubectl import KUBECTL, kubectl, kubectl_run, make_profile, wait_for

pytestmark = pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl is not installed")

# Applets the test image lacks, as scripts: kubectl cp runs tar in the container.
TOOLS = {f"bin/{a}": f'#!/bin/sh\nexec busybox {a} "$@"\n'.encode()
         for a in ("tar", "stty", "tty", "sha256sum")}
POD = "shell"


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> Iterator[FargoServer]:
    with FargoServers(tmp_path_factory.mktemp("exec-state")) as servers:
        yield servers("--overcommit", "8")


@pytest.fixture(scope="module")
def image(registry, tmp_path_factory) -> str:
    layout = build_busybox_oci(tmp_path_factory.mktemp("layout") / "tools", extra_files=TOOLS)
    push_layout(layout, registry.address, "busybox-tools:latest")
    return f"{registry.address}/busybox-tools:latest"


@pytest.fixture(scope="module")
def kubeconfig(srv, tmp_path_factory) -> Iterator[Path]:
    eks = srv.client("eks")
    subnets = [s["SubnetId"] for s in srv.client("ec2").describe_subnets()["Subnets"]]
    name = "x" + uuid.uuid4().hex[:8]
    eks.create_cluster(name=name, roleArn="arn:aws:iam::000000000000:role/eks",
                       resourcesVpcConfig={"subnetIds": subnets})
    make_profile(eks, name, "all", [{"namespace": "apps"}], subnets[:1])
    out = subprocess.run(["python3", "-m", "fargo", "kubeconfig", name, "--endpoint",
                          srv.endpoint], capture_output=True, text=True, env=srv.env(),
                         cwd=Path(__file__).parent.parent, timeout=30, check=True)
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(out.stdout)
    kubectl_run(path, "create", "namespace", "apps")
    yield path
    kubectl(path, "delete", "namespace", "apps", "--wait=false")


@pytest.fixture(scope="module")
def shell(kubeconfig, image) -> str:
    """A pod of two containers: app (httpd on 8080 as nobody, in /www, with an env) and side."""
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD, "namespace": "apps"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                {"name": "app", "image": image, "workingDir": "/www",
                 "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                 "env": [{"name": "GREETING", "value": "hello"}],
                 "securityContext": {"runAsUser": 65534, "runAsGroup": 65534}},
                {"name": "side", "image": image, "command": ["sleep", "3600"]}]}}
    kubectl_run(kubeconfig, "apply", "-f", "-", stdin=json.dumps(body))
    wait_for(kubeconfig, POD, "status.phase", "Running", timeout=60)
    return POD


def k(config: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return kubectl(config, "-n", "apps", *args, **kw)


# ---- exec

def test_exec_runs_as_the_containers_own_process(kubeconfig, shell):
    out = k(kubeconfig, "exec", shell, "-c", "app", "--", "sh", "-c",
            "id -u; id -g; pwd; echo $GREETING; echo oops >&2; exit 3")
    assert out.returncode == 3
    assert out.stdout == "65534\n65534\n/www\nhello\n"
    assert "oops" in out.stderr and "command terminated with exit code 3" in out.stderr
    # in the container's cgroup and namespaces, beside its process
    same = k(kubeconfig, "exec", shell, "-c", "app", "--", "sh", "-c",
             'test "$(cat /proc/self/cgroup)" = "$(cat /proc/1/cgroup)" && '
             'test "$(readlink /proc/self/ns/net)" = "$(readlink /proc/1/ns/net)" && '
             'test "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/1/ns/mnt)" && echo same')
    assert same.stdout == "same\n", same.stderr
    # kubectl picks the first container when none is named, and says so
    out = k(kubeconfig, "exec", shell, "--", "hostname")
    assert out.returncode == 0 and out.stdout.strip()
    assert 'Defaulted container "app"' in out.stderr


def test_exec_stdin_reaches_the_process_and_its_eof_ends_it(kubeconfig, shell):
    data = os.urandom(3_000_000)
    out = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "-n", "apps", "exec",
                          "-i", shell, "-c", "side", "--", "sh", "-c", "wc -c; echo end"],
                         input=data, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [b"3000000", b"end"]


def test_exec_big_output_and_failures(kubeconfig, shell):
    out = k(kubeconfig, "exec", shell, "-c", "side", "--", "sh", "-c",
            "seq 1 200000; seq 1 1000 >&2")
    assert out.returncode == 0
    assert out.stdout.splitlines() == [str(i) for i in range(1, 200001)]
    assert out.stderr.splitlines() == [str(i) for i in range(1, 1001)]
    missing = k(kubeconfig, "exec", shell, "-c", "side", "--", "no-such-binary")
    assert missing.returncode == 255
    assert "executable file not found" in missing.stderr


def test_exec_without_its_client_is_killed(kubeconfig, shell):
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(kubeconfig), "-n", "apps", "exec",
                             shell, "-c", "side", "--", "sleep", "4242"])
    deadline = time.time() + 20
    while "sleep 4242" not in k(kubeconfig, "exec", shell, "-c", "side", "--", "ps").stdout:
        assert time.time() < deadline
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    while "sleep 4242" in k(kubeconfig, "exec", shell, "-c", "side", "--", "ps").stdout:
        assert time.time() < deadline, "the exec'd process outlived its session"
        time.sleep(0.1)


def _drive_tty(config: Path, argv: list[str], steps: list[tuple[str, object]],
               timeout: float = 30) -> tuple[int, str]:
    """Run kubectl on a pty of its own, as a terminal user would: steps are ("send", text),
    ("size", (rows, cols)) and ("wait", text to see before going on)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: kubectl on the pty
        os.execv(KUBECTL, [KUBECTL, "--kubeconfig", str(config), *argv])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    seen = b""
    deadline = time.time() + timeout

    def read_until(want: bytes | None) -> None:
        nonlocal seen
        while time.time() < deadline and (want is None or want not in seen):
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                seen += chunk
            elif want is None:
                return
        assert want is None or want in seen, seen

    try:
        for step, arg in steps:
            if step == "send":
                os.write(fd, str(arg).encode())
            elif step == "size":
                rows, cols = arg  # type: ignore[misc]
                fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                os.kill(pid, 28)  # SIGWINCH: a terminal's own would go to its foreground
            elif step == "wait":
                read_until(str(arg).encode())
        while time.time() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            read_until(None)
            if done:
                pid = 0
                return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")
        raise AssertionError(f"kubectl did not end: {seen!r}")
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


def test_exec_interactive_terminal(kubeconfig, shell):
    code, screen = _drive_tty(kubeconfig, ["-n", "apps", "exec", "-it", shell, "-c", "app",
                                           "--", "sh"], [
        ("wait", "$ "),
        ("send", "tty; stty size; echo T=$TERM; id -u\r"), ("wait", "65534"),
        ("size", (44, 122)), ("send", "stty size\r"), ("wait", "44 122"),
        ("send", "exit 7\r")])
    assert code == 7, screen
    assert "/dev/pts/" in screen and "33 111" in screen and "T=xterm" in screen
    assert "command terminated with exit code 7" in screen
    # ^D in the shell's terminal ends it cleanly
    code, screen = _drive_tty(kubeconfig, ["-n", "apps", "exec", "-it", shell, "-c", "side",
                                           "--", "sh"], [("wait", "# "), ("send", "\x04")])
    assert code == 0, screen


# ---- cp

def test_cp_both_ways(kubeconfig, shell, tmp_path):
    up = tmp_path / "up"
    (up / "sub").mkdir(parents=True)
    (up / "sub" / "big.bin").write_bytes(os.urandom(4_000_000))
    (up / "note.txt").write_text("a note\n")
    out = k(kubeconfig, "cp", str(up), f"{shell}:/tmp/up", "-c", "side")
    assert out.returncode == 0, out.stderr
    sums = k(kubeconfig, "exec", shell, "-c", "side", "--", "sha256sum", "/tmp/up/sub/big.bin")
    assert sums.stdout.split()[0] == hashlib.sha256((up / "sub" / "big.bin").read_bytes()
                                                    ).hexdigest()
    down = tmp_path / "down"
    out = k(kubeconfig, "cp", f"{shell}:/tmp/up", str(down), "-c", "side")
    assert out.returncode == 0, out.stderr
    cmp = filecmp.dircmp(up, down)
    assert not (cmp.left_only or cmp.right_only or cmp.diff_files)
    assert filecmp.cmp(up / "sub" / "big.bin", down / "sub" / "big.bin", shallow=False)
    # as the container's user: nobody may not write to /
    denied = k(kubeconfig, "cp", str(up / "note.txt"), f"{shell}:/note.txt", "-c", "app")
    assert denied.returncode != 0


# ---- attach

def test_attach_follows_the_containers_output(kubeconfig, image):
    script = ("sleep 1; i=0; while [ $i -lt 6 ]; do echo tick $i; echo tock $i >&2; "
              "i=$((i+1)); sleep 0.3; done")
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ticker", "namespace": "apps"},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "t", "image": image,
                                     "command": ["sh", "-c", script]}]}}
    kubectl_run(kubeconfig, "apply", "-f", "-", stdin=json.dumps(body))
    try:
        wait_for(kubeconfig, "ticker", "status.phase", "Running", timeout=60)
        out = k(kubeconfig, "attach", "ticker", timeout=30)
        assert out.returncode == 0, out.stderr
        assert "tick 5" in out.stdout and "tock 5" in out.stderr
        assert "tock" not in out.stdout
        wait_for(kubeconfig, "ticker", "status.phase", "Succeeded", timeout=30)
        server, token, _ = _api(kubeconfig)
        r = requests.get(f"{server}/api/v1/namespaces/apps/pods/ticker/exec?command=true"
                         "&stdout=true", headers={"Authorization": f"Bearer {token}"},
                         verify=_ca_file(kubeconfig), timeout=10)
        assert r.status_code == 400 and r.json()["message"] == (
            "cannot exec into a container in a completed pod; current phase is Succeeded")
    finally:
        k(kubeconfig, "delete", "pod", "ticker", "--wait=false")


# ---- port-forward

class Forward:
    """kubectl port-forward in the background; local ports as it prints them."""

    def __init__(self, config: Path, *ports: str, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(config), "-n", "apps",
                                      "port-forward", f"pod/{POD}", *ports],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        self.local: list[int] = []
        assert self.proc.stdout is not None
        deadline = time.time() + 20
        while len(self.local) < len(ports):
            line = self.proc.stdout.readline()
            assert line and time.time() < deadline, self.proc.stderr.read() if self.proc.stderr \
                else ""
            m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) ->", line)
            if m:
                self.local.append(int(m.group(1)))

    def close(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        _, err = self.proc.communicate(timeout=10)
        return err


def _echo(port: int, data: bytes) -> bytes:
    got = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        def read() -> None:
            while chunk := s.recv(65536):
                got.extend(chunk)
        reader = threading.Thread(target=read)
        reader.start()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        reader.join(30)
    return bytes(got)


def test_port_forward(kubeconfig, shell):
    k(kubeconfig, "exec", shell, "-c", "side", "--", "sh", "-c",
      "nc -ll -p 9000 -e cat </dev/null >/dev/null 2>&1 &")
    fw = Forward(kubeconfig, ":8080", ":9000")
    try:
        web, echo = fw.local
        for _ in range(3):  # a connection each, over the one session
            assert requests.get(f"http://127.0.0.1:{web}/index.html", timeout=10).ok
        out = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{web}/"], capture_output=True,
                             timeout=20)
        assert out.returncode == 0 and out.stdout
        # both directions at once, several connections side by side
        blobs = [os.urandom(2_000_000 + i) for i in range(4)]
        results: list[bytes] = [b""] * len(blobs)

        def one(i: int) -> None:
            results[i] = _echo(echo, blobs[i])
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(blobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert results == blobs
        assert fw.proc.poll() is None
    finally:
        fw.close()


def test_port_forward_to_a_closed_port_is_told(kubeconfig, shell):
    fw = Forward(kubeconfig, ":9999")
    try:
        with socket.create_connection(("127.0.0.1", fw.local[0]), timeout=10) as s:
            s.settimeout(10)
            assert s.recv(10) == b""
        fw.proc.wait(timeout=20)  # kubectl ends the forward, as against a kubelet
        err = fw.close()
        assert "failed to connect to localhost:9999" in err and "connection refused" in err
        assert "lost connection to pod" in err
    finally:
        fw.close()


# ---- refusals, as Status

def test_refusals(kubeconfig, shell):
    nope = k(kubeconfig, "exec", shell, "-c", "nope", "--", "true")
    assert nope.returncode == 1 and "container nope is not valid for pod shell" in nope.stderr
    gone = k(kubeconfig, "exec", "no-such-pod", "--", "true")
    assert 'pods "no-such-pod" not found' in gone.stderr
    # kubectl falls back to SPDY only when asked to: fargo refuses it by name
    spdy = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "-n", "apps", "exec", shell, "-c", "app",
         "--", "true"], capture_output=True, text=True, timeout=30,
        env=dict(os.environ, KUBECTL_REMOTE_COMMAND_WEBSOCKETS="false"))
    assert spdy.returncode == 1 and "not over a SPDY/3.1 upgrade" in spdy.stderr


def _api(config: Path) -> tuple[str, str, ssl.SSLContext]:
    doc = yaml.safe_load(config.read_text())
    server = doc["clusters"][0]["cluster"]["server"]
    ca = base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"])
    ctx = ssl.create_default_context(cadata=ca.decode())
    return server, doc["users"][0]["user"]["token"], ctx


def _ca_file(config: Path) -> str:
    path = config.with_name("ca.pem")
    path.write_bytes(base64.b64decode(yaml.safe_load(config.read_text())["clusters"][0][
        "cluster"]["certificate-authority-data"]))
    return str(path)


def test_raw_requests(kubeconfig, shell):
    server, token, ctx = _api(kubeconfig)
    ca = _ca_file(kubeconfig)
    auth = {"Authorization": f"Bearer {token}"}
    base = f"{server}/api/v1/namespaces/apps/pods/{shell}"

    def status(resp: requests.Response) -> dict:
        body = resp.json()
        assert body["kind"] == "Status", body
        return body

    r = requests.get(f"{base}/exec?command=true&stdout=true&container=app", headers=auth,
                     verify=ca, timeout=10)
    assert r.status_code == 400 and status(r)["message"] == "Upgrade request required"
    r = requests.get(f"{base}/exec?stdout=true", headers=auth, verify=ca, timeout=10)
    assert status(r)["message"] == "you must specify at least 1 command"
    r = requests.get(f"{base}/exec?command=true&container=app", headers=auth, verify=ca,
                     timeout=10)
    assert "at least 1 of stdin, stdout, stderr" in status(r)["message"]
    r = requests.get(f"{base}/exec?command=true&stdout=true&bogus=1", headers=auth,
                     verify=ca, timeout=10)
    assert r.status_code == 400 and "bogus" in status(r)["message"]
    r = requests.delete(f"{base}/exec", headers=auth, verify=ca, timeout=10)
    assert r.status_code == 405 and status(r)["reason"] == "MethodNotAllowed"
    r = requests.get(f"{base}/portforward", headers=auth, verify=ca, timeout=10)
    assert r.status_code == 400 and status(r)["message"] == "Upgrade request required"

    async def ws() -> None:
        async with aiohttp.ClientSession(headers=auth) as session:
            url = f"{base}/exec?command=sh&command=-c&command=cat;exit%205&stdin=true" \
                  "&stdout=true&stderr=true&container=side"
            # v4 over base64: what older clients and browsers speak
            async with session.ws_connect(url, protocols=["v4.base64.channel.k8s.io"],
                                          ssl=ctx) as conn:
                assert conn.protocol == "v4.base64.channel.k8s.io"
                await conn.send_str("0" + base64.b64encode(b"ping\n").decode())
                got = await conn.receive(timeout=10)
                assert got.data == "1" + base64.b64encode(b"ping\n").decode()
                await conn.close()  # no close signal before v5: the client's leaving ends it
            async with session.ws_connect(url, protocols=["v4.channel.k8s.io"],
                                          ssl=ctx) as conn:
                await conn.send_bytes(b"\x00abc")
                assert (await conn.receive(timeout=10)).data == b"\x01abc"
                await conn.close()
            async with session.ws_connect(url, protocols=["v5.channel.k8s.io"],
                                          ssl=ctx) as conn:
                await conn.send_bytes(b"\x00xyz")
                await conn.send_bytes(b"\xff\x00")  # stdin closed: cat ends, then exit 5
                frames = []
                async for msg in conn:
                    frames.append(msg.data)
                assert frames[0] == b"\x01xyz"
                end = json.loads(frames[-1][1:])
                assert frames[-1][0] == 3 and end["reason"] == "NonZeroExitCode"
                assert end["details"]["causes"][0]["message"] == "5"
            # a protocol error at once: the session ends, and its process with it
            sleeper = url.replace("command=sh&command=-c&command=cat;exit%205",
                                  "command=sleep&command=4343")
            for _ in range(3):
                async with session.ws_connect(sleeper, protocols=["v5.channel.k8s.io"],
                                              ssl=ctx) as conn:
                    await conn.send_bytes(b"\xff")  # a close signal naming no channel
                    msg = await conn.receive(timeout=10)
                    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1002
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url, protocols=["v9.channel.k8s.io"], ssl=ctx)
            assert refused.value.status == 400

    asyncio.run(ws())
    deadline = time.time() + 10
    while "sleep 4343" in k(kubeconfig, "exec", shell, "-c", "side", "--", "ps").stdout:
        assert time.time() < deadline, "a session's process outlived it"
        time.sleep(0.2)
