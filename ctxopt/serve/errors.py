"""Error answers, each in the shape of the provider whose route was called (:func:`provider_error`):
Anthropic's ``{"type": "error", "error": {"type", "message"}}`` on ``/v1/messages``, OpenAI's
``{"error": {"type", "message", "code"}}`` elsewhere. Both SDKs read ``error.type`` and ``error.message``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse


class ErrorAnswer(JSONResponse):
    """An error answer in OpenAI's shape that knows its parts, so it can take the route's shape
    (:meth:`for_route`) where the route is known: the steps that refuse a request do not need it."""

    def __init__(self, status: int, kind: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(provider_error("", kind, message), status_code=status, headers=dict(headers or {}))
        self.kind, self.message, self.extra = kind, message, dict(headers or {})

    def for_route(self, path: str) -> JSONResponse:
        """This answer in the shape of ``path``'s provider, with the same status and headers.

        >>> answer = ErrorAnswer(401, "invalid_api_key", "no key").for_route("/v1/messages")
        >>> answer.status_code, json.loads(answer.body)
        (401, {'type': 'error', 'error': {'type': 'invalid_api_key', 'message': 'no key'}})
        >>> ErrorAnswer(503, "overloaded", "busy", {"retry-after": "1"}).for_route("/v1/messages").headers["retry-after"]
        '1'
        """
        return JSONResponse(provider_error(path, self.kind, self.message), status_code=self.status_code,
                            headers=self.extra)


def error_response(status: int, kind: str, message: str, headers: Mapping[str, str] | None = None) -> ErrorAnswer:
    return ErrorAnswer(status, kind, message, headers)


def provider_error(path: str, kind: str, message: str) -> dict[str, Any]:
    """An error body in the shape of the provider whose route ``path`` is.

    >>> provider_error("/v1/messages", "worker_lost", "gone")
    {'type': 'error', 'error': {'type': 'worker_lost', 'message': 'gone'}}
    >>> provider_error("/v1/chat/completions", "worker_lost", "gone")["error"]["type"]
    'worker_lost'
    """
    if _anthropic(path):
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"type": kind, "message": message, "code": kind}}


def sse_error(path: str, kind: str, message: str) -> bytes:
    """The SSE event that ends a broken stream; a blank line first ends any event cut in half.

    >>> sse_error("/v1/messages", "worker_lost", "gone").splitlines()[2]
    b'event: error'
    """
    data = json.dumps(provider_error(path, kind, message))
    if _anthropic(path):
        return f"\n\nevent: error\ndata: {data}\n\n".encode()
    return f"\n\ndata: {data}\n\n".encode()


def _anthropic(path: str) -> bool:
    return path.rstrip("/").endswith("/messages")
