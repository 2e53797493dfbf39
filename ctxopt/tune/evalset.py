"""Evaluation sets: what a prompt must keep, so budgets can be chosen by evidence recall.

One case per JSONL line::

    {"query": "When did Caroline go to the LGBTQ support group?",
     "messages": [{"role": "user", "content": "..."}, ...],
     "retrieved": [{"id": "doc:7", "text": "...", "title": "...", "score": 0.8}],
     "evidence": ["m12", "doc:7"]}

``messages`` is the chat as the agent would send it (the query need not be in it); ``retrieved``
is optional; ``evidence`` lists the ids of what the answer needs: ``m<index>`` for a message (its
position in ``messages``), the given id for a retrieved chunk. A case's recall is the share of its
evidence still in the fitted prompt, either as the item itself or inside a summary that lists it in
``metadata["kept_ids"]``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ctxopt.errors import InputError
from ctxopt.tiers import Tier
from ctxopt.types import Context, Item
from ctxopt.validate import parse_json


@dataclasses.dataclass(frozen=True, kw_only=True)
class Case:
    query: str
    messages: tuple[Mapping[str, Any], ...]
    evidence: tuple[str, ...]
    retrieved: tuple[Mapping[str, Any], ...] = ()

    def context(self, tier: Tier) -> Context:
        """The case as a pipeline input: the chat, then the retrieved chunks, then the query."""
        base = Context.from_messages([*self.messages, {"role": "user", "content": self.query}], query=self.query,
                                     tier=tier)
        docs = [Item(id=str(d["id"]), kind="retrieved", text=d["text"], score=d.get("score"),
                     metadata={k: d[k] for k in ("title", "source") if k in d}) for d in self.retrieved]
        return base.replace(items=[*base.items[:-1], *docs, base.items[-1]])

    def recall(self, context: Context) -> float:
        kept = {i.id for i in context.items}
        for item in context.items:
            kept.update(item.metadata.get("kept_ids", ()))
        return sum(e in kept for e in self.evidence) / len(self.evidence)


def parse_case(data: Any, where: str) -> Case:
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: a case is a JSON object with query, messages, evidence")
    missing = [k for k in ("query", "messages", "evidence") if k not in data]
    if missing:
        raise InputError(f"{where}: missing {', '.join(missing)}; a case needs query, messages and evidence")
    if not isinstance(data["query"], str) or not data["query"].strip():
        raise InputError(f"{where}: query must be a non-empty string")
    if not isinstance(data["messages"], list):
        raise InputError(f"{where}: messages must be a list of OpenAI-style messages")
    retrieved = data.get("retrieved", [])
    if not isinstance(retrieved, list) or not all(isinstance(d, Mapping) and "id" in d and isinstance(d.get("text"), str)
                                                  for d in retrieved):
        raise InputError(f"{where}: retrieved must be a list of objects with 'id' and 'text'")
    evidence = data["evidence"]
    if not isinstance(evidence, list) or not evidence:
        raise InputError(f"{where}: evidence must be a non-empty list of item ids (m<index> or a retrieved id)")
    ids = {f"m{i}" for i in range(len(data["messages"]))} | {str(d["id"]) for d in retrieved}
    unknown = [e for e in evidence if str(e) not in ids]
    if unknown:
        raise InputError(f"{where}: evidence id(s) {unknown} match no message (m0..m{len(data['messages']) - 1}) "
                         "or retrieved id")
    case = Case(query=data["query"], messages=tuple(data["messages"]), evidence=tuple(map(str, evidence)),
                retrieved=tuple(retrieved))
    case.context(Tier(10**9))  # validates the messages now, with the case's position in the error
    return case


def load_evalset(path: str | os.PathLike[str]) -> list[Case]:
    """Cases from a JSONL file; errors name the line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read evaluation set {str(path)!r}: {exc}") from None
    cases = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        data = parse_json(line, f"{path}:{number}:")
        try:
            cases.append(parse_case(data, f"{path}:{number}"))
        except InputError as exc:
            if str(exc).startswith(f"{path}:{number}"):
                raise
            raise InputError(f"{path}:{number}: {exc}") from None
    if not cases:
        raise InputError(f"evaluation set {str(path)!r} has no cases; write one JSON object per line")
    return cases


def save_evalset(cases: Iterable[Case], path: str | os.PathLike[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for c in cases:
            row = {"query": c.query, "messages": list(c.messages), "evidence": list(c.evidence)}
            if c.retrieved:
                row["retrieved"] = list(c.retrieved)
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def recall_curve(cases: Sequence[Case], pipeline: Any, budgets: Sequence[int], section: str = "history",
                 progress: bool = False) -> list[dict[str, float]]:
    """Mean evidence recall and prompt tokens at each ``section`` budget, through the real pipeline."""
    from tqdm import tqdm

    points = []
    for budget in tqdm(budgets, desc=f"{section} budgets", disable=not progress):
        tier = Tier(10**9).replace(**{section: int(budget)})
        recalls, tokens, full = [], [], []
        for case in cases:
            result = pipeline.run(case.context(tier))
            recalls.append(case.recall(result.context))
            tokens.append(result.report.tokens_after)
            full.append(result.report.tokens_before)
        points.append({"budget": int(budget), "recall": sum(recalls) / len(recalls),
                       "tokens": sum(tokens) / len(tokens), "full_tokens": sum(full) / len(full)})
    return points
