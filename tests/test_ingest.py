"""Ingestion: reading, chunking, and versioned knowledge bases (idempotent, update, delete, rollback)."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis_profiles import examples

from ctxopt.embed import CachedEmbedder, HashEmbedder
from ctxopt.errors import InputError, StoreError
from ctxopt.ingest import Document, chunk_text, read_documents, split_sentences
from ctxopt.kb import KnowledgeBase
from ctxopt.stores import QdrantStore
from ctxopt.tokens import get_tokenizer


def make_kb(store=None, name="kb", **kw) -> KnowledgeBase:
    return KnowledgeBase(name, store=store or QdrantStore(), embedder=CachedEmbedder(HashEmbedder(64), backend="none"), **kw)


DOCS = [Document(id="mars", title="Mars", text="Mars has two moons. They are Phobos and Deimos."),
        Document(id="venus", title="Venus", text="Venus is hot. Its clouds are made of sulfuric acid."),
        Document(id="moon", title="Moon", text="The Moon causes tides on Earth.", metadata={"tenant": "t1"})]


# -- reading and chunking --------------------------------------------------------------------

def test_jsonl_markdown_and_text_files_are_read_from_a_directory(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"_id": "d1", "title": "T", "text": "x", "metadata": {"tags": ["a"]}}) + "\n\n")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "b.md").write_text("intro\n# Heading One\nbody")
    (tmp_path / "c.txt").write_text("plain text")
    docs = {d.id: d for d in read_documents(tmp_path)}
    assert set(docs) == {"d1", "notes/b.md", "c.txt"}
    assert docs["d1"].metadata["tags"] == ["a"] and docs["notes/b.md"].title == "Heading One"
    assert docs["c.txt"].title == "c"


def test_a_bad_jsonl_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "1", "text": "ok"}\n{"id": "2"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2 needs 'id' \(or '_id'\) and 'text'"):
        list(read_documents(path))


@pytest.mark.parametrize("line, message", [
    ('{"id": "a", "text": null}', r"d.jsonl:2: 'text' must be a string, got null"),
    ('{"id": "a", "text": 5}', r"d.jsonl:2: 'text' must be a string, got a number"),
    ('{"id": "a", "text": "x", "title": ["T"]}', r"d.jsonl:2: 'title' must be a string or null, got an array"),
    ('{"id": {"n": 1}, "text": "x"}', r"d.jsonl:2: 'id' must be a string or a whole number, got an object"),
    ('{"id": "a", "text": "x", "metadata": {"tenant": ["a", "b"]}}', r"d.jsonl:2: document 'a': tenant must be one"),
])
def test_a_jsonl_field_of_the_wrong_type_is_an_error_naming_file_and_line(tmp_path, line, message):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "ok", "text": "fine"}\n' + line + "\n")
    with pytest.raises(InputError, match=message):
        list(read_documents(path))


def test_a_null_title_is_no_title_and_a_numeric_id_is_its_digits(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": 7, "text": "x", "title": null}\n')
    assert [(d.id, d.title) for d in read_documents(path)] == [("7", "")]


def test_a_string_of_tags_is_one_tag_not_its_letters():
    kb = make_kb()
    kb.ingest([Document(id="refunds", text="Refunds take five days.", metadata={"tags": "billing"}),
               Document(id="ships", text="Parcels ship daily.", metadata={"tags": ["shipping", "ops"]})], progress=False)
    assert [h.payload["tags"] for h in kb.search("refunds", k=1)] == [["billing"]]
    assert [h.doc_id for h in kb.search("refunds parcels", k=5, filters={"tags": "billing"})] == ["refunds"]
    assert kb.search("refunds parcels", k=5, filters={"tags": "b"}) == []


@pytest.mark.parametrize("metadata, message", [
    ({"tenant": ["a", "b"]}, "tenant must be one str"),
    ({"tenant": {"id": "a"}}, "tenant must be one str"),
    ({"source": ["x.md"]}, "source must be one str"),
    ({"tags": [["a"]]}, "tags must be a str"),
    ({"tags": {"a": 1}}, "tags must be a str"),
])
def test_metadata_of_the_wrong_shape_is_an_error_not_a_literal_value(metadata, message):
    with pytest.raises(InputError, match=message):
        Document(id="d", text="x", metadata=metadata)


def test_a_tenant_of_none_is_no_tenant_and_a_numeric_tenant_is_its_digits():
    kb = make_kb()
    kb.ingest([Document(id="a", text="shared doc", metadata={"tenant": None}),
               Document(id="b", text="customer doc", metadata={"tenant": 42})], progress=False)
    assert {h.doc_id: h.payload["tenant"] for h in kb.search("doc", k=5)} == {"a": "", "b": "42"}
    assert [h.doc_id for h in kb.search("doc", k=5, filters={"tenant": 42})] == ["b"]


def test_sentences_split_at_ends_and_blank_lines():
    assert split_sentences("One here. Two? Three!\n\nFour") == ["One here.", "Two?", "Three!", "Four"]


@settings(max_examples=examples(100))
@given(st.lists(st.text(alphabet="abcdefgh ", min_size=1, max_size=60), min_size=1, max_size=25),
       st.integers(8, 60), st.integers(0, 7))
@example(["a", "a", "a", "a", "a", "baaabgabf", "aaaaaa  aab", "eagbaaafgbbd"], 8, 0)  # issue 10
def test_chunks_never_exceed_the_token_limit_and_lose_no_sentence(sentences, max_tokens, overlap):
    text = " ".join(s.strip() + "." for s in sentences if s.strip())
    chunks = chunk_text(text, max_tokens=max_tokens, overlap=overlap)
    tok = get_tokenizer()
    assert all(tok.count(c) <= max_tokens for c in chunks)
    joined = " ".join(chunks)
    assert all(s in joined for s in split_sentences(text) if tok.count(s) <= max_tokens)
    # a sentence's full stop stays with it: no chunk starts with the previous sentence's end
    assert not any(c.startswith(".") for c in chunks)
    if overlap == 0:  # without overlap the chunks are the text's words, in order, none lost
        assert "".join(joined.split()) == "".join(text.split())


def test_chunks_overlap_by_whole_sentences():
    text = " ".join(f"Sentence number {i} is here." for i in range(12))
    chunks = chunk_text(text, max_tokens=30, overlap=8)
    assert len(chunks) > 2
    for a, b in itertools.pairwise(chunks):
        assert split_sentences(a)[-1] == split_sentences(b)[0]


# -- versioned knowledge bases ---------------------------------------------------------------

def test_a_second_ingest_of_unchanged_documents_writes_nothing():
    kb = make_kb()
    first = kb.ingest(DOCS, progress=False)
    second = kb.ingest(DOCS, progress=False)
    assert first.version == 1 and first.chunks_written == 3
    assert second.chunks_written == 0 and second.version == 1 and second.docs_unchanged == 3
    assert [v.number for v in kb.versions()] == [1]


@settings(max_examples=examples(10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text("abcxyz", min_size=1, max_size=4), st.text("hello world. again!", max_size=80),
                       min_size=1, max_size=6))
def test_ingest_is_idempotent_for_any_documents(texts):
    kb = make_kb()
    docs = [Document(id=i, text=t) for i, t in texts.items()]
    kb.ingest(docs, progress=False)
    again = kb.ingest(docs, progress=False)
    assert again.chunks_written == 0 and len(kb.versions()) == 1


def test_a_changed_document_replaces_its_old_chunks_in_a_new_version():
    kb = make_kb()
    kb.ingest(DOCS, progress=False)
    changed = Document(id="mars", title="Mars", text="Mars is red because of iron oxide.")
    summary = kb.ingest([changed], progress=False)
    assert (summary.version, summary.docs_changed, summary.docs_added) == (2, 1, 0)
    texts = [h.text for h in kb.search("Mars", k=10) if h.doc_id == "mars"]
    assert texts == ["Mars\n\nMars is red because of iron oxide."]
    assert {h.doc_id for h in kb.search("Venus clouds tides", mode="keyword", k=10)} == {"venus", "moon"}


def test_deleted_documents_are_removed_by_delete_or_prune():
    kb = make_kb()
    kb.ingest(DOCS, progress=False)
    assert kb.delete(["venus"]).docs_removed == 1
    assert "venus" not in {h.doc_id for h in kb.search("Venus hot", k=10)}
    pruned = kb.ingest(DOCS[:1], prune=True, progress=False)
    assert pruned.docs_removed == 1 and {h.doc_id for h in kb.search("moons tides", k=10)} == {"mars"}


def test_a_prune_that_read_no_document_changes_nothing_unless_allowed_to_empty_the_base():
    kb = make_kb()
    kb.ingest(DOCS, progress=False)
    before = kb.current()
    with pytest.raises(InputError, match=r"read no document.*remove all 3 documents.*allow_empty=True"):
        kb.ingest([], prune=True, progress=False)
    with pytest.raises(InputError, match="read no document"):
        kb.ingest(iter([]), prune=True, progress=False)
    assert kb.current() == before and len(kb.search("moons tides hot", k=10)) == 3
    emptied = kb.ingest([], prune=True, allow_empty=True, progress=False)
    assert emptied.docs_removed == 3 and kb.search("moons tides hot", k=10) == []
    assert make_kb().ingest([], prune=True, progress=False).docs_removed == 0  # nothing to lose: no error


def test_rollback_serves_the_previous_version_again():
    kb = make_kb()
    kb.ingest(DOCS, progress=False)
    kb.ingest([Document(id="mars", text="Completely new text about rust.")], progress=False)
    assert kb.current() == "kb__v2"
    back = kb.rollback()
    assert back.number == 1 and kb.current() == "kb__v1"
    assert "Phobos" in next(h.text for h in kb.search("Phobos", mode="keyword", k=1))
    with pytest.raises(StoreError, match="no ready version before"):
        kb.rollback()
    assert kb.rollback(2).number == 2


def test_only_the_newest_versions_are_kept():
    kb = make_kb(keep=2)
    for n in range(4):
        kb.ingest([Document(id="d", text=f"version {n} text")], progress=False)
    assert [v.number for v in kb.versions()] == [3, 4]


def test_filters_come_from_document_metadata():
    kb = make_kb()
    kb.ingest(DOCS, progress=False)
    assert [h.doc_id for h in kb.search("planet moon tides", k=5, filters={"tenant": "t1"})] == ["moon"]


def test_an_interrupted_ingest_leaves_the_previous_version_serving(monkeypatch):
    store = QdrantStore()
    kb = make_kb(store)
    kb.ingest(DOCS, progress=False)
    real_upsert, calls = store.upsert, []

    def failing_upsert(collection, chunks):
        calls.append(collection)
        raise KeyboardInterrupt  # like a kill in the middle of writing the new version

    monkeypatch.setattr(store, "upsert", failing_upsert)
    with pytest.raises(KeyboardInterrupt):
        kb.ingest([Document(id="mars", text="half written")], progress=False)
    assert calls == ["kb__v2"] and kb.current() == "kb__v1"
    assert "Phobos" in kb.search("Phobos", mode="keyword", k=1)[0].text
    monkeypatch.setattr(store, "upsert", real_upsert)
    summary = kb.ingest([Document(id="mars", text="written at last")], progress=False)
    assert kb.current() == summary.collection and summary.version == 2  # the half-built v2 was replaced
    assert [v.status for v in kb.versions()] == ["ready", "ready"]


def test_duplicate_ids_in_one_ingest_are_rejected():
    with pytest.raises(InputError, match="appears twice"):
        make_kb().ingest([DOCS[0], DOCS[0]], progress=False)


def test_the_embedding_cache_makes_a_rebuild_call_the_model_zero_times(tmp_path):
    from ctxopt.cache import DiskBackend

    first = KnowledgeBase("a", store=QdrantStore(), embedder=CachedEmbedder(HashEmbedder(64), backend=DiskBackend(tmp_path)))
    assert first.ingest(DOCS, progress=False).cache_misses == 3
    inner = HashEmbedder(64)
    second = KnowledgeBase("b", store=QdrantStore(), embedder=CachedEmbedder(inner, backend=DiskBackend(tmp_path)))
    summary = second.ingest(DOCS, progress=False)
    assert (summary.cache_hits, summary.cache_misses, inner.calls) == (3, 0, 0)


# -- serving history, on every backend -------------------------------------------------------

@pytest.mark.parametrize("backend", ["edge", "qdrant-memory", "server-path"])
def test_rollback_follows_the_serving_history_and_never_reserves_a_rolled_back_version(backend, store_factory, tmp_path):
    store = store_factory(backend, tmp_path)
    kb = make_kb(store)
    kb.ingest(DOCS, progress=False)                                                     # v1
    kb.ingest([Document(id="mars", text="Mars is made of cheese.")], progress=False)    # v2: a bad edit
    assert kb.rollback().number == 1                                                    # undo it
    kb.ingest([Document(id="moon", text="The Moon causes tides.", metadata={"tenant": "t1"})], progress=False)  # v3
    assert kb.current() == "kb__v3"
    assert kb.rollback().number == 1  # the version that served before v3, not v2 (the highest below v3)
    assert "cheese" not in " ".join(h.text for h in kb.search("Mars", mode="keyword", k=5))
    with pytest.raises(StoreError, match="no ready version before"):
        kb.rollback()
    assert kb.history() == ["kb__v1"]
    assert kb.rollback(3).number == 3 and kb.history() == ["kb__v1", "kb__v3"]
    store.close()


def test_the_versions_in_the_serving_history_survive_pruning_of_old_versions():
    kb = make_kb(keep=2)
    kb.ingest([Document(id="d", text="good text")], progress=False)                     # v1
    for n in range(2, 5):                                                               # v2..v4, each rolled back
        kb.ingest([Document(id="d", text=f"bad text {n}")], progress=False)
        kb.rollback()
    kb.ingest([Document(id="d", text="next good text")], progress=False)                # v5
    assert kb.rollback().number == 1  # kept although 4 newer versions were made since
