"""End to end: one budget shared by two server instances of two workers each, through a real Redis."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from serving import KEYS, auth, base_config, metric

import ctxopt
from ctxopt.serve import hash_key

pytestmark = [pytest.mark.redis, pytest.mark.slow]

QUESTION = [{"role": "user", "content": "Which settlement batch failed last night, and why did the ledger retry it?"}]


def tokens_per_request() -> int:
    # What the server will count for one request: the same default pipeline and tier, run here.
    return ctxopt.optimize(QUESTION, tier="free").report.tokens_after


def budget_tenants(limit: float, cap: int) -> str:
    return f"""
[tenants.budgeted]
keys_sha256 = ["{hash_key(KEYS['budgeted'])}"]
tier = "free"
[tenants.budgeted.budget]
tokens = {limit}
over = "throttle"
max_request_tokens = {cap}

[tenants.downgraded]
keys_sha256 = ["{hash_key(KEYS['downgraded'])}"]
tier = "free"
[tenants.downgraded.budget]
tokens = 1
over = "downgrade"
downgrade_to = "tiny"
"""


def test_two_instances_of_two_workers_alert_once_per_threshold_and_throttle_within_one_request(servers, provider,
                                                                                                 redis_server):
    t = tokens_per_request()
    limit = 10.5 * t  # the 11th request crosses the limit; the 12th is refused
    config = base_config(provider, server=f'redis_url = "{redis_server.url}"', tenants=budget_tenants(limit, 3 * t))
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda name: servers(config, workers=2, name=name), ["a", "b"])
    statuses = []
    for i in range(14):
        answer = httpx.post(f"{(a, b)[i % 2].url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": QUESTION},
                            headers=auth("budgeted"), timeout=30)
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert int(answer.headers["retry-after"]) > 0
            assert answer.json()["error"]["type"] == "budget_exceeded"
    assert statuses == [200] * 11 + [429] * 3
    assert len(provider.received) == 11  # refused requests never reach the provider
    client = redis.Redis.from_url(redis_server.url)
    (counter,) = [k for k in client.scan_iter("ctxopt:serve:budget:budgeted:*") if b":alerted:" not in k]
    used = float(client.get(counter))
    assert limit <= used < limit + t  # over by less than one request
    texts = [httpx.get(f"{s.url}/metrics").text for s in (a, b)]
    for threshold in ("0.5", "0.75", "0.9"):
        assert sum(metric(x, "ctxopt_budget_alerts_total", tenant="budgeted", threshold=threshold) for x in texts) == 1
    assert sum(metric(x, "ctxopt_errors_total", cause="budget_exceeded") for x in texts) == 3


def test_a_request_over_the_tenants_cap_gets_413_and_is_not_charged(servers, provider, redis_server):
    t = tokens_per_request()
    server = servers(base_config(provider, server=f'redis_url = "{redis_server.url}"',
                                 tenants=budget_tenants(100 * t, t - 1)))
    answer = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": QUESTION},
                        headers=auth("budgeted"), timeout=30)
    assert answer.status_code == 413
    assert f"cap of {t - 1}" in answer.json()["error"]["message"]
    assert provider.received == []
    assert not list(redis.Redis.from_url(redis_server.url).scan_iter("ctxopt:serve:budget:*"))


def test_a_request_the_provider_never_got_is_not_charged(servers, provider, redis_server):
    t = tokens_per_request()
    server = servers(base_config(provider, server=f'redis_url = "{redis_server.url}"', tenants=budget_tenants(100 * t, 10 * t)))
    ok = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": QUESTION},
                    headers=auth("budgeted"), timeout=30)
    dropped = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "user": "drop", "messages": QUESTION},
                         headers=auth("budgeted"), timeout=30)
    assert (ok.status_code, dropped.status_code) == (200, 502)
    client = redis.Redis.from_url(redis_server.url)
    (counter,) = [k for k in client.scan_iter("ctxopt:serve:budget:budgeted:*") if b":alerted:" not in k]
    assert float(client.get(counter)) == t  # the dropped request was charged, then given back


def test_past_its_budget_a_downgrade_tenant_is_served_with_the_smaller_tier(servers, provider, redis_server):
    server = servers(base_config(provider, server=f'redis_url = "{redis_server.url}"', tenants=budget_tenants(1000, 1000)))
    first = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": QUESTION},
                       headers=auth("downgraded"), timeout=30)
    second = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": QUESTION},
                        headers=auth("downgraded"), timeout=30)
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.headers["x-ctxopt-tier"], second.headers["x-ctxopt-tier"]) == ("free", "tiny")


def test_with_redis_down_the_proxy_keeps_serving_and_counts_the_outage(servers, provider, redis_server):
    server = servers(base_config(provider, server=f'redis_url = "{redis_server.url}"', tenants=budget_tenants(1000, 1000)))
    redis_server.stop()
    answers = [httpx.post(f"{server.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": QUESTION},
                          headers=auth("budgeted"), timeout=30) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len(provider.received) == 3
    assert metric(httpx.get(f"{server.url}/metrics").text, "ctxopt_errors_total", cause="redis") >= 1
