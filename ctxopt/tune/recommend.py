"""Recommend tier limits from recall curves: per tier, the smallest budget that keeps its target.

A curve is a list of points ``{"budget", "recall", "tokens", "full_tokens"}``: mean evidence recall
and prompt tokens per request when a section (history or retrieved) is capped at ``budget``, and the
tokens the same requests cost unoptimised. :func:`~ctxopt.tune.evalset.recall_curve` measures one on
an evaluation set; the memory benchmark writes one for LoCoMo.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ctxopt.errors import ConfigError, InputError
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

    @property
    def tokens_saved(self) -> float:
        return self.full_tokens - self.tokens

    def cost_saved(self, price_per_1k: float) -> float:
        return self.tokens_saved / 1000 * price_per_1k


def check_curve(curve: Any) -> list[dict[str, float]]:
    if not isinstance(curve, Sequence) or not curve:
        raise InputError("a curve is a non-empty list of {budget, recall, tokens, full_tokens} points")
    for n, point in enumerate(curve):
        if not isinstance(point, Mapping) or not {"budget", "recall", "tokens", "full_tokens"} <= set(point):
            raise InputError(f"curve point {n} needs budget, recall, tokens and full_tokens, got {point!r}")
        if not 0.0 <= float(point["recall"]) <= 1.0 or int(point["budget"]) <= 0:
            raise InputError(f"curve point {n}: recall must be in [0, 1] and budget positive, got {point!r}")
    return sorted(curve, key=lambda p: p["budget"])


def recommend(curve: Sequence[Mapping[str, float]], targets: Mapping[str, float] | None = None,
              tiers: Mapping[str, Tier] | None = None) -> dict[str, Recommendation]:
    """Per tier, the smallest budget whose recall meets the tier's target; else the best budget
    measured, with ``met=False`` (measure larger budgets to do better).

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
                                   met=bool(meeting), note=note)
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
