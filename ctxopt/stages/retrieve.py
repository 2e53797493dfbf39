"""The retrieve stage: search a knowledge base for the query and add the hits before the question.

Configuration is plain data (the knowledge base's name and its ``path`` or ``url``, the embedding
cache settings), so a pipeline with retrieval round-trips to TOML. The store and the embedder
open on the first ``run`` and are shared by every stage in the process with the same settings.

Each hit becomes ``Item(kind="retrieved", id=f"doc:{chunk_id}", score=...)`` with the title,
source and document id in its metadata, inserted just before the latest user message. The report
gets ``retrieved``, ``retrieval_ms``, ``cache_hits``/``cache_misses`` (query embedding), and with
``on_error="continue"`` a failed search leaves the context as it was and notes ``retrieval_error``
(a search that ran out of time says "retrieval timed out" there).

>>> Retrieve(kb="docs", path="./kb", mode="hybrid", k=4)  # doctest: +ELLIPSIS
Retrieve(kb='docs', path='./kb', url=None, mode='hybrid', k=4, ...)
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from ctxopt.cache.redis_backend import url_problem
from ctxopt.errors import ConfigError, InputError, StoreError
from ctxopt.stores.base import Fusion, check_filters, check_mode, filter_values
from ctxopt.stores.qdrant import DEFAULT_TIMEOUT, timed_out
from ctxopt.types import Context, Item

ON_ERROR = ("fail", "continue")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Retrieve:
    """Add the ``k`` best chunks of knowledge base ``kb`` for the context's query.

    ``path`` (embedded Qdrant Edge on disk) or ``url`` (a Qdrant server; API key from
    $CTXOPT_QDRANT_API_KEY); neither means $CTXOPT_QDRANT_URL, else a throwaway in-process store.
    ``mode`` is dense, keyword or hybrid; ``fusion``/``rrf_k``/``weights``/``candidates`` tune hybrid
    fusion. ``cache`` ("disk", "redis", "none"), ``cache_dir`` and ``redis_url`` choose the
    embedding cache. ``filters`` restrict by payload (tenant, source, tags, doc_id).

    ``on_error`` is what a store failure does: "fail" raises :class:`~ctxopt.errors.StoreError`,
    "continue" answers without retrieval and notes ``retrieval_error``. ``timeout`` (seconds; None
    keeps the store's own, 5 s by default) bounds each request to a Qdrant server, rounded up to whole seconds
    (qdrant-client's unit), so a slow or hanging server costs at most about that long per request
    (one search, plus one collection read the first time) and then follows ``on_error``. An embedded
    store (``path`` or the throwaway one) searches inside this process with no request to bound, so there
    ``timeout`` has no effect.
    """

    name: ClassVar[str] = "retrieve"
    kb: str = "default"
    path: str | None = None
    url: str | None = None
    mode: Literal["dense", "keyword", "hybrid"] = "hybrid"
    k: int = 5
    filters: Mapping[str, Any] | None = None
    fusion: Literal["rrf", "dbsf"] = "dbsf"  # chosen on SciFact train queries (results/retrieval)
    rrf_k: int = 60
    weights: tuple[float, float] = (1.0, 1.0)
    candidates: int = 100
    min_score: float | None = None
    model: str | None = None
    cache: Literal["disk", "redis", "none"] | None = None
    cache_dir: str | None = None
    redis_url: str | None = None
    on_error: Literal["fail", "continue"] = "fail"
    timeout: float | None = None

    def __post_init__(self) -> None:
        check_mode(self.mode)
        check_filters(self.filters)
        if not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"retrieve: k must be a whole number >= 1, got {self.k!r}")
        if self.on_error not in ON_ERROR:
            raise ConfigError(f"retrieve: on_error must be one of {', '.join(ON_ERROR)}, got {self.on_error!r}")
        if self.timeout is not None:
            if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) \
                    or not 0 < self.timeout < math.inf:
                raise ConfigError(f"retrieve: timeout must be a number of seconds > 0, or None for the store's "
                                  f"default of {DEFAULT_TIMEOUT:g} s; got {self.timeout!r}")
            object.__setattr__(self, "timeout", float(self.timeout))  # TOML may give a whole number
        if self.path is not None and self.url is not None:
            raise ConfigError("retrieve: give path (embedded Qdrant) or url (Qdrant server), not both")
        # A redis_url written into the stage's config is checked now, so a typo fails the pipeline's
        # construction rather than silently running every request without the shared cache.
        if self.redis_url is not None and (problem := url_problem(self.redis_url)):
            raise ConfigError(f"retrieve: {problem}")
        if self.filters is not None:
            object.__setattr__(self, "filters", dict(self.filters))
        # validate now, not on the first request; TOML gives the weights as a list of numbers
        object.__setattr__(self, "weights", self.fusion_settings().weights)

    def fusion_settings(self) -> Fusion:
        return Fusion(method=self.fusion, k=self.rrf_k, weights=self.weights, candidates=self.candidates)

    def knowledge_base(self):
        """The knowledge base this stage reads, over the process-wide store and cached embedder."""
        from ctxopt.embed.cache import get_cached_embedder
        from ctxopt.kb import KnowledgeBase
        from ctxopt.stores.shared import open_store

        embedder = None if self.mode == "keyword" else get_cached_embedder(
            self.model, backend=self.cache, directory=self.cache_dir, redis_url=self.redis_url)
        store = open_store(path=self.path, url=self.url,
                           timeout=DEFAULT_TIMEOUT if self.timeout is None else self.timeout)
        return KnowledgeBase(self.kb, store=store, embedder=embedder)

    def scope(self, context: Context) -> dict[str, Any] | None:
        """The stage's filters plus the request's (``context.filters``). A request can narrow what
        the stage searches, never widen it: where both set a field, the request's values must all be
        among the stage's (a stage's ``tenant=["a", "b"]`` narrows to a request's ``tenant="a"``);
        a value outside them is an error, not a choice."""
        check_filters(context.filters)
        merged = dict(self.filters or {})
        for field, value in context.filters.items():
            if field in merged:
                allowed = filter_values(merged[field])
                outside = [v for v in filter_values(value) if v not in allowed]
                if outside:
                    raise InputError(f"request filter {field}={value!r} conflicts with the retrieve stage's "
                                     f"{field}={merged[field]!r}: {outside[0]!r} is not among the stage's values, "
                                     "and a request can narrow a stage's filter, never widen it; drop one of them")
            merged[field] = value
        return merged or None

    def _timeout_error(self, exc: Exception, store: Any) -> Exception:
        """A search that ran out of time as a StoreError saying so and how to allow longer; any
        other failure as it is."""
        if not timed_out(exc):
            return exc
        waited = f"{store.request_seconds} s" if hasattr(store, "request_seconds") else "its timeout"
        setting = f"timeout={self.timeout:g}" if self.timeout is not None else "the store's default timeout"
        check = f"or check that it is up and not overloaded. Cause: {exc}"
        return StoreError(f"retrieval timed out: knowledge base {self.kb!r} got no answer within {waited} ({setting})",
                          hint=f"raise the retrieve stage's timeout= if the server is slow but working, {check}",
                          cli_hint=f"raise timeout in the retrieve stage of the --pipeline file if the server is slow "
                                   f"but working, {check}")

    def run(self, context: Context) -> Context:
        if not context.query.strip():
            return context.note(retrieved=0)
        filters = self.scope(context)
        started = time.perf_counter()
        kb = None
        try:
            kb = self.knowledge_base()
            hits, stats = kb.search_with_stats(
                context.query, mode=self.mode, k=self.k, filters=filters, fusion=self.fusion_settings())
        except Exception as exc:  # StoreError mostly; any failure follows the same policy
            failure = self._timeout_error(exc, getattr(kb, "store", None))
            if self.on_error == "fail":
                if failure is exc:
                    raise
                raise failure from exc
            return context.note(retrieved=0, retrieval_error=f"{type(failure).__name__}: {failure}")
        taken = {i.id for i in context.items}
        new = []
        for hit in hits:
            item_id = f"doc:{hit.chunk_id}"
            if item_id in taken or (self.min_score is not None and hit.score < self.min_score):
                continue
            taken.add(item_id)
            payload = hit.payload
            new.append(Item(id=item_id, kind="retrieved", text=hit.text, score=hit.score, metadata={
                "title": payload.get("title", ""), "source": payload.get("source", ""), "doc_id": hit.doc_id,
                "chunk_id": hit.chunk_id, "kb": self.kb}))
        items = list(context.items)
        last_user = max((n for n, i in enumerate(items) if i.kind == "user"), default=len(items))
        notes: dict[str, Any] = {"retrieved": len(new), "retrieval_mode": self.mode,
                                 "retrieval_ms": round((time.perf_counter() - started) * 1000, 2)}
        if stats is not None:
            notes.update(stats.notes())
        return context.replace(items=items[:last_user] + new + items[last_user:]).note(**notes)
