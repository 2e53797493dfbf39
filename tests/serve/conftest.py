"""Fixtures of the serve tests: a loopback provider and the real server (see serving.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serving import start_server

from ctxopt.serve import LoopbackProvider
from ctxopt.serve.process import ServerProcess


@pytest.fixture(scope="module")
def provider() -> Iterator[LoopbackProvider]:
    """One provider per test module; each test starts with an empty record."""
    with LoopbackProvider() as p:
        yield p


@pytest.fixture(autouse=True)
def _fresh_provider_record(request: pytest.FixtureRequest) -> Iterator[None]:
    if "provider" in request.fixturenames:
        p = request.getfixturevalue("provider")
        p.received.clear()
        p.headers.clear()
        p.hold = None
    yield


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Starts ``ctxopt serve`` processes for one test; stops them after it."""
    started: list[ServerProcess] = []

    def start(config: str, **options: object) -> ServerProcess:
        server = start_server(tmp_path, config, **options)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
