"""What one request did: tokens before and after each stage, what was dropped, time, cost saved."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


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
    price_per_1k: float
    counting: str = ""  # the encoding, and the margin when counts are estimates
    fixed_tokens: int = 0  # tool definitions and response_format schemas, charged in every prompt
    repairs: tuple[str, ...] = ()  # what was repaired on the way in (unanswered tool calls, orphans)

    @property
    def tokens_saved(self) -> int:
        return self.tokens_before - self.tokens_after

    @property
    def cost_saved(self) -> float:
        """Dollars saved on input tokens at ``price_per_1k`` (negative if retrieval added more)."""
        return self.tokens_saved / 1000 * self.price_per_1k

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
        money = f"saved ${self.cost_saved:.6f}" if self.cost_saved >= 0 else f"costs ${-self.cost_saved:.6f} more"
        lines = [
            f"tier {self.tier}: {self.tokens_before} -> {self.tokens_after} tokens ({self._size_change()}, budget "
            f"{self.budget}), {money} at ${self.price_per_1k}/1k ({self.model}), {self.seconds * 1000:.1f} ms",
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
        return "\n".join(lines)
