"""What only the qdrant-client store does: server options, the wire format of fusion, the alias
register's start from an existing alias, and failing fast when the server is unreachable.
Everything every backend does is in test_conformance.py."""

from __future__ import annotations

import socket
import time

import pytest

from ctxopt.embed import CachedEmbedder, HashEmbedder
from ctxopt.errors import ConfigError, StoreError
from ctxopt.ingest import Document
from ctxopt.kb import KnowledgeBase
from ctxopt.stores import Fusion, QdrantStore
from ctxopt.stores.qdrant import _fusion_query


def closed_port() -> int:
    with socket.socket() as s:  # a port nothing listens on: bound, then closed
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_collections_get_the_cluster_options():
    from qdrant_client import models

    store = QdrantStore(url="http://qdrant.internal:6333", shard_number=6, replication_factor=2, on_disk=True,
                        quantization="int8", write_timeout=300)
    options = store.collection_options(384)
    assert (options["shard_number"], options["replication_factor"], options["on_disk_payload"]) == (6, 2, True)
    assert options["vectors_config"]["dense"].on_disk is True and options["timeout"] == 300
    assert options["quantization_config"].scalar.type == models.ScalarType.INT8
    assert options["sparse_vectors_config"]["bm25"].modifier == models.Modifier.IDF
    binary = QdrantStore(url="http://q:6333", quantization="binary").collection_options(8)["quantization_config"]
    assert isinstance(binary, models.BinaryQuantization)
    assert "shard_number" not in QdrantStore().collection_options(8)  # embedded: no cluster to shard over


@pytest.mark.parametrize("bad", [{"quantization": "pq"}, {"shard_number": 0}, {"replication_factor": True}])
def test_bad_server_options_are_config_errors(bad):
    with pytest.raises(ConfigError):
        QdrantStore(url="http://q:6333", **bad)


def test_rrf_always_sends_its_k_and_weights():
    # a bare FusionQuery(RRF) would be scored with qdrant's default k=2, not the k=60 ctxopt means
    plain = _fusion_query(Fusion())
    assert plain.rrf.k == 60 and plain.rrf.weights == [1.0, 1.0]
    assert _fusion_query(Fusion(k=5, weights=(1.0, 2.0))).rrf.k == 5


def test_the_alias_register_starts_from_an_alias_made_before_it():
    from qdrant_client import models

    store = QdrantStore()
    for name in ("kb__v1", "kb__v2"):
        store.create_collection(name, dim=4, metadata={"avgdl": 1.0})
    store.client.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name="kb__v1", alias_name="kb"))])  # as older ctxopt did
    assert store.alias_history("kb") == ["kb__v1"]
    assert store.switch_alias("kb", "kb__v2", expected="kb__v1") and store.alias_target("kb") == "kb__v2"
    assert "_ctxopt_state" not in store.collections()


def test_an_unreachable_server_fails_fast_with_a_store_error():
    store = QdrantStore(url=f"http://127.0.0.1:{closed_port()}", timeout=2)
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot reach Qdrant"):
        store.search("kb", vector=[0.1] * 256, text="anything", mode="hybrid")
    assert time.monotonic() - started < 5


def test_an_ingest_into_an_unreachable_server_fails_fast_and_says_where():
    url = f"http://127.0.0.1:{closed_port()}"
    kb = KnowledgeBase("kb", store=QdrantStore(url=url, timeout=1, write_timeout=1),
                       embedder=CachedEmbedder(HashEmbedder(16), backend="none"))
    started = time.monotonic()
    with pytest.raises(StoreError, match=f"cannot reach Qdrant at {url}"):
        kb.ingest([Document(id="a", text="some text")], progress=False)
    assert time.monotonic() - started < 5


def test_a_collection_another_writer_created_after_the_check_is_a_collection_exists_error(monkeypatch):
    """Before: two ingests into one base on a server (no lock reaches it) could both see version N
    free, and the one that created it second failed with the engine's ValueError instead of taking
    N+1 (a CI run caught it: 'Collection plant__v4 already exists'). Here the other writer's create
    lands between this writer's check and its call."""
    from ctxopt.stores.base import CollectionExistsError

    store = QdrantStore()
    store.create_collection("kb__v1", dim=8, metadata={"avgdl": 1.0})
    monkeypatch.setattr(store, "_exists", lambda name: False)  # the check ran before the other writer's create
    with pytest.raises(CollectionExistsError, match="already exists"):
        store.create_collection("kb__v1", dim=8, metadata={"avgdl": 1.0})
    store.close()
