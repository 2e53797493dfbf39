"""Chunk and sentence pruning: keep the sentences of retrieved chunks that answer the query.

Every retrieved item (kind ``"retrieved"``) is split into sentences, and each sentence is scored
against the query by combining:

* the sentence's embedding similarity and keyword overlap with the query;
* the relevance of its whole chunk (title + text similarity, keyword overlap, title words in the
  query), because a sentence's meaning often lives in its paragraph ("He was born in 1950");
* a lead bonus for a chunk's first sentence, which names what the chunk is about;
* a bridge bonus for chunks whose title or entities are mentioned by the best sentences elsewhere:
  multi-hop questions need the second paragraph that the first one points to.

Sentences are kept best first while they pass every configured rule (``min_relative`` share of the
best score, ``top_k``, a token target from ``max_tokens`` or ``keep_ratio``), skipping
near-duplicates of kept ones (MMR-style, cosine above ``dedup``). The best sentence is always kept,
so the context is never empty when something was retrieved. Surviving sentences stay in their
original order inside their chunk; chunks left with none are dropped (protected ones are kept
whole). ``reorder=True`` puts the best chunks at both ends of the retrieved block, against
"lost in the middle".

>>> from ctxopt.embed import HashEmbedder
>>> from ctxopt.types import Context, Item
>>> ctx = Context(query="When was Mars explored?", items=(
...     Item(id="d1", kind="retrieved", text="Mars was explored in 1965. Cats purr."),))
>>> PruneChunks(top_k=1, embedder=HashEmbedder()).run(ctx).items[0].text
'Mars was explored in 1965.'
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from ctxopt.errors import ConfigError
from ctxopt.stages.similarity import embed, resolve_embedder
from ctxopt.text import entities, idf, keywords, overlap_all, split_sentences
from ctxopt.types import Context, Item


@dataclasses.dataclass(frozen=True)
class _Sentence:
    chunk: int  # index into the retrieved items
    position: int  # index inside the chunk
    text: str
    tokens: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class PruneChunks:
    """Keep the query-relevant sentences of retrieved chunks (see the module docstring)."""

    name: ClassVar[str] = "prune_chunks"
    max_tokens: int | None = None
    keep_ratio: float | None = None
    top_k: int | None = None
    min_relative: float | None = None
    dedup: float = 0.95
    reorder: bool = False
    keyword_weight: float = 0.45
    chunk_weight: float = 0.4
    lead_bonus: float = 0.15
    bridge_weight: float = 0.2
    embedder: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        checks = {
            "max_tokens": self.max_tokens is None or (isinstance(self.max_tokens, int) and self.max_tokens >= 0),
            "keep_ratio": self.keep_ratio is None or 0.0 < self.keep_ratio <= 1.0,
            "top_k": self.top_k is None or (isinstance(self.top_k, int) and self.top_k >= 1),
            "min_relative": self.min_relative is None or 0.0 <= self.min_relative <= 1.0,
            "dedup": 0.0 < self.dedup <= 1.0,
        }
        allowed = {"max_tokens": "a whole number >= 0", "keep_ratio": "a float in (0, 1]",
                   "top_k": "a whole number >= 1", "min_relative": "a float in [0, 1]",
                   "dedup": "a cosine in (0, 1] (1 turns deduplication off)"}
        for field, ok in checks.items():
            if not ok:
                raise ConfigError(f"prune_chunks: {field} must be {allowed[field]}, got {getattr(self, field)!r}")

    def run(self, context: Context) -> Context:
        positions = [n for n, i in enumerate(context.items) if i.kind == "retrieved"]
        if not positions:
            return context
        chunks = [context.items[n] for n in positions]
        tokenizer = context.counter()
        # A line that only repeats the chunk's title says nothing the message header does not.
        titles = [_bare(str(c.metadata.get("title") or "")) for c in chunks]
        sentences = [_Sentence(c, p, s, tokenizer.count(s))
                     for c, item in enumerate(chunks) for p, s in enumerate(split_sentences(item.text))
                     if not titles[c] or _bare(s) != titles[c]]
        if not sentences:
            return context
        scores, vectors, notes = self.score(context.query, chunks, sentences)
        keep = self._select(sentences, scores, vectors)
        new_chunks: dict[int, Item] = {}
        chunk_best = dict.fromkeys(range(len(chunks)), -math.inf)
        for index in keep:
            s = sentences[index]
            chunk_best[s.chunk] = max(chunk_best[s.chunk], float(scores[index]))
        for c, item in enumerate(chunks):
            kept = sorted((sentences[i] for i in keep if sentences[i].chunk == c), key=lambda s: s.position)
            if (item.protected or item.unit) and not kept:
                new_chunks[c] = item  # protected or part of a tool unit: never dropped, kept whole
            elif kept:
                total = sum(1 for s in sentences if s.chunk == c)
                text = item.text if len(kept) == total else " ".join(s.text for s in kept)
                new_chunks[c] = item.replace(text=text, score=round(chunk_best[c], 6)) if text != item.text \
                    else item.replace(score=round(chunk_best[c], 6))
        order = list(new_chunks)
        if self.reorder:
            order = _edges_first(sorted(order, key=lambda c: -chunk_best[c]))
        # The pruned chunks fill the retrieved items' slots in order; leftover slots disappear.
        slots = iter(new_chunks[c] for c in order)
        items = [i for i in (next(slots, None) if i.kind == "retrieved" else i for i in context.items) if i is not None]
        kept_tokens = sum(sentences[i].tokens for i in keep)
        all_tokens = sum(s.tokens for s in sentences)
        return context.replace(items=items).note(
            sentences_kept=len(keep), sentences_total=len(sentences),
            retrieved_tokens_kept=kept_tokens, retrieved_tokens_total=all_tokens, **notes)

    def score(self, query: str, chunks: list[Item], sentences: list[_Sentence]
              ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Each sentence's combined relevance to ``query``, the sentence vectors, and cache notes."""
        titles = [str(c.metadata.get("title") or "") for c in chunks]
        chunk_texts = [f"{t}: {c.text}" if t else c.text for t, c in zip(titles, chunks)]
        texts = [query, *chunk_texts, *(s.text for s in sentences)]
        matrix, notes = embed(resolve_embedder(self.embedder), texts)
        q, chunk_vecs, sent_vecs = matrix[0], matrix[1:1 + len(chunks)], matrix[1 + len(chunks):]
        sent_sim = sent_vecs @ q
        chunk_sim = chunk_vecs @ q

        q_words = keywords(query)
        chunk_words = [keywords(t) for t in chunk_texts]
        sent_words = [keywords(s.text) | keywords(titles[s.chunk]) for s in sentences]
        weights = idf(sent_words)
        default = max(weights.values(), default=1.0)
        sent_kw = np.array(overlap_all(q_words, sent_words, weights, default))
        chunk_kw = np.array(overlap_all(q_words, chunk_words, weights, default))
        # Title words named in the query ("Were Scott Derrickson and Ed Wood ...") mark the chunk.
        title_words = [keywords(t) for t in titles]
        title_hit = np.array([len(w & q_words) / len(w) if w else 0.0 for w in title_words])

        kw = self.keyword_weight
        chunk_rel = (1 - kw) * chunk_sim + kw * chunk_kw + 0.5 * title_hit
        chunk_of = np.array([s.chunk for s in sentences])
        lead = np.array([s.position == 0 for s in sentences], dtype=float)
        base = (1 - kw) * sent_sim + kw * sent_kw

        # Second hop: chunks that the best chunks' text points to by title or shared entities.
        first = base + self.chunk_weight * chunk_rel[chunk_of]
        top_chunks = list(dict.fromkeys(int(chunk_of[i]) for i in np.argsort(-first)[:3]))[:2]
        mentioned = set().union(*(keywords(chunks[c].text) for c in top_chunks))
        named = set().union(*(entities(chunks[c].text) for c in top_chunks))
        bridge = np.zeros(len(chunks))
        for c in range(len(chunks)):
            if c in top_chunks:
                continue
            title_share = len(title_words[c] & mentioned) / len(title_words[c]) if title_words[c] else 0.0
            entity_share = len(entities(chunks[c].text) & named) / max(1, len(named)) if named else 0.0
            bridge[c] = max(title_share, min(1.0, 3 * entity_share))
        chunk_total = chunk_rel + self.bridge_weight * bridge
        scores = base + self.chunk_weight * chunk_total[chunk_of] + self.lead_bonus * lead * np.maximum(chunk_total[chunk_of], 0)
        return scores, sent_vecs, notes

    def _select(self, sentences: list[_Sentence], scores: np.ndarray, vectors: np.ndarray) -> list[int]:
        target = self.max_tokens
        if self.keep_ratio is not None:
            ratio_target = math.floor(self.keep_ratio * sum(s.tokens for s in sentences))
            target = ratio_target if target is None else min(target, ratio_target)
        order = np.argsort(-scores, kind="stable")
        best = float(scores[order[0]])
        keep: list[int] = [int(order[0])]  # never empty: the best sentence always survives
        used = sentences[keep[0]].tokens
        for index in order[1:]:
            index = int(index)
            if self.top_k is not None and len(keep) >= self.top_k:
                break
            if self.min_relative is not None and scores[index] < self.min_relative * best:
                break
            cost = sentences[index].tokens
            if target is not None and used + cost > target:
                continue  # a shorter sentence further down may still fit
            if self.dedup < 1.0 and float(np.max(vectors[keep] @ vectors[index])) > self.dedup:
                continue
            keep.append(index)
            used += cost
        return keep


def _bare(text: str) -> str:
    return " ".join(text.lstrip("#").split()).lower()


def _edges_first(ranked: list[int]) -> list[int]:
    """Best at the start, second best at the end, and so on inward (lost-in-the-middle order)."""
    front: list[int] = []
    back: list[int] = []
    for n, c in enumerate(ranked):
        (front if n % 2 == 0 else back).append(c)
    return front + back[::-1]
