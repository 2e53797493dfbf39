"""One tenant's data never reaches another tenant's prompt, and one model's cached embedding is
never served for another model, also when many threads share the store and the cache."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ctxopt import Pipeline
from ctxopt.embed import CachedEmbedder, HashEmbedder
from ctxopt.stages.retrieve import Retrieve

TENANTS = ("acme", "globex", "initech")
TOPICS = ["refund policy for damaged goods", "password reset steps for the admin console",
          "holiday schedule for the support team", "pricing of the enterprise plan",
          "security incident response contacts", "how to export invoices as CSV"]
QUESTIONS = [f"What is our {t}?" for t in TOPICS] + ["refund", "password", "the of and", "invoices CSV export"]


@pytest.fixture(scope="module")
def shared_kb(tmp_path_factory, real_embedder):
    """One knowledge base on disk holding every tenant's documents; the texts are the same for all
    tenants except for the tenant's name, so only the filter can keep them apart."""
    from ctxopt.embed.cache import CachedEmbedder as Cached
    from ctxopt.ingest import Document
    from ctxopt.kb import KnowledgeBase
    from ctxopt.stores.qdrant import open_store

    path = str(tmp_path_factory.mktemp("isolation") / "kb")
    docs = [Document(id=f"{tenant}-{n}", title=topic.title(), metadata={"tenant": tenant},
                     text=f"{tenant.capitalize()} internal: the {topic} is described in document {n}.")
            for tenant in TENANTS for n, topic in enumerate(TOPICS)]
    kb = KnowledgeBase("support", store=open_store(path=path), embedder=Cached(real_embedder, backend="none"))
    kb.ingest(docs, progress=False)
    yield path
    open_store(path=path).close()


def _retrieved(result) -> list[str]:
    return [item.metadata["doc_id"] for item in result.context.items if item.kind == "retrieved"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_a_tenant_filter_never_returns_another_tenants_chunk_under_concurrency(shared_kb, mode):
    pipelines = {t: Pipeline(stages=[Retrieve(kb="support", path=shared_kb, mode=mode, k=8, cache="none",
                                              filters={"tenant": t})]) for t in TENANTS}
    requests = [(t, q) for t in TENANTS for q in QUESTIONS] * 3
    random.Random(7).shuffle(requests)

    def ask(request):
        tenant, question = request
        result = pipelines[tenant].optimize([{"role": "user", "content": question}], tier="pro")
        return tenant, _retrieved(result)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, requests))
    assert sum(len(docs) for _, docs in answers) > 0  # retrieval really ran
    leaks = [(tenant, doc) for tenant, docs in answers for doc in docs if not doc.startswith(tenant + "-")]
    assert leaks == []
    for _, docs in answers:  # each tenant sees at most its own six documents
        assert len(docs) <= len(TOPICS)


@pytest.mark.slow
def test_a_tenant_with_no_documents_gets_no_context(shared_kb):
    result = Pipeline(stages=[Retrieve(kb="support", path=shared_kb, k=8, cache="none",
                                       filters={"tenant": "umbrella"})]).optimize(
        [{"role": "user", "content": "What is our refund policy?"}], tier="pro")
    assert _retrieved(result) == []


class SaltedHashEmbedder(HashEmbedder):
    """Another "model" with the same dimension as HashEmbedder(64) but different vectors: the case
    where a cache keyed by text alone would silently serve the wrong vectors."""

    @property
    def model_id(self) -> str:
        return f"salted-hash-{self.dim}"

    def embed(self, texts):
        return super().embed([f"salt {t} salt" for t in texts])[:, ::-1].copy()


def _backends(request, tmp_path):
    from ctxopt.cache import DiskBackend, RedisBackend

    if request.param == "disk":
        return lambda: DiskBackend(tmp_path / "cache")
    server = request.getfixturevalue("redis_server")
    return lambda: RedisBackend(server.url)


@pytest.fixture(params=["disk", pytest.param("redis", marks=pytest.mark.redis)])
def shared_backend(request, tmp_path):
    """A factory of backend instances that all point at the same real cache."""
    return _backends(request, tmp_path)


def test_the_cache_never_serves_one_models_embedding_for_another_under_concurrency(shared_backend):
    models = [HashEmbedder(64), SaltedHashEmbedder(64), HashEmbedder(32)]
    cached = [CachedEmbedder(m, backend=shared_backend()) for m in models]  # one shared store, many clients
    texts = [f"fact number {n} about topic {n % 7}" for n in range(60)]
    truth = {(i, t): v for i, m in enumerate(models) for t, v in zip(texts, m.embed(texts))}
    assert not np.allclose(truth[0, texts[0]], truth[1, texts[0]])
    rng = random.Random(3)
    jobs = [(rng.randrange(len(models)), rng.sample(texts, 5)) for _ in range(600)]

    def embed(job):
        index, batch = job
        vectors, stats = cached[index].embed_with_stats(batch)
        return index, batch, vectors, stats

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(embed, jobs))
    for index, batch, vectors, stats in outcomes:
        assert stats.degraded is None
        for text, vector in zip(batch, vectors):
            np.testing.assert_allclose(vector, truth[index, text], rtol=1e-6, atol=1e-7)
    assert sum(s.hits for *_, s in outcomes) > 0  # the shared cache was really hit
