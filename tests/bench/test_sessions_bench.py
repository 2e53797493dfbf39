"""The sessions benchmark's machinery on a slice of one LoCoMo conversation (the full run is
`ctxopt bench sessions`)."""

from __future__ import annotations

from ctxopt.bench import sessions
from ctxopt.bench.memory import load
from ctxopt.embed import HashEmbedder


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4)


def slice_of_conversation() -> dict:
    return sessions.head(load(quick=True)[0], 160)


def test_questions_are_asked_after_their_evidence_and_never_added_to_the_history():
    conversation = slice_of_conversation()
    position = {item.id: n for n, item in enumerate(conversation["items"])}
    asked = [r for r in sessions.requests(conversation) if r["evidence"]]
    assert len(asked) == len(conversation["questions"]) > 0
    assert all(r["end"] > max(position[e] for e in r["evidence"]) for r in asked)
    assert all(r["query"].id == "question" for r in asked)
    turns = [r for r in sessions.requests(conversation) if not r["evidence"]]
    assert all(conversation["items"][r["end"]].id == r["query"].id for r in turns)


def test_replay_bills_the_session_mode_below_per_request_pruning_with_a_cache():
    conversation = slice_of_conversation()
    results = sessions.replay(conversation, (2000,), HashEmbedder(), sessions.system_item())
    whole, prune, session = results["whole history"], results["prune_history @ 2000"], results[f"{sessions.SESSION} @ 2000"]
    assert whole["prefix_reuse"] > 0.9 and prune["prefix_reuse"] < session["prefix_reuse"]
    assert session["cost"]["auto-90"] < prune["cost"]["auto-90"]
    assert whole["cost"]["none"] == whole["prompt_tokens"]
    assert all(0.0 <= r <= 1.0 for r in session["recalls"]) and all(r == 1.0 for r in whole["recalls"])


def test_the_acceptance_is_judged_on_any_split_of_the_conversations():
    conversation = slice_of_conversation()
    results = sessions.replay(conversation, (1000, 2000), HashEmbedder(), sessions.system_item())
    acceptance, fronts = sessions._acceptance(sessions._summary({conversation["id"]: results}), (1000, 2000))
    assert acceptance["cap"] == 2000 and set(fronts) == set(sessions.PRICING)
    assert acceptance["auto-90 session / prune_history cost"] == round(
        results["session @ 2000"]["cost"]["auto-90"] / results["prune_history @ 2000"]["cost"]["auto-90"], 3)
    assert acceptance["session recall - prune_history recall"] == round(
        _mean(results["session @ 2000"]["recalls"]) - _mean(results["prune_history @ 2000"]["recalls"]), 4)
    assert set(sessions.TRAIN) < {c["id"] for c in load()}   # the held-out split is not empty


def test_the_pareto_front_keeps_only_undominated_points():
    points = {"a": (1.0, 0.5), "b": (2.0, 0.9), "c": (2.0, 0.4), "d": (3.0, 0.9), "e": (1.0, 0.5)}
    assert sessions.pareto(points) == {"a", "b", "e"}
