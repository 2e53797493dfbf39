"""An offline stand-in for an OpenAI-compatible chat client, for examples and tests.

``StandInClient().chat.completions.create(model=..., messages=...)`` answers by echoing the latest
user message and reports ``usage.prompt_tokens`` counted the way OpenAI bills a chat prompt. Like a
real model it refuses a prompt longer than its ``context_window``. ``AsyncStandInClient`` is the
same with ``async def create``. No network, no SDK.

>>> client = StandInClient()
>>> client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]).choices[0].message.content
'You said: Hi'
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ctxopt.counting import encoding_for_model, tokenizer_for
from ctxopt.tokens import get_tokenizer


class ContextLengthExceeded(Exception):
    """What the stand-in raises for a prompt over its window, like OpenAI's context_length_exceeded."""


@dataclasses.dataclass
class Message:
    role: str
    content: str


@dataclasses.dataclass
class Choice:
    index: int
    message: Message
    finish_reason: str = "stop"


@dataclasses.dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclasses.dataclass
class ChatCompletion:
    id: str
    model: str
    created: int
    choices: list[Choice]
    usage: Usage
    object: str = "chat.completion"


_ids = itertools.count(1)


class Completions:
    def __init__(self, client: StandInClient) -> None:
        self._client = client

    def create(self, *, model: str, messages: Sequence[Mapping[str, Any]], **options: Any) -> ChatCompletion:
        return self._client._answer(model, messages, options)


class AsyncCompletions(Completions):
    async def create(self, *, model: str, messages: Sequence[Mapping[str, Any]], **options: Any) -> ChatCompletion:  # type: ignore[override]
        return self._client._answer(model, messages, options)


class Chat:
    def __init__(self, completions: Completions) -> None:
        self.completions = completions


class StandInClient:
    """Echoes the latest user message; keeps the latest request in ``last_request``."""

    completions_class = Completions

    def __init__(self, *, context_window: int = 128_000, base_url: str = "stand-in://local") -> None:
        self.context_window = context_window
        self.base_url = base_url
        self.last_request: dict[str, Any] | None = None
        self.chat = Chat(self.completions_class(self))

    def _answer(self, model: str, messages: Sequence[Mapping[str, Any]], options: Mapping[str, Any]) -> ChatCompletion:
        self.last_request = {"model": model, "messages": list(messages), **options}
        tokenizer = tokenizer_for(model) if encoding_for_model(model) else get_tokenizer()  # as the model counts
        prompt_tokens = tokenizer.count_messages(messages)
        if prompt_tokens > self.context_window:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {self.context_window} tokens. However, your "
                f"messages resulted in {prompt_tokens} tokens. Please reduce the length of the messages."
            )
        question = next((str(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        answer = f"You said: {question}"
        completion_tokens = tokenizer.count(answer)
        return ChatCompletion(
            id=f"chatcmpl-standin-{next(_ids)}", model=model, created=int(time.time()),
            choices=[Choice(index=0, message=Message(role="assistant", content=answer))],
            usage=Usage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens),
        )


class AsyncStandInClient(StandInClient):
    """:class:`StandInClient` whose ``chat.completions.create`` is a coroutine function."""

    completions_class = AsyncCompletions
