import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_profiles import examples

from ctxopt.embed import HashEmbedder
from ctxopt.errors import ConfigError
from ctxopt.stages import PruneChunks, check_stage
from ctxopt.types import Context, Item

EMB = HashEmbedder()


def chunk(id, text, **kw):
    return Item(id=id, kind="retrieved", text=text, **kw)


def test_prune_chunks_passes_the_stage_contract():
    check_stage(PruneChunks(top_k=2, embedder=EMB))
    check_stage(PruneChunks(max_tokens=5, reorder=True, embedder=EMB))


@settings(max_examples=examples(40), deadline=None)
@given(texts=st.lists(st.text(min_size=1, max_size=80), min_size=1, max_size=5),
       query=st.text(max_size=30), max_tokens=st.integers(0, 10))
def test_pruning_never_returns_an_empty_context_when_something_was_retrieved(texts, query, max_tokens):
    items = tuple(chunk(f"d{n}", t) for n, t in enumerate(texts))
    out = PruneChunks(max_tokens=max_tokens, min_relative=0.9, embedder=EMB).run(Context(query=query, items=items))
    if any(t.strip() for t in texts):
        assert any(i.kind == "retrieved" and i.text.strip() for i in out.items)


def test_surviving_sentences_keep_their_original_order_inside_a_chunk():
    text = "Cats sleep a lot. Dogs bark at night. Cats purr when happy. Birds sing."
    out = PruneChunks(top_k=2, embedder=EMB).run(Context(query="what do cats do", items=(chunk("d", text),)))
    assert out.items[0].text == "Cats sleep a lot. Cats purr when happy."


def test_near_duplicate_sentences_are_kept_once():
    items = (chunk("a", "Mars has two moons."), chunk("b", "Mars has two moons."))
    out = PruneChunks(dedup=0.9, embedder=EMB).run(Context(query="moons of Mars", items=items))
    assert [i.id for i in out.items] == ["a"]


def test_a_protected_chunk_is_kept_even_when_irrelevant():
    items = (chunk("a", "Mars has two moons."), chunk("b", "Bread needs yeast.", protected=True))
    out = PruneChunks(top_k=1, embedder=EMB).run(Context(query="moons of Mars", items=items))
    assert {i.id for i in out.items} == {"a", "b"}


def test_reorder_puts_the_best_chunks_at_both_ends():
    items = tuple(chunk(f"d{n}", f"Mars fact {'moon ' * (5 - n)} number {n}.") for n in range(4))
    out = PruneChunks(reorder=True, dedup=1.0, embedder=EMB).run(Context(query="moon moon moon", items=items))
    scores = [i.score for i in out.items]
    ranked = sorted(scores, reverse=True)
    assert len(scores) == 4 and scores[0] == ranked[0] and scores[-1] == ranked[1] and min(scores[1:3]) == ranked[3]


def test_other_items_are_left_untouched():
    items = (Item(id="s", kind="system", text="Be brief.", protected=True), chunk("d", "A. B."),
             Item(id="u", kind="user", text="Q?", protected=True))
    out = PruneChunks(embedder=EMB).run(Context(query="Q?", items=items))
    assert [i.id for i in out.items] == ["s", "d", "u"]


def test_bad_settings_say_what_is_allowed():
    with pytest.raises(ConfigError, match="keep_ratio must be a float in"):
        PruneChunks(keep_ratio=1.5)


@pytest.mark.slow
def test_the_answering_sentence_survives_a_tight_budget(real_embedder):
    items = (chunk("mars", "Mars is the fourth planet. A sol on Mars lasts 24 hours and 39 minutes. "
                   "Its surface is red because of iron oxide.", metadata={"title": "Mars"}),
             chunk("venus", "Venus is the second planet. Venus has a thick atmosphere of carbon dioxide.",
                   metadata={"title": "Venus"}))
    out = PruneChunks(max_tokens=20, embedder=real_embedder).run(
        Context(query="How long is a day on Mars?", items=items))
    kept = " ".join(i.text for i in out.items)
    assert "24 hours and 39 minutes" in kept and "carbon dioxide" not in kept
