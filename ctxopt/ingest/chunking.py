"""Chunking by tokens at sentence boundaries, with overlap.

Sentences are packed greedily until the next one would pass ``max_tokens``; the next chunk starts
with the last sentences of the previous one, up to ``overlap`` tokens, so a fact cut by a chunk
boundary is whole in one of the two. A sentence longer than ``max_tokens`` is cut by tokens.

>>> chunk_text("One. Two. Three.", max_tokens=3, overlap=0)
['One.', 'Two.', 'Three.']
"""

from __future__ import annotations

from ctxopt.errors import ConfigError
from ctxopt.text import split_sentences
from ctxopt.tokens import Tokenizer, get_tokenizer


def _join(sentences: list[tuple[str, int]]) -> str:
    # A heading or list line (no sentence end) keeps its line break, so it stays its own sentence.
    text = ""
    for sentence, _ in sentences:
        text += (("\n" if text[-1] not in ".!?\"')]" else " ") if text else "") + sentence
    return text


def chunk_text(text: str, *, max_tokens: int = 512, overlap: int = 64, tokenizer: Tokenizer | None = None) -> list[str]:
    """``text`` in chunks of at most ``max_tokens`` tokens (sentence-joined, so counts are close)."""
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ConfigError(f"chunking needs max_tokens >= 1 and 0 <= overlap < max_tokens, got {max_tokens}, {overlap}")
    tokenizer = tokenizer or get_tokenizer()
    pieces: list[tuple[str, int]] = []
    for sentence in split_sentences(text):
        n = tokenizer.count(sentence)
        if n <= max_tokens:
            pieces.append((sentence, n))
            continue
        tokens = tokenizer.encode(sentence)
        for start in range(0, len(tokens), max_tokens):
            part = tokenizer.decode(tokens[start:start + max_tokens]).strip()
            if part:
                pieces.append((part, tokenizer.count(part)))
    def fits(sentences: list[tuple[str, int]], limit: int) -> bool:
        # the sum of counts is a quick bound; joining can merge tokens, so check the text itself
        if sum(n for _, n in sentences) > limit:
            return False
        return tokenizer.count(_join(sentences)) <= limit

    chunks: list[str] = []
    current: list[tuple[str, int]] = []
    for piece in pieces:
        if current and not fits(current + [piece], max_tokens):
            chunks.append(_join(current))
            carried: list[tuple[str, int]] = []
            for sentence in reversed(current):
                candidate = [sentence, *carried]
                if not fits(candidate, overlap) or not fits(candidate + [piece], max_tokens):
                    break
                carried = candidate
            current = carried
        current.append(piece)
    if current:
        chunks.append(_join(current))
    return chunks
