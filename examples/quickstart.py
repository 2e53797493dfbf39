"""Wrap prompt construction in agent code with ctxopt: a few lines around your `messages`.

Run: python examples/quickstart.py [--tier free]
"""

import argparse
import json
from pathlib import Path

import ctxopt
from ctxopt.stages import PruneToolOutput


def build_messages(history: list[dict], question: str) -> list[dict]:
    """What an agent does today: system prompt + the whole history + the new question."""
    system = {"role": "system", "content": "You are SRE-Copilot. Cite request ids; never invent commands."}
    return [system, *history, {"role": "user", "content": question}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tier", default="free")
    args = parser.parse_args()

    saved = json.loads((Path(__file__).parent / "oncall_conversation.json").read_text())
    history, question = saved[1:-1], saved[-1]["content"]

    # The only ctxopt line: fit the prompt to the tier, get a report back.
    messages, report = ctxopt.optimize(build_messages(history, question), tier=args.tier)

    print(report)
    print(f"\nsending {len(messages)} messages; the model sees the question last:\n  {messages[-1]['content'][:80]}...")

    # The fit keeps or drops a tool call whole, so the 3.5k-token log above was dropped. Shrinking
    # long tool outputs to the lines relevant to the question keeps the call (this loads a small
    # embedding model on first use).
    pipeline = ctxopt.Pipeline(stages=[PruneToolOutput()])
    messages, report = ctxopt.optimize(build_messages(history, question), tier=args.tier, pipeline=pipeline)
    print(f"\nwith prune_tool_output:\n{report}")
    log = next(m["content"] for m in messages if m.get("tool_call_id") == "call_logs_1")
    print(f"\nthe log the model now sees:\n{log}")
    # response = openai.OpenAI().chat.completions.create(model="gpt-4o", messages=messages)


if __name__ == "__main__":
    main()
