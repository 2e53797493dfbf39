"""SciFact retrieval benchmark: keyword, dense and hybrid search through ctxopt, vs BM25 and plain RRF.

    python benchmarks/retrieval.py [--quick]

The same as `ctxopt bench retrieval`: writes results/retrieval/ and adds it to results/REPORT.md
(with --quick: results/quick/, leaving the full results alone).
The measuring code lives in ctxopt/bench/retrieval.py.
"""

import sys
from pathlib import Path

from ctxopt.cli import main

if __name__ == "__main__":
    results = Path(__file__).resolve().parents[1] / "results"
    out = results / "quick" if "--quick" in sys.argv else results
    sys.exit(main(["bench", "retrieval", "--out", str(out), *sys.argv[1:]]))
