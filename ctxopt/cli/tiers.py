"""``ctxopt tiers``: the tiers in effect (built-in, or from --tiers / $CTXOPT_TIERS)."""

from __future__ import annotations

import argparse
import json
import os

from ctxopt.tiers import DEFAULT_TIERS, SECTION_NAMES, TIERS_ENV, dump_tiers, load_tiers


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tiers", metavar="TOML", help=f"tiers file (default: ${TIERS_ENV} or built-in tiers)")
    parser.add_argument("--json", action="store_true", help="print the tiers as JSON")
    parser.add_argument("--toml", action="store_true", help="print the tiers as a tiers.toml to start from")


def run(args: argparse.Namespace) -> int:
    path = args.tiers or os.environ.get(TIERS_ENV)
    tiers = {**DEFAULT_TIERS, **(load_tiers(path) if path else {})}
    if args.json:
        print(json.dumps({name: tier.to_dict() for name, tier in tiers.items()}, indent=2))
    elif args.toml:
        print(dump_tiers(tiers), end="")
    else:
        print(f"tiers from {path or 'built-in defaults'} (caps: tokens, or share of the budget)")
        print(f"{'tier':<12} {'limit':>8} {'reserve':>8} {'budget':>8}  " + "  ".join(f"{s:>9}" for s in SECTION_NAMES))
        for name, tier in tiers.items():
            caps = "  ".join(f"{tier.cap(s):>9}" for s in SECTION_NAMES)
            print(f"{name:<12} {tier.limit:>8} {tier.reserve:>8} {tier.budget:>8}  {caps}")
    return 0
