from ctxopt.bench.memory import evidence_ids, recency_window
from ctxopt.types import Item


def test_evidence_quirks_are_repaired_and_unknown_ids_dropped():
    known = {"D8:6", "D9:17", "D30:5", "D4:4"}
    assert evidence_ids(["D8:6; D9:17", "D30:05", "D", "D:11:26", "D9:1 D4:4"], known) == \
        ["D8:6", "D9:17", "D30:5", "D4:4"]


def test_the_recency_window_stops_at_the_first_turn_that_does_not_fit():
    items = [Item(id=str(k), kind="user", text="x", tokens=t) for k, t in enumerate([1, 50, 5, 5])]
    assert [i.id for i in recency_window(items, 12)] == ["2", "3"]
