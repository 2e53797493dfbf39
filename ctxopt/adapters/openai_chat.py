"""OpenAI Chat Completions: ``create(messages=[...], tools=..., ...)`` keyword arguments (the body
of ``/v1/chat/completions``), or a bare list of messages. Messages may be dicts or the SDK's message
objects (``messages.append(response.choices[0].message)``); the ones that come back unchanged are
returned as the very objects given, content parts and ``cache_control`` included. LiteLLM's
``completion`` takes the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctxopt.adapters.base import Kept, Parsed, one_to_one, plain
from ctxopt.errors import InputError


class OpenAIChat:
    name = "openai_chat"

    def accepts(self, request: Any) -> bool:
        if isinstance(request, Mapping):
            return "messages" in request
        return isinstance(request, Sequence) and not isinstance(request, (str, bytes)) and all(
            isinstance(m, Mapping) or callable(getattr(m, "model_dump", None)) for m in request)

    def parse(self, request: Any) -> Parsed:
        if isinstance(request, Mapping):
            messages, options = request.get("messages"), request
        else:
            messages, options = request, {}
        if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
            raise InputError(f"messages must be a list of {{'role': ..., 'content': ...}} messages, "
                             f"got {type(messages).__name__}")
        sent = [plain(m) for m in messages]
        return Parsed(messages=sent, origins=tuple(range(len(sent))), model=_str(options.get("model")),
                      tools=_tools(options), response_format=options.get("response_format"),
                      max_output_tokens=options.get("max_completion_tokens") or options.get("max_tokens"))

    def build(self, request: Any, parsed: Parsed, kept: Sequence[Kept]) -> Any:
        originals = request["messages"] if isinstance(request, Mapping) else request
        messages = one_to_one(originals, kept, lambda _, k: k.message, lambda k: k.message)
        return {**request, "messages": messages} if isinstance(request, Mapping) else messages


def _tools(options: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """``tools``, plus the legacy ``functions`` as tools, so both are counted."""
    tools = [plain(t) for t in options.get("tools") or ()]
    tools += [{"type": "function", "function": plain(f)} for f in options.get("functions") or ()]
    return tools or None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
