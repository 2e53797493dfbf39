"""Load benchmark: ctxopt.optimize from 1, 2, 8 and 32 threads on LoCoMo-sized conversations.

    python benchmarks/load.py [--quick]

The same as `ctxopt bench load`: writes results/load/ and adds it to results/REPORT.md
(with --quick: results/quick/, leaving the full results alone).
The measuring code lives in ctxopt/bench/load.py.
"""

import sys
from pathlib import Path

from ctxopt.cli import main

if __name__ == "__main__":
    results = Path(__file__).resolve().parents[1] / "results"
    out = results / "quick" if "--quick" in sys.argv else results
    sys.exit(main(["bench", "load", "--out", str(out), *sys.argv[1:]]))
