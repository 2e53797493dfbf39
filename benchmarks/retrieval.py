"""SciFact retrieval benchmark: keyword, dense and hybrid search through ctxopt, vs BM25 and plain RRF.

    python benchmarks/retrieval.py            # full run: cold + warm indexing (a few minutes on CPU)
    python benchmarks/retrieval.py --quick    # reuse the embedding cache, smaller fusion grid
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ctxopt.bench import retrieval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="keep the cache (no cold build), smaller tuning grid")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results" / "retrieval")
    args = parser.parse_args()
    out = retrieval.run(args.out, quick=args.quick)
    print((args.out / "results.md").read_text(encoding="utf-8"))
    print(json.dumps({k: v["ndcg@10"] for k, v in out["results"].items()}, indent=2))


if __name__ == "__main__":
    main()
