"""End to end: every worker and instance writes its requests to the shared usage in Redis, which
``ctxopt report --redis`` reads; dollar budgets are charged the report's bill; Redis outages."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from serving import KEYS, auth, base_config

from ctxopt.cli import main
from ctxopt.pricing import price_of
from ctxopt.serve import hash_key

pytestmark = [pytest.mark.redis, pytest.mark.slow]

QUESTION = [{"role": "user", "content": "Which settlement batch failed last night, and why did the ledger retry it?"}]
HISTORY = [{"role": "user" if i % 2 == 0 else "assistant",
            "content": f"Turn {i}: batch {i * 7} failed at {i}:15 and the ledger retried it twice."} for i in range(300)]

DOLLARS = f"""
[tenants.budgeted]
keys_sha256 = ["{hash_key(KEYS['budgeted'])}"]
tier = "free"
[tenants.budgeted.budget]
usd = 100.0
"""


def report_json(redis_url: str, capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    capsys.readouterr()
    assert main(["report", "--redis", redis_url, "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_instance_and_worker_writes_the_usage_that_ctxopt_report_reads(servers, provider, redis_server, capsys):
    config = base_config(provider, server=f'redis_url = "{redis_server.url}"', tenants=DOLLARS)
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda spec: servers(config, workers=spec[1], name=spec[0]), [("a", 2), ("b", 1)])
    sent = {"acme": [0, 0], "budgeted": [0, 0]}
    costs = []
    for i in range(8):
        url = (a, b)[i % 2].url
        if i % 2 == 0:
            answer = httpx.post(f"{url}/v1/chat/completions", timeout=30,
                                json={"model": "gpt-4o-mini", "messages": HISTORY[: 40 * (i + 1)]},
                                headers={**auth("acme"), "x-ctxopt-agent": "support"})
            tenant = "acme"
        else:
            answer = httpx.post(f"{url}/v1/optimize", json={"model": "gpt-4o", "messages": HISTORY[: 30 * i]},
                                timeout=30, headers={**auth("budgeted"), "x-ctxopt-agent": "planner"})
            costs.append(answer.json()["report"]["cost"])
            tenant = "budgeted"
        assert answer.status_code == 200
        sent[tenant][0] += int(answer.headers["x-ctxopt-tokens-before"])
        sent[tenant][1] += int(answer.headers["x-ctxopt-tokens-after"])
    # The provider's usage comes back in a JSON answer (not in a stream): its bill is recorded next to ours.
    billed_answers = [
        httpx.post(f"{b.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "user": "usage:1234:1024",
                                                         "messages": QUESTION}, headers=auth("acme"), timeout=30),
        httpx.post(f"{a.url}/v1/messages", json={"model": "claude-sonnet-4-5", "max_tokens": 64, "user": "usage:3000:2048",
                                                 "messages": QUESTION}, headers=auth("acme"), timeout=30),
        httpx.post(f"{a.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "stream": True, "messages": QUESTION},
                   headers=auth("acme"), timeout=30)]
    assert [r.status_code for r in billed_answers] == [200, 200, 200]
    sent["acme"][0] += sum(int(r.headers["x-ctxopt-tokens-before"]) for r in billed_answers)
    sent["acme"][1] += sum(int(r.headers["x-ctxopt-tokens-after"]) for r in billed_answers)
    dropped = httpx.post(f"{a.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "user": "drop", "messages": QUESTION},
                         headers=auth("acme"), timeout=30)
    assert dropped.status_code == 502  # never reached the provider: not in the usage

    data = report_json(redis_server.url, capsys)
    assert data["total"]["requests"] == 11
    assert data["total"]["tokens_before"] == sent["acme"][0] + sent["budgeted"][0]
    assert data["total"]["tokens_after"] == sent["acme"][1] + sent["budgeted"][1]
    assert data["total"]["tokens_after"] < data["total"]["tokens_before"]
    rows = {(r["tenant"], r["agent"], r["tier"]): r["requests"] for r in data["rows"]}
    assert rows == {("acme", "support", "free"): 4, ("acme", "-", "free"): 3, ("budgeted", "planner", "free"): 4}
    acme = report_json(redis_server.url, capsys, "--tenant", "acme")["total"]
    assert acme["tokens_after"] == sent["acme"][1]
    # 4 + 2 JSON answers came back with usage (the loopback reports 0 prompt tokens unless told); the stream did not.
    gpt, claude = price_of("gpt-4o-mini"), price_of("claude-sonnet-4-5")
    assert (acme["billed_requests"], acme["billed_prompt_tokens"], acme["billed_cached_tokens"]) == (6, 4234, 3072)
    assert acme["billed_cost"] == pytest.approx((210 * gpt.input + 1024 * gpt.cache_read) / 1e6
                                                + (952 * claude.input + 2048 * claude.cache_read) / 1e6, abs=1e-8)
    budgeted = report_json(redis_server.url, capsys, "--tenant", "budgeted")["total"]
    assert budgeted["cost"] == pytest.approx(sum(costs), abs=1e-7)
    # The dollar budget was charged each report's bill, the same figure the usage sums.
    client = redis.Redis.from_url(redis_server.url)
    (counter,) = [k for k in client.scan_iter("ctxopt:serve:budget:budgeted:*") if b":alerted:" not in k]
    assert float(client.get(counter)) == pytest.approx(sum(costs), abs=1e-7)


def test_usage_written_while_redis_is_down_is_counted_once_when_it_is_back(servers, provider, redis_server, capsys):
    server = servers(base_config(provider, server=f'redis_url = "{redis_server.url}"'))

    def ask() -> int:
        answer = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": QUESTION},
                            headers=auth("acme"), timeout=30)
        assert answer.status_code == 200
        return int(answer.headers["x-ctxopt-tokens-after"])

    tokens = [ask(), ask()]
    redis.Redis.from_url(redis_server.url).shutdown(save=True)  # what was written survives, as in a restart
    tokens += [ask() for _ in range(3)]  # served while Redis is down; their usage waits in the worker
    redis_server.start()
    # The worker tries Redis again 2 s after its last failure; each request until then is buffered too.
    deadline = time.monotonic() + 30  # a safety net only
    while report_json(redis_server.url, capsys)["total"]["requests"] < len(tokens):
        assert time.monotonic() < deadline, "the buffered usage was never replayed"
        tokens.append(ask())
        time.sleep(0.2)
    total = report_json(redis_server.url, capsys)["total"]
    assert (total["requests"], total["tokens_after"]) == (len(tokens), sum(tokens))


def test_streamed_answers_are_billed_from_their_usage_events(servers, provider, redis_server, capsys):
    """Anthropic's message_start and OpenAI's last chunk (when the client asks for include_usage)
    carry the prompt's usage: read as the stream passes, priced, recorded once per request."""
    server = servers(base_config(provider, server=f'redis_url = "{redis_server.url}"'))
    streams = [
        ("/v1/chat/completions", {"model": "gpt-4o-mini", "stream": True, "user": "usage:1500:1024",
                                  "stream_options": {"include_usage": True}}),
        ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True, "user": "usage:3000:2048"}),
        ("/v1/chat/completions", {"model": "gpt-4o-mini", "stream": True, "user": "usage:900:0"}),  # no include_usage
    ]
    for path, body in streams:
        with httpx.stream("POST", f"{server.url}{path}", json={**body, "messages": QUESTION}, headers=auth("acme"),
                          timeout=30) as answer:
            assert answer.status_code == 200
            events = "".join(answer.iter_text())
        assert "usage" in events or path.endswith("completions")  # relayed unchanged, usage events included
    deadline = time.monotonic() + 10  # the bill is written as the stream ends; a safety net only
    while report_json(redis_server.url, capsys)["total"].get("billed_requests", 0) < 2:
        assert time.monotonic() < deadline, "the streamed answers' usage was never recorded"
        time.sleep(0.1)
    total = report_json(redis_server.url, capsys)["total"]
    gpt, claude = price_of("gpt-4o-mini"), price_of("claude-sonnet-4-5")
    assert (total["requests"], total["billed_requests"]) == (3, 2)
    assert (total["billed_prompt_tokens"], total["billed_cached_tokens"]) == (1500 + 3000, 1024 + 2048)
    assert total["billed_cost"] == pytest.approx((476 * gpt.input + 1024 * gpt.cache_read) / 1e6
                                                 + (952 * claude.input + 2048 * claude.cache_read) / 1e6, abs=1e-8)
