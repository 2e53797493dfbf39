"""Monthly token budgets per tenant, with alerts that fire once per threshold per month.

Only the tokens sent to the model (``report.tokens_after``) count against a budget: they are what
the provider bills. Months are calendar months in UTC; usage starts from zero each month.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ctxopt.errors import ConfigError

DEFAULT_THRESHOLDS = (0.5, 0.75, 0.9)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BudgetAlert:
    """``tenant`` has used ``used`` of its ``budget`` tokens in ``month``, crossing ``threshold``."""

    tenant: str
    month: str
    threshold: float
    used: int
    budget: int

    def __str__(self) -> str:
        return (f"tenant {self.tenant!r} used {self.used}/{self.budget} tokens in {self.month} "
                f"({self.used / self.budget:.0%}, crossed {self.threshold:.0%})")


def month_of(timestamp: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(timestamp))


def check_budgets(budgets: Mapping[str, int], thresholds: Sequence[float]) -> tuple[dict[str, int], tuple[float, ...]]:
    """Validated copies of the budgets and thresholds, or a ConfigError naming the bad value."""
    if not isinstance(budgets, Mapping):
        raise ConfigError(f"budgets map a tenant to its monthly tokens, e.g. {{'acme': 5_000_000}}; got {budgets!r}")
    if isinstance(thresholds, (str, bytes)) or not isinstance(thresholds, Sequence):
        raise ConfigError(f"budget thresholds are a list of shares in (0, 1], e.g. (0.5, 0.9); got {thresholds!r}")
    for tenant, budget in budgets.items():
        if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
            raise ConfigError(f"budget of tenant {tenant!r} must be a positive whole number of tokens, got {budget!r}")
    for threshold in thresholds:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
            raise ConfigError(f"budget thresholds are shares of the budget in (0, 1], got {threshold!r}")
    return dict(budgets), tuple(sorted({float(t) for t in thresholds}))


@dataclasses.dataclass(kw_only=True)
class MonthlyUse:
    """One tenant's tokens this month and the thresholds already alerted; the accountant locks it."""

    month: str
    used: int = 0
    fired: list[float] = dataclasses.field(default_factory=list)

    def add(self, tenant: str, tokens: int, month: str, budget: int,
            thresholds: Sequence[float]) -> list[BudgetAlert]:
        """Count ``tokens``; the alerts for thresholds crossed for the first time this month."""
        if month != self.month:
            self.month, self.used, self.fired = month, 0, []
        self.used += tokens
        alerts = []
        for threshold in thresholds:
            if threshold not in self.fired and self.used >= threshold * budget:
                self.fired.append(threshold)
                alerts.append(BudgetAlert(tenant=tenant, month=month, threshold=threshold,
                                          used=self.used, budget=budget))
        return alerts

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonthlyUse:
        return cls(month=str(data["month"]), used=int(data["used"]), fired=[float(t) for t in data["fired"]])
