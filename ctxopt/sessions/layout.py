"""The cache-stable layout of a long conversation, as pure functions of its turns.

A prompt in session mode reads::

    system (and summary) | window: the latest turns since the last compaction | tail | turn in progress
    '------------------- stable prefix -------------------'

The window is replayed from the whole conversation with two watermarks: it grows turn by turn
(each prompt extends the previous one, so the provider serves it from cache) until it holds more
than ``high`` tokens, then drops its oldest turns down to ``low`` tokens in one step (one cache
miss buys many cheap turns). Because the replay starts from the first turn every time, any process
that sees the same messages computes the same window: no state is needed for the layout.

The tail holds the older turns (before the window) most relevant to this request's query, in
their original order; it changes with every query, which costs little because it comes after the
stable prefix.

>>> boundary([400, 400, 400, 400, 400], high=1000, low=500)
4
>>> boundary([400, 400], high=1000, low=500)
0
"""

from __future__ import annotations

from collections.abc import Sequence


def boundary(unit_tokens: Sequence[int], high: int, low: int) -> int:
    """Index of the first unit of the window after replaying the conversation unit by unit: when
    the window exceeds ``high`` tokens, its oldest units go until it holds at most ``low``."""
    start, total = 0, 0
    for tokens in unit_tokens:
        total += tokens
        if total > high:
            while total > low:
                total -= unit_tokens[start]
                start += 1
    return start


def choose_tail(candidates: Sequence[tuple[int, float]], room: int, min_score: float = float("-inf")) -> list[int]:
    """Indexes of the ``(tokens, score)`` candidates to keep: best score first (the later unit on a
    tie), each if it fits the ``room`` left and scores at least ``min_score``; returned in order."""
    chosen = []
    for index in sorted(range(len(candidates)), key=lambda i: (-candidates[i][1], -i)):
        tokens, score = candidates[index]
        if score < min_score:
            break
        if tokens <= room:
            chosen.append(index)
            room -= tokens
    return sorted(chosen)
