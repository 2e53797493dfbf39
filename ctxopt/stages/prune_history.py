"""History pruning: score past turns against the current query so the fit keeps the relevant ones.

Each history unit (a message, or a tool-call unit scored as one) gets a score that combines its
embedding similarity and IDF-weighted keyword overlap with the query. The last ``keep_last`` units
(protected ones count) score ``inf`` so the fit always takes them first; protected items keep their score (the fit keeps
them anyway). A relevant turn lends ``neighbour_decay`` of its score to the ``neighbours`` units
before it (the question before an answer), so they come in with it when they fit.

The stage sets scores and leaves the cut to the fit, which keeps by score, then recency, within the
tier's history cap. With ``max_tokens`` it also drops the lowest-scored units beyond that many
history tokens itself (never protected ones, never the last ``keep_last``, tool units whole).

>>> from ctxopt.embed import HashEmbedder
>>> from ctxopt.types import Context
>>> ctx = Context.from_messages([{"role": "user", "content": "My cat is called Tom."},
...     {"role": "assistant", "content": "Nice."}, {"role": "user", "content": "Weather?"},
...     {"role": "assistant", "content": "Sunny."}, {"role": "user", "content": "What is my cat called?"}])
>>> out = PruneHistory(keep_last=1, neighbours=0, embedder=HashEmbedder()).run(ctx)
>>> max((i for i in out.items[:-2]), key=lambda i: i.score).text
'My cat is called Tom.'
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from ctxopt.errors import ConfigError
from ctxopt.stages.base import require_whole
from ctxopt.stages.similarity import embed, resolve_embedder
from ctxopt.text import idf, keywords, overlap_all
from ctxopt.types import Context, Item

HISTORY_KINDS = ("user", "assistant", "tool")


def history_units(items: tuple[Item, ...]) -> list[list[int]]:
    """Positions of history items grouped into keep-or-drop units, in prompt order."""
    units: dict[str, list[int]] = {}
    for n, item in enumerate(items):
        if item.kind in HISTORY_KINDS:
            units.setdefault(item.group, []).append(n)
    return list(units.values())


def lend_to_neighbours(scores: dict[str, float], order: list[str], neighbours: int, decay: float) -> None:
    """In place: a unit before a relevant one (the question before an answer) inherits ``decay ** k``
    of the score of the unit ``k`` places after it, for k up to ``neighbours``. ``order`` lists the
    unit ids in prompt order; only units already in ``scores`` take part."""
    base = dict(scores)
    for position, group in enumerate(order):
        for back in range(1, neighbours + 1):
            if group in base and position - back >= 0 and order[position - back] in scores:
                scores[order[position - back]] = max(scores[order[position - back]], base[group] * decay ** back)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PruneHistory:
    """Score history turns by relevance to the query (see the module docstring)."""

    name: ClassVar[str] = "prune_history"
    keep_last: int = 4
    neighbours: int = 1
    neighbour_decay: float = 0.85
    keyword_weight: float = 0.5
    max_tokens: int | None = None
    embedder: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        require_whole(self.name, keep_last=self.keep_last, neighbours=self.neighbours)
        if not 0.0 <= self.neighbour_decay <= 1.0:
            raise ConfigError(f"prune_history: neighbour_decay must be in [0, 1], got {self.neighbour_decay!r}")
        if not 0.0 <= self.keyword_weight <= 1.0:
            raise ConfigError(f"prune_history: keyword_weight must be in [0, 1], got {self.keyword_weight!r}")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 0):
            raise ConfigError(f"prune_history: max_tokens must be a whole number >= 0 or None, got {self.max_tokens!r}")

    def run(self, context: Context) -> Context:
        items = context.items
        units = history_units(items)
        recent = units[len(units) - self.keep_last:] if self.keep_last else []
        scored = [u for u in units[:len(units) - len(recent)] if not any(items[n].protected for n in u)]
        unit_score: dict[str, float] = {}
        notes: dict[str, Any] = {}
        if scored:
            texts = [" ".join(items[n].text for n in u if items[n].text) for u in scored]
            scores, notes = self.score(context.query, texts)
            unit_score = {items[u[0]].group: float(s) for u, s in zip(scored, scores)}
        lend_to_neighbours(unit_score, [items[u[0]].group for u in units], self.neighbours, self.neighbour_decay)
        for u in recent:
            unit_score[items[u[0]].group] = math.inf
        out = [i.replace(score=round(unit_score[i.group], 6)) if i.group in unit_score and not i.protected else i
               for i in items]
        dropped = 0
        if self.max_tokens is not None:
            out, dropped = self._cut(out, scored, self.max_tokens, context.counter())
        return context.replace(items=out).note(turns_scored=len(scored), turns_dropped=dropped, **notes)

    def score(self, query: str, texts: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
        """Combined relevance of each text to ``query``: embedding similarity and keyword overlap."""
        matrix, notes = embed(resolve_embedder(self.embedder), [query, *texts])
        similarity = matrix[1:] @ matrix[0]
        sets = [keywords(t) for t in texts]
        weights = idf(sets)
        default = max(weights.values(), default=1.0)
        q = keywords(query)
        kw = np.array(overlap_all(q, sets, weights, default))
        return (1 - self.keyword_weight) * similarity + self.keyword_weight * kw, notes

    def _cut(self, items: list[Item], scored: list[list[int]], max_tokens: int, tokenizer: Any) -> tuple[list[Item], int]:
        cost = {n: i.tokens if i.tokens is not None else tokenizer.count_message(i.to_message())
                for n, i in enumerate(items)}
        budget = max_tokens - sum(cost[n] for n, i in enumerate(items)
                                       if i.kind in HISTORY_KINDS and not any(n in u for u in scored))
        drop: set[str] = set()
        for unit in sorted(scored, key=lambda u: (-(items[u[0]].score or 0.0), -u[-1])):
            unit_cost = sum(cost[n] for n in unit)
            if unit_cost <= budget:
                budget -= unit_cost
            else:
                drop.add(items[unit[0]].group)
        return [i for i in items if i.group not in drop], len(drop)
