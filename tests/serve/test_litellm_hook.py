"""ctxopt as LiteLLM's pre-call hook, with the real litellm package: LiteLLM's own auth record picks
the tier and filters, and litellm then sends the fitted messages to a provider on loopback."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("litellm", reason="the LiteLLM hook needs the litellm package: pip install 'ctxopt[litellm]'")

from litellm.caching.caching import DualCache
from litellm.proxy._types import UserAPIKeyAuth

from ctxopt.serve import LoopbackProvider
from ctxopt.serve.litellm_hook import CtxoptHook

pytestmark = pytest.mark.slow

HISTORY = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}: " + "settlement ledger retry " * 150}
           for i in range(30)] + [{"role": "user", "content": "Which batch failed?"}]


def test_the_hook_fits_a_teams_request_and_litellm_sends_the_fitted_messages():
    import litellm

    seen = []
    hook = CtxoptHook(tier=lambda auth, data: "free" if auth.team_id == "acme" else "pro",
                      filters=lambda auth, data: seen.append(auth.team_id) or {"tenant": auth.team_id})
    auth = UserAPIKeyAuth(api_key="sk-litellm-virtual-key", team_id="acme")
    data = {"model": "gpt-4o-mini", "messages": HISTORY, "metadata": {"trace": "t-1"}}
    fitted = asyncio.run(hook.async_pre_call_hook(auth, DualCache(), data, "acompletion"))
    assert seen == ["acme"]
    report = fitted["metadata"]["ctxopt"]
    assert report["tier"] == "free" and report["tokens_after"] < report["tokens_before"]
    assert fitted["metadata"]["trace"] == "t-1" and data["messages"] is HISTORY  # the input is left alone
    assert fitted["messages"][-1] == HISTORY[-1] and len(fitted["messages"]) < len(HISTORY)
    with LoopbackProvider() as provider:
        answer = asyncio.run(litellm.acompletion(model="openai/gpt-4o-mini", messages=fitted["messages"],
                                                 api_base=provider.base_url, api_key="sk-upstream"))
        assert provider.received[-1]["messages"] == fitted["messages"]
    assert answer.choices[0].message.content == f"ok: {len(fitted['messages'])} messages"


def test_other_calls_pass_untouched_and_a_failure_follows_the_policy():
    auth = UserAPIKeyAuth(api_key="sk-litellm-virtual-key", team_id="acme")
    bad = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 42}]}
    embedding = {"model": "text-embedding-3-small", "input": ["x"]}
    assert asyncio.run(CtxoptHook().async_pre_call_hook(auth, DualCache(), embedding, "aembedding")) is embedding
    assert asyncio.run(CtxoptHook(on_error="open").async_pre_call_hook(auth, DualCache(), bad, "acompletion")) is bad
    with pytest.raises(ValueError, match="content"):
        asyncio.run(CtxoptHook(on_error="closed").async_pre_call_hook(auth, DualCache(), bad, "acompletion"))
