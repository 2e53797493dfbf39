"""Memory benchmark: LoCoMo evidence turns kept at history budgets of 500-4000 tokens.

    python benchmarks/memory.py [--quick]

The same as `ctxopt bench memory`: writes results/memory/ and adds it to results/REPORT.md
(with --quick: results/quick/, leaving the full results alone).
The measuring code lives in ctxopt/bench/memory.py.
"""

import sys
from pathlib import Path

from ctxopt.cli import main

if __name__ == "__main__":
    results = Path(__file__).resolve().parents[1] / "results"
    out = results / "quick" if "--quick" in sys.argv else results
    sys.exit(main(["bench", "memory", "--out", str(out), *sys.argv[1:]]))
