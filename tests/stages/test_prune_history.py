import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_profiles import examples

from ctxopt import Pipeline, Tier
from ctxopt.embed import HashEmbedder
from ctxopt.stages import PruneHistory, check_stage
from ctxopt.types import Context

EMB = HashEmbedder()


def conversation(n_filler=6):
    messages = [{"role": "system", "content": "You help."},
                {"role": "user", "content": "What is my cat called?"},
                {"role": "assistant", "content": "Your cat Tom is a tabby."}]
    for k in range(n_filler):
        messages += [{"role": "user", "content": f"Tell me about weather day {k}."},
                     {"role": "assistant", "content": f"Sunny with clouds on day {k}."}]
    messages += [{"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                  "function": {"name": "lookup", "arguments": "{}"}}]},
                 {"role": "tool", "tool_call_id": "c1", "content": "rain expected"},
                 {"role": "user", "content": "Remind me, what colour is Tom the cat?"}]
    return messages


def test_prune_history_passes_the_stage_contract():
    check_stage(PruneHistory(keep_last=1, embedder=EMB))
    check_stage(PruneHistory(keep_last=0, max_tokens=10, embedder=EMB))


def test_the_last_turns_score_infinite_so_the_fit_takes_them_first():
    ctx = Context.from_messages(conversation())
    out = PruneHistory(keep_last=3, embedder=EMB).run(ctx)  # the protected question counts as one
    unprotected = [i for i in out.items if i.kind != "system" and not i.protected]
    assert all(math.isinf(i.score) for i in unprotected[-3:])  # a turn + the tool unit (2 items)
    assert not math.isinf(unprotected[-4].score)


def test_a_tool_unit_gets_one_score():
    out = PruneHistory(keep_last=0, embedder=EMB).run(Context.from_messages(conversation()))
    unit = [i for i in out.items if i.unit]
    assert len(unit) == 2 and unit[0].score == unit[1].score


def test_the_question_before_a_relevant_answer_is_pulled_in_with_it():
    ctx = Context.from_messages(conversation())
    scores = {i.text: i.score for i in PruneHistory(keep_last=1, neighbours=1, embedder=EMB).run(ctx).items}
    alone = {i.text: i.score for i in PruneHistory(keep_last=1, neighbours=0, embedder=EMB).run(ctx).items}
    question = "What is my cat called?"
    assert scores[question] > alone[question]
    assert scores[question] == pytest.approx(0.85 * scores["Your cat Tom is a tabby."], abs=1e-5)


def test_the_fit_keeps_the_relevant_old_turn_over_recent_filler():
    tier = Tier(200, history=60)
    result = Pipeline(stages=(PruneHistory(keep_last=0, neighbours=0, embedder=EMB),)).run(
        Context.from_messages(conversation(), tier=tier))
    assert "Your cat Tom is a tabby." in [i.text for i in result.context.items]


@settings(max_examples=examples(30), deadline=None)
@given(n_filler=st.integers(0, 6), max_tokens=st.integers(0, 120), keep_last=st.integers(0, 3))
def test_a_token_target_never_drops_protected_items_or_splits_tool_units(n_filler, max_tokens, keep_last):
    ctx = Context.from_messages(conversation(n_filler))
    out = PruneHistory(keep_last=keep_last, max_tokens=max_tokens, embedder=EMB).run(ctx)
    ids = {i.id for i in out.items}
    assert all(i.id in ids for i in ctx.items if i.protected)
    unit = {i.id for i in ctx.items if i.unit}
    assert unit <= ids or not unit & ids


@pytest.mark.slow
def test_real_model_ranks_the_answering_turn_first(real_embedder):
    out = PruneHistory(keep_last=0, neighbours=0, embedder=real_embedder).run(Context.from_messages(conversation()))
    best = max((i for i in out.items if i.score is not None), key=lambda i: i.score)
    assert best.text == "Your cat Tom is a tabby."
