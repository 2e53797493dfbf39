"""What the format tests share: pipelines that cut, drop and add, and independent checks of what
each provider accepts (written from the providers' documented rules, not from ctxopt's code)."""

from __future__ import annotations

import base64
import dataclasses
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import pytest

import ctxopt
from ctxopt.embed import HashEmbedder
from ctxopt.stages import PruneToolOutput
from ctxopt.types import Context, Item

LOG = "\n".join(f"12:00:{n:02} INFO request_id=r{n} checkout ok latency={n * 7}ms" for n in range(60))
LOG = LOG.replace("r42 checkout ok", "r42 checkout FAILED upstream timeout")
TIGHT = ctxopt.Tier(700, reserve=100, name="tight")


def png_base64(width: int, height: int) -> str:
    """A real (black) PNG of that size, base64: image counting reads its size from the header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"".join(b"\x00" + b"\x00" * (width * 3) for _ in range(height)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")).decode()


PNG = png_base64(1024, 768)


@dataclasses.dataclass(frozen=True)
class AddsContext:
    """A stage that puts one retrieved chunk before the last item, as retrieval does."""

    text: str = "Runbook: checkout failures after a deploy are usually the payments timeout."
    name: str = "adds_context"

    def run(self, context: Context) -> Context:
        chunk = Item(id="kb-runbook", kind="retrieved", text=self.text, metadata={"source": "runbook.md"})
        items = list(context.items)
        return context.replace(items=[*items[:-1], chunk, items[-1]])


def cutting_pipeline() -> ctxopt.Pipeline:
    """Cuts every tool result over 50 tokens to at most 100 (plumbing: a hash embedder scores)."""
    return ctxopt.Pipeline(stages=(PruneToolOutput(min_tokens=50, max_tokens=100, when="always", embedder=HashEmbedder()),))


@pytest.fixture
def cutting() -> ctxopt.Pipeline:
    return cutting_pipeline()


@pytest.fixture
def adding() -> ctxopt.Pipeline:
    return ctxopt.Pipeline(stages=(AddsContext(),))


def block_type(block: Any) -> Any:
    return block.get("type") if isinstance(block, Mapping) else getattr(block, "type", None)


def field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)


def anthropic_problems(request: Mapping[str, Any]) -> list[str]:
    """What the Messages API would reject: a first message that is not the user's ("messages: first
    message must use the "user" role"), roles other than user/assistant, two turns of one role in
    a row, a tool_use not answered at the start of the next user turn, a tool_result answering no
    tool_use of the turn before, an empty text block."""
    problems, messages = [], list(request["messages"])
    if not messages:
        problems.append("no messages")
    elif field(messages[0], "role") != "user":
        problems.append(f"the first message is the {field(messages[0], 'role')}'s, not the user's")
    for i, message in enumerate(messages):
        role, content = field(message, "role"), field(message, "content")
        if role not in ("user", "assistant"):
            problems.append(f"message {i} has role {role}")
        if i and field(messages[i - 1], "role") == role:
            problems.append(f"messages {i - 1} and {i} are both {role}")
        blocks = [] if isinstance(content, str) else list(content)
        if any(block_type(b) == "text" and not field(b, "text") for b in blocks):
            problems.append(f"message {i} has an empty text block")
        results = [field(b, "tool_use_id") for b in blocks if block_type(b) == "tool_result"]
        leading = [field(b, "tool_use_id") for b in blocks[: len(results)] if block_type(b) == "tool_result"]
        if results != leading:
            problems.append(f"message {i} has tool_result blocks after other blocks")
        previous = messages[i - 1] if i else None
        asked = [] if previous is None or isinstance(field(previous, "content"), str) else [
            field(b, "id") for b in field(previous, "content") if block_type(b) == "tool_use"]
        if role == "user" and sorted(results) != sorted(asked):
            problems.append(f"message {i} answers tool_use {results} but the turn before asked {asked}")
    if messages and not isinstance(field(messages[-1], "content"), str) and any(
            block_type(b) == "tool_use" for b in field(messages[-1], "content")):
        problems.append("the last message is an unanswered tool_use")
    return problems


def openai_chat_problems(messages: list[Any]) -> list[str]:
    """What Chat Completions would reject: a tool message not answering a call of the assistant
    message before its run of tool messages, or a call left unanswered."""
    problems, open_calls = [], set()
    for i, message in enumerate(messages):
        role = field(message, "role")
        if role == "tool":
            call = field(message, "tool_call_id")
            if call not in open_calls:
                problems.append(f"message {i} answers {call}, which is not an open call")
            open_calls.discard(call)
            continue
        if open_calls:
            problems.append(f"calls {sorted(open_calls)} unanswered before message {i}")
        calls = field(message, "tool_calls") or []
        open_calls = {field(c, "id") for c in calls}
    if open_calls:
        problems.append(f"calls {sorted(open_calls)} unanswered at the end")
    return problems


def responses_problems(items: Any) -> list[str]:
    """What the Responses API would reject: a function_call_output with no earlier function_call,
    or a function_call with no output."""
    if isinstance(items, str):
        return []
    problems, calls, answered = [], set(), set()
    for i, item in enumerate(items):
        kind = field(item, "type")
        if kind == "function_call":
            calls.add(field(item, "call_id"))
        elif kind == "function_call_output":
            if field(item, "call_id") not in calls:
                problems.append(f"item {i} answers {field(item, 'call_id')}, which was never called")
            answered.add(field(item, "call_id"))
    problems += [f"call {c} has no output" for c in sorted(calls - answered)]
    return problems
