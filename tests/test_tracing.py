"""The library path makes the server's spans through the report hook (ctxopt.tracing.trace_report)."""

from __future__ import annotations

import functools
import itertools
import subprocess
import sys

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import ctxopt
from ctxopt.tracing import trace_report


def history() -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "words " * 300}
            for i in range(20)] + [{"role": "user", "content": "and now?"}]


def test_a_decorated_agent_call_becomes_an_optimize_span_with_a_child_per_stage_under_the_callers_span():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    @ctxopt.optimized(tier="free", on_report=functools.partial(trace_report, tracer=tracer))
    def agent(messages):
        return messages

    with tracer.start_as_current_span("agent step") as step:
        agent(history())
    report = ctxopt.last_report()
    assert report is not None and report.tokens_saved > 0
    spans = {s.name: s for s in exporter.get_finished_spans()}
    optimize = spans["ctxopt.optimize"]
    assert optimize.parent.span_id == step.get_span_context().span_id
    assert optimize.attributes["ctxopt.tokens_before"] == report.tokens_before
    assert optimize.attributes["gen_ai.usage.input_tokens"] == report.tokens_after
    assert optimize.attributes["ctxopt.cost_saved_usd"] == report.cost_saved
    assert optimize.attributes["gen_ai.request.model"] == report.model
    stage_spans = [spans[f"ctxopt.stage {s.name}"] for s in report.stages]
    assert all(s.parent.span_id == optimize.context.span_id for s in stage_spans)
    assert [s.attributes["ctxopt.tokens_out"] for s in stage_spans] == [s.tokens_out for s in report.stages]
    assert all(a.end_time <= b.start_time for a, b in itertools.pairwise(stage_spans))  # in order, no overlap
    assert optimize.end_time - optimize.start_time == int(report.seconds * 1e9)


def test_importing_ctxopt_and_optimising_never_imports_opentelemetry():
    code = ("import sys, ctxopt; ctxopt.optimize([{'role': 'user', 'content': 'hi'}], tier='free'); "
            "import ctxopt.tracing; print(any(m.startswith('opentelemetry') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
