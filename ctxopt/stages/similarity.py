"""Embedding lookups shared by the pruning and summary stages.

Stages take an optional ``embedder`` field; ``None`` means the process-wide cached embedder
(``ctxopt.embed.cache.get_cached_embedder``), resolved on first use so constructing a stage never
loads a model. In front of it sits an in-process LRU of vectors
keyed by (model id, text): a growing conversation re-sends the same old turns every request, and a
dict lookup is far cheaper than even a disk-cache read. Each call embeds every distinct text at
most once, in one batch, and returns the notes the report shows (``cache_hits``/``cache_misses``,
and ``cache_degraded`` when the embedding cache could not be used, so a request that recomputes
embeddings because the cache is down or corrupt says so, as retrieve and ingest do).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

LRU_SIZE = 50_000  # vectors; 384 floats each, so about 75 MB at most

_lru: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_lru_lock = threading.Lock()


def resolve_embedder(embedder: Any = None) -> Any:
    """``embedder`` if given, else the shared cached embedder (the model loads on first embed)."""
    if embedder is not None:
        return embedder
    from ctxopt.embed.cache import get_cached_embedder

    return get_cached_embedder()


def embed(embedder: Any, texts: Sequence[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """One row per text (duplicates share a row) and the report notes: ``cache_hits``,
    ``cache_misses`` and, when the embedder's cache failed, ``cache_degraded`` (why).

    Hits count texts served by the in-process LRU or the embedder's own cache; misses count texts
    the model had to embed.
    """
    model_id = str(getattr(embedder, "model_id", type(embedder).__name__))
    unique = list(dict.fromkeys(texts))
    found: dict[str, np.ndarray] = {}
    with _lru_lock:
        for text in unique:
            vector = _lru.get((model_id, text))
            if vector is not None:
                _lru.move_to_end((model_id, text))
                found[text] = vector
    missing = [t for t in unique if t not in found]
    hits, misses, degraded = len(found), 0, None
    if missing:
        with_stats = getattr(embedder, "embed_with_stats", None)
        if with_stats is not None:
            vectors, stats = with_stats(missing)
            hits, misses, degraded = hits + stats.hits, stats.misses, stats.degraded
        else:
            vectors = embedder.embed(missing)
            misses = len(missing)
        vectors = np.asarray(vectors, dtype=np.float32)
        with _lru_lock:
            for text, vector in zip(missing, vectors):
                found[text] = vector
                _lru[(model_id, text)] = vector
            while len(_lru) > LRU_SIZE:
                _lru.popitem(last=False)
    notes: dict[str, Any] = {"cache_hits": hits, "cache_misses": misses}
    if degraded:
        notes["cache_degraded"] = degraded
    if not texts:
        return np.zeros((0, 0), dtype=np.float32), notes
    return np.stack([found[t] for t in texts]), notes


def clear_lru() -> None:
    """Forget the in-process vectors (tests and cold-cache benchmarks use this)."""
    with _lru_lock:
        _lru.clear()
