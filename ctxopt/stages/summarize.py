"""Summarisation: replace old history turns with one summary item.

History units older than the last ``keep_last`` are "old". Old units are summarised in steps of
``step`` units (a rolling summary): the summary of the first ``k * step`` old units is cached by a
hash of their content, and when the conversation has grown by another step, the new summary is
made from the previous summary plus the new units only. Old units past the last full step stay
verbatim until the next step. Each turn becomes a line ``"Speaker (date): text"`` (speaker from
``metadata["speaker"]``, the message ``name`` or the role; date from ``metadata["date"]``), so the
default extractive summariser keeps who said what, when.

Rules: protected items are never summarised and stay where they are; a tool-call unit is
summarised whole or not at all; the summary text never exceeds ``max_tokens`` (nor the tier's
summary cap) — counted, and cut at a sentence boundary when a summariser returns too much.
No turn moves across a message that is not a turn: a system message in mid-conversation (a
hand-off, new instructions) splits the old turns into segments, each summarised on its own
(rolling in steps, as above) into a summary that takes the place of its first turn; the token
target is shared equally between the summaries.
With ``keep_turns=True`` the old turns are left in place next to the summary, for a fit that
keeps the relevant ones verbatim (after ``prune_history`` scored them): pruning plus summary.

>>> from ctxopt.types import Context
>>> msgs = [{"role": "user", "content": f"Fact {n}: item {n} costs {n} dollars."} for n in range(6)]
>>> out = Summarize(keep_last=2, step=2, max_tokens=40).run(Context.from_messages(msgs))
>>> [i.kind for i in out.items]
['summary', 'user', 'user']
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
from collections import OrderedDict
from typing import Any, ClassVar

from ctxopt.errors import ConfigError
from ctxopt.stages.base import require_whole
from ctxopt.stages.prune_history import HISTORY_KINDS, history_units
from ctxopt.summarizers import ExtractiveSummarizer, fit_to_tokens
from ctxopt.tokens import Tokenizer
from ctxopt.types import Context, Item

CACHE_SIZE = 1024  # rolling summaries kept in process

_cache: OrderedDict[str, str] = OrderedDict()
_cache_lock = threading.Lock()


def turn_line(item: Item) -> str:
    """``"Speaker (date): text"`` for one history item."""
    speaker = str(item.metadata.get("speaker") or (item.message or {}).get("name") or item.kind)
    date = item.metadata.get("date")
    text = item.text.removeprefix(f"{speaker}: ")
    if not text and item.message and item.message.get("tool_calls"):
        text = "called " + ", ".join(str(c.get("function", {}).get("name", "a tool")) for c in item.message["tool_calls"])
    label = f"{speaker} ({date})" if date else speaker
    return f"{label}: {' '.join(text.split())}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Summarize:
    """Replace old history turns with one rolling summary (see the module docstring)."""

    name: ClassVar[str] = "summarize"
    keep_last: int = 8
    step: int = 8
    max_tokens: int = 400
    keep_turns: bool = False
    summarizer: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        require_whole(self.name, keep_last=self.keep_last, max_tokens=self.max_tokens)
        require_whole(self.name, 1, step=self.step)
        if self.summarizer is not None and not callable(self.summarizer):
            raise ConfigError("summarize: summarizer must be a callable (text, max_tokens) -> str, "
                              f"got {type(self.summarizer).__name__}")

    def _summarizer(self, counter: Tokenizer) -> Any:
        return self.summarizer or ExtractiveSummarizer(encoding=counter.name)

    def run(self, context: Context) -> Context:
        items = context.items
        units = history_units(items)
        old = units[:max(0, len(units) - self.keep_last)]
        # Units with a protected member are never summarised; they also end the summarisable run,
        # so the summary never reorders around them.
        first_protected = next((k for k, u in enumerate(old) if any(items[n].protected for n in u)), len(old))
        runs = [seg[:len(seg) // self.step * self.step] for seg in _segments(items, old[:first_protected])]
        runs = [run for run in runs if run]
        counter = context.counter()
        target = self._target(context, counter) // max(1, len(runs))
        if not runs or target <= 0:
            return context
        summaries: dict[int, Item] = {}  # position of a run's first turn -> the run's summary
        summarised: set[int] = set()
        tokens, hits = 0, []
        for run in runs:
            lines = ["\n".join(turn_line(items[n]) for n in u) for u in run]
            text, hit = self._rolling(lines, target, counter)
            positions = sorted(n for u in run for n in u)
            summaries[positions[0]] = Item(
                id=f"summary:{_digest(lines)[:12]}", kind="summary", text=text, score=math.inf,
                metadata={"turns": len(run), "source_ids": [items[n].id for n in positions]})
            summarised.update(positions)
            tokens += counter.count(text)
            hits.append(hit)
        out: list[Item] = []
        for n, item in enumerate(items):
            if n in summaries:
                out.append(summaries[n])
            if n not in summarised or self.keep_turns:
                out.append(item)
        notes: dict[str, Any] = {"turns_summarised": sum(len(run) for run in runs), "summary_tokens": tokens,
                                 "summary_cached": all(hits)}
        if len(runs) > 1:
            notes["summaries"] = len(runs)
        return context.replace(items=out).note(**notes)

    def _target(self, context: Context, tokenizer: Tokenizer) -> int:
        """Summary text tokens: ``max_tokens``, lowered to fit the tier's summary cap if there is one."""
        target = self.max_tokens
        tier = context.tier
        if tier is not None and getattr(tier, "summary", None) is not None:
            overhead = tokenizer.count_message(Item(id="s", kind="summary", text="").to_message())
            target = min(target, tier.cap("summary") - overhead)
        return target

    def _rolling(self, lines: list[str], target: int, counter: Tokenizer) -> tuple[str, bool]:
        """The summary of ``lines``: cached, or built from the longest cached prefix plus the rest."""
        summarizer = self._summarizer(counter)
        salt = f"{getattr(summarizer, 'id', repr(summarizer))}|{target}|{counter.describe()}"
        keys = _prefix_keys(salt, lines, self.step)
        with _cache_lock:
            if keys[-1] in _cache:
                _cache.move_to_end(keys[-1])
                return _cache[keys[-1]], True
            start, previous = 0, ""
            for k in range(len(keys) - 2, -1, -1):
                if keys[k] in _cache:
                    start, previous = (k + 1) * self.step, _cache[keys[k]]
                    break
        source = "\n".join(([previous] if previous else []) + lines[start:])
        text = fit_to_tokens(str(summarizer(source, target)).strip(), target, counter)
        with _cache_lock:
            _cache[keys[-1]] = text
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        return text, False


def _segments(items: tuple[Item, ...], units: list[list[int]]) -> list[list[list[int]]]:
    """``units`` (history units in prompt order) split wherever an item that is not a history turn
    (a system message, a retrieved chunk, an earlier summary) sits between two of them."""
    segments: list[list[list[int]]] = []
    end = None
    for unit in units:
        if end is None or any(items[n].kind not in HISTORY_KINDS for n in range(end + 1, min(unit))):
            segments.append([])
        segments[-1].append(unit)
        end = max(unit)
    return segments


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\x1e".join(lines).encode("utf-8")).hexdigest()


def _prefix_keys(salt: str, lines: list[str], step: int) -> list[str]:
    """Cache keys of every ``step``-sized prefix of ``lines`` (the last key covers them all)."""
    running = hashlib.sha256(salt.encode("utf-8"))
    keys = []
    for n, line in enumerate(lines, 1):
        running.update(line.encode("utf-8") + b"\x1e")
        if n % step == 0:
            keys.append(running.copy().hexdigest())
    return keys


def clear_cache() -> None:
    """Forget cached summaries (tests and cold-cache benchmarks use this)."""
    with _cache_lock:
        _cache.clear()
