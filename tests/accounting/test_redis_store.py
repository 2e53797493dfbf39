"""The shared usage store: real Redis on loopback, several accountants and processes, outages."""

from __future__ import annotations

import calendar
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import redis

import ctxopt
from ctxopt.accounting.redis_store import RedisUsageStore
from ctxopt.cli import main
from ctxopt.errors import ConfigError, InputError, StoreError
from ctxopt.report import Report
from ctxopt.sessions.billing import Bill

pytestmark = [pytest.mark.redis, pytest.mark.slow]

NOVEMBER = calendar.timegm((2026, 11, 15, 12, 0, 0))
DECEMBER = calendar.timegm((2026, 12, 2, 12, 0, 0))


def conversation(turns: int) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant",
             "content": f"Turn {i}: the settlement batch {i * 7} failed and the ledger retried it at {i}:15."}
            for i in range(turns)]


@pytest.fixture(scope="module")
def reports() -> list[Report]:
    """Real reports of requests of different sizes and tiers, one of them with a provider's bill."""
    made = [ctxopt.optimize(conversation(n), tier=tier).report
            for n, tier in ((2, "free"), (180, "free"), (9, "pro"), (40, "pro"))]
    made[1] = dataclasses.replace(made[1], billed=Bill(made[1].tokens_after, 256, 0, 0.00042))
    assert made[1].tokens_after < made[1].tokens_before  # one request was really pruned
    return made


def store(url: str, **options: object) -> RedisUsageStore:
    return RedisUsageStore(url, prefix="test:usage", retry_seconds=0, **options)  # type: ignore[arg-type]


def test_two_accountants_on_one_store_read_the_hand_summed_totals(redis_server, reports):
    first, second = ctxopt.Accountant(store=store(redis_server.url)), ctxopt.Accountant(store=store(redis_server.url))
    first.record(reports[0], tenant="acme", agent="support")
    second.record(reports[1], tenant="acme", agent="support")
    first.record(reports[2], tenant="globex")
    second.record(reports[3], tenant="acme", agent="billing")
    for accountant in (first, second):
        total = accountant.total()
        assert total.requests == 4
        assert total.tokens_before == sum(r.tokens_before for r in reports)
        assert total.tokens_after == sum(r.tokens_after for r in reports)
        assert total.cost == pytest.approx(sum(r.cost for r in reports), rel=1e-12)
        assert total.cost_without_ctxopt == pytest.approx(sum(r.cost_without_ctxopt for r in reports), rel=1e-12)
        assert total.cost_saved == pytest.approx(sum(r.cost_saved for r in reports), rel=1e-12)
        assert (total.billed_requests, total.billed_prompt_tokens, total.billed_cached_tokens) == \
            (1, reports[1].tokens_after, 256)
        assert total.billed_cost == pytest.approx(0.00042)
    acme = first.total(tenant="acme")
    assert (acme.requests, acme.tokens_after) == (3, reports[0].tokens_after + reports[1].tokens_after + reports[3].tokens_after)
    rows = {(u.tenant, u.agent, u.tier): u.requests for u in second.usage()}
    assert rows == {("acme", "support", "free"): 2, ("globex", "-", "pro"): 1, ("acme", "billing", "pro"): 1}


def test_shared_totals_equal_an_in_memory_accountants_and_latency_lands_in_its_bucket(redis_server, reports):
    shared, local = ctxopt.Accountant(store=store(redis_server.url)), ctxopt.Accountant()
    for i, report in enumerate(reports):
        for accountant in (shared, local):
            accountant.record(report, tenant=f"t{i % 2}", agent="a")
    ignore = {"p50_ms", "p95_ms", "cost", "cost_without_ctxopt", "cost_saved", "billed_cost", "cache_hit_rate"}
    for ours, theirs in zip(shared.usage(), local.usage()):
        assert {k: v for k, v in ours.to_dict().items() if k not in ignore} == \
            {k: v for k, v in theirs.to_dict().items() if k not in ignore}
        assert ours.cost == pytest.approx(theirs.cost, rel=1e-12)
    slowest = max(r.seconds for r in reports) * 1000
    assert slowest <= shared.total().p95_ms < slowest * 1.13  # the bucket's upper bound, 12% wide


def test_a_request_recorded_twice_under_one_id_counts_once(redis_server, reports):
    accountant = ctxopt.Accountant(store=store(redis_server.url))
    for _ in range(3):
        accountant.record(reports[1], tenant="acme", request_id="req-1")
    accountant.record(reports[1], tenant="acme", request_id="req-2")
    assert accountant.total().requests == 2
    assert accountant.total().tokens_after == 2 * reports[1].tokens_after


WRITER = textwrap.dedent("""
    import sys
    import ctxopt
    from ctxopt.accounting.redis_store import RedisUsageStore
    url, name, first, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    report = ctxopt.optimize([{"role": "user", "content": "Which batch failed?"}], tier="free").report
    accountant = ctxopt.Accountant(store=RedisUsageStore(url, prefix="test:usage"))
    for i in range(first, last):
        accountant.record(report, tenant="acme", agent=name, request_id=f"req-{i}")
    print(report.tokens_after)
""")


def test_two_processes_writing_one_store_count_each_request_once(redis_server):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # Requests 20-29 are written by both processes, as a retry on another worker would be.
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, redis_server.url, name, first, last], env=env,
                              stdout=subprocess.PIPE, text=True)
             for name, first, last in (("one", "0", "30"), ("two", "20", "50"))]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    tokens = int(outputs[0])
    total = ctxopt.Accountant(store=store(redis_server.url)).total()
    assert (total.requests, total.tokens_after) == (50, 50 * tokens)


def test_writes_during_an_outage_are_replayed_once_when_redis_is_back(redis_server, reports):
    shared = store(redis_server.url, timeout=1.0)
    accountant = ctxopt.Accountant(store=shared)
    accountant.record(reports[0], tenant="acme")
    redis.Redis.from_url(redis_server.url).shutdown(save=True)  # keeps what was written, like a restart would
    for report in reports[1:]:
        accountant.record(report, tenant="acme")
    assert shared.pending == 3
    with pytest.raises(StoreError, match="cannot read the shared usage"):
        accountant.total()
    redis_server.start()
    accountant.record(reports[0], tenant="acme")  # succeeds, and replays the three before it
    assert shared.pending == 0
    total = ctxopt.Accountant(store=store(redis_server.url)).total()
    assert total.requests == 5
    assert total.tokens_after == sum(r.tokens_after for r in reports) + reports[0].tokens_after


def test_a_write_whose_reply_was_lost_is_counted_once_after_its_replay(redis_server, reports):
    shared = store(redis_server.url, timeout=0.3)
    shared.record(shared.entry(reports[0], ("acme", "-", "free")))
    os.kill(redis_server.pid(), signal.SIGSTOP)  # commands are received but not answered: replies time out
    try:
        assert shared.record(shared.entry(reports[1], ("acme", "-", "free"))) is False
    finally:
        os.kill(redis_server.pid(), signal.SIGCONT)  # Redis now runs the write the client gave up on
    reader = ctxopt.Accountant(store=store(redis_server.url))
    deadline = time.monotonic() + 10
    while reader.total().requests < 2 and time.monotonic() < deadline:  # the deadline is only a safety net
        time.sleep(0.01)
    assert reader.total().requests == 2  # it landed, although its writer counts it as failed
    assert shared.record(shared.entry(reports[2], ("acme", "-", "free"))) is True  # replays it, then writes this
    total = ctxopt.Accountant(store=store(redis_server.url)).total()
    assert total.requests == 3
    assert total.tokens_after == sum(r.tokens_after for r in reports[:3])


def test_a_full_buffer_drops_the_newest_writes_and_counts_them_lost(redis_server, reports):
    shared = store(redis_server.url, buffer=2, timeout=1.0)
    redis_server.stop()
    results = [shared.record(shared.entry(r, ("acme", "-", r.tier))) for r in reports[:3]]
    assert results == [False, False, False]
    assert (shared.pending, shared.lost) == (2, 1)


def test_reads_can_be_limited_to_one_month(redis_server, reports):
    clock = [NOVEMBER]
    accountant = ctxopt.Accountant(store=RedisUsageStore(redis_server.url, prefix="test:usage", clock=lambda: clock[0]))
    accountant.record(reports[0], tenant="acme")
    clock[0] = DECEMBER
    accountant.record(reports[1], tenant="acme")
    accountant.record(reports[2], tenant="acme")
    assert RedisUsageStore(redis_server.url, prefix="test:usage").months() == ["2026-11", "2026-12"]
    november = ctxopt.Accountant(store=RedisUsageStore(redis_server.url, prefix="test:usage", month="2026-11"))
    assert november.total().requests == 1
    assert accountant.total().requests == 3


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "Nov 2026", 202611])
def test_a_malformed_month_is_refused(month):
    with pytest.raises(InputError, match="YYYY-MM"):
        RedisUsageStore("redis://127.0.0.1:1/0", month=month)  # type: ignore[arg-type]


def test_a_shared_accountant_refuses_budgets_it_could_not_keep_once():
    with pytest.raises(ConfigError, match=r"\[tenants.NAME.budget\]"):
        ctxopt.Accountant(budgets={"acme": 1000}, store=RedisUsageStore("redis://127.0.0.1:1/0"))


def test_report_redis_prints_the_fleets_totals_by_month_and_tenant(redis_server, reports, capsys):
    clock = [NOVEMBER]
    accountant = ctxopt.Accountant(store=RedisUsageStore(redis_server.url, prefix="ctxopt:serve:usage",
                                                         clock=lambda: clock[0]))
    accountant.record(reports[0], tenant="acme", agent="support")
    clock[0] = DECEMBER
    accountant.record(reports[1], tenant="acme", agent="support")
    accountant.record(reports[2], tenant="globex")
    assert main(["report", "--redis", redis_server.url, "--month", "2026-12", "--tenant", "acme", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["month"], data["tenant"]) == ("2026-12", "acme")
    assert data["total"]["requests"] == 1
    assert data["total"]["tokens_after"] == reports[1].tokens_after
    assert data["total"]["cost"] == pytest.approx(reports[1].cost, abs=1e-8)
    assert [(r["tenant"], r["agent"], r["tier"]) for r in data["rows"]] == [("acme", "support", "free")]
    assert main(["report", "--redis", redis_server.url]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ctxopt usage: 3 requests from 2 tenant(s)")
    assert "globex" in text and "support" in text


@pytest.mark.parametrize(("args", "message"), [
    (["--month", "2026-11", "usage.json"], "--month needs --redis"),
    ([], "either an accounting FILE.json or --redis URL"),
    (["--redis", "redis://127.0.0.1:1/0"], "cannot read the shared usage in Redis"),
    (["--redis", "redis://:hunter2@127.0.0.1:1/0"], "Redis at redis://:***@127.0.0.1:1/0"),
    (["--redis", "redis://127.0.0.1:notaport/0"], "is invalid"),
])
def test_report_with_wrong_sources_exits_2_with_one_clear_line(args, message, capsys):
    assert main(["report", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "hunter2" not in err  # a password never reaches the terminal


def test_a_providers_bill_is_added_to_its_request_once(redis_server, reports):
    shared = store(redis_server.url)
    entry = shared.entry(reports[0], ("acme", "-", "free"), "req-7")
    shared.record(entry)
    for _ in range(2):
        shared.record(entry.billed(Bill(900, 512, 0, 0.0011)))
    total = ctxopt.Accountant(store=shared).total()
    assert (total.requests, total.billed_requests, total.billed_prompt_tokens, total.billed_cached_tokens) == (1, 1, 900, 512)
    assert total.billed_cost == pytest.approx(0.0011)
