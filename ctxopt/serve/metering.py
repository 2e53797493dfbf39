"""What the provider billed, read from its answer on the way back to the client.

A JSON answer (not compressed, at most 4 MiB) is copied as it streams through; once its last byte
has been relayed, and before the response ends, its ``usage`` is priced at the request's model
(:func:`ctxopt.integrations.usage.billed`) and handed to ``on_bill``. Streamed (SSE) answers and
compressed ones are passed through unread: their requests have no billed figures.
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
    """``response`` with its body read for the provider's usage when it is plain JSON."""
    content_type = response.headers.get("content-type", "")
    if not content_type.startswith("application/json") or response.headers.get("content-encoding", "identity") != "identity":
        return response
    response.body_iterator = _tee(response.body_iterator, price, on_bill)
    return response


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
        try:
            await on_bill(bill)
        except Exception:  # the answer is relayed already; a bookkeeping fault must not break it
            log.exception("ctxopt serve: could not record the provider's bill")
