"""Counting that follows the model and the whole request: encodings, images, tools, reserve."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
import zlib

import pytest

import ctxopt
from ctxopt.counting import encoding_for_model, image_size, image_tokens, tokenizer_for
from ctxopt.tokens import O200K_SHA256, o200k_file


def png(width: int, height: int) -> str:
    """A real (tiny, valid) PNG header for an image of the given size, as a data URL."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_o200k_comes_offline_from_a_shipped_file_with_tiktokens_hash():
    import gzip

    path = o200k_file()
    assert path is not None and path.endswith("o200k_base.tiktoken.gz")
    with open(path, "rb") as f:
        assert hashlib.sha256(gzip.decompress(f.read())).hexdigest() == O200K_SHA256


def test_ctxopts_o200k_encodes_exactly_like_tiktokens_own(tmp_path):
    """tiktoken's own o200k_base, loaded from its cache seeded with the same verified file, agrees."""
    import gzip

    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    with open(o200k_file(), "rb") as f:
        (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(gzip.decompress(f.read()))
    texts = ["hello world", "def f(x):\n    return x ** 2  # ünïcödé", "日本語のテキスト", "<|endoftext|> 12345678"]
    code = ("import json, sys, tiktoken; enc = tiktoken.get_encoding('o200k_base'); "
            "print(json.dumps([enc.encode(t, disallowed_special=()) for t in json.loads(sys.argv[1])]))")
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(texts)], capture_output=True, text=True, env=env,
                         check=True)
    ours = ctxopt.get_tokenizer("o200k_base")
    assert json.loads(out.stdout) == [ours.encode(t) for t in texts]


@pytest.mark.parametrize("model, encoding", [
    ("gpt-4o", "o200k_base"), ("gpt-4o-2024-08-06", "o200k_base"), ("openai/gpt-4.1-mini", "o200k_base"),
    ("o3", "o200k_base"), ("gpt-5", "o200k_base"), ("gpt-5-mini-2025-08-07", "o200k_base"),
    ("gpt-4", "cl100k_base"), ("gpt-3.5-turbo", "cl100k_base"),
])
def test_openai_models_are_counted_exactly_in_their_own_encoding(model, encoding):
    assert encoding_for_model(model) == encoding
    tokenizer = tokenizer_for(model)
    assert tokenizer.name == encoding and tokenizer.exact


def test_claude_and_gemini_are_estimates_with_a_margin_that_errs_high():
    claude = tokenizer_for("claude-sonnet-4-5-20250929")
    o200k = ctxopt.get_tokenizer("o200k_base")
    text = "def handler(event):\n    return {'status': 200}\n" * 20
    assert not claude.exact and claude.count(text) >= 1.35 * o200k.count(text)
    assert not tokenizer_for("gemini-2.5-pro").exact


def test_an_unknown_model_says_how_to_give_a_counter_or_a_price():
    with pytest.raises(ctxopt.ConfigError, match=r"my-llm.*encoding=.*token_counter=.*price_per_1k="):
        ctxopt.optimize([{"role": "user", "content": "hi"}], model="my-llm")


def test_a_users_token_counter_counts_everything():
    words = ctxopt.Pipeline(token_counter=lambda text: len(text.split()))
    _, report = ctxopt.optimize([{"role": "user", "content": "one two three"}], pipeline=words)
    assert report.tokens_after == 3 + 3 + 1 + 3  # framing + "user" + the words + reply priming


@pytest.mark.parametrize("model", ["gpt-5", "claude-sonnet-4-5", "claude-opus-4-1-20250805"])
def test_current_models_work_end_to_end(model):
    messages, report = ctxopt.optimize([{"role": "user", "content": "Hello"}], tier="free", model=model)
    assert messages == [{"role": "user", "content": "Hello"}] and report.model == model


def test_image_sizes_are_read_from_inline_headers():
    assert image_size(png(1024, 640)) == (1024, 640)
    assert image_size("https://example.com/cat.png") is None


@pytest.mark.parametrize("model, detail, size, expected", [
    ("gpt-4o", "high", (1024, 1024), 85 + 170 * 4),  # scaled to 768 x 768: 2 x 2 tiles
    ("gpt-4o", "low", (1024, 1024), 85),
    ("gpt-4o", "high", (2048, 4096), 85 + 170 * 6),  # 1024 x 2048 -> 768 x 1536: 2 x 3 tiles
    ("gpt-4o-mini", "high", (1024, 1024), 2833 + 5667 * 4),
    ("gpt-4.1-mini", "high", (1024, 1024), 1659),  # 32 x 32 patches x 1.62
    ("gpt-4.1-mini", "high", (2048, 2048), 2465),  # over 1,536 patches: scaled to 39 x 39, x 1.62
    ("claude-sonnet-4-5", "auto", (1000, 750), 1000),
])
def test_images_cost_what_the_providers_formulas_say(model, detail, size, expected):
    part = {"type": "image_url", "image_url": {"url": png(*size), "detail": detail}}
    assert image_tokens(part, model) == expected


def test_a_linked_image_of_unknown_size_is_charged_the_most_its_formula_allows():
    part = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    assert image_tokens(part, "gpt-4o") == 85 + 170 * 8


TOOLS = [{"type": "function", "function": {
    "name": f"tool_{n}", "description": "Looks things up in the company's systems. " * 20,
    "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "what to find"}}}}}
    for n in range(12)]


def test_tool_definitions_count_against_the_tier():
    chat = [{"role": "system", "content": "You help."}] + [
        {"role": "user" if n % 2 == 0 else "assistant", "content": f"turn {n} " + "words " * 150} for n in range(40)]
    plain = ctxopt.optimize(chat, tier="free", model="gpt-4o").report
    with_tools = ctxopt.optimize(chat, tier="free", model="gpt-4o", tools=TOOLS).report
    assert with_tools.fixed_tokens > 12 * 150
    assert with_tools.tokens_after <= with_tools.budget and plain.tokens_after <= plain.budget
    # the messages make room for the tools: fewer message tokens go out
    assert with_tools.tokens_after - with_tools.fixed_tokens < plain.tokens_after - 2000


def test_tools_that_alone_exceed_the_tier_are_a_clear_budget_error():
    with pytest.raises(ctxopt.BudgetError, match="tool definitions"):
        ctxopt.optimize([{"role": "user", "content": "hi"}], tier=ctxopt.Tier(1000), model="gpt-4o", tools=TOOLS)


def test_the_requests_max_tokens_replaces_the_tiers_reserve():
    _, report = ctxopt.optimize([{"role": "user", "content": "hi"}], tier="free", max_output_tokens=2000)
    assert report.budget == 4096 - 2000
    with pytest.raises(ctxopt.BudgetError, match="max_tokens"):
        ctxopt.optimize([{"role": "user", "content": "hi"}], tier="free", max_output_tokens=5000)


def test_stages_count_in_the_pipelines_encoding_not_their_own():
    """Issue 11.17: Pipeline(encoding=...) reaches the fit, so a truncated prompt fits in that encoding."""
    long = [{"role": "user", "content": "naïve café " * 3000}]
    pipeline = ctxopt.Pipeline(encoding="o200k_base", fit=ctxopt.Fit(on_overflow="truncate"))
    messages, report = ctxopt.optimize(long, tier="free", pipeline=pipeline)
    assert ctxopt.get_tokenizer("o200k_base").count_messages(messages) <= report.budget


def test_a_message_changed_through_item_replace_is_counted_again():
    item = ctxopt.Item(id="m0", kind="user", text="hi", tokens=5)
    assert item.replace(message={"role": "user", "content": "hi", "name": "alice"}).tokens is None
