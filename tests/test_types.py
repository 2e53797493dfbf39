import pytest

from ctxopt import Context, InputError, Item

TOOL_CALL = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Oslo\"}"}}


def test_messages_round_trip_unchanged_including_tool_calls():
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "weather?", "name": "ana"},
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": "thanks"},
    ]
    assert Context.from_messages(messages).to_messages() == messages


def test_a_tool_call_and_its_results_form_one_unit():
    ctx = Context.from_messages([
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL, {**TOOL_CALL, "id": "c2"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "a"},
        {"role": "tool", "tool_call_id": "c2", "content": "b"},
        {"role": "user", "content": "next"},
    ])
    assert [i.unit for i in ctx.items] == [None, "m1", "m1", "m1", None]


def test_system_prompts_and_the_latest_user_message_are_protected():
    ctx = Context.from_messages([
        {"role": "system", "content": "s"}, {"role": "user", "content": "old"},
        {"role": "assistant", "content": "a"}, {"role": "user", "content": "new"},
    ])
    assert [i.protected for i in ctx.items] == [True, False, False, True]
    assert ctx.query == "new"


def test_text_parts_content_is_accepted_as_text():
    ctx = Context.from_messages([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
    assert ctx.items[0].text == "ab"


@pytest.mark.parametrize("messages, message", [
    ("hello", "messages must be a list"),
    ({"role": "user", "content": "x"}, "messages must be a list"),
    (None, "messages must be a list"),
    (["hello"], "message 0 must be a dict"),
    ([{"role": "robot", "content": "x"}], "message 0 has role 'robot'; choose from system, developer, user"),
    ([{"content": "x"}], "message 0 has role None"),
    ([{"role": "user"}], r"message 0 \(user\) has no 'content'"),
    ([{"role": "user", "content": 42}], "message 0 has content of type int"),
    ([{"role": "user", "content": {"text": "x"}}], "message 0 has content of type dict"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "content must be a string"),
    ([{"role": "tool", "tool_call_id": "c9", "content": "x"}], "no earlier assistant message has a tool call"),
    ([{"role": "assistant", "content": None, "tool_calls": "oops"}], "tool_calls must be a list"),
])
def test_malformed_messages_get_a_clear_error(messages, message):
    with pytest.raises(InputError, match=message):
        Context.from_messages(messages)


def test_items_reject_unknown_kinds():
    with pytest.raises(InputError, match="kind 'memo'; choose from"):
        Item(id="x", kind="memo", text="t")


def test_replacing_text_resets_the_token_count():
    item = Item(id="x", kind="user", text="a", tokens=5)
    assert item.replace(text="b").tokens is None
    assert item.replace(score=1.0).tokens == 5
