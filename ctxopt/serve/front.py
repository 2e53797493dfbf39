"""The front of ``ctxopt serve``: the process that holds the client connections, with the workers behind it.

Without it each worker owns its clients' connections, so a worker that dies takes them along and a
client sees a reset connection. The front is a small ASGI app under uvicorn in the main process
that forwards every request (any method and path) to a worker over its Unix socket and relays the
answer back unchanged: status, headers, body, an SSE stream chunk by chunk as it arrives. It sends
each request to the ready worker with the fewest requests in flight, so a client's keep-alive
connection is spread per request, not pinned to one process. When a worker dies (see
:mod:`ctxopt.serve.workers`):

- a request it was handling, before the answer's headers: **502** ``worker_lost`` with ``Retry-After:
  1``, not retried, because the worker may already have called the provider;
- a request that could not reach a worker (it had just died): sent to another ready worker, as
  nothing was sent; with none ready, **503** ``no_worker`` with ``Retry-After: 1``;
- a stream it was relaying: the status is sent already, so the stream ends with the provider's SSE
  error event (Anthropic ``event: error``, OpenAI ``data: {"error": ...}``); any other body is cut
  short and its connection closed.

Errors take the shape of the route's provider: Anthropic's ``{"type": "error", "error": {...}}`` on
``/v1/messages``, OpenAI's ``{"error": {...}}`` elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx

from ctxopt.serve.errors import provider_error, sse_error
from ctxopt.serve.metrics import ERRORS, MULTIPROC_ENV
from ctxopt.serve.workers import Worker, Workers

log = logging.getLogger("ctxopt.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Hop-by-hop headers describe one connection; httpx sets the request's length itself.
HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade", b"proxy-connection",
       b"proxy-authenticate", b"proxy-authorization"}
WORKER_LOST = ("ctxopt's worker process exited while handling this request; it was not retried because the "
               "provider may already have been called. Retry it if a second call is safe.")


class Front:
    """The ASGI app of the front process; its lifespan starts and stops ``workers``."""

    def __init__(self, workers: Workers, *, max_body_bytes: int) -> None:
        self.workers, self.max_body_bytes = workers, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            body = await self._body(scope, receive, send)
            if body is not None:
                await self._watched(scope, body, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.workers.start()
                except RuntimeError as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.workers.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole request body (so a request that reached no worker can go to another), or ``None``
        once answered: the client left, or the body is over the limit the workers apply too."""
        data = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            data += message.get("body", b"")
            if len(data) > self.max_body_bytes:
                await _answer(send, 413, provider_error(scope["path"], "request_too_large", (
                    f"the request body is over this server's limit of {self.max_body_bytes} bytes "
                    "([server] max_body_bytes)")))
                return None
            if not message.get("more_body"):
                return bytes(data)

    async def _watched(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        """Forward, and stop (closing the worker's connection) if the client leaves first."""
        forwarding = asyncio.current_task()
        state = {"done": False}

        async def watch() -> None:
            message = await receive()
            if message["type"] == "http.disconnect" and not state["done"] and forwarding is not None:
                forwarding.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await self._forward(scope, body, send, state)
        except asyncio.CancelledError:
            if not watcher.done() or watcher.cancelled():
                raise  # cancelled from outside (shutdown), not by the client leaving
            if forwarding is not None:
                forwarding.uncancel()
        finally:
            watcher.cancel()

    async def _forward(self, scope: Scope, body: bytes, send: Send, state: dict[str, bool]) -> None:
        path = scope["path"]
        target = scope.get("raw_path") or path.encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP and k != b"content-length"]
        tried: set[Worker] = set()
        while True:
            worker = self.workers.pick(tried)
            if worker is None:
                ERRORS.labels("no_worker").inc()
                await _answer(send, 503, provider_error(path, "no_worker", (
                    "no ctxopt worker process is ready (one just exited and its replacement is starting); "
                    "retry shortly")), state)
                return
            tried.add(worker)
            worker.in_flight += 1
            try:
                request = worker.client.build_request(scope["method"], target.decode("latin-1"), headers=headers,
                                                      content=body)
                try:
                    answer = await worker.client.send(request, stream=True)
                except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                    ERRORS.labels("worker_unreachable").inc()
                    self.workers.unreachable(worker, exc)
                    continue  # nothing reached that worker: another one may take it
                except httpx.TransportError:
                    ERRORS.labels("worker_lost").inc()
                    await _answer(send, 502, provider_error(path, "worker_lost", WORKER_LOST), state)
                    return
                try:
                    await self._relay(path, answer, send, state)
                finally:
                    await answer.aclose()
                return
            finally:
                worker.finished()

    async def _relay(self, path: str, answer: httpx.Response, send: Send, state: dict[str, bool]) -> None:
        headers = [(k.lower(), v) for k, v in answer.headers.raw if k.lower() not in HOP]
        await send({"type": "http.response.start", "status": answer.status_code, "headers": headers})
        try:
            async for chunk in answer.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.TransportError:
            ERRORS.labels("worker_lost").inc()
            if not answer.headers.get("content-type", "").startswith("text/event-stream"):
                log.warning("ctxopt serve: a worker exited half way through its answer to %s; the client's "
                            "connection is closed", path)
                return  # unfinished, so uvicorn closes the connection: the client cannot mistake it for whole
            state["done"] = True
            await send({"type": "http.response.body", "body": sse_error(path, "worker_lost", WORKER_LOST)})
            return
        state["done"] = True
        await send({"type": "http.response.body", "body": b""})


async def _answer(send: Send, status: int, error: dict[str, Any], state: dict[str, bool] | None = None) -> None:
    if state is not None:
        state["done"] = True
    body = json.dumps(error).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status in (502, 503):
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def run(*, host: str, port: int, workers: int, log_level: str, max_body_bytes: int, folder: Path) -> None:
    """Serve on ``host:port`` with ``workers`` worker processes behind the front, until SIGTERM or SIGINT:
    then stop accepting, let requests in flight finish (up to 10 s), and stop the workers.

    The workers' sockets go in ``folder``, which should be private (``tempfile.mkdtemp`` makes it
    mode 0700: only this user reaches the workers); the workers remove it, whole, when they stop
    (its creator removes it too, for a server that never started them)."""
    import uvicorn

    pool = Workers(workers, folder, log_level=log_level)
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        # A dead worker's live gauges (requests in flight) must not count on.
        pool.on_death = multiprocess.mark_process_dead
    # The workers' own Date and Server headers pass through unchanged.
    server = uvicorn.Server(uvicorn.Config(Front(pool, max_body_bytes=max_body_bytes), host=host, port=port,
                                           log_level=log_level, lifespan="on", timeout_graceful_shutdown=10,
                                           server_header=False, date_header=False))
    pool.stopping = lambda: server.should_exit
    server.run()
