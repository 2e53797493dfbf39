import json

import pytest

from ctxopt import InputError, Pipeline, load_tiers
from ctxopt.cli import main
from ctxopt.tune import Case, load_evalset, recall_curve, recommend, save_evalset, tuned_tiers

CURVE = [
    {"budget": 500, "recall": 0.5, "tokens": 520, "full_tokens": 20000},
    {"budget": 1000, "recall": 0.82, "tokens": 1010, "full_tokens": 20000},
    {"budget": 2000, "recall": 0.91, "tokens": 2000, "full_tokens": 20000},
    {"budget": 4000, "recall": 0.93, "tokens": 3900, "full_tokens": 20000},
]


def test_each_tier_gets_the_smallest_budget_that_meets_its_target():
    recs = recommend(CURVE, {"free": 0.8, "pro": 0.9, "enterprise": 0.99})
    assert (recs["free"].budget, recs["pro"].budget) == (1000, 2000)
    assert recs["free"].tokens_saved == 20000 - 1010
    assert recs["enterprise"].budget == 4000 and not recs["enterprise"].met


def test_tuned_tiers_cap_the_section_and_can_hold_it():
    tiers = tuned_tiers(recommend(CURVE, {"free": 0.9}))
    assert tiers["free"].history == 2000 and tiers["free"].budget >= 2000


def chat_case(n_turns: int, evidence_turn: int) -> Case:
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "word " * 40}
                for i in range(n_turns)]
    return Case(query="what happened?", messages=tuple(messages), evidence=(f"m{evidence_turn}",))


def test_recall_curve_measures_evidence_kept_through_the_real_pipeline():
    cases = [chat_case(20, 19), chat_case(20, 0)]  # the recency fit keeps the last turn, not the first
    curve = recall_curve(cases, Pipeline(), [100, 100000])
    assert curve[0]["recall"] == 0.5 and curve[1]["recall"] == 1.0
    assert curve[0]["tokens"] < curve[1]["tokens"] == curve[1]["full_tokens"]


def test_tune_cli_round_trip_on_an_evaluation_set_meets_the_target(tmp_path, capsys):
    cases = [chat_case(20, e) for e in (19, 18, 17, 16, 10)]
    path = tmp_path / "cases.jsonl"
    save_evalset(cases, path)
    out = tmp_path / "tiers.toml"
    assert main(["tune", "--evalset", str(path), "--pipeline", str(tmp_path / "p.toml"), "--out", str(out)]) == 2
    (tmp_path / "p.toml").write_text("[fit]\non_overflow = 'error'\n")
    assert main(["tune", "--evalset", str(path), "--pipeline", str(tmp_path / "p.toml"), "--target", "pro=0.8",
                 "--budgets", "100,200,300,400,500,800", "--out", str(out)]) == 0
    tier = load_tiers(out)["pro"]
    recalls = [c.recall(Pipeline().run(c.context(tier)).context) for c in load_evalset(path)]
    assert sum(recalls) / len(recalls) >= 0.8
    assert (tmp_path / "tiers.png").stat().st_size > 0
    assert json.loads((tmp_path / "tiers.json").read_text())["recommendations"][0]["met"] is True


@pytest.mark.parametrize("line, message", [
    ("{", "not valid JSON"),
    ('{"query": "q", "messages": []}', "missing evidence"),
    ('{"query": "q", "messages": [{"role": "user", "content": "x"}], "evidence": ["m5"]}', "match no message"),
    ('{"query": "q", "messages": [{"role": "bot", "content": "x"}], "evidence": ["m0"]}', "role 'bot'"),
    ('{"query": "", "messages": [], "evidence": ["m0"]}', "query must be a non-empty string"),
])
def test_bad_evaluation_sets_name_the_line_and_the_problem(tmp_path, line, message):
    path = tmp_path / "cases.jsonl"
    path.write_text('{"query": "q", "messages": [{"role": "user", "content": "x"}], "evidence": ["m0"]}\n' + line)
    with pytest.raises(InputError, match=f"cases.jsonl:2: .*{message}"):
        load_evalset(path)


def test_tune_from_a_curve_file_writes_tiers(tmp_path, capsys):
    path = tmp_path / "curve.json"
    path.write_text(json.dumps({"curve": CURVE}))
    assert main(["tune", "--curve", str(path), "--out", str(tmp_path / "t.toml")]) == 0
    assert load_tiers(tmp_path / "t.toml")["free"].history == 1000
    assert "free" in capsys.readouterr().out


NEEDS_4000 = [
    {"budget": 1000, "recall": 0.6, "tokens": 1000, "full_tokens": 20000},
    {"budget": 2000, "recall": 0.7, "tokens": 2000, "full_tokens": 20000},
    {"budget": 3000, "recall": 0.75, "tokens": 3000, "full_tokens": 20000},
    {"budget": 4000, "recall": 0.85, "tokens": 4000, "full_tokens": 20000},
]


def test_a_tuned_tier_keeps_the_limit_the_user_set_and_says_what_would_reach_the_target():
    from ctxopt.tiers import DEFAULT_TIERS

    recs = recommend(NEEDS_4000, {"free": 0.8}, tiers=DEFAULT_TIERS)
    tiers = tuned_tiers(recs, base=DEFAULT_TIERS)
    assert tiers["free"].limit == 4096 and tiers["free"].reserve == 512
    assert recs["free"].budget == 3000 and not recs["free"].met  # the best budget within 4096 - 512
    assert "keeps its limit of 4096" in recs["free"].note and "at least 4512" in recs["free"].note


def test_tune_says_on_stderr_and_in_tiers_json_why_a_target_was_not_reached(tmp_path, capsys):
    path = tmp_path / "curve.json"
    path.write_text(json.dumps({"curve": NEEDS_4000}))
    assert main(["tune", "--curve", str(path), "--target", "free=0.8", "--out", str(tmp_path / "t.toml")]) == 0
    assert load_tiers(tmp_path / "t.toml")["free"].limit == 4096
    captured = capsys.readouterr()
    assert "raise its limit to at least 4512" in captured.err
    assert "within the tier's limit" in captured.out
    row = json.loads((tmp_path / "t.json").read_text())["recommendations"][0]
    assert row["met"] is False and "at least 4512" in row["note"]


def test_a_tier_that_can_hold_the_budget_gets_no_note():
    from ctxopt.tiers import DEFAULT_TIERS

    recs = recommend(NEEDS_4000, {"pro": 0.8}, tiers=DEFAULT_TIERS)
    assert recs["pro"].budget == 4000 and recs["pro"].met and recs["pro"].note == ""


def _billed_point(budget: int, recall: float, fresh: int, cached: int) -> dict:
    def split(f: int, c: int) -> dict:
        return {"automatic": {"fresh": f, "cached": c, "written": 0}, "explicit": {"fresh": f + c, "cached": 0, "written": 0},
                "none": {"fresh": f + c, "cached": 0, "written": 0}}
    return {"budget": budget, "recall": recall, "tokens": fresh + cached, "full_tokens": 20000,
            "bill": split(fresh, cached), "full_bill": split(500, 19500)}


SESSION_CURVES = {"default": "session", "cold": "prune_history", "curves": {
    "session": [_billed_point(2000, 0.80, 900, 1100), _billed_point(4000, 0.92, 1200, 2800),
                _billed_point(6000, 0.93, 800, 5200)],
    "prune_history": [_billed_point(2000, 0.91, 2000, 0), _billed_point(4000, 0.95, 4000, 0)]}}


def test_tune_picks_the_cheapest_cached_bill_and_says_when_a_warm_cache_beats_a_smaller_cap(tmp_path, capsys):
    path = tmp_path / "curve.json"
    path.write_text(json.dumps(SESSION_CURVES))
    out = tmp_path / "tiers.toml"
    assert main(["tune", "--curve", str(path), "--model", "gpt-5", "--target", "pro=0.9", "--out", str(out)]) == 0
    # gpt-5 reads cached tokens at 0.1x: 6,000 costs 800 + 520 token-units per request, 4,000 costs
    # 1,200 + 280, and per-request pruning at 2,000 costs 2,000 fresh.
    assert load_tiers(out)["pro"].history == 6000
    row = json.loads(out.with_suffix(".json").read_text())["recommendations"][0]
    assert row["cost"] == pytest.approx((800 * 1.25 + 5200 * 0.125) / 1e6)
    printed = capsys.readouterr().out
    assert "a 6,000-token cap with a warm cache costs $1.65 per 1k requests, less than 2,000 without one ($2.50" in printed
    # Without a cache discount the smallest qualifying cap is also the cheapest.
    assert main(["tune", "--curve", str(path), "--model", "gpt-4o-2024-05-13", "--target", "pro=0.9",
                 "--out", str(out)]) == 0
    assert load_tiers(out)["pro"].history == 4000
