"""LlamaIndex ChatMessage lists with the real llama-index-core types."""

from __future__ import annotations

import pytest

llms = pytest.importorskip("llama_index.core.llms")

import ctxopt  # noqa: E402
from tests.adapters.conftest import LOG, TIGHT  # noqa: E402


def conversation(rounds: int, output: str = LOG) -> list:
    from llama_index.core.base.llms.types import ToolCallBlock

    history = [llms.ChatMessage(role="system", content="You are the on-call agent."),
               llms.ChatMessage(role="user", content="Why did request r42 fail at checkout?")]
    for n in range(1, rounds + 1):
        history += [llms.ChatMessage(role="assistant", blocks=[ToolCallBlock(tool_call_id=f"call_{n}", tool_name="grep_logs",
                                                                             tool_kwargs={"query": "checkout"})]),
                    llms.ChatMessage(role="tool", content=output, additional_kwargs={"tool_call_id": f"call_{n}"})]
    return history


def calls_answered(history: list) -> bool:
    asked = [b.tool_call_id for m in history for b in m.blocks if getattr(b, "block_type", "") == "tool_call"]
    answered = [m.additional_kwargs.get("tool_call_id") for m in history if m.role.value == "tool"]
    return asked == answered


def test_messages_that_fit_come_back_as_the_same_objects():
    given = conversation(2, "r42 FAILED")
    fitted, _ = ctxopt.optimize_request(given, tier="pro")
    assert all(a is b for a, b in zip(fitted, given, strict=True))


def test_dropped_history_keeps_every_tool_call_answered():
    given = [*conversation(5, LOG[:600]), llms.ChatMessage(role="user", content="Which deploy?")]
    fitted, report = ctxopt.optimize_request(given, tier=TIGHT)
    assert report.tokens_after <= TIGHT.budget < report.tokens_before
    assert len(fitted) < len(given) and calls_answered(fitted)
    assert fitted[-1] is given[-1]


def test_a_cut_tool_message_is_a_copy_with_the_cut_text(cutting):
    given = [*conversation(1), llms.ChatMessage(role="user", content="Why did r42 fail?")]
    fitted, _ = ctxopt.optimize_request(given, tier="pro", pipeline=cutting)
    tool = fitted[3]
    assert tool.additional_kwargs == {"tool_call_id": "call_1"}
    assert "r42 checkout FAILED" in tool.content and len(tool.content) < len(LOG) / 3
    assert given[3].content == LOG


def test_retrieved_context_is_a_system_message(adding):
    given = [*conversation(1, "timeout"), llms.ChatMessage(role="user", content="Why?")]
    fitted, _ = ctxopt.optimize_request(given, tier="pro", pipeline=adding)
    assert fitted[-2].role.value == "system" and "Runbook" in fitted[-2].content


def test_openai_style_tool_calls_in_additional_kwargs_are_paired_too():
    from openai.types.chat.chat_completion_message_function_tool_call import ChatCompletionMessageFunctionToolCall, Function

    history = [llms.ChatMessage(role="user", content="Why did request r42 fail?")]
    for n in range(1, 6):
        call = ChatCompletionMessageFunctionToolCall(id=f"call_{n}", type="function",
                                                     function=Function(name="grep_logs", arguments="{}"))
        history += [llms.ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [call]}),
                    llms.ChatMessage(role="tool", content=LOG[:600], additional_kwargs={"tool_call_id": f"call_{n}"})]
    history.append(llms.ChatMessage(role="user", content="Which deploy?"))
    fitted, report = ctxopt.optimize_request(history, tier=TIGHT)
    asked = [c.id for m in fitted for c in m.additional_kwargs.get("tool_calls", [])]
    answered = [m.additional_kwargs["tool_call_id"] for m in fitted if m.role.value == "tool"]
    assert report.tokens_after <= TIGHT.budget and len(fitted) < len(history)
    assert asked == answered and all(any(m is h for h in history) for m in fitted)  # kept ones as given
