"""A long chat fitted to a small tier: history pruning + a rolling summary + the fit.

The conversation is LoCoMo's conv-26 (CC BY-NC 4.0, see benchmarks/data/locomo): ~19 sessions,
~600 turns, about 18k tokens, far beyond the free tier. ctxopt keeps the turns relevant to the new
question, summarises the old ones, and fits the rest exactly.

Run: python examples/long_chat.py ["your question"]
"""

import json
import sys
from pathlib import Path

import ctxopt
from ctxopt.stages.prune_history import PruneHistory
from ctxopt.stages.summarize import Summarize

DATA = Path(__file__).parents[1] / "benchmarks" / "data" / "locomo" / "locomo7.json"


def chat_messages(sample: dict) -> list[dict]:
    """The conversation as an agent would hold it: one message per turn, named by its speaker."""
    conv = sample["conversation"]
    sessions = sorted((k for k in conv if k.startswith("session_") and k[8:].isdigit()), key=lambda k: int(k[8:]))
    return [{"role": "user" if t["speaker"] == conv["speaker_a"] else "assistant", "name": t["speaker"],
             "content": t["text"]} for s in sessions for t in conv[s]]


def main() -> None:
    question = sys.argv[1] if len(sys.argv) > 1 else "What did Caroline research for her career?"
    sample = json.loads(DATA.read_text(encoding="utf-8"))[0]
    messages = [{"role": "system", "content": "You are a friendly companion who remembers the user's life."},
                *chat_messages(sample), {"role": "user", "content": question}]

    pipeline = ctxopt.Pipeline(stages=[PruneHistory(keep_last=4), Summarize(keep_last=4, keep_turns=True,
                                                                             max_tokens=300)])
    fitted, report = pipeline.optimize(messages, tier="free")

    print(report)
    summary = next((m["content"] for m in fitted if m["content"].startswith("Summary of the earlier")), "")
    print(f"\n{len(fitted)} of {len(messages)} messages sent. The summary the model sees:\n{summary[:600]}...")
    relevant = [f"{m['name']}: {m['content']}" for m in fitted[1:-1] if "name" in m][:5]
    print("\nA few of the turns kept verbatim for the question:\n  " + "\n  ".join(r[:110] for r in relevant))


if __name__ == "__main__":
    main()
