"""A real HTTP server on loopback that answers like OpenAI's and Anthropic's chat APIs, for tests
and the serve benchmark: JSON or SSE answers, with configurable latency and failure rate.

The request's ``user`` field (or else its ``model``) can steer one request: ``"slow:<seconds>"`` waits that long first,
``"fail:<status>"`` answers that HTTP status, ``"drop"`` closes the connection without answering,
``"usage:<prompt>:<cached>"`` reports that many prompt tokens, ``cached`` of them read from the cache
(a JSON answer; otherwise its usage reports 0 prompt tokens).

>>> with LoopbackProvider() as provider:
...     provider.base_url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackProvider:
    """Serves on ``127.0.0.1`` on a free port from ``start()`` (or ``with``) to ``stop()``.

    ``received`` lists every request body it got, in order. When ``hold`` is set (a
    :class:`threading.Event`), a stream waits for it after its first event, so a test can prove the
    first event reached the client before the rest was sent.
    """

    def __init__(self, *, latency: float = 0.0, failure_rate: float = 0.0, seed: int = 0,
                 hold: threading.Event | None = None) -> None:
        self.latency, self.failure_rate, self.hold = latency, failure_rate, hold
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the loopback provider is not started; call start() first")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LoopbackProvider:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the records instead
                pass

            def do_POST(self) -> None:
                provider._answer(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that went away (a killed proxy worker, a timed-out test) is expected here.
                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="loopback-provider", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LoopbackProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        body = json.loads(handler.rfile.read(int(handler.headers.get("content-length", 0))) or b"{}")
        with self._lock:
            self.received.append(body)
            self.headers.append({k.lower(): v for k, v in handler.headers.items()})
            failed = self.failure_rate > 0 and self._rng.random() < self.failure_rate
        model = str(body.get("user") or body.get("model", ""))  # "user" steers when the model must be a real name
        delay = self.latency + (float(model.split(":", 1)[1]) if model.startswith("slow:") else 0.0)
        if delay:
            time.sleep(delay)
        if model == "drop":
            handler.close_connection = True
            handler.connection.close()
            return
        if model.startswith("fail:") or failed:
            status = int(model.split(":", 1)[1]) if model.startswith("fail:") else 500
            return _send(handler, status, "application/json",
                         json.dumps({"error": {"type": "server_error", "message": "loopback failure"}}).encode())
        anthropic = handler.path.rstrip("/").endswith("/messages")
        text = f"ok: {len(body.get('messages', []))} messages"
        usage: dict[str, Any] = {}
        if model.startswith("usage:"):
            prompt, cached = (int(n) for n in model.split(":")[1:3])
            usage = {"input_tokens": prompt - cached, "cache_read_input_tokens": cached} if anthropic else \
                {"prompt_tokens": prompt, "prompt_tokens_details": {"cached_tokens": cached}}
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return self._stream(handler, text, anthropic, usage if anthropic or include else {})
        payload = _anthropic_message(text, body) if anthropic else _openai_completion(text, body)
        payload["usage"].update(usage)
        _send(handler, 200, "application/json", json.dumps(payload).encode())

    def _stream(self, handler: BaseHTTPRequestHandler, text: str, anthropic: bool, usage: dict[str, Any]) -> None:
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        events = _anthropic_events(text, usage) if anthropic else _openai_events(text, usage)
        for i, event in enumerate(events):
            data = event.encode()
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()
            if i == 0 and self.hold is not None:
                self.hold.wait(timeout=30)
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()


def _send(handler: BaseHTTPRequestHandler, status: int, content_type: str, data: bytes) -> None:
    handler.send_response(status)
    handler.send_header("content-type", content_type)
    handler.send_header("content-length", str(len(data)))
    handler.send_header("x-request-id", "req_loopback")
    handler.end_headers()
    handler.wfile.write(data)


def _openai_completion(text: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": "chatcmpl-loopback", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "loopback"),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 0, "completion_tokens": len(text.split()), "total_tokens": len(text.split())}}


def _openai_events(text: str, usage: dict[str, Any]) -> list[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return "data: " + json.dumps({"id": "chatcmpl-loopback", "object": "chat.completion.chunk", "created": 0,
                                      "model": "loopback", "choices": [{"index": 0, "delta": delta,
                                                                        "finish_reason": finish}]}) + "\n\n"
    words = text.split(" ")
    return [chunk({"role": "assistant", "content": ""}),
            *(chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)),
            chunk({}, "stop"),
            *(["data: " + json.dumps({"id": "chatcmpl-loopback", "object": "chat.completion.chunk", "created": 0,
                                      "model": "loopback", "choices": [], "usage": usage}) + "\n\n"] if usage else []),
            "data: [DONE]\n\n"]


def _anthropic_message(text: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": "msg_loopback", "type": "message", "role": "assistant", "model": body.get("model", "loopback"),
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": len(text.split())}}


def _anthropic_events(text: str, usage: dict[str, Any]) -> list[str]:
    def event(name: str, data: dict[str, Any]) -> str:
        return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"
    message: dict[str, Any] = {"id": "msg_loopback", "type": "message", "role": "assistant", "model": "loopback", "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0, **usage}}
    return [event("message_start", {"message": message}),
            event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}}),
            event("content_block_stop", {"index": 0}),
            event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                    "usage": {"output_tokens": len(text.split())}}),
            event("message_stop", {})]
