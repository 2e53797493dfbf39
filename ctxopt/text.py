"""Plain-text helpers for the pruning and summary stages: sentences, keywords, overlap scores.

No models and no downloads: a regex sentence splitter, a stop-word list, Snowball stems (shared
with the keyword store, ctxopt.stores.sparse), and an IDF-weighted keyword overlap.

>>> split_sentences("Mars is red. It has two moons! Dr. Who? Yes.")
['Mars is red.', 'It has two moons!', 'Dr. Who?', 'Yes.']
>>> sorted(keywords("The cats were chasing mice"))
['cat', 'chase', 'mice']
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

# A sentence ends at . ! ? (optionally closed by quotes/brackets) followed by space and an
# uppercase letter, digit or quote. Abbreviations like "Dr." and initials are not split.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc inc ltd co corp mt no fig e.g i.e u.s a.m p.m jan feb mar apr "
    "jun jul aug sep sept oct nov dec".split()
)
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][a-z]+)?")
STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been before
    being below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves also did does what's which whose
    i'm i've it's that's there's don't didn't isn't wasn't can't won't us one two many much may might
    shall yes ok okay oh hey hi really like get got go going just well wow cool great awesome thanks
    thank yeah yep nice amazing glad sounds sure lol haha""".split()
)


# A line break ends a sentence unless the next line starts in lower case (prose wrapped at a fixed
# width, as in Markdown files); blank lines, headings and list items always end one.
_LINE_BREAK = re.compile(r"\s*\n\s*(?![a-z])")
_WRAPPED = re.compile(r"\s*\n\s*")


def split_sentences(text: str) -> list[str]:
    r"""Sentences of ``text`` (stripped, non-empty); a text with no sentence end is one sentence.

    >>> split_sentences("The item must be unused\nand boxed.\n\n# Fees\n- 10% on opened items")
    ['The item must be unused and boxed.', '# Fees', '- 10% on opened items']
    """
    out: list[str] = []
    for line in _LINE_BREAK.split(text):
        pending = ""
        for part in _SENTENCE_END.split(_WRAPPED.sub(" ", line.strip())):
            part = part.strip()
            if not part:
                continue
            pending = f"{pending} {part}" if pending else part
            last = pending.rsplit(None, 1)[-1].rstrip(".").lower()
            # "Dr." or an initial ("J.") ends the piece but not the sentence: join with the next.
            if last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha() and pending.endswith(".")):
                continue
            out.append(pending)
            pending = ""
        if pending:
            out.append(pending)
    return out


@lru_cache(maxsize=1)
def _stemmed_stopwords() -> frozenset[str]:
    from ctxopt.stores.sparse import terms

    return frozenset(terms(" ".join(STOPWORDS)))


@lru_cache(maxsize=200_000)
def keywords(text: str) -> frozenset[str]:
    """The stemmed, lower-cased content words of ``text`` (stop words removed). Cached by text.

    Stems come from the store's keyword terms (Snowball), so pruning and keyword search agree;
    the stop list here is longer because chat turns are full of "hey", "really", "got".
    """
    from ctxopt.stores.sparse import terms

    stop = _stemmed_stopwords()
    return frozenset(t for t in terms(text.replace("’", "'")) if t not in stop and len(t) > 1)


@lru_cache(maxsize=100_000)
def entities(text: str) -> frozenset[str]:
    """Capitalised words and numbers not at a sentence start: a cheap stand-in for named entities."""
    found = set()
    for sentence in split_sentences(text):
        words = _WORD.findall(sentence)
        for position, word in enumerate(words):
            if ((word[0].isupper() and position > 0) or word.isdigit()) and word.lower() not in STOPWORDS:
                found.add(word.lower())
    return frozenset(found)


def idf(documents: Iterable[frozenset[str]]) -> dict[str, float]:
    """Smoothed inverse document frequency of every keyword in ``documents``."""
    docs = list(documents)
    counts = Counter(word for doc in docs for word in doc)
    n = len(docs)
    return {word: math.log(1.0 + (n - df + 0.5) / (df + 0.5)) for word, df in counts.items()}


def overlap_all(query: frozenset[str], documents: Sequence[frozenset[str]], weights: dict[str, float],
                default: float = 1.0) -> list[float]:
    """Share of the query's keyword weight found in each document, each in [0, 1]; a query word
    missing from ``weights`` weighs ``default``."""
    weighted = {w: weights.get(w, default) for w in query}
    total = sum(weighted.values())
    if not total:
        return [0.0] * len(documents)
    return [sum(weighted[w] for w in query & d) / total for d in documents]


def overlaps(query: str, documents: Sequence[str]) -> list[float]:
    """IDF-weighted keyword overlap of ``query`` with each document (IDF over ``documents``)."""
    sets = [keywords(d) for d in documents]
    weights = idf(sets)
    q = keywords(query)
    # A query word seen in no document gets the highest weight it could have.
    default = max(weights.values(), default=1.0)
    return overlap_all(q, sets, weights, default)
