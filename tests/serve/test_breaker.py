"""The upstream circuit breaker: its rules with a clock in hand, then end to end."""

from __future__ import annotations

import time

import httpx
import pytest
from serving import auth, base_config

from ctxopt.serve.breaker import Breaker


def test_the_circuit_opens_after_failures_in_a_row_and_one_probe_closes_it():
    now = [0.0]
    breaker = Breaker(failures=3, seconds=10, clock=lambda: now[0])
    breaker.failed()
    breaker.failed()
    breaker.succeeded()  # a success in between resets the count
    breaker.failed()
    breaker.failed()
    assert breaker.allow()
    breaker.failed()
    assert not breaker.allow() and breaker.retry_after == 11
    now[0] = 10.5
    assert breaker.allow()  # the one probe
    assert not breaker.allow()  # others wait while it is out
    breaker.succeeded()
    assert breaker.allow() and breaker.allow()


def test_the_breaker_reports_each_change_of_state_once():
    now = [0.0]
    changes: list[str] = []
    breaker = Breaker(failures=2, seconds=5, clock=lambda: now[0], on_change=changes.append)
    breaker.failed()
    breaker.failed()
    breaker.failed()  # a late answer of a request sent before it opened: still the same open circuit
    now[0] = 6
    assert breaker.allow()
    breaker.failed()  # the probe failed: open again, not a new change
    now[0] = 12
    assert breaker.allow()
    breaker.succeeded()
    breaker.succeeded()
    assert changes == ["open", "closed"]


def test_a_failed_probe_opens_the_circuit_again():
    now = [0.0]
    breaker = Breaker(failures=1, seconds=5, clock=lambda: now[0])
    breaker.failed()
    now[0] = 6
    assert breaker.allow()
    breaker.failed()
    assert not breaker.allow()
    now[0] = 12
    assert breaker.allow()


@pytest.mark.slow
def test_an_open_circuit_answers_503_without_calling_the_provider_then_recovers(servers, provider):
    server = servers(base_config(provider, upstream="breaker_failures = 2\nbreaker_seconds = 1"))
    small = [{"role": "user", "content": "hi"}]

    def post(directive: str) -> httpx.Response:
        body = {"model": "gpt-4o-mini", "user": directive, "messages": small}
        return httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=auth("acme"), timeout=30)

    assert [post("fail:500").status_code for _ in range(2)] == [500, 500]
    skipped = post("ok")
    assert skipped.status_code == 503 and skipped.json()["error"]["type"] == "upstream_unavailable"
    assert int(skipped.headers["retry-after"]) >= 1
    assert len(provider.received) == 2
    time.sleep(1.2)
    assert post("ok").status_code == 200
    assert post("ok").status_code == 200
