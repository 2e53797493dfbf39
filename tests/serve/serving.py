"""Helpers of the serve tests: the real server in a subprocess (``python -m ctxopt serve``), configs, metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctxopt.serve import LoopbackProvider
from ctxopt.serve.process import ServerProcess

KEYS = {"acme": "sk-acme-test-key", "open": "sk-open-test-key", "closed": "sk-closed-test-key",
        "budgeted": "sk-budgeted-test-key", "downgraded": "sk-downgraded-test-key"}
TIERS = """
[tiny]
limit = 40
reserve = 8
"""


def auth(tenant: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[tenant]}"}


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


def start_server(directory: Path, config: str, *, workers: int = 1, name: str = "serve",
                 args: tuple[str, ...] = ()) -> ServerProcess:
    """``python -m ctxopt serve`` with ``config`` (TOML text) and ``args``, once it answers /healthz."""
    (directory / "tiers.toml").write_text(TIERS, encoding="utf-8")
    path = directory / f"{name}.toml"
    path.write_text(config, encoding="utf-8")
    server = ServerProcess(path, workers=workers, metrics_dir=directory / f"{name}-metrics", log=directory / f"{name}.log",
                           env={"LOOPBACK_KEY": "sk-upstream-secret", "ACME_KEY": KEYS["acme"]}, args=args)
    try:
        return server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
