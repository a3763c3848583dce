"""The embedded registry is supervised: a killed server's registry is ended by the next start
on the same state dir (or by `fargo purge`), and a registry that cannot serve fails the start
with a reason instead of being announced."""

from __future__ import annotations

import socket

import pytest
import requests

from fargo.agent.registry import LocalRegistry, holds_listener, registry_pids
from fargo.port.errors import AgentError
from tests.conftest import free_port


def serving(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def test_killed_servers_registry_is_replaced_then_purged(fargo_servers):
    port = free_port()
    srv = fargo_servers("--registry", "--registry-port", str(port))
    config = srv.state_dir.absolute() / "registry" / "config.yml"
    [first] = registry_pids(config)
    assert holds_listener(first, port) and serving(port)

    srv.kill()  # SIGKILL: the registry, in a session of its own, lives on with the port
    assert registry_pids(config) == [first]
    srv.start()  # the same state dir: the leftover is ended before the new one binds
    [second] = registry_pids(config)
    assert second != first and holds_listener(second, port) and serving(port)
    text = srv.log.read_text()
    assert f"ended docker-registry pid {first}" in text
    assert text.count(f"local registry (ECR) at 127.0.0.1:{port}") == 2

    srv.kill()
    srv.purge()  # the server is gone; purge ends what it left
    assert registry_pids(config) == []
    assert not serving(port)


def test_registry_that_cannot_bind_fails_the_start(fargo_servers):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        srv = fargo_servers("--registry", "--registry-port", str(port), start=False)
        with pytest.raises(RuntimeError, match="fargo server exited"):
            srv.start()
        assert srv.proc is not None and srv.proc.returncode == 1
        text = srv.log.read_text()
        assert f"the registry on 127.0.0.1:{port} did not start" in text
        assert "local registry (ECR)" not in text
        assert registry_pids(srv.state_dir.absolute() / "registry" / "config.yml") == []


def test_registry_answering_for_someone_else_is_not_ready(tmp_path):
    """Something else on the port answers HTTP like a registry would: still not ours."""
    with LocalRegistry(tmp_path / "other") as other:
        mine = LocalRegistry(tmp_path / "mine", port=other.port)
        with pytest.raises(AgentError, match="did not start"):
            mine.start(timeout=3)
        assert mine.pid is None and registry_pids(mine.config_path) == []
        assert holds_listener(other.pid or 0, other.port)

