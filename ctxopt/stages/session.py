"""Session layout: a prompt whose prefix stays byte-identical between compactions, so the provider
bills it from its prompt cache, with the older turns relevant to this query in a small tail.

Layout (see :mod:`ctxopt.sessions.layout`)::

    head: system prompt, summary | window: latest turns since the last compaction | tail | retrieved | turn in progress

The history cap (``history``, else the tier's history cap, else the budget less the head) is split:
the window's high watermark is ``1 - tail`` of it, and a compaction drops the window to ``low`` of
that. The tail (older turns scored like ``prune_history``: embedding similarity plus keyword
overlap) takes what the window and the turn in progress leave of the cap, at most ``tail_tokens``
(it is billed fresh on every request, so it stays small whatever the cap), filled best score first
like ``prune_history`` fills its cap; ``min_score`` (default none) leaves out turns scoring below
it, at the price of room left unused (a score floor cost more recall than the room it saved: see
the README). The turn in progress (the latest user message and everything after it) is
kept as it is. When the head and a freshly compacted window would stay below
``min_cached_tokens`` (the provider's minimum cached prefix: 1,024 for OpenAI and most Claude
models), no window is held: the cap goes to the ``keep_last`` latest turns and the most relevant
older ones, as ``prune_history`` would choose.

The defaults (``tail=0.3, low=0.6, tail_tokens=768, min_score=None, neighbours=0``) were chosen on
four LoCoMo conversations of the sessions benchmark (conv-26, conv-30, conv-42, conv-43); the
other three are held out. See the README.

The stage drops the history it does not lay out and marks the last item of the head and of the
window with ``metadata[CACHE_BREAKPOINT] = True`` (Anthropic adapters turn that into
``cache_control``). Window items score ``inf`` so the fit keeps them first.

>>> from ctxopt.embed import HashEmbedder
>>> from ctxopt.tiers import Tier
>>> from ctxopt.types import Context
>>> msgs = [{"role": "system", "content": "Be brief."}] + [
...     {"role": "user" if n % 2 == 0 else "assistant", "content": f"Turn {n} is about topic {n}."} for n in range(40)]
>>> ctx = Context.from_messages(msgs + [{"role": "user", "content": "What about topic 3?"}], tier=Tier(4096, history=200))
>>> out = SessionLayout(embedder=HashEmbedder(), min_cached_tokens=0).run(ctx)
>>> [i.id for i in out.items if i.metadata.get(CACHE_BREAKPOINT)]   # end of the head, end of the window
['m0', 'm40']
>>> "m4" in [i.id for i in out.items]     # "Turn 3 is about topic 3", from before the window, in the tail
True
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

from ctxopt.errors import ConfigError
from ctxopt.sessions.layout import boundary, choose_tail
from ctxopt.stages.base import require_whole
from ctxopt.stages.prune_history import PruneHistory, history_units, lend_to_neighbours
from ctxopt.tokens import REPLY_PRIMING
from ctxopt.types import CACHE_BREAKPOINT, Context, Item


@dataclasses.dataclass(frozen=True, kw_only=True)
class SessionLayout:
    """Lay the history out for the provider's prompt cache (see the module docstring)."""

    name: ClassVar[str] = "session"
    history: int | None = None
    tail: float = 0.3
    low: float = 0.6
    min_score: float | None = None
    tail_tokens: int = 768
    min_cached_tokens: int = 1024
    keep_last: int = 4
    neighbours: int = 0
    neighbour_decay: float = 0.85
    keyword_weight: float = 0.5
    embedder: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.history is not None:
            require_whole(self.name, 1, history=self.history)
        require_whole(self.name, neighbours=self.neighbours, min_cached_tokens=self.min_cached_tokens,
                      keep_last=self.keep_last, tail_tokens=self.tail_tokens)
        for field, value in (("tail", self.tail), ("low", self.low), ("neighbour_decay", self.neighbour_decay),
                             ("keyword_weight", self.keyword_weight)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"session: {field} must be a share in [0, 1], got {value!r}")
        if self.min_score is not None and (isinstance(self.min_score, bool) or not isinstance(self.min_score, (int, float))
                                           or math.isnan(self.min_score)):
            raise ConfigError(f"session: min_score must be a number or None (no floor), got {self.min_score!r}")

    def run(self, context: Context) -> Context:
        tokenizer = context.counter()  # the request's own counter (its model's encoding or estimate)
        items = [i if i.tokens is not None else i.replace(tokens=tokenizer.count_message(i.to_message()))
                 for i in context.items]
        units = history_units(tuple(items))
        if not units:
            return context.replace(items=items)
        # The turn in progress: the last run of units with protected members (the latest user message
        # and the tool calls and results after it).
        guarded = [any(items[n].protected for n in u) for u in units]
        turn_unit = max((k for k, g in enumerate(guarded) if g), default=len(units))
        while 0 < turn_unit < len(units) and guarded[turn_unit - 1]:
            turn_unit -= 1
        turn_start = units[turn_unit][0] if turn_unit < len(units) else len(items)
        past = units[:turn_unit]
        size = {u[0]: sum(items[n].tokens or 0 for n in u) for u in units}
        pinned = [u for u, g in zip(past, guarded) if g]
        free = [u for u, g in zip(past, guarded) if not g]
        first_history = units[0][0]
        head = [n for n in range(first_history) if items[n].kind != "retrieved"]
        head_tokens = sum(items[n].tokens or 0 for n in head)
        cap = self._cap(context, head_tokens)
        high = cap - round(cap * self.tail)
        low = round(high * self.low)
        # A prefix shorter than the provider's minimum right after a compaction is never cached:
        # then holding a window buys nothing, and the whole cap goes to relevance (prune_history's way).
        cached = head_tokens + low >= self.min_cached_tokens
        start = boundary([size[u[0]] for u in free], high, low) if cached else len(free)
        old, window = free[:start], free[start:]
        window_start = window[0][0] if window else turn_start
        in_window = {n for u in window for n in u}
        window_tokens = sum(size[u[0]] for u in window)
        turn_tokens = sum(size[u[0]] for u in units[turn_unit:])
        room = cap - window_tokens - turn_tokens - sum(size[u[0]] for u in pinned)
        if cached:  # the tail is billed fresh on every request: bounded, whatever the cap
            room = min(room, self.tail_tokens)
        tail, scores, notes = self._tail(context.query, items, units, old, room, size,
                                         recent=0 if cached else self.keep_last)
        pinned_positions = {n for u in pinned for n in u}
        head += sorted(pinned_positions) + [n for n in range(first_history, window_start) if n not in pinned_positions
                                            and items[n].kind not in ("user", "assistant", "tool", "retrieved")]
        window_seq = [n for n in range(window_start, turn_start)
                      if n in in_window or items[n].kind not in ("user", "assistant", "tool", "retrieved")]
        volatile = [n for n in range(turn_start) if items[n].kind == "retrieved"]
        out: list[Item] = []
        for segment, stable in ((head, True), (window_seq, True), (tail, False), (volatile, False),
                                (list(range(turn_start, len(items))), False)):
            for k, n in enumerate(segment):
                item = items[n]
                if n in in_window and not item.protected:
                    item = item.replace(score=math.inf)
                elif n in scores:
                    item = item.replace(score=scores[n])
                if stable and k == len(segment) - 1:  # a marker, not text: the token count stands
                    item = item.replace(metadata={**item.metadata, CACHE_BREAKPOINT: True}, tokens=item.tokens)
                out.append(item)
        return context.replace(items=out).note(
            layout="window" if cached else "relevance", history_cap=cap, high=high, window_start=start,
            window_tokens=window_tokens,
            tail_turns=len(tail), tail_tokens=sum(items[n].tokens or 0 for n in tail), **notes)

    def _cap(self, context: Context, head_tokens: int) -> int:
        tier = context.tier
        budget = tier.budget - head_tokens - REPLY_PRIMING - context.fixed_tokens if tier is not None else math.inf
        cap = self.history if self.history is not None else (
            tier.cap("history") if tier is not None and tier.history is not None else budget)
        if cap == math.inf:
            raise ConfigError("session: give history= or a context with a tier, so the layout knows its cap")
        return max(0, int(min(cap, budget)))

    def _tail(self, query: str, items: list[Item], units: list[list[int]], old: list[list[int]], room: int,
              size: dict[int, int], recent: int = 0) -> tuple[list[int], dict[int, float], dict[str, int]]:
        """Positions of the older turns to repeat after the window, and their scores; the last
        ``recent`` of them come first whatever their score."""
        if not old or room <= 0 or (not query and not recent) or self.min_score == math.inf:
            return [], {}, {}
        scorer = PruneHistory(keep_last=0, keyword_weight=self.keyword_weight, embedder=self.embedder)
        values, notes = scorer.score(query, [" ".join(items[n].text for n in u if items[n].text) for u in old])
        by_group = {items[u[0]].group: float(s) for u, s in zip(old, values)}
        lend_to_neighbours(by_group, [items[u[0]].group for u in units], self.neighbours, self.neighbour_decay)
        scored = [(size[u[0]], math.inf if k >= len(old) - recent else round(by_group[items[u[0]].group], 6))
                  for k, u in enumerate(old)]
        chosen = choose_tail(scored, room, -math.inf if self.min_score is None else self.min_score)
        positions = [n for k in chosen for n in old[k]]
        return positions, {n: scored[k][1] for k in chosen for n in old[k]}, notes

