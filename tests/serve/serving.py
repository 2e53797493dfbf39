"""Helpers of the serve tests: the real server in a subprocess (``python -m ctxopt serve``), configs, metrics."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ctxopt.serve import LoopbackProvider

KEYS = {"acme": "sk-acme-test-key", "open": "sk-open-test-key", "closed": "sk-closed-test-key",
        "budgeted": "sk-budgeted-test-key", "downgraded": "sk-downgraded-test-key"}
TIERS = """
[tiny]
limit = 40
reserve = 8
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def auth(tenant: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[tenant]}"}


class RunningServer:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def base_config(provider: LoopbackProvider, *, server: str = "", tenants: str = "", upstream: str = "") -> str:
    from ctxopt.serve import hash_key

    return f"""
tiers = "tiers.toml"

[server]
{server}

[upstreams.openai]
base_url = "{provider.base_url}"
api_key_env = "LOOPBACK_KEY"
timeout = 2.0
{upstream}

[upstreams.anthropic]
base_url = "{provider.base_url}"
api_key_env = "LOOPBACK_KEY"

[tenants.acme]
key_envs = ["ACME_KEY"]
tier = "free"
filters = {{ tenant = "acme" }}

[tenants.open]
keys_sha256 = ["{hash_key(KEYS['open'])}"]
tier = "tiny"
on_error = "open"

[tenants.closed]
keys_sha256 = ["{hash_key(KEYS['closed'])}"]
tier = "tiny"
on_error = "closed"
{tenants}
"""


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``, from /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def start_server(directory: Path, config: str, *, workers: int = 1, name: str = "serve") -> RunningServer:
    """``python -m ctxopt serve`` with ``config`` (TOML text), once a worker answers /healthz."""
    (directory / "tiers.toml").write_text(TIERS, encoding="utf-8")
    path = directory / f"{name}.toml"
    path.write_text(config, encoding="utf-8")
    port = free_port()
    metrics_dir = directory / f"{name}-metrics"
    metrics_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "LOOPBACK_KEY": "sk-upstream-secret",
           "ACME_KEY": KEYS["acme"]}
    log = directory / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "ctxopt", "serve", "--config", str(path), "--port", str(port),
                                    "--workers", str(workers), "--log-level", "warning"],
                                   stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = RunningServer(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"ctxopt serve did not start:\n{log.read_text(errors='replace')}")
        try:
            httpx.get(f"{server.url}/healthz", timeout=1).raise_for_status()
            return server
        except httpx.HTTPError:
            time.sleep(0.1)
