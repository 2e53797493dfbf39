"""What every format adapter shares: the OpenAI-chat view of a request, and which of its messages
came back from the pipeline, changed or not.

An adapter has three verbs (see :class:`Adapter`): ``accepts(request)`` recognises its shape,
``parse(request)`` turns it into OpenAI chat messages plus what the core counts (model, tools,
response format, output reserve), and ``build(request, parsed, kept)`` turns the fitted messages
back into the request's own shape. Its rules:

1. ``parse`` never edits the request; ``origins[i]`` says where ``messages[i]`` came from, in the
   adapter's own terms, so ``build`` can find the original object again.
2. ``build`` returns a message that came back unchanged as the very object it was given (blocks,
   ``cache_control`` and provider fields included); a changed one is rebuilt in the format from
   the original plus the new text; a dropped one is gone; one a stage added is placed where the
   format allows it.
3. The request ``build`` returns is valid for the provider whenever the fitted OpenAI messages are:
   tool calls stay paired with their results in the format's own way.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ctxopt.errors import InputError
from ctxopt.types import CACHE_BREAKPOINT, parts_text

_INPUT_ID = re.compile(r"m(\d+)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Parsed:
    """A request seen as OpenAI chat messages, and what the core counts besides them."""

    messages: list[dict[str, Any]]
    origins: tuple[Any, ...] = ()
    model: str | None = None
    tools: list[dict[str, Any]] | None = None
    response_format: Any = None
    max_output_tokens: int | None = None
    opens_on_user: bool = False  # the API rejects a conversation whose first message is the assistant's


@dataclasses.dataclass(frozen=True, slots=True)
class Kept:
    """One fitted message: ``index`` into ``Parsed.messages`` (``None`` when a stage added it),
    whether a stage changed it, and the message as the pipeline returned it."""

    index: int | None
    changed: bool
    kind: str
    message: dict[str, Any]
    breakpoint: bool = False  # the end of a cache-stable segment (a session layout's boundary)


class Adapter(Protocol):
    name: str

    def accepts(self, request: Any) -> bool: ...

    def parse(self, request: Any) -> Parsed: ...

    def build(self, request: Any, parsed: Parsed, kept: Sequence[Kept]) -> Any: ...


def kept_messages(parsed: Parsed, items: Sequence[Any], messages: Sequence[dict[str, Any]]) -> list[Kept]:
    """Pair the pipeline's output (``Result.context.items`` with ``Result.messages``) with the
    messages ``parse`` produced. Items built from the input carry the id ``m<index>``."""
    kept = []
    for item, message in zip(items, messages, strict=True):
        match = _INPUT_ID.fullmatch(item.id)
        index = int(match.group(1)) if match and item.kind not in ("retrieved", "summary") else None
        if index is not None and index >= len(parsed.messages):
            index = None
        changed = index is None or _changed(parsed.messages[index], message)
        kept.append(Kept(index=index, changed=changed, kind=item.kind, message=message,
                         breakpoint=bool(item.metadata.get(CACHE_BREAKPOINT))))
    return kept


def one_to_one(originals: Sequence[Any], kept: Sequence[Kept], changed: Callable[[Any, Kept], Any],
               added: Callable[[Kept], Any]) -> list[Any]:
    """The fitted list for a format whose messages map one to one onto chat messages: the original
    object when unchanged, ``changed(original, kept)`` when a stage changed it, ``added(kept)`` when
    a stage added it."""
    return [added(k) if k.index is None else changed(originals[k.index], k) if k.changed else originals[k.index]
            for k in kept]


def _changed(sent: Mapping[str, Any], fitted: Mapping[str, Any]) -> bool:
    """Whether a stage changed a message: its text or its tool calls differ (a difference in form
    only, such as text parts returned as one string, is not a change)."""
    if sent == fitted:
        return False
    return text_of(sent.get("content")) != text_of(fitted.get("content")) or tool_call_ids(sent) != tool_call_ids(fitted)


def plain(value: Any) -> Any:
    """A dict view of a message or block given as a dict or as an SDK (pydantic) object."""
    if isinstance(value, Mapping):
        return dict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    raise InputError(f"expected a dict or an SDK message object, got {type(value).__name__}")


def text_of(content: Any) -> str:
    """The text of OpenAI message content as the pipeline's stages see it: a string, or the text
    parts of a list, one per line."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return parts_text(content)


def with_text(blocks: Sequence[Any], text: str, kind: str = "text") -> list[Any]:
    """``blocks`` with ``text`` in place of their text: the first text block keeps its place and its
    other fields (``cache_control``), later text blocks go, other blocks (images) stay as given."""
    out: list[Any] = []
    placed = False
    for block in blocks:
        view = plain(block)
        if view.get("type") == kind:
            if not placed:
                out.append({**view, "text": text})
                placed = True
            continue
        out.append(block)
    return out if placed else [{"type": kind, "text": text}, *out]


def as_json(value: Any) -> str:
    """Compact JSON for counting structures that have no text of their own (tool inputs, opaque items)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def tool_call_ids(message: Mapping[str, Any]) -> set[str]:
    return {str(c.get("id")) for c in message.get("tool_calls") or () if isinstance(c, Mapping)}
