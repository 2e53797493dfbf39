"""The store protocol, checked the same way on every backend: Qdrant Edge on disk and in a
temporary folder, qdrant-client in memory and on disk, and the server code path (see conftest).

A new backend passes when this module passes against it."""

from __future__ import annotations

import threading

import pytest

from ctxopt.embed import HashEmbedder
from ctxopt.errors import StoreError
from ctxopt.stores import Chunk, Fusion
from ctxopt.stores.base import CollectionExistsError, VectorStore

DOCS = {
    "mars": ("Mars has two small moons, Phobos and Deimos.", {"tenant": "acme", "tags": ["space"]}),
    "venus": ("Venus is the hottest planet; its thick atmosphere traps heat.", {"tenant": "acme", "tags": ["space"]}),
    "bread": ("Sourdough bread rises slowly because of wild yeast.", {"tenant": "bakery", "tags": ["food"]}),
    "yeast": ("Yeast ferments sugar into carbon dioxide and alcohol.", {"tenant": "bakery", "tags": ["food", "bio"]}),
}
EMB = HashEmbedder(256)


def fill(store, collection: str = "kb__v1", alias: str | None = "kb") -> None:
    texts = [t for t, _ in DOCS.values()]
    store.create_collection(collection, dim=EMB.dim, metadata={"avgdl": 6.0, "status": "ready"})
    store.upsert(collection, [Chunk(id=f"{d}#0", doc_id=d, text=t, vector=v, payload=p)
                              for (d, (t, p)), v in zip(DOCS.items(), EMB.embed(texts))])
    store.seal(collection)
    if alias:
        store.set_alias(alias, collection)


@pytest.fixture
def store(empty_store):
    fill(empty_store)
    return empty_store


def search(store, text, **kw):
    return [h.doc_id for h in store.search("kb", vector=EMB.embed([text])[0], text=text, **kw)]


def test_every_backend_implements_the_protocol(store):
    assert isinstance(store, VectorStore)


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_every_mode_finds_the_document_sharing_the_query_words(store, mode):
    assert search(store, "moons of Mars", mode=mode, k=2)[0] == "mars"


@pytest.mark.parametrize("fusion", [Fusion(), Fusion(method="dbsf"), Fusion(k=5, weights=(1.0, 2.0))])
def test_hybrid_fusion_runs_inside_the_store_for_each_method(store, fusion):
    assert search(store, "wild yeast bread", mode="hybrid", k=4, fusion=fusion)[0] == "bread"


@pytest.mark.parametrize("k", [1, 2, 60])
def test_rrf_uses_the_k_it_is_given(store, k):
    # "bread" is first in the dense and in the keyword list: RRF scores it 1/k + 1/k. A bare RRF
    # request would be scored by Qdrant's own default (k=2) whatever Fusion said.
    hit = store.search("kb", vector=EMB.embed(["wild yeast bread"])[0], text="wild yeast bread", mode="hybrid",
                       k=1, fusion=Fusion(k=k))[0]
    assert hit.doc_id == "bread" and hit.score == pytest.approx(2 / k, rel=1e-4)


def test_keyword_scores_weigh_rare_terms_by_idf(store):
    # "yeast" is in two documents, "ferments" (stem "ferment") in one: the rarer term decides
    hits = store.search("kb", vector=None, text="yeast ferments", mode="keyword", k=4)
    assert hits[0].doc_id == "yeast" and hits[0].score > hits[1].score


def test_keyword_scores_are_bm25_with_the_engines_idf(store):
    import math

    from ctxopt.stores import sparse

    hits = store.search("kb", vector=None, text="ferments", mode="keyword", k=1)
    text = DOCS["yeast"][0]
    indices, values = sparse.doc_vector(text, 6.0)
    weight = dict(zip(indices, values))[sparse.term_index("ferment")]
    idf = math.log((4 - 1 + 0.5) / (1 + 0.5) + 1)
    assert hits[0].score == pytest.approx(weight * idf, rel=1e-4)


def test_filters_restrict_by_tenant_and_tags(store):
    assert set(search(store, "planet moons yeast bread", mode="keyword", k=4, filters={"tenant": "bakery"})) == \
        {"bread", "yeast"}
    assert search(store, "yeast", mode="hybrid", k=4, filters={"tags": ["bio"]}) == ["yeast"]
    assert search(store, "moons", mode="dense", k=4, filters={"tenant": "nobody"}) == []


def test_group_by_doc_returns_each_document_once(store):
    store.upsert("kb__v1", [Chunk(id=f"mars#{i}", doc_id="mars", text=f"Phobos orbits Mars closely, pass {i}.",
                                  vector=EMB.embed([f"Phobos orbits Mars closely, pass {i}."])[0]) for i in range(1, 9)])
    for mode in ("dense", "hybrid"):  # nine chunks of "mars" rank first; grouping looks past them
        ids = search(store, "Mars Phobos orbits", mode=mode, k=3, group_by_doc=True)
        assert ids[0] == "mars" and len(ids) == 3 == len(set(ids)), mode
    assert search(store, "Mars Phobos orbits", mode="keyword", k=3, group_by_doc=True) == ["mars"]


def test_exact_search_agrees_with_the_index_on_a_small_collection(store):
    for mode in ("dense", "hybrid"):
        assert search(store, "hot planet", mode=mode, k=4, exact=True) == search(store, "hot planet", mode=mode, k=4)


def test_a_query_of_stopwords_only_finds_nothing_by_keyword(store):
    assert store.search("kb", vector=None, text="the of and", mode="keyword") == []
    assert search(store, "the of and", mode="hybrid", k=2)  # hybrid falls back to dense


def test_a_missing_collection_is_a_store_error_that_says_what_to_do(store):
    with pytest.raises(StoreError, match=r"'nope' not found.*ingest"):
        store.search("nope", vector=[0.0] * 256, text="x", mode="dense")


def test_a_dimension_mismatch_is_a_store_error(store):
    with pytest.raises(StoreError, match=r"dimension 3 .* 256-dimensional"):
        store.search("kb", vector=[1.0, 0.0, 0.0], text="x", mode="dense")
    with pytest.raises(StoreError, match="dimension"):
        store.upsert("kb__v1", [Chunk(id="x", doc_id="x", text="x", vector=[1.0])])


def test_a_taken_collection_name_is_refused(store):
    with pytest.raises(CollectionExistsError):
        store.create_collection("kb__v1", dim=256, metadata={"avgdl": 1.0})


def test_metadata_count_scroll_and_delete(store):
    store.set_metadata("kb__v1", {"status": "ready", "note": "kept"})
    assert store.metadata("kb__v1")["note"] == "kept" and store.metadata("kb")["avgdl"] == 6.0
    assert store.count("kb__v1") == 4 and store.collections() == ["kb__v1"]
    rows = list(store.scroll("kb__v1", with_vectors=True, fields=("doc_id",)))
    assert sorted(p["doc_id"] for p, _ in rows) == sorted(DOCS) and all(set(p) == {"doc_id"} for p, _ in rows)
    assert all(len(v) == 256 for _, v in rows)
    store.delete("kb__v1", ["venus#0"])
    assert store.count("kb__v1") == 3 and "venus" not in search(store, "Venus", mode="keyword", k=4)


def test_switching_the_alias_serves_the_other_collection_and_records_history(store):
    store.create_collection("kb__v2", dim=256, metadata={"avgdl": 6.0})
    store.set_alias("kb", "kb__v2")
    assert store.alias_target("kb") == "kb__v2"
    assert store.search("kb", vector=EMB.embed(["Mars"])[0], text="Mars", mode="hybrid") == []
    assert store.alias_history("kb") == ["kb__v1", "kb__v2"]


def test_switch_alias_is_a_compare_and_swap(store):
    store.create_collection("kb__v2", dim=256, metadata={"avgdl": 6.0})
    store.create_collection("kb__v3", dim=256, metadata={"avgdl": 6.0})
    assert store.switch_alias("kb", "kb__v2", expected="kb__v1")
    assert not store.switch_alias("kb", "kb__v3", expected="kb__v1")  # stale: someone switched first
    assert store.alias_target("kb") == "kb__v2"
    assert store.switch_alias("kb", "kb__v1", expected="kb__v2", history=["kb__v1"])  # a rollback pops
    assert store.alias_history("kb") == ["kb__v1"]
    assert store.switch_alias("new", "kb__v3", expected=None) and not store.switch_alias("new", "kb__v2", expected=None)


def test_concurrent_swaps_from_one_state_have_exactly_one_winner(store):
    for n in range(2, 8):
        store.create_collection(f"kb__v{n}", dim=256, metadata={"avgdl": 6.0})
    barrier = threading.Barrier(6)
    wins: list[str] = []

    def swap(n: int) -> None:
        barrier.wait()
        if store.switch_alias("kb", f"kb__v{n}", expected="kb__v1"):
            wins.append(f"kb__v{n}")

    threads = [threading.Thread(target=swap, args=(n,)) for n in range(2, 8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and store.alias_target("kb") == wins[0]
    assert store.alias_history("kb") == ["kb__v1", wins[0]]


def test_threads_writing_and_reading_one_collection_at_once_lose_nothing(empty_store):
    """One service, many threads, one collection. Embedded qdrant-client has no lock of its own:
    before the store took one, four threads upserting at once corrupted its arrays (IndexError or
    a count that would not broadcast, in CI and in 3 runs of 3 here)."""
    empty_store.create_collection("busy", dim=EMB.dim, metadata={})
    vectors = EMB.embed([f"note {n}" for n in range(25)])
    errors: list[BaseException] = []

    def write(thread: int) -> None:
        try:
            for b in range(20):
                empty_store.upsert("busy", [Chunk(id=f"t{thread}-{b}-{n}", doc_id=f"t{thread}", text=f"note {n}",
                                                  vector=v, payload={}) for n, v in enumerate(vectors)])
                empty_store.count("busy")
        except BaseException as exc:  # noqa: BLE001 - reported below, whatever it is
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert empty_store.count("busy") == 4 * 20 * 25


def test_dropping_a_collection_removes_it(store):
    store.create_collection("kb__v2", dim=256, metadata={"avgdl": 6.0})
    store.drop_collection("kb__v2")
    assert store.collections() == ["kb__v1"] and store.alias_target("kb") == "kb__v1"


def test_the_writer_lock_says_whether_it_excludes_other_writers(store, backend):
    with store.writer_lock("kb", 1.0) as exclusive:
        assert exclusive is (backend != "server-path")


@pytest.mark.parametrize("backend", ["edge", "qdrant-local-disk"])
def test_an_on_disk_store_keeps_its_data_after_reopening(backend, tmp_path, store_factory):
    first = store_factory(backend, tmp_path)
    fill(first)
    first.set_metadata("kb__v1", {"note": "kept"})
    before = search(first, "moons of Mars", mode="hybrid", k=4)
    first.close()
    again = store_factory(backend, tmp_path)
    try:
        assert again.count("kb") == 4 and again.metadata("kb__v1")["note"] == "kept"
        after = search(again, "moons of Mars", mode="hybrid", k=4)
        assert after[:2] == before[:2] and set(after) == set(before)  # qdrant-client may reorder exact ties
        assert again.alias_history("kb") == ["kb__v1"]
    finally:
        again.close()
