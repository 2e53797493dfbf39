"""Budgets shared by every worker and instance: one Redis counter per tenant and period.

A charge is one Lua script, so it is atomic across workers: it refuses when the tenant is already
at its limit (policy ``throttle``), adds the request's amount with INCRBYFLOAT otherwise, and marks
each alert threshold crossed with ``SET NX`` on a key per tenant, period and threshold, so each alert
fires once per period however many workers and instances there are. A throttled tenant overshoots
its limit by at most the one request that crossed it.

Redis down: the proxy keeps serving. A charge refused by a dead connection was never applied, so
the worker keeps it and adds it with its next successful charge (no loss, no double count). A charge
whose reply timed out may or may not have been applied; it is dropped, not retried, so a lost reply
can only under-count, never count twice. While Redis is down no alert fires and nothing is throttled;
the ``ctxopt_errors_total{cause="redis"}`` metric counts each failed call.
"""

from __future__ import annotations

import calendar
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from ctxopt.serve.config import Budget

log = logging.getLogger("ctxopt.serve")

# KEYS[1] the tenant's counter for the period, KEYS[2] the prefix of its alert keys.
# ARGV: amount, limit, ttl seconds, refuse-at-limit (1/0), then the thresholds (shares of the limit).
CHARGE = """
local limit = tonumber(ARGV[2])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[4] == '1' and used >= limit then return {0, tostring(used)} end
local now = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
local result = {1, now}
for i = 5, #ARGV do
  if tonumber(now) >= tonumber(ARGV[i]) * limit then
    if redis.call('SET', KEYS[2] .. ARGV[i], '1', 'NX', 'EX', ARGV[3]) then table.insert(result, ARGV[i]) end
  end
end
return result
"""

RETRY_DOWN_SECONDS = 2.0  # after a failed call, requests skip Redis this long instead of each waiting on it


def period_of(period: str, now: float) -> tuple[str, float]:
    """The period's label (``2026-11`` or ``2026-11-29``, UTC) and the seconds until it ends."""
    t = time.gmtime(now)
    if period == "day":
        end = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) + 86400
        return time.strftime("%Y-%m-%d", t), end - now
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    end = calendar.timegm((year, month, 1, 0, 0, 0))
    return time.strftime("%Y-%m", t), end - now


@dataclasses.dataclass(frozen=True, kw_only=True)
class Charge:
    """The outcome of one charge: ``allowed`` false means throttled; ``used`` after it (``None``
    when Redis could not be reached); ``alerts`` the thresholds this charge was first to cross."""

    allowed: bool
    used: float | None
    alerts: tuple[float, ...] = ()
    retry_after: int = 0


class SharedBudgets:
    """Charges tenants' budgets in Redis at ``url`` (``None``: in this process only, for one worker)."""

    def __init__(self, url: str | None, *, prefix: str = "ctxopt:serve", clock: Callable[[], float] = time.time,
                 on_error: Callable[[BaseException], Any] | None = None) -> None:
        self.url, self.prefix, self.clock, self.on_error = url, prefix, clock, on_error
        self._client: Any = None
        self._script: Any = None
        self._down_until = 0.0
        self._pending: dict[tuple[str, str], float] = {}  # charges refused by a dead connection, to add later
        self._local: dict[tuple[str, str], float] = {}
        self._local_alerted: set[tuple[str, str, float]] = set()

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio as aioredis  # here: a server without budgets never needs it

            self._client = aioredis.Redis.from_url(str(self.url), socket_timeout=0.5, socket_connect_timeout=0.5)
            self._script = self._client.register_script(CHARGE)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _key(self, tenant: str, label: str) -> str:
        return f"{self.prefix}:budget:{tenant}:{label}"

    async def used(self, tenant: str, budget: Budget) -> float | None:
        """The tenant's use this period, or ``None`` when Redis cannot say."""
        label, _ = period_of(budget.period, self.clock())
        if self.url is None:
            return self._local.get((tenant, label), 0.0)
        if self.clock() < self._down_until:
            return None
        try:
            value = await self._redis().get(self._key(tenant, label))
        except Exception as exc:  # noqa: BLE001 -- any Redis failure degrades to "unknown", by design
            self._failed(exc)
            return None
        return float(value or 0) + self._pending.get((tenant, label), 0.0)

    async def refund(self, tenant: str, budget: Budget, amount: float) -> None:
        """Give back a charge whose request never reached the provider (never refused, fires no alert)."""
        await self.charge(tenant, dataclasses.replace(budget, thresholds=()), -amount, refund=True)

    async def charge(self, tenant: str, budget: Budget, amount: float, *, refund: bool = False) -> Charge:
        """Add ``amount`` to the tenant's period; refuse it when the tenant is at its limit and the
        policy is ``throttle``."""
        label, remaining = period_of(budget.period, self.clock())
        retry = max(1, int(remaining) + 1)
        refuse = budget.over == "throttle" and not refund
        if self.url is None:
            return self._charge_locally(tenant, label, budget, amount, refuse, retry)
        if self.clock() < self._down_until:
            self._pending[tenant, label] = self._pending.get((tenant, label), 0.0) + amount
            return Charge(allowed=True, used=None)
        pending = self._pending.pop((tenant, label), 0.0)
        ttl = int(remaining) + 86400  # the counter outlives its period by a day, for reports
        try:
            reply = await self._redis_script(tenant, label, amount + pending, budget, ttl, refuse)
        except Exception as exc:  # noqa: BLE001 -- see the module docstring for what each failure means
            import redis.exceptions

            if isinstance(exc, redis.exceptions.ConnectionError) and not isinstance(exc, redis.exceptions.TimeoutError):
                self._pending[tenant, label] = self._pending.get((tenant, label), 0.0) + amount + pending
            self._failed(exc)
            return Charge(allowed=True, used=None)
        allowed, used = bool(int(reply[0])), float(reply[1])
        if not allowed:
            self._pending[tenant, label] = self._pending.get((tenant, label), 0.0) + pending
        return Charge(allowed=allowed, used=used, alerts=tuple(float(t) for t in reply[2:]), retry_after=retry)

    async def _redis_script(self, tenant: str, label: str, amount: float, budget: Budget, ttl: int, refuse: bool) -> Any:
        self._redis()
        key = self._key(tenant, label)
        return await self._script(keys=[key, f"{key}:alerted:"],
                                  args=[repr(amount), repr(float(budget.limit or 0)), ttl, int(refuse),
                                        *(repr(t) for t in budget.thresholds)])

    def _charge_locally(self, tenant: str, label: str, budget: Budget, amount: float, refuse: bool, retry: int) -> Charge:
        limit = float(budget.limit or 0)
        used = self._local.get((tenant, label), 0.0)
        if refuse and used >= limit:
            return Charge(allowed=False, used=used, retry_after=retry)
        used = self._local[tenant, label] = used + amount
        alerts = []
        for t in budget.thresholds:
            if used >= t * limit and (tenant, label, t) not in self._local_alerted:
                self._local_alerted.add((tenant, label, t))
                alerts.append(t)
        return Charge(allowed=True, used=used, alerts=tuple(alerts), retry_after=retry)

    def _failed(self, exc: BaseException) -> None:
        self._down_until = self.clock() + RETRY_DOWN_SECONDS
        log.warning("ctxopt serve: Redis unavailable for budgets (%s: %s); serving without shared accounting",
                    type(exc).__name__, exc)
        if self.on_error is not None:
            self.on_error(exc)
