"""Probes' rules (model/probes.py): the apiserver's checks and defaults, the threshold rule,
what a container status says, and what an httpGet sends."""

from __future__ import annotations

import pytest

from fargo.model import admission
from fargo.model import probes as p

pytestmark = pytest.mark.pure


def spec(**probe_sets) -> dict:
    c = {"name": "app", "image": "busybox", "ports": [{"name": "http", "containerPort": 8080}]}
    c.update(probe_sets)
    return {"containers": [c]}


def errors(**probe_sets) -> list[tuple[str, str]]:
    return p.spec_errors(spec(**probe_sets))


def test_valid_probes_pass():
    assert errors(livenessProbe={"exec": {"command": ["true"]}, "periodSeconds": 1},
                  readinessProbe={"httpGet": {"port": "http", "path": "/ready",
                                              "httpHeaders": [{"name": "X-A", "value": "b"}]},
                                  "successThreshold": 2},
                  startupProbe={"tcpSocket": {"port": 8080}, "failureThreshold": 30,
                                "terminationGracePeriodSeconds": 5}) == []


@pytest.mark.parametrize("probe,kind,want", [
    ({}, "livenessProbe", ("spec.containers[0].livenessProbe",
                           "Required value: must specify a handler type")),
    ({"exec": {"command": ["x"]}, "tcpSocket": {"port": 1}}, "livenessProbe",
     ("spec.containers[0].livenessProbe.tcpSocket",
      "Forbidden: may not specify more than 1 handler type")),
    ({"exec": {"command": []}}, "livenessProbe",
     ("spec.containers[0].livenessProbe.exec.command", "Required value")),
    ({"tcpSocket": {"port": 0}}, "readinessProbe",
     ("spec.containers[0].readinessProbe.tcpSocket.port",
      "Invalid value: 0: must be between 1 and 65535, inclusive")),
    ({"tcpSocket": {"port": "Bad_Name"}}, "readinessProbe",
     ("spec.containers[0].readinessProbe.tcpSocket.port",
      "Invalid value: 'Bad_Name': must contain only alpha-numeric characters (a-z, 0-9), and "
      "hyphens (-), and may not begin or end with or contain two adjacent hyphens")),
    ({"tcpSocket": {"port": "123"}}, "readinessProbe",
     ("spec.containers[0].readinessProbe.tcpSocket.port",
      "Invalid value: '123': must contain at least one letter (a-z)")),
    ({"exec": {"command": ["x"]}, "successThreshold": 2}, "livenessProbe",
     ("spec.containers[0].livenessProbe.successThreshold", "Invalid value: 2: must be 1")),
    ({"exec": {"command": ["x"]}, "periodSeconds": -1}, "startupProbe",
     ("spec.containers[0].startupProbe.periodSeconds",
      "Invalid value: -1: must be greater than or equal to 0")),
    ({"exec": {"command": ["x"]}, "terminationGracePeriodSeconds": 3}, "readinessProbe",
     ("spec.containers[0].readinessProbe.terminationGracePeriodSeconds",
      "Invalid value: 3: must not be set for readinessProbes")),
    ({"exec": {"command": ["x"]}, "terminationGracePeriodSeconds": 0}, "livenessProbe",
     ("spec.containers[0].livenessProbe.terminationGracePeriodSeconds",
      "Invalid value: 0: must be greater than 0")),
    ({"httpGet": {"port": 80, "scheme": "FTP"}}, "livenessProbe",
     ("spec.containers[0].livenessProbe.httpGet.scheme",
      "Unsupported value: 'FTP': supported values: \"HTTP\", \"HTTPS\"")),
    ({"httpGet": {"port": 80, "httpHeaders": [{"name": "a b", "value": "x"}]}},
     "livenessProbe", ("spec.containers[0].livenessProbe.httpGet.httpHeaders[0].name",
                       "Invalid value: 'a b': a valid HTTP header must consist of "
                       "alphanumeric characters or '-'")),
])
def test_refused_probes(probe, kind, want):
    assert want in errors(**{kind: probe})


def test_init_containers_take_no_probes():
    s = {"initContainers": [{"name": "i", "image": "x",
                             "readinessProbe": {"exec": {"command": ["x"]}}}],
         "containers": []}
    assert p.spec_errors(s) == [("spec.initContainers[0].readinessProbe",
                                 "Forbidden: may not be set for init containers without "
                                 "restartPolicy=Always")]


def test_defaults_as_the_apiserver_fills_them():
    s = spec(livenessProbe={"httpGet": {"port": 80}, "timeoutSeconds": 0})
    p.default_probes(s)
    assert s["containers"][0]["livenessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
        "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}


def test_what_fargo_does_not_run_is_refused_by_name():
    c = {"name": "app", "image": "x", "livenessProbe": {"grpc": {"port": 9000}},
         "readinessProbe": {"httpGet": {"port": 80, "host": "example.com"}},
         "startupProbe": {"tcpSocket": {"port": 80}}}
    assert admission.unimplemented({"spec": {"containers": [c]}}) == [
        "spec.containers[0].livenessProbe.grpc",
        "spec.containers[0].readinessProbe.httpGet.host"]
    del c["livenessProbe"], c["readinessProbe"]
    assert admission.unimplemented({"spec": {"containers": [c]}}) == []


def test_probe_parsed_with_defaults():
    probe = p.probe_of("readinessProbe", {"httpGet": {"port": "http", "httpHeaders": [
        {"name": "Host", "value": "svc"}]}})
    assert probe == p.Probe("readinessProbe", p.HttpGet("http", "/", "HTTP",
                                                         (("Host", "svc"),)))
    assert p.resolve_port("http", spec()["containers"][0]) == 8080
    assert p.resolve_port(81, {}) == 81
    with pytest.raises(ValueError, match="couldn't find port: metrics in app"):
        p.resolve_port("metrics", spec()["containers"][0])


def run(probe: p.Probe, results: list[bool]) -> list[bool | None]:
    streak, said = p.Streak(), []
    for r in results:
        streak, out = p.step(streak, r, probe)
        said.append(out)
    return said


def test_thresholds():
    ready = p.Probe("readinessProbe", p.Exec(("x",)), success_threshold=2, failure_threshold=3)
    assert run(ready, [True, True, False, False, True, False, False, False, True, True]) == [
        None, True, None, None, None, None, None, False, None, True]
    live = p.Probe("livenessProbe", p.Exec(("x",)), failure_threshold=2)
    # After the kill the count starts again (the next run is another container).
    assert run(live, [True, False, True, False, False, False]) == [
        True, None, True, None, False, None]


def test_first_due_and_grace():
    probe = p.Probe("livenessProbe", p.Exec(("x",)), initial_delay=5, grace=7)
    assert p.first_due(100.0, probe, 101.0) == 105.0
    assert p.first_due(100.0, probe, 200.0) == 200.0  # a restarted server: at once
    assert p.kill_grace(probe, 30) == 7
    assert p.kill_grace(p.Probe("livenessProbe", p.Exec(("x",))), 3) == 3


def test_container_state():
    plain = {"name": "a"}
    both = {"name": "a", "startupProbe": {}, "readinessProbe": {}}
    assert p.container_state(plain, True, 1.0, None) == (True, True)
    assert p.container_state(plain, False, 1.0, None) == (False, False)
    assert p.container_state(both, True, 1.0, None) == (False, False)
    assert p.container_state(both, True, 1.0, p.ProbeView(1.0, True, True)) == (True, True)
    # A view of an earlier run says nothing of this one.
    assert p.container_state(both, True, 2.0, p.ProbeView(1.0, True, True)) == (False, False)
    # Not started is never ready.
    assert p.container_state(both, True, 1.0, p.ProbeView(1.0, False, True)) == (False, False)


def test_http_request_and_verdicts():
    get = p.HttpGet(8080, "healthz", "HTTP", (("X-Probe", "1"), ("accept", "text/plain")))
    assert p.http_request(get, "10.0.1.5", 8080) == (
        b"GET /healthz HTTP/1.1\r\nHost: 10.0.1.5:8080\r\nUser-Agent: kube-probe/1.32\r\n"
        b"X-Probe: 1\r\naccept: text/plain\r\nConnection: close\r\n\r\n")
    assert p.http_url(get, "10.0.1.5", 8080) == "http://10.0.1.5:8080/healthz"
    assert p.http_verdict(302, b"")[0] and p.http_verdict(200, b"")[0]
    assert p.http_verdict(500, b"") == (False, "HTTP probe failed with statuscode: 500")
    assert p.same_host_redirect("/b", get, "10.0.1.5", 8080) == "/b"
    assert p.same_host_redirect("http://10.0.1.5:8080/c", get, "10.0.1.5", 8080) == "/c"
    assert p.same_host_redirect("http://elsewhere/c", get, "10.0.1.5", 8080) is None


def test_event_words():
    assert p.failed_event("livenessProbe", "x") == "Liveness probe failed: x"
    assert p.killing_event("app", "startupProbe", True) == (
        "Container app failed startup probe, will be restarted")
    assert p.killing_event("app", "livenessProbe", False) == (
        "Container app failed liveness probe")
    assert p.exec_failed(("cat", "/tmp/ok"), 1) == 'command "cat /tmp/ok" exited with code 1'
    assert p.exec_failed(("sleep", "9"), None) == 'command "sleep 9" timed out'
