"""``optimize`` is safe from many threads: shared tokenizer, embedding model, caches and store give
every thread exactly the answer it would get alone."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from ctxopt import Pipeline, Tier
from ctxopt.embed import CachedEmbedder
from ctxopt.stages import STAGES

TOPICS = ["the garden", "a trip to Lisbon", "the new puppy", "painting classes", "a job interview",
          "the marathon", "grandma's recipe", "a broken laptop"]


def conversation(turns: int) -> list[dict[str, str]]:
    rng = random.Random(11)
    history = [{"role": "system", "content": "You are a helpful friend. Answer from the conversation."}]
    for n in range(turns):
        topic = rng.choice(TOPICS)
        role = "user" if n % 2 == 0 else "assistant"
        history.append({"role": role, "content": f"Turn {n}: I keep thinking about {topic}; detail {rng.randint(1, 999)}."})
    return history


QUESTIONS = [f"What did we say about {t}?" for t in TOPICS] + ["Which detail numbers came up?", "Any plans?"]


@pytest.fixture(scope="module")
def full_pipeline(tmp_path_factory, real_embedder):
    """Retrieval from a shared on-disk store, history pruning, summary and fit, when registered."""
    from ctxopt.ingest import Document
    from ctxopt.kb import KnowledgeBase
    from ctxopt.stages.retrieve import Retrieve
    from ctxopt.stores.qdrant import open_store

    path = str(tmp_path_factory.mktemp("concurrency") / "kb")
    kb = KnowledgeBase("notes", store=open_store(path=path), embedder=CachedEmbedder(real_embedder, backend="none"))
    kb.ingest([Document(id=f"note-{n}", title=t, text=f"Notes on {t}: entry {n}.") for n, t in enumerate(TOPICS)],
              progress=False)
    cache_dir = str(tmp_path_factory.mktemp("concurrency-cache"))
    stages = [Retrieve(kb="notes", path=path, k=3, cache="disk", cache_dir=cache_dir)]
    if "prune_history" in STAGES:
        stages.append(STAGES["prune_history"]())
    if "summarize" in STAGES:
        stages.append(STAGES["summarize"](keep_turns=True))
    yield Pipeline(stages=stages)
    open_store(path=path).close()


@pytest.mark.slow
def test_optimize_from_many_threads_gives_each_request_its_single_thread_answer(full_pipeline):
    history = conversation(160)
    tier = Tier(2500, reserve=300, retrieved=0.2, summary=0.15)

    def request(question: str):
        result = full_pipeline.optimize([*history, {"role": "user", "content": question}], tier=tier)
        return question, result

    alone = {q: request(q)[1] for q in QUESTIONS}  # sequential reference (also warms the caches)
    assert all(r.report.tokens_after <= tier.budget for r in alone.values())
    assert any(s.dropped for r in alone.values() for s in r.report.stages)  # the fit really had to cut
    jobs = QUESTIONS * 6
    random.Random(5).shuffle(jobs)
    with ThreadPoolExecutor(max_workers=12) as pool:
        together = list(pool.map(request, jobs))
    for question, result in together:
        assert result.messages == alone[question].messages, question
        assert result.report.tokens_after == alone[question].report.tokens_after


@pytest.mark.slow
def test_concurrent_requests_count_the_shared_cache_without_losing_updates(real_embedder, tmp_path):
    cached = CachedEmbedder(real_embedder, backend="disk", directory=tmp_path / "cache")
    texts = [f"sentence {n} about {TOPICS[n % len(TOPICS)]}" for n in range(40)]

    def embed(n: int):
        return cached.embed_with_stats(texts[n % 40: n % 40 + 3])[1]

    with ThreadPoolExecutor(max_workers=8) as pool:
        stats = list(pool.map(embed, range(200)))
    assert all(s.degraded is None for s in stats)
    assert cached.hits + cached.misses == sum(s.hits + s.misses for s in stats) == sum(
        len(texts[n % 40: n % 40 + 3]) for n in range(200))
    again = cached.embed_with_stats(texts)[1]
    assert again.misses == 0  # every text was stored once, whatever thread wrote it
