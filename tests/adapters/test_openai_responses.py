"""OpenAI Responses API requests (input items) with the real openai SDK types, built offline."""

from __future__ import annotations

import copy

import pytest

responses = pytest.importorskip("openai.types.responses")

import ctxopt  # noqa: E402
from tests.adapters.conftest import LOG, PNG, TIGHT, field, responses_problems  # noqa: E402


def step(n: int, output: str = LOG) -> list:
    """One agent step as ``input += response.output`` builds it: SDK output items (a reasoning item
    and the function call it led to), then the caller's function_call_output dict."""
    return [
        responses.ResponseReasoningItem(id=f"rs_{n}", type="reasoning", summary=[]),
        responses.ResponseFunctionToolCall(type="function_call", id=f"fc_{n}", call_id=f"call_{n}", name="grep_logs",
                                           arguments='{"query": "checkout"}', status="completed"),
        {"type": "function_call_output", "call_id": f"call_{n}", "output": output},
    ]


def request(*items, question: str = "Why did request r42 fail at checkout?") -> dict:
    return {"model": "gpt-5", "instructions": "You are the on-call agent.",
            "tools": [{"type": "function", "name": "grep_logs", "description": "Search the logs.",
                       "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}],
            "input": [{"role": "user", "content": [{"type": "input_text", "text": question}]}, *items]}


def test_items_that_fit_come_back_as_the_same_objects():
    given = request(*step(1, "r42 FAILED"), *step(2, "deploy 1234 at 11:58"))
    fitted, _ = ctxopt.optimize_request(given, tier="pro")
    assert fitted == given
    assert all(a is b for a, b in zip(fitted["input"], given["input"], strict=True))


def test_an_assistant_output_message_from_a_response_is_kept_as_given():
    said = responses.ResponseOutputMessage(type="message", id="msg_1", role="assistant", status="completed", content=[
        responses.ResponseOutputText(type="output_text", text="Request r42 timed out in payments.", annotations=[])])
    given = request(*step(1, "r42 FAILED"), said, {"role": "user", "content": "Which deploy?"})
    fitted, _ = ctxopt.optimize_request(given, tier="pro")
    assert all(a is b for a, b in zip(fitted["input"], given["input"], strict=True))


def test_a_string_input_stays_a_string():
    given = {"model": "gpt-5", "input": "Hi there", "instructions": "Be brief."}
    assert ctxopt.optimize_request(given, tier="free").request == given


def test_dropped_steps_keep_each_call_with_its_output_and_its_reasoning():
    given = request(*[i for n in range(1, 6) for i in step(n, LOG[:600])],
                    {"role": "user", "content": "Which deploy caused it?"})
    original = copy.deepcopy(given)
    fitted, report = ctxopt.optimize_request(given, tier=TIGHT)
    assert report.tokens_after <= TIGHT.budget < report.tokens_before
    assert len(fitted["input"]) < len(given["input"])
    assert responses_problems(fitted["input"]) == []
    kept_calls = {field(i, "call_id") for i in fitted["input"] if field(i, "type") == "function_call"}
    kept_reasoning = {field(i, "id") for i in fitted["input"] if field(i, "type") == "reasoning"}
    assert kept_reasoning == {c.replace("call_", "rs_") for c in kept_calls}  # no reasoning item left without its call
    assert fitted["input"][-1] is given["input"][-1]
    assert fitted["instructions"] == given["instructions"]
    assert given == original


def test_a_cut_output_is_the_same_output_item_with_the_cut_text(cutting):
    given = request(*step(1), {"role": "user", "content": "Why did r42 fail?"})
    fitted, _ = ctxopt.optimize_request(given, tier="pro", pipeline=cutting)
    output = fitted["input"][3]
    assert output["type"] == "function_call_output" and output["call_id"] == "call_1"
    assert "r42 checkout FAILED" in output["output"] and len(output["output"]) < len(LOG) / 3
    assert fitted["input"][1] is given["input"][1] and fitted["input"][2] is given["input"][2]
    assert responses_problems(fitted["input"]) == []


def test_retrieved_context_is_a_system_message_where_the_pipeline_put_it(adding):
    given = request(*step(1, "timeout"), {"role": "user", "content": "Why?"})
    fitted, _ = ctxopt.optimize_request(given, tier="pro", pipeline=adding)
    assert fitted["input"][-2]["role"] == "system" and "Runbook" in fitted["input"][-2]["content"]
    assert fitted["input"][-1] is given["input"][-1]


def test_an_input_image_comes_back_as_given_and_is_counted():
    image = {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "high"}
    given = request(question="What does this dashboard show?")
    given["input"][0]["content"].append(image)
    fitted, report = ctxopt.optimize_request(given, tier="pro")
    assert fitted["input"][0] is given["input"][0]
    assert report.tokens_before - ctxopt.optimize_request(request(question="What does this dashboard show?"),
                                                          tier="pro").report.tokens_before >= 600


def test_the_output_limit_of_the_request_is_the_reserve():
    given = {**request(*step(1, LOG[:600])), "max_output_tokens": 700}
    with pytest.raises(ctxopt.BudgetError, match="700 output tokens"):
        ctxopt.optimize_request(given, tier=TIGHT)


def test_an_unanswered_call_and_an_orphan_output_are_repaired_into_a_valid_request():
    lost = responses.ResponseFunctionToolCall(type="function_call", call_id="call_lost", name="grep_logs", arguments="{}")
    given = request(*step(1, "r42 FAILED"), lost, {"role": "user", "content": "Never mind. Which deploy?"},
                    {"type": "function_call_output", "call_id": "call_gone", "output": "stale"})
    fitted, report = ctxopt.optimize_request(given, tier="pro")
    assert responses_problems(fitted["input"]) == []
    assert [field(i, "call_id") for i in fitted["input"] if field(i, "call_id")] == ["call_1", "call_1"]
    assert fitted["input"][-1] is given["input"][-2]
    assert len(report.repairs) == 2
