"""Memory benchmark: LoCoMo evidence turns kept when a long conversation is fitted to a history budget.

For every QA pair of categories 1-4 with evidence, the history is the whole conversation (LoCoMo
questions are asked after it ends) and the question is the query. Each variant runs the real
pipeline (items, stages, Fit with a tier whose history cap is the budget, question included, as
in any tier) at history budgets of 500, 1000, 2000 and 4000 tokens; the recency window gets the same
budget less the question. Evidence recall is the share of evidence turns
kept: a turn kept verbatim counts 1; a turn in a summary counts the share of its sentences the
summary kept. Tokens kept are the history and summary messages' tokens, without the question.

Variants: the recency window (``trim_messages``-style: the latest turns that fit), full context,
ctxopt pruning (``prune_history``), summary only (half the budget for a rolling extractive summary,
half for the latest turns), and pruning + summary (a quarter for the summary).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ctxopt.bench.data import data_dir
from ctxopt.bench.output import plot_curves, write_table
from ctxopt.pipeline import Pipeline
from ctxopt.stages.prune_history import PruneHistory
from ctxopt.stages.similarity import embed, resolve_embedder
from ctxopt.stages.summarize import Summarize
from ctxopt.text import split_sentences
from ctxopt.tiers import Tier
from ctxopt.tokens import get_tokenizer
from ctxopt.types import Context, Item, total_tokens

BUDGETS = (500, 1000, 2000, 4000)
CATEGORIES = (1, 2, 3, 4)
DATASET = "locomo/locomo7.json"


def conversation_items(sample: dict[str, Any]) -> list[Item]:
    """One item per LoCoMo turn: ``"Speaker: text"`` (plus the shared photo's caption), speaker A
    as the user and B as the assistant, with speaker, session date and dia_id in the metadata."""
    conversation = sample["conversation"]
    tokenizer = get_tokenizer()
    sessions = sorted((k for k in conversation if re.fullmatch(r"session_\d+", k)), key=lambda k: int(k.split("_")[1]))
    items = []
    for session in sessions:
        date = str(conversation.get(f"{session}_date_time", "")).split(" on ")[-1]
        for turn in conversation[session]:
            text = f"{turn['speaker']}: {turn['text']}"
            if turn.get("blip_caption"):
                text += f" [shares a photo: {turn['blip_caption']}]"
            item = Item(id=turn["dia_id"], kind="user" if turn["speaker"] == conversation["speaker_a"] else "assistant",
                        text=text, metadata={"speaker": turn["speaker"], "date": date, "dia_id": turn["dia_id"]})
            items.append(item.replace(tokens=tokenizer.count_message(item.to_message())))
    return items


def evidence_ids(evidence: list[str], known: set[str]) -> list[str]:
    """Evidence dia_ids, repairing the file's quirks ("D8:6; D9:17", "D30:05"); unknown ones dropped."""
    ids = []
    for entry in evidence:
        for part in re.split(r"[;\s]+", str(entry)):
            match = re.fullmatch(r"D(\d+):0*(\d+)", part.strip())
            if match and (dia := f"D{match.group(1)}:{match.group(2)}") in known and dia not in ids:
                ids.append(dia)
    return ids


def load(quick: bool = False) -> list[dict[str, Any]]:
    """Conversations with their items and the evaluated questions (question, evidence ids)."""
    samples = json.loads((data_dir() / DATASET).read_text(encoding="utf-8"))
    out = []
    for sample in samples[:1] if quick else samples:
        items = conversation_items(sample)
        known = {i.id for i in items}
        questions = [{"question": str(qa["question"]), "evidence": ev, "category": qa["category"]}
                     for qa in sample["qa"] if qa.get("category") in CATEGORIES
                     and (ev := evidence_ids(qa.get("evidence", []), known))]
        out.append({"id": sample["sample_id"], "items": items, "questions": questions[:60] if quick else questions})
    return out


# The tuner reads the "ctxopt prune" curve at these history caps (a finer grid than the table's).
CURVE_BUDGETS = (250, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000)
DEFAULT_VARIANT = "ctxopt prune"


def variants(budget: int, embedder: Any) -> dict[str, tuple[list[Any], Tier]]:
    """Each variant's stages and tier at a history budget. The budget is the tier's history cap
    (question included, as in any tier), split with the summary cap where a variant summarises."""
    def tier(summary: int) -> Tier:
        return Tier(budget + 64, history=budget - summary, summary=summary, retrieved=0, name=f"history-{budget}")

    return {
        "ctxopt prune": ([PruneHistory(embedder=embedder)], tier(0)),
        "summary only": ([Summarize(keep_last=4, max_tokens=budget // 2)], tier(budget // 2)),
        "ctxopt prune + summary": ([PruneHistory(embedder=embedder), Summarize(keep_last=4, keep_turns=True,
                                                                            max_tokens=budget // 4)], tier(budget // 4)),
    }


def question_item(question: str) -> Item:
    item = Item(id="question", kind="user", text=question, protected=True)
    return item.replace(tokens=get_tokenizer().count_message(item.to_message()))


def evaluate(conversations: list[dict[str, Any]], stages: list[Any], tier: Tier) -> dict[str, float]:
    """Mean evidence recall and history tokens kept when every question's prompt is fitted to
    ``tier`` by ``stages`` + fit: what a tier (say, one ``ctxopt tune`` wrote) gives on LoCoMo."""
    pipeline = Pipeline(stages=tuple(stages))
    recalls, kept = [], []
    for conv in conversations:
        by_id = {i.id: i for i in conv["items"]}
        for q in conv["questions"]:
            query = question_item(q["question"])
            result = pipeline.run(Context(query=q["question"], items=(*conv["items"], query), tier=tier))
            output = [i for i in result.context.items if i.id != "question"]
            recalls.append(_recall(output, q["evidence"], by_id))
            kept.append(total_tokens(output))
    return {"recall": float(np.mean(recalls)), "tokens": float(np.mean(kept))}


def curve(conversations: list[dict[str, Any]], budgets: tuple[int, ...] = CURVE_BUDGETS,
          embedder: Any = None) -> list[dict[str, float]]:
    """The default variant's recall curve in the tuner's format (budget, recall, tokens, full_tokens)."""
    from tqdm import tqdm

    embedder = embedder or resolve_embedder()
    full = float(np.mean([total_tokens(c["items"]) for c in conversations]))
    points = []
    for budget in tqdm(budgets, desc="memory curve", leave=False):
        stages, tier = variants(budget, embedder)[DEFAULT_VARIANT]
        point = evaluate(conversations, stages, tier)
        points.append({"budget": budget, "recall": round(point["recall"], 4), "tokens": round(point["tokens"], 1),
                       "full_tokens": round(full, 1)})
    return points


def _recall(output: list[Item], evidence: list[str], items_by_id: dict[str, Item]) -> float:
    kept = {i.id for i in output}
    summary = " ".join(i.text for i in output if i.kind == "summary")
    total = 0.0
    for dia in evidence:
        if dia in kept:
            total += 1.0
        elif summary:
            body = items_by_id[dia].text.split(": ", 1)[-1]
            sentences = split_sentences(body)
            total += sum(1 for s in sentences if s in summary) / max(1, len(sentences))
    return total / len(evidence)


def recency_window(items: list[Item], budget: int) -> list[Item]:
    """trim_messages(strategy="last"): the latest turns, stopping at the first that does not fit."""
    kept, used = [], 0
    for item in reversed(items):
        if used + total_tokens([item]) > budget:
            break
        kept.append(item)
        used += total_tokens([item])
    return kept[::-1]


def run(out_dir: Path, quick: bool = False) -> dict[str, Any]:
    """Run every variant at every budget; write memory.json, memory.md and memory.png."""
    from tqdm import tqdm

    conversations = load(quick)
    embedder = resolve_embedder()
    # Embed every turn and question once up front, in batches (later lookups hit the cache).
    embed(embedder, [i.text for c in conversations for i in c["items"]]
          + [q["question"] for c in conversations for q in c["questions"]])
    sums: dict[str, dict[int, list[float]]] = {}
    tokens: dict[str, dict[int, list[int]]] = {}
    full_tokens = []
    n_questions = sum(len(c["questions"]) for c in conversations)
    progress = tqdm(total=n_questions * len(BUDGETS), desc="memory", leave=False)
    for conv in conversations:
        items = conv["items"]
        by_id = {i.id: i for i in items}
        full_tokens.append(total_tokens(items))
        for q in conv["questions"]:
            query = question_item(q["question"])
            for budget in BUDGETS:
                window = recency_window(items, budget - total_tokens([query]))
                sums.setdefault("recency window", {}).setdefault(budget, []).append(_recall(window, q["evidence"], by_id))
                tokens.setdefault("recency window", {}).setdefault(budget, []).append(total_tokens(window))
                for name, (stages, tier) in variants(budget, embedder).items():
                    result = Pipeline(stages=tuple(stages)).run(Context(query=q["question"], items=(*items, query),
                                                                        tier=tier))
                    output = [i for i in result.context.items if i.id != "question"]
                    sums.setdefault(name, {}).setdefault(budget, []).append(_recall(output, q["evidence"], by_id))
                    tokens.setdefault(name, {}).setdefault(budget, []).append(total_tokens(output))
                progress.update()
    progress.close()
    full = float(np.mean(full_tokens))
    rows = {name: {str(b): {"recall": round(float(np.mean(sums[name][b])), 4),
                            "tokens_kept": round(float(np.mean(tokens[name][b])), 1),
                            "share_of_conversation": round(float(np.mean(tokens[name][b])) / full, 4)}
                   for b in BUDGETS} for name in sums}
    results: dict[str, Any] = {
        "benchmark": "memory",
        "dataset": f"LoCoMo, {len(conversations)} conversations, {n_questions} QA pairs (categories 1-4 with evidence)",
        "history": "the whole conversation (LoCoMo questions are asked after it ends)",
        "mean_conversation_tokens": round(full, 1),
        "budgets": list(BUDGETS),
        "metric": "evidence-turn recall: verbatim turn = 1, summarised turn = share of its sentences in the summary",
        "methods": rows,
        "points": {"full context": {"recall": 1.0, "tokens_kept": round(full, 1)}},
        "acceptance": {"ctxopt_recall_at_2000": rows["ctxopt prune"]["2000"]["recall"],
                       "recency_recall_at_2000": rows["recency window"]["2000"]["recall"], "target": 0.80},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "memory.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    # The curve `ctxopt tune --curve results/memory/curve.json` recommends tier limits from.
    curve_points = curve(conversations, embedder=embedder)
    (out_dir / "curve.json").write_text(json.dumps({"variant": DEFAULT_VARIANT, "section": "history",
                                                    "curve": curve_points}, indent=2) + "\n", encoding="utf-8")
    header = ["method"] + [f"recall @ {b} tokens" for b in BUDGETS]
    table = [[name] + [f"{by[str(b)]['recall']:.3f} ({by[str(b)]['share_of_conversation']:.1%} kept)" for b in BUDGETS]
             for name, by in rows.items()]
    table.append(["full context", *[f"1.000 ({full:.0f} tokens)"] * len(BUDGETS)])
    write_table(out_dir / "memory.md", f"Memory: {results['dataset']}", header, table,
                notes=[results["metric"] + ".", "History: " + results["history"] + "."])
    plot_curves(out_dir / "memory.png", {n: [(by[str(b)]["tokens_kept"], by[str(b)]["recall"]) for b in BUDGETS]
                                        for n, by in rows.items()},
                points={"full context": (full, 1.0)}, xlog=True,
                title="LoCoMo: evidence turns kept vs history tokens kept",
                xlabel="history tokens kept (log)", ylabel="evidence-turn recall")
    return results
