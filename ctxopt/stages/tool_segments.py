"""Tool outputs cut into segments the pruner can keep or omit, and rendered back with markers.

A tool output is read as lines, because that is how logs, CSV, tables and stack traces are
written. A line longer than ``LONG_LINE`` tokens (a prose paragraph, a long JSON string value) is
cut into sentences, and a sentence longer than ``LONG_PIECE`` characters into pieces at spaces.
JSON (a text that parses as an object or array) is first pretty-printed, so each field sits on its
own line and a long ``"text"`` field splits into sentences; lines holding only brackets are dropped
(they carry nothing once fields are omitted), so kept JSON reads as one field per line.

Blocks give kept lines their context: lines at the same indentation with no blank line between
form a block, and its first line is the block's *lead* (a CSV header, a search result's title, the
``Traceback`` line). A deeper-indented run starts a nested block; a blank line or a shallower line
ends it. An output that is one block (a log, a CSV file) has a lead only if its first line has no
digits, like a CSV header or a table's column names; a log's first line is just another entry.

Kept segments render in their original order; every run of omitted segments becomes one marker
line such as ``[... 37 lines omitted ...]`` so the model knows text is missing.

>>> from ctxopt.tokens import get_tokenizer
>>> seg = segment("a\\nb\\nc\\nd", get_tokenizer())
>>> print(render(seg, [1, 3]))
[... 1 line omitted ...]
b
[... 1 line omitted ...]
d
"""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
from collections.abc import Iterable

from ctxopt.text import split_sentences
from ctxopt.tokens import Tokenizer

LONG_LINE = 60  # tokens: longer lines are cut into sentences
LONG_PIECE = 400  # characters: longer sentences are cut at spaces
_STRUCTURE = re.compile(r"^\s*[\[\]{}]+,?\s*$")
# A pretty-printed JSON field: its key and the opening quote of a string value.
_JSON_KEY = re.compile(r'^\s*"(?:[^"\\]|\\.)*":\s*"?')


@dataclasses.dataclass(frozen=True)
class Segment:
    text: str  # as rendered
    clean: str  # what is scored: without JSON keys and quoting
    line: int  # number of its source line
    whole: bool  # the whole line (False: a sentence or piece of a long line)
    block: int  # number of its block
    lead: int  # index of the block's first segment (its own index: no lead to bring)
    tokens: int


@dataclasses.dataclass(frozen=True)
class Segmented:
    segments: tuple[Segment, ...]
    format: str  # "lines" or "json"
    blank_before: frozenset[int]  # source lines that follow a blank line
    pieces: dict[int, int]  # source line -> number of its segments

    def block_texts(self) -> list[str]:
        """Each block's clean text, by block number."""
        texts: dict[int, list[str]] = {}
        for s in self.segments:
            texts.setdefault(s.block, []).append(s.clean)
        return [" ".join(texts[b]) for b in sorted(texts)]


def _as_lines(text: str) -> tuple[list[str], str]:
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        try:
            # too deep to re-indent (RecursionError) or not JSON at all: cut it as plain lines
            return json.dumps(json.loads(stripped), indent=2, ensure_ascii=False).splitlines(), "json"
        except (ValueError, RecursionError):
            pass
    return text.splitlines(), "lines"


def _clean(piece: str, fmt: str) -> str:
    if fmt != "json":
        return piece
    piece = _JSON_KEY.sub("", piece, count=1) if _JSON_KEY.match(piece) else piece.lstrip('"')
    piece = piece.rstrip().removesuffix(",").removesuffix('"')
    return piece.replace('\\"', '"').replace("\\\\", "\\").replace("\\n", " ").strip() or piece


def _pieces(line: str, tokenizer: Tokenizer) -> list[str]:
    if tokenizer.count(line) <= LONG_LINE:
        return [line.rstrip()]
    out: list[str] = []
    for sentence in split_sentences(line):
        out += textwrap.wrap(sentence, LONG_PIECE, break_on_hyphens=False) if len(sentence) > LONG_PIECE else [sentence]
    return out or [line.rstrip()]


def segment(text: str, tokenizer: Tokenizer) -> Segmented:
    """The segments of a tool output, with blocks and leads (see the module docstring)."""
    lines, fmt = _as_lines(text)
    segments: list[Segment] = []
    blank_before: set[int] = set()
    pieces: dict[int, int] = {}
    stack: list[tuple[int, int, int]] = []  # open blocks: (indent, block number, lead segment index)
    blocks = 0
    previous_blank = False
    for number, line in enumerate(lines):
        if not line.strip():
            stack.clear()
            previous_blank = True
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] > indent:
            stack.pop()
        if fmt == "json" and _STRUCTURE.match(line):
            continue  # brackets only: the block above ends, nothing to keep
        if previous_blank and segments:
            blank_before.add(number)
        previous_blank = False
        if not stack or stack[-1][0] < indent:
            stack.append((indent, blocks, len(segments)))
            blocks += 1
        _, block, lead = stack[-1]
        parts = _pieces(line, tokenizer)
        pieces[number] = len(parts)
        for part in parts:
            segments.append(Segment(text=part, clean=_clean(part, fmt), line=number, whole=len(parts) == 1,
                                    block=block, lead=lead, tokens=tokenizer.count(part)))
    if blocks == 1 and any(c.isdigit() for c in segments[0].text):
        segments = [dataclasses.replace(s, lead=n) for n, s in enumerate(segments)]
    return Segmented(segments=tuple(segments), format=fmt, blank_before=frozenset(blank_before), pieces=pieces)


def marker(omitted: Iterable[Segment], pieces: dict[int, int]) -> str:
    """One line saying how many lines (and sentences of partly kept lines) a gap holds."""
    by_line: dict[int, int] = {}
    for s in omitted:
        by_line[s.line] = by_line.get(s.line, 0) + 1
    lines = sum(1 for line, n in by_line.items() if n == pieces[line])
    sentences = sum(n for line, n in by_line.items() if n != pieces[line])
    parts = [f"{lines} line{'s' * (lines != 1)}"] if lines else []
    parts += [f"{sentences} sentence{'s' * (sentences != 1)}"] if sentences else []
    return f"[... {' and '.join(parts)} omitted ...]"


def render(segmented: Segmented, keep: Iterable[int]) -> str:
    """The kept segments in original order, each gap replaced by one marker line.

    Consecutive kept sentences of one source line stay on one line; a blank line between kept
    lines is kept.
    """
    segments = segmented.segments
    out: list[str] = []
    previous = -1
    for index in [*sorted(set(keep)), len(segments)]:
        gap = segments[previous + 1:index]
        if gap:
            out.append(marker(gap, segmented.pieces))
        if index == len(segments):
            break
        current = segments[index]
        if previous >= 0 and not gap and segments[previous].line == current.line:
            out[-1] += " " + current.text
        else:
            if previous >= 0 and not gap and current.line in segmented.blank_before:
                out.append("")
            out.append(current.text)
        previous = index
    return "\n".join(out)
