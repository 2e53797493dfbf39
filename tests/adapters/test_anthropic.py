"""Anthropic Messages requests with the real anthropic SDK types, built offline."""

from __future__ import annotations

import copy

import pytest

anthropic_types = pytest.importorskip("anthropic.types")

import ctxopt  # noqa: E402
from tests.adapters.conftest import LOG, PNG, TIGHT, anthropic_problems, block_type, field  # noqa: E402

CACHED = {"type": "ephemeral"}


def tool_round(n: int, output: str = LOG) -> list[dict]:
    """One agent step as the SDK's tool loop builds it: response.content appended as the assistant
    turn (SDK block objects), then the tool_result in the next user turn."""
    return [
        {"role": "assistant", "content": [
            anthropic_types.TextBlock(type="text", text=f"Step {n}: searching the logs."),
            anthropic_types.ToolUseBlock(type="tool_use", id=f"toolu_{n}", name="grep_logs", input={"query": "checkout"}),
        ]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": output,
                                      "cache_control": CACHED}]},
    ]


def request(*messages: dict, question: str = "Why did request r42 fail at checkout?") -> dict:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "You are the on-call agent for the shop.", "cache_control": CACHED}],
        "tools": [{"name": "grep_logs", "description": "Search the service logs.",
                   "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": question}]}, *messages],
    }


def test_a_request_that_fits_comes_back_identical_object_for_object():
    given = request(*tool_round(1, "r42 checkout FAILED upstream timeout"),
                    {"role": "assistant", "content": "The payments call timed out."},
                    {"role": "user", "content": "Which service?"})
    fitted, report = ctxopt.optimize_request(given, tier="pro")
    assert fitted == given
    assert fitted["system"] is given["system"]
    assert all(a is b for a, b in zip(fitted["messages"], given["messages"], strict=True))
    assert report.tokens_after == report.tokens_before


def test_dropped_history_leaves_a_request_the_api_accepts():
    given = request(*[m for n in range(1, 6) for m in tool_round(n, LOG[:600])],
                    {"role": "assistant", "content": "Request r42 timed out in payments."},
                    {"role": "user", "content": "And which deploy caused it?"})
    original = copy.deepcopy(given)
    fitted, report = ctxopt.optimize_request(given, tier=TIGHT)
    assert report.tokens_after <= TIGHT.budget < report.tokens_before
    assert len(fitted["messages"]) < len(given["messages"])
    assert anthropic_problems(fitted) == []
    assert fitted["messages"][-1] is given["messages"][-1]  # the question survives, as given
    assert fitted["system"] is given["system"]
    assert given == original  # the caller's request is never edited


def test_a_cut_tool_result_is_the_same_block_with_the_cut_text(cutting):
    given = request(*tool_round(1))
    fitted, _ = ctxopt.optimize_request(given, tier="pro", pipeline=cutting)
    result = fitted["messages"][-1]["content"][0]
    assert block_type(result) == "tool_result" and result["tool_use_id"] == "toolu_1"
    assert result["cache_control"] == CACHED  # the breakpoint stays where the agent put it
    assert "r42 checkout FAILED upstream timeout" in result["content"]
    assert len(result["content"]) < len(LOG) / 3
    assert "omitted" in result["content"]
    # Everything else is the caller's own object.
    assert all(a is b for a, b in zip(fitted["messages"][:-1], given["messages"][:-1], strict=True))
    assert anthropic_problems(fitted) == []


def test_retrieved_context_becomes_a_text_block_of_the_user_turn_not_the_system(adding):
    given = request(*tool_round(1, "timeout"), {"role": "assistant", "content": "It timed out."},
                    {"role": "user", "content": [{"type": "text", "text": "Why?", "cache_control": CACHED}]})
    fitted, report = ctxopt.optimize_request(given, tier="pro", pipeline=adding)
    assert fitted["system"] is given["system"]
    last = fitted["messages"][-1]
    assert last["role"] == "user"
    assert "Runbook: checkout failures" in last["content"][0]["text"]
    assert last["content"][1] is given["messages"][-1]["content"][0]  # the question's block, cache_control and all
    assert all(a is b for a, b in zip(fitted["messages"][:-1], given["messages"][:-1], strict=True))
    assert anthropic_problems(fitted) == []
    assert report.stages[0].added == ("kb-runbook",)


def test_a_string_system_prompt_and_string_contents_stay_strings():
    given = {"model": "claude-haiku-4-5", "max_tokens": 64, "system": "Be brief.",
             "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                          {"role": "user", "content": "Bye"}]}
    fitted, _ = ctxopt.optimize_request(given, tier="free")
    assert fitted == given and fitted["system"] == "Be brief."


def test_a_system_role_inside_messages_is_a_clear_error():
    with pytest.raises(ctxopt.InputError, match="system="):
        ctxopt.optimize_request({"max_tokens": 5, "system": "x", "messages": [{"role": "system", "content": "x"}]},
                                format="anthropic")


def test_sdk_blocks_in_a_rebuilt_turn_are_kept_as_given(cutting):
    given = request(*tool_round(1), *tool_round(2))
    fitted, _ = ctxopt.optimize_request(given, tier="pro", pipeline=cutting)
    assert field(fitted["messages"][1]["content"][1], "id") == "toolu_1"
    assert fitted["messages"][1] is given["messages"][1]
    assert anthropic_problems(fitted) == []
def test_the_tools_of_the_request_are_counted():
    given = request(*tool_round(1, "timeout"))
    bare = {k: v for k, v in given.items() if k != "tools"}
    _, with_tools = ctxopt.optimize_request(given, tier="pro")
    _, without = ctxopt.optimize_request(bare, tier="pro")
    assert with_tools.tokens_before > without.tokens_before




def test_image_blocks_and_cache_control_come_back_as_given_and_the_image_is_counted():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    question = {"type": "text", "text": "What does this dashboard show?", "cache_control": CACHED}
    given = request({"role": "assistant", "content": "Checking."}, {"role": "user", "content": [image, question]})
    without = request({"role": "assistant", "content": "Checking."}, {"role": "user", "content": [question]})
    fitted, report = ctxopt.optimize_request(given, tier="pro")
    assert fitted["messages"][-1] is given["messages"][-1] and fitted["messages"][-1]["content"][1]["cache_control"] == CACHED
    # 1024 x 768 on Claude: about width * height / 750 tokens (1,049), on top of the text.
    assert ctxopt.optimize_request(without, tier="pro").report.tokens_before + 1000 < report.tokens_before


def test_a_tool_result_with_image_content_survives_a_tight_fit():
    shot = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png_small()}}
    look = anthropic_types.ToolUseBlock(type="tool_use", id="toolu_9", name="grep_logs", input={"query": "screenshot"})
    given = request(*[m for n in range(1, 4) for m in tool_round(n, LOG[:600])],
                    {"role": "assistant", "content": "Request r42 timed out."},
                    {"role": "user", "content": "Check the status page."},
                    {"role": "assistant", "content": [look]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9",
                                                  "content": [{"type": "text", "text": "the screen:"}, shot]}]})
    fitted, report = ctxopt.optimize_request(given, tier=TIGHT)
    assert report.tokens_after <= TIGHT.budget < report.tokens_before
    assert all(a is b for a, b in zip(fitted["messages"][-3:], given["messages"][-3:], strict=True))  # the turn in progress
    assert anthropic_problems(fitted) == []


def png_small() -> str:
    from tests.adapters.conftest import png_base64

    return png_base64(64, 64)


def test_an_unanswered_tool_use_and_an_orphan_result_are_repaired_into_a_valid_request():
    ask = anthropic_types.ToolUseBlock(type="tool_use", id="toolu_lost", name="grep_logs", input={"query": "x"})
    given = request({"role": "assistant", "content": [anthropic_types.TextBlock(type="text", text="Let me check."), ask]},
                    {"role": "user", "content": "Never mind, what time is it?"},
                    {"role": "assistant", "content": "Noon."},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_gone", "content": "stale"},
                                                 {"type": "text", "text": "Thanks. And the deploy?"}]})
    fitted, report = ctxopt.optimize_request(given, tier="pro")
    assert anthropic_problems(fitted) == []
    assert fitted["messages"][1]["content"] == [given["messages"][1]["content"][0]]  # the text stays, the call goes
    assert fitted["messages"][-1]["content"] == [given["messages"][-1]["content"][1]]
    assert len(report.repairs) == 2


def test_a_cut_that_leaves_an_answer_without_its_question_drops_the_answer_too():
    """Before: a fit to the newest turns kept "Answer 3" without "Question 3", so the request
    opened on the assistant and the Messages API answers 400 ("first message must use the user
    role"). Now that answer goes too, and the report lists it."""
    turns = []
    for n in range(8):
        turns += [{"role": "user", "content": f"Question {n}: how do I tune the checkout service, part {n}? " * 3},
                  {"role": "assistant", "content": [{"type": "text", "text": f"Answer {n}: raise the pool. " * 12}]}]
    req = {"model": "claude-sonnet-4-5", "max_tokens": 100, "system": "You are the on-call agent.",
           "messages": [*turns, {"role": "user", "content": "And the cache?"}]}
    openings = set()
    for limit in range(300, 1600, 25):
        out = ctxopt.optimize_request(req, tier=ctxopt.Tier(limit))
        assert anthropic_problems(out.request) == [], limit
        openings.add(str(field(out.request["messages"][0], "content"))[:10])
        fit = next(s for s in out.report.stages if s.name == "fit")
        for group in fit.notes.get("answers_without_question", ()):
            assert group in fit.dropped
    assert len(openings) > 3  # the cut really moved through the conversation


def test_a_session_window_that_starts_on_an_answer_never_opens_the_request_on_the_assistant():
    """Before: the answers-without-question rule fired only on cuts the fit made, so when the
    session layout's window began on an assistant turn the request opened on it (12 of 44 limits
    here were requests the Messages API rejects)."""
    turns = []
    for n in range(30):
        turns += [{"role": "user", "content": f"Question {n}: what about the checkout pool, part {n}? " * 2},
                  {"role": "assistant", "content": f"Answer {n}: raise it to {n + 8} and watch p99. " * 6}]
    openings = set()
    for limit in range(400, 4000, 80):
        req = {"model": "claude-sonnet-4-5", "max_tokens": 100, "system": "You are the on-call agent.",
               "messages": [*turns, {"role": "user", "content": "And the cache?"}]}
        out = ctxopt.optimize_request(req, tier=ctxopt.Tier(limit), session=f"on-call-{limit}")
        assert anthropic_problems(out.request) == [], limit
        openings.add(str(field(out.request["messages"][0], "content"))[:12])
    assert len(openings) > 3


def test_a_conversation_the_caller_opened_on_the_assistant_is_left_as_given():
    messages = [{"role": "assistant", "content": "Hello! How can I help?"}, {"role": "user", "content": "Hi."}]
    out = ctxopt.optimize([{"role": "system", "content": "Be brief."}, *messages], tier=ctxopt.Tier(500))
    assert [m["role"] for m in out.messages] == ["system", "assistant", "user"]
