"""What only the Qdrant Edge store does: its state file, its folder layout, sharing shards with
another process, and being the default for knowledge bases on disk."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from ctxopt.embed import HashEmbedder
from ctxopt.errors import StoreError
from ctxopt.stores import Chunk, EdgeStore, QdrantStore
from ctxopt.stores.edge import STATE_FILE
from ctxopt.stores.shared import open_store

EMB = HashEmbedder(32)


def fill(store, collection="kb__v1") -> None:
    texts = ["Mars has two moons.", "Venus is hot."]
    store.create_collection(collection, dim=EMB.dim, metadata={"avgdl": 4.0, "status": "ready"})
    store.upsert(collection, [Chunk(id=f"d{i}#0", doc_id=f"d{i}", text=t, vector=v)
                              for i, (t, v) in enumerate(zip(texts, EMB.embed(texts)))])
    store.seal(collection)
    store.set_alias("kb", collection)


def test_a_new_folder_opens_as_edge_and_an_old_qdrant_local_base_keeps_opening_as_one(tmp_path):
    assert isinstance(open_store(path=tmp_path / "new"), EdgeStore)
    old = QdrantStore(path=str(tmp_path / "old"))
    fill(old)
    old.close()
    legacy = open_store(path=tmp_path / "old")
    assert isinstance(legacy, QdrantStore) and legacy.count("kb") == 2
    legacy.close()


def test_the_state_file_names_collections_aliases_and_history(tmp_path):
    store = EdgeStore(tmp_path / "kb")
    fill(store)
    state = json.loads((tmp_path / "kb" / STATE_FILE).read_text())
    assert state["aliases"] == {"kb": "kb__v1"} and state["history"] == {"kb": ["kb__v1"]}
    assert state["collections"]["kb__v1"]["dim"] == 32 and (tmp_path / "kb" / "shards" / "kb__v1").is_dir()
    assert not list((tmp_path / "kb").glob(".state-*"))  # no temporary file left behind
    store.close()


def test_an_unreadable_state_file_is_a_store_error_saying_what_to_do(tmp_path):
    store = EdgeStore(tmp_path / "kb")
    fill(store)
    (tmp_path / "kb" / STATE_FILE).write_text("{ not json")
    with pytest.raises(StoreError, match=r"state .* is unreadable"):
        store.alias_target("kb")
    store.close()


def test_a_shard_folder_left_by_a_killed_create_is_replaced(tmp_path):
    store = EdgeStore(tmp_path / "kb")
    (tmp_path / "kb" / "shards" / "kb__v1" / "segments").mkdir(parents=True)  # no state entry: garbage
    fill(store)
    assert store.count("kb") == 2
    store.close()


def test_a_temporary_store_removes_its_folder_on_close():
    store = EdgeStore()
    fill(store)
    folder = store.path
    assert folder.is_dir()
    store.close()
    assert not folder.exists()


HOLDER = textwrap.dedent("""
    import sys, time
    from ctxopt.stores import EdgeStore
    store = EdgeStore(sys.argv[1])
    store.count("kb")  # opens the serving shard and keeps it open
    print("OPEN", flush=True)
    time.sleep(60)
""")


def test_a_shard_another_process_holds_open_is_a_clear_store_error_after_the_open_timeout(tmp_path):
    store = EdgeStore(tmp_path / "kb")
    fill(store)
    store.close()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "kb")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "OPEN"
        waiting = EdgeStore(tmp_path / "kb", open_timeout=0.5)
        with pytest.raises(StoreError, match=r"open in another process .* Qdrant server"):
            waiting.search("kb", vector=EMB.embed(["moons"])[0], text="moons", mode="dense")
        assert waiting.alias_target("kb") == "kb__v1"  # the state file stays readable meanwhile
    finally:
        holder.kill()
        holder.wait()
    assert [h.doc_id for h in EdgeStore(tmp_path / "kb").search("kb", vector=None, text="moons", mode="keyword")] \
        == ["d0"]  # and the shard opens once the other process is gone


def graph_on_disk(store: EdgeStore, collection: str) -> tuple[int, int]:
    """The HNSW settings the engine builds the version's index with (its own config file)."""
    config = json.loads((store.path / "shards" / collection / "edge_config.json").read_text())["hnsw_config"]
    return config["m"], config["ef_construct"]


def test_the_hnsw_graph_is_chosen_by_the_size_of_the_version_when_it_is_sealed(tmp_path, monkeypatch):
    import ctxopt.stores.edge as edge

    small = EdgeStore(tmp_path / "small")
    fill(small)
    assert graph_on_disk(small, "kb__v1") == edge.SMALL_GRAPH
    monkeypatch.setattr(edge, "LARGE_BASE_CHUNKS", 1)  # two chunks are now a large base
    large = EdgeStore(tmp_path / "large")
    fill(large)
    assert graph_on_disk(large, "kb__v1") == edge.LARGE_GRAPH != edge.SMALL_GRAPH
    vector = EMB.embed(["moons of Mars"])[0]
    hits = [h.chunk_id for h in large.search("kb", vector=vector, text="moons of Mars", mode="hybrid")]
    large.close()
    reopened = EdgeStore(tmp_path / "large")
    assert [h.chunk_id for h in reopened.search("kb", vector=vector, text="moons of Mars", mode="hybrid")] == hits
    assert hits[0] == "d0#0"
    reopened.close()
    small.close()


def test_a_graph_given_to_the_store_is_kept_whatever_the_size(tmp_path, monkeypatch):
    import ctxopt.stores.edge as edge

    monkeypatch.setattr(edge, "LARGE_BASE_CHUNKS", 1)
    store = EdgeStore(tmp_path / "kb", m=24, ef_construct=300)
    fill(store)
    assert graph_on_disk(store, "kb__v1") == (24, 300)
    store.close()
