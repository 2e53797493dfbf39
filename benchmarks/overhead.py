"""Overhead benchmark: per-request latency of history pruning + summary + fit, warm caches.

    python benchmarks/overhead.py [--quick]

The same as `ctxopt bench overhead`: writes results/overhead/ and adds it to results/REPORT.md
(with --quick: results/quick/, leaving the full results alone).
The measuring code lives in ctxopt/bench/overhead.py.
"""

import sys
from pathlib import Path

from ctxopt.cli import main

if __name__ == "__main__":
    results = Path(__file__).resolve().parents[1] / "results"
    out = results / "quick" if "--quick" in sys.argv else results
    sys.exit(main(["bench", "overhead", "--out", str(out), *sys.argv[1:]]))
