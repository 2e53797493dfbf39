"""Shared budgets against a real Redis: atomic charges, alerts once per period, degraded outages."""

from __future__ import annotations

import asyncio

import pytest

from ctxopt.serve.budgets import SharedBudgets, period_of
from ctxopt.serve.config import Budget

pytestmark = [pytest.mark.redis, pytest.mark.slow]

NOW = 1_796_000_000.0  # 2026-11-30 00:53:20 UTC: a fixed clock keeps the period stable


def clock() -> float:
    return NOW


def test_periods_are_utc_days_and_months_with_the_seconds_left():
    # Both end at 2026-12-01 00:00 UTC, 83,200 s later.
    assert period_of("month", NOW) == ("2026-11", 83_200)
    assert period_of("day", NOW) == ("2026-11-30", 83_200)
    assert period_of("day", NOW + 86_400) == ("2026-12-01", 83_200)


def test_each_alert_fires_once_per_period_across_workers(redis_server):
    budget = Budget(tokens=1000, thresholds=(0.5, 0.75, 0.9))

    async def scenario() -> list[tuple[float, ...]]:
        workers = [SharedBudgets(redis_server.url, clock=clock) for _ in range(4)]
        # 40 charges of 30 tokens from 4 "workers" at once: 1,200 tokens, past every threshold.
        charges = await asyncio.gather(*(workers[i % 4].charge("acme", budget, 30) for i in range(40)))
        for worker in workers:
            await worker.close()
        return [c.alerts for c in charges]

    alerts = [t for fired in asyncio.run(scenario()) for t in fired]
    assert sorted(alerts) == [0.5, 0.75, 0.9]


def test_throttling_refuses_at_the_limit_and_overshoots_by_at_most_one_request(redis_server):
    budget = Budget(tokens=1000, over="throttle")

    async def scenario() -> tuple[list[bool], float | None]:
        workers = [SharedBudgets(redis_server.url, clock=clock) for _ in range(2)]
        charges = await asyncio.gather(*(workers[i % 2].charge("acme", budget, 70) for i in range(30)))
        used = await workers[0].used("acme", budget)
        for worker in workers:
            await worker.close()
        return [c.allowed for c in charges], used

    allowed, used = asyncio.run(scenario())
    assert sum(allowed) == 15  # 14 * 70 = 980 < 1000, so the 15th still goes and crosses it
    assert used == 15 * 70
    assert used - 1000 < 70


def test_a_refused_charge_carries_the_seconds_until_the_period_ends(redis_server):
    budget = Budget(tokens=10, period="day")

    async def scenario():
        worker = SharedBudgets(redis_server.url, clock=clock)
        await worker.charge("acme", budget, 10)
        refused = await worker.charge("acme", budget, 1)
        await worker.close()
        return refused

    refused = asyncio.run(scenario())
    assert not refused.allowed and 0 < refused.retry_after <= 86401


def test_tenants_and_periods_are_counted_apart(redis_server):
    month, day = Budget(tokens=100), Budget(tokens=100, period="day")

    async def scenario():
        worker = SharedBudgets(redis_server.url, clock=clock)
        await worker.charge("acme", month, 60)
        await worker.charge("beta", month, 10)
        await worker.charge("acme", day, 5)
        result = (await worker.used("acme", month), await worker.used("beta", month), await worker.used("acme", day))
        await worker.close()
        return result

    assert asyncio.run(scenario()) == (60, 10, 5)


def test_redis_down_keeps_serving_and_adds_the_unsent_charges_once_it_is_back(redis_server):
    budget = Budget(tokens=1_000_000)
    errors: list[BaseException] = []
    now = [NOW]

    async def scenario():
        worker = SharedBudgets(redis_server.url, clock=lambda: now[0], on_error=errors.append)
        await worker.charge("acme", budget, 100)
        redis_server.stop()
        during = [await worker.charge("acme", budget, 10) for _ in range(3)]
        unknown = await worker.used("acme", budget)
        return worker, during, unknown

    worker, during, unknown = asyncio.run(scenario())
    assert all(c.allowed and c.used is None for c in during)
    assert unknown is None
    assert errors, "the outage is reported"
    assert worker._pending  # kept for later, not lost

    # Redis comes back (a new server on the same port, empty as after a failover without persistence)
    redis_server.start()
    now[0] += 5  # past the pause after a failure

    async def recovered():
        worker._client = None  # the old client's loop is gone with the previous asyncio.run
        after = await worker.charge("acme", budget, 1)
        again = await worker.charge("acme", budget, 1)
        await worker.close()
        return after, again

    after, again = asyncio.run(recovered())
    # The 30 tokens charged while it was down arrive exactly once, with the first charge after.
    assert after.used == 30 + 1
    assert again.used == 30 + 2
