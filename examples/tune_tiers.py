"""Tune tier limits on your own evaluation set: which history budget keeps what answers need?

An evaluation set is JSONL: per line, the chat, the question, and the ids of the messages the
answer needs (format in the README, "Tune tier limits on your data"). Here one is built from a LoCoMo
conversation (CC BY-NC 4.0, see benchmarks/data/locomo): 20 of its questions with the turns their
answers cite. `ctxopt tune` then measures recall at several history budgets through the real
pipeline and writes tiers.toml, tiers.json and a Pareto plot.

Run: python examples/tune_tiers.py [OUT_DIR]
"""

import json
import re
import sys
import tempfile
from pathlib import Path

from ctxopt.cli import main as ctxopt_cli
from ctxopt.tune import Case, save_evalset

DATA = Path(__file__).parents[1] / "benchmarks" / "data" / "locomo" / "locomo7.json"


def cases_from_locomo(sample: dict, limit: int) -> list[Case]:
    conv = sample["conversation"]
    sessions = sorted((k for k in conv if re.fullmatch(r"session_\d+", k)), key=lambda k: int(k[8:]))
    turns = [t for s in sessions for t in conv[s]]
    messages = tuple({"role": "user" if t["speaker"] == conv["speaker_a"] else "assistant", "name": t["speaker"],
                      "content": t["text"]} for t in turns)
    index = {t["dia_id"]: f"m{n}" for n, t in enumerate(turns)}
    cases = []
    for qa in sample["qa"]:
        evidence = [index[e] for e in qa.get("evidence", []) if e in index]
        if qa.get("category") in (1, 2, 3, 4) and evidence:
            cases.append(Case(query=qa["question"], messages=messages, evidence=tuple(evidence)))
    return cases[:limit]


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="ctxopt-tune-"))
    out.mkdir(parents=True, exist_ok=True)
    sample = json.loads(DATA.read_text(encoding="utf-8"))[1]
    save_evalset(cases_from_locomo(sample, limit=20), out / "evalset.jsonl")
    ctxopt_cli(["tune", "--evalset", str(out / "evalset.jsonl"), "--budgets", "250,500,1000,2000,4000",
                "--target", "free=0.7", "--target", "pro=0.85", "--out", str(out / "tiers.toml")])
    print("\n" + (out / "tiers.toml").read_text())


if __name__ == "__main__":
    main()
