"""Two processes serving one session through a shared cache produce byte-identical prompts.

Like two workers behind a load balancer: requests of one LoCoMo conversation alternate between two
real Python processes (each with the real embedding model) that share only the cache, on disk or in
Redis. Every prompt must equal, byte for byte, the one a single process computes alone, and each
worker's bill must count the cache the *other* worker's previous prompt left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ctxopt
from ctxopt.bench.data import data_dir
from ctxopt.sessions import SessionStore

TURNS, FIRST, LAST = 190, 140, 190   # replay requests at the user turns between FIRST and LAST
WORKER = r"""
import json, sys
import ctxopt
pipeline = ctxopt.Pipeline(model="gpt-5")
tier = ctxopt.Tier(8000, reserve=500, history=2000)
for line in sys.stdin:
    messages = json.loads(line)
    result = pipeline.optimize(messages, tier, session="conv-26")
    report = result.report
    print(json.dumps({"prompt": json.dumps(result.messages), "cached": report.cached_tokens,
                      "degraded": report.stages[-2].notes.get("session_degraded")}), flush=True)
"""


def requests() -> list[list[dict[str, str]]]:
    sample = json.loads((data_dir() / "locomo" / "locomo7.json").read_text(encoding="utf-8"))[0]
    conversation = sample["conversation"]
    turns = [t for n in range(1, 40) for t in conversation.get(f"session_{n}", [])][:TURNS]
    messages = [{"role": "system", "content": "You are a friendly companion in a long chat. " * 20}]
    messages += [{"role": "user" if t["speaker"] == conversation["speaker_a"] else "assistant",
                  "content": f"{t['speaker']}: {t['text']}"} for t in turns]
    return [messages[: n + 1] for n in range(FIRST, LAST) if messages[n]["role"] == "user"]


def serve_alternately(env: dict[str, str]) -> list[dict[str, object]]:
    workers = [subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, env=env) for _ in range(2)]
    answers = []
    try:
        for n, messages in enumerate(requests()):
            worker = workers[n % 2]
            worker.stdin.write(json.dumps(messages) + "\n")  # type: ignore[union-attr]
            worker.stdin.flush()  # type: ignore[union-attr]
            answers.append(json.loads(worker.stdout.readline()))  # type: ignore[union-attr]
    finally:
        for worker in workers:
            worker.stdin.close()  # type: ignore[union-attr]
            worker.wait(timeout=60)
    return answers


def alone(tmp_path: Path) -> list[dict[str, object]]:
    pipeline = ctxopt.Pipeline(model="gpt-5")
    tier = ctxopt.Tier(8000, reserve=500, history=2000)
    store = SessionStore(directory=tmp_path / "alone")
    out = []
    for messages in requests():
        result = pipeline.optimize(messages, tier, session="conv-26", session_store=store)
        out.append({"prompt": json.dumps(result.messages), "cached": result.report.cached_tokens})
    return out


def check(answers: list[dict[str, object]], reference: list[dict[str, object]]) -> None:
    assert len(answers) == len(reference) >= 20
    assert len({json.loads(str(a["prompt"]))[1]["content"] for a in answers}) > 1  # compactions moved the window
    assert all(a["degraded"] is None for a in answers)
    assert [a["prompt"] for a in answers] == [r["prompt"] for r in reference]
    # Worker 2's first bill already reads the prefix worker 1's prompt left in the shared state.
    assert [a["cached"] for a in answers] == [r["cached"] for r in reference]
    assert answers[1]["cached"] > 0


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CTXOPT_REDIS_URL"}
    return {**env, "HF_HUB_OFFLINE": "1", **extra}


@pytest.mark.slow
def test_two_processes_sharing_a_disk_cache_produce_byte_identical_prompts(tmp_path, real_embedder):
    answers = serve_alternately(environment(CTXOPT_CACHE_DIR=str(tmp_path / "shared")))
    check(answers, alone(tmp_path))


@pytest.mark.slow
@pytest.mark.redis
def test_two_processes_sharing_redis_produce_byte_identical_prompts(tmp_path, redis_server, real_embedder):
    answers = serve_alternately(environment(CTXOPT_CACHE_DIR=str(tmp_path / "unused"), CTXOPT_REDIS_URL=redis_server.url))
    check(answers, alone(tmp_path))
