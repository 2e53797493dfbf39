"""Tier limits as one value object: a prompt limit, a reserve for the answer, per-section caps.

A section cap is either a token count (an ``int``) or a share of the prompt budget (a ``float`` in
``(0, 1]``); the budget is ``limit - reserve``. Sections are ``system``, ``history``,
``retrieved`` and ``summary``; a cap of ``None`` means the section may use the whole budget.

>>> Tier(4096, reserve=512, retrieved=0.5)
Tier(4096, reserve=512, retrieved=0.5)
>>> Tier(4096, reserve=512, retrieved=0.5).cap("retrieved")
1792

Tiers load from TOML, one table per tier::

    [free]
    limit = 4096
    reserve = 512
    retrieved = 0.4
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ctxopt.errors import ConfigError
from ctxopt.validate import parse_toml

SECTION_NAMES = ("system", "history", "retrieved", "summary")
TIERS_ENV = "CTXOPT_TIERS"

Cap = int | float | None


@dataclasses.dataclass(frozen=True)
class Tier:
    """Token limits for one tier. ``limit`` counts the whole prompt; ``reserve`` is kept for the answer."""

    limit: int
    reserve: int = 0
    _: dataclasses.KW_ONLY
    system: Cap = None
    history: Cap = None
    retrieved: Cap = None
    summary: Cap = None
    name: str = ""

    def __post_init__(self) -> None:
        label = f"tier {self.name!r}" if self.name else "tier"
        for field in ("limit", "reserve"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{label}: {field} must be a non-negative whole number of tokens, got {value!r}")
        if self.limit == 0:
            raise ConfigError(f"{label}: limit must be at least 1 token, got 0")
        if self.reserve >= self.limit:
            raise ConfigError(
                f"{label}: reserve ({self.reserve}) must be smaller than limit ({self.limit}); "
                "lower the reserve or raise the limit"
            )
        for section in SECTION_NAMES:
            cap = getattr(self, section)
            ok = cap is None or (
                (isinstance(cap, int) and not isinstance(cap, bool) and cap >= 0)
                or (isinstance(cap, float) and 0.0 < cap <= 1.0)
            )
            if not ok:
                raise ConfigError(
                    f"{label}: {section} cap must be a whole number of tokens (>= 0) or a share of the "
                    f"budget as a float in (0, 1], got {cap!r}"
                )

    def __repr__(self) -> str:
        parts = [str(self.limit)]
        if self.reserve:
            parts.append(f"reserve={self.reserve}")
        parts += [f"{s}={getattr(self, s)!r}" for s in SECTION_NAMES if getattr(self, s) is not None]
        if self.name:
            parts.append(f"name={self.name!r}")
        return f"Tier({', '.join(parts)})"

    @property
    def budget(self) -> int:
        """Tokens the prompt may use: the limit minus the reserve."""
        return self.limit - self.reserve

    def cap(self, section: str) -> int:
        """The section's cap in tokens (the whole budget when uncapped)."""
        if section not in SECTION_NAMES:
            raise ConfigError(f"unknown section {section!r}; choose from {', '.join(SECTION_NAMES)}")
        cap = getattr(self, section)
        if cap is None:
            return self.budget
        if isinstance(cap, float):
            return math.floor(cap * self.budget)
        return min(cap, self.budget)

    def replace(self, **changes: Any) -> Tier:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"limit": self.limit, "reserve": self.reserve}
        data.update({s: getattr(self, s) for s in SECTION_NAMES if getattr(self, s) is not None})
        return data

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> Tier:
        if not isinstance(data, Mapping):
            raise ConfigError(f"tier {name!r} must be a table of limits, got {type(data).__name__}")
        allowed = ("limit", "reserve", *SECTION_NAMES)
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ConfigError(f"tier {name!r}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        if "limit" not in data:
            raise ConfigError(f"tier {name!r} has no 'limit'; add limit = <tokens>")
        limit, reserve = data["limit"], data.get("reserve", 0)
        return cls(limit, reserve, name=name, **{s: data[s] for s in SECTION_NAMES if s in data})


# Budgets for common context windows: free fits a small 8k model with room to answer, pro a 32k
# window, enterprise a 128k window. Retrieved text is capped so it cannot crowd out the chat.
DEFAULT_TIERS: dict[str, Tier] = {
    "free": Tier(4096, reserve=512, retrieved=0.4, summary=0.15, name="free"),
    "pro": Tier(16384, reserve=2048, retrieved=0.5, summary=0.15, name="pro"),
    "enterprise": Tier(128000, reserve=8192, retrieved=0.5, summary=0.1, name="enterprise"),
}


def load_tiers(path: str | os.PathLike[str]) -> dict[str, Tier]:
    """Tiers from a TOML file, one table per tier."""
    path = Path(path)
    where = f"tiers file {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist") from None
    except OSError as exc:  # a folder, no permission, ...: say which path, not a bare OSError
        raise ConfigError(f"cannot read {where}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: it is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    data = parse_toml(text, where)
    if not data:
        raise ConfigError(f"tiers file {str(path)!r} defines no tiers; add a table like [free] limit = 4096")
    return {name: Tier.from_dict(name, table) for name, table in data.items()}


def dump_tiers(tiers: Mapping[str, Tier]) -> str:
    """TOML text for ``tiers`` that :func:`load_tiers` reads back to equal tiers."""
    blocks = []
    for name, tier in tiers.items():
        lines = [f"[{name}]"] + [f"{key} = {value!r}" for key, value in tier.to_dict().items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def resolve_tier(tier: Tier | str, tiers: Mapping[str, Tier] | str | os.PathLike[str] | None = None) -> Tier:
    """A Tier from a Tier or a name; names look in ``tiers`` (a mapping or TOML path), then
    ``$CTXOPT_TIERS``, then the defaults."""
    if isinstance(tier, Tier):
        return tier
    if tiers is None and os.environ.get(TIERS_ENV):
        tiers = os.environ[TIERS_ENV]
    table = dict(DEFAULT_TIERS)
    if isinstance(tiers, (str, os.PathLike)):
        table.update(load_tiers(tiers))
    elif isinstance(tiers, Mapping):
        table.update(tiers)
    elif tiers is not None:
        raise ConfigError(f"tiers must be a dict of name -> Tier or a TOML path, got {type(tiers).__name__}")
    if not isinstance(tier, str) or tier not in table:
        raise ConfigError(f"unknown tier {tier!r}; choose from {', '.join(sorted(table))}", hint="pass a Tier(...) for another",
                          cli_hint=f"define others in a tiers file (--tiers FILE or ${TIERS_ENV}; "
                                   "`ctxopt tiers --toml` prints one to start from)")
    if not isinstance(table[tier], Tier):
        raise ConfigError(f"tiers[{tier!r}] must be a Tier, got {type(table[tier]).__name__}; e.g. Tier(4096, reserve=512)")
    return table[tier]
