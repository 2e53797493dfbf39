"""What the provider billed, read from its answer on the way back to the client.

A JSON answer (not compressed, at most 4 MiB) is copied as it streams through; once its last byte
has been relayed, and before the response ends, its ``usage`` is priced at the request's model
(:func:`ctxopt.integrations.usage.billed`) and handed to ``on_bill``. A streamed (SSE) answer is
read event by event as it passes, holding only the current line: the prompt's usage is in
Anthropic's ``message_start``, the Responses API's ``response.completed``, and OpenAI chat's last
chunk when the client asked for it (``stream_options: {"include_usage": true}``; the proxy never
adds it, since it changes the stream the client reads). Compressed answers pass through unread.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

from starlette.responses import StreamingResponse

from ctxopt.integrations.usage import billed
from ctxopt.pricing import Price
from ctxopt.sessions.billing import Bill

MAX_BYTES = 4 * 2**20

log = logging.getLogger("ctxopt.serve")


def metered(response: StreamingResponse, price: Price, on_bill: Callable[[Bill], Awaitable[object]]) -> StreamingResponse:
    """``response`` with its body read for the provider's usage when it is plain JSON or SSE."""
    content_type = response.headers.get("content-type", "")
    if response.headers.get("content-encoding", "identity") != "identity":
        return response
    if content_type.startswith("application/json"):
        response.body_iterator = _tee(response.body_iterator, price, on_bill)
    elif content_type.startswith("text/event-stream"):
        response.body_iterator = _tee_events(response.body_iterator, price, on_bill)
    return response


async def _tee_events(body: AsyncIterable[str | bytes | memoryview], price: Price,
                      on_bill: Callable[[Bill], Awaitable[object]]) -> AsyncIterator[str | bytes | memoryview]:
    line = bytearray()
    bill: Bill | None = None
    async for chunk in body:
        yield chunk
        data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
        if b"\n" not in data:  # a long line arriving in pieces is copied once, not once per piece
            line += data if len(line) <= MAX_BYTES else b""
            continue
        *complete, rest = (bytes(line) + data).split(b"\n")
        line = bytearray(rest if len(rest) <= MAX_BYTES else b"")  # an over-long line carries no usage
        for text in complete:
            bill = _event_bill(text, price) or bill
    bill = _event_bill(bytes(line), price) or bill
    if bill is not None:
        await _record(on_bill, bill)


def _event_bill(line: bytes, price: Price) -> Bill | None:
    """The bill in one SSE ``data:`` line, if it carries the prompt's usage."""
    if not line.startswith(b"data:") or b'"usage"' not in line:  # token deltas: no JSON parse
        return None
    try:
        event = json.loads(line[5:])
    except (json.JSONDecodeError, UnicodeDecodeError):  # [DONE], or not JSON
        return None
    if not isinstance(event, dict):
        return None
    for holder in (event, event.get("message"), event.get("response")):  # chat chunk, Anthropic, Responses
        if isinstance(holder, dict) and holder.get("usage"):
            found = billed(holder, price)
            if found is not None:
                return found
    return None


async def _record(on_bill: Callable[[Bill], Awaitable[object]], bill: Bill) -> None:
    try:
        await on_bill(bill)
    except Exception:  # the answer is relayed already; a bookkeeping fault must not break it
        log.exception("ctxopt serve: could not record the provider's bill")


async def _tee(body: AsyncIterable[str | bytes | memoryview], price: Price,
               on_bill: Callable[[Bill], Awaitable[object]]) -> AsyncIterator[str | bytes | memoryview]:
    copy = bytearray()
    async for chunk in body:
        if len(copy) <= MAX_BYTES:
            copy += chunk.encode() if isinstance(chunk, str) else chunk
        yield chunk
    if len(copy) > MAX_BYTES:
        return
    try:
        bill = billed(json.loads(bytes(copy)), price)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return
    if bill is not None:
        await _record(on_bill, bill)
