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


def test_text_parts_are_read_one_per_line_and_come_back_as_the_same_parts():
    parts = [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "https://x/cat.png"}},
             {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}}]
    ctx = Context.from_messages([{"role": "user", "content": parts}])
    assert ctx.items[0].text == "a\nb"
    assert ctx.to_messages() == [{"role": "user", "content": parts}]


def test_a_shortened_text_replaces_the_text_parts_and_keeps_the_others():
    parts = [{"type": "text", "text": "long text"}, {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]
    item = Context.from_messages([{"role": "user", "content": parts}]).items[0].replace(text="short")
    assert item.to_message()["content"] == [{"type": "text", "text": "short"}, parts[1]]
    assert item.tokens is None


def test_sdk_message_objects_are_read_as_the_dicts_their_api_sends():
    class Message:  # the shape of a pydantic SDK object: model_dump(exclude_none=True)
        def model_dump(self, exclude_none=False):
            full = {"role": "assistant", "content": "Hi", "refusal": None}
            return {k: v for k, v in full.items() if v is not None} if exclude_none else full

    ctx = Context.from_messages([{"role": "user", "content": "Hello"}, Message()])
    assert ctx.to_messages()[1] == {"role": "assistant", "content": "Hi"}


def test_the_turn_in_progress_after_the_last_user_message_is_protected():
    ctx = Context.from_messages([
        {"role": "user", "content": "old"}, {"role": "assistant", "content": "old answer"},
        {"role": "user", "content": "look it up"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                               "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "a long result"},
    ])
    assert [i.protected for i in ctx.items] == [False, False, True, True, True]


def test_unanswered_tool_calls_and_orphan_results_are_repaired_and_reported():
    call = {"type": "function", "function": {"name": "f", "arguments": "{}"}}
    ctx = Context.from_messages([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", **call}, {"id": "c2", **call}]},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c9", "content": "orphan"},
        {"role": "assistant", "content": "thinking", "tool_calls": [{"id": "c3", **call}]},
    ])
    messages = ctx.to_messages()
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["c1"]
    assert [m.get("tool_call_id") for m in messages] == [None, None, "c1", None]
    assert messages[3] == {"role": "assistant", "content": "thinking"}
    assert len(ctx.repairs) == 3 and "c2" in ctx.repairs[0] and "'c9'" in ctx.repairs[1] and "c3" in ctx.repairs[2]


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
    ([{"role": "user", "content": [{"type": "text", "text": 5}]}], "content must be a string"),
    ([{"role": "user", "content": ["just a string"]}], "content must be a string"),
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
