"""The embedding cache: wraps any embedder so each (model, text) is embedded once.

Keys are a hash of the model id and the text. Only misses go to the model, in one batch. Vectors
are stored compactly as float32 bytes behind a small header; an entry that does not decode (a
truncated write, garbage, a length or dimension other than the model's) counts as a miss and is
overwritten. The model's dimension is known from its own vectors once it has embedded something;
before that, from a small record the cache keeps per model id, so a call whose texts all hit is
checked without loading the model (only a cache that lacks the record asks the model).
When the backend is unreachable (Redis down) the embedder computes everything itself and says so
in ``stats.degraded``; the request never fails because of the cache.

>>> from ctxopt.embed import HashEmbedder
>>> emb = CachedEmbedder(HashEmbedder(dim=8), backend="none")
>>> vectors, stats = emb.embed_with_stats(["a cat", "a cat"])
>>> vectors.shape, stats.misses
((2, 8), 2)
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
import threading
from collections.abc import Sequence

import numpy as np

from ctxopt.cache.base import BackendUnavailable, CacheBackend, open_backend
from ctxopt.embed.base import Embedder, _check_texts

MAGIC = b"CXV1"  # format tag: a changed layout gets a new tag and old entries become misses
_HEADER = struct.Struct("<4sI")


@dataclasses.dataclass(frozen=True)
class CacheStats:
    """What one embed call did: cache hits, misses (texts sent to the model), backend trouble."""

    hits: int = 0
    misses: int = 0
    degraded: str | None = None

    def notes(self) -> dict[str, object]:
        """The report notes for this call (``cache_hits``, ``cache_misses``, ``cache_degraded``)."""
        notes: dict[str, object] = {"cache_hits": self.hits, "cache_misses": self.misses}
        if self.degraded:
            notes["cache_degraded"] = self.degraded
        return notes


def cache_key(model_id: str, text: str) -> str:
    """The content key: sha256 of the model id and the text (length-prefixed, so no two pairs collide)."""
    raw = model_id.encode("utf-8")
    return hashlib.sha256(len(raw).to_bytes(4, "little") + raw + text.encode("utf-8")).hexdigest()


def encode_vector(vector: np.ndarray) -> bytes:
    vector = np.ascontiguousarray(vector, dtype="<f4")
    return _HEADER.pack(MAGIC, vector.shape[0]) + vector.tobytes()


def decode_vector(data: bytes, dim: int | None = None) -> np.ndarray | None:
    """The vector in ``data``, or None if the entry is corrupt or of another dimension."""
    if not isinstance(data, bytes) or len(data) < _HEADER.size:
        return None
    magic, size = _HEADER.unpack_from(data)
    if magic != MAGIC or len(data) != _HEADER.size + 4 * size or (dim is not None and size != dim):
        return None
    vector = np.frombuffer(data, dtype="<f4", offset=_HEADER.size).astype(np.float32)
    return vector if np.all(np.isfinite(vector)) else None


def encode_dim(dim: int) -> bytes:
    """The record of a model's dimension (a vector header with no vector)."""
    return _HEADER.pack(MAGIC, dim)


def decode_dim(data: bytes) -> int | None:
    if not isinstance(data, bytes) or len(data) != _HEADER.size:
        return None
    magic, dim = _HEADER.unpack(data)
    return dim if magic == MAGIC and dim > 0 else None


class CachedEmbedder:
    """An :class:`~ctxopt.embed.base.Embedder` that looks each text up in a cache first.

    ``backend`` is "disk" (default: $CTXOPT_CACHE_DIR or ~/.cache/ctxopt), "redis" (``redis_url``
    or $CTXOPT_REDIS_URL), "none", or any :class:`~ctxopt.cache.CacheBackend`. ``hits``,
    ``misses`` and ``model_calls`` count over the embedder's life; :meth:`embed_with_stats`
    returns the counts of one call.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        backend: str | CacheBackend | None = None,
        directory: str | os.PathLike[str] | None = None,
        redis_url: str | None = None,
    ) -> None:
        self.embedder = embedder
        self.backend = open_backend(backend, directory=directory, redis_url=redis_url)
        self.hits = 0
        self.misses = 0
        self.model_calls = 0  # batches sent to the model
        self._dim: int | None = None  # the model's dimension, once its vectors have shown it
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CachedEmbedder({self.embedder!r}, backend={self.backend!r})"

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_with_stats(texts)[0]

    def embed_with_stats(self, texts: Sequence[str]) -> tuple[np.ndarray, CacheStats]:
        texts = _check_texts(texts)
        keys = [cache_key(self.model_id, t) for t in texts]
        raw, degraded = self._lookup(keys)
        recorded = decode_dim(raw.pop(self._dim_key, b""))
        dim = self._dim or recorded
        if dim is None and raw:  # entries, but no word on this model's dimension: ask the model once
            dim = self._dim = int(self.embedder.dim)
        found = {k: v for k, v in ((k, decode_vector(b, dim)) for k, b in raw.items()) if v is not None}
        missing = {k: t for k, t in zip(keys, texts) if k not in found}  # dict: duplicates embed once
        if missing:
            vectors = self._model(list(missing.values()))
            if vectors.shape[1] != dim and found:  # the cache's record was of another model: trust none of it
                found, missing = {}, dict(zip(keys, texts))
                vectors = self._model(list(missing.values()))
            fresh = dict(zip(missing, vectors))
            found.update(fresh)
            entries = {k: encode_vector(v) for k, v in fresh.items()}
            if recorded != vectors.shape[1]:
                entries[self._dim_key] = encode_dim(vectors.shape[1])
            degraded = self._store(entries) or degraded
        if not texts:
            return np.zeros((0, self._dim or self.dim), dtype=np.float32), CacheStats(degraded=degraded)
        out = np.stack([found[k] for k in keys]).astype(np.float32, copy=False)
        stats = CacheStats(hits=len(texts) - sum(1 for k in keys if k in missing), misses=sum(1 for k in keys if k in missing),
                           degraded=degraded)
        with self._lock:
            self.hits += stats.hits
            self.misses += stats.misses
        return out, stats

    @property
    def _dim_key(self) -> str:
        return "dim:" + cache_key(self.model_id, "")

    def _model(self, texts: list[str]) -> np.ndarray:
        vectors = self.embedder.embed(texts)
        with self._lock:
            self.model_calls += 1
            self._dim = int(vectors.shape[1])
        return vectors

    def _lookup(self, keys: list[str]) -> tuple[dict[str, bytes], str | None]:
        if self.backend is None or not keys:
            return {}, None
        try:
            return self.backend.get_many([*dict.fromkeys(keys), self._dim_key]), None
        except BackendUnavailable as exc:
            return {}, str(exc)

    def _store(self, entries: dict[str, bytes]) -> str | None:
        if self.backend is None or not entries:
            return None
        try:
            self.backend.set_many(entries)
        except BackendUnavailable as exc:
            return str(exc)
        return None


_shared: dict[tuple[str | None, str, str | None, str | None], CachedEmbedder] = {}
_shared_lock = threading.Lock()


def get_cached_embedder(
    model: str | None = None,
    *,
    backend: str | None = None,
    directory: str | None = None,
    redis_url: str | None = None,
) -> CachedEmbedder:
    """The process-wide cached embedder for these settings: the model loads once, counters add up."""
    from ctxopt.embed.base import get_embedder

    key = (model, backend or "", directory, redis_url)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = CachedEmbedder(get_embedder(model), backend=backend, directory=directory, redis_url=redis_url)
        return _shared[key]
