"""Compression benchmark: HotpotQA supporting facts kept vs share of retrieved tokens kept.

    python benchmarks/compression.py [--quick]

The same as `ctxopt bench compression`: writes results/compression/ and adds it to results/REPORT.md
(with --quick: results/quick/, leaving the full results alone).
The measuring code lives in ctxopt/bench/compression.py.
"""

import sys
from pathlib import Path

from ctxopt.cli import main

if __name__ == "__main__":
    results = Path(__file__).resolve().parents[1] / "results"
    out = results / "quick" if "--quick" in sys.argv else results
    sys.exit(main(["bench", "compression", "--out", str(out), *sys.argv[1:]]))
