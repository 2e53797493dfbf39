"""The embedding cache: content keys, compact entries, misses only to the model, corrupt = miss."""

from __future__ import annotations

import numpy as np
import pytest

from ctxopt.cache import DiskBackend
from ctxopt.embed import CachedEmbedder, HashEmbedder
from ctxopt.embed.cache import MAGIC, cache_key, decode_vector, encode_vector


class CountingEmbedder(HashEmbedder):
    """HashEmbedder that records each batch it is asked to embed."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__(dim)
        self.batches: list[list[str]] = []

    def embed(self, texts):
        self.batches.append(list(texts))
        return super().embed(texts)


@pytest.fixture
def backend(tmp_path):
    b = DiskBackend(tmp_path / "cache")
    yield b
    b.close()


def test_only_misses_reach_the_model_in_one_batch(backend):
    inner = CountingEmbedder()
    emb = CachedEmbedder(inner, backend=backend)
    emb.embed(["alpha", "beta"])
    vectors, stats = emb.embed_with_stats(["alpha", "gamma", "delta", "beta"])
    assert inner.batches[-1] == ["gamma", "delta"]
    assert (stats.hits, stats.misses) == (2, 2)
    np.testing.assert_allclose(vectors, inner.embed(["alpha", "gamma", "delta", "beta"]), rtol=1e-6)


def test_a_second_embedder_on_the_same_directory_makes_no_model_calls(tmp_path):
    first = CachedEmbedder(CountingEmbedder(), backend=DiskBackend(tmp_path / "c"))
    expected = first.embed(["one", "two", "three"])
    inner = CountingEmbedder()
    second = CachedEmbedder(inner, backend=DiskBackend(tmp_path / "c"))
    vectors, stats = second.embed_with_stats(["three", "one", "two"])
    assert inner.batches == [] and stats.hits == 3 and stats.misses == 0
    np.testing.assert_array_equal(vectors, expected[[2, 0, 1]])


def test_repeated_texts_in_one_call_are_embedded_once(backend):
    inner = CountingEmbedder()
    _, stats = CachedEmbedder(inner, backend=backend).embed_with_stats(["x", "x", "y"])
    assert inner.batches == [["x", "y"]] and stats.misses == 3  # misses count texts asked for


def test_the_key_depends_on_both_model_and_text():
    assert cache_key("m1", "text") != cache_key("m2", "text")
    assert cache_key("m1", "text") != cache_key("m1", "text ")
    assert cache_key("ab", "c") != cache_key("a", "bc")


def test_vectors_are_stored_as_float32_bytes_behind_a_header():
    vector = np.arange(8, dtype=np.float32) / 10
    data = encode_vector(vector)
    assert data.startswith(MAGIC) and len(data) == 8 + 4 * 8
    np.testing.assert_array_equal(decode_vector(data), vector)


@pytest.mark.parametrize("garbage", [b"", b"junk", MAGIC + b"\x10\x00\x00\x00" + b"\x00" * 12,
                                     encode_vector(np.array([np.nan, 1.0], dtype=np.float32))])
def test_a_corrupt_entry_is_a_miss_and_is_rewritten(backend, garbage):
    inner = CountingEmbedder()
    emb = CachedEmbedder(inner, backend=backend)
    backend.set_many({cache_key(inner.model_id, "hello"): garbage})
    vectors, stats = emb.embed_with_stats(["hello"])
    assert stats.misses == 1 and inner.batches == [["hello"]]
    np.testing.assert_allclose(vectors, inner.embed(["hello"]), rtol=1e-6)
    assert decode_vector(backend.get_many([cache_key(inner.model_id, "hello")])[cache_key(inner.model_id, "hello")]) is not None


def test_a_cached_vector_of_another_dimension_is_not_trusted(backend):
    small, big = CountingEmbedder(dim=4), CountingEmbedder(dim=16)
    backend.set_many({cache_key(big.model_id, "a"): encode_vector(np.ones(4, dtype=np.float32))})
    CachedEmbedder(big, backend=backend).embed(["b"])  # fills "b" with a 16-dim vector
    vectors = CachedEmbedder(big, backend=backend).embed(["a", "b"])
    assert vectors.shape == (2, 16) and small.batches == []


def test_the_disk_cache_directory_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXOPT_CACHE_DIR", str(tmp_path / "envcache"))
    emb = CachedEmbedder(HashEmbedder(8))
    emb.embed(["stored"])
    assert (tmp_path / "envcache" / "embeddings").is_dir()
    emb.backend.close()


def test_no_cache_backend_still_embeds_and_counts_misses():
    vectors, stats = CachedEmbedder(HashEmbedder(8), backend="none").embed_with_stats(["a", "b"])
    assert vectors.shape == (2, 8) and (stats.hits, stats.misses, stats.degraded) == (0, 2, None)


class DimCountingEmbedder(CountingEmbedder):
    """Counts how often its dimension is asked: for a real model, asking loads it (seconds)."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__(dim)
        self.dim_asked = 0

    @property
    def dim(self) -> int:
        self.dim_asked += 1
        return self._dim


WRONG_SHAPES = {
    "an 8-dimensional vector": encode_vector(np.ones(8, dtype=np.float32)),
    "float64 bytes behind a float32 header": MAGIC + (64).to_bytes(4, "little") + np.ones(64).tobytes(),
    "a header longer than its data": MAGIC + (64).to_bytes(4, "little") + np.ones(32, dtype=np.float32).tobytes(),
}


@pytest.mark.parametrize("entry", list(WRONG_SHAPES.values()), ids=list(WRONG_SHAPES))
def test_an_entry_of_the_wrong_shape_is_a_miss_even_when_every_text_hits(backend, entry):
    inner = DimCountingEmbedder(dim=64)
    backend.set_many({cache_key(inner.model_id, "a"): entry})
    vectors, stats = CachedEmbedder(inner, backend=backend).embed_with_stats(["a"])
    assert vectors.shape == (1, 64) and (stats.hits, stats.misses) == (0, 1) and inner.batches == [["a"]]
    np.testing.assert_allclose(vectors, HashEmbedder(64).embed(["a"]), rtol=1e-6)
    again, stats = CachedEmbedder(inner, backend=backend).embed_with_stats(["a"])  # repaired in place
    assert stats.hits == 1 and again.shape == (1, 64)


def test_only_the_entries_of_the_wrong_dimension_are_embedded_again(backend):
    inner = DimCountingEmbedder(dim=64)
    emb = CachedEmbedder(inner, backend=backend)
    emb.embed(["good one", "good two"])
    backend.set_many({cache_key(inner.model_id, "bad"): encode_vector(np.ones(8, dtype=np.float32))})
    vectors, stats = CachedEmbedder(inner, backend=backend).embed_with_stats(["good one", "bad", "good two"])
    assert vectors.shape == (3, 64) and inner.batches[-1] == ["bad"] and (stats.hits, stats.misses) == (2, 1)


def test_a_warm_cache_checks_dimensions_without_asking_the_model(backend):
    CachedEmbedder(DimCountingEmbedder(dim=64), backend=backend).embed(["a", "b"])
    fresh = DimCountingEmbedder(dim=64)  # a new process: for a real model, asking its dimension loads it
    vectors, stats = CachedEmbedder(fresh, backend=backend).embed_with_stats(["b", "a"])
    assert stats.hits == 2 and vectors.shape == (2, 64) and fresh.dim_asked == 0 and fresh.batches == []


MISTYPED_REDIS_URLS = {
    "http scheme": ("http://127.0.0.1:6379/0", "scheme 'http'"),
    "no scheme": ("127.0.0.1:6379", "scheme"),
    "a port with a letter": ("redis://127.0.0.1:6379x/0", "port could not be cast"),
    "a port out of range": ("redis://127.0.0.1:70000/0", "port out of range"),
    "a database that is not a number": ("redis://127.0.0.1:6379/cache", "database 'cache'"),
    "a password in a bad URL": ("http://:s3cret@127.0.0.1:6379/0", "scheme 'http'"),
}


@pytest.mark.parametrize("url, fragment", list(MISTYPED_REDIS_URLS.values()), ids=list(MISTYPED_REDIS_URLS))
def test_a_mistyped_redis_url_degrades_to_computing_and_says_what_is_wrong(url, fragment):
    for _ in range(2):  # every call says so: a typo does not fix itself
        vectors, stats = CachedEmbedder(HashEmbedder(8), redis_url=url).embed_with_stats(["x", "y"])
        assert vectors.shape == (2, 8) and stats.misses == 2
        assert fragment in stats.degraded.lower() and "s3cret" not in stats.degraded
