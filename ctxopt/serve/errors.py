"""Error answers in the shape OpenAI's and Anthropic's SDKs read: ``{"error": {"type", "message"}}``."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse


def error_response(status: int, kind: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, "code": kind}}, status_code=status,
                        headers=dict(headers or {}))
