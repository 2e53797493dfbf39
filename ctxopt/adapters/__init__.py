"""Message formats in and out: each adapter turns a request of its format into OpenAI chat messages
for the pipeline, and the fitted messages back into the request's own shape.

>>> from ctxopt.adapters import detect
>>> detect({"model": "claude-sonnet-4-5", "max_tokens": 512, "system": "Be brief.",
...         "messages": [{"role": "user", "content": "Hi"}]}).name
'anthropic'
>>> detect({"model": "gpt-5", "input": "Hi"}).name
'openai_responses'
"""

from __future__ import annotations

from typing import Any

from ctxopt.adapters.anthropic import Anthropic
from ctxopt.adapters.base import Adapter, Kept, Parsed, kept_messages
from ctxopt.adapters.langchain import LangChain
from ctxopt.adapters.llamaindex import LlamaIndex
from ctxopt.adapters.openai_chat import OpenAIChat
from ctxopt.adapters.openai_responses import OpenAIResponses
from ctxopt.errors import InputError

# In detection order: the specific shapes first, OpenAI chat (the most permissive) last.
FORMATS: dict[str, Adapter] = {a.name: a for a in (OpenAIResponses(), Anthropic(), LangChain(), LlamaIndex(), OpenAIChat())}
SHAPES = {
    "openai_chat": "{'messages': [...]} or a list of OpenAI messages",
    "openai_responses": "{'input': ...}",
    "anthropic": "{'messages': [...], 'system': ..., 'max_tokens': ...}",
    "langchain": "a list of langchain_core BaseMessage",
    "llamaindex": "a list of llama_index ChatMessage",
}


def get_format(name: str) -> Adapter:
    """The adapter registered as ``name``."""
    if name not in FORMATS:
        raise InputError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}")
    return FORMATS[name]


def detect(request: Any) -> Adapter:
    """The adapter for ``request``'s shape. A plain-text ``{'messages': [...]}`` request reads the
    same in OpenAI's and Anthropic's shape and is taken as OpenAI chat; pass ``format=`` to choose."""
    for adapter in FORMATS.values():
        if adapter.accepts(request):
            return adapter
    shapes = "; ".join(f"{name}: {SHAPES[name]}" for name in FORMATS)
    raise InputError(f"cannot tell the format of a {type(request).__name__} request; supported formats are {shapes}. "
                     "Pass format= to name one")


__all__ = ["FORMATS", "Adapter", "Kept", "Parsed", "detect", "get_format", "kept_messages"]
