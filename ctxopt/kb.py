"""Versioned knowledge bases: ingest documents into a new collection version behind an alias.

A knowledge base ``name`` is a Qdrant alias pointing at one collection ``name__v<N>``. Ingesting:

1. hashes each document (text, title, metadata, chunking and model); unchanged documents are
   skipped, and if nothing changed (and nothing is pruned) nothing is written at all;
2. embeds the new and changed chunks through the embedding cache *before* touching the store;
3. builds the next version completely (kept documents are copied with their vectors), marks it
   ready, and only then switches the alias in one atomic step.

A killed ingest therefore leaves the previous version serving; the half-built collection is
never aliased and is removed by the next ingest. ``rollback`` points the alias back at an
earlier ready version; the newest ``keep`` versions are kept.

>>> from ctxopt.embed import CachedEmbedder, HashEmbedder
>>> from ctxopt.ingest import Document
>>> kb = KnowledgeBase("demo", embedder=CachedEmbedder(HashEmbedder(), backend="none"))
>>> kb.ingest([Document(id="mars", text="Mars has two moons.")], progress=False).chunks_written
1
>>> kb.ingest([Document(id="mars", text="Mars has two moons.")], progress=False).chunks_written
0
>>> [h.doc_id for h in kb.search("moons of mars", k=1)]
['mars']
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ctxopt.errors import ConfigError, InputError, StoreError
from ctxopt.ingest.chunking import chunk_text
from ctxopt.ingest.readers import Document
from ctxopt.stores import sparse
from ctxopt.stores.base import TUNED_FUSION, Chunk, Fusion, Hit

EMBED_BATCH = 256
UPSERT_BATCH = 256
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclasses.dataclass(frozen=True, kw_only=True)
class IngestSummary:
    """What one ingest did; ``str()`` is the line the CLI prints."""

    kb: str
    version: int | None
    collection: str | None
    docs_seen: int = 0
    docs_added: int = 0
    docs_changed: int = 0
    docs_unchanged: int = 0
    docs_removed: int = 0
    chunks_written: int = 0
    chunks_total: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_degraded: str | None = None
    embed_seconds: float = 0.0
    seconds: float = 0.0

    def __str__(self) -> str:
        where = f"version {self.version} ({self.collection})" if self.version else "no version"
        line = (f"{self.kb}: {where}; {self.docs_seen} docs seen: {self.docs_added} added, {self.docs_changed} "
                f"changed, {self.docs_unchanged} unchanged, {self.docs_removed} removed; {self.chunks_written} "
                f"chunks written, {self.chunks_total} in total; embedding cache {self.cache_hits} hits, "
                f"{self.cache_misses} misses ({self.embed_seconds:.1f}s); {self.seconds:.1f}s")
        return line + (f"; cache degraded: {self.cache_degraded}" if self.cache_degraded else "")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Version:
    number: int
    collection: str
    status: str
    created: str
    docs: int
    chunks: int
    current: bool


def _doc_hash(doc: Document, settings: Mapping[str, Any]) -> str:
    blob = json.dumps([doc.title, doc.text, dict(doc.metadata), dict(settings)], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class KnowledgeBase:
    """A named, versioned collection of document chunks in a vector store.

    ``store`` defaults to the process-wide embedded in-memory Qdrant store; ``embedder`` to the
    shared cached all-MiniLM-L6-v2. ``chunk_tokens``/``overlap`` set the chunking.
    """

    def __init__(self, name: str, *, store: Any = None, embedder: Any = None,
                 chunk_tokens: int = 512, overlap: int = 64, keep: int = 3) -> None:
        if not isinstance(name, str) or not _NAME.match(name) or "__v" in name:
            raise ConfigError(f"knowledge base name {name!r} is invalid; use letters, digits, '_', '-', '.' "
                              "(up to 64 characters, not containing '__v')")
        if keep < 1:
            raise ConfigError(f"keep must be >= 1 version, got {keep}")
        self.name = name
        self._store = store
        self._embedder = embedder
        self.chunk_tokens = chunk_tokens
        self.overlap = overlap
        self.keep = keep

    def __repr__(self) -> str:
        return f"KnowledgeBase({self.name!r}, store={self.store!r})"

    @property
    def store(self):
        if self._store is None:
            from ctxopt.stores.qdrant import open_store

            self._store = open_store()
        return self._store

    @property
    def embedder(self):
        if self._embedder is None:
            from ctxopt.embed.cache import get_cached_embedder

            self._embedder = get_cached_embedder()
        return self._embedder

    # -- versions ------------------------------------------------------------------------

    def _collection(self, number: int) -> str:
        return f"{self.name}__v{number}"

    def _numbers(self) -> list[int]:
        prefix = f"{self.name}__v"
        return sorted(int(c[len(prefix):]) for c in self.store.collections()
                      if c.startswith(prefix) and c[len(prefix):].isdigit())

    def current(self) -> str | None:
        """The collection the alias serves, or None before the first ingest."""
        return self.store.alias_target(self.name)

    def versions(self) -> list[Version]:
        current = self.current()
        out = []
        for number in self._numbers():
            collection = self._collection(number)
            meta = self.store.metadata(collection)
            out.append(Version(number=number, collection=collection, status=str(meta.get("status", "unknown")),
                               created=str(meta.get("created", "")), docs=int(meta.get("docs", 0)),
                               chunks=int(meta.get("chunks", 0)), current=collection == current))
        return out

    def rollback(self, version: int | None = None) -> Version:
        """Serve ``version`` (default: the newest ready version older than the current one)."""
        versions = [v for v in self.versions() if v.status == "ready"]
        current = next((v for v in versions if v.current), None)
        if version is None:
            older = [v for v in versions if current is None or v.number < current.number]
            if not older:
                raise StoreError(f"knowledge base {self.name!r} has no ready version before the current one "
                                 f"(versions: {[v.number for v in versions]}); nothing to roll back to")
            target = older[-1]
        else:
            found = next((v for v in versions if v.number == version), None)
            if found is None:
                raise InputError(f"knowledge base {self.name!r} has no ready version {version}; "
                                 f"ready versions: {[v.number for v in versions]}")
            target = found
        self.store.set_alias(self.name, target.collection)
        return dataclasses.replace(target, current=True)

    # -- ingest --------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        return {"chunk_tokens": self.chunk_tokens, "overlap": self.overlap, "model": self.embedder.model_id}

    def ingest(self, documents: Iterable[Document], *, prune: bool = False, allow_empty: bool = False,
               progress: bool = True) -> IngestSummary:
        """Add new and changed ``documents``; with ``prune``, drop documents not given.

        An ingest that was given no document never prunes (a wrong path or a folder of files no
        reader reads would otherwise empty the base): it raises InputError and changes nothing,
        unless ``allow_empty=True`` says to empty the knowledge base on purpose.
        """
        return self._update(documents, remove=None, prune=prune, progress=progress, allow_empty=allow_empty)

    def delete(self, doc_ids: Sequence[str], *, progress: bool = False) -> IngestSummary:
        """A new version without the documents ``doc_ids``."""
        return self._update([], remove=set(doc_ids), prune=False, progress=progress)

    def _update(self, documents: Iterable[Document], *, remove: set[str] | None, prune: bool,
                progress: bool, allow_empty: bool = False) -> IngestSummary:
        started = time.perf_counter()
        if isinstance(documents, (str, bytes)):
            raise InputError("ingest() takes an iterable of Document objects, got a str; wrap text as "
                             "Document(id=..., text=...) or read files with ctxopt.ingest.read_documents(path)")
        docs: dict[str, Document] = {}
        for doc in documents:
            if not isinstance(doc, Document):
                raise InputError(f"ingest() takes Document objects, got {type(doc).__name__}; use "
                                 "Document(id=..., title=..., text=..., metadata=...) or read_documents(path)")
            if doc.id in docs:
                raise InputError(f"document id {doc.id!r} appears twice in this ingest; ids must be unique")
            docs[doc.id] = doc
        settings = self._settings()
        hashes = {d: _doc_hash(doc, settings) for d, doc in docs.items()}
        current = self.current()
        old_hashes: dict[str, str] = {}
        if current is not None:
            for payload, _ in self.store.scroll(current):
                old_hashes[str(payload.get("doc_id"))] = str(payload.get("content_hash"))
        if prune and not docs and old_hashes and not allow_empty:
            raise InputError(f"this ingest read no document, so pruning would remove all {len(old_hashes)} documents "
                             f"of knowledge base {self.name!r}; nothing was changed. Check what was read, or pass "
                             "allow_empty=True to empty the knowledge base on purpose")
        changed = [d for d in docs if old_hashes.get(d) != hashes[d]]
        removed = set(old_hashes) - set(docs) if prune else (remove or set()) & set(old_hashes)
        counts: dict[str, Any] = {"docs_seen": len(docs), "docs_added": sum(d not in old_hashes for d in changed),
                  "docs_changed": sum(d in old_hashes for d in changed), "docs_unchanged": len(docs) - len(changed),
                  "docs_removed": len(removed)}
        if current is not None and not changed and not removed:
            return IngestSummary(kb=self.name, version=_number(current), collection=current,
                                 chunks_total=self.store.count(current), seconds=time.perf_counter() - started, **counts)
        # 1. embed new chunks before touching the store, so a failure here changes nothing
        new_chunks = [c for d in changed for c in self._chunk(docs[d], hashes[d])]
        t0 = time.perf_counter()
        vectors, hits, misses, degraded = self._embed([c[1] for c in new_chunks], progress)
        embed_seconds = time.perf_counter() - t0
        chunks = [Chunk(id=cid, doc_id=doc_id, text=text, vector=vec, payload=payload)
                  for (cid, text, doc_id, payload), vec in zip(new_chunks, vectors)]
        # 2. carry over the unchanged documents of the serving version, vectors included
        if current is not None:
            skip = set(changed) | removed
            for payload, vector in self.store.scroll(current, with_vectors=True):
                if payload.get("doc_id") not in skip:
                    chunks.append(Chunk(id=payload["chunk_id"], doc_id=str(payload["doc_id"]), text=payload["text"],
                                        vector=vector, payload={k: v for k, v in payload.items() if k != "text"}))
        # 3. build the next version fully, then switch the alias
        collection, number = self._build(chunks, len({c.doc_id for c in chunks}), progress)
        self.store.set_alias(self.name, collection)
        self._drop_old(keep_from=number)
        return IngestSummary(kb=self.name, version=number, collection=collection, chunks_written=len(chunks),
                             chunks_total=len(chunks), cache_hits=hits, cache_misses=misses, cache_degraded=degraded,
                             embed_seconds=embed_seconds, seconds=time.perf_counter() - started, **counts)

    def _chunk(self, doc: Document, content_hash: str) -> list[tuple[str, str, str, dict[str, Any]]]:
        base = {"title": doc.title, "content_hash": content_hash, **doc.filter_fields()}
        bodies = chunk_text(doc.text, max_tokens=self.chunk_tokens, overlap=self.overlap) or [""]
        # the title heads every chunk: it names what a chunk from the middle of a document is about
        return [(f"{doc.id}#{i}", f"{doc.title}\n\n{body}".strip() if doc.title else body, doc.id,
                 {**base, "chunk_index": i}) for i, body in enumerate(bodies)]

    def _embed(self, texts: list[str], progress: bool):
        from tqdm.auto import tqdm

        embed_with_stats = getattr(self.embedder, "embed_with_stats", None)
        vectors, hits, misses, degraded = [], 0, 0, None
        with tqdm(total=len(texts), desc=f"embedding {self.name}", unit="chunk", disable=not progress or not texts) as bar:
            for start in range(0, len(texts), EMBED_BATCH):
                batch = texts[start:start + EMBED_BATCH]
                if embed_with_stats is not None:
                    out, stats = embed_with_stats(batch)
                    hits, misses, degraded = hits + stats.hits, misses + stats.misses, stats.degraded or degraded
                else:
                    out, misses = self.embedder.embed(batch), misses + len(batch)
                vectors.extend(out)
                bar.update(len(batch))
        return vectors, hits, misses, degraded

    def _build(self, chunks: list[Chunk], docs: int, progress: bool) -> tuple[str, int]:
        from tqdm.auto import tqdm

        for number in self._numbers():  # leftovers of an interrupted ingest: never served, safe to drop
            collection = self._collection(number)
            if self.store.metadata(collection).get("status") != "ready" and collection != self.current():
                self.store.drop_collection(collection)
        number = max(self._numbers(), default=0) + 1
        collection = self._collection(number)
        lengths = [sparse.doc_length(c.text) for c in chunks]
        dim = len(chunks[0].vector) if chunks else self.embedder.dim
        meta = {"kb": self.name, "version": number, "status": "building",
                "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "avgdl": sum(lengths) / len(lengths) if lengths else 1.0, "k1": sparse.K1, "b": sparse.B,
                "model_id": self.embedder.model_id, "dim": dim, "docs": docs, "chunks": len(chunks),
                **{k: v for k, v in self._settings().items() if k != "model"}}
        self.store.create_collection(collection, dim=dim, metadata=meta)
        with tqdm(total=len(chunks), desc=f"writing {collection}", unit="chunk", disable=not progress or not chunks) as bar:
            for start in range(0, len(chunks), UPSERT_BATCH):
                batch = chunks[start:start + UPSERT_BATCH]
                self.store.upsert(collection, batch)
                bar.update(len(batch))
        self.store.set_metadata(collection, {"status": "ready"})
        return collection, number

    def _drop_old(self, keep_from: int) -> None:
        ready = [v for v in self.versions() if v.status == "ready"]
        for version in ready[:-self.keep]:
            if not version.current:
                self.store.drop_collection(version.collection)

    # -- search --------------------------------------------------------------------------

    def search(self, query: str, *, mode: str = "hybrid", k: int = 5, filters: Mapping[str, Any] | None = None,
               fusion: Fusion = TUNED_FUSION, group_by_doc: bool = False) -> list[Hit]:
        """The ``k`` best chunks for ``query`` in the serving version."""
        hits, _ = self.search_with_stats(query, mode=mode, k=k, filters=filters, fusion=fusion, group_by_doc=group_by_doc)
        return hits

    def search_with_stats(self, query: str, *, mode: str = "hybrid", k: int = 5,
                          filters: Mapping[str, Any] | None = None, fusion: Fusion = TUNED_FUSION,
                          group_by_doc: bool = False):
        """Hits plus the embedding cache stats of the query (None for keyword search)."""
        from ctxopt.stores.base import check_mode

        check_mode(mode)
        vector, stats = None, None
        if mode != "keyword":
            embed_with_stats = getattr(self.embedder, "embed_with_stats", None)
            if embed_with_stats is not None:
                vectors, stats = embed_with_stats([query])
            else:
                vectors = self.embedder.embed([query])
            vector = vectors[0]
        hits = self.store.search(self.name, vector=vector, text=query, mode=mode, k=k, filters=filters,
                                 fusion=fusion, group_by_doc=group_by_doc)
        return hits, stats


def _number(collection: str) -> int | None:
    tail = collection.rsplit("__v", 1)[-1]
    return int(tail) if tail.isdigit() else None
