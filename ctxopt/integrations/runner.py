"""What the client wrapper and the decorator share: optimise one call's messages, remember the
report for the caller's thread or task, attach it to the response, record it in the accountant.

The latest reports live in a :class:`contextvars.ContextVar`, so concurrent threads and asyncio
tasks each see the report of their own call, never a neighbour's. Async callers optimise in a
worker thread (:meth:`Runner.optimize_async`) so the event loop keeps serving other tasks.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from ctxopt.errors import ConfigError
from ctxopt.integrations.usage import billed
from ctxopt.pipeline import Pipeline, Result
from ctxopt.report import Report
from ctxopt.requests import RequestResult, optimize_request
from ctxopt.tiers import TIERS_ENV, Tier, load_tiers, resolve_tier

REPORT_ATTRIBUTE = "ctxopt_report"

# (owner, report) pairs, newest first, for the last few wrappers used in this thread/task. One
# module-level variable (ContextVars should never be created per object: contexts keep them alive).
_LAST: ContextVar[tuple[tuple[int, Report], ...]] = ContextVar("ctxopt_last_reports", default=())
_KEEP = 32
_owners = itertools.count(1)

Choice = Any  # a value, or a callable(call: Mapping[str, Any]) -> value chosen per call
Fitted = TypeVar("Fitted", Result, RequestResult)


def last_report(owner: int | None = None) -> Report | None:
    """The report of the latest optimised call in this thread or asyncio task (of ``owner`` only,
    when given), or ``None`` before the first one."""
    for key, report in _LAST.get():
        if owner is None or key == owner:
            return report
    return None


def _remember(owner: int, report: Report) -> None:
    kept = tuple(pair for pair in _LAST.get() if pair[0] != owner)[: _KEEP - 1]
    _LAST.set(((owner, report), *kept))


def attach(response: Any, report: Report) -> Any:
    """Set ``response.ctxopt_report`` where the object allows it; return the response.

    Pydantic models (the OpenAI SDK's responses) get it outside their fields, so ``model_dump()``
    and ``model_dump_json()`` are unchanged. Dicts, tuples and slotted objects are left as they are.
    """
    try:
        if hasattr(type(response), "model_fields"):
            object.__setattr__(response, REPORT_ATTRIBUTE, report)
        else:
            setattr(response, REPORT_ATTRIBUTE, report)
    except (AttributeError, TypeError, ValueError):
        pass  # nowhere to put it: the caller reads last_report instead
    return response


def _choose(choice: Choice, call: Mapping[str, Any]) -> Any:
    return choice(call) if callable(choice) else choice


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Runner:
    """Optimises the messages of one call with the wrapper's settings.

    ``tier``, ``query``, ``tenant``, ``agent``, ``filters`` and ``session`` are values, or callables
    that get the call's keyword arguments (``model``, ``user``, ``metadata``, ... for a client) and
    return the value. ``session`` names the call's conversation (``None``: optimise it on its own).
    """

    tier: Choice = "pro"
    pipeline: Pipeline | None = None  # None: the default Pipeline()
    tiers: Mapping[str, Tier] | str | os.PathLike[str] | None = None
    query: Choice = None
    accountant: Any = None
    tenant: Choice = None
    agent: Choice = None
    filters: Choice = None
    session: Choice = None
    on_report: Callable[[Report], Any] | None = None
    owner: int = dataclasses.field(default_factory=lambda: next(_owners), init=False)
    _base: Pipeline = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.pipeline is not None and not isinstance(self.pipeline, Pipeline):
            raise ConfigError(f"pipeline must be a ctxopt.Pipeline or None, got {type(self.pipeline).__name__}")
        object.__setattr__(self, "_base", self.pipeline or Pipeline())
        if self.accountant is not None and not callable(getattr(self.accountant, "record", None)):
            raise ConfigError(f"accountant must have a record(report, tenant=, agent=) method, "
                              f"got {type(self.accountant).__name__}")
        # Read a tiers file (or $CTXOPT_TIERS) once here, not on every request.
        tiers = self.tiers if self.tiers is not None else os.environ.get(TIERS_ENV) or None
        if isinstance(tiers, (str, os.PathLike)):
            tiers = load_tiers(tiers)
        object.__setattr__(self, "tiers", tiers)
        if not callable(self.tier):  # a wrong tier name fails at wrap time, not on the first request
            object.__setattr__(self, "tier", resolve_tier(self.tier, tiers))

    @property
    def last_report(self) -> Report | None:
        return last_report(self.owner)

    def optimize(self, messages: Sequence[Mapping[str, Any]], call: Mapping[str, Any]) -> Result:
        """Fit ``messages``; ``call`` holds the call's other keyword arguments (``model``, ...)."""
        return self._publish(self._planned(call)(messages))

    async def optimize_async(self, messages: Sequence[Mapping[str, Any]], call: Mapping[str, Any]) -> Result:
        """:meth:`optimize` for async callers: the pipeline runs in a worker thread (the default
        executor), because it is CPU-bound and may wait on a model or a store for seconds, which on
        the event loop would stall every other task. The report is remembered in the calling task."""
        import asyncio  # here, not at module level: most users never go async and import ctxopt stays light

        return self._publish(await asyncio.to_thread(self._planned(call), messages))

    def optimize_request(self, call: Mapping[str, Any], format: str) -> RequestResult:
        """Fit a whole call (its keyword arguments, in ``format``); returns the call to make."""
        return self._publish(self._planned_request(call, format)())

    async def optimize_request_async(self, call: Mapping[str, Any], format: str) -> RequestResult:
        """:meth:`optimize_request` in a worker thread, like :meth:`optimize_async`."""
        import asyncio

        return self._publish(await asyncio.to_thread(self._planned_request(call, format)))

    def _planned_request(self, call: Mapping[str, Any], format: str) -> Callable[[], RequestResult]:
        # The format's adapter reads the model, tools, response format and output room from the call.
        return functools.partial(optimize_request, call, format=format, tier=_choose(self.tier, call),
                                 pipeline=self._base, tiers=self.tiers,
                                 query=_choose(self.query, call), filters=_choose(self.filters, call),
                                 session=_choose(self.session, call))

    def _planned(self, call: Mapping[str, Any]) -> Callable[[Sequence[Mapping[str, Any]]], Result]:
        """The pipeline run for this call, its choices made here, in the caller's thread or task (the
        user's callables never move to a worker thread)."""
        tier = _choose(self.tier, call)
        model = call.get("model")
        # The rest of the request is counted too: its tools' schemas, its response_format, and the
        # answer room it asks for (which replaces the tier's reserve).
        output = call.get("max_completion_tokens", call.get("max_tokens"))
        return functools.partial(self._base.optimize, tier=tier, query=_choose(self.query, call),
                                 tiers=self.tiers, filters=_choose(self.filters, call),
                                 model=model if isinstance(model, str) else None,
                                 tools=call.get("tools") or call.get("functions"),
                                 response_format=call.get("response_format"),
                                 max_output_tokens=output, session=_choose(self.session, call))

    def _publish(self, result: Fitted) -> Fitted:
        # In the caller's thread or task: a ContextVar set in a worker thread would not reach the task.
        _remember(self.owner, result.report)
        return result

    def finish(self, report: Report, response: Any, call: Mapping[str, Any]) -> Any:
        """After the provider answered: put what it billed (its ``usage``) next to the estimate,
        record the call, and attach the report to the response."""
        usage = billed(response, report.price)
        if usage is not None:
            report = dataclasses.replace(report, billed=usage)
            _remember(self.owner, report)
        self.record(report, call)
        return attach(response, report)

    def record(self, report: Report, call: Mapping[str, Any]) -> None:
        """Hand the final report of a call that went through (with the provider's billed usage when
        it came back) to ``on_report`` and the accountant."""
        if self.on_report is not None:
            self.on_report(report)
        if self.accountant is not None:
            self.accountant.record(report, tenant=_choose(self.tenant, call), agent=_choose(self.agent, call))
