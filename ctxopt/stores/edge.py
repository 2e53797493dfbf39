"""The Qdrant Edge store: Qdrant's own engine inside this process, the default for bases on disk.

>>> store = EdgeStore()  # a temporary folder, removed on close
>>> store.create_collection("notes", dim=2, metadata={"avgdl": 3.0})
>>> store.upsert("notes", [Chunk(id="n1", doc_id="n", text="mars has two moons", vector=[1.0, 0.0])])
>>> store.seal("notes")
>>> [h.chunk_id for h in store.search("notes", vector=[1.0, 0.0], text="moons of mars", mode="hybrid")]
['n1']
>>> store.close()

Qdrant Edge (``qdrant-edge-py``) runs HNSW for the dense vectors, an inverted index for the BM25
vectors (IDF applied by the engine), payload indexes, filters and RRF/DBSF fusion natively, so a
hybrid query at 100k chunks takes milliseconds where qdrant-client's local mode, which scores in
Python, takes seconds. An Edge shard is one folder with no collections, aliases or collection
metadata. This store builds the smallest thing around it that ``ctxopt.kb`` needs:

``<path>/ctxopt-edge.json``
    the collections (dimension and metadata), the aliases and each alias's serving history. It is
    rewritten whole to a temporary file, synced and renamed over the old one, so a reader or a
    killed writer only ever sees the old state or the new; ``locks/.state.lock`` serialises the
    read-modify-write cycles of threads and processes. An alias switch is one such rewrite.
``<path>/shards/<collection>/``
    one Edge shard per collection version (write-ahead log and segments).
``<path>/locks/<name>.lock``
    the writer lock of knowledge base ``name`` (see :meth:`EdgeStore.writer_lock`).

Edge locks a shard folder to one open handle: the store shares its handles between threads,
and a second process waits for a shard up to ``open_timeout`` and then gets a
:class:`StoreError`. Writers hand their shards back when they release the writer lock, so two
processes can take turns ingesting into one base; a process that keeps searching a base keeps
its serving shard open, so ingest from that process (or use a Qdrant server for many processes).
Edge has no background optimiser: :meth:`seal` builds the HNSW index once a version is written.
Grouping by document happens here, over the engine's ranked hits.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ctxopt.errors import StoreError
from ctxopt.stores import sparse
from ctxopt.stores.base import (
    DENSE,
    KEYWORD,
    PLAIN_RRF,
    Chunk,
    CollectionExistsError,
    Fusion,
    Hit,
    as_floats,
    next_history,
    plan_query,
    point_id,
)
from ctxopt.stores.locks import DEFAULT_LOCK_TIMEOUT, FileLock, ReadWriteLock

STATE_FILE = "ctxopt-edge.json"
FORMAT = 1
INDEXED_FIELDS = ("doc_id", "tenant", "source", "tags")
TENANT_FIELD = "tenant"  # indexed with is_tenant, so the engine keeps each tenant's points together
DEFAULT_OPEN_TIMEOUT = 10.0  # seconds to wait for a shard another process has open
# HNSW beam width for searches: at 20k real chunks it lifts hybrid top-10 recall against exact
# search from 0.989 (the engine's default) to 0.991 for +1 ms p95; a search asking for more results
# than this widens the beam to its limit anyway
DEFAULT_HNSW_EF = 128
HNSW_FULL_SCAN_KB = 10_000  # below this many KB of vectors a segment is searched exactly, as in Qdrant
# The HNSW graph (links per node m, build beam ef_construct) by the size of the base, measured on
# SciFact plus distractors against exact search. Qdrant's default, m=16 with ef_construct=100, left
# dense search 0.009 nDCG@10 below exact search at 100k chunks; ef_construct=256 closes that gap
# (recall@10 0.991 -> 0.997) for 20% more build time. At 200k chunks that graph loses 0.007 more
# nDCG@10 than exact search (dense), and a search beam of 512 only halves it; m=32 with
# ef_construct=512 matches exact search there at the default beam, for about twice the build time
# per chunk, so only bases past LARGE_BASE_CHUNKS pay for it (the 100k build stays under 3 minutes).
SMALL_GRAPH = (16, 256)
LARGE_GRAPH = (32, 512)
LARGE_BASE_CHUNKS = 150_000
PAGE = 1024


def is_edge_folder(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / STATE_FILE).is_file()


def graph_for(chunks: int) -> tuple[int, int]:
    """The HNSW graph ``(m, ef_construct)`` a base of ``chunks`` points is built with.

    >>> graph_for(100_000)
    (16, 256)
    >>> graph_for(200_000)
    (32, 512)
    """
    return LARGE_GRAPH if chunks > LARGE_BASE_CHUNKS else SMALL_GRAPH


class EdgeStore:
    """A :class:`~ctxopt.stores.base.VectorStore` on Qdrant Edge shards in the folder ``path``.

    ``path=None`` makes a temporary folder that :meth:`close` (or the end of the process) removes:
    a throwaway base with Edge's speed. ``hnsw_ef`` is the dense search beam (None: the engine's
    default; wider finds more of the exact neighbours, a little slower). ``m`` (links per node) and
    ``ef_construct`` (build beam) shape the HNSW graph: higher builds a better graph, slower; None
    (the default) chooses by the size of the version when it is sealed (:func:`graph_for`), as
    measured for accuracy against exact search. ``lock_timeout`` bounds
    how long an ingest waits for another one into the same base; ``open_timeout`` how long to
    wait for a shard another process has open. ``timeout`` is accepted for symmetry with
    :class:`~ctxopt.stores.qdrant.QdrantStore` and ignored: Edge answers in this process, with no
    request to bound.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, hnsw_ef: int | None = DEFAULT_HNSW_EF,
                 m: int | None = None, ef_construct: int | None = None,
                 lock_timeout: float = DEFAULT_LOCK_TIMEOUT, open_timeout: float = DEFAULT_OPEN_TIMEOUT,
                 timeout: float | None = None) -> None:
        self.temporary = path is None
        self.path = Path(tempfile.mkdtemp(prefix="ctxopt-edge-") if path is None else path).absolute()
        self.hnsw_ef = hnsw_ef
        self.m = m
        self.ef_construct = ef_construct
        self.lock_timeout = lock_timeout
        self.open_timeout = open_timeout
        self.timeout = timeout
        self._shards: dict[str, Any] = {}
        self._handles = ReadWriteLock()  # searches share the open shards; closing one waits for them
        self._opening = threading.Lock()
        self._state_cache: tuple[tuple[int, int, int, int], dict[str, Any]] | None = None
        self._state_lock = FileLock(self.path / "locks" / ".state.lock", what=f"the Edge store state at {self.path}")
        self._writer_locks: dict[str, FileLock] = {}
        self._guard = threading.Lock()
        if self.temporary:
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)

    def __repr__(self) -> str:
        return f"EdgeStore({'temporary' if self.temporary else str(self.path)!r})"

    @property
    def where(self) -> str:
        return str(self.path)

    # -- state file ----------------------------------------------------------------------

    def _state_path(self) -> Path:
        return self.path / STATE_FILE

    def _read_state(self) -> dict[str, Any]:
        """The current state (shared: callers must not change it); re-read when the file changed."""
        path = self._state_path()
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return {"format": FORMAT, "collections": {}, "aliases": {}, "history": {}}
        key = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        cached = self._state_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"the Edge store state {path} is unreadable ({exc}); restore it from a backup, or "
                             "move the folder away and ingest again") from exc
        if state.get("format") != FORMAT:
            raise StoreError(f"the Edge store at {self.path} has format {state.get('format')!r}; this ctxopt "
                             f"reads format {FORMAT}: upgrade ctxopt, or ingest into a new folder")
        self._state_cache = (key, state)
        return state

    @contextlib.contextmanager
    def _changing_state(self) -> Iterator[dict[str, Any]]:
        """A private copy of the latest state to change; written atomically on a clean exit."""
        with self._state_lock.hold(self.lock_timeout):
            state = copy.deepcopy(self._read_state())
            yield state
            self.path.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.path)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(state, out, indent=1, sort_keys=True)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self._state_path())
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            with contextlib.suppress(OSError):  # make the rename itself durable
                dir_fd = os.open(self.path, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            self._state_cache = None

    def _resolve(self, name: str) -> str:
        state = self._read_state()
        target = state["aliases"].get(name, name)
        if target not in state["collections"]:
            raise StoreError(f"collection {name!r} not found in the Edge store at {self.path}; ingest documents "
                             f"first (ctxopt ingest ... --kb {name.split('__v')[0]})")
        return target

    # -- shards --------------------------------------------------------------------------

    def _shard_dir(self, collection: str) -> Path:
        return self.path / "shards" / collection

    def _open(self, collection: str):
        from qdrant_edge import EdgeShard

        with self._opening:
            if collection in self._shards:
                return self._shards[collection]
            folder = self._shard_dir(collection)
            if not folder.is_dir():
                raise StoreError(f"collection {collection!r} has no shard folder at {folder}; the store was changed "
                                 "outside ctxopt: ingest again into a new knowledge base")
            deadline = time.monotonic() + self.open_timeout
            while True:
                try:
                    shard = EdgeShard.load(str(folder))
                    break
                except Exception as exc:
                    busy = "WouldBlock" in str(exc) or "lock" in str(exc).lower()
                    if not busy:
                        raise self._error(exc, "open a shard", collection) from exc
                    if time.monotonic() >= deadline:
                        raise StoreError(
                            f"collection {collection!r} in the Edge store at {self.path} is open in another "
                            f"process (waited {self.open_timeout:g} s). An embedded store serves one process at a "
                            "time per collection: run searches and ingests in one process, stop the other one, "
                            "or share a Qdrant server (url=...)") from exc
                    time.sleep(0.05)
            self._shards[collection] = shard
            return shard

    @contextlib.contextmanager
    def _using(self, collection: str) -> Iterator[Any]:
        """An open shard of ``collection`` (an alias resolves first), safe from being closed meanwhile."""
        with self._handles.read():
            yield self._shards.get(collection) or self._open(collection)

    def _close_shards(self, collections: Sequence[str] | None = None) -> None:
        with self._handles.write():
            for name in list(self._shards) if collections is None else collections:
                shard = self._shards.pop(name, None)
                if shard is not None:
                    with contextlib.suppress(Exception):
                        shard.flush()
                    shard.close()

    def release(self) -> None:
        """Close every open shard (they reopen on the next use), so another process can open them."""
        self._close_shards()

    def close(self) -> None:
        self._close_shards()
        if self.temporary:
            self._finalizer()

    def _error(self, exc: Exception, what: str, collection: str | None = None) -> StoreError:
        where = f" collection {collection!r}" if collection else ""
        return StoreError(f"Qdrant Edge at {self.path} failed to {what}{where}: {type(exc).__name__}: {exc}")

    # -- collections ---------------------------------------------------------------------

    def create_collection(self, name: str, *, dim: int, metadata: Mapping[str, Any]) -> None:
        """A new collection for ``dim``-dimensional vectors; ``metadata`` must hold BM25's ``avgdl``."""
        from qdrant_edge import EdgeShard, KeywordIndexParams, PayloadSchemaType, UpdateOperation

        if name in self._read_state()["collections"]:
            raise CollectionExistsError(f"collection {name!r} already exists in the Edge store at {self.path}")
        folder = self._shard_dir(name)
        if folder.exists():  # a folder the state never listed: left by a create that was killed
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            shard = EdgeShard.create(str(folder), self._config(dim, self._graph(0)))
            for field in INDEXED_FIELDS:
                schema = KeywordIndexParams(is_tenant=True) if field == TENANT_FIELD else PayloadSchemaType.Keyword
                shard.update(UpdateOperation.create_field_index(field, schema))
        except Exception as exc:
            raise self._error(exc, "create", name) from exc
        with self._opening:
            self._shards[name] = shard
        # the state lists the collection only once its shard exists, so the state never names a
        # shard that is not there; a folder without a state entry is garbage (removed above)
        with self._changing_state() as state:
            if name in state["collections"]:  # another process created it meanwhile
                raise CollectionExistsError(f"collection {name!r} already exists in the Edge store at {self.path}")
            state["collections"][name] = {"dim": int(dim), "metadata": dict(metadata)}

    def _graph(self, chunks: int) -> tuple[int, int]:
        m, ef_construct = graph_for(chunks)
        return self.m or m, self.ef_construct or ef_construct

    @staticmethod
    def _config(dim: int, graph: tuple[int, int]):
        from qdrant_edge import (
            Distance,
            EdgeConfig,
            EdgeSparseVectorParams,
            EdgeVectorParams,
            HnswIndexConfig,
            Modifier,
        )

        m, ef_construct = graph
        return EdgeConfig(vectors={DENSE: EdgeVectorParams(size=dim, distance=Distance.Cosine)},
                          sparse_vectors={KEYWORD: EdgeSparseVectorParams(modifier=Modifier.Idf)},
                          hnsw_config=HnswIndexConfig(m=m, ef_construct=ef_construct,
                                                      full_scan_threshold=HNSW_FULL_SCAN_KB))

    def drop_collection(self, name: str) -> None:
        with self._changing_state() as state:
            state["collections"].pop(name, None)
            for alias in [a for a, target in state["aliases"].items() if target == name]:
                del state["aliases"][alias]  # as a Qdrant server does: an alias dies with its collection
        self._close_shards([name])
        shutil.rmtree(self._shard_dir(name), ignore_errors=True)

    def collections(self) -> list[str]:
        return sorted(self._read_state()["collections"])

    def dim(self, collection: str) -> int:
        return int(self._read_state()["collections"][self._resolve(collection)]["dim"])

    def metadata(self, collection: str) -> dict[str, Any]:
        return dict(self._read_state()["collections"][self._resolve(collection)]["metadata"])

    def set_metadata(self, collection: str, metadata: Mapping[str, Any]) -> None:
        name = self._resolve(collection)
        with self._changing_state() as state:
            if name not in state["collections"]:
                raise StoreError(f"collection {name!r} was dropped while its metadata was being set")
            state["collections"][name]["metadata"].update(metadata)

    def count(self, collection: str) -> int:
        from qdrant_edge import CountRequest

        name = self._resolve(collection)
        with self._using(name) as shard:
            try:
                return int(shard.count(CountRequest(exact=True)))
            except Exception as exc:
                raise self._error(exc, "count points in", name) from exc

    # -- aliases and serving history -----------------------------------------------------

    def alias_target(self, alias: str) -> str | None:
        return self._read_state()["aliases"].get(alias)

    def alias_history(self, alias: str) -> list[str]:
        state = self._read_state()
        history = list(state["history"].get(alias, []))
        target = state["aliases"].get(alias)
        if target is not None and (not history or history[-1] != target):
            history.append(target)
        return history

    def switch_alias(self, alias: str, collection: str, *, expected: str | None,
                     history: Sequence[str] | None = None) -> bool:
        """Point ``alias`` at ``collection`` if it still points at ``expected``; record ``history``
        (default: the old history with ``collection`` pushed). False if another writer switched it."""
        with self._changing_state() as state:
            if collection not in state["collections"]:
                raise StoreError(f"cannot serve collection {collection!r}: it does not exist in the Edge store at "
                                 f"{self.path}")
            if state["aliases"].get(alias) != expected:
                return False  # the unchanged copy is written back: harmless
            state["aliases"][alias] = collection
            state["history"][alias] = list(history) if history is not None else \
                next_history(state["history"].get(alias, []), collection)
        return True

    def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` whatever it pointed at, in one atomic step."""
        while not self.switch_alias(alias, collection, expected=self.alias_target(alias)):
            pass

    @contextlib.contextmanager
    def writer_lock(self, name: str, timeout: float | None = None) -> Iterator[bool]:
        """Hold the writer lock of knowledge base ``name``: threads and processes take turns.

        Yields True (exclusive). On release the shards this process opened are closed, so the
        next writer, in this process or another, can open them.
        """
        with self._guard:
            lock = self._writer_locks.setdefault(name, FileLock(
                self.path / "locks" / f"{name}.lock", what=f"knowledge base {name!r} in the Edge store at {self.path}"))
        outer = not lock.held()
        with lock.hold(self.lock_timeout if timeout is None else timeout):
            try:
                yield True
            finally:
                if outer:
                    self.release()

    # -- points --------------------------------------------------------------------------

    def _check_dim(self, collection: str, size: int, what: str) -> None:
        dim = self.dim(collection)
        if size != dim:
            raise StoreError(f"{what} has dimension {size} but collection {collection!r} holds {dim}-dimensional "
                             "vectors; use the embedding model the knowledge base was built with, or re-ingest "
                             "into a new knowledge base")

    def upsert(self, collection: str, chunks: Sequence[Chunk]) -> None:
        """Write ``chunks`` in one engine update; a chunk with an existing id replaces it."""
        from qdrant_edge import Point, SparseVector, UpdateOperation

        if not chunks:
            return
        name = self._resolve(collection)
        meta = self._read_state()["collections"][name]["metadata"]
        avgdl, k1, b = float(meta.get("avgdl", 100.0)), float(meta.get("k1", sparse.K1)), float(meta.get("b", sparse.B))
        dim = self.dim(name)
        points = []
        for chunk in chunks:
            if len(chunk.vector) != dim:
                self._check_dim(name, len(chunk.vector), f"chunk {chunk.id!r}")
            indices, values = sparse.doc_vector(chunk.text, avgdl, k1=k1, b=b)
            points.append(Point(id=point_id(chunk.id), vector={
                DENSE: as_floats(chunk.vector), KEYWORD: SparseVector(indices=indices, values=values)},
                payload={**chunk.payload, "chunk_id": chunk.id, "doc_id": chunk.doc_id, "text": chunk.text}))
        with self._using(name) as shard:
            try:
                shard.update(UpdateOperation.upsert_points(points))
            except Exception as exc:
                raise self._error(exc, "upsert points into", name) from exc

    def delete(self, collection: str, chunk_ids: Sequence[str]) -> None:
        from qdrant_edge import UpdateOperation

        if not chunk_ids:
            return
        name = self._resolve(collection)
        with self._using(name) as shard:
            try:
                shard.update(UpdateOperation.delete_points([point_id(c) for c in chunk_ids]))
            except Exception as exc:
                raise self._error(exc, "delete points from", name) from exc

    def seal(self, collection: str) -> None:
        """Build the HNSW index and merge segments (Edge optimises only when asked), then flush.

        The graph is chosen here, now that the version's size is known (:func:`graph_for`): when it
        differs from the one the shard was created with, the shard reopens with the new graph
        settings before the index is built. Nobody searches a version before it is sealed.
        """
        name = self._resolve(collection)
        graph = self._graph(self.count(name))
        if graph != self._graph(0):
            self._regraph(name, graph)
        with self._using(name) as shard:
            try:
                shard.optimize()
                shard.flush()
            except Exception as exc:
                raise self._error(exc, "optimise", name) from exc

    def _regraph(self, name: str, graph: tuple[int, int]) -> None:
        from qdrant_edge import EdgeShard

        dim = int(self._read_state()["collections"][name]["dim"])
        self._close_shards([name])
        with self._opening:
            try:  # Edge checks the new settings against the shard's and writes them to its config
                self._shards[name] = EdgeShard.load(str(self._shard_dir(name)), self._config(dim, graph))
            except Exception as exc:
                raise self._error(exc, f"set the HNSW graph (m, ef_construct) {graph} of", name) from exc

    def scroll(self, collection: str, *, with_vectors: bool = False, fields: Sequence[str] | None = None,
               ) -> Iterator[tuple[Mapping[str, Any], list[float] | None]]:
        """Every point's payload (only ``fields`` if given) and dense vector, page by page."""
        from qdrant_edge import ScrollRequest

        name = self._resolve(collection)
        offset = None
        while True:
            with self._using(name) as shard:
                try:
                    records, offset = shard.scroll(ScrollRequest(offset=offset, limit=PAGE,
                                                                 with_payload=list(fields) if fields else True,
                                                                 with_vector=[DENSE] if with_vectors else False))
                except Exception as exc:
                    raise self._error(exc, "scroll points of", name) from exc
            for record in records:
                vector = record.vector.get(DENSE) if with_vectors and isinstance(record.vector, Mapping) else None
                yield record.payload or {}, vector
            if offset is None:
                return

    # -- search --------------------------------------------------------------------------

    def search(
        self,
        collection: str,
        *,
        vector: Sequence[float] | None,
        text: str,
        mode: str = "hybrid",
        k: int = 5,
        filters: Mapping[str, Any] | None = None,
        fusion: Fusion = PLAIN_RRF,
        group_by_doc: bool = False,
        exact: bool = False,
    ) -> list[Hit]:
        """The ``k`` best chunks for the query (``vector`` for dense, ``text`` for keyword)."""
        from qdrant_edge import Prefetch, Query, SearchParams, SparseVector

        run, indices, values = plan_query(mode, vector, text, filters)
        if run is None:
            return []
        keyword = Query.Nearest(SparseVector(indices=indices, values=values), using=KEYWORD) if indices else None
        dense = Query.Nearest(as_floats(vector), using=DENSE) if vector is not None else None
        for attempt in range(2):  # a version dropped between resolving and opening: resolve again
            name = self._resolve(collection)
            if vector is not None and mode != "keyword":
                self._check_dim(name, len(vector), "the query vector")
            params = SearchParams(exact=True) if exact else SearchParams(hnsw_ef=self.hnsw_ef) if self.hnsw_ef else None
            flt = _filter(filters)
            if run == "hybrid":
                n = max(fusion.candidates, k)
                prefetches = [Prefetch(limit=n, query=dense, filter=flt, params=params),
                              Prefetch(limit=n, query=keyword, filter=flt, params=params)]
                limit = 2 * n if group_by_doc else k
                request = {"query": _fusion(fusion), "prefetches": prefetches, "limit": limit}
            else:
                request = {"query": dense if run == "dense" else keyword, "limit": k}
            try:
                return self._query(name, request, flt, params, k, group_by_doc, grow=run != "hybrid")
            except StoreError:
                if attempt or name in self._read_state()["collections"]:
                    raise
        raise AssertionError("unreachable")

    def _query(self, name: str, request: dict[str, Any], flt, params, k: int, group_by_doc: bool,
               grow: bool) -> list[Hit]:
        from qdrant_edge import QueryRequest

        limit = request.pop("limit")
        if group_by_doc:
            limit = max(limit, 4 * k)
        while True:
            with self._using(name) as shard:
                try:
                    points = shard.query(QueryRequest(limit=limit, filter=flt, params=params, with_payload=True,
                                                      **request))
                except Exception as exc:
                    raise self._error(exc, "search", name) from exc
            hits = [Hit(chunk_id=p.payload.get("chunk_id", str(p.id)), doc_id=str(p.payload.get("doc_id", "")),
                        text=p.payload.get("text", ""), score=float(p.score), payload=p.payload)
                    for p in points if p.payload is not None]
            if not group_by_doc:
                return hits[:k]
            best: dict[str, Hit] = {}
            for hit in hits:  # ranked best first: a document's first hit is its best chunk
                best.setdefault(hit.doc_id, hit)
            if len(best) >= k or len(points) < limit or not grow:
                return list(best.values())[:k]
            limit *= 4  # many chunks of few documents at the top: look deeper


def _fusion(fusion: Fusion):
    from qdrant_edge import Fusion as EdgeFusion

    if fusion.method == "dbsf":
        return EdgeFusion.Dbsf()
    return EdgeFusion.Rrf(k=fusion.k, weights=list(fusion.weights))  # k always explicit


def _filter(filters: Mapping[str, Any] | None):
    from qdrant_edge import FieldCondition, Filter, MatchAny, MatchValue

    if not filters:
        return None
    must: list[Any] = []
    for field, value in filters.items():
        if isinstance(value, (list, tuple, set, frozenset)):
            must.append(FieldCondition(key=field, match=MatchAny([str(v) for v in value])))
        else:
            must.append(FieldCondition(key=field, match=MatchValue(str(value))))
    return Filter(must=must)
