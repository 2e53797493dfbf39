"""Versioned knowledge bases: ingest documents into a new collection version behind an alias.

A knowledge base ``name`` is an alias pointing at one collection ``name__v<N>``. Ingesting:

1. hashes each document (text, title, metadata, chunking and model); unchanged documents are
   skipped, and if nothing changed (and nothing is pruned) nothing is written at all;
2. embeds the new and changed chunks through the embedding cache, in batches with a progress
   bar, *before* touching the store and before waiting for any other ingest;
3. takes the base's writer lock (threads and processes queue on an embedded store), builds the
   next version completely (new chunks, then the unchanged ones streamed over from the serving
   version with their vectors), seals it (index built), marks it ready, and only then switches
   the alias with a compare-and-swap: it switches only if the version it built on still serves.

So ingests into one base serialise and none is lost: a writer that finds the base changed since
it planned (another ingest got there first) plans again on top of the new version, re-using its
embeddings. On a server, where no lock reaches every machine, losing the swap has the same
effect: the loser drops its unserved version and builds again on the winner's, up to
``MAX_ATTEMPTS`` times, then fails with :class:`StoreError` having changed nothing. A killed
ingest leaves the previous version serving; its half-built collection is never aliased and is
removed by the next ingest.

Every switch is recorded in the alias's serving history, a stack: an ingest or ``rollback(N)``
pushes the version it serves, ``rollback()`` pops back to the version that served before. The
newest ``keep`` ready versions are kept, plus the ``keep`` latest of that history.

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
from ctxopt.stores.base import TUNED_FUSION, Chunk, CollectionExistsError, Fusion, Hit, next_history
from ctxopt.stores.locks import DEFAULT_LOCK_TIMEOUT

EMBED_BATCH = 256
UPSERT_BATCH = 512
MAX_ATTEMPTS = 8  # builds per ingest when other writers keep switching the base first (servers)
HEARTBEAT_SECONDS = 30.0
STALE_BUILD_SECONDS = 900.0  # a building version with no heartbeat for this long was left by a dead writer
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
    retries: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        where = f"version {self.version} ({self.collection})" if self.version else "no version"
        line = (f"{self.kb}: {where}; {self.docs_seen} docs seen: {self.docs_added} added, {self.docs_changed} "
                f"changed, {self.docs_unchanged} unchanged, {self.docs_removed} removed; {self.chunks_written} "
                f"chunks written, {self.chunks_total} in total; embedding cache {self.cache_hits} hits, "
                f"{self.cache_misses} misses ({self.embed_seconds:.1f}s); {self.seconds:.1f}s")
        line += f"; rebuilt {self.retries}x on top of concurrent ingests" if self.retries else ""
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


@dataclasses.dataclass
class _Embedded:
    """The vectors one ingest has embedded (by chunk text), kept across its re-plans."""

    vectors: dict[str, Any] = dataclasses.field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    degraded: str | None = None
    seconds: float = 0.0


def _doc_hash(doc: Document, settings: Mapping[str, Any]) -> str:
    blob = json.dumps([doc.title, doc.text, dict(doc.metadata), dict(settings)], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclasses.dataclass
class _Plan:
    """What one ingest changes, relative to the version serving when it was planned."""

    current: str | None
    old_hashes: dict[str, str]
    kept: dict[str, tuple[int, int]]  # unchanged doc id -> (chunks, summed BM25 lengths) in the serving version
    changed: list[str]
    removed: set[str]
    new_chunks: list[tuple[str, str, str, dict[str, Any]]]  # chunk id, text, doc id, payload
    counts: dict[str, Any]  # the IngestSummary document counts

    @property
    def unchanged(self) -> bool:
        """A version serves and this ingest would change nothing in it."""
        return self.current is not None and not self.changed and not self.removed


class KnowledgeBase:
    """A named, versioned collection of document chunks in a vector store.

    ``store`` defaults to the process-wide throwaway store (Qdrant Edge in a temporary folder);
    ``embedder`` to the shared cached all-MiniLM-L6-v2. ``chunk_tokens``/``overlap`` set the chunking; ``keep`` how many versions
    stay for rollback; ``lock_timeout`` how long an ingest waits for another one into this base
    (seconds) before failing with :class:`StoreError`.
    """

    def __init__(self, name: str, *, store: Any = None, embedder: Any = None,
                 chunk_tokens: int = 512, overlap: int = 64, keep: int = 3,
                 lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
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
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"KnowledgeBase({self.name!r}, store={self.store!r})"

    @property
    def store(self):
        if self._store is None:
            from ctxopt.stores.shared import open_store

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

    def history(self) -> list[str]:
        """The collections that served, oldest first; the last one serves now."""
        return self.store.alias_history(self.name)

    def versions(self) -> list[Version]:
        current = self.current()
        out = []
        for number in self._numbers():
            collection = self._collection(number)
            try:
                meta = self.store.metadata(collection)
            except StoreError:
                continue  # dropped by another writer since it was listed
            out.append(Version(number=number, collection=collection, status=str(meta.get("status", "unknown")),
                               created=str(meta.get("created", "")), docs=int(meta.get("docs", 0)),
                               chunks=int(meta.get("chunks", 0)), current=collection == current))
        return out

    def rollback_target(self) -> Version | None:
        """The version :meth:`rollback` with no number would serve now (``None``: there is none)."""
        ready = {v.collection: v for v in self.versions() if v.status == "ready"}
        stack = _rollback_stack(self.history(), self.current(), ready)
        return ready[stack[-1]] if stack else None

    def rollback(self, version: int | None = None) -> Version:
        """Serve ``version``, or by default the version that served before the current one (the
        serving history's previous entry: a rolled-back version is never served again by this)."""
        with self.store.writer_lock(self.name, self.lock_timeout):
            for _ in range(MAX_ATTEMPTS):
                ready = {v.collection: v for v in self.versions() if v.status == "ready"}
                current = self.current()
                history = self.history()
                if version is None:
                    stack = _rollback_stack(history, current, ready)
                    if not stack:
                        raise StoreError(
                            f"knowledge base {self.name!r} has no ready version before the current one in its serving "
                            f"history (served: {[_number(c) for c in history]}, ready: "
                            f"{sorted(v.number for v in ready.values())}); pick one with rollback(N) (--to N)")
                    target, new_history = ready[stack[-1]], stack
                else:
                    found = ready.get(self._collection(version))
                    if found is None:
                        raise InputError(f"knowledge base {self.name!r} has no ready version {version}; ready versions: "
                                         f"{sorted(v.number for v in ready.values())}")
                    target, new_history = found, next_history(history, found.collection)
                if self.store.switch_alias(self.name, target.collection, expected=current, history=new_history):
                    return dataclasses.replace(target, current=True)
        raise StoreError(f"knowledge base {self.name!r} kept changing under this rollback ({MAX_ATTEMPTS} tries); "
                         "nothing was changed: retry when the other writers are done")

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
        embedded = _Embedded()
        # 1. plan and embed against the version serving now, before waiting for another writer:
        #    embedding is the slow part, and the cache makes a re-plan's embeddings free
        plan = self._plan(docs, hashes, remove=remove, prune=prune, allow_empty=allow_empty)
        if plan.unchanged:  # nothing to write: no lock, no version
            return self._unchanged(plan, started, retries=0)
        self._embed(plan, embedded, progress)
        # Planning read the serving version, which opens its shard in an embedded store; holding it
        # while waiting for the writer lock would block the writer that must copy from it (another
        # process waits for the shard while this one waits for the lock). Let go of it first.
        release = getattr(self.store, "release", None)
        if callable(release):
            release()
        with self.store.writer_lock(self.name, self.lock_timeout) as exclusive:
            for attempt in range(MAX_ATTEMPTS):
                if attempt or self.current() != plan.current:  # another ingest switched the base meanwhile
                    plan = self._plan(docs, hashes, remove=remove, prune=prune, allow_empty=allow_empty)
                    self._embed(plan, embedded, progress)
                if plan.unchanged:  # another ingest wrote these very documents meanwhile
                    return self._unchanged(plan, started, retries=attempt)
                collection, number, total = self._build(plan, embedded, exclusive, progress)
                if self.store.switch_alias(self.name, collection, expected=plan.current):
                    break
                self.store.drop_collection(collection)  # lost the swap: this version never served
            else:
                raise StoreError(f"knowledge base {self.name!r} was changed by other writers during each of "
                                 f"{MAX_ATTEMPTS} tries of this ingest; nothing of it was served and nothing was "
                                 "lost: run the ingest again")
            self._drop_old()
        return IngestSummary(kb=self.name, version=number, collection=collection, chunks_written=total,
                             chunks_total=total, cache_hits=embedded.hits, cache_misses=embedded.misses,
                             cache_degraded=embedded.degraded, embed_seconds=embedded.seconds, retries=attempt,
                             seconds=time.perf_counter() - started, **plan.counts)

    def _unchanged(self, plan: _Plan, started: float, retries: int) -> IngestSummary:
        assert plan.current is not None
        return IngestSummary(kb=self.name, version=_number(plan.current), collection=plan.current,
                             chunks_total=self.store.count(plan.current), retries=retries,
                             seconds=time.perf_counter() - started, **plan.counts)

    def _plan(self, docs: Mapping[str, Document], hashes: Mapping[str, str], *, remove: set[str] | None,
              prune: bool, allow_empty: bool) -> _Plan:
        current = self.current()
        old_hashes: dict[str, str] = {}
        lengths: dict[str, list[int]] = {}
        if current is not None:
            for payload, _ in self.store.scroll(current, fields=("doc_id", "content_hash", "length", "text")):
                doc_id = str(payload.get("doc_id"))
                old_hashes[doc_id] = str(payload.get("content_hash"))
                length = payload.get("length")
                lengths.setdefault(doc_id, []).append(
                    int(length) if isinstance(length, int) else sparse.doc_length(str(payload.get("text", ""))))
        if prune and not docs and old_hashes and not allow_empty:
            raise InputError(f"this ingest read no document, so pruning would remove all {len(old_hashes)} documents "
                             f"of knowledge base {self.name!r}; nothing was changed. Check what was read, or pass "
                             "allow_empty=True to empty the knowledge base on purpose")
        changed = [d for d in docs if old_hashes.get(d) != hashes[d]]
        removed = set(old_hashes) - set(docs) if prune else (remove or set()) & set(old_hashes)
        skip = set(changed) | removed
        kept = {d: (len(ls), sum(ls)) for d, ls in lengths.items() if d not in skip}
        counts = {"docs_seen": len(docs), "docs_added": sum(d not in old_hashes for d in changed),
                  "docs_changed": sum(d in old_hashes for d in changed), "docs_unchanged": len(docs) - len(changed),
                  "docs_removed": len(removed)}
        new_chunks = [c for d in changed for c in self._chunk(docs[d], hashes[d])]
        return _Plan(current=current, old_hashes=old_hashes, kept=kept, changed=changed, removed=removed,
                     new_chunks=new_chunks, counts=counts)

    def _chunk(self, doc: Document, content_hash: str) -> list[tuple[str, str, str, dict[str, Any]]]:
        base = {"title": doc.title, "content_hash": content_hash, **doc.filter_fields()}
        bodies = chunk_text(doc.text, max_tokens=self.chunk_tokens, overlap=self.overlap) or [""]
        chunks = []
        for i, body in enumerate(bodies):
            # the title heads every chunk: it names what a chunk from the middle of a document is about
            text = f"{doc.title}\n\n{body}".strip() if doc.title else body
            chunks.append((f"{doc.id}#{i}", text, doc.id, {**base, "chunk_index": i, "length": sparse.doc_length(text)}))
        return chunks

    def _embed(self, plan: _Plan, embedded: _Embedded, progress: bool) -> None:
        """Embed the plan's chunks not embedded yet, in batches through the cache."""
        from tqdm.auto import tqdm

        texts = list(dict.fromkeys(text for _, text, _, _ in plan.new_chunks if text not in embedded.vectors))
        if not texts:
            return
        embed_with_stats = getattr(self.embedder, "embed_with_stats", None)
        started = time.perf_counter()
        with tqdm(total=len(texts), desc=f"embedding {self.name}", unit="chunk", disable=not progress) as bar:
            for start in range(0, len(texts), EMBED_BATCH):
                batch = texts[start:start + EMBED_BATCH]
                if embed_with_stats is not None:
                    out, stats = embed_with_stats(batch)
                    embedded.hits += stats.hits
                    embedded.misses += stats.misses
                    embedded.degraded = stats.degraded or embedded.degraded
                else:
                    out, embedded.misses = self.embedder.embed(batch), embedded.misses + len(batch)
                embedded.vectors.update(zip(batch, out))
                bar.update(len(batch))
        embedded.seconds += time.perf_counter() - started

    def _build(self, plan: _Plan, embedded: _Embedded, exclusive: bool, progress: bool) -> tuple[str, int, int]:
        """Write the next version: the plan's new chunks, then the serving version's unchanged
        chunks streamed over page by page (so a large base never sits in memory); seal it and
        mark it ready. Returns the collection, its number and its chunk count."""
        from tqdm.auto import tqdm

        self._drop_leftovers(exclusive)
        new_lengths = [payload["length"] for _, _, _, payload in plan.new_chunks]
        chunks_total = len(new_lengths) + sum(n for n, _ in plan.kept.values())
        length_total = sum(new_lengths) + sum(total for _, total in plan.kept.values())
        docs_total = len({doc_id for _, _, doc_id, _ in plan.new_chunks} | set(plan.kept))
        dim = len(next(iter(embedded.vectors.values()))) if embedded.vectors else (
            self.store.dim(plan.current) if plan.current is not None else self.embedder.dim)
        created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        collection, number = None, max(self._numbers(), default=0)
        for _ in range(MAX_ATTEMPTS * 4):  # on a server another writer may take a number first
            number += 1
            meta = {"kb": self.name, "version": number, "status": "building", "created": created,
                    "heartbeat": time.time(), "avgdl": length_total / chunks_total if chunks_total else 1.0,
                    "k1": sparse.K1, "b": sparse.B, "model_id": self.embedder.model_id, "dim": dim,
                    "docs": docs_total, "chunks": chunks_total,
                    **{k: v for k, v in self._settings().items() if k != "model"}}
            try:
                self.store.create_collection(self._collection(number), dim=dim, metadata=meta)
            except CollectionExistsError:
                continue
            collection = self._collection(number)
            break
        if collection is None:
            raise StoreError(f"could not claim a new version number for knowledge base {self.name!r}; retry")
        beat = time.monotonic()
        with tqdm(total=chunks_total, desc=f"writing {collection}", unit="chunk", disable=not progress) as bar:
            def write(batch: list[Chunk]) -> None:
                nonlocal beat
                self.store.upsert(collection, batch)
                bar.update(len(batch))
                if time.monotonic() - beat > HEARTBEAT_SECONDS:  # tells other writers this build is alive
                    self.store.set_metadata(collection, {"heartbeat": time.time()})
                    beat = time.monotonic()

            for start in range(0, len(plan.new_chunks), UPSERT_BATCH):
                write([Chunk(id=cid, doc_id=doc_id, text=text, vector=embedded.vectors[text], payload=payload)
                       for cid, text, doc_id, payload in plan.new_chunks[start:start + UPSERT_BATCH]])
            if plan.current is not None and plan.kept:
                batch: list[Chunk] = []
                for payload, vector in self.store.scroll(plan.current, with_vectors=True):
                    if payload.get("doc_id") not in plan.kept:
                        continue
                    batch.append(Chunk(id=payload["chunk_id"], doc_id=str(payload["doc_id"]), text=payload["text"],
                                       vector=vector, payload={k: v for k, v in payload.items() if k != "text"}))
                    if len(batch) == UPSERT_BATCH:
                        write(batch)
                        batch = []
                if batch:
                    write(batch)
            bar.set_postfix_str("indexing")
            self.store.seal(collection)
        self.store.set_metadata(collection, {"status": "ready"})
        return collection, number, chunks_total

    def _drop_leftovers(self, exclusive: bool) -> None:
        """Drop versions an interrupted ingest left half built: never served, so safe to drop. Under
        an exclusive writer lock every one is dead; on a server only those whose heartbeat stopped."""
        current = self.current()
        for number in self._numbers():
            collection = self._collection(number)
            try:
                meta = self.store.metadata(collection)
            except StoreError:
                continue
            stale = exclusive or time.time() - float(meta.get("heartbeat", 0)) > STALE_BUILD_SECONDS
            if meta.get("status") != "ready" and collection != current and stale:
                self.store.drop_collection(collection)

    def _drop_old(self) -> None:
        """Keep the newest ``keep`` ready versions and the ``keep`` latest of the serving history."""
        ready = [v for v in self.versions() if v.status == "ready"]
        keep = {v.collection for v in ready[-self.keep:]}
        keep |= set(list(dict.fromkeys(reversed(self.history())))[:self.keep])
        for version in ready:
            if version.collection not in keep and not version.current:
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


def _rollback_stack(history: Sequence[str], current: str | None, ready: Mapping[str, Any]) -> list[str]:
    """The serving history up to the version a rollback serves: the serving version is popped, then
    any that were dropped (or are not ready) since they served."""
    stack = list(history)
    while stack and (stack[-1] == current or stack[-1] not in ready):
        stack.pop()
    return stack


def _number(collection: str) -> int | None:
    tail = collection.rsplit("__v", 1)[-1]
    return int(tail) if tail.isdigit() else None
