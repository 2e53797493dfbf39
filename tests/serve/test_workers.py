"""Worker processes: a killed worker is replaced by the supervisor while the others keep serving."""

from __future__ import annotations

import asyncio
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


def test_a_client_pool_of_keep_alive_connections_is_served_by_every_worker(servers, provider):
    """Before: one socket shared by the workers let the first awake one accept a whole burst of
    pooled connections (400 of 400 requests on one of 2 workers), so a second process bought
    nothing. Each worker now listens on its own SO_REUSEPORT socket and the kernel spreads
    connections by address hash: 32 connections all on one of 2 sockets has odds of 2 in 4 billion."""
    server = servers(base_config(provider), workers=2)
    deadline = time.monotonic() + 30
    while len(server.worker_pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)

    async def burst() -> dict[int, int]:  # what an agent SDK's pool does: connections opened at once, kept
        served: dict[int, int] = {}
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=32)) as http:
            async def client() -> None:
                for _ in range(5):
                    pid = (await http.get(f"{server.url}/healthz")).json()["pid"]
                    served[pid] = served.get(pid, 0) + 1
            await asyncio.gather(*(client() for _ in range(32)))
        return served

    served = asyncio.run(burst())
    assert set(served) == server.worker_pids()  # every worker took some of the connections
    assert min(served.values()) >= 16  # and a real share of them, not one stray connection
