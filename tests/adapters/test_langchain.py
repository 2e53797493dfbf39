"""LangChain message lists with the real langchain-core types."""

from __future__ import annotations

import pytest

messages = pytest.importorskip("langchain_core.messages")

import ctxopt  # noqa: E402
from tests.adapters.conftest import LOG, PNG, TIGHT, openai_chat_problems  # noqa: E402

CACHED = {"type": "ephemeral"}


def conversation(rounds: int, output: str = LOG) -> list:
    history: list = [messages.SystemMessage("You are the on-call agent."),
                     messages.HumanMessage(content=[{"type": "text", "text": "Why did request r42 fail at checkout?",
                                                     "cache_control": CACHED}])]
    for n in range(1, rounds + 1):
        history += [messages.AIMessage(content="", tool_calls=[{"name": "grep_logs", "args": {"query": "checkout"},
                                                                "id": f"call_{n}"}]),
                    messages.ToolMessage(content=output, tool_call_id=f"call_{n}", name="grep_logs")]
    return history


def as_openai(history: list) -> list:
    return [messages.convert_to_openai_messages(m) for m in history]


def test_messages_that_fit_come_back_as_the_same_objects():
    given = conversation(2, "r42 FAILED upstream timeout")
    fitted, _ = ctxopt.optimize_request(given, tier="pro")
    assert all(a is b for a, b in zip(fitted, given, strict=True))
    assert fitted[1].content[0]["cache_control"] == CACHED


def test_dropped_history_keeps_every_tool_call_answered():
    given = [*conversation(5, LOG[:600]), messages.AIMessage("It timed out."), messages.HumanMessage("Which deploy?")]
    fitted, report = ctxopt.optimize_request(given, tier=TIGHT)
    assert report.tokens_after <= TIGHT.budget < report.tokens_before
    assert len(fitted) < len(given)
    assert openai_chat_problems(as_openai(fitted)) == []
    assert fitted[-1] is given[-1]


def test_a_cut_tool_message_is_a_copy_with_the_cut_text(cutting):
    given = [*conversation(1), messages.HumanMessage("Why did r42 fail?")]
    fitted, _ = ctxopt.optimize_request(given, tier="pro", pipeline=cutting)
    tool = fitted[3]
    assert isinstance(tool, messages.ToolMessage) and tool.tool_call_id == "call_1" and tool.name == "grep_logs"
    assert "r42 checkout FAILED" in tool.content and len(tool.content) < len(LOG) / 3
    assert given[3].content == LOG  # the caller's message is not edited


def test_retrieved_context_is_a_system_message(adding):
    given = [*conversation(1, "timeout"), messages.HumanMessage("Why?")]
    fitted, _ = ctxopt.optimize_request(given, tier="pro", pipeline=adding)
    assert isinstance(fitted[-2], messages.SystemMessage) and "Runbook" in fitted[-2].content


def test_an_image_part_comes_back_as_given():
    shot = messages.HumanMessage(content=[{"type": "text", "text": "And this dashboard?"},
                                          {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}])
    given = [*conversation(1, "ok"), shot]
    fitted, report = ctxopt.optimize_request(given, tier="pro")
    assert fitted[-1] is shot and report.tokens_before > 765
