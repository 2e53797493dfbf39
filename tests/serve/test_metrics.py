"""The library path exports the server's metrics through the report hook."""

from __future__ import annotations

from prometheus_client import REGISTRY

import ctxopt
from ctxopt.serve.metrics import observe_report


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_decorated_agent_call_counts_its_tokens_and_stages_through_the_hook():
    before = (sample("ctxopt_tokens_before_total", tenant="-"), sample("ctxopt_tokens_after_total", tenant="-"),
              sample("ctxopt_stage_seconds_count", stage="fit"))

    @ctxopt.optimized(tier="free", on_report=observe_report)
    def agent(messages):
        return messages

    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "words " * 300}
               for i in range(20)] + [{"role": "user", "content": "and now?"}]
    agent(history)
    report = ctxopt.last_report()
    assert report is not None and report.tokens_saved > 0
    assert sample("ctxopt_tokens_before_total", tenant="-") - before[0] == report.tokens_before
    assert sample("ctxopt_tokens_after_total", tenant="-") - before[1] == report.tokens_after
    assert sample("ctxopt_stage_seconds_count", stage="fit") - before[2] == 1
