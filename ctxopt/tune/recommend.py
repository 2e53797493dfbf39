"""Recommend tier limits from recall curves: per tier, the cheapest budget that keeps its target.

A curve is a list of points ``{"budget", "recall", "tokens", "full_tokens"}``: mean evidence recall
and prompt tokens per request when a section (history or retrieved) is capped at ``budget``, and the
tokens the same requests cost unoptimised. A point may also carry ``bill`` and ``full_bill``: per
caching kind (``automatic``, ``explicit``, ``none``), the mean fresh, cache-read and cache-write
tokens per request when the requests run in order as a session, so a model's real cached bill can
be priced (the sessions benchmark writes these). :func:`~ctxopt.tune.evalset.recall_curve`
measures a curve on an evaluation set; the memory and sessions benchmarks write them for LoCoMo.

With a price, the recommendation is the budget with the lowest bill among those meeting the target
(a larger cap whose prefix stays cached can cost less than a smaller one); without, the smallest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ctxopt.errors import ConfigError, InputError
from ctxopt.pricing import Price
from ctxopt.sessions.billing import PER
from ctxopt.tiers import DEFAULT_TIERS, SECTION_NAMES, Tier

DEFAULT_TARGETS: dict[str, float] = {"free": 0.8, "pro": 0.9, "enterprise": 0.95}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recommendation:
    tier: str
    target: float
    budget: int
    recall: float
    tokens: float
    full_tokens: float
    met: bool
    note: str = ""  # why the pick is not the curve's best for the target (the tier's limit), if so
    cost: float | None = None  # US$ per request, prompt cache included, when priced
    full_cost: float | None = None  # the same requests unoptimised, with the cache they would have had

    @property
    def tokens_saved(self) -> float:
        return self.full_tokens - self.tokens

    @property
    def money_saved(self) -> float | None:
        """US$ saved per request by the cached bill (negative: the cap costs more than no ctxopt)."""
        return None if self.cost is None or self.full_cost is None else self.full_cost - self.cost

    def cost_saved(self, price_per_1k: float) -> float:
        return self.tokens_saved / 1000 * price_per_1k


def check_curve(curve: Any) -> list[dict[str, Any]]:
    if not isinstance(curve, Sequence) or not curve:
        raise InputError("a curve is a non-empty list of {budget, recall, tokens, full_tokens} points")
    for n, point in enumerate(curve):
        if not isinstance(point, Mapping) or not {"budget", "recall", "tokens", "full_tokens"} <= set(point):
            raise InputError(f"curve point {n} needs budget, recall, tokens and full_tokens, got {point!r}")
        if not 0.0 <= float(point["recall"]) <= 1.0 or int(point["budget"]) <= 0:
            raise InputError(f"curve point {n}: recall must be in [0, 1] and budget positive, got {point!r}")
    return sorted(curve, key=lambda p: p["budget"])


def point_cost(point: Mapping[str, Any], price: Price, full: bool = False) -> float:
    """US$ per request of a curve point at ``price``: its cache split under the model's caching
    when the curve has one, else all its tokens at list price. ``full``: the unoptimised requests."""
    split = point.get("full_bill" if full else "bill")
    if isinstance(split, Mapping) and isinstance(split.get(price.caching), Mapping):
        s = split[price.caching]
        return (float(s["fresh"]) * price.input + float(s["cached"]) * price.cache_read
                + float(s["written"]) * price.cache_write) / PER
    return float(point["full_tokens" if full else "tokens"]) * price.input / PER


def recommend(curve: Sequence[Mapping[str, Any]], targets: Mapping[str, float] | None = None,
              tiers: Mapping[str, Tier] | None = None, price: Price | None = None) -> dict[str, Recommendation]:
    """Per tier, the budget meeting the tier's target with the lowest bill at ``price`` (without a
    price: the smallest); else the best budget measured, with ``met=False`` (measure larger budgets
    to do better).

    A tier named in ``tiers`` keeps its limit: only budgets within its prompt budget (limit -
    reserve) are candidates, and ``note`` says when the target needed more and what limit would do.
    """
    points = check_curve(curve)
    targets = dict(DEFAULT_TARGETS if targets is None else targets)
    for name, target in targets.items():
        if not 0.0 < target <= 1.0:
            raise ConfigError(f"target recall for tier {name!r} must be in (0, 1], got {target!r}")
    out = {}
    for name, target in targets.items():
        tier = (tiers or {}).get(name)
        room = tier.budget if tier is not None else None
        fitting = [p for p in points if room is None or p["budget"] <= room]
        meeting = [p for p in fitting or points[:1] if p["recall"] >= target]
        if meeting and price is not None:
            point = min(meeting, key=lambda p: (round(point_cost(p, price), 12), p["budget"]))
        else:
            point = meeting[0] if meeting else max(fitting or points[:1], key=lambda p: (p["recall"], -p["budget"]))
        note = ""
        if tier is not None and not fitting:
            note = (f"tier {name!r} keeps its limit of {tier.limit} tokens, whose prompt budget ({room}) is below "
                    f"every budget measured; measure smaller budgets")
        elif tier is not None and not meeting and (needed := next((p for p in points if p["recall"] >= target), None)):
            note = (f"tier {name!r} keeps its limit of {tier.limit} tokens (prompt budget {room}); recall "
                    f"{target} needs a budget of {int(needed['budget'])}: raise its limit to at least "
                    f"{int(needed['budget']) + tier.reserve} in your tiers file to reach it")
        out[name] = Recommendation(tier=name, target=target, budget=int(point["budget"]), recall=float(point["recall"]),
                                   tokens=float(point["tokens"]), full_tokens=float(point["full_tokens"]),
                                   met=bool(meeting), note=note,
                                   cost=None if price is None else point_cost(point, price),
                                   full_cost=None if price is None else point_cost(point, price, full=True))
    return out


def tuned_tiers(recommendations: Mapping[str, Recommendation], section: str = "history",
                base: Mapping[str, Tier] | None = None) -> dict[str, Tier]:
    """Tiers whose ``section`` cap is the recommended budget; every other limit comes from ``base``
    (default tiers) unchanged. A tier missing from ``base`` gets the budget plus a 1,024-token reserve."""
    if section not in SECTION_NAMES:
        raise ConfigError(f"unknown section {section!r}; choose from {', '.join(SECTION_NAMES)}")
    base = dict(DEFAULT_TIERS if base is None else base)
    tiers = {}
    for name, rec in recommendations.items():
        tier = base.get(name) or Tier(rec.budget + 1024, reserve=1024, name=name)
        tiers[name] = tier.replace(name=name, **{section: rec.budget})
    return tiers


def pareto_plot(curve: Sequence[Mapping[str, float]], recommendations: Mapping[str, Recommendation],
                path: Path, title: str) -> None:
    """Recall against prompt tokens per request, with each tier's pick marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = check_curve(curve)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot([p["tokens"] for p in points], [p["recall"] for p in points], "o-", color="#1f77b4", label="ctxopt")
    for p in points:
        ax.annotate(str(p["budget"]), (p["tokens"], p["recall"]), textcoords="offset points", xytext=(4, -10), fontsize=7)
    full = points[0]["full_tokens"]
    ax.axvline(full, color="grey", ls="--", lw=1, label=f"no optimisation ({full:,.0f} tokens)")
    for rec in recommendations.values():
        ax.scatter([rec.tokens], [rec.recall], s=90, marker="*", zorder=3,
                   label=f"{rec.tier}: {rec.budget} tokens, recall {rec.recall:.2f} (target {rec.target})")
    ax.set_xscale("log")
    ax.set_xlabel("prompt tokens per request (log)")
    ax.set_ylabel("evidence recall")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
