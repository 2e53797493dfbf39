"""Overhead benchmark: what history pruning + summary + fit cost per request, with warm caches.

The history is the LoCoMo conversation closest to 22k tokens; every request asks a different
question of it (its QA questions, as an agent's user would), so the query is always a cache miss
while old turns are not. Turns arrive without token counts, as messages do, so the pipeline counts
them on every request. Caches are warmed by ``warmup`` requests with other questions first. The
fit-only pipeline is the baseline: the cost of cutting without choosing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ctxopt.bench.data import data_dir
from ctxopt.bench.load import TORCH_THREADS, percentile
from ctxopt.bench.memory import DATASET, conversation_items
from ctxopt.bench.output import write_table
from ctxopt.pipeline import Pipeline
from ctxopt.stages.prune_history import PruneHistory
from ctxopt.stages.similarity import resolve_embedder
from ctxopt.stages.summarize import Summarize
from ctxopt.tiers import Tier
from ctxopt.types import Context, Item, total_tokens

TARGET_TOKENS = 22_000
TIER = Tier(4096, reserve=512, history=2000, summary=500, retrieved=0, name="overhead")


def pipelines(embedder: Any) -> dict[str, Pipeline]:
    return {
        "fit only (baseline)": Pipeline(),
        "ctxopt prune + summary + fit": Pipeline(stages=(PruneHistory(embedder=embedder),
                                                         Summarize(keep_turns=True, max_tokens=400))),
    }


def run(out_dir: Path, quick: bool = False) -> dict[str, Any]:
    """Time ``requests`` pipeline runs per variant; write overhead.json and overhead.md."""
    from tqdm import tqdm

    samples = json.loads((data_dir() / DATASET).read_text(encoding="utf-8"))
    conversations = [(s, conversation_items(s)) for s in samples]
    sample, items = min(conversations, key=lambda c: abs(total_tokens(c[1]) - TARGET_TOKENS))
    history_tokens = total_tokens(items)
    items = [i.replace(tokens=None) for i in items]  # as messages arrive: uncounted
    questions = list(dict.fromkeys(str(qa["question"]) for s in samples for qa in s["qa"]))
    requests, warmup = (100, 20) if quick else (500, 50)
    embedder = resolve_embedder()
    import torch

    # One intra-op thread for the per-request query embedding, as the README advises for servers
    # (see ctxopt.bench.load): torch's default pool spin-waits and multiplies tail latency.
    default_threads = torch.get_num_threads()
    torch.set_num_threads(TORCH_THREADS)
    rows: dict[str, dict[str, Any]] = {}
    for name, pipeline in pipelines(embedder).items():
        def call(question: str, pipeline: Any = pipeline) -> float:
            query = Item(id="question", kind="user", text=question, protected=True)
            context = Context(query=question, items=(*items, query), tier=TIER)
            started = time.perf_counter()
            pipeline.run(context)
            return (time.perf_counter() - started) * 1000

        for question in questions[:warmup]:
            call(question)
        latencies = [call(q) for q in tqdm(questions[warmup:warmup + requests], desc=name, leave=False)]
        rows[name] = {"p50_ms": round(percentile(latencies, 50), 2), "p95_ms": round(percentile(latencies, 95), 2),
                      "p99_ms": round(percentile(latencies, 99), 2),
                      "mean_ms": round(sum(latencies) / len(latencies), 2), "requests": len(latencies)}
    torch.set_num_threads(default_threads)
    results = {
        "benchmark": "overhead",
        "torch_threads": TORCH_THREADS,
        "conversation": sample["sample_id"],
        "turns": len(items),
        "history_tokens": history_tokens,
        "tier": repr(TIER),
        "caches": "warm: turn embeddings in the in-process LRU and the embedding cache, rolling summary cached; "
                  "every request has a new question (one query embedding per request)",
        "methods": rows,
        "acceptance": {"p95_ms": rows["ctxopt prune + summary + fit"]["p95_ms"], "target_p95_ms": 50},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "overhead.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    write_table(out_dir / "overhead.md",
                f"Overhead: {results['turns']} turns, {history_tokens} tokens ({results['conversation']})",
                ["pipeline", "p50 ms", "p95 ms", "p99 ms", "mean ms", "requests"],
                [[n, r["p50_ms"], r["p95_ms"], r["p99_ms"], r["mean_ms"], r["requests"]] for n, r in rows.items()],
                notes=[f"Tier {results['tier']}. Caches {results['caches']}."])
    return results
