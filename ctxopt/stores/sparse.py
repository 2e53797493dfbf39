"""Keyword vectors: BM25 term weights as sparse vectors, so keyword search runs inside the store.

BM25 splits into a per-document part and a per-corpus part. The document part, term-frequency
saturation with length normalisation, is stored as the sparse vector's values::

    w(t, d) = tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avgdl))

The corpus part, IDF, is left to the store (Qdrant's ``Modifier.IDF``), which keeps it exact as
documents come and go. A query vector holds 1 per query term, so the dot product is BM25.

Terms are lowercased words with stopwords removed and a Snowball (Porter2) English stem; a term's
index is a stable 31-bit hash of the stem, so no vocabulary has to be stored or shared.

>>> terms("The cells were dividing rapidly")
['cell', 'divid', 'rapid']
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from functools import lru_cache

K1 = 1.2
B = 0.75

_WORD = re.compile(r"[^\W_]+")
# Lucene's English stopwords plus common function words; short on purpose, because in scientific
# text words like "not" or "no" can carry the meaning of a claim.
STOPWORDS = frozenset("""
a an and are as at be but by for if in into is it of on or such that the their then there these
they this to was will with were been being has have had do does did from which who whom its it's
than so can could would should may might i we you he she them our your his her my me us also
""".split())


@lru_cache(maxsize=1)
def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer().stemWord(word)


def terms(text: str) -> list[str]:
    """The keyword terms of ``text``, in order (lowercase, no stopwords, stemmed)."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


@lru_cache(maxsize=200_000)
def term_index(term: str) -> int:
    """A stable index for ``term`` in [0, 2**31): a hash, so every process agrees without a vocabulary."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "little") & 0x7FFFFFFF


def _sparse(counts: Counter[str], weight) -> tuple[list[int], list[float]]:
    merged: dict[int, float] = {}
    for term, tf in counts.items():
        index = term_index(term)
        merged[index] = merged.get(index, 0.0) + weight(tf)  # a hash collision adds up, never errors
    indices = sorted(merged)
    return indices, [merged[i] for i in indices]


def doc_vector(text: str, avgdl: float, *, k1: float = K1, b: float = B) -> tuple[list[int], list[float]]:
    """The BM25 document-side weights of ``text`` as (indices, values)."""
    words = terms(text)
    norm = k1 * (1 - b + b * len(words) / max(avgdl, 1e-9))
    return _sparse(Counter(words), lambda tf: tf * (k1 + 1) / (tf + norm))


def query_vector(text: str) -> tuple[list[int], list[float]]:
    """The query side: each query term counts once per occurrence."""
    return _sparse(Counter(terms(text)), float)


def doc_length(text: str) -> int:
    """The document length BM25 normalises by: its number of terms."""
    return len(terms(text))
