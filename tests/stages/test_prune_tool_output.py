import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_profiles import examples

from ctxopt import ConfigError, Pipeline, Tier
from ctxopt.embed import HashEmbedder
from ctxopt.stages import STAGES, PruneToolOutput, check_stage
from ctxopt.stages.prune_tool_output import MIN_TARGET, identifiers
from ctxopt.stages.tool_segments import render, segment
from ctxopt.tokens import get_tokenizer
from ctxopt.types import Context

EMB = HashEmbedder()
TOKENIZER = get_tokenizer()
ONCALL = Path(__file__).parents[2] / "examples" / "oncall_conversation.json"
MARKER = re.compile(r"^\[\.\.\. .* omitted \.\.\.\]$")


def log(n=80, special=None):
    lines = [f"2026-11-20T14:{k // 60:02}:{k % 60:02}Z INFO  api request_id=r{1000 + k} latency_ms={k * 7 % 900} ok"
             for k in range(n)]
    for k, line in (special or {}).items():
        lines[k] = line
    return "\n".join(lines)


def agent(tool_text, question="Why did the checkout fail?", protected_tool=False):
    call = {"id": "c1", "type": "function", "function": {"name": "fetch_logs", "arguments": "{}"}}
    messages = [{"role": "system", "content": "You are an SRE assistant."},
                {"role": "user", "content": "Pull the logs."},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": tool_text},
                {"role": "user", "content": question}]
    ctx = Context.from_messages(messages)
    if protected_tool:
        ctx = ctx.replace(items=[i.replace(protected=True) if i.kind == "tool" else i for i in ctx.items])
    return ctx


def tool_text(ctx):
    return next(i.text for i in ctx.items if i.kind == "tool")


def test_prune_tool_output_passes_the_stage_contract_and_is_registered():
    check_stage(PruneToolOutput(embedder=EMB))
    check_stage(PruneToolOutput(min_tokens=0, max_tokens=16, embedder=EMB))
    check_stage(PruneToolOutput(min_tokens=50, keep_ratio=0.2, embedder=EMB),
                [agent(log()), agent(log(), question="")])
    assert STAGES["prune_tool_output"] is PruneToolOutput


def test_a_long_log_is_cut_to_the_lines_naming_the_query_identifier():
    special = {37: "2026-11-20T14:00:37Z ERROR billing request_id=req-7f3a upstream timeout from db-primary-2",
               51: "2026-11-20T14:00:51Z ERROR billing request_id=req-9c1d upstream timeout from db-primary-20"}
    ctx = agent(log(special=special), question="Why did req-7f3a time out on db-primary-2?")
    out = PruneToolOutput(max_tokens=60, embedder=EMB).run(ctx)
    text = tool_text(out)
    assert special[37] in text.splitlines()
    assert TOKENIZER.count(text) <= 80
    assert "[... 37 lines omitted ...]" in text.splitlines()


def test_identifiers_are_ids_codes_quoted_phrases_and_caps_words_not_small_numbers():
    assert identifiers("OK, why HTTP 502 for req-7f3a on db-primary-2 in 20 minutes? see `cache miss` ERROR") == \
        ["cache miss", "http", "502", "req-7f3a", "db-primary-2", "error"]
    assert identifiers("what's the policy for 'sneakers'?") == ["sneakers"]


def test_short_tool_outputs_are_left_alone_and_the_turn_in_progress_is_cut_not_dropped():
    short = agent("2026 ok\n" * 10)
    assert PruneToolOutput(embedder=EMB).run(short) == short
    protected = agent(log(), protected_tool=True)  # the tool result of the turn in progress
    out = PruneToolOutput(min_tokens=0, max_tokens=50, embedder=EMB).run(protected)
    assert [i.id for i in out.items] == [i.id for i in protected.items]
    assert TOKENIZER.count(tool_text(out)) <= 50


def test_the_report_notes_say_how_much_tool_text_was_cut():
    out = PruneToolOutput(max_tokens=100, embedder=EMB).run(agent(log()))
    assert out.notes["tool_items_pruned"] == 1
    assert out.notes["tool_tokens_before"] == TOKENIZER.count(log())
    assert out.notes["tool_tokens_after"] == TOKENIZER.count(tool_text(out)) <= 100
    assert {"cache_hits", "cache_misses"} <= out.notes.keys()


def test_the_stage_round_trips_through_a_pipeline_config():
    pipeline = Pipeline(stages=(PruneToolOutput(min_tokens=100, keep_ratio=0.25, keep_headers=False),))
    assert Pipeline.from_config(pipeline.to_config()) == pipeline


def test_keep_ratio_and_max_tokens_together_use_the_smaller_target():
    stage = PruneToolOutput(max_tokens=500, keep_ratio=0.1, embedder=EMB)
    assert stage.target(1000) == 100 and stage.target(10_000) == 500 and stage.target(20) == MIN_TARGET


def test_json_output_is_shown_one_field_per_line_and_keeps_the_title_of_a_kept_result():
    results = [{"title": f"Result {n}", "url": f"https://example.com/{n}",
                "text": f"Filler sentence number {n} about gardening. Another line on tomatoes {n}."}
               for n in range(30)]
    results[17]["text"] = "Mars has two moons, Phobos and Deimos. " + results[17]["text"]
    ctx = agent(json.dumps(results), question="How many moons does Mars have?")
    text = tool_text(PruneToolOutput(max_tokens=80, embedder=EMB).run(ctx))
    assert '"title": "Result 17",' in text
    assert '"text": "Mars has two moons, Phobos and Deimos.' in text
    assert not any(re.fullmatch(r"\s*[\[\]{}],?", line) for line in text.splitlines())  # brackets dropped
    assert TOKENIZER.count(text) <= 80


def test_a_csv_header_comes_with_any_kept_row_but_a_log_first_line_does_not():
    csv = "host,region,status\n" + "\n".join(f"web-{n},eu-west,ok" for n in range(100))
    csv = csv.replace("web-42,eu-west,ok", "web-42,eu-west,disk full")
    text = tool_text(PruneToolOutput(max_tokens=40, embedder=EMB).run(agent(csv, question="Which host web-42 disk?")))
    assert text.splitlines()[:3] == ["host,region,status", "[... 42 lines omitted ...]", "web-42,eu-west,disk full"]
    seg = segment(log(), TOKENIZER)
    assert all(s.lead == n for n, s in enumerate(seg.segments))


def test_long_prose_is_cut_into_sentences_with_a_sentence_marker():
    prose = " ".join(f"Sentence {n} talks about the weather in spring." for n in range(60))
    prose += " The launch code is 4417. " + " ".join(f"Sentence {n} is filler text." for n in range(60, 80))
    text = tool_text(PruneToolOutput(max_tokens=40, embedder=EMB).run(agent(prose, question="What is the launch code 4417?")))
    assert "The launch code is 4417." in text and "sentences omitted ...]" in text


def test_an_empty_query_keeps_the_head_of_the_output():
    text = tool_text(PruneToolOutput(max_tokens=60, embedder=EMB).run(agent(log(), question="")))
    assert text.startswith(log().splitlines()[0]) and MARKER.match(text.splitlines()[-1])


@pytest.mark.parametrize("options, message", [
    ({"min_tokens": -1}, "min_tokens must be a whole number >= 0"),
    ({"min_tokens": 2.5}, "min_tokens must be a whole number"),
    ({"max_tokens": 5}, "max_tokens must be at least 16"),
    ({"max_tokens": True}, "max_tokens must be a whole number >= 16"),
    ({"keep_ratio": 0.0}, "keep_ratio must be a share"),
    ({"keep_ratio": 1.5}, "keep_ratio must be a share"),
    ({"max_tokens": None}, "max_tokens must be a whole number >= 16"),
    ({"keyword_weight": 2}, "keyword_weight must be a number in [0, 1]"),
    ({"identifier_weight": -0.1}, "identifier_weight must be a number in [0, 1]"),
    ({"keep_headers": "yes"}, "keep_headers must be True or False"),
])
def test_bad_options_raise_config_errors_that_name_the_option(options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        PruneToolOutput(**options)


def test_in_a_pipeline_the_pruned_tool_unit_now_fits_where_it_was_dropped_before():
    ctx = agent(log(200, special={150: "2026 ERROR billing request_id=r1150 upstream timeout"}),
                question="Why did request r1150 fail?")
    ctx = ctx.replace(tier=Tier(1200))
    before = Pipeline(stages=()).run(ctx)  # the fit alone
    after = Pipeline(stages=(PruneToolOutput(embedder=EMB),)).run(ctx)
    assert not any(i.kind == "tool" for i in before.context.items)
    tool = [m for m in after.messages if m["role"] == "tool"]
    assert tool and tool[0]["tool_call_id"] == "c1" and "request_id=r1150 upstream timeout" in tool[0]["content"]
    assert any(m.get("tool_calls") for m in after.messages)


def _lines(draw_lines):
    return "\n".join(draw_lines)


texts = st.one_of(
    st.lists(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=0, max_size=60),
             min_size=1, max_size=60).map(_lines),
    st.lists(st.sampled_from(["alpha beta gamma.", "Delta 502 error!", "  indented line", "", "{", "x" * 300,
                              "req-7f3a failed on db-primary-2", "Short one. Another one here. And more."]),
             min_size=1, max_size=80).map(_lines),
    st.lists(st.fixed_dictionaries({"title": st.text(max_size=20), "text": st.text(max_size=200)}),
             max_size=15).map(json.dumps),
)


@settings(max_examples=examples(60), deadline=None)
@given(text=texts, max_tokens=st.integers(MIN_TARGET, 200), question=st.sampled_from(["", "req-7f3a 502 error", "gamma"]),
       headers=st.booleans())
def test_pruning_never_exceeds_the_target_and_never_removes_or_regroups_items(text, max_tokens, question, headers):
    ctx = agent(text, question=question)
    out = PruneToolOutput(min_tokens=0, max_tokens=max_tokens, keep_headers=headers, embedder=EMB).run(ctx)
    assert [(i.id, i.kind, i.unit, i.protected) for i in out.items] == \
        [(i.id, i.kind, i.unit, i.protected) for i in ctx.items]
    assert [i.text for i in out.items if i.kind != "tool"] == [i.text for i in ctx.items if i.kind != "tool"]
    new = tool_text(out)
    assert new == text or TOKENIZER.count(new) <= max_tokens
    assert out.items[3].to_message()["tool_call_id"] == "c1"


@settings(max_examples=examples(60), deadline=None)
@given(text=texts, keep=st.sets(st.integers(0, 200)))
def test_rendered_text_is_the_kept_segments_in_order_with_a_marker_for_every_gap(text, keep):
    seg = segment(text, TOKENIZER)
    keep = sorted(k for k in keep if k < len(seg.segments))
    rendered = render(seg, keep)
    position = 0
    for k in keep:  # kept segments appear in their original order
        found = rendered.find(seg.segments[k].text, position)
        assert found >= position
        position = found + len(seg.segments[k].text)
    lines = rendered.splitlines()
    markers = [line for line in lines if MARKER.match(line)]
    gaps = sum(1 for n in range(len(seg.segments)) if n not in keep and (n == 0 or n - 1 in keep))
    assert len(markers) == gaps


@pytest.mark.slow
def test_real_model_keeps_the_payments_provider_errors_of_the_oncall_log_in_the_free_tier(real_embedder):
    messages = json.loads(ONCALL.read_text())
    before = Pipeline(stages=()).optimize(messages, tier="free")  # the fit alone
    after = Pipeline(stages=(PruneToolOutput(embedder=real_embedder),)).optimize(messages, tier="free")
    assert "m7" in before.report.stages[-1].dropped  # the whole log unit was dropped before
    log_message = next(m for m in after.messages if m["role"] == "tool" and m["tool_call_id"] == "call_logs_1")
    kept = log_message["content"].splitlines()
    source = messages[7]["content"].splitlines()
    provider_errors = [line for line in source if "upstream timeout from payments-provider" in line]
    # The runbook's degradation signal: provider timeouts, including those above 800 ms.
    assert sum(line in kept for line in provider_errors) >= 8
    assert all(line in kept for line in provider_errors if int(re.search(r"latency_ms=(\d+)", line)[1]) > 800)
    assert after.report.tokens_after <= after.report.budget


def test_a_prompt_that_already_fits_its_tier_keeps_its_tool_output_whole():
    ctx = agent(log())
    tokens = sum(TOKENIZER.count_message(m) for m in ctx.to_messages())
    roomy = ctx.replace(tier=Tier(limit=tokens * 2))
    assert tool_text(PruneToolOutput(embedder=EMB).run(roomy)) == tool_text(ctx)
    tight = ctx.replace(tier=Tier(limit=tokens // 2))
    assert TOKENIZER.count(tool_text(PruneToolOutput(embedder=EMB).run(tight))) <= 500
    capped = ctx.replace(tier=Tier(limit=tokens * 2, history=300))  # fits the budget, not the history cap
    assert tool_text(PruneToolOutput(embedder=EMB).run(capped)) != tool_text(ctx)
    forced = PruneToolOutput(when="always", embedder=EMB).run(roomy)
    assert TOKENIZER.count(tool_text(forced)) <= 500


def test_when_must_name_a_policy():
    with pytest.raises(ConfigError, match="when must be one of over_budget, always"):
        PruneToolOutput(when="sometimes")
