"""Anthropic Messages: ``messages.create(system=..., messages=[...], tools=..., max_tokens=...)``
keyword arguments (the body of ``/v1/messages``).

Seen as OpenAI chat: ``system`` (a string, or one system message per text block) comes first; an
assistant message becomes one assistant message (its text and thinking as content, its
``tool_use`` blocks as ``tool_calls``); a user message becomes one ``tool`` message per
``tool_result`` block, then one user message with its other blocks as parts (images as
``image_url``, documents as ``file``).

Back: a message whose pieces all came back unchanged is the very object given (blocks may be SDK
objects such as ``response.content``); otherwise it is rebuilt block by block, unchanged blocks
verbatim (``cache_control`` included) and a cut tool result as the same ``tool_result`` block
with the cut text. Retrieved chunks and summaries become text blocks of a user turn where the
pipeline placed them, not part of ``system``: the Messages API has no system role inside
``messages``, and changing ``system`` per request would invalidate every cached prefix after it.
Adjacent turns of one role are merged into one message (``tool_result`` blocks first, as the API
requires), so the result alternates user/assistant and every ``tool_use`` is answered at the
start of the next user message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ctxopt.adapters.base import Kept, Parsed, as_json, plain, text_of, tool_call_ids, with_text
from ctxopt.errors import InputError

SYSTEM = -1  # the origin index of the system prompt's pieces
# Block types only Anthropic's Messages API has; one of them in a request marks it as Anthropic's.
ANTHROPIC_BLOCKS = frozenset({"tool_use", "tool_result", "thinking", "redacted_thinking", "document", "search_result",
                              "server_tool_use", "web_search_tool_result"})
ANTHROPIC_OPTIONS = frozenset({"system", "stop_sequences", "top_k", "thinking"})


class Anthropic:
    name = "anthropic"

    def accepts(self, request: Any) -> bool:
        if not isinstance(request, Mapping) or "messages" not in request:
            return False
        if ANTHROPIC_OPTIONS & request.keys():
            return True
        messages = request["messages"]
        return isinstance(messages, Sequence) and any(_is_anthropic_message(m) for m in messages)

    def parse(self, request: Any) -> Parsed:
        messages = request.get("messages")
        if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
            raise InputError(f"messages must be a list of {{'role': 'user'|'assistant', 'content': ...}} dicts, "
                             f"got {type(messages).__name__}")
        sent: list[dict[str, Any]] = []
        origins: list[tuple[int, tuple[int, ...]]] = []
        system = request.get("system")
        if isinstance(system, str):
            sent.append({"role": "system", "content": system})
            origins.append((SYSTEM, ()))
        elif system is not None:
            for j, block in enumerate(_blocks(system, "system")):
                sent.append({"role": "system", "content": _block_text(block)})
                origins.append((SYSTEM, (j,)))
        for i, message in enumerate(messages):
            role, content = _role_content(message, i)
            if isinstance(content, str):
                sent.append({"role": role, "content": content})
                origins.append((i, ()))
                continue
            blocks = _blocks(content, f"message {i}")
            if role == "assistant":
                sent.append(_assistant(blocks))
                origins.append((i, tuple(range(len(blocks)))))
                continue
            parts, part_blocks = [], []
            for j, block in enumerate(blocks):
                if block.get("type") == "tool_result":
                    sent.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id")),
                                 "content": _result_content(block)})
                    origins.append((i, (j,)))
                else:
                    parts.append(_part(block))
                    part_blocks.append(j)
            if parts or (not part_blocks and not any(b.get("type") == "tool_result" for b in blocks)):
                sent.append({"role": "user", "content": parts})
                origins.append((i, tuple(part_blocks)))
        tools = [_tool(plain(t)) for t in request.get("tools") or ()]
        output = request.get("output_format")
        return Parsed(messages=sent, origins=tuple(origins), model=request.get("model"), tools=tools or None,
                      response_format=({"type": "json_schema", "json_schema": {"name": "output", "schema": output.get("schema")}}
                                       if isinstance(output, Mapping) else None),
                      max_output_tokens=request.get("max_tokens"),
                      # a conversation the caller opened on the assistant is left so; any other keeps opening on the user
                      opens_on_user=not messages or _role_content(messages[0], 0)[0] == "user")

    def build(self, request: Any, parsed: Parsed, kept: Sequence[Kept]) -> Any:
        out = dict(request)
        system_pieces = [k for k in kept if k.index is not None and parsed.origins[k.index][0] == SYSTEM]
        if "system" in request:
            out["system"] = _system(request["system"], parsed, system_pieces)
        turns: list[tuple[str, int | None, list[Any]]] = []  # (role, source message or None, blocks)
        for k in kept:
            if k.index is not None and parsed.origins[k.index][0] == SYSTEM:
                continue
            if k.index is None:
                role, blocks = _added(k)
                turns.append((role, None, blocks))
                continue
            source, block_ids = parsed.origins[k.index]
            role, content = _role_content(request["messages"][source], source)
            blocks = _rebuilt(content, block_ids, k)
            if turns and turns[-1][1] == source:
                turns[-1][2].extend(blocks)
            else:
                turns.append(("user" if role == "user" else "assistant", source, blocks))
        out["messages"] = _merged(turns, request["messages"])
        return _with_breakpoints(out, kept, parsed)


def _is_anthropic_message(message: Any) -> bool:
    content = message.get("content") if isinstance(message, Mapping) else getattr(message, "content", None)
    if not isinstance(content, list):
        return False
    for block in content:
        kind = block.get("type") if isinstance(block, Mapping) else getattr(block, "type", None)
        if kind in ANTHROPIC_BLOCKS or (kind == "image" and isinstance(block, Mapping) and "source" in block):
            return True
        if type(block).__module__.startswith("anthropic."):
            return True
    return False


def _role_content(message: Any, i: int) -> tuple[str, Any]:
    message = message if isinstance(message, Mapping) else plain(message)
    role = message.get("role")
    if role not in ("user", "assistant"):
        hint = " (put the system prompt in system=)" if role == "system" else ""
        raise InputError(f"message {i} has role {role!r}; Anthropic messages are 'user' or 'assistant'{hint}")
    if "content" not in message:
        raise InputError(f"message {i} ({role}) has no 'content'; give a string or a list of content blocks")
    return role, message["content"]


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, (str, bytes, Mapping)) or not isinstance(content, Sequence):
        raise InputError(f"{where} content must be a string or a list of content blocks, got {type(content).__name__}")
    blocks = [plain(b) for b in content]
    for j, block in enumerate(blocks):
        if not isinstance(block.get("type"), str):
            raise InputError(f"{where} block {j} has no 'type'; blocks look like {{'type': 'text', 'text': ...}}")
    return blocks


def _block_text(block: Mapping[str, Any]) -> str:
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "thinking":
        return str(block.get("thinking", ""))
    if kind == "redacted_thinking":
        return str(block.get("data", ""))
    return as_json({k: v for k, v in block.items() if k != "cache_control"})


def _assistant(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    texts = [_block_text(b) for b in blocks if b.get("type") != "tool_use"]
    message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts)}
    calls = [{"id": str(b.get("id")), "type": "function",
              "function": {"name": str(b.get("name")), "arguments": as_json(b.get("input", {}))}}
             for b in blocks if b.get("type") == "tool_use"]
    if calls:
        message["tool_calls"] = calls
    return message


def _result_content(block: Mapping[str, Any]) -> Any:
    """A tool result's content: its string, or its blocks as parts (an image counts as an image)."""
    content = block.get("content", "")
    return content if isinstance(content, str) else [_part(plain(b)) for b in content]


def _part(block: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI content part standing for ``block``, for counting."""
    kind = block.get("type")
    source: Mapping[str, Any] = block["source"] if isinstance(block.get("source"), Mapping) else {}
    if kind == "image":
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
        else:
            url = str(source.get("url") or source.get("file_id") or "")
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "document" and source.get("type") == "base64":
        return {"type": "file", "file": {"file_data": f"data:{source.get('media_type')};base64,{source.get('data', '')}",
                                         "filename": str(block.get("title") or "document")}}
    if kind == "document" and source.get("type") == "text":
        return {"type": "text", "text": str(source.get("data", ""))}
    return {"type": "text", "text": _block_text(block)}


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {"name": str(tool.get("name", tool.get("type", "tool")))}
    if tool.get("description"):
        function["description"] = str(tool["description"])
    function["parameters"] = tool.get("input_schema") or {k: v for k, v in tool.items() if k not in ("name", "cache_control")}
    return {"type": "function", "function": function}


def _system(system: Any, parsed: Parsed, pieces: Sequence[Kept]) -> Any:
    if all(not k.changed for k in pieces) and len(pieces) == sum(1 for o in parsed.origins if o[0] == SYSTEM):
        return system
    if isinstance(system, str):
        return text_of(pieces[0].message.get("content")) if pieces else ""
    blocks = list(system)
    return [blocks[parsed.origins[k.index][1][0]] if not k.changed else
            {**plain(blocks[parsed.origins[k.index][1][0]]), "text": text_of(k.message.get("content"))}
            for k in pieces if k.index is not None]


def _added(k: Kept) -> tuple[str, list[Any]]:
    """A message a stage added: a tool result answers its call, anything else is user text."""
    text = text_of(k.message.get("content"))
    if k.message.get("role") == "tool":
        return "user", [{"type": "tool_result", "tool_use_id": str(k.message.get("tool_call_id")), "content": text}]
    if k.message.get("role") == "assistant":
        return "assistant", [{"type": "text", "text": text}]
    return "user", [{"type": "text", "text": text}]


def _rebuilt(content: Any, block_ids: tuple[int, ...], k: Kept) -> list[Any]:
    """The blocks of one fitted piece: the originals when unchanged, else rebuilt with the new text."""
    if isinstance(content, str):
        return [{"type": "text", "text": content if not k.changed else text_of(k.message.get("content"))}]
    originals = list(content)
    if not k.changed:
        return [originals[j] for j in block_ids]
    text = text_of(k.message.get("content"))
    blocks = [plain(originals[j]) for j in block_ids]
    if k.message.get("role") == "tool":
        content = blocks[0].get("content")
        return [{**blocks[0], "content": text if isinstance(content, str) or not content else with_text(content, text)}]
    if k.message.get("role") == "assistant":
        # Only the answered calls stay (the pipeline removes unanswered ones); the text blocks stay
        # as given unless a stage changed the text.
        calls = tool_call_ids(k.message)
        kept = [originals[j] for j, b in zip(block_ids, blocks) if b.get("type") != "tool_use" or str(b.get("id")) in calls]
        return kept if text == _assistant(blocks)["content"] else with_text(kept, text)
    # A user turn whose text changed: its non-text blocks (images, documents) stay, the text is new.
    return with_text([originals[j] for j in block_ids], text)


MAX_BREAKPOINTS = 4  # the Messages API takes at most four cache_control breakpoints per request
EPHEMERAL = {"type": "ephemeral"}


def _with_breakpoints(out: dict[str, Any], kept: Sequence[Kept], parsed: Parsed) -> dict[str, Any]:
    """Put ``cache_control`` at the stable boundaries the pipeline marked (a session's system part
    and held window), within the API's four breakpoints, counting the caller's own."""
    marked = [k for k in kept if k.breakpoint]
    if not marked:
        return out
    free = MAX_BREAKPOINTS - _count_breakpoints(out)
    if free <= 0:
        return out
    system_marked = any(k.index is not None and parsed.origins[k.index][0] == SYSTEM for k in marked)
    if system_marked and out.get("system") and free > 0:
        system = out["system"]
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else [plain(b) for b in system]
        if blocks and "cache_control" not in blocks[-1]:
            blocks[-1] = {**blocks[-1], "cache_control": EPHEMERAL}
            out["system"] = blocks
            free -= 1
    # A message breakpoint goes on the last block of the fitted message that holds the marked item:
    # the marked item's text is found by its position among the non-system kept items.
    positions = _message_positions(kept, parsed)
    messages = list(out["messages"])
    for k in reversed(marked):  # the later boundary covers more of the prefix: place it first
        position = positions.get(id(k))
        if free <= 0 or position is None or position >= len(messages):
            continue
        message = messages[position]
        content = message.get("content") if isinstance(message, Mapping) else getattr(message, "content", None)
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else [plain(b) for b in content or []]
        if blocks and "cache_control" not in blocks[-1]:
            blocks[-1] = {**blocks[-1], "cache_control": EPHEMERAL}
            role = message.get("role") if isinstance(message, Mapping) else getattr(message, "role", "user")
            messages[position] = {"role": role, "content": blocks}
            free -= 1
    out["messages"] = messages
    return out


def _message_positions(kept: Sequence[Kept], parsed: Parsed) -> dict[int, int]:
    """For each kept piece outside the system, the index of the output message that holds it
    (adjacent pieces of one role are merged into one message, as ``_merged`` does)."""
    positions: dict[int, int] = {}
    position, role = -1, None
    for k in kept:
        if k.index is not None and parsed.origins[k.index][0] == SYSTEM:
            continue
        this = "assistant" if k.message.get("role") == "assistant" else "user"
        if this != role:
            position, role = position + 1, this
        positions[id(k)] = position
    return positions


def _count_breakpoints(request: Mapping[str, Any]) -> int:
    def blocks_of(value: Any) -> list[Any]:
        return list(value) if isinstance(value, list) else []

    count = sum("cache_control" in plain(b) for b in blocks_of(request.get("system")))
    count += sum("cache_control" in plain(t) for t in blocks_of(request.get("tools")))
    for message in request.get("messages", []):
        content = message.get("content") if isinstance(message, Mapping) else getattr(message, "content", None)
        count += sum("cache_control" in plain(b) for b in blocks_of(content))
    return count


def _merged(turns: list[tuple[str, int | None, list[Any]]], originals: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    run: list[tuple[str, int | None, list[Any]]] = []

    def flush() -> None:
        if not run:
            return
        role, source, blocks = run[0]
        if len(run) == 1 and source is not None and _verbatim(originals[source], blocks):
            out.append(originals[source])
        else:
            merged = [b for _, _, bs in run for b in bs]
            if role == "user":  # the API wants the tool results at the start of the user turn
                merged.sort(key=lambda b: _type(b) != "tool_result")
            out.append({"role": role, "content": merged})
        run.clear()

    for turn in turns:
        if run and run[0][0] != turn[0]:
            flush()
        run.append(turn)
    flush()
    return out


def _verbatim(original: Any, blocks: list[Any]) -> bool:
    """Whether ``blocks`` are exactly the original message's own blocks, all of them, unchanged."""
    content = original.get("content") if isinstance(original, Mapping) else getattr(original, "content", None)
    if isinstance(content, str):
        return len(blocks) == 1 and blocks[0] == {"type": "text", "text": content}
    return isinstance(content, list) and len(blocks) == len(content) and all(a is b for a, b in zip(blocks, content))


def _type(block: Any) -> Any:
    return block.get("type") if isinstance(block, Mapping) else getattr(block, "type", None)
