"""End to end: one conversation served by two instances keeps the provider's prompt cache warm.

The session (``x-ctxopt-session``, or OpenAI's ``prompt_cache_key``) is laid out for the cache by
whichever worker gets the request: the layout is recomputed from the messages, and the previous
prompt's print (what the bill needs) is in Redis, so the instance that did not see the last
request still bills the prefix the provider holds. Sessions are scoped to the tenant.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from serving import KEYS, auth, base_config

from ctxopt.serve import hash_key

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SYSTEM = {"role": "system", "content": "You are the support agent of a payments company. " * 20}
TURNS = [{"role": "user" if i % 2 == 0 else "assistant",
          "content": f"Turn {i}: settlement batch {i * 7} failed at {i % 24}:15 and the ledger retried it twice."}
         for i in range(400)]
TENANTS = f"""
[tenants.budgeted]
keys_sha256 = ["{hash_key(KEYS['budgeted'])}"]
tier = "free"

[tenants.downgraded]
keys_sha256 = ["{hash_key(KEYS['downgraded'])}"]
tier = "free"
"""


def ask(url: str, tenant: str, turns: int, session: str | None, *, field: bool = False) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": [SYSTEM, *TURNS[:turns],
                                                 {"role": "user", "content": "Which batch failed twice?"}]}
    headers = dict(auth(tenant))
    if session and field:
        body["prompt_cache_key"] = session
    elif session:
        headers["x-ctxopt-session"] = session
    answer = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer


def shared_messages(a: list[dict], b: list[dict]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_a_session_served_by_two_instances_keeps_its_prefix_and_bills_the_cache(servers, provider, redis_server):
    config = base_config(provider, server=f'redis_url = "{redis_server.url}"', tenants=TENANTS)
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda name: servers(config, name=name), ["a", "b"])
    cached, held = [], []
    for n, turns in enumerate(range(120, 240, 8)):  # each request goes to the other instance
        answer = ask((a, b)[n % 2].url, "budgeted", turns, "thread-42", field=n % 3 == 0)
        cached.append(int(answer.headers["x-ctxopt-cached-tokens"]))
        if n:
            held.append(shared_messages(provider.received[-2]["messages"], provider.received[-1]["messages"]))
    assert cached[0] == 0  # a new session: nothing is cached yet
    # The instance that did not serve the previous request knew its prompt (Redis) and kept its prefix:
    # most requests reuse a prefix of whole messages and are billed the cache, a compaction now and then.
    assert sum(c > 0 for c in cached[1:]) >= len(cached[1:]) * 2 // 3
    assert sum(h > 1 for h in held) >= len(held) * 2 // 3
    assert len(redis.Redis.from_url(redis_server.url).keys("ctxopt:session:*")) == 1  # the state both instances read
    # The same session name under another tenant is another session: cold, not the first tenant's.
    assert int(ask(b.url, "downgraded", 240, "thread-42").headers["x-ctxopt-cached-tokens"]) == 0
    # Without a session nothing claims a cached prefix.
    assert int(ask(a.url, "budgeted", 240, None).headers["x-ctxopt-cached-tokens"]) == 0


def test_a_session_name_that_is_not_a_short_string_gets_400(servers, provider):
    server = servers(base_config(provider, tenants=TENANTS))
    body = {"model": "gpt-4o-mini", "prompt_cache_key": "x" * 300, "messages": [{"role": "user", "content": "Hi"}]}
    answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=auth("budgeted"), timeout=30)
    assert answer.status_code == 400 and "session" in answer.json()["error"]["message"]
    assert provider.received == []


def test_the_report_names_the_clients_session_not_the_tenant_scoped_key(servers, provider):
    """The session state is keyed by tenant and session; the report an agent reads back says the
    session it sent (before, the scoped key, a control character and the tenant's name included)."""
    server = servers(base_config(provider, tenants=TENANTS))
    body = {"model": "gpt-4o-mini", "messages": [SYSTEM, *TURNS[:20]]}
    answer = httpx.post(f"{server.url}/v1/optimize", json=body,
                        headers={**auth("budgeted"), "x-ctxopt-session": "thread-7"}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["report"]["session"] == "thread-7"
