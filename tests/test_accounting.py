"""The Accountant: sums per tenant/agent/tier, bounded latency samples, budget alerts, JSON, CLI."""

from __future__ import annotations

import json
import threading

import pytest

import ctxopt
from ctxopt import Accountant, BudgetAlert, Report, StageReport
from ctxopt.cli import main
from ctxopt.pricing import Price

JUNE, JULY = 1_780_000_000.0, 1_782_900_000.0  # 2026-05-28 and 2026-07-01 (UTC)


def report(before: int = 1000, after: int = 400, *, tier: str = "free", seconds: float = 0.002,
           hits: int = 0, misses: int = 0, price: float = 0.0025) -> Report:
    notes = {"cache_hits": hits, "cache_misses": misses} if hits or misses else {}
    return Report(tier=tier, tokens_before=before, tokens_after=after, budget=3584, seconds=seconds,
                  model="gpt-4o", price=Price(input=price * 1000, model="gpt-4o"),
                  stages=(StageReport(name="fit", tokens_in=before, tokens_out=after, notes=notes),))


def test_record_sums_reports_by_tenant_agent_and_tier():
    accountant = Accountant()
    accountant.record(report(1000, 400), tenant="acme", agent="support")
    accountant.record(report(500, 500), tenant="acme", agent="support")
    accountant.record(report(2000, 900, tier="pro"), tenant="acme", agent="support")
    accountant.record(report(800, 300), tenant="globex")
    rows = {(u.tenant, u.agent, u.tier): u for u in accountant.usage()}
    assert set(rows) == {("acme", "support", "free"), ("acme", "support", "pro"), ("globex", "-", "free")}
    free = rows["acme", "support", "free"]
    assert (free.requests, free.tokens_before, free.tokens_after, free.tokens_saved) == (2, 1500, 900, 600)
    assert free.cost_saved == pytest.approx(600 / 1000 * 0.0025)
    by_tenant = {u.tenant: u for u in accountant.usage(by=["tenant"])}
    assert by_tenant["acme"].requests == 3 and by_tenant["acme"].tier == "*"
    assert accountant.total().tokens_after == 400 + 500 + 900 + 300
    assert [u.tenant for u in accountant.usage(tenant="globex")] == ["globex"]


def test_cache_hit_rate_comes_from_the_stages_cache_notes():
    accountant = Accountant()
    accountant.record(report(hits=9, misses=1), tenant="a")
    accountant.record(report(hits=6, misses=4), tenant="a")
    accountant.record(report(), tenant="b")
    rates = {u.tenant: u.cache_hit_rate for u in accountant.usage(by=["tenant"])}
    assert rates == {"a": pytest.approx(0.75), "b": None}


def test_latency_percentiles_of_a_known_spread():
    accountant = Accountant()
    for ms in range(1, 101):
        accountant.record(report(seconds=ms / 1000), tenant="a")
    total = accountant.total()
    assert (total.p50_ms, total.p95_ms) == (pytest.approx(50), pytest.approx(95))


def test_latency_sample_stays_bounded_and_representative():
    accountant = Accountant(reservoir_size=200)
    for i in range(20_000):
        accountant.record(report(seconds=i / 1_000_000), tenant="a")  # 0 .. 20 ms, uniform
    tally = next(iter(accountant._tallies.values()))
    assert len(tally.latency.values) == 200 and tally.latency.seen == 20_000
    total = accountant.total()
    assert total.p50_ms == pytest.approx(10, abs=1.5) and total.p95_ms == pytest.approx(19, abs=1.0)


def test_pooled_percentiles_weigh_each_sample_by_the_traffic_it_stands_for():
    accountant = Accountant(reservoir_size=50)
    for _ in range(5000):
        accountant.record(report(seconds=0.001), tenant="busy")
    for _ in range(50):
        accountant.record(report(seconds=0.100), tenant="quiet")
    # 99% of requests took 1 ms: an unweighted pool of 50 + 50 samples would put p50 at 100 ms.
    assert accountant.total().p50_ms == pytest.approx(1) and accountant.total().p95_ms == pytest.approx(1)


def test_budget_thresholds_fire_once_per_month():
    now = [JUNE]
    alerts: list[BudgetAlert] = []
    accountant = Accountant(budgets={"acme": 10_000}, on_alert=alerts.append, clock=lambda: now[0])
    assert accountant.record(report(after=4000), tenant="acme") == []
    fired = accountant.record(report(after=1500), tenant="acme")  # 55%
    assert [a.threshold for a in fired] == [0.5] and alerts == fired
    accountant.record(report(after=100), tenant="acme")
    accountant.record(report(after=3500), tenant="acme")  # 91%: 75% and 90% at once
    accountant.record(report(after=5000), tenant="acme")  # over budget: nothing new
    assert [a.threshold for a in alerts] == [0.5, 0.75, 0.9]
    assert alerts[-1].used == 9100 and alerts[-1].month == "2026-05" and "acme" in str(alerts[-1])
    now[0] = JULY
    accountant.record(report(after=6000), tenant="acme")  # a new month starts from zero
    assert [(a.month, a.threshold) for a in alerts[3:]] == [("2026-07", 0.5)]
    accountant.record(report(after=10**6), tenant="globex")  # no budget: no alert
    assert len(alerts) == 4


def test_an_alert_callback_may_read_the_accountant():
    seen = []
    accountant = Accountant(budgets={"acme": 100}, thresholds=[0.5], on_alert=lambda a: seen.append(accountant.total()))
    accountant.record(report(after=60), tenant="acme")
    assert seen[0].requests == 1


def test_bad_budgets_and_thresholds_are_config_errors():
    with pytest.raises(ctxopt.ConfigError, match="budget of tenant 'acme'"):
        Accountant(budgets={"acme": -5})
    with pytest.raises(ctxopt.ConfigError, match=r"\(0, 1\]"):
        Accountant(budgets={"acme": 5}, thresholds=[50])
    with pytest.raises(ctxopt.InputError, match="Report"):
        Accountant().record({"tokens_after": 5})
    with pytest.raises(ctxopt.InputError, match="choose from tenant, agent, tier"):
        Accountant().usage(by=["user"])


def test_json_round_trip_keeps_usage_and_alerted_thresholds(tmp_path):
    alerts = []
    accountant = Accountant(budgets={"acme": 1000}, clock=lambda: JUNE, on_alert=alerts.append)
    for i in range(30):
        accountant.record(report(seconds=i / 1000, hits=i % 3, misses=1), tenant="acme", agent=f"agent{i % 2}")
    accountant.record(report(tier="pro"), tenant="globex")
    path = tmp_path / "usage.json"
    accountant.save(path)
    loaded = Accountant.load(path, clock=lambda: JUNE, on_alert=alerts.append)
    assert loaded.to_dict() == accountant.to_dict() == json.loads(path.read_text())
    assert loaded.usage() == accountant.usage() and loaded.summary() == accountant.summary()
    fired = len(alerts)
    loaded.record(report(after=10), tenant="acme")  # thresholds already alerted stay quiet
    assert len(alerts) == fired


def test_loading_damaged_data_says_what_is_wrong(tmp_path):
    with pytest.raises(ctxopt.InputError, match="not valid JSON"):
        Accountant.from_json("{oops")
    with pytest.raises(ctxopt.InputError, match="not a ctxopt accounting file"):
        Accountant.from_dict({"groups": []})
    data = Accountant().to_dict()
    data["groups"] = [{"tenant": "a"}]
    with pytest.raises(ctxopt.InputError, match="damaged"):
        Accountant.from_dict(data)
    with pytest.raises(ctxopt.InputError, match="cannot read"):
        Accountant.load(tmp_path / "missing.json")


def test_many_threads_recording_lose_nothing():
    accountant = Accountant(budgets={"t0": 10**9})
    per_thread = 400

    def work(n: int) -> None:
        for i in range(per_thread):
            accountant.record(report(1000, 400 + n, seconds=i / 10**5), tenant=f"t{n % 3}", agent=f"a{i % 2}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = accountant.total()
    assert total.requests == 8 * per_thread
    assert total.tokens_after == sum((400 + n) * per_thread for n in range(8))
    assert accountant.budget_status()["t0"]["used"] == sum((400 + n) * per_thread for n in (0, 3, 6))


def test_summary_fits_one_screen():
    accountant = Accountant(budgets={"tenant-1": 10**6})
    for i in range(40):
        accountant.record(report(), tenant=f"tenant-{i}", agent="support")
    lines = accountant.summary().splitlines()
    assert len(lines) <= 30 and max(map(len, lines)) <= 120
    assert "40 requests from 40 tenant(s)" in lines[0] and "25 more row(s)" in lines[-4]


def test_cli_report_prints_the_summary_of_a_saved_file(tmp_path, capsys):
    accountant = Accountant(budgets={"acme": 10_000})
    accountant.record(report(), tenant="acme", agent="support")
    accountant.save(tmp_path / "usage.json")
    assert main(["report", str(tmp_path / "usage.json")]) == 0
    out = capsys.readouterr().out
    assert "1 requests from 1 tenant(s)" in out and "acme" in out and "support" in out
    assert main(["report", str(tmp_path / "usage.json"), "--json", "--by", "tenant"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"][0]["tokens_saved"] == 600 and data["budgets"]["acme"]["used"] == 400


def test_cli_report_rejects_a_bad_file_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not a ctxopt accounting file" in err and "Accountant.save()" in err
    assert main(["report", str(tmp_path / "nope.json")]) == 2
    assert "cannot read accounting file" in capsys.readouterr().err


def test_without_a_callback_alerts_are_logged_as_warnings(caplog):
    accountant = Accountant(budgets={"acme": 100}, thresholds=[0.9], clock=lambda: JUNE)
    with caplog.at_level("WARNING", logger="ctxopt.accounting"):
        accountant.record(report(after=95), tenant="acme")
    assert "tenant 'acme' used 95/100 tokens in 2026-05" in caplog.text
