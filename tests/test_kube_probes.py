"""Pods' probes and downward-API environment driven by the real kubectl: readiness gating
Ready (httpGet to a named port), liveness restarting a container (exec; events, restartCount,
`logs --previous`), a startup probe holding the others back, tcpSocket, and env from
fieldRef/resourceFieldRef."""

from __future__ import annotations

import json
import time

from tests.test_kubectl import (  # noqa: F401 - the fixtures, shared
    cluster,
    eks,
    kubeconfig,
    kubectl,
    kubectl_run,
    pod_yaml,
    srv,
    subnets,
    wait_deleted,
    wait_for,
)


def pod(config, name: str) -> dict:
    return json.loads(kubectl_run(config, "get", "pod", name, "-n", "apps", "-o", "json"))


def condition(p: dict, kind: str) -> str:
    return next((c["status"] for c in p["status"].get("conditions") or []
                 if c["type"] == kind), "")


def wait_until(check, what: str, timeout: float = 30):
    deadline = time.time() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.time() < deadline, what
        time.sleep(0.2)


def events(config, name: str) -> str:
    return kubectl_run(config, "get", "events", "-n", "apps", "--field-selector",
                       f"involvedObject.name={name}", "-o",
                       "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message")


def exec_probe(cmd: str, **timing) -> dict:
    return {"exec": {"command": ["sh", "-c", cmd]}, "periodSeconds": 1, **timing}


def test_probes_and_downward_env(kubeconfig, busybox_image):  # noqa: F811
    # web: ready only while /ready is served; alive while its port accepts.
    web = json.loads(pod_yaml("web", busybox_image, script=(
        'echo "ip=$MY_IP node=$MY_NODE name=$MY_NAME/$MY_NS tier=$TIER cpu=$CPU_M '
        'mem=$MEM_MI sa=$SA"; mkdir /tmp/w; httpd -f -p 8080 -h /tmp/w & sleep 2; '
        "touch /tmp/w/ready; sleep 4; rm /tmp/w/ready; wait")))
    c = web["spec"]["containers"][0]
    c["ports"] = [{"name": "http", "containerPort": 8080}]
    c["resources"] = {"requests": {"cpu": "250m"}, "limits": {"memory": "64Mi"}}
    c["readinessProbe"] = {"httpGet": {"path": "/ready", "port": "http",
                                       "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
                           "periodSeconds": 1}
    c["livenessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": 1,
                          "initialDelaySeconds": 1}

    def ref(name, path):
        return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

    c["env"] = [ref("MY_IP", "status.podIP"), ref("MY_NODE", "spec.nodeName"),
                ref("MY_NAME", "metadata.name"), ref("MY_NS", "metadata.namespace"),
                ref("TIER", "metadata.labels['tier']"), ref("SA", "spec.serviceAccountName"),
                {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {
                    "resource": "requests.cpu", "divisor": "1m"}}},
                {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {
                    "resource": "limits.memory", "divisor": "1Mi"}}}]
    # crashy: alive for 2 s, then its liveness probe fails and it is restarted.
    crashy = json.loads(pod_yaml("crashy", busybox_image, script=(
        'echo "run at $(cat /proc/sys/kernel/random/uuid)"; touch /tmp/alive; sleep 2; '
        "rm /tmp/alive; sleep 3600")))
    crashy["spec"]["containers"][0]["livenessProbe"] = exec_probe(
        "cat /tmp/alive", failureThreshold=1, terminationGracePeriodSeconds=1)
    # slow: started after 3 s (its liveness probe would fail before), never ready.
    slow = json.loads(pod_yaml("slow", busybox_image, script=(
        "sleep 3; touch /tmp/started; sleep 3600")))
    s = slow["spec"]["containers"][0]
    s["startupProbe"] = exec_probe("cat /tmp/started", failureThreshold=20)
    s["livenessProbe"] = exec_probe("cat /tmp/started", failureThreshold=1)
    s["readinessProbe"] = {"tcpSocket": {"port": 9999}, "periodSeconds": 1}
    for body in (web, crashy, slow):
        kubectl_run(kubeconfig, "apply", "-f", "-", stdin=json.dumps(body))

    # The apiserver's defaults are shown.
    got = pod(kubeconfig, "web")["spec"]["containers"][0]
    assert got["readinessProbe"]["timeoutSeconds"] == 1
    assert got["readinessProbe"]["failureThreshold"] == 3
    assert got["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
    assert got["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"

    # web: Running but not Ready until /ready is served, Ready, then not Ready again.
    p = wait_for(kubeconfig, "web", "status.phase", "Running")
    assert condition(p, "Ready") == "False"
    assert p["status"]["containerStatuses"][0]["ready"] is False
    p = wait_until(lambda: (q := pod(kubeconfig, "web")) and condition(q, "Ready") == "True"
                   and q, "web never became Ready")
    assert condition(p, "ContainersReady") == "True"
    assert p["status"]["containerStatuses"][0]["ready"] is True
    row = kubectl_run(kubeconfig, "get", "pod", "web", "-n", "apps", "--no-headers")
    assert row.split()[1] == "1/1" and "Running" in row
    ip, node = p["status"]["podIP"], p["spec"]["nodeName"]
    assert kubectl_run(kubeconfig, "logs", "web", "-n", "apps").splitlines()[0] == (
        f"ip={ip} node={node} name=web/apps tier=web cpu=250 mem=64 sa=default")
    wait_until(lambda: condition(pod(kubeconfig, "web"), "Ready") == "False",
               "web stayed Ready after /ready went away")
    p = pod(kubeconfig, "web")
    assert p["status"]["phase"] == "Running"
    assert p["status"]["containerStatuses"][0]["restartCount"] == 0  # tcpSocket liveness
    assert "Readiness probe failed: HTTP probe failed with statuscode: 404" in events(
        kubeconfig, "web")

    # crashy: restarted by its liveness probe, the previous run's log kept.
    p = wait_until(lambda: (q := pod(kubeconfig, "crashy"))["status"].get(
        "containerStatuses", [{}])[0].get("restartCount", 0) >= 1 and q,
        "crashy was never restarted")
    last = p["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] in (137, 143)
    ev = events(kubeconfig, "crashy")
    assert 'Liveness probe failed: command "sh -c cat /tmp/alive" exited with code 1' in ev
    assert "Container app failed liveness probe, will be restarted" in ev
    wait_for(kubeconfig, "crashy", "status.phase", "Running")
    wait_until(lambda: "running" in pod(kubeconfig, "crashy")["status"]["containerStatuses"][0][
        "state"], "crashy did not run again")
    wait_until(lambda: "run at" in kubectl_run(kubeconfig, "logs", "crashy", "-n", "apps"),
               "no output from the second run")
    previous = kubectl_run(kubeconfig, "logs", "crashy", "-n", "apps", "--previous")
    current = kubectl_run(kubeconfig, "logs", "crashy", "-n", "apps")
    assert previous.count("run at") == 1 and current.count("run at") == 1
    assert previous != current

    # slow: not started (and not killed) while its startup probe fails; then started, but
    # its tcpSocket readiness never passes.
    st = pod(kubeconfig, "slow")["status"]["containerStatuses"][0]
    assert st["started"] is False or st["restartCount"] == 0
    wait_until(lambda: pod(kubeconfig, "slow")["status"]["containerStatuses"][0]["started"],
               "slow never started")
    time.sleep(2)  # its liveness probe now runs, and passes
    p = pod(kubeconfig, "slow")
    st = p["status"]["containerStatuses"][0]
    assert st["restartCount"] == 0 and st["ready"] is False and condition(p, "Ready") == "False"
    ev = events(kubeconfig, "slow")
    assert "Startup probe failed" in ev
    assert f"Readiness probe failed: dial tcp {p['status']['podIP']}:9999: connect: " \
           "connection refused" in ev
    assert "Liveness probe failed" not in ev and "Killing" not in ev

    kubectl_run(kubeconfig, "delete", "pod", "web", "crashy", "slow", "-n", "apps",
                "--grace-period=0", "--force")
    for name in ("web", "crashy", "slow"):
        wait_deleted(kubeconfig, "pod", name)


def test_bad_probes_and_env_are_refused(kubeconfig, busybox_image):  # noqa: F811
    def attempt(**container) -> str:
        body = json.loads(pod_yaml("bad", busybox_image))
        body["spec"]["containers"][0].update(container)
        out = kubectl(kubeconfig, "create", "-f", "-", stdin=json.dumps(body))
        assert out.returncode != 0, out.stdout
        return out.stderr

    err = attempt(livenessProbe={"exec": {"command": ["true"]}, "successThreshold": 2})
    assert 'Pod "bad" is invalid: spec.containers[0].livenessProbe.successThreshold: ' \
           "Invalid value: 2: must be 1" in err
    err = attempt(readinessProbe={"periodSeconds": 1})
    assert "spec.containers[0].readinessProbe: Required value: must specify a handler type" \
        in err
    err = attempt(livenessProbe={"grpc": {"port": 9000}})
    assert "fields not supported: spec.containers[0].livenessProbe.grpc" in err
    err = attempt(env=[{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}])
    assert "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value" in err
    assert kubectl(kubeconfig, "get", "pod", "bad", "-n", "apps").returncode != 0


def test_ready_survives_a_server_restart(kubeconfig, srv, busybox_image):  # noqa: F811
    body = json.loads(pod_yaml("steady", busybox_image))
    body["spec"]["containers"][0]["readinessProbe"] = exec_probe("true", periodSeconds=30)
    kubectl_run(kubeconfig, "apply", "-f", "-", stdin=json.dumps(body))
    p = wait_until(lambda: (q := pod(kubeconfig, "steady")) and condition(q, "Ready") == "True"
                   and q, "steady never became Ready")

    def since(p: dict) -> str:
        return next(c["lastTransitionTime"] for c in p["status"]["conditions"]
                    if c["type"] == "Ready")

    before = since(p)
    time.sleep(1.1)  # a flap would stamp another second
    srv.kill()
    srv.start()
    time.sleep(2)
    p = pod(kubeconfig, "steady")
    assert condition(p, "Ready") == "True" and since(p) == before
    assert p["status"]["containerStatuses"][0]["restartCount"] == 0
    kubectl_run(kubeconfig, "delete", "pod", "steady", "-n", "apps", "--grace-period=0",
                "--force")
    wait_deleted(kubeconfig, "pod", "steady")


def test_http_and_tcp_probes_against_local_servers(tmp_path):
    """The prober's httpGet and tcpSocket (no root: a socket of this host stands in for the
    pod's netns): status codes, same-host redirects, headers, HTTPS, refusals."""
    import asyncio
    import socket
    import ssl
    import subprocess as sp

    from fargo.control.probes import Prober, _Run
    from fargo.model import probes as rules

    class Net:
        def probe_socket(self, tid: str) -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            return s

    seen: list[bytes] = []

    async def handler(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        path = head.split(b" ")[1]
        answer = {b"/ok": b"200 OK", b"/bad": b"500 Oops", b"/hop": b"302 Found",
                  b"/away": b"301 Moved"}.get(path, b"404 Not Found")
        where = {b"/hop": b"Location: /bad\r\n", b"/away": b"Location: http://x/\r\n"}
        writer.write(b"HTTP/1.1 " + answer + b"\r\n" + where.get(path, b"") +
                     b"Content-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    sp.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
            "-out", str(cert), "-days", "1", "-subj", "/CN=probe"], check=True,
           capture_output=True)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    async def main() -> dict[str, tuple[bool | None, str]]:
        plain = await asyncio.start_server(handler, "127.0.0.1", 0)
        secure = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
        port = plain.sockets[0].getsockname()[1]
        sport = secure.sockets[0].getsockname()[1]
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
        closed.close()
        prober = Prober(None, None, Net(), None, {})  # type: ignore[arg-type]
        run = _Run(tid="t", name="app", run=0.0, cluster="c", pod={}, ip="127.0.0.1",
                   container={"name": "app", "ports": [{"name": "web", "containerPort": port}]},
                   workers={}, started=True, ready=False)

        async def one(action) -> tuple[bool | None, str]:
            r = await prober._attempt(run, rules.Probe("readinessProbe", action))
            return r.passed, r.message
        out = {}
        for key, action in {
                "ok": rules.HttpGet("web", "/ok", headers=(("X-Probe", "yes"),)),
                "bad": rules.HttpGet(port, "/bad"), "hop": rules.HttpGet(port, "/hop"),
                "away": rules.HttpGet(port, "/away"), "tls": rules.HttpGet(sport, "/ok", "HTTPS"),
                "refused": rules.HttpGet(dead, "/"), "noname": rules.HttpGet("nope", "/"),
                "tcp": rules.TcpSocket(port), "tcp-refused": rules.TcpSocket(dead)}.items():
            out[key] = await one(action)
        out["dead"] = (None, str(dead))
        plain.close()
        secure.close()
        return out

    got = asyncio.run(main())
    dead = got.pop("dead")[1]
    assert got["ok"] == (True, "") and got["away"][0] is True and got["tls"][0] is True
    assert got["bad"] == (False, "HTTP probe failed with statuscode: 500")
    assert got["hop"] == (False, "HTTP probe failed with statuscode: 500")  # followed
    assert got["refused"] == (False, f'Get "http://127.0.0.1:{dead}/": dial tcp '
                                     f"127.0.0.1:{dead}: connect: connection refused")
    assert got["noname"] == (False, "couldn't find port: nope in app")
    assert got["tcp"] == (True, "") and got["tcp-refused"] == (
        False, f"dial tcp 127.0.0.1:{dead}: connect: connection refused")
    first = seen[0].decode()
    assert first.startswith("GET /ok HTTP/1.1\r\n") and "X-Probe: yes\r\n" in first
    assert "User-Agent: kube-probe/1.32\r\n" in first and "Host: 127.0.0.1:" in first
