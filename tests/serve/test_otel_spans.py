"""OpenTelemetry spans of the real server (uvicorn in this process, so the SDK's in-memory exporter
sees them) proxying to the loopback provider: GenAI conventions, a span per stage, error causes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from serving import KEYS, TIERS, auth, base_config
from test_proxy import chat

from ctxopt.errors import ConfigError
from ctxopt.serve import LoopbackProvider, create_app, load_config
from ctxopt.serve.process import free_port

pytestmark = pytest.mark.slow

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def server(provider: LoopbackProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``ctxopt serve``'s app with spans on, under uvicorn on a free loopback port."""
    import uvicorn

    if not isinstance(trace.get_tracer_provider(), TracerProvider):  # the global provider can be set once
        sdk = TracerProvider()
        sdk.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(sdk)
    directory = tmp_path_factory.mktemp("otel")
    (directory / "tiers.toml").write_text(TIERS, encoding="utf-8")
    (directory / "serve.toml").write_text(base_config(provider, server="otel = true"), encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ACME_KEY", KEYS["acme"])
        app = create_app(load_config(directory / "serve.toml"))
    port = free_port()
    running = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not running.started:  # a safety net, not a pause: started flips once the socket listens
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(autouse=True)
def _no_spans_yet() -> None:
    EXPORTER.clear()


def spans() -> dict[str, list[ReadableSpan]]:
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in EXPORTER.get_finished_spans():
        by_name.setdefault(span.name, []).append(span)
    return by_name


def test_a_proxied_request_is_one_server_span_with_optimize_stage_and_genai_client_spans(server, provider):
    answer = httpx.post(f"{server}/v1/chat/completions", json=chat(max_tokens=64), headers=auth("acme"), timeout=60)
    assert answer.status_code == 200, answer.text
    found = spans()
    (request,) = found["POST /v1/chat/completions"]
    (optimize,) = found["ctxopt.optimize"]
    (client,) = found["chat gpt-4o-mini"]
    stages = [s for name, group in found.items() if name.startswith("ctxopt.stage ") for s in group]
    assert request.kind == trace.SpanKind.SERVER and client.kind == trace.SpanKind.CLIENT
    assert request.parent is None
    assert optimize.parent.span_id == client.parent.span_id == request.context.span_id
    assert stages and all(s.parent.span_id == optimize.context.span_id for s in stages)
    assert "ctxopt.stage fit" in found
    attributes = request.attributes
    assert attributes["gen_ai.operation.name"] == "chat" and attributes["gen_ai.provider.name"] == "openai"
    assert attributes["ctxopt.tenant"] == "acme" and attributes["http.response.status_code"] == 200
    assert int(answer.headers["x-ctxopt-tokens-before"]) == attributes["ctxopt.tokens_before"]
    assert int(answer.headers["x-ctxopt-tokens-after"]) == attributes["ctxopt.tokens_after"] \
        == client.attributes["gen_ai.usage.input_tokens"]
    assert attributes["ctxopt.tokens_saved"] > 0 and attributes["ctxopt.cost_saved_usd"] > 0
    assert client.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert client.attributes["gen_ai.request.max_tokens"] == 64
    assert client.attributes["server.address"] == "127.0.0.1"
    # Stage spans sit inside the optimisation, which sits inside the request.
    assert request.start_time <= optimize.start_time <= min(s.start_time for s in stages)
    assert max(s.end_time for s in stages) <= optimize.end_time <= client.start_time <= request.end_time


def test_the_anthropic_route_names_its_provider(server, provider):
    body = {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": chat()["messages"][1:]}
    answer = httpx.post(f"{server}/v1/messages", json=body, headers=auth("acme"), timeout=60)
    assert answer.status_code == 200, answer.text
    (client,) = spans()["chat claude-haiku-4-5"]
    assert client.attributes["gen_ai.provider.name"] == client.attributes["gen_ai.system"] == "anthropic"


def test_failures_carry_their_cause_as_error_type(server, provider):
    unknown = httpx.post(f"{server}/v1/chat/completions", json=chat(), headers={"authorization": "Bearer sk-nope"})
    failing = httpx.post(f"{server}/v1/chat/completions", json=chat(user="fail:500"), headers=auth("acme"), timeout=60)
    assert (unknown.status_code, failing.status_code) == (401, 500)
    requests = spans()["POST /v1/chat/completions"]
    by_status = {s.attributes["http.response.status_code"]: s for s in requests}
    assert by_status[401].attributes["error.type"] == "auth"
    assert by_status[500].attributes["error.type"] == "500"
    assert by_status[500].status.status_code == trace.StatusCode.ERROR
    assert spans()["chat gpt-4o-mini"][0].status.status_code == trace.StatusCode.ERROR


def test_optimize_only_is_a_span_without_an_upstream_call(server):
    answer = httpx.post(f"{server}/v1/optimize", json=chat(), headers=auth("acme"), timeout=60)
    assert answer.status_code == 200, answer.text
    found = spans()
    assert "POST /v1/optimize" in found and "ctxopt.optimize" in found
    assert not [name for name in found if name.startswith("chat ")]
    assert "gen_ai.operation.name" not in found["POST /v1/optimize"][0].attributes


def test_spans_are_off_unless_asked_for(provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "tiers.toml").write_text(TIERS, encoding="utf-8")
    monkeypatch.setenv("ACME_KEY", KEYS["acme"])
    monkeypatch.delenv("CTXOPT_SERVE_OTEL", raising=False)
    (tmp_path / "serve.toml").write_text(base_config(provider), encoding="utf-8")
    assert create_app(load_config(tmp_path / "serve.toml")).state.server.tracing.tracer is None
    (tmp_path / "serve.toml").write_text(base_config(provider, server='otel = "yes"'), encoding="utf-8")
    with pytest.raises(ConfigError, match="otel must be true or false"):
        load_config(tmp_path / "serve.toml")
