"""What one request did: tokens before and after each stage, what was dropped, time, and its bill.

The bill prices the prompt sent with the model's fresh, cache-read and cache-write prices and the
tokens the provider would serve from its cache given the session's previous prompt (none without a
session), next to the bill of the prompt as it came in, with the cache *it* would have had. The
difference (``cost_saved``) can be negative, and ``str(report)`` then says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ctxopt.pricing import Price
from ctxopt.sessions.billing import PER, Bill


@dataclasses.dataclass(frozen=True, kw_only=True)
class StageReport:
    name: str
    tokens_in: int
    tokens_out: int
    dropped: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    seconds: float = 0.0
    notes: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Report:
    """The report of one request. ``str(report)`` is a readable summary; ``to_dict()`` is for JSON."""

    tier: str
    tokens_before: int
    tokens_after: int
    budget: int
    stages: tuple[StageReport, ...]
    seconds: float
    model: str
    price: Price
    bill: Bill | None = None
    bill_without_ctxopt: Bill | None = None
    session: str | None = None
    billed: Bill | None = None  # from the provider's usage, when the response came back through wrap()
    counting: str = ""  # the encoding, and the margin when counts are estimates
    fixed_tokens: int = 0  # tool definitions and response_format schemas, charged in every prompt
    repairs: tuple[str, ...] = ()  # what was repaired on the way in (unanswered tool calls, orphans)

    @property
    def tokens_saved(self) -> int:
        return self.tokens_before - self.tokens_after

    @property
    def price_per_1k(self) -> float:
        """The model's list input price per 1k tokens."""
        return self.price.per_1k

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens the provider would serve from its cache (0 without a session)."""
        return self.bill.cached_tokens if self.bill else 0

    @property
    def cost(self) -> float:
        """US$ for the prompt sent, cache reads and writes included."""
        return self.bill.cost if self.bill else self.tokens_after * self.price.input / PER

    @property
    def cost_without_ctxopt(self) -> float:
        """US$ the prompt as it came in would have cost, with the cache it would have had."""
        return self.bill_without_ctxopt.cost if self.bill_without_ctxopt else self.tokens_before * self.price.input / PER

    @property
    def cost_saved(self) -> float:
        """``cost_without_ctxopt - cost``: negative when ctxopt's prompt costs more (e.g. it broke
        a cached prefix that the whole conversation would have reused)."""
        return self.cost_without_ctxopt - self.cost

    @property
    def dropped(self) -> tuple[str, ...]:
        return tuple(i for s in self.stages for i in s.dropped)

    def _sum_note(self, key: str) -> int:
        return sum(int(s.notes.get(key, 0)) for s in self.stages)

    @property
    def cache_hits(self) -> int:
        return self._sum_note("cache_hits")

    @property
    def cache_misses(self) -> int:
        return self._sum_note("cache_misses")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["stages"] = [{**dataclasses.asdict(s), "notes": dict(s.notes)} for s in self.stages]
        data.update(tokens_saved=self.tokens_saved, cost_saved=round(self.cost_saved, 8),
                    cost=round(self.cost, 8), cost_without_ctxopt=round(self.cost_without_ctxopt, 8),
                    cached_tokens=self.cached_tokens, price_per_1k=self.price_per_1k,
                    cache_hits=self.cache_hits, cache_misses=self.cache_misses)
        return data

    def _size_change(self) -> str:
        """What happened to the prompt's size: the share kept when stages only cut; when a stage
        added tokens (retrieval adds chunks), the tokens added and cut, so the line never shows a
        share over 100% or a negative saving."""
        deltas = [(s.tokens_out - s.tokens_in, "retrieved" in s.notes) for s in self.stages]
        if all(d <= 0 for d, _ in deltas):
            share = self.tokens_after / self.tokens_before if self.tokens_before else 1.0
            return f"{share:.0%} kept"
        retrieved = sum(d for d, by_retrieval in deltas if d > 0 and by_retrieval)
        other = sum(d for d, by_retrieval in deltas if d > 0 and not by_retrieval)
        cut = -sum(d for d, _ in deltas if d < 0)
        parts = [f"added {retrieved} retrieved tokens"] if retrieved else []
        parts += [f"added {other} {'other ' if retrieved else ''}tokens"] if other else []
        parts += [f"cut {cut}"] if cut else []
        return ", ".join(parts)

    def __str__(self) -> str:
        lines = [
            f"tier {self.tier}: {self.tokens_before} -> {self.tokens_after} tokens ({self._size_change()}, budget "
            f"{self.budget}), {self._money()}, {self.seconds * 1000:.1f} ms",
        ]
        if self.counting and self.counting != "cl100k_base":
            lines.append(f"  counted in {self.counting}")
        if self.fixed_tokens:
            lines.append(f"  tool definitions and response_format: {self.fixed_tokens} tokens")
        lines += [f"  repaired {r}" for r in self.repairs]
        for s in self.stages:
            line = f"  {s.name:<14} {s.tokens_in:>7} -> {s.tokens_out:<7} {s.seconds * 1000:7.1f} ms"
            if s.dropped:
                shown = ", ".join(s.dropped[:8]) + (f", ... (+{len(s.dropped) - 8})" if len(s.dropped) > 8 else "")
                line += f"  dropped {len(s.dropped)}: {shown}"
            if s.added:
                line += f"  added {len(s.added)}"
            if s.notes:
                line += "  " + " ".join(f"{k}={v}" for k, v in s.notes.items() if not isinstance(v, (list, dict)))
            lines.append(line)
        if self.cache_hits or self.cache_misses:
            lines.append(f"  embedding cache: {self.cache_hits} hits, {self.cache_misses} misses")
        if self.billed is not None:
            lines.append(f"  billed by the provider: {self.billed.prompt_tokens} prompt tokens, "
                         f"{self.billed.cached_tokens} cached, {self.billed.cache_write_tokens} written, "
                         f"${self.billed.cost:.6f} (estimated ${self.cost:.6f})")
        return "\n".join(lines)

    def _money(self) -> str:
        """The bill in one phrase: what was saved (or how much more it costs), at which price, and what
        the prompt cache served; never a negative saving."""
        where = f"at ${self.price_per_1k}/1k ({self.model})"
        detail = f"${self.cost:.6f} instead of ${self.cost_without_ctxopt:.6f}"
        if self.bill and (self.bill.cached_tokens or self.bill.cache_write_tokens):
            detail += f", {self.bill.cached_tokens} tokens from the prompt cache"
            detail += f", {self.bill.cache_write_tokens} written to it" if self.bill.cache_write_tokens else ""
        if self.cost_saved < 0:
            cached_without = self.bill_without_ctxopt.cached_tokens if self.bill_without_ctxopt else 0
            why = (" (the prompt as it came in would have been served from the prompt cache)"
                   if cached_without > self.cached_tokens else "")
            return f"costs ${-self.cost_saved:.6f} more {where} than without ctxopt: {detail}{why}"
        return f"saved ${self.cost_saved:.6f} {where}: {detail}"
