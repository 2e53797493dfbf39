"""The distractor corpus that grows SciFact for the retrieval-at-scale benchmark."""

from __future__ import annotations

from ctxopt.bench.data import load_beir
from ctxopt.bench.distractors import distractors, real_count


def test_real_public_text_comes_first_then_a_labelled_synthetic_set():
    docs = list(distractors(real_count() + 50))
    sources = [d.metadata["source"] for d in docs]
    assert set(sources[:real_count()]) == {"hotpotqa", "locomo"} and set(sources[real_count():]) == {"synthetic"}
    assert all(d.id.startswith("synthetic:") for d in docs[real_count():])
    assert len({d.id for d in docs}) == len(docs)
    synthetic = [d.text for d in docs[real_count():]]
    assert len(set(synthetic)) == len(synthetic)  # (real chat repeats itself: "Take care, bye!")


def test_a_smaller_corpus_is_a_prefix_of_a_larger_one_so_the_cache_serves_every_size():
    small, large = list(distractors(6_000)), list(distractors(9_000))
    assert [d.text for d in small] == [d.text for d in large[:6_000]]


def test_no_distractor_repeats_scifact_text():
    corpus, _, _ = load_beir("scifact", "test")
    scifact = {r["text"][:80] for r in corpus.values()}
    assert not any(d.text[:80] in scifact for d in distractors(8_000))
