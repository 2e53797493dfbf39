"""Random agent conversations, each written in every format, fitted to random tiers: the request
that comes back is one the provider accepts, within the tier, with nothing of the turn in progress
dropped (its tool results may be cut, never removed)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis_profiles import examples

import ctxopt
from tests.adapters.conftest import LOG, anthropic_problems, field, openai_chat_problems, responses_problems

pytest.importorskip("anthropic")

# A step: a text exchange (None), or a round of 1-3 parallel tool calls with these output sizes.
steps = st.lists(st.one_of(st.none(), st.lists(st.integers(min_value=1, max_value=1500), min_size=1, max_size=3)),
                 min_size=1, max_size=8)
ends = st.sampled_from(["question", "tool_results"])  # what the conversation ends with


def anthropic_request(script: list, end: str) -> dict:
    from anthropic.types import TextBlock, ToolUseBlock

    messages: list = [{"role": "user", "content": "Why did request r42 fail at checkout?"}]
    for s, step in enumerate(script):
        if step is None:
            messages += [{"role": "assistant", "content": f"Looking at step {s}."}, {"role": "user", "content": "Go on."}]
            continue
        calls = [f"toolu_{s}_{c}" for c in range(len(step))]
        messages.append({"role": "assistant", "content": [TextBlock(type="text", text="Searching."), *(
            ToolUseBlock(type="tool_use", id=call, name="grep_logs", input={"query": "checkout"}) for call in calls)]})
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call, "content": LOG[:size]}
                                                     for call, size in zip(calls, step)]})
    if end == "question" or messages[-1]["role"] == "assistant":
        messages.append({"role": "assistant", "content": "Noted."})
        messages.append({"role": "user", "content": "So which deploy caused it?"})
    return {"model": "claude-sonnet-4-5", "max_tokens": 128, "system": "You are the on-call agent.", "messages": messages}


def chat_request(script: list, end: str) -> dict:
    messages: list = [{"role": "system", "content": "You are the on-call agent."},
                      {"role": "user", "content": "Why did request r42 fail at checkout?"}]
    for s, step in enumerate(script):
        if step is None:
            messages += [{"role": "assistant", "content": f"Looking at step {s}."}, {"role": "user", "content": "Go on."}]
            continue
        calls = [f"call_{s}_{c}" for c in range(len(step))]
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": call, "type": "function", "function": {"name": "grep_logs", "arguments": "{}"}} for call in calls]})
        messages += [{"role": "tool", "tool_call_id": call, "content": LOG[:size]} for call, size in zip(calls, step)]
    if end == "question" or messages[-1]["role"] != "tool":
        messages.append({"role": "user", "content": "So which deploy caused it?"})
    return {"model": "gpt-4o", "messages": messages}


def responses_request(script: list, end: str) -> dict:
    items: list = [{"role": "user", "content": "Why did request r42 fail at checkout?"}]
    for s, step in enumerate(script):
        if step is None:
            items += [{"role": "assistant", "content": f"Looking at step {s}."}, {"role": "user", "content": "Go on."}]
            continue
        calls = [f"call_{s}_{c}" for c in range(len(step))]
        items += [{"type": "function_call", "call_id": call, "name": "grep_logs", "arguments": "{}"} for call in calls]
        items += [{"type": "function_call_output", "call_id": call, "output": LOG[:size]} for call, size in zip(calls, step)]
    if end == "question" or field(items[-1], "type") != "function_call_output":
        items.append({"role": "user", "content": "So which deploy caused it?"})
    return {"model": "gpt-5", "instructions": "You are the on-call agent.", "input": items}


def turn_in_progress(name: str, messages: list) -> list:
    """What the model must see of the turn in progress: the ids of the trailing tool results, or
    the final question's text. A result's text may be cut; the result itself may not go."""
    if name == "anthropic":
        content = field(messages[-1], "content")
        return [field(b, "tool_use_id") for b in content] if isinstance(content, list) else [content]
    if name == "openai_chat":
        trailing = []
        for message in reversed(messages):
            if message["role"] != "tool":
                break
            trailing.append(message["tool_call_id"])
        return trailing or [messages[-1]["content"]]
    trailing = []
    for item in reversed(messages):
        if field(item, "type") != "function_call_output":
            break
        trailing.append(item["call_id"])
    return trailing or [messages[-1]["content"]]


FORMATS = {
    "anthropic": (anthropic_request, anthropic_problems, "messages"),
    "openai_chat": (chat_request, lambda r: openai_chat_problems(r["messages"]), "messages"),
    "openai_responses": (responses_request, lambda r: responses_problems(r["input"]), "input"),
}


@pytest.mark.parametrize("name", FORMATS)
@settings(max_examples=examples(25), suppress_health_check=[HealthCheck.too_slow])
@given(script=steps, end=ends, limit=st.integers(min_value=300, max_value=4000))
def test_a_fitted_request_is_one_the_provider_accepts(name, script, end, limit):
    build, problems, field_name = FORMATS[name]
    request = build(script, end)
    tier = ctxopt.Tier(limit, reserve=100)
    try:
        fitted = ctxopt.optimize_request(request, tier=tier, format=name)
    except ctxopt.BudgetError:
        assume(False)  # what must be kept does not fit this tier: a clear error, not a broken request
        return
    assert fitted.report.tokens_after <= tier.budget
    assert problems(fitted.request) == []
    assert turn_in_progress(name, fitted.request[field_name]) == turn_in_progress(name, request[field_name])
