"""The vector-store protocol: what ingestion and the retrieve stage need from a store.

A store holds collections of chunks, each with a dense vector, a keyword (sparse BM25) vector
and a payload, and names the serving version of a knowledge base with an alias. Rules:

1. ``search`` runs dense, keyword and hybrid search inside the store and returns the best chunks
   first; with ``group_by_doc`` it returns each document once, scored by its best chunk; with
   ``exact`` it scores every point instead of walking the approximate (HNSW) index.
2. Hybrid search fuses inside the store with the :class:`Fusion` it is given, RRF's ``k``
   included: every backend sends ``k`` explicitly (Qdrant's plain RRF would use k=2).
3. ``set_alias`` and ``switch_alias`` switch an alias in one atomic step: readers see the old
   version or the new. ``switch_alias`` is a compare-and-swap: it switches only while the alias
   still points where the caller last saw it, and returns False otherwise, so two writers can
   never both win. Each switch records the alias's serving history (a stack, newest last), which
   rollback follows.
4. ``writer_lock(name)`` serialises the writers of one knowledge base where the store can: an
   embedded store across threads and processes (it yields True, exclusive). A server shared by
   many machines cannot, so it yields False at once and the compare-and-swap catches a writer
   that got there first.
5. ``seal`` is called once when a collection is fully written: the store builds what makes it
   fast (an index) and makes it durable before the alias can point at it.
6. Failures raise :class:`~ctxopt.errors.StoreError` saying what was wrong and how to fix it.

Backends: :class:`~ctxopt.stores.edge.EdgeStore` (Qdrant Edge, embedded, the default on disk)
and :class:`~ctxopt.stores.qdrant.QdrantStore` (qdrant-client: in memory, and Qdrant servers).
``tests/stores/test_conformance.py`` runs the same checks against each.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol, runtime_checkable

from ctxopt.errors import ConfigError, StoreError

Mode = Literal["dense", "keyword", "hybrid"]
MODES: tuple[str, ...] = ("dense", "keyword", "hybrid")
FUSIONS: tuple[str, ...] = ("rrf", "dbsf")
# Payload fields a search may filter on; each filter value is a str or a list of str (any of).
FILTER_FIELDS: tuple[str, ...] = ("tenant", "source", "tags", "doc_id")
DENSE = "dense"  # the dense vector's name in every backend
KEYWORD = "bm25"  # the sparse BM25 vector's name; the store applies IDF
_POINT_NAMESPACE = uuid.UUID("6f1c3f0e-3a59-4f59-9d0b-1d0c7e2b9a11")  # chunk id -> stable point id


class CollectionExistsError(StoreError):
    """``create_collection`` found the name taken (another writer on a server got there first)."""


def as_floats(vector: Sequence[float]) -> list[float]:
    """A plain list of floats for a client; a numpy row converts in C, far faster than float() per item."""
    tolist = getattr(vector, "tolist", None)
    return list(tolist()) if tolist is not None else [float(x) for x in vector]


def point_id(chunk_id: str) -> str:
    """Qdrant ids are ints or UUIDs; a chunk's point id is a UUID derived from its id."""
    return str(uuid.uuid5(_POINT_NAMESPACE, chunk_id))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Fusion:
    """How hybrid search merges the dense and keyword lists inside the store.

    ``method`` "rrf" (reciprocal rank fusion, ``k`` and per-list ``weights`` dense, keyword) or
    "dbsf" (distribution-based score fusion: each list's scores normalised by mean ± 3σ, then
    summed). ``candidates`` is how many chunks each list contributes before fusing.

    ``Fusion()`` is plain RRF, what most hybrid set-ups use; ``TUNED_FUSION`` is the setting chosen
    on SciFact's train queries (results/retrieval), the default of search and the retrieve stage.
    """

    method: str = "rrf"
    k: int = 60
    weights: tuple[float, float] = (1.0, 1.0)
    candidates: int = 100

    def __post_init__(self) -> None:
        if self.method not in FUSIONS:
            raise ConfigError(f"fusion method {self.method!r} is unknown; choose from {', '.join(FUSIONS)}")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in (self.k, self.candidates)):
            raise ConfigError(f"fusion k and candidates must be whole numbers >= 1, got k={self.k!r}, "
                              f"candidates={self.candidates!r}")
        weights = self.weights
        if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence) or len(weights) != 2 or not all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and 0 <= w < float("inf") for w in weights):
            raise ConfigError(f"fusion weights are two non-negative numbers (dense, keyword), e.g. (1.0, 2.0); "
                              f"got {weights!r}")
        object.__setattr__(self, "weights", (float(weights[0]), float(weights[1])))


PLAIN_RRF = Fusion()
TUNED_FUSION = Fusion(method="dbsf", candidates=100)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Chunk:
    """One chunk to store: ``id`` is unique in the knowledge base, ``payload`` holds the rest."""

    id: str
    doc_id: str
    text: str
    vector: Sequence[float]
    payload: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Hit:
    chunk_id: str
    doc_id: str
    text: str
    score: float
    payload: Mapping[str, Any]


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"search mode {mode!r} is unknown; choose from {', '.join(MODES)}")


def filter_values(value: Any) -> list[str]:
    """The values a filter field matches: a str is one value, a list (or tuple, set) any of its values.

    >>> filter_values("acme"), filter_values(["acme", "globex"])
    (['acme'], ['acme', 'globex'])
    """
    if isinstance(value, (list, tuple, set, frozenset)):
        return [str(v) for v in value]
    return [str(value)]


def plan_query(mode: str, vector: Sequence[float] | None, text: str,
               filters: Mapping[str, Any] | None) -> tuple[str | None, list[int], list[float]]:
    """Check a search and say how it runs: the mode (a hybrid query without a keyword term runs
    dense; a keyword query without one runs not at all: None) and the BM25 query terms."""
    from ctxopt.stores import sparse

    check_mode(mode)
    check_filters(filters)
    if mode != "keyword" and vector is None:
        raise StoreError(f"{mode} search needs the query vector; embed the query first")
    indices, values = sparse.query_vector(text)
    if not indices:  # only stopwords or punctuation: no keyword can match
        return (None if mode == "keyword" else "dense"), indices, values
    return mode, indices, values


def check_filters(filters: Mapping[str, Any] | None) -> None:
    if filters is not None and not isinstance(filters, Mapping):
        raise ConfigError(f"filters are a dict of field -> value, e.g. {{'tenant': 'acme'}}; got {filters!r} "
                          f"(fields: {', '.join(FILTER_FIELDS)})")
    unknown = sorted(set(filters or {}) - set(FILTER_FIELDS))
    if unknown:
        raise ConfigError(f"cannot filter on {', '.join(unknown)}; filter fields: {', '.join(FILTER_FIELDS)}")
    for field, value in (filters or {}).items():
        values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
        for v in values:
            if not isinstance(v, (str, int)) or isinstance(v, bool):
                # str() would make None or a dict a value no document has: a filter silently matching nothing
                raise ConfigError(f"filter {field}={value!r}: a filter value is a str or a list of str "
                                  f"(any of them), got {type(v).__name__}")


@runtime_checkable
class VectorStore(Protocol):
    def search(
        self,
        collection: str,
        *,
        vector: Sequence[float] | None,
        text: str,
        mode: Mode = "hybrid",
        k: int = 5,
        filters: Mapping[str, Any] | None = None,
        fusion: Fusion = PLAIN_RRF,
        group_by_doc: bool = False,
        exact: bool = False,
    ) -> list[Hit]: ...

    def create_collection(self, name: str, *, dim: int, metadata: Mapping[str, Any]) -> None: ...

    def drop_collection(self, name: str) -> None: ...

    def collections(self) -> list[str]: ...

    def metadata(self, collection: str) -> dict[str, Any]: ...

    def dim(self, collection: str) -> int: ...

    def set_metadata(self, collection: str, metadata: Mapping[str, Any]) -> None: ...

    def upsert(self, collection: str, chunks: Sequence[Chunk]) -> None: ...

    def delete(self, collection: str, chunk_ids: Sequence[str]) -> None: ...

    def seal(self, collection: str) -> None: ...

    def scroll(self, collection: str, *, with_vectors: bool = False, fields: Sequence[str] | None = None,
               ) -> Iterator[tuple[Mapping[str, Any], list[float] | None]]: ...

    def count(self, collection: str) -> int: ...

    def alias_target(self, alias: str) -> str | None: ...

    def set_alias(self, alias: str, collection: str) -> None: ...

    def alias_history(self, alias: str) -> list[str]: ...

    def switch_alias(self, alias: str, collection: str, *, expected: str | None,
                     history: Sequence[str] | None = None) -> bool: ...

    def writer_lock(self, name: str, timeout: float) -> AbstractContextManager[bool]: ...

    def close(self) -> None: ...


HISTORY_LIMIT = 50  # serving-history entries kept per alias


def next_history(history: Sequence[str], collection: str) -> list[str]:
    """The serving history after ``collection`` starts serving: pushed on top, bounded."""
    return [*history, collection][-HISTORY_LIMIT:]
