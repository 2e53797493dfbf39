"""LlamaIndex: a list of ``ChatMessage``, as given to ``llm.chat(messages)``.

Seen as OpenAI chat: text blocks are text parts, ``ImageBlock``s are ``image_url`` parts,
``DocumentBlock``s are ``file`` parts; tool calls are ``ToolCallBlock``s or OpenAI-style
``additional_kwargs["tool_calls"]``; a ``tool`` message names its call in
``additional_kwargs["tool_call_id"]``. Back: unchanged messages are the very objects given; a
changed one is a copy with its text blocks replaced by the new text (other blocks and
``additional_kwargs`` kept); retrieved chunks and summaries are system ``ChatMessage``s where the
pipeline placed them. ``llama-index-core`` is imported only here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ctxopt.adapters.base import Kept, Parsed, as_json, one_to_one, plain, text_of, tool_call_ids

ROLES = {"system": "system", "developer": "developer", "user": "user", "assistant": "assistant", "tool": "tool",
         "function": "tool", "chatbot": "assistant", "model": "assistant"}


def is_llamaindex_message(value: Any) -> bool:
    return type(value).__name__ == "ChatMessage" and type(value).__module__.startswith("llama_index.core.")


class LlamaIndex:
    name = "llamaindex"

    def accepts(self, request: Any) -> bool:
        return isinstance(request, Sequence) and bool(request) and all(is_llamaindex_message(m) for m in request)

    def parse(self, request: Any) -> Parsed:
        return Parsed(messages=[_message(m) for m in request], origins=tuple(range(len(request))))

    def build(self, request: Any, parsed: Parsed, kept: Sequence[Kept]) -> Any:
        from llama_index.core.llms import ChatMessage, TextBlock

        def changed(original: Any, k: Kept) -> Any:
            calls = tool_call_ids(k.message)
            blocks = [b for b in original.blocks
                      if _type(b) not in ("text", "tool_call") or (_type(b) == "tool_call" and str(b.tool_call_id) in calls)]
            extra = dict(original.additional_kwargs)
            if "tool_calls" in extra:
                extra["tool_calls"] = [c for c in extra["tool_calls"] if str(plain(c).get("id")) in calls]
            text = TextBlock(text=text_of(k.message.get("content")))
            return original.model_copy(update={"blocks": [text, *blocks], "additional_kwargs": extra})

        def added(k: Kept) -> Any:
            role = k.message.get("role", "system")
            extra = {"tool_call_id": k.message["tool_call_id"]} if role == "tool" else {}
            return ChatMessage(role=role, content=text_of(k.message.get("content")), additional_kwargs=extra)

        return one_to_one(request, kept, changed, added)


def _type(block: Any) -> str:
    return str(getattr(block, "block_type", ""))


def _message(message: Any) -> dict[str, Any]:
    role = ROLES.get(str(getattr(message.role, "value", message.role)), "user")
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in message.blocks:
        kind = _type(block)
        if kind == "text":
            parts.append({"type": "text", "text": block.text})
        elif kind == "image":
            url = str(block.url) if block.url else f"data:{block.image_mimetype or 'image/png'};base64,"
            parts.append({"type": "image_url", "image_url": {"url": url, **({"detail": block.detail} if block.detail else {})}})
        elif kind == "document":
            parts.append({"type": "file", "file": {"filename": block.title or "document"}})
        elif kind == "tool_call":
            arguments = block.tool_kwargs if isinstance(block.tool_kwargs, str) else as_json(block.tool_kwargs)
            calls.append({"id": str(block.tool_call_id), "type": "function",
                          "function": {"name": block.tool_name, "arguments": arguments}})
        elif kind == "thinking":
            parts.append({"type": "text", "text": block.content or ""})
        else:
            parts.append({"type": "text", "text": as_json(plain(block))})
    extra = message.additional_kwargs or {}
    for call in extra.get("tool_calls") or ():
        call = plain(call)
        calls.append({"id": str(call.get("id")), "type": "function", "function": plain(call.get("function", {}))})
    out: dict[str, Any] = {"role": role}
    only_text = all(p["type"] == "text" for p in parts)
    out["content"] = "\n".join(p["text"] for p in parts) if only_text else parts
    if calls:
        out["tool_calls"] = calls
    if role == "tool":
        out["tool_call_id"] = str(extra.get("tool_call_id", ""))
    if isinstance(extra.get("name"), str):
        out["name"] = extra["name"]
    return out
