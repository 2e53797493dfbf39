"""Tool-output pruning: shrink long tool results to the lines that matter for the current query.

A tool-call unit (the assistant's call plus the tool results) is kept or dropped whole by the fit,
and tool results (logs, search results, JSON) are often the largest thing in an agent's prompt: a
3,000-token log that does not fit is dropped entirely, with the two lines the answer needs. This
stage cuts each long tool result instead, so the unit becomes small enough to fit.

Every ``tool`` item whose text has more than ``min_tokens`` tokens (default 300) is cut to at most
``max_tokens`` tokens (default 500), or ``keep_ratio`` of its tokens if that is set and smaller
(never below 16, room for one marker); omission markers count. It is
split into segments (see :mod:`ctxopt.stages.tool_segments`: lines; sentences of long lines;
JSON pretty-printed one field per line), and each segment is scored against the query by:

* embedding similarity and IDF-weighted keyword overlap (as in the other pruning stages);
* exact identifiers from the query found verbatim: tokens with digits or inner punctuation
  (``req-7f3a``, ``502``, ``db-primary-2`` but not ``db-primary-20``), ALL-CAPS words and quoted
  phrases, because in logs the request id or error code is the whole point;
* the relevance of its block (a search result, a paragraph), as a sentence's meaning often lives
  in its neighbours.

By default (``when="over_budget"``) the stage cuts only when the prompt does not already fit its
tier (budget and section caps), so a large tier keeps tool outputs whole; ``when="always"`` cuts
every long tool result, as does a context with no tier to compare against. Segments are kept best
first while they fit; with ``keep_headers`` a kept segment brings its block's first line (a CSV
header, a result's title). Kept text stays in order and each gap becomes one marker line like
``[... 37 lines omitted ...]``. Items are never removed (the API needs a tool message for every
``tool_call_id``) and protected items are never touched. With an empty query there is nothing to
score against, and the head of the output is kept.

Run it before the fit (and before ``prune_history``, so history scores see the pruned text):
``Pipeline(stages=[PruneToolOutput(), PruneHistory()])``.

>>> from ctxopt.embed import HashEmbedder
>>> log = "\\n".join(f"12:00:{n:02} INFO request_id=r{n} ok" for n in range(60))
>>> log = log.replace("r42 ok", "r42 upstream timeout")
>>> ctx = Context.from_messages([
...     {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
...      "function": {"name": "logs", "arguments": "{}"}}]},
...     {"role": "tool", "tool_call_id": "c1", "content": log},
...     {"role": "user", "content": "Why did request r42 fail?"}])
>>> out = PruneToolOutput(min_tokens=100, max_tokens=40, embedder=HashEmbedder()).run(ctx)
>>> print(out.items[1].text)
[... 42 lines omitted ...]
12:00:42 INFO request_id=r42 upstream timeout
[... 17 lines omitted ...]
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, ClassVar, Literal

import numpy as np

from ctxopt.errors import ConfigError
from ctxopt.stages.base import require_whole
from ctxopt.stages.similarity import embed, resolve_embedder
from ctxopt.stages.tool_segments import Segmented, render, segment
from ctxopt.text import STOPWORDS, idf, keywords, overlap_all
from ctxopt.tiers import SECTION_NAMES, Tier
from ctxopt.tokens import REPLY_PRIMING, Tokenizer
from ctxopt.types import Context

WHEN = ("over_budget", "always")

# The smallest target: room for one marker line saying everything was omitted.
MIN_TARGET = 16
_MARKER_COST = 9  # tokens of a typical marker line plus its line break, for the greedy estimate
_TOKEN = re.compile(r"[\w][\w.:/@#-]*[\w]|\w")
_INNER = re.compile(r"[A-Za-z0-9][._:/@#-][A-Za-z0-9]")
_QUOTED = re.compile(r"\"([^\"]{2,80})\"|`([^`]{2,80})`|“([^”]{2,80})”|‘([^’]{2,80})’|(?<!\w)'([^']{2,80})'(?!\w)")


def identifiers(query: str) -> list[str]:
    """The query's exact-match terms, lower-cased, without repeats: quoted phrases, ids mixing letters
    and digits or joined by inner punctuation, numbers of 3+ digits (codes, ports; "20 minutes" is
    not an id), and ALL-CAPS words of 3+ letters (ERROR, OOM; not "OK").

    >>> identifiers("OK: why did req-7f3a get HTTP 502 from db-primary-2 20 min after 'cache miss'?")
    ['cache miss', 'req-7f3a', 'http', '502', 'db-primary-2']
    """
    found = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(query)]
    for token in _TOKEN.findall(query):
        letters, digits = any(c.isalpha() for c in token), sum(c.isdigit() for c in token)
        if ((letters and digits) or digits >= 3 or _INNER.search(token)
                or (len(token) >= 3 and token.isupper() and token.lower() not in STOPWORDS)):
            found.append(token)
    return list(dict.fromkeys(t.lower().strip() for t in found if t.strip()))


def _matcher(term: str) -> re.Pattern[str]:
    # Whole-token match: db-primary-2 must not count inside db-primary-20.
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(term)}(?![A-Za-z0-9])", re.IGNORECASE)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PruneToolOutput:
    """Cut long tool results to their query-relevant lines (see the module docstring)."""

    name: ClassVar[str] = "prune_tool_output"
    min_tokens: int = 300
    max_tokens: int = 500
    keep_ratio: float | None = None
    keyword_weight: float = 0.4
    identifier_weight: float = 0.5
    block_weight: float = 0.3
    keep_headers: bool = True
    when: Literal["over_budget", "always"] = "over_budget"
    embedder: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        require_whole(self.name, min_tokens=self.min_tokens)
        if isinstance(self.max_tokens, int) and not isinstance(self.max_tokens, bool) and self.max_tokens < MIN_TARGET:
            raise ConfigError(f"{self.name}: max_tokens must be at least {MIN_TARGET} (room for one omission "
                              f"marker), got {self.max_tokens!r}")
        require_whole(self.name, MIN_TARGET, max_tokens=self.max_tokens)
        if self.keep_ratio is not None and (isinstance(self.keep_ratio, bool) or not isinstance(self.keep_ratio, (int, float))
                                            or not 0.0 < self.keep_ratio <= 1.0):
            raise ConfigError(f"{self.name}: keep_ratio must be a share of the tool output's tokens in (0, 1] "
                              f"or None, got {self.keep_ratio!r}")
        for field in ("keyword_weight", "identifier_weight", "block_weight"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{self.name}: {field} must be a number in [0, 1], got {value!r}")
        if self.when not in WHEN:
            raise ConfigError(f"{self.name}: when must be one of {', '.join(WHEN)}, got {self.when!r}")
        if not isinstance(self.keep_headers, bool):
            raise ConfigError(f"{self.name}: keep_headers must be True or False, got {self.keep_headers!r}")

    def target(self, tokens: int) -> int:
        """The most tokens a tool text of ``tokens`` tokens may keep (never below MIN_TARGET)."""
        if self.keep_ratio is None:
            return self.max_tokens
        return max(MIN_TARGET, min(self.max_tokens, math.floor(self.keep_ratio * tokens)))

    def fits(self, context: Context, tokenizer: Tokenizer) -> bool:
        """Whether the whole prompt already fits its tier (budget and every section cap)."""
        tier = context.tier
        if not isinstance(tier, Tier):
            return False
        used = dict.fromkeys(SECTION_NAMES, 0)
        for item in context.items:
            used[item.section] += item.tokens if item.tokens is not None else tokenizer.count_message(item.to_message())
        total = REPLY_PRIMING + context.fixed_tokens + sum(used.values())
        return total <= tier.budget and all(used[s] <= tier.cap(s) for s in SECTION_NAMES)

    def run(self, context: Context) -> Context:
        tokenizer = context.counter()
        if self.when == "over_budget" and self.fits(context, tokenizer):
            return context.note(tool_items_pruned=0)
        work: dict[int, tuple[Segmented, int, int]] = {}  # position -> (segments, tokens, target)
        for n, item in enumerate(context.items):
            # A tool result is protected only as part of the turn in progress: it is never dropped,
            # so cutting it is what keeps the call's answer in a prompt that must fit.
            if item.kind != "tool":
                continue
            size = tokenizer.count(item.text)
            if size > self.min_tokens and size > self.target(size):
                work[n] = (segment(item.text, tokenizer), size, self.target(size))
        if not work:
            return context
        scores, notes = self.score(context.query, [s for s, _, _ in work.values()])
        items = list(context.items)
        before = after = 0
        for (n, (segmented, size, target)), score in zip(work.items(), scores):
            text = self._cut(segmented, score, target, tokenizer)
            items[n] = items[n].replace(text=text)
            before += size
            after += tokenizer.count(text)
        return context.replace(items=items).note(
            tool_items_pruned=len(work), tool_tokens_before=before, tool_tokens_after=after, **notes)

    def score(self, query: str, outputs: list[Segmented]) -> tuple[list[np.ndarray], dict[str, Any]]:
        """Each output's segment scores against ``query``, and the embedding cache notes."""
        if not query.strip():
            # Nothing to rank by: keep the head, as a reader skimming the output would.
            return [-np.arange(len(o.segments), dtype=float) for o in outputs], {"cache_hits": 0, "cache_misses": 0}
        blocks = [o.block_texts() for o in outputs]
        texts = [query] + [s.clean for o in outputs for s in o.segments] + [b for bs in blocks for b in bs]
        try:
            matrix, notes = embed(resolve_embedder(self.embedder), texts)
        except ImportError as exc:  # the light install: rank by keywords, ids and position only
            return [self._keyword_scores(query, o) for o in outputs], {
                "scoring": f"keywords only ({exc.name or 'sentence-transformers'} is not installed; "
                           "pip install 'ctxopt[models]' adds embedding similarity)"}
        q = matrix[0]
        q_words = keywords(query)
        matchers = [_matcher(t) for t in identifiers(query)]
        kw, out = self.keyword_weight, []
        seg_row, block_row = 1, 1 + sum(len(o.segments) for o in outputs)
        for o, bs in zip(outputs, blocks):
            count = len(o.segments)
            similarity = matrix[seg_row:seg_row + count] @ q
            block_sim = matrix[block_row:block_row + len(bs)] @ q
            seg_row, block_row = seg_row + count, block_row + len(bs)
            words = [keywords(s.clean) for s in o.segments]
            weights = idf(words)
            overlap = np.array(overlap_all(q_words, words, weights, max(weights.values(), default=1.0)))
            exact = np.array([sum(1 for m in matchers if m.search(s.text) or m.search(s.clean)) / len(matchers)
                              if matchers else 0.0 for s in o.segments])
            block = np.array([block_sim[s.block] for s in o.segments])
            out.append((1 - kw) * similarity + kw * overlap + self.identifier_weight * exact + self.block_weight * block)
        return out, notes

    def _keyword_scores(self, query: str, output: Segmented) -> np.ndarray:
        q_words = keywords(query)
        matchers = [_matcher(t) for t in identifiers(query)]
        words = [keywords(s.clean) for s in output.segments]
        weights = idf(words)
        overlap = np.array(overlap_all(q_words, words, weights, max(weights.values(), default=1.0)))
        exact = np.array([sum(1 for m in matchers if m.search(s.text) or m.search(s.clean)) / len(matchers)
                          if matchers else 0.0 for s in output.segments])
        # ties go to the earlier segment, as a reader skimming the output would
        return overlap + self.identifier_weight * exact - 1e-6 * np.arange(len(output.segments))

    def _cut(self, segmented: Segmented, scores: np.ndarray, target: int, tokenizer: Tokenizer) -> str:
        segments = segmented.segments
        kept = np.zeros(len(segments), dtype=bool)
        # Estimated cost: segment tokens, a line break each, and a marker per gap. Adding a segment
        # splits the gap it sits in: one more marker if omitted text remains on both sides.
        used = _MARKER_COST

        def add(i: int) -> int:
            left = i > 0 and not kept[i - 1]
            right = i + 1 < len(segments) and not kept[i + 1]
            kept[i] = True
            return segments[i].tokens + 1 + _MARKER_COST * (left + right - 1)

        for i in (int(i) for i in np.argsort(-scores, kind="stable")):
            if kept[i]:
                continue
            before = kept.copy()
            lead = segments[i].lead
            cost = add(lead) if self.keep_headers and not kept[lead] else 0
            cost += add(i) if not kept[i] else 0
            if used + cost <= target:
                used += cost
            else:
                kept[:] = before  # undo: a shorter segment further down may still fit
        keep = [int(i) for i in np.flatnonzero(kept)]
        text = render(segmented, keep)
        # The estimate can be off by a token here and there (line breaks merge, markers vary in
        # length): drop the weakest kept segment until the exact count fits. A lead goes only after
        # the lines that brought it.
        while keep and tokenizer.count(text) > target:
            leads = {segments[i].lead for i in keep if segments[i].lead != i} if self.keep_headers else set()
            keep.remove(min((i for i in keep if i not in leads), key=lambda i: (scores[i], i)))
            text = render(segmented, keep)
        return text
