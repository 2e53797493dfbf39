"""OpenTelemetry spans of the server (``[server] otel = true`` or ``ctxopt serve --otel``).

Each ``/v1`` request is a SERVER span (``POST /v1/chat/completions``); under it a
``ctxopt.optimize`` span with a child per pipeline stage (:func:`ctxopt.tracing.trace_report`), and,
when proxied, the GenAI inference span the conventions describe: CLIENT kind, named
``chat {gen_ai.request.model}``, with ``gen_ai.operation.name``, ``gen_ai.provider.name`` (and the
older ``gen_ai.system``), ``gen_ai.request.model`` and ``gen_ai.usage.input_tokens``. It ends when
the provider's headers arrive, like the ``upstream`` stage of the metrics. The request span carries
the tokens before and after, cost, savings, cache hits, the status code and, on failure,
``error.type`` (the cause the ``ctxopt_errors_total`` metric counts, or the error type of the answer).
Like the latency metric, the request span ends when the answer's headers are ready: a streamed
body's time is not in it (ending spans in the stream's background task would lose them whenever a
client disconnects mid-stream).

Spans go to the global tracer provider: set one up in the process that runs the app, or run
``ctxopt serve`` under ``opentelemetry-instrument`` (``opentelemetry-distro``), which configures
each worker from the ``OTEL_*`` environment variables. Off, nothing here imports OpenTelemetry.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from ctxopt.errors import ConfigError
from ctxopt.report import Report
from ctxopt.tracing import report_attributes, trace_report

TRACER_NAME = "ctxopt.serve"
OTEL_ENV = "CTXOPT_SERVE_OTEL"  # "1": spans on, whatever the config says (set by ctxopt serve --otel)
OPERATIONS = {"chat_completions": "chat", "messages": "chat"}


class Span:
    """One request's span and the context token that made it current."""

    def __init__(self, span: Any, token: Any) -> None:
        self.span, self.token = span, token


class Tracing:
    """The server's spans; every method is a no-op when ``enabled`` is false."""

    def __init__(self, enabled: bool) -> None:
        self.tracer: Any = None
        if enabled:
            try:
                from opentelemetry import trace
            except ImportError as exc:
                raise ConfigError("[server] otel = true needs OpenTelemetry: pip install 'ctxopt[otel]' "
                                  "(or turn it off)") from exc
            self.tracer = trace.get_tracer(TRACER_NAME)

    def start(self, route: str, request: Request) -> Span | None:
        if self.tracer is None:
            return None
        from opentelemetry import context, trace

        span = self.tracer.start_span(f"{request.method} {request.url.path}", kind=trace.SpanKind.SERVER,
                                      attributes={"http.request.method": request.method, "url.path": request.url.path,
                                                  "http.route": request.url.path, "ctxopt.route": route})
        if route in OPERATIONS:
            span.set_attribute("gen_ai.operation.name", OPERATIONS[route])
        return Span(span, context.attach(trace.set_span_in_context(span)))

    def finish(self, handle: Span | None, response: Response | None, cause: str | None, tenant: str) -> None:
        if handle is None:
            return
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        span = handle.span
        span.set_attribute("ctxopt.tenant", tenant)
        if response is not None:
            span.set_attribute("http.response.status_code", response.status_code)
            span.set_attribute("ctxopt.status", response.headers.get("x-ctxopt-status", "-"))
        if cause is None and (response is None or response.status_code >= 400):
            cause = "internal" if response is None else _error_type(response)
        if cause is not None:
            span.set_attribute("error.type", cause)
        if response is None or response.status_code >= 500:
            span.set_status(Status(StatusCode.ERROR, cause))
        span.end()
        context.detach(handle.token)

    def report(self, report: Report) -> None:
        """Attach ``report`` to the current request span, with its stages as child spans."""
        if self.tracer is None:
            return
        from opentelemetry import trace

        trace.get_current_span().set_attributes(report_attributes(report))
        trace_report(report, tracer=self.tracer)

    def failed(self, exc: BaseException) -> None:
        """ctxopt could not optimise the request (it then fails open or closed)."""
        if self.tracer is not None:
            from opentelemetry import trace

            span = trace.get_current_span()
            span.record_exception(exc)
            span.set_attribute("ctxopt.optimize_error", type(exc).__name__)

    @contextlib.contextmanager
    def upstream(self, provider: str, body: Mapping[str, Any], report: Report | None,
                 base_url: str) -> Iterator[list[Response]]:
        """The GenAI inference span around forwarding; put the answer in the yielded list."""
        answer: list[Response] = []
        if self.tracer is None:
            yield answer
            return
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        trace.get_current_span().set_attributes(_provider(provider))  # the request span: where the request went
        model = str(body.get("model", ""))
        attributes: dict[str, Any] = {**_provider(provider), "gen_ai.operation.name": "chat",
                                      "server.address": httpx.URL(base_url).host}
        if model:
            attributes["gen_ai.request.model"] = model
        if report is not None:
            attributes["gen_ai.usage.input_tokens"] = report.tokens_after
        for field, name in (("max_tokens", "gen_ai.request.max_tokens"), ("temperature", "gen_ai.request.temperature")):
            if isinstance(body.get(field), (int, float)) and not isinstance(body.get(field), bool):
                attributes[name] = body[field]
        with self.tracer.start_as_current_span(f"chat {model}".strip(), kind=trace.SpanKind.CLIENT,
                                               attributes=attributes, record_exception=True) as span:
            yield answer
            if answer:
                span.set_attribute("http.response.status_code", answer[0].status_code)
                if answer[0].status_code >= 400:
                    span.set_attribute("error.type", _error_type(answer[0]))
                    span.set_status(Status(StatusCode.ERROR))


def _provider(provider: str) -> dict[str, str]:
    return {"gen_ai.provider.name": provider, "gen_ai.system": provider}


def _error_type(response: Response) -> str:
    """The ``error.type`` of an error answer: its JSON error type when ctxopt wrote it, else the status."""
    body = getattr(response, "body", None)
    if isinstance(body, (bytes, bytearray, memoryview)):
        try:
            kind = json.loads(bytes(body))["error"]["type"]
            if isinstance(kind, str):
                return kind
        except (ValueError, KeyError, TypeError):
            pass
    return str(response.status_code)
