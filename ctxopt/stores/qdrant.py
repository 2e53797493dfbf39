"""The Qdrant store: one class for embedded Qdrant (in memory or on disk) and Qdrant servers.

>>> store = QdrantStore()  # embedded, in memory
>>> store.create_collection("notes", dim=2, metadata={"avgdl": 3.0})
>>> store.upsert("notes", [Chunk(id="n1", doc_id="n", text="mars has two moons", vector=[1.0, 0.0])])
>>> [h.chunk_id for h in store.search("notes", vector=[1.0, 0.0], text="moons of mars", mode="hybrid")]
['n1']

``QdrantStore(url="https://...:6333", api_key=...)`` talks to a server or cluster with the same
code; ``QdrantStore(path="./kb")`` is qdrant-client's local mode on disk (one process at a time
may open it; new bases on disk use :class:`~ctxopt.stores.edge.EdgeStore`, which is much faster).
Each chunk is a point with a ``dense`` vector (cosine) and a ``bm25`` sparse vector whose IDF
Qdrant computes (``Modifier.IDF``), so keyword and hybrid search (prefetch both, then fuse with
RRF, its ``k`` always sent, or DBSF) run inside Qdrant in every mode.

On a server, collections are created with the options a cluster needs (``shard_number``,
``replication_factor``, vectors ``on_disk``, ``quantization``), keyword payload indexes with the
tenant field marked ``is_tenant``, and bulk writes get their own longer ``write_timeout``. Many
machines may ingest into one base at once, so nothing can lock it: each alias switch is a
compare-and-swap on a small register collection (``_ctxopt_state``, one point per alias holding
the serving collection, its serving history and an epoch), written with a conditional upsert
(``update_filter`` on the epoch; Qdrant 1.16 or newer) and strong write ordering. The Qdrant
alias then follows the register. A writer that loses the swap gets False and ingests again on
top of the winner's version.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from ctxopt.errors import ConfigError, StoreError
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

URL_ENV = "CTXOPT_QDRANT_URL"
API_KEY_ENV = "CTXOPT_QDRANT_API_KEY"
INDEXED_FIELDS = ("doc_id", "tenant", "source", "tags")
TENANT_FIELD = "tenant"
DEFAULT_TIMEOUT = 5.0  # seconds a server request may take
DEFAULT_WRITE_TIMEOUT = 120.0  # seconds a bulk write (upsert batch, collection creation) may take
STATE_COLLECTION = "_ctxopt_state"  # the alias register; "_" keeps it out of knowledge-base names
QUANTIZATIONS = ("int8", "binary")
_STATE_NAMESPACE = uuid.UUID("0c9a3d55-5d8e-4a0c-9c51-6a3b6f3f1d2e")


class QdrantStore:
    """A :class:`~ctxopt.stores.base.VectorStore` over qdrant-client.

    Give one of ``location`` (":memory:", the default, or a path), ``path`` or ``url``.
    ``timeout`` bounds every server call in seconds, so an unreachable server fails fast with a
    :class:`StoreError` instead of hanging; qdrant-client takes whole seconds, so it is rounded up
    (0.5 -> 1 s). Bulk writes (upserts, collection creation) use ``write_timeout`` instead.
    Embedded Qdrant answers in this process, with no request to bound: it ignores both. The client
    opens on first use.

    Server-side collection options (ignored by embedded Qdrant): ``shard_number`` (spread a
    collection over the cluster's nodes), ``replication_factor`` (copies of each shard),
    ``on_disk`` (dense vectors memory-mapped from disk, for bases larger than RAM) and
    ``quantization`` ("int8" scalar or "binary", kept in RAM and rescored with the originals).
    """

    def __init__(
        self,
        location: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        on_disk: bool = False,
        quantization: Literal["int8", "binary"] | None = None,
    ) -> None:
        if sum(x is not None for x in (location, path, url)) > 1:
            raise StoreError("give QdrantStore one of location, path or url, not several")
        if location is not None and location != ":memory:":
            url, path = (location, None) if location.startswith(("http://", "https://")) else (None, location)
        self.path = str(path) if path is not None else None
        self.url = url
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self.timeout = timeout
        self.write_timeout = write_timeout
        if quantization is not None and quantization not in QUANTIZATIONS:
            raise ConfigError(f"quantization {quantization!r} is unknown; choose from {', '.join(QUANTIZATIONS)} or None")
        for option, value in (("shard_number", shard_number), ("replication_factor", replication_factor)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{option} must be a whole number >= 1 or None, got {value!r}")
        self.shard_number = shard_number
        self.replication_factor = replication_factor
        self.on_disk = on_disk
        self.quantization = quantization
        self._client_obj: Any = None
        self._writer_obj: Any = None
        self._dims: dict[str, int] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._writer_locks: dict[str, threading.RLock] = {}
        self._swap_lock = threading.Lock()
        # Embedded Qdrant (qdrant-client's local mode) keeps its points in numpy arrays with no lock of
        # its own: two threads upserting at once raised IndexError deep inside it. A server serialises
        # for itself, so only embedded calls take this lock.
        self._embedded_lock = threading.RLock()

    def __repr__(self) -> str:
        where = f"url={self.url!r}" if self.url else f"path={self.path!r}" if self.path else "':memory:'"
        return f"QdrantStore({where})"

    @property
    def where(self) -> str:
        return self.url or self.path or ":memory:"

    @property
    def request_seconds(self) -> int:
        """How long a server request may take: ``timeout`` in the whole seconds qdrant-client takes."""
        return max(1, math.ceil(self.timeout))

    # -- connection and errors -------------------------------------------------------------

    def _client(self, write: bool = False):
        """The client; ``write`` asks for the one with the bulk-write timeout (a server's second client)."""
        with self._lock:
            if write and self.url and self._writer_obj is None:
                from qdrant_client import QdrantClient

                self._writer_obj = QdrantClient(url=self.url, api_key=self.api_key,
                                                timeout=max(1, math.ceil(self.write_timeout)), check_compatibility=False)
            if write and self.url:
                return self._writer_obj
            if self._client_obj is None:
                from qdrant_client import QdrantClient

                try:
                    if self.url:
                        self._client_obj = QdrantClient(url=self.url, api_key=self.api_key,
                                                        timeout=self.request_seconds, check_compatibility=False)
                    elif self.path:
                        self._client_obj = QdrantClient(path=self.path)
                    else:
                        self._client_obj = QdrantClient(location=":memory:")
                except Exception as exc:
                    raise StoreError(
                        f"cannot open Qdrant at {self.where} ({type(exc).__name__}: {exc}). An on-disk store "
                        "can be open in one process at a time",
                        hint="close the other process, or run a Qdrant server and pass url=...",
                        cli_hint="close the other process, or run a Qdrant server and give --url (or set "
                                 "url in the retrieve stage of a --pipeline file)"
                    ) from exc
        return self._client_obj

    def _call(self, what: str, fn, collection: str | None = None):
        try:
            with contextlib.nullcontext() if self.url else self._embedded_lock:
                return fn()
        except StoreError:
            raise
        except Exception as exc:
            raise self._error(exc, what, collection) from exc

    def _error(self, exc: Exception, what: str, collection: str | None) -> StoreError:
        from qdrant_client.http.exceptions import (
            ResponseHandlingException,
            UnexpectedResponse,
        )

        text = f"{type(exc).__name__}: {exc}"
        missing = (isinstance(exc, UnexpectedResponse) and exc.status_code == 404) or (
            isinstance(exc, ValueError) and "not found" in str(exc).lower())
        if missing and collection:
            return StoreError(f"collection {collection!r} not found in Qdrant at {self.where} while trying to "
                              f"{what}; ingest documents first (ctxopt ingest ... --kb {collection.split('__v')[0]})")
        if isinstance(exc, (ResponseHandlingException, ConnectionError, TimeoutError, OSError)) or \
                type(exc).__module__.startswith(("httpx", "httpcore", "grpc")):
            return StoreError(f"cannot reach Qdrant at {self.where} to {what} ({text}); check the URL and "
                              "that the server is running", hint="an embedded store (path=...) needs no server",
                              cli_hint="an embedded store (--path DIR, or path in the retrieve stage of a "
                                       "--pipeline file) needs no server")
        return StoreError(f"Qdrant at {self.where} failed to {what}: {text}")

    @property
    def client(self):
        """The underlying ``QdrantClient``, opened on first use, for what ctxopt does not wrap."""
        return self._client()

    def close(self) -> None:
        with self._lock:
            for client in (self._client_obj, self._writer_obj):
                if client is not None:
                    client.close()
            self._client_obj = self._writer_obj = None

    # -- collections ---------------------------------------------------------------------

    def create_collection(self, name: str, *, dim: int, metadata: Mapping[str, Any]) -> None:
        """A new collection for ``dim``-dimensional vectors; ``metadata`` must hold BM25's ``avgdl``."""
        from qdrant_client import models

        client = self._client(write=True)
        exists = CollectionExistsError(f"collection {name!r} already exists in Qdrant at {self.where}")
        if self._exists(name):
            raise exists
        try:
            self._call("create a collection", lambda: client.create_collection(name, **self.collection_options(dim),
                                                                               metadata=dict(metadata)), name)
        except StoreError as error:
            # Another writer created it between the check and this call (a server has no lock of ours):
            # the engine's refusal ("already exists") is the same answer, so its number goes to the next.
            if "already exists" in str(error):
                raise exists from error
            raise
        if self.url:  # embedded Qdrant scans payloads; a server wants indexes for fast filters
            for field in INDEXED_FIELDS:
                schema = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True) \
                    if field == TENANT_FIELD else models.PayloadSchemaType.KEYWORD
                self._call("index a payload field", lambda f=field, s=schema: client.create_payload_index(
                    name, f, field_schema=s), name)
        self._dims[name] = dim
        self._meta[name] = dict(metadata)

    def collection_options(self, dim: int) -> dict[str, Any]:
        """The ``create_collection`` arguments for ``dim``-dimensional chunks with this store's options."""
        from qdrant_client import models

        quantization: Any = None
        if self.quantization == "int8":
            quantization = models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, quantile=0.99, always_ram=True))
        elif self.quantization == "binary":
            quantization = models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True))
        options: dict[str, Any] = {
            "vectors_config": {DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE,
                                                          on_disk=self.on_disk or None)},
            "sparse_vectors_config": {KEYWORD: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        }
        if self.url:
            options.update(shard_number=self.shard_number, replication_factor=self.replication_factor,
                           on_disk_payload=self.on_disk or None, quantization_config=quantization,
                           timeout=max(1, math.ceil(self.write_timeout)))
        return options

    def _exists(self, name: str) -> bool:
        client = self._client()
        return bool(self._call("check a collection", lambda: client.collection_exists(name), name))

    def drop_collection(self, name: str) -> None:
        client = self._client()
        self._call("delete a collection", lambda: client.delete_collection(name), name)
        self._dims.pop(name, None)
        self._meta.pop(name, None)

    def collections(self) -> list[str]:
        client = self._client()
        return sorted(c.name for c in self._call("list collections", client.get_collections).collections
                      if c.name != STATE_COLLECTION)

    def _info(self, collection: str):
        client = self._client()
        info = self._call("read the collection", lambda: client.get_collection(collection), collection)
        vectors = info.config.params.vectors
        if not isinstance(vectors, Mapping) or DENSE not in vectors:
            raise StoreError(f"collection {collection!r} was not made by ctxopt (no {DENSE!r} vector); "
                             "ingest into a new knowledge base name")
        self._dims[collection] = vectors[DENSE].size
        self._meta[collection] = dict(info.config.metadata or {})
        return info

    def dim(self, collection: str) -> int:
        if collection not in self._dims:
            self._info(collection)
        return self._dims[collection]

    def metadata(self, collection: str) -> dict[str, Any]:
        self._info(collection)
        return dict(self._meta[collection])

    def set_metadata(self, collection: str, metadata: Mapping[str, Any]) -> None:
        client = self._client()
        self._call("update collection metadata",
                   lambda: client.update_collection(collection, metadata=dict(metadata)), collection)
        self._meta[collection] = {**self._meta.get(collection, {}), **metadata}

    def count(self, collection: str) -> int:
        client = self._client()
        return self._call("count points", lambda: client.count(collection, exact=True), collection).count

    def alias_target(self, alias: str) -> str | None:
        client = self._client()
        aliases = self._call("read aliases", client.get_aliases).aliases
        return next((a.collection_name for a in aliases if a.alias_name == alias), None)

    def _point_alias(self, alias: str, collection: str) -> None:
        """Point the Qdrant alias at ``collection`` in one request, so readers never see it missing."""
        from qdrant_client import models

        client = self._client()
        ops: list[Any] = []
        if self.alias_target(alias) is not None:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        ops.append(models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)))
        self._call("switch the alias", lambda: client.update_collection_aliases(change_aliases_operations=ops), collection)
        self._dims.pop(alias, None)
        self._meta.pop(alias, None)

    # -- the alias register: compare-and-swap and serving history ----------------------------

    def _register(self, alias: str) -> dict[str, Any]:
        """The alias's register entry, created from the Qdrant alias the first time (a base made
        before the register existed keeps serving what it served)."""
        from qdrant_client import models

        client = self._client()
        if not self._exists(STATE_COLLECTION):
            with contextlib.suppress(StoreError):  # another writer may create it at the same moment
                self._call("create the alias register", lambda: client.create_collection(
                    STATE_COLLECTION, vectors_config={"unit": models.VectorParams(size=1, distance=models.Distance.DOT)},
                    **({"replication_factor": self.replication_factor} if self.url else {})))
        pid = str(uuid.uuid5(_STATE_NAMESPACE, alias))
        consistency = models.ReadConsistencyType.MAJORITY if self.url else None
        for _ in range(2):
            found = self._call("read the alias register", lambda: client.retrieve(
                STATE_COLLECTION, [pid], with_payload=True, consistency=consistency))
            if found:
                return dict(found[0].payload or {})
            target = self.alias_target(alias)
            entry = {"alias": alias, "epoch": 0, "serving": target, "history": [target] if target else [], "writer": ""}
            self._call("start the alias register", lambda e=entry: client.upsert(
                STATE_COLLECTION, [models.PointStruct(id=pid, vector={"unit": [1.0]}, payload=e)],
                update_mode=models.UpdateMode.INSERT_ONLY, ordering=self._ordering()))
        raise StoreError(f"the alias register of {alias!r} in Qdrant at {self.where} cannot be read back; check the "
                         f"server's health and the {STATE_COLLECTION!r} collection")

    def _ordering(self):
        from qdrant_client import models

        return models.WriteOrdering.STRONG if self.url else None

    def alias_history(self, alias: str) -> list[str]:
        entry = self._register(alias)
        history = [str(c) for c in entry.get("history") or []]
        target = self.alias_target(alias)
        if target is not None and (not history or history[-1] != target):
            history.append(target)
        return history

    def switch_alias(self, alias: str, collection: str, *, expected: str | None,
                     history: Sequence[str] | None = None) -> bool:
        """Point ``alias`` at ``collection`` if the register still says ``expected`` serves; record
        ``history`` (default: the old history with ``collection`` pushed). False if another writer
        switched it first. The swap is a conditional upsert on the register's epoch; the token
        read back says who won; then the Qdrant alias is set to what the register says."""
        if not self._exists(collection):
            raise StoreError(f"cannot serve collection {collection!r}: it does not exist in Qdrant at {self.where}")
        # a server applies the conditional upsert atomically; qdrant-client's local mode checks the
        # filter and writes in two steps, so in this process the swap also takes a lock
        with contextlib.nullcontext() if self.url else self._swap_lock:
            return self._swap(alias, collection, expected, history)

    def _swap(self, alias: str, collection: str, expected: str | None, history: Sequence[str] | None) -> bool:
        from qdrant_client import models

        entry = self._register(alias)
        if entry.get("serving") != expected:
            return False
        token = uuid.uuid4().hex
        new = {"alias": alias, "epoch": int(entry.get("epoch", 0)) + 1, "serving": collection, "writer": token,
               "history": list(history) if history is not None else next_history(entry.get("history") or [], collection)}
        pid = str(uuid.uuid5(_STATE_NAMESPACE, alias))
        same_epoch = models.Filter(must=[models.FieldCondition(key="epoch", match=models.MatchValue(
            value=int(entry.get("epoch", 0))))])
        client = self._client()
        self._call("swap the alias register", lambda: client.upsert(
            STATE_COLLECTION, [models.PointStruct(id=pid, vector={"unit": [1.0]}, payload=new)],
            update_filter=same_epoch, update_mode=models.UpdateMode.UPDATE_ONLY, ordering=self._ordering()))
        if self._register(alias).get("writer") != token:
            return False
        self._follow_register(alias)
        return True

    def _follow_register(self, alias: str) -> None:
        """Set the Qdrant alias to the register's collection until both agree. Every writer ends
        with this, so the writer that swapped last also sets the alias last."""
        for _ in range(20):
            serving = self._register(alias).get("serving")
            if serving is None or self.alias_target(alias) == serving:
                return
            self._point_alias(alias, str(serving))

    def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` whatever it served before (pushed on its history)."""
        while not self.switch_alias(alias, collection, expected=self._register(alias).get("serving")):
            pass

    @contextlib.contextmanager
    def writer_lock(self, name: str, timeout: float | None = None) -> Iterator[bool]:
        """Embedded Qdrant lives in this process (on disk, in one process at a time), so a thread
        lock serialises its writers: yields True. A server is shared by machines no lock here can
        reach: yields False at once, and :meth:`switch_alias` catches a writer that came first."""
        if self.url:
            yield False
            return
        with self._lock:
            lock = self._writer_locks.setdefault(name, threading.RLock())
        if not lock.acquire(timeout=-1 if timeout is None else timeout):
            raise StoreError(f"knowledge base {name!r} is being written by another thread and stayed locked for "
                             f"{timeout:g} s; retry when that ingest has finished")
        try:
            yield True
        finally:
            lock.release()

    def seal(self, collection: str) -> None:
        """Nothing to do: a server indexes in the background and embedded Qdrant has no index."""

    # -- points --------------------------------------------------------------------------

    def _check_dim(self, collection: str, size: int, what: str) -> None:
        dim = self.dim(collection)
        if size != dim:
            raise StoreError(f"{what} has dimension {size} but collection {collection!r} holds {dim}-dimensional "
                             "vectors; use the embedding model the knowledge base was built with, or re-ingest "
                             "into a new knowledge base")

    def upsert(self, collection: str, chunks: Sequence[Chunk]) -> None:
        """Write ``chunks``; a chunk with an existing id replaces it."""
        from qdrant_client import models

        if not chunks:
            return
        meta = self._meta.get(collection) or self.metadata(collection)
        avgdl, k1, b = float(meta.get("avgdl", 100.0)), float(meta.get("k1", sparse.K1)), float(meta.get("b", sparse.B))
        points = []
        for chunk in chunks:
            self._check_dim(collection, len(chunk.vector), f"chunk {chunk.id!r}")
            indices, values = sparse.doc_vector(chunk.text, avgdl, k1=k1, b=b)
            points.append(models.PointStruct(
                id=point_id(chunk.id),
                vector={DENSE: as_floats(chunk.vector),
                        KEYWORD: models.SparseVector(indices=indices, values=values)},
                payload={**chunk.payload, "chunk_id": chunk.id, "doc_id": chunk.doc_id, "text": chunk.text},
            ))
        client = self._client(write=True)
        self._call("upsert points", lambda: client.upsert(collection, points=points, wait=True), collection)

    def delete(self, collection: str, chunk_ids: Sequence[str]) -> None:
        from qdrant_client import models

        if not chunk_ids:
            return
        client = self._client()
        selector = models.PointIdsList(points=[point_id(c) for c in chunk_ids])
        self._call("delete points", lambda: client.delete(collection, points_selector=selector, wait=True), collection)

    def scroll(self, collection: str, *, with_vectors: bool = False, fields: Sequence[str] | None = None,
               ) -> Iterator[tuple[Mapping[str, Any], list[float] | None]]:
        """Every point's payload (only ``fields`` if given) and dense vector, page by page."""
        client = self._client()
        offset = None
        while True:
            points, offset = self._call("scroll points", lambda o=offset: client.scroll(
                collection, limit=512, offset=o, with_payload=list(fields) if fields else True,
                with_vectors=[DENSE] if with_vectors else False), collection)
            for p in points:
                vector = p.vector.get(DENSE) if with_vectors and isinstance(p.vector, Mapping) else None
                yield p.payload or {}, vector
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
        from qdrant_client import models

        run, indices, values = plan_query(mode, vector, text, filters)
        if run is None:
            return []
        if vector is not None and mode != "keyword":
            self._check_dim(collection, len(vector), "the query vector")
        flt = _filter(filters)
        keyword = models.SparseVector(indices=indices, values=values) if indices else None
        dense = as_floats(vector) if vector is not None else None
        mode = run
        params = models.SearchParams(exact=True) if exact and self.url else None  # local mode is always exact
        args: dict[str, Any] = {"query_filter": flt, "search_params": params}
        if mode == "dense":
            args.update(query=dense, using=DENSE)
        elif mode == "keyword":
            args.update(query=keyword, using=KEYWORD)
        else:
            n = max(fusion.candidates, k)
            args.update(prefetch=[models.Prefetch(query=dense, using=DENSE, limit=n, filter=flt, params=params),
                                  models.Prefetch(query=keyword, using=KEYWORD, limit=n, filter=flt, params=params)],
                        query=_fusion_query(fusion))
        client = self._client()
        if group_by_doc:
            groups = self._call("search", lambda: client.query_points_groups(
                collection, group_by="doc_id", group_size=1, limit=k, with_payload=True, **args), collection).groups
            points = [g.hits[0] for g in groups if g.hits]
        else:
            points = self._call("search", lambda: client.query_points(
                collection, limit=k, with_payload=True, **args), collection).points
        return [Hit(chunk_id=p.payload.get("chunk_id", str(p.id)), doc_id=str(p.payload.get("doc_id", "")),
                    text=p.payload.get("text", ""), score=float(p.score), payload=p.payload) for p in points]


def timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it wraps) is a request that ran out of time rather than one refused."""
    import httpx  # qdrant-client's HTTP library

    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        err = stack.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, (TimeoutError, httpx.TimeoutException)):
            return True
        source = getattr(err, "source", None)  # qdrant-client's ResponseHandlingException keeps the transport error here
        stack += [err.__cause__, err.__context__, source if isinstance(source, BaseException) else None]
    return False


def _fusion_query(fusion: Fusion):
    from qdrant_client import models

    if fusion.method == "dbsf":
        return models.FusionQuery(fusion=models.Fusion.DBSF)
    # k always explicit: a bare Fusion.RRF makes Qdrant score with its own default (k=2), not k=60
    return models.RrfQuery(rrf=models.Rrf(k=fusion.k, weights=list(fusion.weights)))


def _filter(filters: Mapping[str, Any] | None):
    from qdrant_client import models

    if not filters:
        return None
    must: list[models.Condition] = []
    for field, value in filters.items():
        if isinstance(value, (list, tuple, set, frozenset)):
            must.append(models.FieldCondition(key=field, match=models.MatchAny(any=[str(v) for v in value])))
        else:
            must.append(models.FieldCondition(key=field, match=models.MatchValue(value=str(value))))
    return models.Filter(must=must)


def open_store(**kwargs: Any):
    """Kept for imports from before the Edge store: see :func:`ctxopt.stores.shared.open_store`."""
    from ctxopt.stores.shared import open_store as shared_open_store

    return shared_open_store(**kwargs)
