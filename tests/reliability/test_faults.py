"""Faults in the components ctxopt leans on: the request still succeeds (and the report says what
degraded) or fails with a ctxopt error naming what broke, as configured. Real components only: a
real redis-server, real on-disk Qdrant files, real diskcache directories with garbage in them.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import pytest

from ctxopt import CtxoptError, Pipeline, StageError, StoreError
from ctxopt.stages.retrieve import Retrieve

DOCS = [
    ("mars", "Mars", "Mars has two small moons, Phobos and Deimos, and a thin carbon dioxide atmosphere."),
    ("venus", "Venus", "Venus is the hottest planet; its thick atmosphere traps heat by a runaway greenhouse effect."),
    ("jupiter", "Jupiter", "Jupiter is a gas giant with a Great Red Spot, a storm larger than Earth."),
]
CHAT = [{"role": "system", "content": "Answer from the context."}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(pipeline: Pipeline, question: str):
    return pipeline.optimize([*CHAT, {"role": "user", "content": question}], tier="free")


def notes(result, stage: str = "retrieve") -> dict:
    return dict(next(s for s in result.report.stages if s.name == stage).notes)


@pytest.fixture(scope="module")
def kb_path(tmp_path_factory, real_embedder):
    """A knowledge base of three planet facts in embedded on-disk Qdrant, built with the real model."""
    from ctxopt.embed.cache import CachedEmbedder
    from ctxopt.ingest import Document
    from ctxopt.kb import KnowledgeBase
    from ctxopt.stores.qdrant import open_store

    path = str(tmp_path_factory.mktemp("faults") / "kb")
    kb = KnowledgeBase("planets", store=open_store(path=path), embedder=CachedEmbedder(real_embedder, backend="none"))
    kb.ingest([Document(id=d, title=t, text=x) for d, t, x in DOCS], progress=False)
    yield path
    open_store(path=path).close()  # release Qdrant's file lock now, not in a finaliser at exit


# -- Qdrant unreachable or hanging ----------------------------------------------------------------

@pytest.fixture
def hanging_server():
    """A TCP server that accepts connections and never answers: a Qdrant that times out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_unreachable_qdrant_fails_the_request_with_a_store_error_by_default():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(StoreError, match="cannot reach Qdrant") as info:
        ask(Pipeline(stages=[Retrieve(kb="planets", url=url, mode="keyword")]), "moons of mars")
    assert any("retrieve" in n for n in getattr(info.value, "__notes__", []))


def test_unreachable_qdrant_with_on_error_continue_answers_without_retrieval_and_says_so():
    url = f"http://127.0.0.1:{free_port()}"
    result = ask(Pipeline(stages=[Retrieve(kb="planets", url=url, mode="keyword", on_error="continue")]),
                 "moons of mars")
    assert result.messages[-1]["content"] == "moons of mars"
    assert notes(result)["retrieved"] == 0
    assert "cannot reach Qdrant" in notes(result)["retrieval_error"]
    assert "retrieval_error" in str(result.report)


def test_a_hanging_qdrant_times_out_instead_of_hanging_the_request(hanging_server):
    pipeline = Pipeline(stages=[Retrieve(kb="planets", url=hanging_server, mode="keyword", on_error="continue",
                                         timeout=1.0)])
    started = time.perf_counter()
    result = ask(pipeline, "moons of mars")
    assert time.perf_counter() - started < 10
    assert "Qdrant" in notes(result)["retrieval_error"]
    with pytest.raises(StoreError):
        ask(Pipeline(stages=[Retrieve(kb="planets", url=hanging_server, mode="keyword", timeout=1.0)]), "moons of mars")


def test_a_missing_knowledge_base_says_to_ingest_first(kb_path):
    with pytest.raises(StoreError, match="ingest"):
        ask(Pipeline(stages=[Retrieve(kb="nothing_here", path=kb_path, mode="keyword")]), "moons of mars")


# -- Redis stopped mid-run ----------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.redis
def test_redis_stopped_mid_run_degrades_to_recomputing_and_the_report_says_so(kb_path, redis_server):
    url = redis_server.url
    pipeline = Pipeline(stages=[Retrieve(kb="planets", path=kb_path, cache="redis", redis_url=url)])
    first = ask(pipeline, "Which planet has moons called Phobos?")
    again = ask(pipeline, "Which planet has moons called Phobos?")
    assert (notes(first)["cache_misses"], notes(again)["cache_hits"]) == (1, 1)  # Redis really serves
    redis_server.stop()
    for question in ("What is the hottest planet?", "Which storm is larger than Earth?"):
        started = time.perf_counter()
        result = ask(pipeline, question)
        assert time.perf_counter() - started < 3  # short socket timeout, then fail fast while down
        assert "redis unavailable" in notes(result)["cache_degraded"]
        assert notes(result)["retrieved"] >= 1 and "cache_degraded" in str(result.report)
    top = [m["content"] for m in ask(pipeline, "What is the hottest planet?").messages if "Relevant" in m["content"]]
    assert "Venus" in top[0]  # retrieval quality is unchanged: only the cache is gone


# -- the disk cache directory: corrupt, unwritable, deleted ------------------------------------

@pytest.mark.slow
def test_a_corrupt_cache_database_degrades_and_says_how_to_fix_it(kb_path, tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    (cache_dir / "cache.db").write_bytes(os.urandom(64 * 1024))  # garbage where SQLite's file should be
    pipeline = Pipeline(stages=[Retrieve(kb="planets", path=kb_path, cache="disk", cache_dir=str(cache_dir))])
    for _ in range(2):
        result = ask(pipeline, "Which planet has moons called Phobos?")
        assert "corrupt" in notes(result)["cache_degraded"] and notes(result)["retrieved"] >= 1


@pytest.mark.slow
def test_a_garbage_cache_entry_is_a_miss_and_is_repaired(kb_path, tmp_path, real_embedder):
    import diskcache

    from ctxopt.embed.cache import cache_key

    question = "Which planet has a Great Red Spot?"
    cache_dir = tmp_path / "cache"
    with diskcache.Cache(str(cache_dir)) as raw:
        raw.set(cache_key(real_embedder.model_id, question), b"\x00garbage\xff" * 7)
    pipeline = Pipeline(stages=[Retrieve(kb="planets", path=kb_path, cache="disk", cache_dir=str(cache_dir))])
    first, second = ask(pipeline, question), ask(pipeline, question)
    assert (notes(first)["cache_misses"], notes(second)["cache_hits"]) == (1, 1)
    assert "cache_degraded" not in notes(first)


def _file_in_place(tmp_path):
    (tmp_path / "cache").write_text("not a directory")
    return tmp_path / "cache"


def _under_a_file(tmp_path):
    (tmp_path / "f").write_text("a file")
    return tmp_path / "f" / "cache"


def _read_only(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions; the other unwritable cases cover this")
    path = tmp_path / "cache"
    path.mkdir()
    path.chmod(0o500)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("make", [_file_in_place, _under_a_file, _read_only],
                         ids=["a file where the directory should be", "a path under a file", "chmod read-only"])
def test_an_unusable_cache_directory_degrades_to_recomputing(kb_path, tmp_path, make):
    cache_dir = make(tmp_path)
    pipeline = Pipeline(stages=[Retrieve(kb="planets", path=kb_path, cache="disk", cache_dir=str(cache_dir))])
    result = ask(pipeline, "What is the hottest planet?")
    assert "unusable" in notes(result)["cache_degraded"] and notes(result)["retrieved"] >= 1


@pytest.mark.slow
def test_a_cache_directory_deleted_between_calls_is_recreated(kb_path, tmp_path):
    cache_dir = tmp_path / "cache"
    pipeline = Pipeline(stages=[Retrieve(kb="planets", path=kb_path, cache="disk", cache_dir=str(cache_dir))])
    ask(pipeline, "Which planet has moons called Phobos?")
    shutil.rmtree(cache_dir)
    result = ask(pipeline, "What is the hottest planet?")
    assert notes(result)["cache_misses"] == 1 and "cache_degraded" not in notes(result)
    assert (cache_dir / "cache.db").exists()  # new entries land in a real file, not an unlinked one
    assert notes(ask(pipeline, "What is the hottest planet?"))["cache_hits"] == 1


# -- a custom stage raising ---------------------------------------------------------------------

class _Broken:
    name = "my_reranker"

    def run(self, context):
        return {}["missing"]  # a bug in a user's stage


class _Refuses:
    name = "my_guard"

    def run(self, context):
        from ctxopt import InputError

        raise InputError("query mentions a blocked topic")


def test_a_custom_stage_raising_is_a_stage_error_naming_the_stage_and_keeping_the_cause():
    with pytest.raises(StageError) as info:
        ask(Pipeline(stages=[_Broken()]), "hello")
    assert info.value.stage == "my_reranker" and "my_reranker" in str(info.value)
    assert isinstance(info.value.__cause__, KeyError)


def test_a_ctxopt_error_from_a_custom_stage_passes_through_with_the_stage_named():
    with pytest.raises(CtxoptError, match="blocked topic") as info:
        ask(Pipeline(stages=[_Refuses()]), "hello")
    assert any("my_guard" in n for n in info.value.__notes__)


def test_the_retrieve_timeout_bounds_a_hanging_qdrant_and_continue_says_it_timed_out(hanging_server):
    stage = Retrieve(kb="planets", url=hanging_server, mode="keyword", on_error="continue", timeout=0.5)
    started = time.perf_counter()
    result = ask(Pipeline(stages=[stage]), "moons of mars")
    assert time.perf_counter() - started < 3  # far below the store's default 5 s: the stage's timeout applies
    assert notes(result)["retrieved"] == 0 and result.messages[-1]["content"] == "moons of mars"
    assert "retrieval timed out" in notes(result)["retrieval_error"]


def test_the_retrieve_timeout_fails_with_a_store_error_saying_how_to_allow_longer(hanging_server):
    pipeline = Pipeline(stages=[Retrieve(kb="planets", url=hanging_server, mode="keyword", timeout=0.5)])
    started = time.perf_counter()
    with pytest.raises(StoreError, match=r"retrieval timed out.*within 1 s \(timeout=0.5\); raise the retrieve "
                                         r"stage's timeout=") as info:
        ask(pipeline, "moons of mars")
    assert time.perf_counter() - started < 3
    assert isinstance(info.value.__cause__, StoreError)  # the store's own error, naming the URL, is kept
    assert any("retrieve" in n for n in info.value.__notes__)


def test_an_ingest_into_a_hanging_qdrant_ends_within_its_write_timeout_and_changes_nothing(hanging_server):
    from ctxopt.embed import CachedEmbedder, HashEmbedder
    from ctxopt.ingest import Document
    from ctxopt.kb import KnowledgeBase
    from ctxopt.stores import QdrantStore

    store = QdrantStore(url=hanging_server, timeout=0.5, write_timeout=1)
    kb = KnowledgeBase("planets", store=store, embedder=CachedEmbedder(HashEmbedder(16), backend="none"))
    started = time.perf_counter()
    with pytest.raises(StoreError, match="Qdrant"):
        kb.ingest([Document(id=d, title=t, text=x) for d, t, x in DOCS], progress=False)
    assert time.perf_counter() - started < 10
    store.close()
