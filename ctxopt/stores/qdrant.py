"""The Qdrant store: one class for embedded Qdrant (in memory or on disk) and Qdrant servers.

>>> store = QdrantStore()  # embedded, in memory
>>> store.create_collection("notes", dim=2, metadata={"avgdl": 3.0})
>>> store.upsert("notes", [Chunk(id="n1", doc_id="n", text="mars has two moons", vector=[1.0, 0.0])])
>>> [h.chunk_id for h in store.search("notes", vector=[1.0, 0.0], text="moons of mars", mode="hybrid")]
['n1']

``QdrantStore(path="./kb")`` keeps the data on disk (one process at a time may open it);
``QdrantStore(url="https://...:6333", api_key=...)`` talks to a server or cluster with the same
code. Each chunk is a point with a ``dense`` vector (cosine) and a ``bm25`` sparse vector whose
IDF Qdrant computes (``Modifier.IDF``), so keyword and hybrid search (prefetch both, then fuse
with RRF or DBSF) run inside Qdrant in every mode.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ctxopt.errors import StoreError
from ctxopt.stores import sparse
from ctxopt.stores.base import PLAIN_RRF, Chunk, Fusion, Hit, check_filters, check_mode

DENSE = "dense"
KEYWORD = "bm25"
URL_ENV = "CTXOPT_QDRANT_URL"
API_KEY_ENV = "CTXOPT_QDRANT_API_KEY"
_POINT_NAMESPACE = uuid.UUID("6f1c3f0e-3a59-4f59-9d0b-1d0c7e2b9a11")  # chunk id -> stable point id
INDEXED_FIELDS = ("doc_id", "tenant", "source", "tags")
DEFAULT_TIMEOUT = 5.0  # seconds a server request may take


def point_id(chunk_id: str) -> str:
    """Qdrant ids are ints or UUIDs; a chunk's point id is a UUID derived from its id."""
    return str(uuid.uuid5(_POINT_NAMESPACE, chunk_id))


class QdrantStore:
    """A :class:`~ctxopt.stores.base.VectorStore` over qdrant-client.

    Give one of ``location`` (":memory:", the default, or a path), ``path`` or ``url``.
    ``timeout`` bounds every server call in seconds, so an unreachable server fails fast with a
    :class:`StoreError` instead of hanging; qdrant-client takes whole seconds, so it is rounded up
    (0.5 -> 1 s). Embedded Qdrant answers in this process, with no request to bound: it ignores
    ``timeout``. The client opens on first use.
    """

    def __init__(
        self,
        location: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if sum(x is not None for x in (location, path, url)) > 1:
            raise StoreError("give QdrantStore one of location, path or url, not several")
        if location is not None and location != ":memory:":
            url, path = (location, None) if location.startswith(("http://", "https://")) else (None, location)
        self.path = str(path) if path is not None else None
        self.url = url
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self.timeout = timeout
        self._client_obj = None
        self._dims: dict[str, int] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

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

    def _client(self):
        with self._lock:
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
            return fn()
        except StoreError:
            raise
        except Exception as exc:
            raise self._error(exc, what, collection) from exc

    def _error(self, exc: Exception, what: str, collection: str | None) -> StoreError:
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

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
            if self._client_obj is not None:
                self._client_obj.close()
                self._client_obj = None

    # -- collections ---------------------------------------------------------------------

    def create_collection(self, name: str, *, dim: int, metadata: Mapping[str, Any]) -> None:
        """A new collection for ``dim``-dimensional vectors; ``metadata`` must hold BM25's ``avgdl``."""
        from qdrant_client import models

        client = self._client()
        self._call("create a collection", lambda: client.create_collection(
            name,
            vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
            sparse_vectors_config={KEYWORD: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            metadata=dict(metadata),
        ), name)
        if self.url:  # embedded Qdrant scans payloads; a server wants indexes for fast filters
            for field in INDEXED_FIELDS:
                self._call("index a payload field", lambda f=field: client.create_payload_index(
                    name, f, field_schema=models.PayloadSchemaType.KEYWORD), name)
        self._dims[name] = dim
        self._meta[name] = dict(metadata)

    def drop_collection(self, name: str) -> None:
        client = self._client()
        self._call("delete a collection", lambda: client.delete_collection(name), name)
        self._dims.pop(name, None)
        self._meta.pop(name, None)

    def collections(self) -> list[str]:
        client = self._client()
        return sorted(c.name for c in self._call("list collections", client.get_collections).collections)

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

    def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` in one request, so readers never see it missing."""
        from qdrant_client import models

        client = self._client()
        ops: list[Any] = []
        if self.alias_target(alias) is not None:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        ops.append(models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)))
        self._call("switch the alias", lambda: client.update_collection_aliases(change_aliases_operations=ops), collection)
        self._dims.pop(alias, None)
        self._meta.pop(alias, None)

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
                vector={DENSE: [float(x) for x in chunk.vector],
                        KEYWORD: models.SparseVector(indices=indices, values=values)},
                payload={**chunk.payload, "chunk_id": chunk.id, "doc_id": chunk.doc_id, "text": chunk.text},
            ))
        client = self._client()
        self._call("upsert points", lambda: client.upsert(collection, points=points, wait=True), collection)

    def delete(self, collection: str, chunk_ids: Sequence[str]) -> None:
        from qdrant_client import models

        if not chunk_ids:
            return
        client = self._client()
        selector = models.PointIdsList(points=[point_id(c) for c in chunk_ids])
        self._call("delete points", lambda: client.delete(collection, points_selector=selector, wait=True), collection)

    def scroll(self, collection: str, *, with_vectors: bool = False) -> Iterator[tuple[Mapping[str, Any], list[float] | None]]:
        """Every point's payload (and dense vector), page by page."""
        client = self._client()
        offset = None
        while True:
            points, offset = self._call("scroll points", lambda o=offset: client.scroll(
                collection, limit=512, offset=o, with_payload=True,
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
    ) -> list[Hit]:
        """The ``k`` best chunks for the query (``vector`` for dense, ``text`` for keyword)."""
        from qdrant_client import models

        check_mode(mode)
        check_filters(filters)
        if mode != "keyword":
            if vector is None:
                raise StoreError(f"{mode} search needs the query vector; embed the query first")
            self._check_dim(collection, len(vector), "the query vector")
        flt = _filter(filters)
        indices, values = sparse.query_vector(text)
        keyword = models.SparseVector(indices=indices, values=values) if indices else None
        dense = [float(x) for x in vector] if vector is not None else None
        if mode == "keyword" and keyword is None:
            return []  # only stopwords or punctuation: no keyword can match
        if mode == "hybrid" and keyword is None:
            mode = "dense"
        args: dict[str, Any] = {"query_filter": flt}
        if mode == "dense":
            args.update(query=dense, using=DENSE)
        elif mode == "keyword":
            args.update(query=keyword, using=KEYWORD)
        else:
            n = max(fusion.candidates, k)
            args.update(prefetch=[models.Prefetch(query=dense, using=DENSE, limit=n, filter=flt),
                                  models.Prefetch(query=keyword, using=KEYWORD, limit=n, filter=flt)],
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
    if fusion.k == 60 and fusion.weights == (1.0, 1.0):
        return models.FusionQuery(fusion=models.Fusion.RRF)  # plain RRF: understood by older servers too
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


_shared: dict[tuple[str | None, str | None, float | None], QdrantStore] = {}
_shared_lock = threading.Lock()


def open_store(*, path: str | None = None, url: str | None = None, api_key: str | None = None,
               timeout: float = DEFAULT_TIMEOUT) -> QdrantStore:
    """The process-wide store for ``path`` or ``url`` (else $CTXOPT_QDRANT_URL, else in memory).

    Sharing matters: an embedded on-disk store can be opened by one client at a time. A server
    store is shared per ``timeout`` too, so a stage asking for a shorter bound gets a client with
    it; an embedded store answers in this process and is one store whatever the timeout.
    """
    if path is None and url is None:
        url = os.environ.get(URL_ENV) or None
    key = (str(path) if path is not None else None, url, timeout if url else None)
    with _shared_lock:
        if key not in _shared:
            if not _shared:
                atexit.register(_close_shared)
            _shared[key] = QdrantStore(path=path, url=url, api_key=api_key, timeout=timeout)
        return _shared[key]


def _close_shared() -> None:
    # Closing before interpreter shutdown releases the on-disk lock cleanly (and avoids
    # qdrant-client's noisy __del__ when modules are already torn down).
    for store in list(_shared.values()):
        with contextlib.suppress(Exception):  # at interpreter exit nothing can be done about a failed close
            store.close()
