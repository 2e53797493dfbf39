"""Usage per tenant, agent and tier, summed from the reports of many requests.

>>> from ctxopt import Accountant, optimize
>>> accountant = Accountant(budgets={"acme": 1_000_000})
>>> result = optimize([{"role": "user", "content": "Hi"}], tier="free")
>>> accountant.record(result.report, tenant="acme", agent="support")
[]
>>> accountant.total().requests
1

Memory is bounded by the number of distinct (tenant, agent, tier) keys: each keeps a few counters
and a fixed-size latency sample, whatever the traffic. All methods are thread-safe.

By default the tallies live in this process. ``Accountant(store=RedisUsageStore(url))`` writes each
request to Redis instead and reads back what every process and machine wrote there (this is what
``ctxopt serve`` does, and what ``ctxopt report --redis URL`` reads).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctxopt.accounting.budgets import DEFAULT_THRESHOLDS, BudgetAlert, MonthlyUse, check_budgets, month_of
from ctxopt.accounting.usage import RESERVOIR_SIZE, Reservoir, Tally, Usage, counters_of, usage_of
from ctxopt.errors import ConfigError, InputError
from ctxopt.report import Report
from ctxopt.validate import parse_json

if TYPE_CHECKING:
    from ctxopt.accounting.redis_store import RedisUsageStore

FORMAT = "ctxopt-accounting"
VERSION = 1
UNSET = "-"  # the tenant or agent of requests recorded without one
KEY_FIELDS = ("tenant", "agent", "tier")
ALL = "*"  # a field summed over in a roll-up

log = logging.getLogger("ctxopt.accounting")


def _log_alert(alert: BudgetAlert) -> None:
    log.warning("ctxopt budget alert: %s", alert)


class Accountant:
    """Sums reports by tenant, agent and tier; optionally watches monthly token budgets.

    ``budgets`` maps a tenant to its monthly token budget (tokens sent to the model). When a
    tenant's use this month first reaches a share in ``thresholds``, ``on_alert(alert)`` is called
    once for that threshold and month (default: a warning on the ``ctxopt.accounting`` logger).
    ``clock`` (seconds since the epoch) decides the month; pass your own in tests.

    ``store`` (a :class:`~ctxopt.accounting.redis_store.RedisUsageStore`) shares the tallies with
    every accountant using the same store; budgets are then enforced by ``ctxopt serve`` (its
    ``[tenants.NAME.budget]``), not here, so ``budgets`` must be left out.
    """

    def __init__(
        self,
        *,
        budgets: Mapping[str, int] | None = None,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        on_alert: Callable[[BudgetAlert], Any] | None = None,
        reservoir_size: int = RESERVOIR_SIZE,
        clock: Callable[[], float] = time.time,
        store: RedisUsageStore | None = None,
    ) -> None:
        if store is not None and budgets:
            raise ConfigError("an Accountant with a shared store does not watch budgets (each process would alert on "
                              "its own); set them per tenant in ctxopt serve's config ([tenants.NAME.budget]), which "
                              "counts them in Redis once for every worker, or drop store= to watch them in this process")
        if isinstance(reservoir_size, bool) or not isinstance(reservoir_size, int) or reservoir_size < 1:
            raise ConfigError(f"reservoir_size must be a whole number >= 1, got {reservoir_size!r}")
        self.budgets, self.thresholds = check_budgets(budgets or {}, thresholds)
        self.on_alert = on_alert or _log_alert
        self.reservoir_size = reservoir_size
        self.clock = clock
        self.store = store
        self._lock = threading.Lock()
        self._rng = random.Random(0)  # seeded: the same traffic keeps the same latency sample
        self._tallies: dict[tuple[str, str, str], Tally] = {}
        self._months: dict[str, MonthlyUse] = {}

    def __repr__(self) -> str:
        if self.store is not None:  # no network call (nor its failure) for a repr
            return f"Accountant(store={self.store!r})"
        tallies = self.tallies()
        return f"Accountant({len(tallies)} keys, {sum(t.requests for t in tallies.values())} requests)"

    def record(self, report: Report, *, tenant: str | None = None, agent: str | None = None,
               request_id: str | None = None) -> list[BudgetAlert]:
        """Add one request's report; returns the budget alerts it fired (after calling ``on_alert``).

        With a store, ``request_id`` makes the write idempotent: a report recorded twice under the
        same id is counted once (a random id is used when it is ``None``)."""
        if not isinstance(report, Report):
            raise InputError(f"record() takes a ctxopt Report (result.report), got {type(report).__name__}")
        key = (_label(tenant, "tenant"), _label(agent, "agent"), report.tier)
        if self.store is not None:
            self.store.record(self.store.entry(report, key, request_id))
            return []
        month = month_of(self.clock())
        with self._lock:
            tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = Tally(latency=Reservoir(self.reservoir_size))
            tally.add(counters_of(report))
            tally.latency.add(report.seconds, self._rng)
            alerts: list[BudgetAlert] = []
            if key[0] in self.budgets:
                use = self._months.setdefault(key[0], MonthlyUse(month=month))
                alerts = use.add(key[0], report.tokens_after, month, self.budgets[key[0]], self.thresholds)
        for alert in alerts:  # outside the lock: a callback may call back into the accountant
            self.on_alert(alert)
        return alerts

    def usage(self, by: Sequence[str] = KEY_FIELDS, *, tenant: str | None = None) -> list[Usage]:
        """Usage rows grouped by the fields in ``by`` (others shown as ``"*"``), most requests first;
        ``tenant`` keeps only that tenant's requests."""
        return usage_rows(self.tallies(), by, tenant=tenant)

    def total(self, *, tenant: str | None = None) -> Usage:
        """All requests (of ``tenant``, when given) summed into one row."""
        return total_row(self.tallies(), tenant=tenant)

    def tallies(self) -> dict[tuple[str, str, str], Tally]:
        """The tallies by (tenant, agent, tier), read once: from the store, or a copy of this process's.
        Rows and totals built from one read (:func:`usage_rows`, :func:`total_row`) agree."""
        if self.store is not None:
            return self.store.tallies()
        with self._lock:
            return {key: dataclasses.replace(t, latency=copy.deepcopy(t.latency)) for key, t in self._tallies.items()}

    def budget_status(self) -> dict[str, dict[str, Any]]:
        """Each budgeted tenant's latest month: ``budget``, ``month``, ``used``, ``share`` and the
        thresholds already ``alerted`` (month ``None`` and 0 used before its first request)."""
        with self._lock:
            months = {t: m.to_dict() for t, m in self._months.items()}
        status = {}
        for tenant, budget in sorted(self.budgets.items()):
            use = months.get(tenant, {"month": None, "used": 0, "fired": []})
            status[tenant] = {"budget": budget, "month": use["month"], "used": use["used"],
                              "share": use["used"] / budget, "alerted": use["fired"]}
        return status

    def summary(self, top: int = 15, by: Sequence[str] = KEY_FIELDS, *, tenant: str | None = None) -> str:
        """A one-screen text summary: totals, the ``top`` busiest rows grouped ``by``, budgets;
        ``tenant`` keeps only that tenant's requests."""
        from ctxopt.accounting.summary import render

        return render(self, top=top, by=by, tenant=tenant)

    __str__ = summary

    # -- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        tallies = self.tallies()
        with self._lock:
            return {
                "format": FORMAT,
                "version": VERSION,
                "reservoir_size": self.reservoir_size,
                "budgets": dict(self.budgets),
                "thresholds": list(self.thresholds),
                "months": {t: m.to_dict() for t, m in self._months.items()},
                "groups": [dict(zip(KEY_FIELDS, key), **tally.to_dict()) for key, tally in tallies.items()],
            }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_json` to ``path`` atomically (a reader never sees half a file)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **options: Any) -> Accountant:
        """An accountant holding the usage in ``data`` (from :meth:`to_dict`); ``options`` such as
        ``on_alert`` or ``clock`` are passed to the constructor."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise InputError(f"not a ctxopt accounting file: expected a JSON object with \"format\": \"{FORMAT}\" "
                             "as written by Accountant.save()")
        if data.get("version") != VERSION:
            raise InputError(f"ctxopt accounting format version {data.get('version')!r} is not supported; "
                             f"this ctxopt reads version {VERSION}")
        try:
            options = {"budgets": data["budgets"], "thresholds": data["thresholds"],
                       "reservoir_size": data["reservoir_size"], **options}
            accountant = cls(**options)
            for group in data["groups"]:
                tenant, agent, tier = (str(group[f]) for f in KEY_FIELDS)
                accountant._tallies[tenant, agent, tier] = Tally.from_dict(group, accountant.reservoir_size)
            accountant._months = {str(t): MonthlyUse.from_dict(m) for t, m in data["months"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"ctxopt accounting data is damaged: {type(exc).__name__}: {exc}") from exc
        return accountant

    @classmethod
    def from_json(cls, text: str, **options: Any) -> Accountant:
        return cls.from_dict(parse_json(text, "ctxopt accounting data"), **options)

    @classmethod
    def load(cls, path: str | os.PathLike[str], **options: Any) -> Accountant:
        """An accountant read back from a file written by :meth:`save`."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read accounting file {str(path)!r}: {exc}") from exc
        try:
            return cls.from_json(text, **options)
        except InputError as exc:
            raise InputError(f"{str(path)!r}: {exc}") from exc


def _label(value: str | None, field: str) -> str:
    if value is None:
        return UNSET
    if not isinstance(value, str) or not value:
        raise InputError(f"{field} must be a non-empty str or None, got {value!r}")
    return value


def usage_rows(tallies: Mapping[tuple[str, str, str], Tally], by: Sequence[str] = KEY_FIELDS, *,
               tenant: str | None = None) -> list[Usage]:
    """:meth:`Accountant.usage` over ``tallies`` (from :meth:`Accountant.tallies`)."""
    unknown = sorted(set(by) - set(KEY_FIELDS))
    if unknown:
        raise InputError(f"cannot group usage by {', '.join(unknown)}; choose from {', '.join(KEY_FIELDS)}")
    groups: dict[tuple[str, str, str], list[Tally]] = {}
    for key, tally in tallies.items():
        if tenant is None or key[0] == tenant:
            tenant_, agent, tier = (v if f in by else ALL for f, v in zip(KEY_FIELDS, key))
            groups.setdefault((tenant_, agent, tier), []).append(tally)
    rows = [usage_of(key, grouped) for key, grouped in groups.items()]
    return sorted(rows, key=lambda u: (-u.requests, u.tenant, u.agent, u.tier))


def total_row(tallies: Mapping[tuple[str, str, str], Tally], *, tenant: str | None = None) -> Usage:
    """:meth:`Accountant.total` over ``tallies``."""
    rows = usage_rows(tallies, (), tenant=tenant)
    return rows[0] if rows else usage_of((ALL, ALL, ALL), [])
