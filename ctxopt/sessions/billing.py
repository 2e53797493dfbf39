"""The bill of one request, given the prompt the provider saw just before it in the same session.

A provider's prompt cache matches the new prompt against what it cached, byte for byte from the
start. :func:`fingerprint` keeps what that needs of a prompt (per message: the tokens up to its
end and a hash of everything up to it; where cache breakpoints sit), so the previous prompt can be
kept in a shared cache as a few numbers and hashes instead of text. :func:`bill` prices the new
prompt under the model's caching rules:

- ``automatic`` (OpenAI, Gemini): the longest common message prefix with the previous prompt is
  served from cache once it reaches ``min_cached_tokens`` (1,024), counted in steps of 128
  tokens; everything else is billed fresh. Writing the cache costs nothing extra.
- ``explicit`` (Anthropic): the cache holds the prefixes that ended at the previous prompt's
  breakpoints (when at least ``min_cached_tokens`` long). The new prompt reads the longest such
  prefix it shares, writes everything from there to its own last breakpoint (at ``cache_write``,
  1.25x list), and pays list price for the rest.
- ``none``: every token at list price.

>>> from ctxopt.pricing import Price
>>> price = Price(input=1_000_000, cache_read=100_000, min_cached_tokens=1024)   # $1 a token, reads 0.1
>>> first = fingerprint([{"role": "user", "content": "x"}], [1500])
>>> second = fingerprint([{"role": "user", "content": "x"}, {"role": "user", "content": "y"}], [1500, 20])
>>> b = bill(second, first, price)
>>> (b.prompt_tokens, b.cached_tokens, b.cost)
(1523, 1408, 255.8)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ctxopt.pricing import OPENAI_CACHE_STEP, Price
from ctxopt.tokens import REPLY_PRIMING

PER = 1_000_000  # prices are per 1M tokens


@dataclasses.dataclass(frozen=True)
class PromptPrint:
    """What the cache rules need of one prompt: the tokens up to the end of each message, a hash
    chain over the messages (``chain[i]`` covers messages ``0..i``), the breakpoint messages, and
    the prefixes the provider holds in its cache after this request (message indexes)."""

    ends: tuple[int, ...]
    chain: tuple[str, ...] = ()
    breakpoints: tuple[int, ...] = ()
    cached: tuple[int, ...] = ()

    @property
    def tokens(self) -> int:
        return (self.ends[-1] if self.ends else 0) + REPLY_PRIMING

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> PromptPrint:
        raw = json.loads(data)
        return cls(**{k: tuple(raw[k]) for k in ("ends", "chain", "breakpoints", "cached")})


@dataclasses.dataclass(frozen=True)
class Bill:
    """One request's input bill: tokens served from cache, written to it, and the cost in US$."""

    prompt_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cost: float = 0.0

    @property
    def fresh_tokens(self) -> int:
        """Tokens billed at list price (not read from, nor written to, the cache)."""
        return self.prompt_tokens - self.cached_tokens - self.cache_write_tokens


def message_hash(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def fingerprint(messages: Sequence[Mapping[str, Any] | bytes], tokens: Sequence[int],
                breakpoints: Sequence[int] = (), *, chain: bool = True) -> PromptPrint:
    """The print of a prompt: ``tokens[i]`` is what message ``i`` costs; ``breakpoints`` are the
    indexes of messages carrying a cache breakpoint. A message may be given as its
    :func:`message_hash` bytes already (a caller replaying many prompts caches them). ``chain=False``
    skips hashing (a request with no previous prompt to compare with needs only the counts)."""
    ends, running, total = [], hashlib.blake2b(digest_size=8), 0
    hashes = []
    for message, count in zip(messages, tokens, strict=True):
        total += count
        ends.append(total)
        if chain:
            running.update(message if isinstance(message, bytes) else message_hash(message))
            hashes.append(running.copy().hexdigest())
    return PromptPrint(ends=tuple(ends), chain=tuple(hashes), breakpoints=tuple(sorted(set(breakpoints))))


def common_messages(current: PromptPrint, previous: PromptPrint | None) -> int:
    """How many leading messages the two prompts share, byte for byte."""
    if previous is None or not current.chain or not previous.chain:
        return 0
    n, hi = 0, min(len(current.chain), len(previous.chain))
    while n < hi and current.chain[n] == previous.chain[n]:
        n += 1
    return n


def bill(current: PromptPrint, previous: PromptPrint | None, price: Price) -> Bill:
    """Price ``current`` under ``price``'s caching rules after ``previous`` (``None``: cold cache)."""
    total = current.tokens
    if price.caching == "automatic":
        shared = common_messages(current, previous)
        common = current.ends[shared - 1] if shared else 0
        cached = 0
        if previous is not None and common >= price.min_cached_tokens:
            cached = price.min_cached_tokens + (common - price.min_cached_tokens) // OPENAI_CACHE_STEP * OPENAI_CACHE_STEP
        return Bill(total, cached, 0, ((total - cached) * price.input + cached * price.cache_read) / PER)
    if price.caching == "explicit":
        read, write = _explicit(current, previous, price.min_cached_tokens)
        fresh = total - read - write
        cost = (fresh * price.input + read * price.cache_read + write * price.cache_write) / PER
        return Bill(total, read, write, cost)
    return Bill(total, 0, 0, total * price.input / PER)


def _explicit(current: PromptPrint, previous: PromptPrint | None, minimum: int) -> tuple[int, int]:
    """Tokens read from and written to an explicit (breakpoint) cache."""
    shared = common_messages(current, previous)
    held = [i for i in (previous.cached if previous else ()) if i < shared]
    read_end = max(held, default=-1)
    read = current.ends[read_end] if read_end >= 0 else 0
    marks = [i for i in current.breakpoints if i < len(current.ends) and current.ends[i] >= minimum]
    last = max(marks, default=-1)
    write = current.ends[last] - read if last > read_end else 0
    return read, write


def after_request(current: PromptPrint, previous: PromptPrint | None, price: Price) -> PromptPrint:
    """``current`` with the prefixes the provider caches once it has served it (what the next
    request of the session can read)."""
    if price.caching != "explicit":
        return current
    shared = common_messages(current, previous)
    held = [i for i in (previous.cached if previous else ()) if i < shared]
    written = [i for i in current.breakpoints if i < len(current.ends) and current.ends[i] >= price.min_cached_tokens]
    return dataclasses.replace(current, cached=tuple(sorted(set(held[-1:] + written))))
