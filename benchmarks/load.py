"""Load benchmark: ctxopt.optimize from 1, 2, 8 and 32 threads on LoCoMo-sized conversations.

    python benchmarks/load.py            # 20 s per thread count, then 10k requests for the memory check
    python benchmarks/load.py --quick    # 3 s per thread count, 2k requests

Prints the single-thread baseline next to each thread count and writes results/load/load.{json,md}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ctxopt.bench import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short levels and 2k requests for the memory check")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results" / "load")
    args = parser.parse_args()
    load.run(args.out, quick=args.quick)
    print((args.out / "load.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
