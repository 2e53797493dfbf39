"""Runs the benchmark suite and writes one results folder.

Each benchmark is a module ``ctxopt.bench.<name>`` with ``run(out_dir, quick=False) -> dict`` that
writes its JSON, Markdown table and plots into ``out_dir`` and returns its results. The suite adds
what a reader needs to trust the numbers: versions, model, core count, date, and time taken.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from ctxopt.errors import ConfigError

# The one place that names the benchmarks, in the order they run. The suite's default is all but
# "load" (about 10 minutes of threads hammering optimize), "serve" and "serve_chaos" (the proxy
# under load, needs ctxopt[serve] and redis-server) and "retrieval_scale" (an hour to embed 200k
# distractor chunks the first time, minutes after), which run when named.
BENCHMARKS: dict[str, str] = {
    "retrieval": "SciFact test: nDCG@10 / Recall for keyword, dense and hybrid search",
    "retrieval_scale": "SciFact test queries on a corpus grown to 20k-200k chunks: accuracy, latency, HNSW vs exact",
    "compression": "HotpotQA: supporting facts kept vs share of tokens kept",
    "memory": "LoCoMo: evidence turns kept at history budgets",
    "overhead": "LoCoMo-sized conversation: pipeline latency with warm caches",
    "tool_output": "HotpotQA results as one search-tool message: supporting facts kept when pruned",
    "sessions": "LoCoMo replayed as agent sessions: cost with the provider's prompt cache vs evidence recall",
    "load": "optimize from 1-32 threads: throughput, tail latency, memory over 10k requests",
    "serve": "ctxopt serve with 1 and 2 worker processes: capacity, open-loop latency, errors, RSS, chaos",
    "serve_chaos": "ctxopt serve's chaos phases alone: Redis stopped, upstream failing, a worker killed",
}
DEFAULT_SUITE = ("retrieval", "compression", "memory", "overhead", "tool_output", "sessions")
PACKAGES = ("ctxopt", "torch", "sentence-transformers", "qdrant-client", "qdrant-edge-py", "tiktoken", "numpy",
            "diskcache")


def environment() -> dict[str, Any]:
    """What a run was measured on: versions, model, machine, date."""
    from ctxopt.embed.base import DEFAULT_MODEL, MODEL_ENV

    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "model": os.environ.get(MODEL_ENV) or DEFAULT_MODEL,
        "versions": versions,
    }


def run_suite(out_dir: Path, names: Sequence[str] = (), quick: bool = False) -> dict[str, Any]:
    names = list(names) or list(DEFAULT_SUITE)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ConfigError(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    # A run adds to the folder's suite.json, so `ctxopt bench load` after `ctxopt bench` reports all five.
    index = out_dir / "suite.json"
    previous = json.loads(index.read_text()) if index.exists() else {}
    if quick and previous.get("quick") is False and previous.get("benchmarks"):
        raise ConfigError(f"{out_dir} holds full benchmark results ({', '.join(previous['benchmarks'])}) that a "
                          "quick run would replace with small samples",
                          hint="write quick runs to another out_dir", cli_hint="drop --out (quick runs write to "
                          "results/quick) or choose another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"environment": environment(), "quick": quick,
                               "benchmarks": previous.get("benchmarks", {}) if previous.get("quick") == quick else {}}
    for name in names:
        print(f"== {name}: {BENCHMARKS[name]}", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"ctxopt.bench.{name}")
        results = module.run(out_dir / name, quick=quick)
        summary["benchmarks"][name] = {"seconds": round(time.perf_counter() - started, 1),
                                       "date": summary["environment"]["date"],
                                       "headline": results.get("headline") or results.get("acceptance", {})}
    summary["benchmarks"] = {n: summary["benchmarks"][n] for n in BENCHMARKS if n in summary["benchmarks"]}
    index.write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / "REPORT.md").write_text(_report(out_dir, summary, list(summary["benchmarks"])))
    return summary


def _report(out_dir: Path, summary: dict[str, Any], names: Sequence[str]) -> str:
    env = summary["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    lines = [
        "# ctxopt benchmark report",
        "",
        f"Measured {env['date']} on {env['cpu_count']} cores ({env['platform']}), Python {env['python']}, "
        f"model {env['model']}{' — quick sample, not the full datasets' if summary['quick'] else ''}.",
        f"Versions: {versions}.",
        "",
    ]
    for name in names:
        run = summary["benchmarks"][name]
        lines += [f"## {name} ({run['seconds']:.0f} s, run {run.get('date', env['date'])})", ""]
        for table in sorted((out_dir / name).glob("*.md")):
            lines += [table.read_text().strip(), ""]
        for plot in sorted((out_dir / name).glob("*.png")):
            lines += [f"![{name}]({name}/{plot.name})", ""]
    return "\n".join(lines)
