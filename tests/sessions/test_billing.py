"""The report's bill, hand-computed on a small scripted session for each pricing model."""

from __future__ import annotations

import pytest

import ctxopt
from ctxopt.embed import HashEmbedder
from ctxopt.pricing import Price
from ctxopt.sessions import SessionStore
from ctxopt.sessions.billing import bill, fingerprint
from ctxopt.stages.session import SessionLayout

SYSTEM = {"role": "system", "content": " ".join(["hello"] * 1100)}   # 3 + 1 + 1100 = 1104 tokens
USER = {"role": "user", "content": " ".join(["tell me more"] * 30)}  # 3 + 1 + 90 = 94 tokens
REPLY = {"role": "assistant", "content": " ".join(["sure thing"] * 40)}  # 3 + 1 + 80 = 84 tokens
# Three requests: [S, U] = 1201 tokens with the reply priming, [S, U, A, U] = 1379, [S, U, A, U, A, U] = 1557.
REQUESTS = [[SYSTEM, USER], [SYSTEM, USER, REPLY, USER], [SYSTEM, USER, REPLY, USER, REPLY, USER]]


def replay(tmp_path, model, prices=None):
    # Counted in cl100k_base for every model, so the token counts above are exact (Claude's own
    # count is an estimate with a margin; the bill's rules are what this test checks).
    pipeline = ctxopt.Pipeline(model=model, prices=prices, encoding="cl100k_base")
    store = SessionStore(directory=tmp_path)
    return [pipeline.optimize(messages, tier="pro", session="scripted", session_store=store).report
            for messages in REQUESTS]


def test_automatic_cache_bill_matches_the_hand_computed_one(tmp_path):
    # gpt-5: $1.25 per 1M input tokens, cached $0.125; cached from 1,024 tokens in steps of 128.
    reports = replay(tmp_path, "gpt-5")
    assert [r.tokens_after for r in reports] == [1201, 1379, 1557]
    # 1: cold. 2: shares [S, U] = 1198 tokens -> 1024 + 128 cached. 3: shares 1376 -> 1024 + 256.
    assert [r.cached_tokens for r in reports] == [0, 1152, 1280]
    expected = [1201 * 1.25, (1379 - 1152) * 1.25 + 1152 * 0.125, (1557 - 1280) * 1.25 + 1280 * 0.125]
    assert [r.cost * 1e6 for r in reports] == pytest.approx(expected)   # 1501.25, 427.75, 506.25
    # The prompt went through unchanged, so the unoptimised prompt had the same cache and bill.
    assert [r.cost_without_ctxopt for r in reports] == pytest.approx([r.cost for r in reports])


def test_explicit_cache_bill_matches_the_hand_computed_one(tmp_path):
    # claude-sonnet-4-5: $3 per 1M input, reads $0.30 (0.1x), writes $3.75 (1.25x); breakpoints
    # at the end of the system prompt and of the window (the layout's stable segments).
    reports = replay(tmp_path, "claude-sonnet-4-5")
    # 1: writes S (1104 tokens). 2: reads S, writes U A (178). 3: reads S U A (1282), writes U A (178).
    assert [(r.cached_tokens, r.bill.cache_write_tokens) for r in reports] == [(0, 1104), (1104, 178), (1282, 178)]
    expected = [97 * 3 + 1104 * 3.75, 97 * 3 + 1104 * 0.3 + 178 * 3.75, 97 * 3 + 1282 * 0.3 + 178 * 3.75]
    assert [r.cost * 1e6 for r in reports] == pytest.approx(expected)   # 4431, 1289.7, 1343.1
    # The messages as they came in carry no breakpoint: without ctxopt nothing is cached.
    assert [r.cost_without_ctxopt * 1e6 for r in reports] == pytest.approx([1201 * 3, 1379 * 3, 1557 * 3])
    assert all(r.cost_saved > 0 for r in reports[1:])


def test_no_cache_bill_is_every_token_at_list_price(tmp_path):
    reports = replay(tmp_path, "plain-model", prices={"plain-model": {"input": 2.0}})
    assert [r.cached_tokens for r in reports] == [0, 0, 0]
    assert [r.cost * 1e6 for r in reports] == pytest.approx([1201 * 2, 1379 * 2, 1557 * 2])


def test_without_a_session_the_bill_assumes_a_cold_cache(tmp_path):
    report = ctxopt.Pipeline(model="gpt-5").optimize(REQUESTS[1], tier="pro").report
    assert report.cached_tokens == 0 and report.cost * 1e6 == pytest.approx(1379 * 1.25)


def test_savings_can_be_negative_and_the_report_says_so(tmp_path):
    # A history cap that changes on every turn moves the window every time, breaking the prefix the
    # whole conversation would have had cached: ctxopt's prompt is shorter and yet costs more.
    price = {"cheap-cache": {"input": 1.0, "cache_read": 0.01}}
    pipeline = ctxopt.Pipeline(model="cheap-cache", prices=price, encoding="cl100k_base",
                               stages=(SessionLayout(embedder=HashEmbedder()),))
    store = SessionStore(directory=tmp_path)
    turns = [{"role": "user" if n % 2 == 0 else "assistant", "content": f"Turn {n}: " + "fact " * 60} for n in range(30)]
    history = [SYSTEM, *turns]
    reports = []
    for n in range(4):
        history += [{"role": "user", "content": f"What about turn {3 * n}?"}]
        tier = ctxopt.Tier(1200 + 60 * n, history=600 + 30 * n)
        context = ctxopt.Context.from_messages(history, tier=tier)
        reports.append(pipeline.run(context, session_store=store, session="negative").report)
        history += [{"role": "assistant", "content": "ok"}]
    last = reports[-1]
    assert last.tokens_after < last.tokens_before and last.cost_saved < 0
    assert "more at" in str(last).splitlines()[0] and "than without ctxopt" in str(last)
    assert "saved $-" not in str(last)


def test_a_prompt_print_round_trips_through_json():
    printed = fingerprint([SYSTEM, USER], [1104, 94], [0])
    assert type(printed).from_json(printed.to_json()) == printed
    assert bill(printed, printed, Price(input=1.0)).cached_tokens == 1152
