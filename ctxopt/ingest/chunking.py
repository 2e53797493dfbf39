"""Chunking by tokens at sentence boundaries, with overlap.

Sentences are packed greedily until the next one would pass ``max_tokens``; the next chunk starts
with the last sentences of the previous one, up to ``overlap`` tokens, so a fact cut by a chunk
boundary is whole in one of the two. A sentence longer than ``max_tokens`` is cut between words
(so its punctuation stays with its word); only a word longer than a whole chunk is cut by tokens.

>>> chunk_text("One. Two. Three.", max_tokens=3, overlap=0)
['One.', 'Two.', 'Three.']
"""

from __future__ import annotations

import re

from ctxopt.errors import ConfigError
from ctxopt.text import split_sentences
from ctxopt.tokens import Tokenizer, get_tokenizer

_WORDS = re.compile(r"\S+\s*")


def _join(sentences: list[tuple[str, int]]) -> str:
    # A heading or list line (no sentence end) keeps its line break, so it stays its own sentence.
    text = ""
    for sentence, _ in sentences:
        text += (("\n" if text[-1] not in ".!?\"')]" else " ") if text else "") + sentence
    return text


def _cut_long(sentence: str, max_tokens: int, tokenizer: Tokenizer) -> list[tuple[str, int]]:
    """A sentence over ``max_tokens`` in parts that each fit, cut between words so punctuation stays
    with its word; only a single word longer than the limit is cut inside, by tokens."""
    parts: list[tuple[str, int]] = []
    words: list[str] = []
    estimate = 0  # tokens of the words so far, each counted alone: cheap, and exact once verified

    def flush() -> None:
        nonlocal words, estimate
        while words:
            # Joining can merge tokens differently from the words alone: take the longest prefix
            # of words whose joined text truly fits, keep the rest for the next part.
            end = len(words)
            while end > 1 and tokenizer.count("".join(words[:end]).strip()) > max_tokens:
                end -= 1
            part = "".join(words[:end]).strip()
            parts.append((part, tokenizer.count(part)))
            words = words[end:]
        estimate = 0

    # Words keep the spacing that follows them, so a part is a verbatim slice of the sentence.
    for word in _WORDS.findall(sentence):
        n = tokenizer.count(" " + word.strip())
        if words and estimate + n > max_tokens:
            flush()
        while tokenizer.count(word.strip()) > max_tokens:  # one word longer than a whole chunk
            flush()
            whole = word.strip()
            head = tokenizer.truncate(whole, max_tokens)
            # Leave the word's closing punctuation with the rest of the word, never on its own.
            while len(head) > 1 and not any(c.isalnum() for c in whole[len(head):]) and any(c.isalnum() for c in head):
                head = head[:-1]
            if not head:
                raise ConfigError(
                    f"max_tokens={max_tokens} is too small: the character {word[0]!r} alone takes "
                    f"{tokenizer.count(word[0])} tokens; use a larger max_tokens"
                )
            parts.append((head, tokenizer.count(head)))
            word = word[len(head):]
        words.append(word)
        estimate += n
    flush()
    return parts


def chunk_text(text: str, *, max_tokens: int = 512, overlap: int = 64, tokenizer: Tokenizer | None = None) -> list[str]:
    """``text`` in chunks of at most ``max_tokens`` tokens, counted exactly on each chunk's text."""
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ConfigError(f"chunking needs max_tokens >= 1 and 0 <= overlap < max_tokens, got {max_tokens}, {overlap}")
    tokenizer = tokenizer or get_tokenizer()
    sentences = split_sentences(text)
    whole = _join([(sentence, 0) for sentence in sentences])
    if not whole or tokenizer.count(whole) <= max_tokens:  # most documents are one chunk: one count, no packing
        return [whole] if whole else []
    pieces: list[tuple[str, int]] = []
    for sentence in sentences:
        n = tokenizer.count(sentence)
        pieces.extend([(sentence, n)] if n <= max_tokens else _cut_long(sentence, max_tokens, tokenizer))

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
            for previous in reversed(current):
                candidate = [previous, *carried]
                if not fits(candidate, overlap) or not fits(candidate + [piece], max_tokens):
                    break
                carried = candidate
            current = carried
        current.append(piece)
    if current:
        chunks.append(_join(current))
    return chunks
