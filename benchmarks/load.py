"""Load benchmark: ctxopt.optimize from 1, 2, 8 and 32 threads on LoCoMo-sized conversations.

    python benchmarks/load.py [--quick]

The same as `ctxopt bench load`: writes results/load/ and adds it to results/REPORT.md.
The measuring code lives in ctxopt/bench/load.py.
"""

import sys
from pathlib import Path

from ctxopt.cli import main

if __name__ == "__main__":
    results = Path(__file__).resolve().parents[1] / "results"
    sys.exit(main(["bench", "load", "--out", str(results), *sys.argv[1:]]))
