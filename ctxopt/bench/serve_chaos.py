"""Serve chaos: only the chaos phases of the serve benchmark (:mod:`ctxopt.bench.chaos`), at half the
capacity a short closed loop measures first, on the LoCoMo workload with 2 workers.

``ctxopt bench serve_chaos --quick`` is the smoke run of these phases; ``ctxopt bench serve`` runs
them too, after its load levels.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any


def run(out_dir: Path, quick: bool = False) -> dict[str, Any]:
    """Run the chaos phases; write ``serve_chaos.json`` and ``serve_chaos.md`` into ``out_dir``."""
    from ctxopt.bench import chaos
    from ctxopt.bench.output import write_table
    from ctxopt.bench.serve import CLIENTS, locomo_bodies
    from ctxopt.serve import LoopbackProvider

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds = 6.0 if quick else 15.0
    bodies = locomo_bodies(30 if quick else 300)
    with tempfile.TemporaryDirectory(prefix="ctxopt-bench-chaos-") as tmp, LoopbackProvider() as provider:
        phases = chaos.run_phases(Path(tmp), provider, bodies, rate=None, seconds=seconds)
    capacity = phases.pop("capacity")
    results = {"workload": {"requests": len(bodies), "seconds_per_phase": seconds, "workers": 2, "quick": quick,
                            "rate": "half the capacity measured with a closed loop of "
                                    f"{CLIENTS} clients: {capacity['throughput_rps']} req/s"},
               "capacity": capacity, **phases,
               "headline": {"redis_counts_agree": phases["redis_stopped"]["counts_agree"],
                            "redis_phase_errors": phases["redis_stopped"]["errors"],
                            "upstream_failures_clean_5xx": phases["upstream_failing"]["all_failures_clean_5xx"],
                            "circuit_opened": phases["upstream_failing"]["circuit_opened"],
                            "worker_replaced": phases["worker_killed"]["replaced"],
                            "worker_kill_failed_requests": phases["worker_killed"]["errors"]}}
    (out_dir / "serve_chaos.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    write_table(out_dir / "serve_chaos.md", "Serve chaos: Redis stopped, upstream failing, worker killed (2 workers)",
                ["run", "requests", "errors", "req/s", "p50 ms", "p99 ms", "RSS MB", "load avg"], chaos.rows(phases),
                [f"Workload: {len(bodies)} LoCoMo requests, tier pro, the serve benchmark's pipeline; rate half of "
                 f"the measured capacity ({capacity['throughput_rps']} req/s); {seconds:.0f} s per phase.",
                 *chaos.notes(phases)])
    for note in chaos.notes(phases):
        print(f"  {note}", flush=True)
    return results
