"""Run Debian's docker-registry (the CNCF distribution server) on a loopback address.

This is fargo's stand-in for ECR: a real OCI distribution server, started and stopped by us.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import requests

REGISTRY_BINARY = "/usr/bin/docker-registry"


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a currently unused TCP port (racy, but good enough on loopback)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _config_text(data_dir: Path, addr: str, secret: str) -> str:
    # Written by hand rather than with yaml.dump so the file reads like the Debian sample.
    return (
        "version: 0.1\n"
        "log:\n"
        "  level: warn\n"
        "  accesslog:\n"
        "    disabled: true\n"
        "storage:\n"
        "  filesystem:\n"
        f"    rootdirectory: {data_dir}\n"
        "  delete:\n"
        "    enabled: true\n"
        "http:\n"
        f"  addr: {addr}\n"
        f"  secret: {secret}\n"
        "  headers:\n"
        "    X-Content-Type-Options: [nosniff]\n"
    )


class LocalRegistry:
    """A docker-registry process serving plain HTTP without auth on host:port."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0,
                 extra_config: str = "") -> None:
        self.root = Path(root)
        # Appended YAML, e.g. an `auth:` section for a registry that demands tokens.
        self.extra_config = extra_config
        self.host = host
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self, timeout: float = 10) -> None:
        if self._proc is not None:
            return
        if self.port == 0:
            self.port = free_port(self.host)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        config = self.root / "config.yml"
        # An explicit secret silences the "generated random secret" warning on every start.
        config.write_text(_config_text(self.root / "data", self.address, secrets.token_hex(16))
                          + self.extra_config)
        with open(self.root / "registry.log", "ab") as log:
            self._proc = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,  # keep terminal signals meant for us away from it
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited with {self._proc.returncode}; "
                    f"see {self.root / 'registry.log'}"
                )
            try:
                # 401 is ready too: a registry with auth answers the anonymous probe so.
                if requests.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"docker-registry on {self.address} not ready after {timeout}s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> LocalRegistry:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
