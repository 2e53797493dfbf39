"""OpenTelemetry spans of an optimisation, with the GenAI semantic conventions: the report hook.

Pass :func:`trace_report` as the report hook, e.g. ``ctxopt.wrap(client, on_report=trace_report)``
or ``@ctxopt.optimized(..., on_report=trace_report)``: each optimised call becomes a
``ctxopt.optimize`` span with one child per pipeline stage, under the span current at the time
(the caller's request or LLM-call span). Spans go to the tracer provider the application set up
(``opentelemetry-sdk``); without one they cost nothing. ``opentelemetry-api`` is imported only when
a span is made, so ctxopt itself does not need it (``pip install 'ctxopt[otel]'``).

A report is handed over after the fact, so spans are placed backwards from ``end_ns`` (default:
now) by the times the report measured. Under ``wrap()`` the hook runs once the provider answered:
then the spans end at that moment and keep their true durations.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ctxopt.errors import ConfigError
from ctxopt.report import Report

TRACER_NAME = "ctxopt"


def report_attributes(report: Report) -> dict[str, Any]:
    """The span attributes of one optimisation: the GenAI conventions' ``gen_ai.usage.input_tokens``
    (the tokens sent after optimising; the provider's count when it billed the call) and ctxopt's own.

    >>> from ctxopt.pricing import Price
    >>> report = Report(tier="pro", tokens_before=900, tokens_after=300, budget=400, stages=(), seconds=0.01,
    ...                 model="gpt-4o-mini", price=Price(input=0.15))
    >>> attributes = report_attributes(report)
    >>> attributes["gen_ai.usage.input_tokens"], attributes["ctxopt.tokens_saved"]
    (300, 600)
    """
    attributes: dict[str, Any] = {
        "gen_ai.request.model": report.model,
        "gen_ai.usage.input_tokens": report.billed.prompt_tokens if report.billed is not None else report.tokens_after,
        "ctxopt.tier": report.tier,
        "ctxopt.tokens_before": report.tokens_before,
        "ctxopt.tokens_after": report.tokens_after,
        "ctxopt.tokens_saved": report.tokens_saved,
        "ctxopt.cost_usd": report.cost,
        "ctxopt.cost_saved_usd": report.cost_saved,
        "ctxopt.cache_hits": report.cache_hits,
        "ctxopt.cache_misses": report.cache_misses,
        "ctxopt.cache_hit": report.cache_hits > 0 and report.cache_misses == 0,
    }
    if report.bill is not None:
        attributes["gen_ai.usage.cache_read.input_tokens"] = report.bill.cached_tokens
    if report.session is not None:
        attributes["ctxopt.session"] = report.session
    return attributes


def trace_report(report: Report, *, tracer: Any = None, end_ns: int | None = None,
                 attributes: Mapping[str, Any] | None = None) -> None:
    """Record ``report`` as a ``ctxopt.optimize`` span (child of the current span) with a child span
    per pipeline stage; ``tracer`` defaults to the global provider's ``ctxopt`` tracer."""
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise ConfigError("OpenTelemetry spans need opentelemetry-api: pip install 'ctxopt[otel]'") from exc
    tracer = tracer if tracer is not None else trace.get_tracer(TRACER_NAME)
    end = end_ns if end_ns is not None else time.time_ns()
    start = end - int(report.seconds * 1e9)
    span = tracer.start_span("ctxopt.optimize", start_time=start,
                             attributes={**report_attributes(report), **(attributes or {})})
    context = trace.set_span_in_context(span)
    # Stages run one after the other and end just before the report is made: placed backwards
    # from its end, each with its measured duration (counting before them takes the rest).
    cursor = end
    placed = []
    for stage in reversed(report.stages):
        placed.append((stage, cursor - int(stage.seconds * 1e9), cursor))
        cursor = placed[-1][1]
    for stage, stage_start, stage_end in reversed(placed):
        child = tracer.start_span(f"ctxopt.stage {stage.name}", context=context, start_time=max(start, stage_start),
                                  attributes={"ctxopt.stage": stage.name, "ctxopt.tokens_in": stage.tokens_in,
                                              "ctxopt.tokens_out": stage.tokens_out,
                                              "ctxopt.items_dropped": len(stage.dropped)})
        child.end(end_time=stage_end)
    span.end(end_time=end)
