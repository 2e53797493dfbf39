"""What the provider billed, read from a response's ``usage`` (no SDK import: attributes or keys).

- OpenAI chat completions: ``prompt_tokens`` and ``prompt_tokens_details.cached_tokens``;
- OpenAI Responses API: ``input_tokens`` and ``input_tokens_details.cached_tokens``;
- Anthropic Messages: ``input_tokens`` (after the last breakpoint), ``cache_read_input_tokens``
  and ``cache_creation_input_tokens`` (their sum is the prompt).

>>> from ctxopt.pricing import price_of
>>> usage = {"usage": {"input_tokens": 50, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 100}}
>>> billed(usage, price_of("claude-sonnet-4-5"))
Bill(prompt_tokens=2150, cached_tokens=2000, cache_write_tokens=100, cost=0.001125)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ctxopt.pricing import Price
from ctxopt.sessions.billing import PER, Bill


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def billed(response: Any, price: Price) -> Bill | None:
    """The prompt tokens the provider billed for ``response``, priced at ``price``; ``None`` when the
    response carries no usage (a stream, a raw HTTP response, an unknown shape)."""
    usage = _get(response, "usage")
    if usage is None:
        return None
    read, write = _get(usage, "cache_read_input_tokens"), _get(usage, "cache_creation_input_tokens")
    if read is not None or write is not None:  # Anthropic: input_tokens counts only the uncached rest
        fresh, read, write = _count(_get(usage, "input_tokens")), _count(read), _count(write)
        cost = (fresh * price.input + read * price.cache_read + write * price.cache_write) / PER
        return Bill(fresh + read + write, read, write, round(cost, 12))
    prompt, details = _get(usage, "prompt_tokens"), _get(usage, "prompt_tokens_details")
    if prompt is None:
        prompt, details = _get(usage, "input_tokens"), _get(usage, "input_tokens_details")
    if not isinstance(prompt, int) or isinstance(prompt, bool):
        return None
    cached, write = _count(_get(details, "cached_tokens")), _count(_get(details, "cache_write_tokens"))
    fresh = max(0, prompt - cached - write)
    cost = (fresh * price.input + cached * price.cache_read + write * price.cache_write) / PER
    return Bill(prompt, cached, write, round(cost, 12))
