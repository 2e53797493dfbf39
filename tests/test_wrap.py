"""ctxopt.wrap and @ctxopt.optimized, end to end with the offline stand-in client."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from pathlib import Path

import pytest
import tiktoken

import ctxopt
from ctxopt.integrations.stand_in import AsyncStandInClient, ContextLengthExceeded, StandInClient

FREE_BUDGET = ctxopt.DEFAULT_TIERS["free"].budget


@pytest.fixture(scope="module")
def conversation() -> list[dict]:
    """The on-call conversation (about 4,400 tokens): over a 4k window and the free tier."""
    path = Path(__file__).parents[1] / "examples" / "oncall_conversation.json"
    return json.loads(path.read_text(encoding="utf-8"))


def sent_tokens(client: StandInClient) -> int:
    # counted independently of ctxopt: tiktoken's own encoding for the request's model
    encoding = tiktoken.encoding_name_for_model(client.last_request["model"])
    return ctxopt.get_tokenizer(encoding).count_messages(client.last_request["messages"])


def test_the_conversation_does_not_fit_the_stand_in_without_ctxopt(conversation):
    with pytest.raises(ContextLengthExceeded):
        StandInClient(context_window=4096).chat.completions.create(model="gpt-4o", messages=conversation)


def test_wrapped_client_sends_messages_that_fit_the_tier(conversation):
    llm = StandInClient(context_window=4096)
    client = ctxopt.wrap(llm, tier="free")
    response = client.chat.completions.create(model="gpt-4o", messages=conversation)
    assert sent_tokens(llm) <= FREE_BUDGET
    assert response.usage.prompt_tokens == sent_tokens(llm) == response.ctxopt_report.tokens_after
    assert llm.last_request["messages"][-1] == conversation[-1]  # the question survives


def test_report_is_attached_and_is_this_threads_last_report(conversation):
    client = ctxopt.wrap(StandInClient(), tier="free")
    assert client.last_report is None
    response = client.chat.completions.create(model="gpt-4o", messages=conversation)
    assert isinstance(response.ctxopt_report, ctxopt.Report)
    assert client.last_report is response.ctxopt_report is ctxopt.last_report()
    assert response.ctxopt_report.tokens_before > FREE_BUDGET >= response.ctxopt_report.tokens_after


def test_other_attributes_and_arguments_pass_through(conversation):
    llm = StandInClient()
    client = ctxopt.wrap(llm, tier="pro")
    assert client.base_url == llm.base_url and client.context_window == llm.context_window
    client.base_url = "stand-in://elsewhere"
    assert llm.base_url == "stand-in://elsewhere"
    assert client.chat.completions.__wrapped__ is llm.chat.completions
    client.chat.completions.create(model="gpt-4o", messages=conversation[:3], temperature=0.2, user="u1")
    assert llm.last_request["temperature"] == 0.2 and llm.last_request["user"] == "u1"
    assert llm.last_request["messages"] == conversation[:3]  # already fits: unchanged


def test_bad_messages_raise_input_error_before_any_request():
    llm = StandInClient()
    client = ctxopt.wrap(llm, tier="free")
    with pytest.raises(ctxopt.InputError, match="role 'robot'"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "robot", "content": "beep"}])
    with pytest.raises(ctxopt.InputError, match="messages="):
        client.chat.completions.create(model="gpt-4o")
    assert llm.last_request is None


def test_unknown_tier_fails_when_wrapping():
    with pytest.raises(ctxopt.ConfigError, match="unknown tier 'gold'"):
        ctxopt.wrap(StandInClient(), tier="gold")


def test_the_request_model_prices_and_counts_and_an_unknown_one_is_a_clear_error(conversation):
    llm = StandInClient()
    client = ctxopt.wrap(llm, tier="free")
    mini = client.chat.completions.create(model="gpt-4o-mini", messages=conversation).ctxopt_report
    assert (mini.model, mini.price_per_1k, mini.counting) == ("gpt-4o-mini", 0.00015, "o200k_base")
    llm.last_request = None
    with pytest.raises(ctxopt.ConfigError, match=r"how to count tokens for model 'llama-3-8b'.*encoding"):
        client.chat.completions.create(model="llama-3-8b", messages=conversation)
    assert llm.last_request is None  # nothing was sent
    local = ctxopt.wrap(llm, tier="free", pipeline=ctxopt.Pipeline(encoding="cl100k_base", price_per_1k=0.0))
    assert local.chat.completions.create(model="llama-3-8b", messages=conversation).ctxopt_report.counting == "cl100k_base"
    counted = ctxopt.wrap(llm, tier="free", pipeline=ctxopt.Pipeline(encoding="cl100k_base"))
    with pytest.raises(ctxopt.ConfigError, match=r"no price known for model 'llama-3-8b'.*prices="):
        counted.chat.completions.create(model="llama-3-8b", messages=conversation)
    priced = ctxopt.wrap(llm, tier="free",
                         pipeline=ctxopt.Pipeline(encoding="cl100k_base", prices={"llama-3-8b": {"input": 0.2}}))
    assert priced.chat.completions.create(model="llama-3-8b", messages=conversation).ctxopt_report.price.input == 0.2
    contract = ctxopt.wrap(StandInClient(), tier="free", pipeline=ctxopt.Pipeline(price_per_1k=0.01))
    assert contract.chat.completions.create(model="gpt-4o-mini", messages=conversation).ctxopt_report.price_per_1k == 0.01


def test_tier_tenant_and_agent_can_be_chosen_per_call(conversation):
    plans = {"alice": "free", "bob": "enterprise"}
    accountant = ctxopt.Accountant()
    client = ctxopt.wrap(StandInClient(), tier=lambda call: plans[call["user"]], accountant=accountant,
                         tenant=lambda call: call["user"], agent="helpdesk")
    assert client.chat.completions.create(model="gpt-4o", messages=conversation, user="alice").ctxopt_report.tier == "free"
    assert client.chat.completions.create(model="gpt-4o", messages=conversation, user="bob").ctxopt_report.tier == "enterprise"
    assert {(u.tenant, u.agent, u.tier) for u in accountant.usage()} == {("alice", "helpdesk", "free"),
                                                                          ("bob", "helpdesk", "enterprise")}


def test_only_calls_that_return_are_accounted(conversation):
    accountant = ctxopt.Accountant()
    client = ctxopt.wrap(StandInClient(context_window=4096), tier="pro", accountant=accountant, tenant="acme")
    with pytest.raises(ContextLengthExceeded):  # pro's budget is larger than this model's window
        client.chat.completions.create(model="gpt-4o", messages=conversation)
    assert client.last_report.tier == "pro"  # what was sent is still there to debug
    assert accountant.total().requests == 0
    client.chat.completions.create(model="gpt-4o", messages=conversation[:4])
    assert accountant.usage()[0].tenant == "acme" and accountant.total().requests == 1


def test_on_report_gets_every_report(conversation):
    seen = []
    client = ctxopt.wrap(StandInClient(), tier="free", on_report=seen.append)
    response = client.chat.completions.create(model="gpt-4o", messages=conversation)
    assert seen == [response.ctxopt_report]


class DictClient:
    """A client whose responses are plain dicts: nowhere to attach a report."""

    def __init__(self) -> None:
        self.chat = self
        self.completions = self

    def create(self, **kwargs):
        return {"messages": kwargs["messages"]}

    def with_options(self, **options):
        return DictClient()


def test_responses_that_take_no_attributes_are_returned_as_they_are(conversation):
    client = ctxopt.wrap(DictClient(), tier="free")
    response = client.chat.completions.create(model="gpt-4o", messages=conversation)
    assert isinstance(response, dict)
    assert ctxopt.get_tokenizer("o200k_base").count_messages(response["messages"]) == client.last_report.tokens_after \
        <= FREE_BUDGET


def test_clients_made_by_with_options_stay_wrapped(conversation):
    derived = ctxopt.wrap(DictClient(), tier="free").with_options(timeout=5)
    assert isinstance(derived, ctxopt.integrations.WrappedClient)
    response = derived.chat.completions.create(model="gpt-4o", messages=conversation)
    assert ctxopt.get_tokenizer("o200k_base").count_messages(response["messages"]) <= FREE_BUDGET


def test_async_client_is_optimised_and_reports_per_task(conversation):
    accountant = ctxopt.Accountant()
    client = ctxopt.wrap(AsyncStandInClient(), tier=lambda call: call["metadata"]["tier"], accountant=accountant)

    async def ask(tier: str) -> tuple[ctxopt.Report, ctxopt.Report]:
        response = await client.chat.completions.create(model="gpt-4o", messages=conversation, metadata={"tier": tier})
        await asyncio.sleep(0)  # let the other task run its call in between
        return response.ctxopt_report, client.last_report

    async def both():
        return await asyncio.gather(ask("free"), ask("enterprise"))

    (free, free_last), (big, big_last) = asyncio.run(both())
    assert free is free_last and big is big_last  # each task sees its own call's report
    assert free.tier == "free" and free.tokens_after <= FREE_BUDGET and big.tier == "enterprise"
    assert accountant.total().requests == 2


def test_last_report_is_per_thread(conversation):
    client = ctxopt.wrap(StandInClient(), tier=lambda call: call["user"])
    barrier = threading.Barrier(2)
    seen = {}

    def ask(tier: str) -> None:
        client.chat.completions.create(model="gpt-4o", messages=conversation, user=tier)
        barrier.wait()  # both calls are done before either thread reads its report
        seen[tier] = client.last_report.tier

    threads = [threading.Thread(target=ask, args=(t,)) for t in ("free", "enterprise")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"free": "free", "enterprise": "enterprise"}


def test_two_wrappers_keep_their_own_last_report(conversation):
    free = ctxopt.wrap(StandInClient(), tier="free")
    pro = ctxopt.wrap(StandInClient(), tier="pro")
    free.chat.completions.create(model="gpt-4o", messages=conversation)
    pro.chat.completions.create(model="gpt-4o", messages=conversation)
    assert (free.last_report.tier, pro.last_report.tier, ctxopt.last_report().tier) == ("free", "pro", "pro")


def test_optimized_decorator_returns_fitted_messages_with_their_report(conversation):
    accountant = ctxopt.Accountant()

    @ctxopt.optimized(tier=lambda args: args["plan"], accountant=accountant, tenant="acme")
    def build(question: str, plan: str = "free") -> list[dict]:
        return [*conversation[:-1], {"role": "user", "content": question}]

    messages = build("What is the next action?")
    assert isinstance(messages, list) and messages[-1]["content"] == "What is the next action?"
    assert ctxopt.get_tokenizer().count_messages(messages) == messages.report.tokens_after <= FREE_BUDGET
    assert build("Again?", plan="enterprise").report.tier == "enterprise"
    assert build.__name__ == "build" and accountant.total().requests == 2


def test_optimized_decorator_works_on_async_functions_and_surfaces_bad_messages(conversation):
    @ctxopt.optimized(tier="free")
    async def build() -> list[dict]:
        return conversation

    @ctxopt.optimized(tier="free")
    def broken() -> list[dict]:
        return [{"role": "user"}]

    assert asyncio.run(build()).report.tokens_after <= FREE_BUDGET
    with pytest.raises(ctxopt.InputError, match="no 'content'"):
        broken()


class Sleeping:
    """A plumbing stage that holds its thread for ``seconds`` (standing in for a slow embed or store
    call) and notes the request's filters."""

    name = "sleeping"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self, context):
        time.sleep(self.seconds)
        return context.note(filters=dict(context.filters))


async def ticks_during(call) -> int:
    """How often a coroutine ticking every 10 ms got to run while ``call`` was awaited."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.02)  # the ticker is running before the call starts
    before = ticks
    await call()
    during = ticks - before
    ticker.cancel()
    return during


def slow_pipeline() -> ctxopt.Pipeline:
    return ctxopt.Pipeline(stages=(Sleeping(0.3),))


def test_async_wrapped_call_keeps_the_event_loop_responsive_while_it_optimises(conversation):
    client = ctxopt.wrap(AsyncStandInClient(), tier="free", pipeline=slow_pipeline())

    async def call():
        response = await client.chat.completions.create(model="gpt-4o", messages=conversation)
        assert response.ctxopt_report.tokens_after <= FREE_BUDGET

    assert asyncio.run(ticks_during(call)) >= 10  # the loop would stall for the whole 0.3 s otherwise


def test_async_optimized_function_keeps_the_event_loop_responsive_while_it_optimises(conversation):
    @ctxopt.optimized(tier="free", pipeline=slow_pipeline())
    async def build() -> list[dict]:
        return conversation

    async def call():
        assert (await build()).report.tokens_after <= FREE_BUDGET

    assert asyncio.run(ticks_during(call)) >= 10


def test_concurrent_async_calls_each_see_their_own_report(conversation):
    seen = []
    client = ctxopt.wrap(AsyncStandInClient(), tier="free", pipeline=slow_pipeline(), on_report=seen.append,
                         filters=lambda call: {"user": call["user"]})
    short = conversation[:3]
    count = ctxopt.get_tokenizer("o200k_base").count_messages

    async def ask(messages: list[dict], user: str) -> tuple[ctxopt.Report, ctxopt.Report]:
        response = await client.chat.completions.create(model="gpt-4o", messages=messages, user=user)
        await asyncio.sleep(0.05)  # the other task's call finishes in between
        return response.ctxopt_report, client.last_report

    async def both():
        return await asyncio.gather(ask(conversation, "long"), ask(short, "short"))

    (long_report, long_last), (short_report, short_last) = asyncio.run(both())
    assert long_report is long_last and short_report is short_last
    assert long_report.tokens_before == count(conversation) > FREE_BUDGET >= long_report.tokens_after
    assert short_report.tokens_before == short_report.tokens_after == count(short)
    assert [r.stages[0].notes["filters"] for r in (long_report, short_report)] == [{"user": "long"}, {"user": "short"}]
    assert {id(r) for r in seen} == {id(long_report), id(short_report)}  # on_report got both
    assert client.last_report is None  # the calls ran in their tasks, not in this one


def test_async_wrapped_call_raises_the_same_input_error_before_any_request():
    llm = AsyncStandInClient()
    client = ctxopt.wrap(llm, tier="free")

    async def call():
        await client.chat.completions.create(model="gpt-4o", messages=[{"role": "robot", "content": "beep"}])

    with pytest.raises(ctxopt.InputError, match="role 'robot'"):
        asyncio.run(call())
    assert llm.last_request is None and client.last_report is None


class SdkShapedClient:
    """Shaped like the OpenAI async SDK: ``create`` is a plain function (a ``functools.wraps``
    decorator) around ``async def``, and ``with_streaming_response.create`` returns an async context
    manager, not an awaitable."""

    def __init__(self) -> None:
        self.chat = self.completions = self
        self.with_streaming_response = StreamingView(self)
        self.last_request = None

    @staticmethod
    def checked(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)

        return wrapper

    @checked
    async def create(self, **kwargs):
        self.last_request = kwargs
        return StandInResponse()


class StandInResponse:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        return None


class StreamingView:
    def __init__(self, client: SdkShapedClient) -> None:
        @functools.wraps(client.create)
        def create(**kwargs):
            client.last_request = kwargs  # the SDK would send the request in __aenter__
            return StandInResponse()

        self.create = create


def test_async_create_behind_a_plain_decorator_also_optimises_off_the_loop(conversation):
    llm = SdkShapedClient()
    client = ctxopt.wrap(llm, tier="free", pipeline=slow_pipeline())

    async def call():
        response = await client.chat.completions.create(model="gpt-4o", messages=conversation)
        assert response.ctxopt_report is client.last_report

    assert asyncio.run(ticks_during(call)) >= 10
    assert ctxopt.get_tokenizer("o200k_base").count_messages(llm.last_request["messages"]) <= FREE_BUDGET


def test_async_streaming_response_view_still_returns_its_context_manager(conversation):
    llm = SdkShapedClient()
    client = ctxopt.wrap(llm, tier="free")

    async def call():
        async with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=conversation) as r:
            return r.ctxopt_report

    report = asyncio.run(call())
    assert report.tokens_after <= FREE_BUDGET
    assert ctxopt.get_tokenizer("o200k_base").count_messages(llm.last_request["messages"]) == report.tokens_after
