"""Per-model prices: fresh input, cache read and cache write, in US$ per 1M tokens.

Where prices come from, first match wins:

1. prices you give: ``Pipeline(prices={"my-model": {"input": 3.0, "cache_read": 0.3}})``, a
   pipeline TOML's ``[prices."my-model"]`` table, or a JSON/TOML file named by $CTXOPT_PRICES
   (or ``--prices`` on the CLI) holding that same mapping;
2. litellm's model cost map, read from the installed ``litellm`` package's data file (litellm
   itself is never imported: it takes seconds);
3. the snapshot shipped in ``ctxopt/data/prices.json``, generated from that map by
   ``scripts/update_prices.py`` (the file says when and from which litellm version).

A model id is looked up as given, then without a provider prefix (``openai/``, ``azure/``,
``anthropic/``, ``bedrock/anthropic.…-v1:0``, ``…@20250929``), then a dated snapshot
(``gpt-4o-2024-08-06``, ``claude-sonnet-4-5-20250929``) without its date when that date is not
listed, and an undated alias (``claude-sonnet-4``) as its one dated id. The price's ``model`` and
``source`` say what was used. An unknown model is a :class:`ConfigError` saying how to give a
price; ctxopt never prices a request as some other model.

Caching follows the provider: OpenAI and Gemini cache prefixes automatically (``"automatic"``);
Anthropic caches at ``cache_control`` breakpoints, reads at 0.1x and writes at 1.25x
(``"explicit"``); a model without a cached price is ``"none"``.

>>> price = price_of("openai/gpt-4o-2024-08-06")
>>> (price.model, price.input, price.cache_read, price.caching)
('gpt-4o-2024-08-06', 2.5, 1.25, 'automatic')
>>> price_of("claude-sonnet-4-5").cache_write
3.75
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Literal

from ctxopt.errors import ConfigError

DEFAULT_MODEL = "gpt-4o"
PRICES_ENV = "CTXOPT_PRICES"
CACHING = ("automatic", "explicit", "none")
Caching = Literal["automatic", "explicit", "none"]
LITELLM_FILE = "model_prices_and_context_window_backup.json"
SNAPSHOT = "prices.json"
# OpenAI caches prompts of 1,024 tokens or more, in steps of 128; Anthropic's minimum cacheable
# prefix depends on the model (its prompt-caching docs), Gemini's implicit cache on the tier.
OPENAI_MIN_CACHED, OPENAI_CACHE_STEP = 1024, 128
_ANTHROPIC_MIN = ((r"opus-4-[5-9]|haiku-4-5|opus-[5-9]|haiku-[5-9]", 4096), (r"sonnet-4-6|haiku", 2048))
_GEMINI_MIN = ((r"pro", 2048),)
_PREFIXES = re.compile(r"^(?:[\w.-]+/)+")
_BEDROCK = re.compile(r"^(?:[a-z]{2}\.)?anthropic\.|-v\d+(?::\d+)?$")
_DATE = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Price:
    """One model's prices in US$ per 1M input tokens, and how its provider caches prompts.

    ``cache_read`` and ``cache_write`` default to ``input`` (no discount, no surcharge; NaN, the
    default, means "not given").
    ``min_cached_tokens`` is the shortest prefix the provider caches.
    """

    input: float
    cache_read: float = math.nan
    cache_write: float = math.nan
    caching: Caching = "automatic"
    min_cached_tokens: int = OPENAI_MIN_CACHED
    model: str = ""
    source: str = "given"

    def __post_init__(self) -> None:
        label = f"price of {self.model!r}" if self.model else "price"
        for field in ("input", "cache_read", "cache_write"):
            value = getattr(self, field)
            if field != "input" and isinstance(value, float) and math.isnan(value):
                object.__setattr__(self, field, self.input)
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ConfigError(f"{label}: {field} must be a non-negative number of US$ per 1M tokens, got {value!r}")
            object.__setattr__(self, field, float(value))
        if self.caching not in CACHING:
            raise ConfigError(f"{label}: caching must be one of {', '.join(CACHING)}, got {self.caching!r}")
        if isinstance(self.min_cached_tokens, bool) or not isinstance(self.min_cached_tokens, int) \
                or self.min_cached_tokens < 0:
            raise ConfigError(f"{label}: min_cached_tokens must be a whole number >= 0, got {self.min_cached_tokens!r}")

    @property
    def per_1k(self) -> float:
        """The input price per 1k tokens (what reports showed before cache prices)."""
        return self.input / 1000

    def scaled(self, input_per_1m: float, source: str) -> Price:
        """This price with a new input price, the cache prices keeping their ratios to it."""
        ratio = input_per_1m / self.input if self.input else 0.0
        return dataclasses.replace(self, input=input_per_1m, cache_read=self.cache_read * ratio,
                                   cache_write=self.cache_write * ratio, source=source)


def price_of(model: str, prices: Mapping[str, Any] | None = None, *, price_per_1k: float | None = None) -> Price:
    """The price of ``model``: from ``prices`` (yours), $CTXOPT_PRICES, litellm's map, the snapshot.

    ``price_per_1k`` (US$ per 1k input tokens, the older override) replaces the input price; the
    cache prices keep the model's ratios when the model is known, else there is no cache discount.
    """
    if not isinstance(model, str) or not model:
        raise ConfigError(f"model must be a model name such as 'gpt-4o', got {model!r}")
    if price_per_1k is not None:
        if isinstance(price_per_1k, bool) or not isinstance(price_per_1k, (int, float)) \
                or not 0 <= price_per_1k < math.inf:
            raise ConfigError(f"price_per_1k must be a non-negative number, got {price_per_1k!r}")
        try:
            known = price_of(model, prices)
        except ConfigError:
            return Price(input=price_per_1k * 1000, caching="none", model=model, source="price_per_1k")
        return known.scaled(price_per_1k * 1000, "price_per_1k")
    for source, table in _tables(prices):
        found = _find(model, table)
        if found is not None:
            name, entry = found
            return _price(name, entry, source if name == model else f"{source}, as {name!r}")
    raise ConfigError(
        f"no price known for model {model!r} (looked in your prices, ${PRICES_ENV}, {_litellm_label()} and "
        f"ctxopt's snapshot of {snapshot_info()['generated']})",
        hint=f"give one in US$ per 1M tokens: Pipeline(model={model!r}, prices={{{model!r}: {{'input': 3.0, "
             f"'cache_read': 0.3, 'cache_write': 3.75}}}}), a [prices.\"{model}\"] table in the pipeline TOML, or a "
             f"JSON/TOML file of such tables in ${PRICES_ENV}; price_per_1k= sets the input price alone",
        cli_hint=f"give its price: --prices FILE (JSON or TOML like {{\"{model}\": {{\"input\": 3.0, "
                 f"\"cache_read\": 0.3}}}}, US$ per 1M tokens), ${PRICES_ENV}, or --price USD (per 1k input tokens)",
    )


def _tables(prices: Mapping[str, Any] | None) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if prices:
        yield "your prices", check_prices(prices)
    env = os.environ.get(PRICES_ENV)
    if env:
        yield f"${PRICES_ENV} ({env})", load_prices(env)
    litellm = _litellm_map()
    if litellm is not None:
        yield litellm
    yield f"ctxopt snapshot of {snapshot_info()['generated']}", _snapshot()["models"]


def _candidates(model: str) -> Iterator[str]:
    yield model
    name = _PREFIXES.sub("", model)
    name = _BEDROCK.sub("", name).replace("@", "-")
    yield name
    undated = _DATE.sub("", name)
    if undated != name:
        yield undated


def _find(model: str, table: Mapping[str, Any]) -> tuple[str, Any] | None:
    for name in _candidates(model):
        if name in table:
            return name, table[name]
    # An alias ("claude-sonnet-4") whose only listed id is dated ("claude-sonnet-4-20250514").
    name = _BEDROCK.sub("", _PREFIXES.sub("", model))
    dated = [k for k in table if k.startswith(name + "-") and _DATE.fullmatch(k[len(name):])]
    return (dated[0], table[dated[0]]) if len(dated) == 1 else None


def _price(name: str, entry: Any, source: str) -> Price:
    if isinstance(entry, Price):
        return dataclasses.replace(entry, model=entry.model or name, source=entry.source if entry.source != "given" else source)
    if isinstance(entry, (int, float)) and not isinstance(entry, bool):
        return Price(input=entry, caching="none", model=name, source=source)
    if not isinstance(entry, Mapping) or "input" not in entry:
        raise ConfigError(f"price of {name!r} must be a number (US$ per 1M input tokens) or a table with 'input' "
                          f"(and optionally cache_read, cache_write, caching, min_cached_tokens), got {entry!r}")
    unknown = set(entry) - {"input", "cache_read", "cache_write", "caching", "min_cached_tokens", "provider", "source"}
    if unknown:
        raise ConfigError(f"price of {name!r} has unknown key(s) {', '.join(sorted(unknown))}; "
                          "use input, cache_read, cache_write, caching, min_cached_tokens")
    provider = str(entry.get("provider") or "")
    fields = {k: entry[k] for k in ("input", "cache_read", "cache_write") if entry.get(k) is not None}
    caching: Any = entry.get("caching") or _caching(name, provider, fields)
    minimum = entry.get("min_cached_tokens", _min_cached(name, caching))
    origin = f"{source} ({entry['source']})" if entry.get("source") and entry["source"] not in source else source
    return Price(**fields, caching=caching, min_cached_tokens=minimum, model=name, source=origin)


def _caching(name: str, provider: str, fields: Mapping[str, float]) -> str:
    read, write = fields.get("cache_read"), fields.get("cache_write")
    if provider == "anthropic" or name.startswith("claude") or (write is not None and write > fields["input"]):
        return "explicit"
    return "automatic" if read is not None and read < fields["input"] else "none"


def _min_cached(name: str, caching: str) -> int:
    rules = _ANTHROPIC_MIN if caching == "explicit" else _GEMINI_MIN if name.startswith("gemini") else ()
    return next((n for pattern, n in rules if re.search(pattern, name)), OPENAI_MIN_CACHED)


def check_prices(prices: Mapping[str, Any]) -> Mapping[str, Any]:
    """``prices`` if every entry parses (a ConfigError naming the bad one otherwise)."""
    if not isinstance(prices, Mapping):
        raise ConfigError(f"prices must be a mapping of model name to price table, got {type(prices).__name__}")
    for name, entry in prices.items():
        _price(str(name), entry, "your prices")
    return prices


@functools.lru_cache(maxsize=8)
def load_prices(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """Price tables from a JSON or TOML file: ``{"my-model": {"input": 3.0, "cache_read": 0.3}}``."""
    text_path = Path(path)
    try:
        text = text_path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if text_path.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"cannot read prices file {str(path)!r}: {exc}; it holds JSON (or TOML, by its "
                          "suffix) like {\"my-model\": {\"input\": 3.0, \"cache_read\": 0.3}}") from exc
    if isinstance(data, Mapping) and isinstance(data.get("models"), Mapping):
        data = data["models"]  # a file in the snapshot's own format
    if isinstance(data, Mapping) and isinstance(data.get("prices"), Mapping):
        data = data["prices"]  # a pipeline TOML's [prices] tables
    return check_prices(data)


def from_litellm(cost_map: Mapping[str, Any], version: str) -> dict[str, dict[str, Any]]:
    """Price tables (US$ per 1M) from litellm's per-token cost map, for chat models with an input price."""
    out = {}
    for name, spec in cost_map.items():
        if not isinstance(spec, Mapping) or spec.get("mode") not in ("chat", "responses", None):
            continue
        if not isinstance(spec.get("input_cost_per_token"), (int, float)):
            continue
        provider = str(spec.get("litellm_provider") or "")
        out[name] = {
            "provider": "google" if name.removeprefix("gemini/").startswith("gemini") else provider,
            "input": _per_million(spec["input_cost_per_token"]),
            "cache_read": _per_million(spec.get("cache_read_input_token_cost")),
            "cache_write": _per_million(spec.get("cache_creation_input_token_cost")),
            "source": f"litellm {version}",
        }
    return out


def _per_million(value: Any) -> float | None:
    return round(float(value) * 1_000_000, 6) if isinstance(value, (int, float)) else None


@functools.lru_cache(maxsize=1)
def _litellm_map() -> tuple[str, dict[str, dict[str, Any]]] | None:
    try:
        dist = metadata.distribution("litellm")
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(f"litellm/{LITELLM_FILE}")))
    try:
        cost_map = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # an odd install: the snapshot still answers
    return f"litellm {dist.version}'s model cost map", from_litellm(cost_map, dist.version)


def _litellm_label() -> str:
    found = _litellm_map()
    return found[0] if found else "litellm's model cost map (litellm not installed)"


@functools.lru_cache(maxsize=1)
def _snapshot() -> dict[str, Any]:
    return json.loads(resources.files("ctxopt").joinpath("data", SNAPSHOT).read_text(encoding="utf-8"))


def snapshot_info() -> dict[str, Any]:
    """When the shipped snapshot was generated, from what, and how many models it holds."""
    data = _snapshot()
    return {"generated": data["generated"], "source": data["source"], "models": len(data["models"])}


def known_models() -> list[str]:
    """Every model id with a price: the snapshot's, and litellm's when it is installed."""
    litellm = _litellm_map()
    return sorted(set(_snapshot()["models"]) | set(litellm[1] if litellm else ()))
