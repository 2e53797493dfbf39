"""``ctxopt tune``: recommend tier limits from recall curves or your own evaluation set.

    ctxopt tune --curve results/memory/curve.json --target free=0.8 --target pro=0.9
    ctxopt tune --evalset my_cases.jsonl --pipeline pipeline.toml --budgets 250,500,1000,2000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ctxopt.cli.files import check_output_file
from ctxopt.errors import InputError

DEFAULT_BUDGETS = "250,500,750,1000,1500,2000,3000,4000,6000,8000"


def add_parser(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--curve", metavar="JSON", help="a recall curve, e.g. results/memory/curve.json")
    source.add_argument("--evalset", metavar="JSONL", help="your evaluation set (format: docs, 'Tune tiers')")
    parser.add_argument("--variant", help="which curve in a file holding several (default: the file's 'default')")
    parser.add_argument("--pipeline", metavar="TOML", help="with --evalset: the pipeline to measure "
                        "(default: history pruning, the memory benchmark's best variant)")
    parser.add_argument("--budgets", default=DEFAULT_BUDGETS, help=f"with --evalset: budgets to try ({DEFAULT_BUDGETS})")
    parser.add_argument("--section", default="history", help="the section the budget caps (history or retrieved)")
    parser.add_argument("--target", action="append", default=[], metavar="TIER=RECALL",
                        help="target evidence recall per tier (default: free=0.8 pro=0.9 enterprise=0.95)")
    parser.add_argument("--tiers", metavar="TOML", help="tiers to start from (default: built-in)")
    parser.add_argument("--out", default="tiers.toml", help="where to write the tuned tiers, and their numbers as "
                        ".json next to it (default: tiers.toml)")
    parser.add_argument("--plot", default=None, help="Pareto plot PNG (default: next to --out, as .png)")
    parser.add_argument("--model", default="gpt-4o", help="model whose prices (fresh, cached, cache write) value "
                        "each budget's bill; the cheapest budget meeting the target wins (default: gpt-4o)")
    parser.add_argument("--price", type=float, metavar="USD", help="price per 1k input tokens, overrides --model's")
    parser.add_argument("--prices", metavar="FILE", help="JSON or TOML of per-model prices (US$ per 1M tokens)")
    parser.add_argument("--json", action="store_true", help="print the recommendations as JSON")


def _targets(specs: list[str]) -> dict[str, float] | None:
    if not specs:
        return None
    targets = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        try:
            targets[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise InputError(f"--target takes TIER=RECALL like pro=0.9, got {spec!r}")
    return targets


def load_curve(path: str, variant: str | None) -> list[dict]:
    return load_curves(path, variant)[0]


def load_curves(path: str, variant: str | None) -> tuple[list[dict], list[dict] | None]:
    """The chosen curve, and the file's "cold" curve (requests without a warm prompt cache, e.g.
    per-request pruning) to compare with, when it names one."""
    from ctxopt.cli.files import read_json

    data = read_json(path)
    if isinstance(data, dict) and "curves" in data:
        name = variant or data.get("default")
        if name not in data["curves"]:
            raise InputError(f"{path} has curves {', '.join(data['curves'])}; choose one with --variant")
        cold = data.get("cold")
        return data["curves"][name], data["curves"][cold] if cold in data["curves"] and cold != name else None
    if isinstance(data, dict) and "curve" in data:
        return data["curve"], None
    if isinstance(data, list):
        return data, None
    raise InputError(f"{path} holds no curve: expected a list of points, {{'curve': [...]}} or {{'curves': {{...}}}}")


def run(args: argparse.Namespace) -> int:
    from ctxopt.pricing import load_prices, price_of
    from ctxopt.tiers import DEFAULT_TIERS, dump_tiers, load_tiers
    from ctxopt.tune.recommend import pareto_plot, recommend, tuned_tiers

    out = check_output_file(args.out, "--out")
    plot = check_output_file(args.plot or out.with_suffix(".png"), "--plot" if args.plot else "--out")
    numbers = check_output_file(out.with_suffix(".json"), "--out")
    model_price = price_of(args.model, load_prices(args.prices) if args.prices else None, price_per_1k=args.price)
    base = {**DEFAULT_TIERS, **(load_tiers(args.tiers) if args.tiers else {})}
    cold = None
    if args.curve:
        (curve, cold), title = load_curves(args.curve, args.variant), f"{Path(args.curve).name}"
    else:
        from ctxopt.pipeline import Pipeline
        from ctxopt.tune.evalset import load_evalset, recall_curve

        cases = load_evalset(args.evalset)
        pipeline = Pipeline.from_config(args.pipeline) if args.pipeline else default_tuning_pipeline()
        try:
            budgets = sorted({int(b) for b in args.budgets.split(",")})
        except ValueError:
            raise InputError(f"--budgets takes whole numbers separated by commas, got {args.budgets!r}") from None
        curve = recall_curve(cases, pipeline, budgets, section=args.section, progress=True)
        title = f"{Path(args.evalset).name} ({len(cases)} cases)"
    recs = recommend(curve, _targets(args.target), tiers=base, price=model_price)
    cold_recs = recommend(cold, _targets(args.target), tiers=base) if cold else {}
    tiers = tuned_tiers(recs, section=args.section, base=base)
    out.write_text(dump_tiers(tiers))
    pareto_plot(curve, recs, plot, f"Evidence recall vs tokens: {title}")
    notes = _warm_cache_notes(recs, cold_recs, cold, model_price)
    rows = [{**rec.__dict__, "tokens_saved": rec.tokens_saved, "cost_saved_per_request": rec.money_saved,
             "cost_per_1k_requests": (rec.cost or 0.0) * 1000,
             "cost_saved_per_1k_requests": (rec.money_saved or 0.0) * 1000, "cache_note": notes.get(rec.tier)}
            for rec in recs.values()]
    numbers.write_text(json.dumps({"curve": curve, "recommendations": rows}, indent=2) + "\n")
    for rec in recs.values():
        if rec.note:
            print(f"ctxopt tune: {rec.note}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'tier':<12} {'target':>6} {args.section + ' budget':>15} {'recall':>7} {'tokens/req':>10} "
          f"{'saved/req':>10} {'$/1k req':>9} {'$ saved/1k req':>14}")
    for row in rows:
        flag = "" if row["met"] else "  (target not reached within the tier's limit)" if row["note"] \
            else "  (target not reached: best measured)"
        print(f"{row['tier']:<12} {row['target']:>6} {row['budget']:>15} {row['recall']:>7.3f} {row['tokens']:>10.0f} "
              f"{row['tokens_saved']:>10.0f} {row['cost_per_1k_requests']:>9.2f} {row['cost_saved_per_1k_requests']:>14.2f}"
              f"{flag}")
        if row["cache_note"]:
            print(f"  {row['cache_note']}")
    print(f"wrote {out}, {plot} and {numbers} (prices: {args.model}, ${model_price.input:g} per 1M input tokens, "
          f"${model_price.cache_read:g} cached, {model_price.caching} caching; bills include the cache where the "
          "curve measured it)")
    return 0


def _warm_cache_notes(recs: dict, cold_recs: dict, cold: list[dict] | None, price) -> dict[str, str]:
    """Per tier, a sentence when the pick (a larger cap, its prefix kept warm in the provider's
    cache) costs less than the smallest cap meeting the same target without a warm cache."""
    from ctxopt.tune.recommend import point_cost

    notes = {}
    for tier, rec in recs.items():
        other = cold_recs.get(tier)
        if other is None or not other.met or rec.cost is None or cold is None:
            continue
        point = next(p for p in cold if int(p["budget"]) == other.budget)
        cold_cost = point_cost(point, price)
        if rec.budget > other.budget and rec.cost < cold_cost:
            notes[tier] = (f"a {rec.budget:,}-token cap with a warm cache costs ${rec.cost * 1000:.2f} per 1k requests, "
                           f"less than {other.budget:,} without one (${cold_cost * 1000:.2f}: per-request pruning "
                           "rewrites the prefix, so the provider bills it fresh every time)")
    return notes


def default_tuning_pipeline():
    """History pruning then the fit: the memory benchmark's best variant on LoCoMo."""
    from ctxopt.pipeline import Pipeline
    from ctxopt.stages.prune_history import PruneHistory

    return Pipeline(stages=(PruneHistory(),))
