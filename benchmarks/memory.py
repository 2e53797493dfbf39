"""Memory benchmark: LoCoMo evidence turns kept at history budgets of 500-4000 tokens.

    python benchmarks/memory.py           # 7 conversations, every QA pair of categories 1-4
    python benchmarks/memory.py --quick   # the first conversation, 60 questions

Prints the recency window (trim_messages-style) next to ctxopt pruning, summary only and pruning +
summary, and writes results/memory/memory.{json,md,png}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ctxopt.bench import memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small sample instead of the full dataset")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results" / "memory")
    args = parser.parse_args()
    memory.run(args.out, quick=args.quick)
    print((args.out / "memory.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
