from ctxopt.pricing import Price
from ctxopt.report import Report, StageReport


def _report(*stages: tuple[str, int, int, dict]) -> Report:
    return Report(tier="free", tokens_before=stages[0][1], tokens_after=stages[-1][2], budget=3584,
                  stages=tuple(StageReport(name=n, tokens_in=a, tokens_out=b, notes=notes) for n, a, b, notes in stages),
                  seconds=0.01, model="gpt-4o-mini", price=Price(input=0.15, model="gpt-4o-mini"))


def test_a_report_that_only_cut_shows_the_share_kept_and_the_saving():
    line = str(_report(("fit", 4365, 848, {}))).splitlines()[0]
    assert line.startswith("tier free: 4365 -> 848 tokens (19% kept, budget 3584), saved $0.000528 at")


def test_when_retrieval_adds_tokens_the_report_says_how_many_instead_of_a_share_over_100_percent():
    # the shape of examples/rag_agent.py: retrieval adds 319 tokens, pruning cuts 166 of them
    report = _report(("retrieve", 80, 399, {"retrieved": 4}), ("prune_chunks", 399, 233, {}), ("fit", 233, 233, {}))
    line = str(report).splitlines()[0]
    assert line.startswith("tier free: 80 -> 233 tokens (added 319 retrieved tokens, cut 166, budget 3584), "
                           "costs $0.000023 more at $0.00015/1k")
    assert "% kept" not in line and "saved $-" not in line


def test_retrieval_that_still_ends_below_the_original_size_reports_the_saving():
    report = _report(("retrieve", 4000, 4600, {"retrieved": 3}), ("fit", 4600, 3500, {}))
    assert "(added 600 retrieved tokens, cut 1100, budget 3584), saved $0.000075" in str(report)


def test_tokens_added_by_another_stage_are_not_called_retrieved():
    report = _report(("summarize", 500, 560, {"turns_summarised": 8}), ("fit", 560, 560, {}))
    assert "(added 60 tokens, budget 3584), costs $0.000009 more" in str(report)
