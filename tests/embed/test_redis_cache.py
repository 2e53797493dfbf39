"""The Redis backend against a real redis-server: sharing, and outages that degrade, never fail."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ctxopt.cache import RedisBackend
from ctxopt.embed import CachedEmbedder, HashEmbedder

pytestmark = pytest.mark.redis


class CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__(16)
        self.texts = 0

    def embed(self, texts):
        self.texts += len(texts)
        return super().embed(texts)


def test_two_agent_instances_share_one_redis_cache(redis_server):
    first = CachedEmbedder(CountingEmbedder(), backend=RedisBackend(redis_server.url))
    expected = first.embed(["shared fact", "another"])
    inner = CountingEmbedder()
    second = CachedEmbedder(inner, backend=RedisBackend(redis_server.url))
    vectors, stats = second.embed_with_stats(["another", "shared fact"])
    assert inner.texts == 0 and stats.hits == 2
    np.testing.assert_array_equal(vectors, expected[[1, 0]])


def test_redis_url_from_the_environment_selects_the_redis_backend(redis_server, monkeypatch):
    monkeypatch.setenv("CTXOPT_REDIS_URL", redis_server.url)
    emb = CachedEmbedder(HashEmbedder(8))
    assert emb.backend.name == "redis"
    emb.embed(["x"])
    assert emb.embed_with_stats(["x"])[1].hits == 1


def test_a_stopped_redis_falls_back_to_computing_and_says_so(redis_server):
    inner = CountingEmbedder()
    emb = CachedEmbedder(inner, backend=RedisBackend(redis_server.url))
    emb.embed(["before the outage"])
    redis_server.stop()
    started = time.monotonic()
    vectors, stats = emb.embed_with_stats(["before the outage", "during the outage"])
    assert time.monotonic() - started < 3, "an outage must not hang the request"
    assert stats.degraded and stats.degraded.startswith("redis unavailable")
    assert stats.misses == 2 and vectors.shape == (2, 16)
    np.testing.assert_allclose(vectors, HashEmbedder(16).embed(["before the outage", "during the outage"]), rtol=1e-6)
    assert stats.notes()["cache_degraded"] == stats.degraded


def test_an_unreachable_redis_fails_fast_and_then_skips_the_timeout():
    emb = CachedEmbedder(HashEmbedder(8), backend=RedisBackend("redis://127.0.0.1:9/0", timeout=0.2))
    started = time.monotonic()
    for _ in range(5):
        _, stats = emb.embed_with_stats(["q"])
        assert stats.degraded
    assert time.monotonic() - started < 2
