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
