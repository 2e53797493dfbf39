"""Compression benchmark: HotpotQA supporting facts kept vs share of retrieved tokens kept.

    python benchmarks/compression.py           # all 100 questions at 10/20/30/50% budgets
    python benchmarks/compression.py --quick   # the first 20 questions

Prints the baselines (cut the tail, random, paragraph filter, sentence ranking) next to ctxopt and
writes results/compression/compression.{json,md,png}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ctxopt.bench import compression


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small sample instead of the full dataset")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results" / "compression")
    args = parser.parse_args()
    compression.run(args.out, quick=args.quick)
    print((args.out / "compression.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
