"""The scale benchmark's own arithmetic: HNSW recall against exact search, and its acceptance lines."""

from __future__ import annotations

from ctxopt.bench.retrieval_scale import _acceptance, _overlap_at_10


def test_hnsw_recall_is_the_share_of_the_exact_top_10_the_index_also_returns():
    exact = {"q1": [(f"c{i}", "d") for i in range(10)], "q2": [("a", "d"), ("b", "d")]}
    approx = {"q1": [(f"c{i}", "d") for i in range(1, 11)], "q2": [("b", "d"), ("a", "d")]}
    assert _overlap_at_10(approx, exact) == (0.9 + 1.0) / 2


def row(chunks: int, p95: float, approx: float, exact: float, recall: float = 0.99) -> dict:
    modes = {m: {"ndcg@10": approx, "p95_ms": p95, "hnsw_recall@10": recall} for m in ("dense", "hybrid")}
    modes.update({f"{m}_exact": {"ndcg@10": exact, "p95_ms": p95 * 2} for m in ("dense", "hybrid")})
    return {"store": "edge", "chunks": chunks, "ingest_seconds": chunks / 1000, "cache_misses": 0, "results": modes}


def test_acceptance_compares_the_drop_with_distractors_against_exact_search():
    ok = _acceptance([row(5_490, 2.0, 0.70, 0.70), row(100_000, 6.0, 0.66, 0.66, recall=0.985)])
    assert ok["p95_ratio_100k_to_5k"] == 3.0 and ok["ndcg_drop_within_exact"] and ok["min_hnsw_recall@10"] == 0.985
    worse = _acceptance([row(5_490, 2.0, 0.70, 0.70), row(100_000, 6.0, 0.60, 0.66)])
    assert not worse["ndcg_drop_within_exact"]
