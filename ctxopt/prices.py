"""Input-token prices, used only to put a dollar figure on the tokens a request saved.

Prices are US dollars per 1,000 input tokens, as published by the providers in 2025. They change:
pass ``price_per_1k=`` to :func:`ctxopt.optimize` (or ``--price`` on the CLI) for your contract.
"""

from __future__ import annotations

from ctxopt.errors import ConfigError

DEFAULT_MODEL = "gpt-4o"
PRICES_PER_1K: dict[str, float] = {
    "gpt-5": 0.00125,
    "gpt-5-mini": 0.00025,
    "gpt-5-nano": 0.00005,
    "gpt-4o": 0.0025,
    "gpt-4": 0.03,
    "gpt-3.5-turbo": 0.0005,
    "gpt-4o-mini": 0.00015,
    "gpt-4.1": 0.002,
    "gpt-4.1-mini": 0.0004,
    "gpt-4.1-nano": 0.0001,
    "o3": 0.002,
    "o4-mini": 0.0011,
    "claude-sonnet-4": 0.003,
    "claude-sonnet-4-5": 0.003,
    "claude-opus-4-1": 0.015,
    "claude-haiku-4-5": 0.001,
    "claude-haiku-3.5": 0.0008,
    "gemini-2.5-pro": 0.00125,
    "gemini-2.5-flash": 0.0003,
}


def price_per_1k(model: str, override: float | None = None) -> float:
    """The input price per 1k tokens of ``model``; ``override`` wins when given."""
    if override is not None:
        # NaN passes a plain `< 0` test and would turn every saving in the report into NaN
        if isinstance(override, bool) or not isinstance(override, (int, float)) or not override >= 0 \
                or override == float("inf"):
            raise ConfigError(f"price_per_1k must be a non-negative number, got {override!r}")
        return float(override)
    model = _known(model)
    if model not in PRICES_PER_1K:
        raise ConfigError(
            f"no price known for model {model!r}; choose from {', '.join(sorted(PRICES_PER_1K))}",
            hint="for another model pass price_per_1k=",
            cli_hint="for another model give its price with --price USD (per 1k input tokens; price_per_1k in a "
                     "--pipeline file)",
        )
    return PRICES_PER_1K[model]


def _known(model: str) -> str:
    """``model`` as the table names it: without a provider prefix or a dated snapshot suffix."""
    import re

    name = model.split("/", 1)[1] if "/" in model else model
    if name in PRICES_PER_1K:
        return name
    bare = re.sub(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$", "", name)
    return bare if bare in PRICES_PER_1K else model
