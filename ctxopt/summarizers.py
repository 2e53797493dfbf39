"""Summarisers: any callable ``(text, max_tokens) -> str``. Two ship with ctxopt.

* :class:`ExtractiveSummarizer` (the default) needs no model: it keeps the most informative,
  non-redundant sentences of the text within the token target, with each line's label
  (``"Caroline (8 May 2023): ..."``) so speakers and dates survive.
* :func:`openai_summarizer` adapts any OpenAI-compatible chat client
  (``client.chat.completions.create(model=..., messages=...)``) without depending on ``openai``.

Whatever a summariser returns, :func:`fit_to_tokens` cuts it to the target at a sentence boundary;
the summary stage applies it to every summariser, so a long-winded LLM cannot break the budget.

>>> text = "Ann (1 May): I adopted a dog named Rex. Wow!\\nBob (1 May): Cool, great."
>>> ExtractiveSummarizer()(text, 12)
'Ann (1 May): I adopted a dog named Rex.'
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Callable
from typing import Any

from ctxopt.text import idf, keywords, split_sentences
from ctxopt.tokens import Tokenizer, get_tokenizer

Summarizer = Callable[[str, int], str]

# "Speaker (date): text" or "Speaker: text" at the start of a line; labels are short.
_LABEL = re.compile(r"^([^:\n]{1,80}):\s+(.*)$")
DEFAULT_PROMPT = (
    "Summarise the conversation below for an assistant who will continue it. Keep names, dates, "
    "numbers, decisions and facts people stated about themselves; drop greetings and small talk. "
    "Write at most {max_tokens} tokens as short factual sentences, one line per speaker turn, "
    "starting each line with the speaker's name and the date if given."
)


def fit_to_tokens(text: str, max_tokens: int, encoding: str | Tokenizer | None = None) -> str:
    """``text`` cut to at most ``max_tokens`` tokens, at a sentence boundary if it can be."""
    tokenizer = encoding if isinstance(encoding, Tokenizer) else get_tokenizer(encoding)
    if max_tokens <= 0:
        return ""
    if tokenizer.count(text) <= max_tokens:
        return text
    out = ""
    for line in (line for line in text.splitlines() if line.strip()):
        for k, sentence in enumerate(split_sentences(line)):
            candidate = out + (("\n" if out else "") if k == 0 else " ") + sentence
            if tokenizer.count(candidate) > max_tokens:
                # Even the first sentence is too long: a token-level cut is all that is left.
                return out or tokenizer.truncate(text, max_tokens).rstrip()
            out = candidate
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExtractiveSummarizer:
    """Pick informative, non-redundant sentences; keep line labels; return them in original order.

    A sentence's score is the IDF weight of its content words (rare names, places and numbers
    count most) per square root of its length, so chit-chat ("Wow, that's great!") scores low.
    A sentence sharing more than ``redundancy`` of its words with an already chosen one is skipped.
    """

    redundancy: float = 0.6
    encoding: str | None = None

    @property
    def id(self) -> str:
        return f"extractive:{self.redundancy}"

    def __call__(self, text: str, max_tokens: int) -> str:
        tokenizer = get_tokenizer(self.encoding)
        lines: list[tuple[str, list[str]]] = []
        for line in text.splitlines():
            if not line.strip():
                continue
            match = _LABEL.match(line.strip())
            label, body = (match.group(1), match.group(2)) if match else ("", line.strip())
            lines.append((label, split_sentences(body)))
        sentences = [(n, s, keywords(s)) for n, (_, sents) in enumerate(lines) for s in sents]
        weights = idf(words for _, _, words in sentences)
        scored = sorted(
            range(len(sentences)),
            key=lambda k: -sum(weights[w] for w in sentences[k][2]) / math.sqrt(1 + tokenizer.count(sentences[k][1])),
        )
        chosen: list[int] = []
        chosen_words: list[frozenset[str]] = []
        for k in scored:
            words = sentences[k][2]
            if len(words) < 2:
                continue  # chit-chat ("Wow, that's great!") carries nothing worth keeping
            if any(len(words & other) > self.redundancy * len(words) for other in chosen_words):
                continue
            candidate = self._render(lines, sentences, sorted([*chosen, k]))
            if tokenizer.count(candidate) <= max_tokens:
                chosen.append(k)
                chosen_words.append(words)
        return self._render(lines, sentences, sorted(chosen))

    @staticmethod
    def _render(lines: list[tuple[str, list[str]]], sentences: list[tuple[int, str, Any]], chosen: list[int]) -> str:
        out: list[str] = []
        last_line = None
        for k in chosen:
            line, sentence, _ = sentences[k]
            if line == last_line:
                out[-1] += " " + sentence
            else:
                label = lines[line][0]
                out.append(f"{label}: {sentence}" if label else sentence)
                last_line = line
        return "\n".join(out)


def openai_summarizer(client: Any, model: str, *, prompt: str = DEFAULT_PROMPT,
                      temperature: float = 0.0) -> Summarizer:
    """A summariser calling ``client.chat.completions.create`` (OpenAI, vLLM, Ollama, LiteLLM, ...).

    >>> class Fake:  # any object with the OpenAI client's shape works
    ...     class chat:
    ...         class completions:
    ...             @staticmethod
    ...             def create(model, messages, **kw):
    ...                 msg = type("M", (), {"content": "Ann adopted Rex."})
    ...                 return type("R", (), {"choices": [type("C", (), {"message": msg})]})
    >>> openai_summarizer(Fake, "gpt-4o-mini")("Ann: I adopted a dog, Rex.", 50)
    'Ann adopted Rex.'
    """

    def summarize(text: str, max_tokens: int) -> str:
        response = client.chat.completions.create(
            model=model,
            messages=[{"role": "system", "content": prompt.format(max_tokens=max_tokens)},
                      {"role": "user", "content": text}],
            max_tokens=max_tokens,
            temperature=temperature,
        )
        return (response.choices[0].message.content or "").strip()

    summarize.id = f"openai:{model}:{hashlib.sha256(prompt.encode()).hexdigest()[:12]}"  # type: ignore[attr-defined]
    return summarize
