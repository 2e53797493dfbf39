"""Prometheus metrics of the server, summed over every worker process.

``ctxopt serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before the workers start, so
each worker writes its counts there and ``GET /metrics`` on any worker reports the whole server.
Without that variable (one process, e.g. an app embedded in tests) the default registry is used.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from ctxopt.report import Report

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Optimising takes milliseconds to a second; upstream calls take up to minutes.
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter("ctxopt_requests", "Requests answered, by route, tenant and HTTP status", ["route", "tenant", "status"])
LATENCY = Histogram("ctxopt_request_seconds", "Time to answer (to the first byte when streaming), by route", ["route"],
                    buckets=SECONDS)
STAGE_SECONDS = Histogram("ctxopt_stage_seconds", "Time per pipeline stage, the whole optimisation ('optimize') "
                          "and the upstream's time to headers ('upstream')", ["stage"], buckets=SECONDS)
TOKENS_BEFORE = Counter("ctxopt_tokens_before", "Prompt tokens before optimisation", ["tenant"])
TOKENS_AFTER = Counter("ctxopt_tokens_after", "Prompt tokens sent to the model after optimisation", ["tenant"])
COST_SAVED = Counter("ctxopt_cost_saved_usd", "Dollars saved on input tokens at the pipeline's price", ["tenant"])
CACHE = Counter("ctxopt_embedding_cache", "Embedding cache lookups by result (hit, miss)", ["result"])
ERRORS = Counter("ctxopt_errors", "Failures by cause: auth, bad_request, overloaded, optimize, upstream_connect, "
                 "upstream_timeout, budget_exceeded, request_cap, redis; and from the front: worker_lost, "
                 "worker_unreachable (retried on another worker), no_worker", ["cause"])
ALERTS = Counter("ctxopt_budget_alerts", "Budget alerts fired (once per tenant, threshold and period)",
                 ["tenant", "threshold"])
CIRCUIT = Counter("ctxopt_upstream_circuit", "Circuit breaker changes, by upstream and the state changed to "
                  "(open, closed); each worker has its own breaker", ["upstream", "state"])
IN_FLIGHT = Gauge("ctxopt_in_flight", "Requests being handled", multiprocess_mode="livesum")


def render() -> tuple[bytes, str]:
    """The metrics text of every worker (or of this process without a multiprocess folder)."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def observe_report(report: Report, tenant: str | None = None) -> None:
    """Count one optimised request: tokens, savings, cache lookups and time per stage.

    The server calls it for every request; the library path exports the same metrics by passing it
    as the report hook, e.g. ``ctxopt.wrap(client, on_report=observe_report)``, and serving
    ``prometheus_client``'s registry as usual.
    """
    label = tenant or "-"
    TOKENS_BEFORE.labels(label).inc(report.tokens_before)
    TOKENS_AFTER.labels(label).inc(report.tokens_after)
    if report.cost_saved > 0:
        COST_SAVED.labels(label).inc(report.cost_saved)
    CACHE.labels("hit").inc(report.cache_hits)
    CACHE.labels("miss").inc(report.cache_misses)
    STAGE_SECONDS.labels("optimize").observe(report.seconds)
    for stage in report.stages:
        STAGE_SECONDS.labels(stage.name).observe(stage.seconds)
