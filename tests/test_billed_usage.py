"""What the provider billed comes back through wrap() next to ctxopt's estimate (real SDK types,
constructed offline), and the accountant sums both."""

from __future__ import annotations

import pytest

import ctxopt
from ctxopt.integrations.usage import billed
from ctxopt.pricing import price_of

openai_types = pytest.importorskip("openai.types.chat")
anthropic_types = pytest.importorskip("anthropic.types")


def chat_completion(prompt: int, cached: int):
    from openai.types import CompletionUsage
    from openai.types.completion_usage import PromptTokensDetails

    return openai_types.ChatCompletion.model_validate({
        "id": "c1", "object": "chat.completion", "created": 0, "model": "gpt-5",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
        "usage": CompletionUsage(prompt_tokens=prompt, completion_tokens=5, total_tokens=prompt + 5,
                                 prompt_tokens_details=PromptTokensDetails(cached_tokens=cached)).model_dump()})


class Completions:
    def __init__(self, response):
        self.response, self.calls = response, []

    def create(self, **kwargs):
        self.calls.append(kwargs)
        return self.response


class Client:
    def __init__(self, response):
        self.chat = type("Chat", (), {})()
        self.chat.completions = Completions(response)


def test_openai_cached_tokens_are_recorded_next_to_the_estimate_and_summed_per_tenant():
    accountant = ctxopt.Accountant()
    client = ctxopt.wrap(Client(chat_completion(3000, 2048)), tier="pro", accountant=accountant, tenant="acme")
    response = client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "Hi"}])
    report = response.ctxopt_report
    # gpt-5: $1.25 per 1M input, cached $0.125: 952 fresh + 2,048 cached.
    assert (report.billed.prompt_tokens, report.billed.cached_tokens) == (3000, 2048)
    assert report.billed.cost == pytest.approx((952 * 1.25 + 2048 * 0.125) / 1e6)
    assert "billed by the provider: 3000 prompt tokens, 2048 cached" in str(report)
    usage = accountant.usage(by=["tenant"])[0]
    assert (usage.billed_requests, usage.billed_cached_tokens) == (1, 2048)
    assert usage.billed_cost == pytest.approx(report.billed.cost) and usage.cost == pytest.approx(report.cost)
    assert client.last_report is report


def test_anthropic_cache_reads_and_writes_are_billed_at_their_prices():
    message = anthropic_types.Message.model_validate({
        "id": "m1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 40, "output_tokens": 5, "cache_read_input_tokens": 3000,
                  "cache_creation_input_tokens": 200}})
    bill = billed(message, price_of("claude-sonnet-4-5"))
    assert (bill.prompt_tokens, bill.cached_tokens, bill.cache_write_tokens) == (3240, 3000, 200)
    assert bill.cost == pytest.approx((40 * 3 + 3000 * 0.3 + 200 * 3.75) / 1e6)


def test_a_response_without_usage_leaves_billed_empty():
    assert billed(object(), price_of("gpt-5")) is None
    assert billed({"usage": {"prompt_tokens": "many"}}, price_of("gpt-5")) is None
