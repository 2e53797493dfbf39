"""The Qdrant store, embedded in memory and on disk: hybrid search inside Qdrant, filters, errors."""

from __future__ import annotations

import time

import pytest

from ctxopt.embed import HashEmbedder
from ctxopt.errors import StoreError
from ctxopt.stores import Chunk, Fusion, QdrantStore

DOCS = {
    "mars": ("Mars has two small moons, Phobos and Deimos.", {"tenant": "acme", "tags": ["space"]}),
    "venus": ("Venus is the hottest planet; its thick atmosphere traps heat.", {"tenant": "acme", "tags": ["space"]}),
    "bread": ("Sourdough bread rises slowly because of wild yeast.", {"tenant": "bakery", "tags": ["food"]}),
    "yeast": ("Yeast ferments sugar into carbon dioxide and alcohol.", {"tenant": "bakery", "tags": ["food", "bio"]}),
}
EMB = HashEmbedder(256)


@pytest.fixture(params=["memory", "disk"])
def store(request, tmp_path):
    s = QdrantStore() if request.param == "memory" else QdrantStore(path=str(tmp_path / "qdrant"))
    texts = [t for t, _ in DOCS.values()]
    s.create_collection("kb__v1", dim=EMB.dim, metadata={"avgdl": 6.0, "status": "ready"})
    s.upsert("kb__v1", [Chunk(id=f"{d}#0", doc_id=d, text=t, vector=v, payload=p)
                        for (d, (t, p)), v in zip(DOCS.items(), EMB.embed(texts))])
    s.set_alias("kb", "kb__v1")
    yield s
    s.close()


def search(store, text, **kw):
    return [h.doc_id for h in store.search("kb", vector=EMB.embed([text])[0], text=text, **kw)]


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_every_mode_finds_the_document_sharing_the_query_words(store, mode):
    assert search(store, "moons of Mars", mode=mode, k=2)[0] == "mars"


@pytest.mark.parametrize("fusion", [Fusion(), Fusion(method="dbsf"), Fusion(k=5, weights=(1.0, 2.0))])
def test_hybrid_fusion_runs_inside_qdrant_for_each_method(store, fusion):
    assert search(store, "wild yeast bread", mode="hybrid", k=4, fusion=fusion)[0] == "bread"


def test_keyword_scores_weigh_rare_terms_by_idf(store):
    # "yeast" is in two documents, "ferments" (stem "ferment") in one: the rarer term decides
    hits = store.search("kb", vector=None, text="yeast ferments", mode="keyword", k=4)
    assert hits[0].doc_id == "yeast" and hits[0].score > hits[1].score


def test_filters_restrict_by_tenant_and_tags(store):
    assert set(search(store, "planet moons yeast bread", mode="keyword", k=4, filters={"tenant": "bakery"})) == \
        {"bread", "yeast"}
    assert search(store, "yeast", mode="hybrid", k=4, filters={"tags": ["bio"]}) == ["yeast"]


def test_group_by_doc_returns_each_document_once(store):
    store.upsert("kb__v1", [Chunk(id="mars#1", doc_id="mars", text="Phobos orbits Mars closely.",
                                  vector=EMB.embed(["Phobos orbits Mars closely."])[0])])
    ids = search(store, "Mars Phobos", mode="hybrid", k=4, group_by_doc=True)
    assert ids[0] == "mars" and len(ids) == len(set(ids))


def test_a_query_of_stopwords_only_finds_nothing_by_keyword(store):
    assert store.search("kb", vector=None, text="the of and", mode="keyword") == []


def test_a_missing_collection_is_a_store_error_that_says_what_to_do(store):
    with pytest.raises(StoreError, match=r"'nope' not found.*ingest"):
        store.search("nope", vector=[0.0] * 256, text="x", mode="dense")


def test_a_dimension_mismatch_is_a_store_error(store):
    with pytest.raises(StoreError, match=r"dimension 3 .* 256-dimensional"):
        store.search("kb", vector=[1.0, 0.0, 0.0], text="x", mode="dense")
    with pytest.raises(StoreError, match="dimension"):
        store.upsert("kb__v1", [Chunk(id="x", doc_id="x", text="x", vector=[1.0])])


def test_switching_the_alias_serves_the_other_collection(store):
    store.create_collection("kb__v2", dim=256, metadata={"avgdl": 6.0})
    store.set_alias("kb", "kb__v2")
    assert store.alias_target("kb") == "kb__v2"
    assert store.search("kb", vector=EMB.embed(["Mars"])[0], text="Mars", mode="hybrid") == []


def test_an_on_disk_store_keeps_its_data_after_reopening(tmp_path):
    path = str(tmp_path / "q")
    s = QdrantStore(path=path)
    s.create_collection("c", dim=256, metadata={"avgdl": 5.0, "note": "kept"})
    s.upsert("c", [Chunk(id="a#0", doc_id="a", text="persistent text", vector=EMB.embed(["persistent text"])[0])])
    s.close()
    again = QdrantStore(path=path)
    assert again.count("c") == 1 and again.metadata("c")["note"] == "kept"
    assert again.search("c", vector=None, text="persistent", mode="keyword")[0].doc_id == "a"
    again.close()


def test_an_unreachable_server_fails_fast_with_a_store_error():
    import socket

    with socket.socket() as s:  # a port nothing listens on: bound, then closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = QdrantStore(url=f"http://127.0.0.1:{port}", timeout=2)
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot reach Qdrant"):
        store.search("kb", vector=[0.1] * 256, text="anything", mode="hybrid")
    assert time.monotonic() - started < 5
