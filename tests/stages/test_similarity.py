"""The embedding lookups of the pruning stages: a degraded cache is reported, never hidden."""

from __future__ import annotations

import os

import pytest

from ctxopt.cache import DiskBackend
from ctxopt.embed import CachedEmbedder, HashEmbedder
from ctxopt.stages import PruneChunks, PruneHistory, PruneToolOutput
from ctxopt.stages.similarity import clear_lru
from ctxopt.types import Context, Item

LOG = "\n".join(f"2026-11-20T14:00:{k:02}Z INFO api request_id=r{k} latency_ms={k * 7} ok" for k in range(40))


def _history(topic: str) -> Context:
    turns = [{"role": "user" if n % 2 == 0 else "assistant", "content": f"turn {n} about {topic} number {n}"}
             for n in range(12)]
    return Context.from_messages([*turns, {"role": "user", "content": f"what about {topic}?"}])


def _chunks(topic: str) -> Context:
    items = tuple(Item(id=f"doc:{n}", kind="retrieved", text=f"{topic} fact {n}. Another {topic} sentence {n}.")
                  for n in range(3))
    return Context(query=f"which {topic} fact?", items=items)


def _tool_output(topic: str) -> Context:
    call = {"id": "c1", "type": "function", "function": {"name": "fetch_logs", "arguments": "{}"}}
    return Context.from_messages([
        {"role": "user", "content": "Pull the logs."},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": LOG + f"\nERROR {topic} failed"},
        {"role": "user", "content": f"Why did {topic} fail?"}])


STAGES = {
    "prune_history": (lambda emb: PruneHistory(keep_last=2, embedder=emb), _history),
    "prune_chunks": (lambda emb: PruneChunks(top_k=2, embedder=emb), _chunks),
    "prune_tool_output": (lambda emb: PruneToolOutput(max_tokens=60, embedder=emb), _tool_output),
}


@pytest.fixture
def corrupt_cache(tmp_path):
    directory = tmp_path / "cache"
    directory.mkdir()
    (directory / "cache.db").write_bytes(os.urandom(64 * 1024))  # garbage where SQLite's file should be
    backend = DiskBackend(directory)
    yield CachedEmbedder(HashEmbedder(), backend=backend)
    backend.close()


@pytest.mark.parametrize("stage_name", list(STAGES))
def test_a_corrupt_cache_is_reported_by_every_pruning_stage(corrupt_cache, stage_name):
    make, context = STAGES[stage_name]
    clear_lru()
    for topic in ("billing", "shipping"):  # every request that recomputes says why
        notes = dict(make(corrupt_cache).run(context(topic)).notes)
        assert "corrupt" in notes["cache_degraded"] and notes["cache_misses"] > 0, notes
    # The same texts again come from the in-process vectors: nothing is recomputed, nothing to report.
    notes = dict(make(corrupt_cache).run(context("shipping")).notes)
    assert notes["cache_misses"] == 0 and "cache_degraded" not in notes, notes


@pytest.mark.parametrize("stage_name", list(STAGES))
def test_a_mistyped_redis_url_degrades_the_pruning_stages_instead_of_failing(stage_name):
    make, context = STAGES[stage_name]
    clear_lru()
    embedder = CachedEmbedder(HashEmbedder(), redis_url="http://127.0.0.1:6379/0")  # wrong scheme
    notes = dict(make(embedder).run(context("refunds")).notes)
    assert "scheme 'http'" in notes["cache_degraded"] and notes["cache_misses"] > 0, notes
