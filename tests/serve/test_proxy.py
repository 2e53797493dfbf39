"""End to end: the real server in a subprocess, forwarding to a real HTTP provider on loopback."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serving import auth, base_config, metric, start_server

pytestmark = pytest.mark.slow

WORDS = "the payments provider timed out while the ledger service retried the settlement batch".split()


def long_chat(turns: int = 40) -> list[dict[str, str]]:
    """About 6k tokens: more than the free tier's 3,584-token budget."""
    messages = [{"role": "system", "content": "You are the on-call assistant."}]
    for i in range(turns):
        text = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(120))
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}: {text}"})
    messages.append({"role": "user", "content": "What failed in the settlement batch?"})
    return messages


def chat(model: str = "gpt-4o-mini", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": long_chat(), **extra}


@pytest.fixture(scope="module")
def server(provider, tmp_path_factory):
    """One server for the module: each test here leaves it as it found it."""
    config = base_config(provider, server="max_in_flight = 2\nmax_body_bytes = 200_000")
    running = start_server(tmp_path_factory.mktemp("serve"), config)
    yield running
    running.stop()


def test_a_missing_or_unknown_key_gets_401_and_never_reaches_the_provider(server, provider):
    missing = httpx.post(f"{server.url}/v1/chat/completions", json=chat())
    unknown = httpx.post(f"{server.url}/v1/chat/completions", json=chat(), headers={"authorization": "Bearer sk-nope"})
    optimize = httpx.post(f"{server.url}/v1/optimize", json=chat(), headers={"authorization": "Bearer sk-nope"})
    assert [r.status_code for r in (missing, unknown, optimize)] == [401, 401, 401]
    assert missing.json()["error"]["type"] == "invalid_api_key"
    assert provider.received == []


def test_optimize_returns_the_fitted_messages_and_the_report(server):
    sent = chat()
    answer = httpx.post(f"{server.url}/v1/optimize", json=sent, headers=auth("acme"), timeout=30)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    report = data["report"]
    assert report["tier"] == "free"
    assert report["tokens_after"] <= report["budget"] < report["tokens_before"]
    assert len(data["messages"]) < len(sent["messages"])
    assert data["messages"][-1] == sent["messages"][-1]  # the question is kept
    assert answer.headers["x-ctxopt-tokens-after"] == str(report["tokens_after"])


def test_the_provider_receives_the_fitted_messages_and_the_client_gets_its_answer_unchanged(server, provider):
    sent = chat(temperature=0.2)
    fitted = httpx.post(f"{server.url}/v1/optimize", json=sent, headers=auth("acme"), timeout=30).json()["messages"]
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=sent, headers=auth("acme"), timeout=30)
    assert answer.status_code == 200, answer.text
    received = provider.received[-1]
    assert received["messages"] == fitted
    assert received["temperature"] == 0.2 and received["model"] == "gpt-4o-mini"
    # The provider sees the server's upstream key, never the tenant's.
    assert provider.headers[-1]["authorization"] == "Bearer sk-upstream-secret"
    assert answer.json()["choices"][0]["message"]["content"] == f"ok: {len(fitted)} messages"
    assert answer.headers["x-request-id"] == "req_loopback"  # provider headers pass through
    before, after = int(answer.headers["x-ctxopt-tokens-before"]), int(answer.headers["x-ctxopt-tokens-after"])
    assert int(answer.headers["x-ctxopt-tokens-saved"]) == before - after > 0
    assert float(answer.headers["x-ctxopt-ms"]) > 0


def test_a_stream_passes_through_event_by_event(server, provider):
    hold = threading.Event()
    provider.hold = hold
    events = []
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=chat(stream=True), headers=auth("acme"),
                      timeout=30) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert "x-ctxopt-tokens-after" in answer.headers
        for line in answer.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
                # The provider holds the rest until the first event has reached us: a buffering proxy
                # would never deliver it, and this test would time out instead.
                hold.set()
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == f"ok: {len(provider.received[-1]['messages'])} messages"


def test_a_full_worker_answers_503_with_retry_after(server, provider):
    slow = {"model": "gpt-4o-mini", "user": "slow:1.5", "messages": [{"role": "user", "content": "hi"}]}
    with ThreadPoolExecutor(2) as pool:
        busy = [pool.submit(httpx.post, f"{server.url}/v1/chat/completions", json=slow, headers=auth("acme"), timeout=30)
                for _ in range(2)]
        deadline = time.monotonic() + 10
        while len(provider.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        refused = httpx.post(f"{server.url}/v1/chat/completions", json=slow, headers=auth("acme"), timeout=30)
        assert [f.result().status_code for f in busy] == [200, 200]
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["type"] == "overloaded"
    assert len(provider.received) == 2


def test_provider_failures_become_clean_502_and_504_and_provider_errors_pass_through(server, provider):
    small = [{"role": "user", "content": "hi"}]
    before = httpx.get(f"{server.url}/metrics").text
    dropped = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "user": "drop", "messages": small},
                         headers=auth("acme"), timeout=30)
    slow = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "user": "slow:3", "messages": small},
                      headers=auth("acme"), timeout=30)
    failing = httpx.post(f"{server.url}/v1/chat/completions", headers=auth("acme"), timeout=30,
                         json={"model": "gpt-4o-mini", "user": "fail:529", "messages": small})
    assert dropped.status_code == 502 and dropped.json()["error"]["type"] == "upstream_unreachable"
    assert slow.status_code == 504 and slow.json()["error"]["type"] == "upstream_timeout"
    assert failing.status_code == 529 and failing.json()["error"]["message"] == "loopback failure"
    after = httpx.get(f"{server.url}/metrics").text
    for cause in ("upstream_connect", "upstream_timeout"):
        assert metric(after, "ctxopt_errors_total", cause=cause) == metric(before, "ctxopt_errors_total", cause=cause) + 1


def test_fail_open_forwards_the_request_unoptimised_and_says_so(server, provider):
    # The tiny tier (32 tokens) cannot hold this system prompt: ctxopt fails on the request.
    sent = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": " ".join(WORDS * 10)},
                                                  {"role": "user", "content": "hi"}]}
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=sent, headers=auth("open"), timeout=30)
    assert answer.status_code == 200
    assert answer.headers["x-ctxopt-status"] == "failed-open"
    assert provider.received[-1]["messages"] == sent["messages"]


def test_fail_closed_refuses_the_request_with_the_reason(server, provider):
    sent = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": " ".join(WORDS * 10)},
                                                  {"role": "user", "content": "hi"}]}
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=sent, headers=auth("closed"), timeout=30)
    assert answer.status_code == 422
    assert answer.json()["error"]["type"] == "context_too_large"
    assert "tiny" in answer.json()["error"]["message"] or "limit" in answer.json()["error"]["message"]
    assert provider.received == []


def test_a_body_that_is_not_a_chat_gets_400(server, provider):
    bad_json = httpx.post(f"{server.url}/v1/chat/completions", content=b"{nope", headers=auth("acme"))
    no_messages = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "gpt-4o-mini"}, headers=auth("acme"))
    assert bad_json.status_code == 400 and no_messages.status_code == 400
    assert "messages" in no_messages.json()["error"]["message"]
    assert provider.received == []


def test_a_body_over_the_size_limit_gets_413_before_it_is_read(server, provider):
    huge = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 300_000}]}
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=huge, headers=auth("acme"), timeout=30)
    assert answer.status_code == 413
    assert "max_body_bytes" in answer.json()["error"]["message"]
    assert provider.received == []


def test_health_and_metrics_report_the_requests(server):
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    before = httpx.get(f"{server.url}/metrics").text
    report = httpx.post(f"{server.url}/v1/optimize", json=chat(), headers=auth("acme"), timeout=30).json()["report"]
    after = httpx.get(f"{server.url}/metrics").text

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("ctxopt_requests_total", route="optimize", tenant="acme", status="200") == 1
    assert grew("ctxopt_tokens_before_total", tenant="acme") == report["tokens_before"]
    assert grew("ctxopt_tokens_after_total", tenant="acme") == report["tokens_after"]
    assert grew("ctxopt_stage_seconds_count", stage="fit") == 1


def test_the_anthropic_route_takes_an_x_api_key_and_streams_anthropic_events_through(server, provider):
    sent = {"model": "claude-sonnet-4-5", "max_tokens": 64, "system": "Be brief.", "stream": True,
            "messages": long_chat()[1:]}
    headers = {"x-api-key": "sk-acme-test-key", "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", f"{server.url}/v1/messages", json=sent, headers=headers, timeout=30) as answer:
        assert answer.status_code == 200
        names = [line[7:] for line in answer.iter_lines() if line.startswith("event: ")]
        tokens_after = int(answer.headers["x-ctxopt-tokens-after"])
    assert names[0] == "message_start" and names[-1] == "message_stop"
    received = provider.received[-1]
    assert received["system"] == "Be brief." and received["max_tokens"] == 64
    # The free tier's 4,096 tokens, less the answer's max_tokens (it replaces the tier's reserve).
    assert len(received["messages"]) < len(sent["messages"]) and tokens_after <= 4096 - 64
    assert provider.headers[-1]["x-api-key"] == "sk-upstream-secret"
    assert provider.headers[-1]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in provider.headers[-1]


def test_optimize_returns_a_whole_anthropic_request_in_its_own_shape(server):
    sent = {"model": "claude-sonnet-4-5", "max_tokens": 64, "system": [{"type": "text", "text": "Be brief."}],
            "messages": long_chat()[1:]}
    answer = httpx.post(f"{server.url}/v1/optimize?format=anthropic", json=sent, headers=auth("acme"), timeout=30)
    assert answer.status_code == 200, answer.text
    fitted = answer.json()["request"]
    assert fitted["system"] == sent["system"] and fitted["max_tokens"] == 64
    assert len(fitted["messages"]) < len(sent["messages"])
    assert fitted["messages"][-1] == sent["messages"][-1]


def test_errors_take_the_shape_of_the_route_s_provider(server):
    """Anthropic's SDK and clients expect {"type": "error", "error": {...}} from /v1/messages;
    OpenAI's expect {"error": {...}}; both read error.type and error.message."""
    anthropic = httpx.post(f"{server.url}/v1/messages", json={"model": "claude-3-5-haiku-latest", "max_tokens": 8,
                                                               "messages": [{"role": "user", "content": "hi"}]})
    openai = httpx.post(f"{server.url}/v1/chat/completions",
                        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert anthropic.status_code == openai.status_code == 401
    assert anthropic.json()["type"] == "error" and anthropic.json()["error"]["type"] == "invalid_api_key"
    assert "type" not in openai.json() and openai.json()["error"]["code"] == "invalid_api_key"
    assert anthropic.headers["content-length"] == str(len(anthropic.content))
