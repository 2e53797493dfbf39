"""The serve benchmark's load drivers, against the loopback provider: they count every request and
every failure, and the open loop sends at its rate whatever the latency."""

from __future__ import annotations

import asyncio
import json

from ctxopt.bench.serve import closed_loop, open_loop, warm
from ctxopt.serve import LoopbackProvider

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()


def test_the_closed_loop_counts_requests_and_failures():
    with LoopbackProvider(failure_rate=0.5, seed=3) as provider:
        stats = asyncio.run(closed_loop(f"{provider.base_url}/chat/completions", [BODY], clients=4, seconds=0.5))
        assert stats["requests"] == len(provider.received) > 0
        assert 0 < stats["errors"] < stats["requests"]
        assert stats["p50_ms"] <= stats["p99_ms"]


def test_the_open_loop_sends_at_its_rate_even_when_answers_are_slow():
    with LoopbackProvider(latency=0.3) as provider:
        stats = asyncio.run(open_loop(f"{provider.base_url}/chat/completions", [BODY], rate=20, seconds=0.5))
        assert stats["requests"] == len(provider.received) == 10
        assert stats["errors"] == 0 and stats["p50_ms"] >= 300


def test_warm_up_sends_every_body_exactly_once():
    bodies = [json.dumps({"model": "m", "messages": [{"role": "user", "content": str(i)}]}).encode() for i in range(7)]
    with LoopbackProvider() as provider:
        assert asyncio.run(warm(f"{provider.base_url}/chat/completions", bodies, concurrency=3)) == 0
        assert sorted(r["messages"][0]["content"] for r in provider.received) == [str(i) for i in range(7)]
