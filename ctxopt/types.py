"""The data that flows between stages: items and the context that holds them.

An :class:`Item` is one piece of the prompt (a chat message, a retrieved chunk, a summary). A
:class:`Context` is the query, the items in prompt order, the tier, and the notes stages leave for
the report. Both are frozen: a stage returns a new context and never edits the one it was given.

>>> ctx = Context.from_messages([{"role": "system", "content": "Be brief."},
...                              {"role": "user", "content": "Hi!"}])
>>> [(i.id, i.kind, i.protected) for i in ctx.items]
[('m0', 'system', True), ('m1', 'user', True)]
>>> ctx.to_messages()
[{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi!'}]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

from ctxopt.errors import InputError
from ctxopt.validate import check_message

Kind = Literal["system", "user", "assistant", "tool", "retrieved", "summary"]
KINDS: tuple[str, ...] = ("system", "user", "assistant", "tool", "retrieved", "summary")
SECTIONS: dict[str, str] = {
    "system": "system",
    "user": "history",
    "assistant": "history",
    "tool": "history",
    "retrieved": "retrieved",
    "summary": "summary",
}
# Message roles accepted on input and the item kind each becomes ("developer" is OpenAI's newer
# name for the system role).
ROLES: dict[str, str] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}
# Item metadata key marking the last item of a cache-stable prompt segment (set by the session
# layout). Adapters for providers with explicit caching (Anthropic) turn it into a cache_control
# breakpoint; with automatic caching (OpenAI) the layout alone keeps the prefix cached.
CACHE_BREAKPOINT = "cache_breakpoint"
RETRIEVED_HEADER = "Relevant context"
SUMMARY_HEADER = "Summary of the earlier conversation"

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_PLAIN_KEYS = frozenset({"role", "content"})


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Item:
    """One piece of the prompt.

    ``unit`` groups items that are kept or dropped together (an assistant tool call and its tool
    results). ``message`` keeps the original OpenAI message so fields ctxopt does not touch
    (``name``, ``tool_calls``, ``tool_call_id``) survive the round trip. ``tokens`` is the exact cost
    of the item's message in the prompt, filled in by the pipeline; ``None`` means not counted yet.
    """

    id: str
    kind: str
    text: str
    score: float | None = None
    tokens: int | None = None
    protected: bool = False
    unit: str | None = None
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=lambda: _EMPTY)
    message: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in SECTIONS:
            raise InputError(f"item {self.id!r} has kind {self.kind!r}; choose from {', '.join(KINDS)}")
        if not isinstance(self.text, str):
            raise InputError(f"item {self.id!r} text must be a str, got {type(self.text).__name__}")

    @property
    def section(self) -> str:
        """The tier section this item counts against: system, history, retrieved or summary."""
        return SECTIONS[self.kind]

    @property
    def group(self) -> str:
        """The id of the keep-or-drop unit: the tool-call unit, or the item itself."""
        return self.unit or self.id

    def replace(self, **changes: Any) -> Item:
        """A copy with ``changes``; a new text or message resets the token count unless one is given
        (a count the item no longer matches must never reach the fit)."""
        if ("text" in changes or "message" in changes or "kind" in changes or "metadata" in changes) \
                and "tokens" not in changes:
            changes["tokens"] = None
        unknown = changes.keys() - _ITEM_FIELDS
        if unknown:
            raise TypeError(f"Item has no field(s) {', '.join(sorted(unknown))}")
        # Stages replace every item's score or token count on every request (hundreds per call):
        # copying the fields directly is several times cheaper than dataclasses.replace, which
        # re-runs __init__. Only a new kind or text needs the checks again.
        new = object.__new__(Item)
        for name in _ITEM_FIELDS:
            object.__setattr__(new, name, changes[name] if name in changes else getattr(self, name))
        if "kind" in changes or "text" in changes:
            new.__post_init__()
        return new

    def to_message(self) -> dict[str, Any]:
        """The OpenAI-style message this item becomes in the prompt."""
        if self.kind == "retrieved":
            source = self.metadata.get("title") or self.metadata.get("source") or self.id
            return {"role": "system", "content": f"{RETRIEVED_HEADER} [{source}]:\n{self.text}"}
        if self.kind == "summary":
            return {"role": "system", "content": f"{SUMMARY_HEADER}:\n{self.text}"}
        message: dict[str, Any] = dict(self.message) if self.message else {"role": self.kind}
        content = message.get("content")
        if isinstance(content, list):
            # Content parts stay parts: unchanged text returns the original list (images, audio,
            # cache_control and all); a shortened text replaces the text parts with one part.
            if self.text != parts_text(content):
                message["content"] = _with_text(content, self.text)
        elif self.text or content is not None or not message.get("tool_calls"):
            message["content"] = self.text
        return message


_ITEM_FIELDS = frozenset(f.name for f in dataclasses.fields(Item))
TEXT_PARTS = ("text", "input_text", "output_text")


def parts_text(parts: Sequence[Any]) -> str:
    """The text of a content-part list as stages see it: its text parts, one per line."""
    return "\n".join(p["text"] for p in parts if isinstance(p, Mapping) and p.get("type") in TEXT_PARTS
                     and isinstance(p.get("text"), str))


def _with_text(parts: Sequence[Any], text: str) -> list[Any]:
    out: list[Any] = []
    placed = False
    for part in parts:
        if isinstance(part, Mapping) and part.get("type") in TEXT_PARTS:
            if not placed:
                out.append({**part, "text": text})  # the first text part's type and cache_control stay
                placed = True
            continue
        out.append(part)
    return out if placed else [{"type": "text", "text": text}, *out]


def total_tokens(items: Iterable[Item]) -> int:
    """The summed token counts of ``items``, which must have been counted (the pipeline counts every
    item before each stage); an uncounted item here is a caller's bug, so it raises."""
    total = 0
    for item in items:
        if item.tokens is None:
            raise ValueError(f"item {item.id!r} has no token count; count it first (Pipeline.run does)")
        total += item.tokens
    return total


@dataclasses.dataclass(frozen=True, kw_only=True)
class Context:
    """The query, the items in prompt order, the tier, notes stages leave for the report, and the
    request's retrieval filters."""

    query: str
    items: tuple[Item, ...]
    tier: Any = None  # a ctxopt.tiers.Tier; Any keeps this module free of import cycles
    notes: Mapping[str, Any] = dataclasses.field(default_factory=lambda: _EMPTY)
    # The request's counter (a ctxopt.tokens.Tokenizer chosen for its model); every stage counts
    # with it, so one request is never counted in two encodings. None: the default tokenizer.
    tokenizer: Any = None
    # Tokens the request costs outside its messages (tool definitions, response_format schema):
    # never cut, always charged against the budget.
    fixed_tokens: int = 0
    # What was repaired on the way in (unanswered tool calls, orphan tool results), for the report.
    repairs: tuple[str, ...] = ()
    # The request's scope, e.g. {"tenant": "acme"}: retrieval adds it to its own payload filters,
    # so one shared pipeline serves many tenants without reading another tenant's chunks.
    filters: Mapping[str, Any] = dataclasses.field(default_factory=lambda: _EMPTY)
    # The provider rejects a conversation that opens on the assistant (Anthropic's Messages API):
    # the fit then also drops kept answers that would open it, whichever stage cut their question.
    # Chat Completions accepts them.
    opens_on_user: bool = False

    def replace(self, **changes: Any) -> Context:
        if "items" in changes:
            changes["items"] = tuple(changes["items"])
        return dataclasses.replace(self, **changes)

    def note(self, **notes: Any) -> Context:
        """A copy with ``notes`` added; the pipeline moves them into the running stage's report."""
        return self.replace(notes=MappingProxyType({**self.notes, **notes}))

    def to_messages(self) -> list[dict[str, Any]]:
        return [item.to_message() for item in self.items]

    def counter(self) -> Any:
        """The tokenizer this request is counted with (the pipeline's, else the default)."""
        if self.tokenizer is not None:
            return self.tokenizer
        from ctxopt.tokens import get_tokenizer

        return get_tokenizer()

    @classmethod
    def from_messages(
        cls, messages: Sequence[Mapping[str, Any]], *, query: str | None = None, tier: Any = None,
        filters: Mapping[str, Any] | None = None,
    ) -> Context:
        """Items from OpenAI-style ``messages``; the query defaults to the latest user message.

        System messages, the latest user message and everything after it (the turn in progress: the
        assistant's tool calls and their results) are protected. An assistant message with
        ``tool_calls`` and the tool messages answering it form one unit. Messages may be dicts or
        SDK objects (anything with ``model_dump()``, e.g. ``response.choices[0].message``).
        Tool calls nobody answered and tool results answering no call, which a provider rejects,
        are repaired and listed in ``repairs``.
        """
        items, repairs = _items_from_messages(messages)
        if query is None:
            query = next((i.text for i in reversed(items) if i.kind == "user"), "")
        elif not isinstance(query, str):
            raise InputError(f"query must be a str, got {type(query).__name__}")
        if filters is not None and not isinstance(filters, Mapping):
            raise InputError(f"filters must be a dict like {{'tenant': 'acme'}}, got {type(filters).__name__}")
        return cls(query=query, items=tuple(items), tier=tier, filters=MappingProxyType(dict(filters or {})),
                   repairs=tuple(repairs))


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, Mapping) and isinstance(p.get("type"), str) for p in content):
        bad = next((p for p in content if p.get("type") in TEXT_PARTS and not isinstance(p.get("text"), str)), None)
        if bad is None:
            return parts_text(content)
    raise InputError(
        f"{where} has content of type {type(content).__name__}; content must be a string or a list of "
        "parts, each a dict with a 'type' (text parts need a str 'text')"
    )


def _as_dict(message: Any) -> Any:
    # SDK message objects (pydantic models such as the OpenAI SDK's ChatCompletionMessage) become
    # the dicts their API would send; unset fields are left out, as the SDK leaves them out.
    dump = getattr(message, "model_dump", None)
    if callable(dump) and not isinstance(message, Mapping):
        try:
            return dump(exclude_none=True)
        except TypeError:
            return dump()
    return message


def _items_from_messages(messages: Sequence[Mapping[str, Any]]) -> tuple[list[Item], list[str]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise InputError(
            f"messages must be a list of {{'role': ..., 'content': ...}} dicts, got {type(messages).__name__}"
        )
    messages = [_as_dict(m) for m in messages]
    last_user = max((i for i, m in enumerate(messages) if isinstance(m, Mapping) and m.get("role") == "user"),
                    default=None)
    answered = {str(m.get("tool_call_id")) for m in messages if isinstance(m, Mapping) and m.get("role") == "tool"}
    open_calls: dict[str, str] = {}  # tool_call_id -> id of the assistant item that made the call
    items: list[Item] = []
    repairs: list[str] = []
    for index, message in enumerate(messages):
        where = f"message {index}"
        if not isinstance(message, Mapping):
            raise InputError(f"{where} must be a dict with 'role' and 'content', got {type(message).__name__}")
        check_message(message, where)
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise InputError(f"{where} has role {role!r}; choose from {', '.join(ROLES)}")
        item_id, unit = f"m{index}", None
        tool_calls = message.get("tool_calls")
        if "content" not in message and not (role == "assistant" and tool_calls):
            raise InputError(f"{where} ({role}) has no 'content'; add 'content': '...' (it may be empty)")
        content = message.get("content")
        text = "" if content is None and role == "assistant" and tool_calls else _content_text(content, where)
        kept = message
        if role == "assistant" and tool_calls:
            calls = [c for c in tool_calls if str(c["id"]) in answered]
            if len(calls) < len(tool_calls):
                missing = [str(c["id"]) for c in tool_calls if str(c["id"]) not in answered]
                # A provider rejects a tool call with no result: keep the answered calls only.
                if calls:
                    kept = {**message, "tool_calls": calls}
                else:
                    kept = {k: v for k, v in message.items() if k != "tool_calls"}
                    if kept.get("content") is None:
                        kept["content"] = ""
                repairs.append(f"{item_id}: removed unanswered tool call(s) {', '.join(missing)}")
                if not calls and not text:
                    repairs[-1] += " and the empty assistant message"
                    continue
            if calls:
                unit = item_id
                open_calls.update({str(c["id"]): item_id for c in calls})
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in open_calls:
                # A provider rejects a tool result that answers no earlier call: leave it out.
                repairs.append(f"{item_id}: removed a tool result for tool_call_id {call_id!r}, which no earlier "
                               "assistant tool call made")
                continue
            unit = open_calls[call_id]
        items.append(
            Item(
                id=item_id,
                kind=ROLES[role],
                text=text,
                # System prompts, the latest user message and the turn in progress after it.
                protected=ROLES[role] == "system" or (last_user is not None and index >= last_user),
                unit=unit,
                # A plain {"role", "content"} message is rebuilt from kind and text; keeping a copy
                # only for messages with more fields saves two objects per turn on every request.
                message=None if kept.keys() <= _PLAIN_KEYS and role == ROLES[role] and isinstance(content, str)
                else MappingProxyType(dict(kept)),
            )
        )
    return items, repairs
