"""What a stage is, and the check every stage (ours or a user's) must pass.

A stage is any object with a ``name`` and one method, ``run(context) -> context``. The rules:

1. Return a new :class:`~ctxopt.types.Context`; never change the one you were given.
2. Keep item ids stable: an item you shorten keeps its id, an item you add gets a new unique id,
   so the report can say what each stage dropped and added.
3. Never drop a protected item, and keep or drop a tool-call unit (items sharing ``unit``) whole.
4. Only the final fit stage guarantees the tier's limits; other stages may leave the prompt over.
5. Leave facts for the report with ``context.note(key=value)`` (JSON-serialisable values).
6. Configuration is the stage's dataclass fields (keyword-only), so a pipeline round-trips to a
   dict or TOML; heavy things (models, clients) load on first use, not in the constructor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from ctxopt.errors import ConfigError
from ctxopt.types import Context, Item


@runtime_checkable
class Stage(Protocol):
    name: ClassVar[str]

    def run(self, context: Context) -> Context: ...


def require_whole(stage: str, low: int = 0, **values: Any) -> None:
    """ConfigError unless every value is a whole number >= ``low`` (a bool is not a number here)."""
    for field, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{stage}: {field} must be a whole number >= {low}, got {value!r}")


def stage_config(stage: Any) -> dict[str, Any]:
    """The stage's configuration: its init dataclass fields, with the registry name first."""
    fields = dataclasses.fields(stage) if dataclasses.is_dataclass(stage) else ()
    return {"name": stage.name, **{f.name: getattr(stage, f.name) for f in fields if f.init and f.repr}}


def _sample_context() -> Context:
    from ctxopt.tiers import Tier

    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You answer questions about the solar system."},
        {"role": "user", "content": "How far is Mars from the Sun?"},
        {"role": "assistant", "content": "About 228 million kilometres on average."},
        {"role": "user", "content": "Look up the orbital period of Mars."},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function",
                         "function": {"name": "lookup", "arguments": "{\"q\": \"Mars period\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Mars orbits the Sun every 687 days."},
        {"role": "assistant", "content": "Mars takes 687 Earth days to orbit the Sun."},
        {"role": "user", "content": "And how long is a day on Mars?"},
    ]
    ctx = Context.from_messages(messages, tier=Tier(4096, reserve=256))
    retrieved = [
        Item(id="doc:1", kind="retrieved", score=0.9, metadata={"title": "Mars"},
             text="A Martian solar day, or sol, lasts 24 hours 39 minutes. Mars has two moons."),
        Item(id="doc:2", kind="retrieved", score=0.4, metadata={"title": "Venus"},
             text="Venus rotates slowly; a day on Venus is longer than its year."),
    ]
    items = list(ctx.items)
    return ctx.replace(items=items[:-1] + retrieved + items[-1:])


def check_stage(stage: Any, contexts: Sequence[Context] | None = None) -> None:
    """Raise AssertionError if ``stage`` breaks a rule of the stage contract.

    Runs the stage on a built-in sample conversation (system prompt, history, a tool-call unit,
    retrieved chunks) or on ``contexts``, and checks rules 1, 2, 3 and 5, that every token count an
    output item carries is still its message's count, determinism, and that the stage's config
    rebuilds an equal stage.
    """
    assert isinstance(getattr(stage, "name", None), str) and stage.name, "stage needs a non-empty str name"
    assert callable(getattr(stage, "run", None)), "stage needs a run(context) method"
    for ctx in contexts or [_sample_context()]:
        before = dataclasses.replace(ctx)
        out = stage.run(ctx)
        assert isinstance(out, Context), f"run() must return a Context, got {type(out).__name__}"
        assert ctx == before, "run() changed the context it was given"
        ids = [i.id for i in out.items]
        assert len(ids) == len(set(ids)), f"duplicate item ids in output: {ids}"
        out_ids = set(ids)
        for item in ctx.items:
            if item.protected:
                assert item.id in out_ids, f"protected item {item.id!r} was dropped"
        units: dict[str, set[str]] = {}
        for item in ctx.items:
            if item.unit:
                units.setdefault(item.unit, set()).add(item.id)
        for unit, members in units.items():
            kept = members & out_ids
            assert kept in (set(), members), f"tool-call unit {unit!r} was split: kept {sorted(kept)}"
        counter = out.counter()
        for item in out.items:  # a count the item no longer matches would mislead the fit
            if item.tokens is not None:
                actual = counter.count_message(item.to_message())
                assert item.tokens == actual, (
                    f"item {item.id!r} carries tokens={item.tokens} but its message counts {actual}: "
                    "a stage that changes an item must reset its count (Item.replace does, unless tokens= is given)")
        for key, value in out.notes.items():
            assert isinstance(key, str), "note keys must be strings"
            _assert_jsonable(value, key)
        again = stage.run(ctx)
        assert [i.id for i in again.items] == ids, "run() is not deterministic on the same input"
    if dataclasses.is_dataclass(stage):
        config = stage_config(stage)
        config.pop("name")
        rebuilt: Any = type(stage)
        assert rebuilt(**config) == stage, "the stage's config does not rebuild an equal stage"


def _assert_jsonable(value: Any, key: str) -> None:
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"note {key!r} is not JSON-serialisable: {exc}") from None
