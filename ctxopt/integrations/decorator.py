"""``@ctxopt.optimized(tier=...)``: a function that builds messages returns them fitted to a tier.

>>> import ctxopt
>>> @ctxopt.optimized(tier="free")
... def build(question: str) -> list[dict]:
...     return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]
>>> messages = build("Hi!")
>>> messages
[{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi!'}]
>>> messages.report.tokens_after <= messages.report.budget
True
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any

from ctxopt.integrations.runner import Choice, Runner
from ctxopt.pipeline import Pipeline, Result
from ctxopt.report import Report
from ctxopt.tiers import Tier


class OptimizedMessages(list[dict[str, Any]]):
    """A plain list of messages that also carries the ``report`` of the optimisation that made it.

    Being a list, it goes straight into any chat client and compares equal to a plain list.
    """

    report: Report

    def __init__(self, messages: list[dict[str, Any]], report: Report) -> None:
        super().__init__(messages)
        self.report = report


def optimized(
    tier: Choice = "pro",
    pipeline: Pipeline | None = None,
    tiers: Mapping[str, Tier] | str | os.PathLike[str] | None = None,
    query: Choice = None,
    accountant: Any = None,
    tenant: Choice = None,
    *,
    agent: Choice = None,
    filters: Choice = None,
    session: Choice = None,
    on_report: Callable[[Report], Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a function (or ``async`` function) returning OpenAI-style messages so it returns
    them fitted to ``tier``, as :class:`OptimizedMessages` (a list with a ``.report``). The report
    also goes to ``on_report``, to ``ctxopt.last_report()`` and to the ``accountant``. Callables
    for ``tier``, ``query``, ``tenant`` and ``agent`` receive the function's arguments by name,
    e.g. ``tier=lambda args: args["plan"]``; ``session`` (a key or such a callable) names the
    conversation for the cache-stable layout and bill (see ``ctxopt.wrap``). For an ``async`` function the optimisation runs in a
    worker thread, so the event loop keeps serving other tasks while it works.
    """
    runner = Runner(tier=tier, pipeline=pipeline, tiers=tiers, query=query, accountant=accountant,
                    tenant=tenant, agent=agent, filters=filters, session=session, on_report=on_report)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)

        def arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return bound.arguments

        def recorded(result: Result, call: Mapping[str, Any]) -> OptimizedMessages:
            runner.record(result.report, call)
            return OptimizedMessages(result.messages, result.report)

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> OptimizedMessages:
                messages, call = await fn(*args, **kwargs), arguments(args, kwargs)
                return recorded(await runner.optimize_async(messages, call), call)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> OptimizedMessages:
            messages, call = fn(*args, **kwargs), arguments(args, kwargs)
            return recorded(runner.optimize(messages, call), call)

        return wrapper

    return decorate
