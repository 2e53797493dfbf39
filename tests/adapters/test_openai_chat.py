"""OpenAI Chat Completions requests with the real openai SDK types, built offline."""

from __future__ import annotations

import pytest

chat = pytest.importorskip("openai.types.chat")

import ctxopt  # noqa: E402
from tests.adapters.conftest import LOG, PNG, TIGHT, openai_chat_problems  # noqa: E402


def sdk_assistant(n: int) -> object:
    """The message an agent appends as it came: response.choices[0].message."""
    from openai.types.chat.chat_completion_message_function_tool_call import ChatCompletionMessageFunctionToolCall, Function

    call = ChatCompletionMessageFunctionToolCall(id=f"call_{n}", type="function",
                                                 function=Function(name="grep_logs", arguments='{"query": "checkout"}'))
    return chat.ChatCompletionMessage(role="assistant", content=None, tool_calls=[call])


def conversation(rounds: int, output: str = LOG) -> list:
    messages: list = [{"role": "system", "content": "You are the on-call agent."},
                      {"role": "user", "content": "Why did request r42 fail at checkout?"}]
    for n in range(1, rounds + 1):
        messages += [sdk_assistant(n), {"role": "tool", "tool_call_id": f"call_{n}", "content": output}]
    return messages


def test_sdk_message_objects_come_back_as_the_same_objects():
    given = {"model": "gpt-4o", "messages": conversation(2, "r42 FAILED upstream timeout")}
    fitted, _ = ctxopt.optimize_request(given, tier="pro")
    assert fitted == given
    assert all(a is b for a, b in zip(fitted["messages"], given["messages"], strict=True))


def test_a_bare_message_list_comes_back_as_a_list():
    given = conversation(1, "ok")
    fitted, _ = ctxopt.optimize_request(given, tier="pro")
    assert isinstance(fitted, list) and all(a is b for a, b in zip(fitted, given, strict=True))


def test_dropped_history_keeps_every_call_answered():
    given = {"model": "gpt-4o", "messages": [*conversation(5, LOG[:600]),
                                             {"role": "assistant", "content": "It timed out."},
                                             {"role": "user", "content": "Which deploy?"}]}
    fitted, report = ctxopt.optimize_request(given, tier=TIGHT)
    assert report.tokens_after <= TIGHT.budget < report.tokens_before
    assert len(fitted["messages"]) < len(given["messages"])
    assert openai_chat_problems(fitted["messages"]) == []
    assert fitted["messages"][-1] is given["messages"][-1]


def test_a_cut_tool_result_is_a_new_tool_message_with_the_cut_text(cutting):
    given = {"model": "gpt-4o", "messages": [*conversation(1), {"role": "user", "content": "Why did r42 fail?"}]}
    fitted, _ = ctxopt.optimize_request(given, tier="pro", pipeline=cutting)
    tool = fitted["messages"][3]
    assert tool["tool_call_id"] == "call_1" and "r42 checkout FAILED" in tool["content"] and len(tool["content"]) < len(LOG) / 3
    assert fitted["messages"][2] is given["messages"][2]
    assert openai_chat_problems(fitted["messages"]) == []


def test_other_request_fields_pass_through_untouched():
    given = {"model": "gpt-4o", "messages": conversation(0), "temperature": 0.1, "user": "u1", "stream": True}
    fitted, _ = ctxopt.optimize_request(given, tier="pro")
    assert {k: v for k, v in fitted.items() if k != "messages"} == {k: v for k, v in given.items() if k != "messages"}


def test_content_parts_with_images_and_cache_control_come_back_as_given():
    parts = [{"type": "text", "text": "What does this dashboard show?", "cache_control": {"type": "ephemeral"}},
             {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}}]
    given = {"model": "gpt-4o", "messages": [*conversation(1, "ok"), {"role": "user", "content": parts}]}
    fitted, report = ctxopt.optimize_request(given, tier="pro")
    assert fitted["messages"][-1] is given["messages"][-1]
    text_only = {"model": "gpt-4o", "messages": [*conversation(1, "ok"), {"role": "user", "content": parts[:1]}]}
    # 1024 x 768 at detail high on gpt-4o: 85 + 170 x 4 tiles = 765 tokens.
    assert report.tokens_before - ctxopt.optimize_request(text_only, tier="pro").report.tokens_before >= 765
