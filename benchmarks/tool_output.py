"""Tool-output benchmark: HotpotQA supporting facts kept when a search tool's result is pruned.

    python benchmarks/tool_output.py [--quick]

The same as `ctxopt bench tool_output`: writes results/tool_output/ and adds it to results/REPORT.md
(with --quick: results/quick/, leaving the full results alone).
The measuring code lives in ctxopt/bench/tool_output.py.
"""

import sys
from pathlib import Path

from ctxopt.cli import main

if __name__ == "__main__":
    results = Path(__file__).resolve().parents[1] / "results"
    out = results / "quick" if "--quick" in sys.argv else results
    sys.exit(main(["bench", "tool_output", "--out", str(out), *sys.argv[1:]]))
