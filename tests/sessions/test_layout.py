"""The session layout: watermarks, the relevance tail, breakpoints, and a prefix that stays put."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ctxopt
from ctxopt.embed import HashEmbedder
from ctxopt.sessions import SessionStore, boundary, choose_tail
from ctxopt.stages import check_stage
from ctxopt.stages.session import SessionLayout
from ctxopt.types import CACHE_BREAKPOINT, Context, Item

SYSTEM = {"role": "system", "content": "You are a travel agent. " * 60}


def conversation(turns: int) -> list[dict[str, str]]:
    topics = ["Lisbon hotels", "train to Porto", "vegan food", "museum tickets", "airport taxi", "rainy days"]
    return [SYSTEM] + [{"role": "user" if n % 2 == 0 else "assistant",
                        "content": f"Turn {n} about {topics[n % len(topics)]}: " + "some detail " * (10 + n % 7)}
                       for n in range(turns)]


def layout(**options: object) -> SessionLayout:
    return SessionLayout(embedder=HashEmbedder(), **options)  # type: ignore[arg-type]


@given(st.lists(st.integers(1, 300), max_size=60), st.integers(100, 2000), st.floats(0.0, 1.0))
def test_the_window_never_exceeds_high_and_a_compaction_leaves_at_most_low(sizes, high, share):
    low = round(high * share)
    start = boundary(sizes, high, low)
    window = sum(sizes[start:])
    assert window <= high
    # Replaying one more unit either keeps the start or moves it forward: the window never reopens.
    assert boundary([*sizes, 50], high, low) >= start


def test_the_tail_takes_the_best_scores_that_fit_in_prompt_order():
    candidates = [(100, 0.9), (300, 0.8), (50, 0.1), (80, 0.7), (40, 0.05)]
    assert choose_tail(candidates, room=250) == [0, 2, 3]
    assert choose_tail(candidates, room=250, min_score=0.5) == [0, 3]


def test_the_stage_keeps_the_stage_contract():
    check_stage(layout(history=60, min_cached_tokens=0))
    check_stage(layout())


def test_prompts_extend_each_other_between_compactions(tmp_path):
    pipeline = ctxopt.Pipeline(stages=(layout(),), model="gpt-5")
    store = SessionStore(directory=tmp_path)
    tier = ctxopt.Tier(8000, reserve=500, history=2000)
    history, prompts, reports = conversation(20), [], []
    for n in range(40):
        history = history + [{"role": "user", "content": f"Tell me about the {['hotels', 'taxi', 'food'][n % 3]} again"}]
        result = pipeline.optimize(history, tier, session="trip", session_store=store)
        prompts.append(result.context.items)
        reports.append(result.report)
        history = history + [{"role": "assistant", "content": "Here is what I found. " * 8}]
    compactions = 0
    for before, after in itertools.pairwise(prompts):
        stable = [i.id for i in before[: _stable_end(before)]]
        if [i.id for i in after[: len(stable)]] != stable:
            compactions += 1
            continue
        assert after[len(stable) - 1].text == before[len(stable) - 1].text
    # Many cheap turns per compaction, and every prompt within the history cap.
    assert 1 <= compactions <= 10
    assert all(r.stages[0].notes["window_tokens"] + r.stages[0].notes["tail_tokens"] <= 2000 for r in reports)
    assert sum(r.cached_tokens for r in reports) > 0.5 * sum(r.tokens_after for r in reports)


def _stable_end(items: tuple[Item, ...]) -> int:
    return max(n for n, i in enumerate(items) if i.metadata.get(CACHE_BREAKPOINT)) + 1


def test_breakpoints_mark_the_end_of_the_head_and_of_the_window_and_the_tail_comes_after():
    messages = conversation(60) + [{"role": "user", "content": "What about vegan food?"}]
    out = layout(history=1700).run(Context.from_messages(messages, tier=ctxopt.Tier(8000)))
    marked = [n for n, i in enumerate(out.items) if i.metadata.get(CACHE_BREAKPOINT)]
    assert len(marked) == 2 and marked[0] == 0 and out.notes["layout"] == "window"
    window, tail = out.items[1: marked[1] + 1], out.items[marked[1] + 1: -1]
    position = [int(i.id[1:]) for i in out.items[1:-1]]
    assert tail and max(int(i.id[1:]) for i in tail) < int(window[0].id[1:])   # older turns, after the window
    assert position[: len(window)] == sorted(position[: len(window)])
    older = [f"m{n + 1}" for n, m in enumerate(messages[1:-1]) if "vegan" in m["content"] and n + 1 < int(window[0].id[1:])]
    relevant = [i for i in tail if "vegan" in i.text]
    assert [i.id for i in relevant] == older                                    # every older vegan turn,
    assert min(i.score or 0 for i in relevant) > max(i.score or 0 for i in tail if i not in relevant)  # best first
    assert out.items[-1].text == "What about vegan food?"


def test_the_tail_fills_its_room_unless_a_score_floor_leaves_it_unused():
    # Like prune_history fills its cap, the tail fills its room best score first; a floor keeps out
    # the weak turns and leaves the room empty (it cost more recall than it saved on LoCoMo).
    messages = conversation(60) + [{"role": "user", "content": "What about vegan food?"}]
    context = Context.from_messages(messages, tier=ctxopt.Tier(8000))
    full, floored = (layout(history=1700, **options).run(context) for options in ({}, {"min_score": 0.2}))
    tail_turns = {i.id for i in full.items[_stable_end(full.items):-1]}
    assert {i.id for i in floored.items[_stable_end(floored.items):-1]} < tail_turns
    assert all("vegan" in i.text for i in floored.items[_stable_end(floored.items):-1])
    turn = full.items[-1].tokens or 0
    room = min(full.notes["history_cap"] - full.notes["window_tokens"] - turn, 768)
    largest = max(i.tokens or 0 for i in full.items if i.kind in ("user", "assistant"))
    assert room - largest < full.notes["tail_tokens"] <= room


def test_the_turn_in_progress_and_retrieved_chunks_come_last():
    messages = conversation(40) + [
        {"role": "user", "content": "Book the Porto train"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "book", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Booked: 10:05 Lisbon -> Porto"}]
    context = Context.from_messages(messages, tier=ctxopt.Tier(8000))
    doc = Item(id="doc:1", kind="retrieved", text="Trains leave hourly.", score=0.5)
    context = context.replace(items=[*context.items[:-3], doc, *context.items[-3:]])
    out = layout(history=900, min_cached_tokens=0).run(context)
    assert [i.id for i in out.items[-4:]] == ["doc:1", "m41", "m42", "m43"]


def test_below_the_providers_minimum_the_whole_cap_goes_to_relevance():
    messages = conversation(60) + [{"role": "user", "content": "What about museum tickets?"}]
    out = layout(history=600).run(Context.from_messages(messages, tier=ctxopt.Tier(8000)))
    assert out.notes["layout"] == "relevance" and out.notes["window_tokens"] == 0
    assert [i.id for i in out.items][-5:-1] == ["m57", "m58", "m59", "m60"]  # the 4 latest turns, then the query


def test_a_session_key_adds_the_layout_and_bad_keys_are_input_errors(tmp_path):
    store = SessionStore(directory=tmp_path)
    report = ctxopt.optimize(conversation(6), tier="free", session="s", session_store=store).report
    assert "session" in [s.name for s in report.stages] and report.session == "s"
    with pytest.raises(ctxopt.InputError, match="session must be a non-empty str"):
        ctxopt.optimize(conversation(6), tier="free", session="")


def test_options_are_validated():
    with pytest.raises(ctxopt.ConfigError, match="tail must be a share"):
        SessionLayout(tail=1.5)
    with pytest.raises(ctxopt.ConfigError, match="min_score must be a number or None"):
        SessionLayout(min_score="high")  # type: ignore[arg-type]
    with pytest.raises(ctxopt.ConfigError, match="history must be a whole number"):
        SessionLayout(history=0)
    assert ctxopt.Pipeline.from_config({"stages": [{"name": "session", "tail": 0.3}]}).stages[0].tail == 0.3


def test_an_agent_tool_loop_keeps_its_prefix_with_the_default_pipeline(tmp_path):
    # Requests inside one user turn (tool call, result, tool call, result...) with big tool results:
    # the default pipeline's prune_tool_output must not re-cut the held window on every request.
    store = SessionStore(directory=tmp_path)
    pipeline = ctxopt.Pipeline(model="gpt-5")
    history = conversation(30) + [{"role": "user", "content": "Find me a hotel in Lisbon under 150 euros"}]
    reports = []
    for n in range(6):
        result = pipeline.optimize(history, ctxopt.Tier(16000, reserve=1000, history=6000), session="loop",
                                   session_store=store)
        reports.append(result.report)
        call = {"id": f"c{n}", "type": "function", "function": {"name": "search", "arguments": f'{{"page": {n}}}'}}
        history = history + [{"role": "assistant", "content": None, "tool_calls": [call]},
                             {"role": "tool", "tool_call_id": f"c{n}",
                              "content": "\n".join(f"Hotel {n}-{k}: {100 + k} euros, Lisbon" for k in range(60))}]
    # Each request reads the whole previous prompt from the cache (in OpenAI's 128-token steps);
    # only the newest tool result is billed fresh.
    for before, after in itertools.pairwise(reports):
        assert after.cached_tokens >= before.tokens_after - 3 - 128
    assert all(r.stages[0].name == "session" for r in reports)
