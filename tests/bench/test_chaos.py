"""The serve benchmark's chaos phases, run quickly (a few seconds each, a few requests a second)
against the real server, a real Redis and the loopback provider: each phase breaks what it claims
to break and reports the outcome the issue asks for."""

from __future__ import annotations

import json
import shutil

import pytest

from ctxopt.bench.chaos import run_phases
from ctxopt.serve import LoopbackProvider

pytestmark = pytest.mark.slow


def bodies(n: int = 12) -> list[bytes]:
    return [json.dumps({"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": f"question {i}: " + "a long history of words " * 40},
        {"role": "assistant", "content": "noted " * 30}, {"role": "user", "content": f"and {i}?"}]}).encode()
        for i in range(n)]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (apt-get install -y redis-server)")
def test_each_chaos_phase_breaks_something_and_the_server_recovers(tmp_path):
    with LoopbackProvider(seed=7) as provider:
        results = run_phases(tmp_path, provider, bodies(), rate=6.0, seconds=6.0, workers=2, failure_rate=1.0, stages={})

    redis = results["redis_stopped"]
    assert redis["requests"] == 36
    assert redis["recovered"] and redis["counts_agree"], redis
    assert redis["double_counted"] == 0 and redis["lost"] == 0
    assert redis["tokens_answered"] > 0 and redis["redis_calls_failed"] > 0  # Redis really was gone
    assert redis["errors"] == 0, redis["failures"]  # the proxy kept serving without Redis

    upstream = results["upstream_failing"]
    assert upstream["requests"] == 36
    assert upstream["errors"] > 0 and upstream["all_failures_clean_5xx"], upstream["failures"]
    assert upstream["circuit_opened"] >= 1 and upstream["recovered"]
    assert upstream["circuit_closed"] >= 1
    assert any("503 upstream_unavailable" in kind for kind in upstream["failures"])  # the open circuit answered

    killed = results["worker_killed"]
    assert killed["requests"] == 36 and killed["replaced"]
    assert killed["connection_errors"] == 0 and killed["all_failures_clean_5xx"], killed["failures"]
