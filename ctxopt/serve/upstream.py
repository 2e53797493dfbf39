"""Forwarding a request to the provider and passing its answer back byte for byte, SSE included."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from ctxopt.serve.breaker import Breaker
from ctxopt.serve.config import Upstream
from ctxopt.serve.errors import error_response
from ctxopt.serve.metrics import ERRORS, STAGE_SECONDS

PATHS = {"openai": "/chat/completions", "anthropic": "/messages"}
# Hop-by-hop headers describe one connection, not the answer; the server sets its own date.
DROP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authenticate", "date", "server"}
# Client headers that change what the provider does and carry no credentials.
PASS_ON = ("accept", "anthropic-version", "anthropic-beta", "openai-organization", "openai-project", "idempotency-key")


def upstream_headers(upstream: Upstream, client_headers: Mapping[str, str]) -> dict[str, str]:
    headers = {k: client_headers[k] for k in PASS_ON if k in client_headers}
    headers["content-type"] = "application/json"
    key = upstream.api_key()
    if upstream.name == "anthropic":
        headers.setdefault("anthropic-version", "2023-06-01")
        if key:
            headers["x-api-key"] = key
    elif key:
        headers["authorization"] = f"Bearer {key}"
    return headers


async def forward(client: httpx.AsyncClient, upstream: Upstream, breaker: Breaker, body: Mapping[str, Any],
                  client_headers: Mapping[str, str], extra_headers: Mapping[str, str]) -> Response:
    """POST ``body`` to the provider; stream its answer back unchanged with ``extra_headers`` added.
    A provider that cannot be reached gets 502, one that does not answer in time 504, and one whose
    circuit is open (see :mod:`ctxopt.serve.breaker`) 503 at once."""
    if not breaker.allow():
        ERRORS.labels("upstream_circuit_open").inc()
        return error_response(503, "upstream_unavailable", f"{upstream.name} failed {upstream.breaker_failures} times "
                              "in a row; requests pause until it is tried again",
                              {**extra_headers, "retry-after": str(breaker.retry_after)})
    request = client.build_request("POST", upstream.base_url + PATHS[upstream.name],
                                   content=json.dumps(body).encode("utf-8"),
                                   headers=upstream_headers(upstream, client_headers),
                                   timeout=httpx.Timeout(upstream.timeout, connect=min(5.0, upstream.timeout)))
    started = time.perf_counter()
    try:
        answer = await client.send(request, stream=True)
    except httpx.TimeoutException as exc:
        breaker.failed()
        ERRORS.labels("upstream_timeout").inc()
        return error_response(504, "upstream_timeout", f"{upstream.name} did not answer within {upstream.timeout:g} s "
                              f"({type(exc).__name__})", extra_headers)
    except httpx.HTTPError as exc:
        breaker.failed()
        ERRORS.labels("upstream_connect").inc()
        return error_response(502, "upstream_unreachable", f"cannot reach {upstream.name} at {upstream.base_url}: "
                              f"{type(exc).__name__}: {exc}", extra_headers)
    STAGE_SECONDS.labels("upstream").observe(time.perf_counter() - started)
    if answer.status_code >= 500:
        breaker.failed()
    else:
        breaker.succeeded()
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in DROP}
    headers.update(extra_headers)
    return StreamingResponse(_relay(answer), status_code=answer.status_code, headers=headers,
                             background=BackgroundTask(answer.aclose))


async def _relay(answer: httpx.Response) -> AsyncIterator[bytes]:
    # The raw bytes, as the provider sent them (still compressed if it compressed): nothing re-encoded.
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    except httpx.HTTPError:
        # Headers are gone already: all that can be done is end the body early and count it.
        ERRORS.labels("upstream_broken_stream").inc()
