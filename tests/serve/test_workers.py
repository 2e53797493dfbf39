"""Worker processes: a killed worker is replaced by the supervisor while the others keep serving."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
from serving import auth, base_config

pytestmark = pytest.mark.slow


def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(servers, provider):
    server = servers(base_config(provider), workers=2)
    deadline = time.monotonic() + 30
    while len(server.worker_pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    victim = httpx.get(f"{server.url}/healthz", headers={"connection": "close"}).json()["pid"]
    assert victim in server.worker_pids()
    os.kill(victim, signal.SIGKILL)
    small = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    statuses = []
    while time.monotonic() < deadline:
        try:
            statuses.append(httpx.post(f"{server.url}/v1/chat/completions", json=small, headers=auth("acme"),
                                       timeout=10).status_code)
        except httpx.TransportError:
            statuses.append(0)  # only a request caught on the dying worker's connection
        workers = server.worker_pids() - {victim}
        if len(workers) >= 2 and all(httpx.get(f"{server.url}/healthz").status_code == 200 for _ in range(4)):
            break
        time.sleep(0.1)
    assert victim not in server.worker_pids()
    assert len(server.worker_pids() - {victim}) >= 2
    assert statuses.count(200) >= len(statuses) - 1
