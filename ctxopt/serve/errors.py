"""Error answers in the shape OpenAI's and Anthropic's SDKs read: ``{"error": {"type", "message"}}``, and
(:func:`provider_error`) each in its own provider's shape, as the front answers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse


def error_response(status: int, kind: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, "code": kind}}, status_code=status,
                        headers=dict(headers or {}))


def provider_error(path: str, kind: str, message: str) -> dict[str, Any]:
    """An error body in the shape of the provider whose route ``path`` is.

    >>> provider_error("/v1/messages", "worker_lost", "gone")
    {'type': 'error', 'error': {'type': 'worker_lost', 'message': 'gone'}}
    >>> provider_error("/v1/chat/completions", "worker_lost", "gone")["error"]["type"]
    'worker_lost'
    """
    if path.rstrip("/").endswith("/messages"):
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"type": kind, "message": message, "code": kind}}


def sse_error(path: str, kind: str, message: str) -> bytes:
    """The SSE event that ends a broken stream; a blank line first ends any event cut in half.

    >>> sse_error("/v1/messages", "worker_lost", "gone").splitlines()[2]
    b'event: error'
    """
    data = json.dumps(provider_error(path, kind, message))
    if path.rstrip("/").endswith("/messages"):
        return f"\n\nevent: error\ndata: {data}\n\n".encode()
    return f"\n\ndata: {data}\n\n".encode()
