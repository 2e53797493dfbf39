"""Which tokenizer counts a model's prompt, and what the non-text parts of a request cost.

OpenAI models are counted exactly: tiktoken's own model table picks the encoding (``o200k_base``
for gpt-4o, gpt-4.1, gpt-4.5, gpt-5 and the o-series; ``cl100k_base`` for gpt-4 and gpt-3.5), and
both encodings load offline. Models whose tokenizer is not published for offline use (Claude,
Gemini) are counted with ``o200k_base`` times a documented safety margin, rounded up, and the
report says the count is an estimate; pass ``token_counter=`` for exact counts of your own.

>>> tokenizer_for("gpt-4o").name, tokenizer_for("gpt-4").name
('o200k_base', 'cl100k_base')
>>> claude = tokenizer_for("claude-sonnet-4-5")
>>> claude.exact, claude.margin
(False, 1.35)
>>> image_tokens({"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}}, "gpt-4o")
85

Non-text costs, each documented where it is computed:

- images: OpenAI's published formulas by model and ``detail`` (tiles of 512 px for gpt-4o-class
  models, 32 px patches times a multiplier for the mini/nano models); the size is read from the
  image header of inline (base64) images; a linked image of unknown size is charged the most the
  formula allows, so the count never falls short. Claude: ``width * height / 750`` (at most 1,600).
- tool (function) definitions and ``response_format`` schemas: the JSON of each definition plus a
  fixed overhead per tool. OpenAI does not publish how it renders them into the prompt, so these
  counts are estimates (JSON is longer than the rendering OpenAI uses, so they err high), and the
  report says so.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from ctxopt.errors import ConfigError
from ctxopt.tokens import DEFAULT_ENCODING, Tokenizer, get_tokenizer

# Estimates for models without an offline tokenizer: o200k counts times this margin. Claude's
# tokenizer produces more tokens than o200k for the same text (published comparisons put it at
# about +16% on English prose and +30% on code); 1.35 covers code with room to spare. Gemini's
# SentencePiece vocabulary is close to o200k on English; 1.25 covers code and other languages.
MARGINS: dict[str, float] = {"claude": 1.35, "anthropic": 1.35, "gemini": 1.25}
PROVIDER_PREFIXES = ("openai/", "azure/", "anthropic/", "bedrock/", "vertex_ai/", "gemini/", "google/")
TOKENS_PER_TOOL = 12  # framing of each function definition (name, braces, separators)
TOOLS_FRAMING = 10  # the block that introduces the tools


def _bare(model: str) -> str:
    name = model.strip()
    for prefix in PROVIDER_PREFIXES:
        if name.lower().startswith(prefix):
            return name[len(prefix):]
    return name


def encoding_for_model(model: str) -> str | None:
    """tiktoken's encoding for an OpenAI ``model`` (dated snapshots and ``openai/`` prefixes too), or None."""
    import tiktoken

    try:
        return tiktoken.encoding_name_for_model(_bare(model))
    except KeyError:
        return None


def tokenizer_for(
    model: str | None = None, *, encoding: str | None = None, token_counter: Callable[[str], int] | None = None,
) -> Tokenizer:
    """The tokenizer that counts ``model``'s prompts: ``token_counter`` or ``encoding`` when given,
    else the model's own encoding (exact) or an estimate with a margin (Claude, Gemini).

    With no model and no encoding the default is ``$CTXOPT_ENCODING`` or ``cl100k_base``. An
    unknown model is a :class:`ConfigError` that says how to give an encoding or a counter.
    """
    if token_counter is not None:
        if not callable(token_counter):
            raise ConfigError(f"token_counter must be a callable (text) -> int, got {type(token_counter).__name__}")
        return CallableTokenizer(token_counter)
    if encoding is not None:
        return get_tokenizer(encoding)
    if model is None:
        return get_tokenizer()
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"model must be a model name such as 'gpt-4o', got {model!r}")
    found = encoding_for_model(model)
    if found is not None:
        return get_tokenizer(found, images=model)
    family = next((f for f in MARGINS if _bare(model).lower().startswith(f) or model.lower().startswith(f)), None)
    if family is not None:
        return get_tokenizer("o200k_base", margin=MARGINS[family], images=model)
    raise ConfigError(
        f"ctxopt does not know how to count tokens for model {model!r}",
        hint=f"give encoding='o200k_base' (or '{DEFAULT_ENCODING}') for a tiktoken encoding, or "
             "token_counter=<callable(text) -> int> for exact counts of your own, and price_per_1k= for its input price",
        cli_hint=f"give --encoding o200k_base (or {DEFAULT_ENCODING}) to count it with a tiktoken encoding, and "
                 "--price USD for its input price per 1k tokens (encoding and price_per_1k in a --pipeline file)",
    )


class CallableTokenizer(Tokenizer):
    """A tokenizer around the user's ``(text) -> int`` counter; treated as exact, with OpenAI's
    per-message framing (3 tokens per message, 3 for the reply)."""

    def __init__(self, count: Callable[[str], int]) -> None:
        self.name = getattr(count, "__name__", "token_counter")
        self.margin = 1.0
        self.images = None
        self._user_count = count
        self._cached_count = lru_cache(maxsize=4096)(self._count)

    def __repr__(self) -> str:
        return f"CallableTokenizer({self.name})"

    def _count(self, text: str) -> int:
        n = self._user_count(text)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"token_counter returned {n!r} for a text; it must return a whole number >= 0")
        return n

    def encode(self, text: str) -> list[int]:
        raise ConfigError("a token_counter counts but cannot encode; this operation needs a tiktoken encoding")

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix with at most ``max_tokens`` tokens, by bisection over characters."""
        if self.count(text) <= max_tokens:
            return text
        low, high = 0, len(text)
        while low < high:
            middle = (low + high + 1) // 2
            if self.count(text[:middle]) <= max_tokens:
                low = middle
            else:
                high = middle - 1
        return text[:low]


# -- images -----------------------------------------------------------------------------------

# OpenAI, tile formula: (base tokens, tokens per 512 px tile) by model prefix, longest prefix first.
_TILES: dict[str, tuple[int, int]] = {
    "gpt-4o-mini": (2833, 5667),
    "gpt-5-chat": (70, 140),
    "gpt-5": (70, 140),
    "gpt-4.5": (85, 170),
    "gpt-4.1": (85, 170),
    "gpt-4o": (85, 170),
    "chatgpt-4o": (85, 170),
    "gpt-4": (85, 170),
    "o1": (75, 150),
    "o3": (75, 150),
    "computer-use": (65, 129),
}
# OpenAI, patch formula: 32 px patches (at most 1,536 after scaling) times a multiplier.
_PATCHES: dict[str, float] = {
    "gpt-5-mini": 1.62, "gpt-5-nano": 2.46, "gpt-4.1-mini": 1.62, "gpt-4.1-nano": 2.46, "o4-mini": 1.72,
}
PATCH_CAP = 1536
MAX_TILES = 8  # the most tiles the tile formula can give (an image scaled to 768 x 2048)
CLAUDE_MAX_IMAGE_TOKENS = 1600  # images are scaled to at most ~1.15 megapixels: 1,150,000 / 750
UNKNOWN_IMAGE_TOKENS = 1600  # any other model: a conservative figure per image


def _rule(model: str | None) -> tuple[str, Any]:
    name = _bare(model or "gpt-4o").lower()
    for prefix, multiplier in _PATCHES.items():
        if name.startswith(prefix):
            return "patches", multiplier
    for prefix, costs in sorted(_TILES.items(), key=lambda kv: -len(kv[0])):
        if name.startswith(prefix):
            return "tiles", costs
    if name.startswith(("claude", "anthropic")):
        return "claude", None
    return "unknown", None


def image_size(url: str) -> tuple[int, int] | None:
    """Width and height from the header of an inline ``data:`` image (PNG, JPEG, GIF, WebP), else None."""
    if not url.startswith("data:") or "," not in url:
        return None
    try:
        head = base64.b64decode(url.split(",", 1)[1][:65536] + "===", validate=False)
    except (binascii.Error, ValueError):
        return None
    return _header_size(head)


def _header_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        if chunk == b"VP8 " and len(data) >= 30:
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
        if chunk == b"VP8L" and len(data) >= 25:
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if data[:2] == b"\xff\xd8":  # JPEG: walk the segments to a start-of-frame marker
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                height, width = struct.unpack(">HH", data[i + 5:i + 9])
                return int(width), int(height)
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def _tiles(width: int, height: int) -> int:
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    return math.ceil(w * scale / 512) * math.ceil(h * scale / 512)


def _patches(width: int, height: int) -> int:
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    if patches <= PATCH_CAP:
        return patches
    shrink = math.sqrt(PATCH_CAP * 32 * 32 / (width * height))
    w, h = width * shrink, height * shrink
    # scale down further so whole patches fit, as OpenAI's published algorithm does
    shrink = min(math.floor(w / 32) / (w / 32), math.floor(h / 32) / (h / 32))
    return min(PATCH_CAP, math.ceil(w * shrink / 32) * math.ceil(h * shrink / 32))


def image_tokens(part: Mapping[str, Any], model: str | None) -> int:
    """Tokens an image content part costs for ``model`` (OpenAI ``image_url`` or ``input_image``,
    Anthropic ``image``); the most the formula allows when the size cannot be read."""
    source = part.get("image_url", part.get("source", part.get("url", "")))
    url = source.get("url", "") if isinstance(source, Mapping) else str(source)
    if isinstance(source, Mapping) and source.get("type") == "base64":  # Anthropic inline image
        url = f"data:{source.get('media_type', '')};base64,{source.get('data', '')}"
    detail = (source.get("detail") if isinstance(source, Mapping) else None) or part.get("detail") or "auto"
    size = image_size(url) if isinstance(url, str) else None
    rule, value = _rule(model)
    if rule == "tiles":
        base, per_tile = value
        if detail == "low":
            return int(base)
        tiles = _tiles(*size) if size else MAX_TILES
        return int(base + per_tile * tiles)
    if rule == "patches":
        patches = _patches(*size) if size else PATCH_CAP
        return math.ceil(patches * value)
    if rule == "claude":
        return min(CLAUDE_MAX_IMAGE_TOKENS, math.ceil(size[0] * size[1] / 750)) if size else CLAUDE_MAX_IMAGE_TOKENS
    return UNKNOWN_IMAGE_TOKENS


# -- tools and response formats ------------------------------------------------------------------

def tools_tokens(tools: Sequence[Any] | None, tokenizer: Tokenizer) -> int:
    """Estimated tokens of tool (or legacy ``functions``) definitions: each definition's JSON plus
    a fixed framing per tool; 0 when there are none."""
    if not tools:
        return 0
    if isinstance(tools, (str, bytes)) or not isinstance(tools, Sequence):
        raise ConfigError(f"tools must be a list of tool definitions, got {type(tools).__name__}")
    total = TOOLS_FRAMING
    for tool in tools:
        total += TOKENS_PER_TOOL + tokenizer.count(_json(tool, "a tool definition"))
    return total


def response_format_tokens(response_format: Any, tokenizer: Tokenizer) -> int:
    """Estimated tokens of a ``response_format`` (a JSON schema costs its JSON); 0 for plain text."""
    if not response_format or (isinstance(response_format, Mapping) and response_format.get("type") == "text"):
        return 0
    return TOKENS_PER_TOOL + tokenizer.count(_json(response_format, "response_format"))


def _json(value: Any, what: str) -> str:
    if hasattr(value, "model_dump"):  # an SDK or pydantic object
        value = value.model_dump(exclude_none=True)
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} cannot be serialised to JSON ({exc}); pass plain dicts and lists") from exc
