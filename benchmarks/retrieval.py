"""SciFact retrieval benchmark: keyword, dense and hybrid search through ctxopt, vs BM25 and plain RRF.

    python benchmarks/retrieval.py [--quick]

The same as `ctxopt bench retrieval`: writes results/retrieval/ and adds it to results/REPORT.md.
The measuring code lives in ctxopt/bench/retrieval.py.
"""

import sys
from pathlib import Path

from ctxopt.cli import main

if __name__ == "__main__":
    results = Path(__file__).resolve().parents[1] / "results"
    sys.exit(main(["bench", "retrieval", "--out", str(results), *sys.argv[1:]]))
