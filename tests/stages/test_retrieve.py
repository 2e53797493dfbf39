"""The retrieve stage: hits before the latest user message, plain-data config, errors by policy."""

from __future__ import annotations

import pytest

from ctxopt import Pipeline, StoreError
from ctxopt.embed import CachedEmbedder, HashEmbedder
from ctxopt.ingest import Document
from ctxopt.kb import KnowledgeBase
from ctxopt.stages import STAGES, check_stage
from ctxopt.stages.retrieve import Retrieve
from ctxopt.stores import open_store
from ctxopt.types import Context

DOCS = [Document(id="sol", title="Mars day", text="A Martian solar day, or sol, lasts 24 hours 39 minutes."),
        Document(id="venus", title="Venus", text="Venus rotates slowly; a day on Venus is longer than its year."),
        Document(id="bread", title="Bread", text="Sourdough rises because of wild yeast.", metadata={"tenant": "bakery"})]
MESSAGES = [{"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "How long is a day on Mars?"}]


@pytest.fixture
def kb_path(tmp_path, monkeypatch):
    """A knowledge base on disk, and the stage's embedder swapped for the hash test double."""
    import ctxopt.embed.cache as cache

    embedder = CachedEmbedder(HashEmbedder(128), backend="none")
    monkeypatch.setattr(cache, "get_cached_embedder", lambda *a, **k: embedder)
    path = str(tmp_path / "kb")
    KnowledgeBase("space", store=open_store(path=path), embedder=embedder).ingest(DOCS, progress=False)
    return path


def test_retrieve_is_registered_and_passes_the_stage_check(kb_path):
    assert STAGES["retrieve"] is Retrieve
    check_stage(Retrieve(kb="space", path=kb_path, k=2))


def test_hits_are_inserted_just_before_the_latest_user_message(kb_path):
    ctx = Retrieve(kb="space", path=kb_path, k=2).run(Context.from_messages(MESSAGES))
    kinds = [i.kind for i in ctx.items]
    assert kinds == ["system", "user", "assistant", "retrieved", "retrieved", "user"]
    first = ctx.items[3]
    assert first.id == "doc:sol#0" and first.metadata["title"] == "Mars day" and first.metadata["doc_id"] == "sol"
    assert first.score is not None and ctx.notes["retrieved"] == 2 and "retrieval_ms" in ctx.notes
    assert ctx.notes["cache_misses"] == 1


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_each_mode_and_filters_reach_the_store(kb_path, mode):
    ctx = Retrieve(kb="space", path=kb_path, mode=mode, k=3, filters={"tenant": "bakery"}).run(
        Context.from_messages([{"role": "user", "content": "wild yeast sourdough"}]))
    assert [i.id for i in ctx.items if i.kind == "retrieved"] == ["doc:bread#0"]


def test_on_error_continue_keeps_the_context_and_notes_the_error(kb_path):
    ctx = Context.from_messages(MESSAGES)
    out = Retrieve(kb="missing", path=kb_path, on_error="continue").run(ctx)
    assert out.items == ctx.items and "not found" in out.notes["retrieval_error"]


def test_on_error_fail_raises_a_store_error_naming_the_stage(kb_path):
    pipeline = Pipeline(stages=(Retrieve(kb="missing", path=kb_path),))
    with pytest.raises(StoreError, match="'missing' not found") as info:
        pipeline.optimize(MESSAGES, tier="pro")
    assert "retrieve" in str(info.value.__notes__)


def test_an_unreachable_qdrant_url_is_reported_not_hung():
    out = Retrieve(kb="x", url="http://127.0.0.1:9", mode="keyword", on_error="continue").run(Context.from_messages(MESSAGES))
    assert "cannot reach Qdrant" in out.notes["retrieval_error"]


def test_a_pipeline_with_retrieval_round_trips_through_its_config(tmp_path):
    import tomllib

    stage = Retrieve(kb="docs", path="kb", mode="keyword", k=3, filters={"tenant": "a"}, weights=(1.0, 2.0),
                     redis_url="redis://cache:6379/0")
    pipeline = Pipeline(stages=(stage,))
    toml = "\n".join(["[[stages]]"] + [f"{k} = {_toml(v)}" for k, v in pipeline.to_config()["stages"][0].items()])
    again = Pipeline.from_config(tomllib.loads(toml))
    assert again.stages == (stage,)


def _toml(value):
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value)


@pytest.mark.parametrize("bad", [{"mode": "fuzzy"}, {"k": 0}, {"on_error": "ignore"}, {"filters": {"colour": "red"}},
                                 {"path": "a", "url": "http://b"}, {"fusion": "max"}])
def test_bad_config_is_rejected_when_the_stage_is_made(bad):
    from ctxopt.errors import ConfigError

    with pytest.raises(ConfigError):
        Retrieve(**bad)


@pytest.mark.slow
def test_the_real_model_retrieves_the_relevant_document_and_reports_cache_hits(tmp_path, real_embedder):
    path, cache = str(tmp_path / "kb"), str(tmp_path / "cache")
    from ctxopt.embed.cache import get_cached_embedder

    embedder = get_cached_embedder(directory=cache)
    KnowledgeBase("space", store=open_store(path=path), embedder=embedder).ingest(DOCS, progress=False)
    stage = Retrieve(kb="space", path=path, mode="dense", k=1, cache_dir=cache)
    first = stage.run(Context.from_messages([{"role": "user", "content": "How long does a Martian day last?"}]))
    again = stage.run(Context.from_messages([{"role": "user", "content": "How long does a Martian day last?"}]))
    assert first.items[0].id == "doc:sol#0"
    assert (first.notes["cache_misses"], again.notes["cache_hits"]) == (1, 1)


@pytest.mark.redis
def test_a_redis_outage_is_in_the_report_and_the_request_still_succeeds(tmp_path, monkeypatch, redis_server):
    import ctxopt.embed.cache as cache
    from ctxopt.cache import RedisBackend

    embedder = CachedEmbedder(HashEmbedder(128), backend=RedisBackend(redis_server.url))
    monkeypatch.setattr(cache, "get_cached_embedder", lambda *a, **k: embedder)
    path = str(tmp_path / "kb")
    KnowledgeBase("space", store=open_store(path=path), embedder=embedder).ingest(DOCS, progress=False)
    redis_server.stop()
    result = Pipeline(stages=(Retrieve(kb="space", path=path, k=1, redis_url=redis_server.url),)).optimize(MESSAGES)
    notes = result.report.to_dict()["stages"][0]["notes"]
    assert notes["retrieved"] == 1 and notes["cache_degraded"].startswith("redis unavailable")
    assert result.report.cache_misses == 1


def test_request_filters_scope_one_shared_pipeline_to_a_tenant(kb_path):
    pipeline = Pipeline(stages=[Retrieve(kb="space", path=kb_path, k=3, mode="keyword")])
    question = [{"role": "user", "content": "How does sourdough bread rise with yeast?"}]
    everyone = {i.metadata["doc_id"] for i in pipeline.optimize(question).context.items if i.kind == "retrieved"}
    bakery = {i.metadata["doc_id"] for i in pipeline.optimize(question, filters={"tenant": "bakery"}).context.items
              if i.kind == "retrieved"}
    nobody = [i for i in pipeline.optimize(question, filters={"tenant": "astro"}).context.items if i.kind == "retrieved"]
    assert "bread" in everyone and bakery == {"bread"} and nobody == []


def test_a_request_cannot_widen_the_stages_own_filter(kb_path):
    from ctxopt import InputError

    pipeline = Pipeline(stages=[Retrieve(kb="space", path=kb_path, filters={"tenant": "bakery"})])
    with pytest.raises(InputError, match="request filter tenant='astro' conflicts with the retrieve stage's tenant='bakery'"):
        pipeline.optimize(MESSAGES, filters={"tenant": "astro"})
    with pytest.raises(Exception, match="cannot filter on colour"):
        pipeline.optimize(MESSAGES, filters={"colour": "red"})


def test_a_wrapped_client_scopes_retrieval_to_the_callers_tenant(kb_path):
    import ctxopt
    from ctxopt.integrations.stand_in import StandInClient

    stand_in = StandInClient()
    client = ctxopt.wrap(stand_in, pipeline=Pipeline(stages=[Retrieve(kb="space", path=kb_path, k=3, mode="keyword")]),
                         filters=lambda call: {"tenant": call["user"]})
    question = [{"role": "user", "content": "How does sourdough bread rise with yeast?"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=question, user="bakery")
    assert any("Sourdough" in m["content"] for m in stand_in.last_request["messages"])
    client.chat.completions.create(model="gpt-4o-mini", messages=question, user="astro")
    assert not any("Sourdough" in m["content"] for m in stand_in.last_request["messages"])


@pytest.mark.parametrize("bad", [0, -1.5, "5", [5], True, float("nan"), float("inf")])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_rejected(bad):
    from ctxopt.errors import ConfigError

    with pytest.raises(ConfigError, match=r"retrieve: timeout must be a number of seconds > 0, or None"):
        Retrieve(url="http://qdrant:6333", timeout=bad)


def test_the_timeout_round_trips_through_the_pipeline_config():
    import tomllib

    for given, kept in [(0.5, 0.5), (2, 2.0), (None, None)]:
        stage = Retrieve(kb="docs", url="http://qdrant:6333", timeout=given)
        config = Pipeline(stages=(stage,)).to_config()
        assert config["stages"][0].get("timeout") == kept
        assert Pipeline.from_config(config).stages == (stage,) and stage.timeout == kept
        toml = "\n".join(["[[stages]]"] + [f"{k} = {_toml(v)}" for k, v in config["stages"][0].items()])
        assert Pipeline.from_config(tomllib.loads(toml)).stages == (stage,)


def test_an_embedded_store_ignores_the_timeout_and_still_retrieves(kb_path):
    ctx = Retrieve(kb="space", path=kb_path, k=1, timeout=0.5).run(Context.from_messages(MESSAGES))
    assert ctx.notes["retrieved"] == 1 and open_store(path=kb_path, timeout=0.5) is open_store(path=kb_path)


def test_a_refused_connection_is_not_reported_as_a_timeout():
    out = Retrieve(kb="x", url="http://127.0.0.1:9", mode="keyword", on_error="continue", timeout=0.5).run(
        Context.from_messages(MESSAGES))
    assert "cannot reach Qdrant" in out.notes["retrieval_error"] and "timed out" not in out.notes["retrieval_error"]


def test_a_request_can_narrow_a_stage_filter_that_is_a_list(kb_path):
    from ctxopt import InputError

    stage = Retrieve(kb="space", path=kb_path, filters={"tenant": ["bakery", "astro"]})
    assert stage.scope(Context.from_messages(MESSAGES, filters={"tenant": "bakery"})) == {"tenant": "bakery"}
    assert stage.scope(Context.from_messages(MESSAGES, filters={"tenant": ["astro"]})) == {"tenant": ["astro"]}
    assert stage.scope(Context.from_messages(MESSAGES, filters={"tenant": ["astro", "bakery"]})) == \
        {"tenant": ["astro", "bakery"]}
    assert Retrieve(kb="space", path=kb_path, filters={"tenant": "bakery"}).scope(
        Context.from_messages(MESSAGES, filters={"tenant": ["bakery"]})) == {"tenant": ["bakery"]}
    with pytest.raises(InputError, match=r"request filter tenant=\['bakery', 'chemists'\] conflicts .* 'chemists' is not"):
        stage.scope(Context.from_messages(MESSAGES, filters={"tenant": ["bakery", "chemists"]}))
    with pytest.raises(InputError, match="conflicts with the retrieve stage's tenant=\\['bakery', 'astro'\\]"):
        stage.scope(Context.from_messages(MESSAGES, filters={"tenant": "chemists"}))
    question = [{"role": "user", "content": "How does sourdough bread rise with yeast?"}]
    narrowed = Pipeline(stages=[stage]).optimize(question, filters={"tenant": "bakery"})
    assert [i.metadata["doc_id"] for i in narrowed.context.items if i.kind == "retrieved"] == ["bread"]
