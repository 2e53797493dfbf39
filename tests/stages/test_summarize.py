import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_profiles import examples

from ctxopt.errors import ConfigError
from ctxopt.stages import Summarize, check_stage
from ctxopt.stages.summarize import clear_cache
from ctxopt.summarizers import ExtractiveSummarizer, fit_to_tokens, openai_summarizer
from ctxopt.tokens import get_tokenizer
from ctxopt.types import Context, Item


def turns(n, start=0):
    return [Item(id=f"t{k}", kind="user" if k % 2 == 0 else "assistant",
                 text=f"Ann: On trip {k} I visited city number {k} and bought {k} souvenirs.",
                 metadata={"speaker": "Ann", "date": f"{k + 1} May 2023"}) for k in range(start, start + n)]


class Counting:
    """A verbose fake LLM: repeats its input and counts calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, text, max_tokens):
        self.calls.append(text)
        return (text + " ") * 3


def test_summarize_passes_the_stage_contract():
    check_stage(Summarize(keep_last=1, step=1, max_tokens=30))
    check_stage(Summarize(keep_last=1, step=2, max_tokens=30, keep_turns=True))


def test_old_turns_become_one_summary_before_the_recent_ones():
    out = Summarize(keep_last=2, step=4, max_tokens=200).run(Context(query="q", items=tuple(turns(10))))
    assert [i.kind for i in out.items] == ["summary", "user", "assistant"]
    assert "Ann (1 May 2023): On trip 0" in out.items[0].text  # speaker and date survive


@settings(max_examples=examples(40), deadline=None)
@given(target=st.integers(1, 60), n=st.integers(2, 12), llm=st.booleans())
def test_the_summary_never_exceeds_its_token_target(target, n, llm):
    stage = Summarize(keep_last=1, step=1, max_tokens=target, summarizer=Counting() if llm else None)
    out = stage.run(Context(query="q", items=tuple(turns(n))))
    summary = [i for i in out.items if i.kind == "summary"]
    assert len(summary) == 1 and get_tokenizer().count(summary[0].text) <= target


def test_an_over_long_llm_answer_is_cut_at_a_sentence_boundary():
    text = "First sentence here. Second sentence is longer than that. Third."
    assert fit_to_tokens(text, 9) == "First sentence here."


def test_protected_items_and_tool_units_are_never_summarised_or_split():
    items = turns(6)
    items[1] = items[1].replace(protected=True)
    items[3] = items[3].replace(unit="u")
    items[4] = items[4].replace(kind="tool", unit="u")
    out = Summarize(keep_last=1, step=1, max_tokens=100).run(Context(query="q", items=tuple(items)))
    ids = [i.id for i in out.items]
    assert "t1" in ids  # protected: kept, and nothing after it is summarised out of order
    assert ("t3" in ids) == ("t4" in ids)


def test_a_growing_conversation_reuses_the_cached_summary():
    clear_cache()
    llm = Counting()
    stage = Summarize(keep_last=2, step=4, max_tokens=500, summarizer=llm)
    stage.run(Context(query="q", items=tuple(turns(10))))
    stage.run(Context(query="another query", items=tuple(turns(11))))  # same 8 old turns: cached
    assert len(llm.calls) == 1
    stage.run(Context(query="q", items=tuple(turns(14))))  # 12 old turns: previous summary + 4 new
    assert len(llm.calls) == 2 and "trip 0" not in llm.calls[1].split("\n")[-1]
    assert "trip 11" in llm.calls[1]


def test_the_summary_respects_the_tiers_summary_cap():
    from ctxopt import Tier

    out = Summarize(keep_last=1, step=1, max_tokens=500).run(
        Context(query="q", items=tuple(turns(20)), tier=Tier(4000, summary=40)))
    summary = next(i for i in out.items if i.kind == "summary")
    assert get_tokenizer().count_message(summary.to_message()) <= 40


def test_extractive_summary_prefers_facts_over_chit_chat():
    text = "Ann (1 May): Wow, great!\nBob (1 May): I moved to Lisbon in 2021 for a job at a bakery."
    assert ExtractiveSummarizer()(text, 30) == "Bob (1 May): I moved to Lisbon in 2021 for a job at a bakery."


def test_the_openai_adapter_uses_the_chat_completions_shape():
    seen = {}

    class Completions:
        @staticmethod
        def create(model, messages, **kwargs):
            seen.update(model=model, messages=messages, **kwargs)
            message = type("Message", (), {"content": " Ann visited Rome. "})
            return type("Response", (), {"choices": [type("Choice", (), {"message": message})]})

    client = type("Client", (), {"chat": type("Chat", (), {"completions": Completions})})
    assert openai_summarizer(client, "m1")("Ann: I visited Rome.", 50) == "Ann visited Rome."
    assert seen["model"] == "m1" and seen["max_tokens"] == 50
    assert [m["role"] for m in seen["messages"]] == ["system", "user"]


def test_a_summarizer_that_is_not_callable_is_refused():
    with pytest.raises(ConfigError, match="callable"):
        Summarize(summarizer="gpt-4o")


# -- a system message in mid-conversation is a wall no turn crosses (issue 11) ---------------------

def _system(n: int, text: str) -> Item:
    return Item(id=f"s{n}", kind="system", text=text, protected=True)


def _assert_no_turn_crossed_a_system_message(before: tuple[Item, ...], after: tuple[Item, ...]) -> None:
    """Each turn (verbatim or inside a summary) stays between the same two system messages, and
    the order of everything else is unchanged."""
    def wall_of(items):  # item id -> the number of system messages before it
        walls, seen = {}, 0
        for item in items:
            seen += item.kind == "system"
            for source in (item.metadata.get("source_ids") or [item.id]):
                walls[source] = seen
        return walls

    assert wall_of(after) == {k: v for k, v in wall_of(before).items() if k in wall_of(after)}
    kept = [i.id for i in after if i.kind != "summary"]
    assert kept == [i.id for i in before if i.id in set(kept)]


def test_turns_after_a_mid_conversation_system_message_are_never_summarised_before_it():
    items = (_system(0, "You are a support agent."), *turns(4), _system(1, "The user was handed to billing."),
             *turns(12, start=4))
    out = Summarize(keep_last=2, step=2, max_tokens=200).run(Context(query="q", items=items))
    assert [i.kind for i in out.items][:4] == ["system", "summary", "system", "summary"]
    first, second = out.items[1], out.items[3]
    assert first.metadata["source_ids"] == ["t0", "t1", "t2", "t3"] and "trip 4" not in first.text
    assert second.metadata["source_ids"] == [f"t{k}" for k in range(4, 14)]
    assert out.notes["summaries"] == 2 and out.notes["turns_summarised"] == 14
    _assert_no_turn_crossed_a_system_message(items, out.items)


def test_the_summaries_of_several_segments_share_the_token_target():
    items = (*turns(8), _system(0, "New instructions."), *turns(10, start=8))
    out = Summarize(keep_last=2, step=4, max_tokens=120).run(Context(query="q", items=items))
    summaries = [i for i in out.items if i.kind == "summary"]
    counts = [get_tokenizer().count(s.text) for s in summaries]
    assert len(counts) == 2 and all(0 < c <= 60 for c in counts) and sum(counts) == out.notes["summary_tokens"]


@pytest.mark.slow
def test_a_locomo_conversation_with_a_system_message_per_session_keeps_every_turn_in_its_session():
    from ctxopt.bench.memory import load

    items: list[Item] = []
    for item in load(quick=True)[0]["items"]:  # a real 419-turn, 19-session LoCoMo chat
        if not items or items[-1].metadata.get("date") != item.metadata["date"]:
            items.append(_system(len(items), f"A new session starts on {item.metadata['date']}."))
        items.append(item)
    before = tuple(items)
    for summarize in (Summarize(), Summarize(keep_turns=True, max_tokens=400)):
        out = summarize.run(Context(query="What did Caroline research?", items=before))
        assert out.notes["summaries"] > 1
        _assert_no_turn_crossed_a_system_message(before, out.items)
        assert sum(get_tokenizer().count(i.text) for i in out.items if i.kind == "summary") <= summarize.max_tokens
