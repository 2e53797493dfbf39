"""Overhead benchmark: per-request latency of history pruning + summary + fit, warm caches.

    python benchmarks/overhead.py           # 500 requests on a ~22k-token LoCoMo conversation
    python benchmarks/overhead.py --quick   # 100 requests

Prints the fit-only pipeline next to the full one and writes results/overhead/overhead.{json,md}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ctxopt.bench import overhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small sample instead of the full dataset")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results" / "overhead")
    args = parser.parse_args()
    overhead.run(args.out, quick=args.quick)
    print((args.out / "overhead.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
