"""A session's stable boundaries become Anthropic cache_control breakpoints (issue 13, build item 2)."""

from __future__ import annotations

import ctxopt


def _request(system):
    turns = []
    for n in range(120):
        turns.append({"role": "user", "content": f"Question {n}: tell me about topic {n} and the weather in city {n}."})
        turns.append({"role": "assistant", "content": f"Answer {n}: topic {n} is interesting; city {n} is sunny. " * 3})
    turns.append({"role": "user", "content": "What did we say about topic 7?"})
    return {"model": "claude-sonnet-4-5", "max_tokens": 512, "system": system, "messages": turns}


def _breakpoints(request):
    system = request["system"] if isinstance(request["system"], list) else []
    count = sum("cache_control" in b for b in system)
    for message in request["messages"]:
        if isinstance(message["content"], list):
            count += sum("cache_control" in b for b in message["content"])
    return count


def test_a_session_puts_cache_control_at_the_end_of_the_system_and_of_the_held_window(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXOPT_CACHE_DIR", str(tmp_path))
    out, report = ctxopt.optimize_request(_request("You are helpful. " * 80), format="anthropic", tier="free",
                                          session="conv-1")
    assert out["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert out["system"][-1]["text"] == "You are helpful. " * 80
    assert 2 <= _breakpoints(out) <= 4
    assert report.tokens_after <= report.budget


def test_breakpoints_never_exceed_the_apis_four_counting_the_callers_own(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXOPT_CACHE_DIR", str(tmp_path))
    system = [{"type": "text", "text": f"Rule {n}. " * 40, "cache_control": {"type": "ephemeral"}} for n in range(4)]
    out, _ = ctxopt.optimize_request(_request(system), format="anthropic", tier="free", session="conv-2")
    assert _breakpoints(out) == 4 and out["system"] == system


def test_without_a_session_nothing_is_marked(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXOPT_CACHE_DIR", str(tmp_path))
    out, _ = ctxopt.optimize_request(_request("You are helpful."), format="anthropic", tier="free")
    assert _breakpoints(out) == 0 and out["system"] == "You are helpful."
