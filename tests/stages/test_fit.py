import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_profiles import examples

from ctxopt import BudgetError, ConfigError, Context, Fit, Item, Pipeline, Tier, check_stage, get_tokenizer

WORDS = ["alpha", "beta", "gamma", "delta", "tokens", "budget", "agent", " ", "\n", "é", "<|endoftext|>", "42"]


@st.composite
def conversations(draw):
    """Random chats: system prompt, turns, tool-call units, a final user message."""
    text = st.lists(st.sampled_from(WORDS), max_size=60).map("".join)
    messages = [{"role": "system", "content": draw(text)}] if draw(st.booleans()) else []
    for turn in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["user", "assistant", "tool_unit"]))
        if kind == "tool_unit":
            ids = [f"call{turn}_{j}" for j in range(draw(st.integers(1, 3)))]
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in ids]})
            messages += [{"role": "tool", "tool_call_id": i, "content": draw(text)} for i in ids]
        else:
            messages.append({"role": kind, "content": draw(text)})
    messages.append({"role": "user", "content": draw(text)})
    return messages


@st.composite
def tiers(draw):
    limit = draw(st.integers(40, 3000))
    reserve = draw(st.integers(0, limit - 1))
    caps = {s: draw(st.one_of(st.none(), st.integers(0, limit), st.floats(0.05, 1.0)))
            for s in ("history", "retrieved")}
    return Tier(limit, reserve=reserve, **caps)


def with_retrieved(ctx, texts, scores):
    docs = [Item(id=f"doc:{i}", kind="retrieved", text=t, score=s) for i, (t, s) in enumerate(zip(texts, scores))]
    items = list(ctx.items)
    return ctx.replace(items=items[:-1] + docs + items[-1:])


@settings(max_examples=examples(200), deadline=None)
@given(conversations(), tiers(), st.lists(st.text(max_size=80), max_size=4),
       st.lists(st.one_of(st.floats(-1, 1), st.just(math.nan), st.none()), min_size=4, max_size=4))
def test_fit_never_exceeds_the_limit_drops_no_protected_item_splits_no_unit_and_keeps_order(
        messages, tier, docs, scores):
    ctx = with_retrieved(Context.from_messages(messages, tier=tier), docs, scores)
    try:
        result = Pipeline().run(ctx)
    except BudgetError:
        protected = Pipeline(fit=Fit(on_overflow="truncate"))
        needed = get_tokenizer().count_messages([i.to_message() for i in ctx.items if i.protected])
        assert needed > tier.budget
        try:
            result = protected.run(ctx)
        except BudgetError:
            return  # not even empty protected messages fit: the error is the only honest answer
    out_ids = [i.id for i in result.context.items]
    # 1. never over the limit, counted exactly on what is sent
    assert get_tokenizer().count_messages(result.messages) <= tier.budget
    assert result.report.tokens_after == get_tokenizer().count_messages(result.messages)
    # 2. protected items survive
    assert {i.id for i in ctx.items if i.protected} <= set(out_ids)
    # 3. tool-call units whole
    for unit in {i.unit for i in ctx.items if i.unit}:
        members = {i.id for i in ctx.items if i.unit == unit}
        assert members <= set(out_ids) or not members & set(out_ids)
    # 4. original order kept
    original = [i.id for i in ctx.items]
    assert out_ids == sorted(out_ids, key=original.index)
    # 5. section caps hold for unprotected items
    for section in ("history", "retrieved"):
        used = sum(i.tokens for i in result.context.items if i.section == section)
        protected_used = sum(i.tokens for i in result.context.items if i.section == section and i.protected)
        assert used <= max(tier.cap(section), protected_used)


def test_fit_keeps_the_highest_scored_items_then_the_most_recent():
    ctx = Context.from_messages([{"role": "user", "content": f"turn {n} " * 20} for n in range(6)],
                                tier=Tier(200))
    ctx = ctx.replace(items=[ctx.items[0].replace(score=0.9), *ctx.items[1:]])
    kept = [i.id for i in Fit().run(ctx).items]
    assert kept[0] == "m0"  # the scored item wins over more recent unscored ones
    assert kept[-1] == "m5" and "m1" not in kept  # then recency


def test_protected_items_over_the_limit_raise_a_budget_error_that_says_how_to_fix_it():
    ctx = Context.from_messages([{"role": "system", "content": "rule " * 500}, {"role": "user", "content": "hi"}],
                                tier=Tier(100, name="tiny"))
    with pytest.raises(BudgetError, match=r"protected items need \d+ tokens but tier 'tiny' allows 100.*truncate"):
        Fit().run(ctx)


def test_opt_in_truncation_cuts_protected_text_and_says_so():
    ctx = Context.from_messages([{"role": "system", "content": "rule " * 500}, {"role": "user", "content": "hi"}],
                                tier=Tier(100))
    result = Pipeline(fit=Fit(on_overflow="truncate")).run(ctx)
    assert result.report.tokens_after <= 100
    assert result.messages[0]["content"].endswith("[truncated]")
    assert result.report.stages[-1].notes["truncated"] == ["m0"]


def test_nan_scores_from_a_custom_stage_rank_as_unscored():
    ctx = Context.from_messages([{"role": "user", "content": "a " * 50}, {"role": "user", "content": "b " * 50},
                                 {"role": "user", "content": "q"}], tier=Tier(70))
    ctx = ctx.replace(items=[ctx.items[0].replace(score=math.nan), *ctx.items[1:]])
    assert [i.id for i in Fit().run(ctx).items] == ["m1", "m2"]


def test_fit_passes_the_stage_conformance_check():
    check_stage(Fit())


def test_fit_rejects_an_unknown_overflow_policy():
    with pytest.raises(ConfigError, match="on_overflow must be one of error, truncate"):
        Fit(on_overflow="drop")


def test_check_stage_catches_a_stage_that_keeps_a_stale_token_count():
    """Issue 11.17: a stage that rewrites an item's message but keeps its count must not pass."""
    import dataclasses
    from typing import ClassVar

    import pytest

    from ctxopt.stages import check_stage

    @dataclasses.dataclass(frozen=True)
    class Renamer:
        name: ClassVar[str] = "renamer"

        def run(self, context):
            counted = [i.replace(tokens=context.counter().count_message(i.to_message())) for i in context.items]
            first = counted[0]
            renamed = first.replace(message={"role": "system", "content": first.text, "name": "x" * 40},
                                    tokens=first.tokens)
            return context.replace(items=[renamed, *counted[1:]])

    with pytest.raises(AssertionError, match="must reset its count"):
        check_stage(Renamer())


def test_an_answer_whose_question_was_cut_opens_the_conversation_only_where_the_provider_allows_it():
    messages = [{"role": "system", "content": "Be brief."}]
    for n in range(6):
        messages += [{"role": "user", "content": f"question {n} " * 20}, {"role": "assistant", "content": f"answer {n} " * 5}]
    messages.append({"role": "user", "content": "and now?"})
    tok, openings = get_tokenizer(), set()
    for limit in range(60, 400, 7):
        chat, anthropic = (Fit().run(Context.from_messages(messages, tier=Tier(limit)).replace(opens_on_user=rule))
                           for rule in (False, True))
        for out in (chat, anthropic):
            assert out.notes["prompt_tokens"] == tok.count_messages(out.to_messages()) <= limit
        opening = next(i for i in chat.items if i.kind != "system")
        openings.add(opening.kind)
        assert "answers_without_question" not in chat.notes  # Chat Completions accepts it: keep what fits
        assert next(i for i in anthropic.items if i.kind != "system").kind == "user"
        if opening.kind == "assistant":  # Anthropic: the answer left without its question goes, and is reported
            assert opening.id in anthropic.notes["answers_without_question"]
            assert opening.id not in {i.id for i in anthropic.items}
    assert openings == {"user", "assistant"}  # the cut really did leave answers without their question
