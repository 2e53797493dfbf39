"""LangChain: a list of ``BaseMessage`` (``SystemMessage``, ``HumanMessage``, ``AIMessage`` with
``tool_calls``, ``ToolMessage``, ...), as given to ``chat_model.invoke(messages)``.

Seen as OpenAI chat through LangChain's own ``convert_to_openai_messages``. Back: unchanged
messages are the very objects given (ids, ``additional_kwargs``, ``response_metadata`` and content
blocks with ``cache_control`` included); a changed one is a copy of the original with the new text
(an ``AIMessage`` keeps only the tool calls still answered); retrieved chunks and summaries are
``SystemMessage``s where the pipeline placed them. ``langchain-core`` is imported only here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ctxopt.adapters.base import Kept, Parsed, one_to_one, text_of, tool_call_ids


def is_langchain_message(value: Any) -> bool:
    # By class names, so recognising a message never imports langchain.
    return any(c.__name__ == "BaseMessage" and c.__module__.startswith("langchain_core.") for c in type(value).__mro__)


class LangChain:
    name = "langchain"

    def accepts(self, request: Any) -> bool:
        return isinstance(request, Sequence) and bool(request) and all(is_langchain_message(m) for m in request)

    def parse(self, request: Any) -> Parsed:
        from langchain_core.messages import convert_to_openai_messages

        sent = [dict(convert_to_openai_messages(m)) for m in request]
        return Parsed(messages=sent, origins=tuple(range(len(sent))))

    def build(self, request: Any, parsed: Parsed, kept: Sequence[Kept]) -> Any:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

        def changed(original: Any, k: Kept) -> Any:
            update: dict[str, Any] = {"content": text_of(k.message.get("content"))}
            if isinstance(original, AIMessage):
                calls = tool_call_ids(k.message)
                update["tool_calls"] = [c for c in original.tool_calls if str(c.get("id")) in calls]
            return original.model_copy(update=update)

        def added(k: Kept) -> Any:
            text, role = text_of(k.message.get("content")), k.message.get("role")
            if role == "tool":
                return ToolMessage(content=text, tool_call_id=str(k.message.get("tool_call_id")))
            return {"assistant": AIMessage, "user": HumanMessage}.get(str(role), SystemMessage)(content=text)

        return one_to_one(request, kept, changed, added)
