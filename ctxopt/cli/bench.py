"""``ctxopt bench [NAME ...] [--quick] [--out results]``: run the benchmark suite.

Full runs write ``results/`` (the numbers the README quotes); quick runs write ``results/quick/``,
so a smoke run never replaces the full results.
"""

from __future__ import annotations

import argparse
import json

from ctxopt.bench.suite import BENCHMARKS, DEFAULT_SUITE
from ctxopt.cli.files import check_output_dir

FULL_OUT, QUICK_OUT = "results", "results/quick"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run, from {', '.join(BENCHMARKS)} (default: {' '.join(DEFAULT_SUITE)})")
    parser.add_argument("--quick", action="store_true", help="a small sample of each dataset, for a smoke run")
    parser.add_argument("--out", help=f"results folder (default: {FULL_OUT}, or {QUICK_OUT} with --quick)")
    parser.add_argument("--json", action="store_true", help="print the suite summary as JSON")


def run(args: argparse.Namespace) -> int:
    from ctxopt.bench.suite import run_suite

    out = check_output_dir(args.out or (QUICK_OUT if args.quick else FULL_OUT), "--out")
    summary = run_suite(out, args.names, quick=args.quick)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"\nwrote {out / 'REPORT.md'} and {out / 'suite.json'}")
        for name, result in summary["benchmarks"].items():
            headline = ", ".join(f"{k} {v}" for k, v in result["headline"].items())
            print(f"  {name:<12} {result['seconds']:>7.1f} s  {headline}")
    return 0
