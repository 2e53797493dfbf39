"""The tier fit: the one stage that makes a hard cut, and the only one that guarantees limits.

Guarantees, counted exactly with the pipeline's tokenizer:

1. The prompt (every message plus the reply priming) never exceeds ``tier.limit - tier.reserve``.
2. Protected items are never dropped. If they alone do not fit, :class:`BudgetError` is raised,
   unless ``on_overflow="truncate"``: then the longest protected texts are cut (marked with
   ``[truncated]``) until they fit, and the report says which.
3. A tool-call unit is kept or dropped whole.
4. No section (system, history, retrieved, summary) exceeds its cap through unprotected items.
5. Within that, the highest-priority units are kept (by score, then recency), in original order.
6. When the provider needs the conversation to open on the user (``Context.opens_on_user``, set
   by the Anthropic adapter for a conversation the caller opened on the user: its API rejects a
   first message from the assistant), kept assistant turns that would open it, their question cut
   here or by an earlier stage, are dropped too (``answers_without_question`` in the report).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Literal

from ctxopt.errors import BudgetError, ConfigError
from ctxopt.tiers import SECTION_NAMES, Tier
from ctxopt.tokens import REPLY_PRIMING, Tokenizer
from ctxopt.types import Context, Item

OVERFLOW_POLICIES = ("error", "truncate")
TRUNCATION_MARK = " [truncated]"


def _priority(unit: list[tuple[int, Item]]) -> tuple[float, int]:
    scores = [i.score for _, i in unit if i.score is not None and not math.isnan(i.score)]
    return (max(scores) if scores else -math.inf, unit[-1][0])


@dataclasses.dataclass(frozen=True, kw_only=True)
class Fit:
    """Cut the context to the tier's limits (see the module docstring for the guarantees)."""

    name: ClassVar[str] = "fit"
    on_overflow: Literal["error", "truncate"] = "error"

    def __post_init__(self) -> None:
        if self.on_overflow not in OVERFLOW_POLICIES:
            raise ConfigError(f"fit: on_overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got {self.on_overflow!r}")

    def run(self, context: Context) -> Context:
        tier = context.tier
        if not isinstance(tier, Tier):
            raise ConfigError("fit needs a context with a Tier; pass tier= to optimize() or Context")
        tokenizer = context.counter()  # the request's own counter (its model's encoding or estimate)
        # Every decision below is taken on exact counts: the pipeline's where it counted the item,
        # otherwise counted here, so a context built by hand fits as exactly as one from optimize().
        cost = {i.id: i.tokens if i.tokens is not None else tokenizer.count_message(i.to_message())
                for i in context.items}
        items, truncated = self._fit_protected(list(context.items), cost, tier, tokenizer, context.fixed_tokens)
        units: dict[str, list[tuple[int, Item]]] = {}
        for position, item in enumerate(items):
            units.setdefault(item.group, []).append((position, item))
        used = dict.fromkeys(SECTION_NAMES, 0)
        total = REPLY_PRIMING + context.fixed_tokens
        keep: set[str] = set()
        for group, unit in units.items():
            if any(i.protected for _, i in unit):
                keep.add(group)
                total += self._charge(unit, cost, used)
        caps = {s: tier.cap(s) for s in SECTION_NAMES}
        for unit in sorted((u for g, u in units.items() if g not in keep), key=_priority, reverse=True):
            by_section: dict[str, int] = {}
            for _, item in unit:
                by_section[item.section] = by_section.get(item.section, 0) + cost[item.id]
            if total + sum(by_section.values()) <= tier.budget and \
                    all(used[s] + n <= caps[s] for s, n in by_section.items() if n):
                keep.add(unit[0][1].group)
                total += self._charge(unit, cost, used)
        orphans = self._answers_without_question(items, keep) if context.opens_on_user else []
        for group in orphans:
            keep.discard(group)
            total -= sum(cost[i.id] for i in items if i.group == group)
        kept = [i if i.tokens == cost[i.id] else i.replace(tokens=cost[i.id]) for i in items if i.group in keep]
        out = context.replace(items=kept)
        notes: dict[str, object] = {"prompt_tokens": total, "budget": tier.budget}
        if truncated:
            notes["truncated"] = truncated
        if orphans:
            notes["answers_without_question"] = orphans
        return out.note(**notes)

    @staticmethod
    def _answers_without_question(items: list[Item], keep: set[str]) -> list[str]:
        """Kept assistant turns that would open the conversation: Anthropic's API rejects a
        conversation whose first message is the assistant's, and any model reads an answer without
        its question as noise. Whoever cut the question (this fit, or an earlier stage such as the
        session layout's window), the answer goes; the adapter sets ``opens_on_user`` only for a
        conversation the caller opened on the user."""
        out: list[str] = []
        for item in items:
            if item.kind == "system" or item.group not in keep or item.group in out:
                continue
            if item.kind != "assistant" or item.protected:
                break
            out.append(item.group)
        return out

    @staticmethod
    def _charge(unit: list[tuple[int, Item]], cost: dict[str, int], used: dict[str, int]) -> int:
        for _, item in unit:
            used[item.section] += cost[item.id]
        return sum(cost[i.id] for _, i in unit)

    def _fit_protected(
        self, items: list[Item], cost: dict[str, int], tier: Tier, tokenizer: Tokenizer, fixed: int,
    ) -> tuple[list[Item], list[str]]:
        """Truncate protected texts (when allowed) until they fit; updates ``cost`` in place."""
        protected_groups = {i.group for i in items if i.protected}
        required = REPLY_PRIMING + fixed + sum(cost[i.id] for i in items if i.group in protected_groups)
        if required <= tier.budget:
            return items, []
        if self.on_overflow == "error":
            raise BudgetError(
                f"protected items need {required} tokens but tier {tier.name or tier!r} allows "
                f"{tier.budget} (limit {tier.limit} - reserve {tier.reserve})"
                + (f", {fixed} of them for tool definitions and response_format" if fixed else "")
                + "; shorten the system prompt, the latest message or the turn in progress",
                hint="add prune_tool_output to cut long tool results, choose a larger tier, or use "
                     "Fit(on_overflow='truncate')",
                cli_hint="add a prune_tool_output stage to the --pipeline file to cut long tool results, choose a "
                         "larger --tier, or truncate them: [fit] on_overflow = \"truncate\" in the --pipeline file",
            )
        truncated: list[str] = []
        while required > tier.budget:
            longest = max((i for i in items if i.group in protected_groups and i.text),
                          key=lambda i: cost[i.id], default=None)
            if longest is None:
                raise BudgetError(
                    f"tier {tier.name or tier!r} allows {tier.budget} tokens, too few even for the "
                    f"protected messages' overhead ({required}); choose a larger tier"
                )
            excess = required - tier.budget
            text_tokens = tokenizer.count(longest.text)
            keep_tokens = max(0, text_tokens - excess - tokenizer.count(TRUNCATION_MARK))
            text = tokenizer.truncate(longest.text, keep_tokens) + TRUNCATION_MARK if keep_tokens else ""
            new_tokens = tokenizer.count_message(longest.replace(text=text).to_message())
            new = longest.replace(text=text, tokens=new_tokens)
            items = [new if i.id == longest.id else i for i in items]
            required -= cost[longest.id] - new_tokens
            cost[longest.id] = new_tokens
            truncated.append(longest.id)
        return items, sorted(set(truncated))
