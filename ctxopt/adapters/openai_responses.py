"""OpenAI Responses API: ``responses.create(input=..., instructions=..., tools=..., ...)`` keyword
arguments, the default of the OpenAI Agents SDK. ``input`` is a string or a list of items (dicts or
the SDK's output objects, as in ``input += response.output``).

Seen as OpenAI chat: ``instructions`` is the system message; a message item is a message of its
role (``input_text``/``output_text`` parts as text, ``input_image`` as ``image_url``,
``input_file`` as ``file``); consecutive tool calls (``function_call``, ``custom_tool_call``,
``computer_call``, ... any item with a ``call_id``) are one assistant message with ``tool_calls``;
their ``*_output`` items are tool messages. A ``reasoning`` item travels with the item after it (the
API wants them together). Other items (``web_search_call``, ``item_reference``, ...) are counted as
their JSON and kept or dropped whole.

Back: unchanged items are the very objects given; a cut tool output is the same output item with
the cut text; retrieved chunks and summaries are ``system`` messages where the pipeline placed them
(the Responses API takes system and developer messages anywhere in ``input``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctxopt.adapters.base import Kept, Parsed, as_json, plain, text_of, tool_call_ids, with_text
from ctxopt.errors import InputError

INSTRUCTIONS = -1  # the origin of the system message made from instructions=
TEXT_PARTS = frozenset({"input_text", "output_text", "text", "refusal"})


class OpenAIResponses:
    name = "openai_responses"

    def accepts(self, request: Any) -> bool:
        return isinstance(request, Mapping) and "input" in request and "messages" not in request

    def parse(self, request: Any) -> Parsed:
        sent: list[dict[str, Any]] = []
        origins: list[tuple[int, ...]] = []
        if isinstance(request.get("instructions"), str):
            sent.append({"role": "system", "content": request["instructions"]})
            origins.append((INSTRUCTIONS,))
        items = request.get("input")
        if isinstance(items, str):
            sent.append({"role": "user", "content": items})
            origins.append((0,))
        elif isinstance(items, Sequence) and not isinstance(items, bytes):
            _parse_items([plain(i) for i in items], sent, origins)
        else:
            raise InputError(f"input must be a string or a list of input items, got {type(items).__name__}; "
                             "ctxopt can only fit what the request sends (not a conversation stored server-side)")
        text = request.get("text")
        fmt = text.get("format") if isinstance(text, Mapping) else None
        response_format = None
        if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
            response_format = {"type": "json_schema", "json_schema": {k: v for k, v in fmt.items() if k != "type"}}
        return Parsed(messages=sent, origins=tuple(origins), model=request.get("model"),
                      tools=[_tool(plain(t)) for t in request.get("tools") or ()] or None,
                      response_format=response_format, max_output_tokens=request.get("max_output_tokens"))

    def build(self, request: Any, parsed: Parsed, kept: Sequence[Kept]) -> Any:
        out = dict(request)
        items = request["input"]
        if isinstance(items, str):
            user = [k for k in kept if k.index is not None and parsed.origins[k.index] == (0,)]
            added = [_added(k) for k in kept if k.index is None]
            if not added and user and not user[0].changed:
                out["input"] = items
            else:
                out["input"] = [_added(k) if k.index is None else {"role": "user", "content": text_of(k.message.get("content"))}
                                for k in kept if k.index is None or parsed.origins[k.index] == (0,)]
        else:
            new: list[Any] = []
            for k in kept:
                if k.index is None:
                    new.append(_added(k))
                elif parsed.origins[k.index][0] != INSTRUCTIONS:
                    new.extend(_rebuilt(items, parsed.origins[k.index], k))
            out["input"] = new
        instructions = [k for k in kept if k.index is not None and parsed.origins[k.index] == (INSTRUCTIONS,)]
        if instructions and instructions[0].changed:
            out["instructions"] = text_of(instructions[0].message.get("content"))
        return out


def _kind(item: Mapping[str, Any]) -> str:
    kind = item.get("type")
    if kind is None and "role" in item:
        return "message"
    if not isinstance(kind, str):
        raise InputError(f"input item {item!r} has no 'type' and no 'role'")
    return kind


def _parse_items(items: list[dict[str, Any]], sent: list[dict[str, Any]], origins: list[tuple[int, ...]]) -> None:
    pending: list[int] = []  # reasoning items waiting for the item they belong to
    calls: list[int] = []  # consecutive tool-call items, sent as one assistant message

    def flush_calls() -> None:
        if calls:
            reasoning = [i for i in pending if i < calls[0]]
            sent.append({"role": "assistant", "content": "\n".join(_reasoning_text(items[i]) for i in reasoning),
                         "tool_calls": [_call(items[i]) for i in calls]})
            origins.append(tuple(reasoning + calls))
            pending[:] = [i for i in pending if i > calls[0]]
            calls.clear()

    for j, item in enumerate(items):
        kind = _kind(item)
        if kind == "reasoning":
            if calls:
                flush_calls()
            pending.append(j)
            continue
        if "call_id" in item and not kind.endswith("_output"):
            calls.append(j)
            continue
        flush_calls()
        if kind == "message":
            sent.append(_message(item, j, [items[i] for i in pending]))
        elif kind.endswith("_output") and "call_id" in item:
            sent.append({"role": "tool", "tool_call_id": str(item["call_id"]), "content": _output_text(item.get("output"))})
        else:
            sent.append({"role": "assistant", "content": as_json(item)})
        origins.append((*pending, j))
        pending.clear()
    flush_calls()
    if pending:  # reasoning with nothing after it: counted as its own piece
        sent.append({"role": "assistant", "content": "\n".join(_reasoning_text(items[i]) for i in pending)})
        origins.append(tuple(pending))


def _message(item: Mapping[str, Any], j: int, reasoning: list[dict[str, Any]]) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise InputError(f"input item {j} has role {role!r}; choose from user, assistant, system, developer")
    content = item.get("content")
    if isinstance(content, str):
        parts: Any = content
    elif isinstance(content, Sequence):
        parts = [_part(plain(p)) for p in content]
    else:
        raise InputError(f"input item {j} content must be a string or a list of parts, got {type(content).__name__}")
    if reasoning:
        parts = "\n".join([*map(_reasoning_text, reasoning), text_of(parts)])
    return {"role": role, "content": parts}


def _part(part: Mapping[str, Any]) -> dict[str, Any]:
    kind = part.get("type")
    if kind in TEXT_PARTS:
        return {"type": "text", "text": str(part.get("text", part.get("refusal", "")))}
    if kind == "input_image":
        image = {"url": str(part.get("image_url") or part.get("file_id") or "")}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        file = {k: part[k] for k in ("file_data", "file_id", "filename") if k in part}
        return {"type": "file", "file": file}
    return {"type": "text", "text": as_json(part)}


def _call(item: Mapping[str, Any]) -> dict[str, Any]:
    if item.get("type") == "function_call":
        name, arguments = str(item.get("name")), str(item.get("arguments", ""))
    else:
        name = str(item.get("name") or item.get("type"))
        arguments = str(item["input"]) if isinstance(item.get("input"), str) else as_json(
            {k: v for k, v in item.items() if k not in ("type", "call_id", "id", "status", "name")})
    return {"id": str(item["call_id"]), "type": "function", "function": {"name": name, "arguments": arguments}}


def _output_text(output: Any) -> Any:
    """A tool output: its string, or its parts as chat parts (an image counts as an image)."""
    if isinstance(output, str):
        return output
    if isinstance(output, Sequence):
        return [_part(plain(p)) for p in output]
    return as_json(output)


def _reasoning_text(item: Mapping[str, Any]) -> str:
    summary = [str(s.get("text", "")) for s in item.get("summary") or () if isinstance(s, Mapping)]
    return "\n".join(summary) or str(item.get("encrypted_content", ""))


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    if tool.get("type") == "function":
        function = {k: tool[k] for k in ("name", "description", "parameters") if k in tool}
        return {"type": "function", "function": function}
    # Built-in tools (web_search, file_search, computer_use, mcp, ...): counted by their JSON.
    return {"type": "function", "function": {"name": str(tool.get("type", "tool")), "description": as_json(tool)}}


def _added(k: Kept) -> dict[str, Any]:
    text = text_of(k.message.get("content"))
    if k.message.get("role") == "tool":
        return {"type": "function_call_output", "call_id": str(k.message.get("tool_call_id")), "output": text}
    return {"role": k.message.get("role", "system"), "content": text}


def _rebuilt(items: Sequence[Any], origin: tuple[int, ...], k: Kept) -> list[Any]:
    if not k.changed:
        return [items[j] for j in origin]
    originals = [(j, plain(items[j])) for j in origin]
    text = text_of(k.message.get("content"))
    if k.message.get("role") == "tool":
        output = originals[-1][1].get("output")
        if isinstance(output, Sequence) and not isinstance(output, str) and output:
            return [{**originals[-1][1], "output": with_text(output, text, "input_text")}]
        return [{**originals[-1][1], "output": text}]
    if k.message.get("tool_calls") is not None or any("call_id" in item for _, item in originals):
        # Only the answered calls stay (the pipeline removes unanswered ones), with their reasoning:
        # a reasoning item without the call it led to is rejected, so it goes with the last call.
        calls = tool_call_ids(k.message)
        if not calls:
            return []
        return [items[j] for j, item in originals if _kind(item) == "reasoning" or str(item.get("call_id")) in calls]
    j, item = originals[-1]
    reasoning = [items[i] for i, _ in originals[:-1]]
    if _kind(item) == "message":
        return [*reasoning, {"role": item["role"], "content": text}]
    return [*reasoning, items[j]]  # an opaque item has no text a stage could change
