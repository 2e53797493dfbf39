"""Format detection, the registry, and the promise that importing ctxopt loads no SDK."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ctxopt
from ctxopt.adapters import FORMATS, detect


def test_import_ctxopt_loads_no_provider_sdk():
    code = ("import sys, ctxopt; sdks = [m for m in ('openai', 'anthropic', 'langchain_core', 'llama_index', 'litellm')"
            " if m in sys.modules]; print(sdks)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("request_", "name"), [
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}, "openai_chat"),
    ([{"role": "user", "content": "Hi"}], "openai_chat"),
    ([], "openai_chat"),
    ({"model": "gpt-5", "input": "Hi"}, "openai_responses"),
    ({"model": "gpt-5", "input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}, "openai_responses"),
    ({"max_tokens": 5, "system": "Be brief.", "messages": [{"role": "user", "content": "Hi"}]}, "anthropic"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]}]},
     "anthropic"),
])
def test_the_format_of_a_request_is_detected(request_, name):
    assert detect(request_).name == name


def test_sdk_message_lists_are_detected_by_their_types():
    messages = pytest.importorskip("langchain_core.messages")
    llms = pytest.importorskip("llama_index.core.llms")
    assert detect([messages.HumanMessage("Hi")]).name == "langchain"
    assert detect([llms.ChatMessage(role="user", content="Hi")]).name == "llamaindex"


def test_an_unknown_shape_is_a_clear_error_listing_every_format():
    with pytest.raises(ctxopt.InputError) as error:
        ctxopt.optimize_request({"prompt": "Hi"})
    assert all(name in str(error.value) for name in FORMATS) and "format=" in str(error.value)
    with pytest.raises(ctxopt.InputError, match="unknown format 'gemini'; choose from openai_responses"):
        ctxopt.optimize_request({"messages": []}, format="gemini")


def test_a_plain_text_request_gives_the_same_fit_read_as_either_format():
    request = {"model": "gpt-4o", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"},
                                                           {"role": "assistant", "content": "Hello"},
                                                           {"role": "user", "content": "Bye"}]}
    as_chat = ctxopt.optimize_request(request, tier="free", format="openai_chat")
    as_anthropic = ctxopt.optimize_request(request, tier="free", format="anthropic")
    assert as_chat.request == as_anthropic.request == request
    assert (as_chat.format, as_anthropic.format) == ("openai_chat", "anthropic")
