"""``ctxopt.optimize_request``: fit a whole request, in the shape it came in.

>>> import ctxopt
>>> request = {"model": "claude-sonnet-4-5", "max_tokens": 256, "system": "Be brief.",
...            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi!"}]}]}
>>> fitted, report = ctxopt.optimize_request(request, tier="free")
>>> fitted == request
True
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from typing import Any

from ctxopt.adapters import detect, get_format, kept_messages
from ctxopt.errors import ConfigError
from ctxopt.pipeline import Pipeline, Result
from ctxopt.report import Report
from ctxopt.sessions.state import SessionStore
from ctxopt.tiers import Tier


@dataclasses.dataclass(frozen=True)
class RequestResult:
    """The fitted request (same shape as given), the report, the format it was read as, and the
    pipeline's result. Unpacks as ``request, report``."""

    request: Any
    report: Report
    format: str
    result: Result

    def __iter__(self) -> Iterator[Any]:
        return iter((self.request, self.report))


def optimize_request(
    request: Any,
    *,
    format: str | None = None,
    tier: Tier | str = "pro",
    pipeline: Pipeline | None = None,
    tiers: Mapping[str, Tier] | str | os.PathLike[str] | None = None,
    filters: Mapping[str, Any] | None = None,
    query: str | None = None,
    session: str | None = None,
    session_store: SessionStore | None = None,
) -> RequestResult:
    """Fit ``request`` to ``tier`` and return it in its own format.

    ``request`` is a call's keyword arguments (OpenAI chat ``{'messages': ...}``, OpenAI Responses
    ``{'input': ...}``, Anthropic ``{'system': ..., 'messages': ...}``) or a LangChain / LlamaIndex
    message list; ``format`` names one of ``ctxopt.adapters.FORMATS`` instead of detecting it. The
    request's model picks the tokenizer and price, and its tools, response format and output limit
    (``max_tokens``, ``max_completion_tokens``, ``max_output_tokens``) are counted. Pure (no I/O
    beyond what the pipeline's own stages do); the request given is never modified. ``session``
    names the conversation for the cache-stable layout and bill (see :meth:`Pipeline.run`).
    """
    if pipeline is not None and not isinstance(pipeline, Pipeline):
        raise ConfigError(f"pipeline must be a ctxopt.Pipeline (e.g. Pipeline.from_config(...)), got {pipeline!r}")
    adapter = get_format(format) if format is not None else detect(request)
    parsed = adapter.parse(request)
    result = (pipeline or Pipeline()).optimize(
        parsed.messages, tier, query, tiers=tiers, filters=filters, model=parsed.model, tools=parsed.tools,
        response_format=parsed.response_format, max_output_tokens=parsed.max_output_tokens, session=session,
        session_store=session_store, opens_on_user=parsed.opens_on_user)
    kept = kept_messages(parsed, result.context.items, result.messages)
    return RequestResult(request=adapter.build(request, parsed, kept), report=result.report, format=adapter.name,
                         result=result)
