"""ctxopt.wrap around the real openai, anthropic and litellm clients, talking to a real HTTP server
on loopback: the SDKs serialise the fitted request themselves, and the test reads what arrived."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import ctxopt
from tests.adapters.conftest import LOG, TIGHT, anthropic_problems, cutting_pipeline, openai_chat_problems, responses_problems

CACHED = {"type": "ephemeral"}
CHAT_REPLY = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4o",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
RESPONSES_REPLY = {"id": "resp_1", "object": "response", "created_at": 0, "model": "gpt-5", "status": "completed",
                   "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                               "content": [{"type": "output_text", "text": "ok", "annotations": []}]}],
                   "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}
MESSAGES_REPLY = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                  "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "stop_sequence": None,
                  "usage": {"input_tokens": 1, "output_tokens": 1}}
MESSAGES_STREAM = [
    ("message_start", {"type": "message_start", "message": {**MESSAGES_REPLY, "content": [], "stop_reason": None}}),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                       "usage": {"output_tokens": 1}}),
    ("message_stop", {"type": "message_stop"}),
]


class Upstream(ThreadingHTTPServer):
    """A provider on loopback: records each request body, answers with a canned reply by path."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[tuple[str, dict]] = []
        self.headers: list[dict[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def last(self, path: str) -> dict:
        return next(body for p, body in reversed(self.bodies) if p.endswith(path))


class _Handler(BaseHTTPRequestHandler):
    server: Upstream

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append((self.path, body))
        self.server.headers.append(dict(self.headers))
        if self.path.endswith("/messages") and body.get("stream"):
            self._reply("text/event-stream", "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in MESSAGES_STREAM))
            return
        reply = {"/chat/completions": CHAT_REPLY, "/responses": RESPONSES_REPLY, "/messages": MESSAGES_REPLY}
        self._reply("application/json", json.dumps(next(r for p, r in reply.items() if self.path.endswith(p))))

    def _reply(self, kind: str, text: str) -> None:
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstream():
    server = Upstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def anthropic_request(rounds: int, output: str = LOG) -> dict:
    from anthropic.types import TextBlock, ToolUseBlock

    messages: list = [{"role": "user", "content": [{"type": "text", "text": "Why did request r42 fail at checkout?"}]}]
    for n in range(1, rounds + 1):
        messages += [{"role": "assistant", "content": [TextBlock(type="text", text=f"Step {n}."),
                                                       ToolUseBlock(type="tool_use", id=f"toolu_{n}", name="grep_logs",
                                                                    input={"query": "checkout"})]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{n}", "content": output,
                                                   "cache_control": CACHED}]}]
    messages.append({"role": "assistant", "content": "It timed out."})
    messages.append({"role": "user", "content": "Which deploy caused it?"})
    return {"model": "claude-sonnet-4-5", "max_tokens": 256,
            "system": [{"type": "text", "text": "You are the on-call agent.", "cache_control": CACHED}],
            "messages": messages}


def test_wrapped_openai_chat_sends_a_fitted_valid_request(upstream):
    openai = pytest.importorskip("openai")
    from openai.types.chat import ChatCompletionMessage

    messages: list = [{"role": "system", "content": "You are the on-call agent."},
                      {"role": "user", "content": "Why did request r42 fail?"}]
    for n in range(1, 6):
        messages += [ChatCompletionMessage.model_validate({"role": "assistant", "content": None, "tool_calls": [
                         {"id": f"call_{n}", "type": "function", "function": {"name": "grep_logs", "arguments": "{}"}}]}),
                     {"role": "tool", "tool_call_id": f"call_{n}", "content": LOG[:600]}]
    messages.append({"role": "user", "content": "Which deploy caused it?"})
    client = ctxopt.wrap(openai.OpenAI(base_url=f"{upstream.url}/v1", api_key="test", max_retries=0), tier=TIGHT)
    response = client.chat.completions.create(model="gpt-4o", messages=messages, temperature=0)
    sent = upstream.last("/chat/completions")
    assert response.choices[0].message.content == "ok"
    assert response.ctxopt_report.tokens_after <= TIGHT.budget < response.ctxopt_report.tokens_before
    assert openai_chat_problems(sent["messages"]) == []
    assert sent["messages"][0]["content"] == "You are the on-call agent." and sent["temperature"] == 0
    assert sent["messages"][-1] == {"role": "user", "content": "Which deploy caused it?"}
    assert len(sent["messages"]) < len(messages)


def test_wrapped_openai_responses_sends_calls_with_their_outputs(upstream):
    openai = pytest.importorskip("openai")
    from openai.types.responses import ResponseFunctionToolCall

    items: list = [{"role": "user", "content": [{"type": "input_text", "text": "Why did request r42 fail?"}]}]
    for n in range(1, 6):
        items += [ResponseFunctionToolCall(type="function_call", call_id=f"call_{n}", name="grep_logs", arguments="{}"),
                  {"type": "function_call_output", "call_id": f"call_{n}", "output": LOG[:600]}]
    items.append({"role": "user", "content": "Which deploy caused it?"})
    client = ctxopt.wrap(openai.OpenAI(base_url=f"{upstream.url}/v1", api_key="test", max_retries=0), tier=TIGHT)
    response = client.responses.create(model="gpt-5", instructions="You are the on-call agent.", input=items)
    sent = upstream.last("/responses")
    assert response.output_text == "ok"
    assert response.ctxopt_report.tokens_after <= TIGHT.budget
    assert sent["instructions"] == "You are the on-call agent."
    assert responses_problems(sent["input"]) == [] and len(sent["input"]) < len(items)
    assert sent["input"][-1] == {"role": "user", "content": "Which deploy caused it?"}
    assert client.last_report is response.ctxopt_report


def test_wrapped_anthropic_messages_create_keeps_cache_control_and_pairing(upstream):
    anthropic = pytest.importorskip("anthropic")
    client = ctxopt.wrap(anthropic.Anthropic(base_url=upstream.url, api_key="test", max_retries=0),
                         tier="pro", pipeline=cutting_pipeline())
    response = client.messages.create(**anthropic_request(2))
    sent = upstream.last("/v1/messages")
    assert response.content[0].text == "ok" and isinstance(response.ctxopt_report, ctxopt.Report)
    assert sent["system"] == [{"type": "text", "text": "You are the on-call agent.", "cache_control": CACHED}]
    assert anthropic_problems(sent) == []
    result = sent["messages"][2]["content"][0]
    assert result["type"] == "tool_result" and result["cache_control"] == CACHED
    assert "lines omitted" in result["content"] and len(result["content"]) < len(LOG) / 3
    assert sent["messages"][1]["content"][1] == {"type": "tool_use", "id": "toolu_1", "name": "grep_logs",
                                                 "input": {"query": "checkout"}}


def test_wrapped_anthropic_drops_history_into_a_request_the_api_accepts(upstream):
    anthropic = pytest.importorskip("anthropic")
    client = ctxopt.wrap(anthropic.Anthropic(base_url=upstream.url, api_key="test", max_retries=0), tier=TIGHT)
    response = client.messages.create(**anthropic_request(5, LOG[:600]))
    sent = upstream.last("/v1/messages")
    assert response.ctxopt_report.tokens_after <= TIGHT.budget < response.ctxopt_report.tokens_before
    assert anthropic_problems(sent) == [] and len(sent["messages"]) < 12
    assert sent["messages"][-1] == {"role": "user", "content": "Which deploy caused it?"}


def test_wrapped_anthropic_beta_messages_are_fitted_too(upstream):
    anthropic = pytest.importorskip("anthropic")
    client = ctxopt.wrap(anthropic.Anthropic(base_url=upstream.url, api_key="test", max_retries=0), tier=TIGHT)
    response = client.beta.messages.create(**anthropic_request(5, LOG[:600]), betas=["context-1m-2025-08-07"])
    sent = upstream.last("/v1/messages")
    assert upstream.headers[-1]["anthropic-beta"] == "context-1m-2025-08-07"
    assert response.ctxopt_report.tokens_after <= TIGHT.budget < response.ctxopt_report.tokens_before
    assert anthropic_problems(sent) == []
    assert client.beta.models is client.__wrapped__.beta.models  # the rest of beta passes through


def test_wrapped_async_anthropic_and_its_stream(upstream):
    anthropic = pytest.importorskip("anthropic")

    async def main() -> tuple[str, ctxopt.Report | None]:
        client = ctxopt.wrap(anthropic.AsyncAnthropic(base_url=upstream.url, api_key="test", max_retries=0), tier=TIGHT)
        response = await client.messages.create(**anthropic_request(5, LOG[:600]))
        assert anthropic_problems(upstream.last("/v1/messages")) == []
        assert response.ctxopt_report.tokens_after <= TIGHT.budget
        async with client.messages.stream(**anthropic_request(5, LOG[:600])) as stream:
            text = await stream.get_final_text()
        return text, client.last_report

    text, report = asyncio.run(main())
    sent = upstream.last("/v1/messages")
    assert text == "ok" and sent["stream"] is True
    assert anthropic_problems(sent) == [] and report is not None and report.tokens_after <= TIGHT.budget


@pytest.mark.filterwarnings("ignore:Item.*ReadOnly:UserWarning")  # litellm's own TypedDicts, at import
def test_wrapped_litellm_completion_sends_the_fitted_messages(upstream, monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the price list at import
    litellm = pytest.importorskip("litellm")
    messages: list = [{"role": "system", "content": "You are the on-call agent."},
                      {"role": "user", "content": "Why did request r42 fail?"}]
    for n in range(1, 6):
        messages += [{"role": "assistant", "content": None, "tool_calls": [
                         {"id": f"call_{n}", "type": "function", "function": {"name": "grep_logs", "arguments": "{}"}}]},
                     {"role": "tool", "tool_call_id": f"call_{n}", "content": LOG[:600]}]
    messages.append({"role": "user", "content": "Which deploy caused it?"})
    wrapped = ctxopt.wrap(litellm, tier=TIGHT)
    response = wrapped.completion(model="openai/gpt-4o", messages=messages, api_base=f"{upstream.url}/v1", api_key="test")
    sent = upstream.last("/chat/completions")
    assert response.choices[0].message.content == "ok"
    assert wrapped.last_report.tokens_after <= TIGHT.budget < wrapped.last_report.tokens_before
    assert openai_chat_problems(sent["messages"]) == [] and len(sent["messages"]) < len(messages)
    mocked = asyncio.run(wrapped.acompletion(model="gpt-4o", messages=messages, mock_response="mocked"))
    assert mocked.choices[0].message.content == "mocked" and wrapped.last_report.tokens_after <= TIGHT.budget


def test_a_positional_argument_is_a_clear_error_before_any_request(upstream):
    openai = pytest.importorskip("openai")
    client = ctxopt.wrap(openai.OpenAI(base_url=f"{upstream.url}/v1", api_key="test", max_retries=0))
    count = len(upstream.bodies)
    with pytest.raises(ctxopt.InputError, match="input="):
        client.responses.create(model="gpt-5")
    assert len(upstream.bodies) == count
