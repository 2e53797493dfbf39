"""``ctxopt.wrap(client)``: a client whose model calls are fitted to a tier, in their own format.

Real OpenAI usage (any client with ``client.chat.completions.create(messages=..., ...)`` works the
same: Azure OpenAI, vLLM, Ollama, OpenRouter through the ``openai`` SDK, or your own)::

    from openai import OpenAI
    import ctxopt

    client = ctxopt.wrap(OpenAI(), tier="free")
    response = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    print(response.ctxopt_report)       # or client.last_report

What is optimised (each through its format's adapter, see :mod:`ctxopt.adapters`):

* ``chat.completions.create`` / ``parse`` / ``stream``: ``messages=`` (OpenAI chat);
* ``responses.create`` / ``parse`` / ``stream``: ``input=`` and ``instructions=`` (OpenAI Responses);
* ``messages.create`` / ``stream`` (and ``beta.messages``) of an Anthropic client: ``system=`` and
  ``messages=``;
* ``completion`` / ``acompletion`` of the ``litellm`` module or a ``litellm.Router``: ``messages=``.

The same methods under ``with_raw_response`` / ``with_streaming_response`` are optimised too; the
call's other arguments are forwarded as given, and every other attribute of the client passes
through untouched. An async client works the same with ``await``; its awaited calls optimise in a
worker thread, so the event loop keeps serving other tasks meanwhile. ``stream()`` and
``with_streaming_response`` hand back their context manager at once, so those still optimise on the
calling thread, before returning it.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ctxopt.errors import InputError
from ctxopt.integrations.runner import Choice, Runner
from ctxopt.pipeline import Pipeline
from ctxopt.report import Report
from ctxopt.tiers import Tier

OPTIMISED_METHODS = ("create", "parse", "stream")  # the methods taking a request (those an endpoint has)
# Client attributes that are endpoints taking a request, and the format of their requests.
ENDPOINTS = {"responses": "openai_responses", "messages": "anthropic"}
# Functions taking an OpenAI chat request directly: LiteLLM's module-level calls and Router methods.
FUNCTIONS = ("completion", "acompletion")
REQUEST_FIELD = {"openai_chat": "messages", "openai_responses": "input", "anthropic": "messages"}
# The OpenAI SDK's views of the same methods returning the raw HTTP response or a streaming one.
RESPONSE_VIEWS = ("with_raw_response", "with_streaming_response")
REWRAPPED_METHODS = ("with_options", "copy")  # client methods returning a new, configured client


class _Proxy:
    """Forwards every attribute it does not define to the wrapped object."""

    __slots__ = ("__wrapped__", "_ctxopt_runner")

    def __init__(self, target: Any, runner: Runner) -> None:
        object.__setattr__(self, "__wrapped__", target)
        object.__setattr__(self, "_ctxopt_runner", runner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__wrapped__, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.__wrapped__, name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self.__wrapped__)) | set(super().__dir__()))

    def __repr__(self) -> str:
        return f"<ctxopt {type(self).__name__} of {self.__wrapped__!r}>"


class WrappedClient(_Proxy):
    """The client returned by :func:`wrap`; ``last_report`` is this thread's (or task's) latest."""

    __slots__ = ()

    @property
    def last_report(self) -> Report | None:
        return self._ctxopt_runner.last_report

    @property
    def chat(self) -> Any:
        return _Chat(self.__wrapped__.chat, self._ctxopt_runner)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.__wrapped__, name)
        if name in ENDPOINTS and callable(getattr(value, "create", None)):
            return _Endpoint(value, self._ctxopt_runner, ENDPOINTS[name])
        if name == "beta" and callable(getattr(getattr(value, "messages", None), "create", None)):
            return _Beta(value, self._ctxopt_runner)  # Anthropic's beta.messages (beta features, same shape)
        if name in FUNCTIONS and callable(value):
            return _optimising(value, self._ctxopt_runner, "openai_chat")
        if name in REWRAPPED_METHODS and callable(value):
            runner = self._ctxopt_runner

            @functools.wraps(value)
            def rewrapped(*args: Any, **kwargs: Any) -> WrappedClient:
                return WrappedClient(value(*args, **kwargs), runner)

            return rewrapped
        return value


class _Chat(_Proxy):
    __slots__ = ()

    @property
    def completions(self) -> Any:
        return _Endpoint(self.__wrapped__.completions, self._ctxopt_runner, "openai_chat")


class _Beta(_Proxy):
    __slots__ = ()

    @property
    def messages(self) -> Any:
        return _Endpoint(self.__wrapped__.messages, self._ctxopt_runner, "anthropic")


class _Endpoint(_Proxy):
    """An endpoint whose request-taking methods are optimised in ``format``."""

    __slots__ = ("_ctxopt_format",)
    offload = True  # async methods optimise in a worker thread

    def __init__(self, target: Any, runner: Runner, format: str) -> None:
        super().__init__(target, runner)
        object.__setattr__(self, "_ctxopt_format", format)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.__wrapped__, name)
        if name in OPTIMISED_METHODS and callable(value):
            return _optimising(value, self._ctxopt_runner, self._ctxopt_format, offload=self.offload)
        if name in RESPONSE_VIEWS:
            view = _StreamingView if name == "with_streaming_response" else _Endpoint
            return view(value, self._ctxopt_runner, self._ctxopt_format)
        return value


class _StreamingView(_Endpoint):
    """``with_streaming_response``: the async SDK's methods here are plain functions wrapping the
    async ``create`` that return a context manager, not an awaitable, so they keep the direct path."""

    __slots__ = ()
    offload = False


def _require_request(method: Callable[..., Any], format: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    field = REQUEST_FIELD[format]
    if field not in kwargs or args:
        got = f"{len(args)} positional argument(s)" if args else f"no {field}= keyword argument"
        raise InputError(
            f"{getattr(method, '__qualname__', 'create')}() got {got}; a ctxopt-wrapped client needs the call's "
            f"arguments by keyword, its {'chat messages' if field == 'messages' else 'input'} as {field}=..."
        )


def _is_async(method: Callable[..., Any]) -> bool:
    """Whether ``method`` is a coroutine function, also behind ``functools.wraps`` decorators (the
    OpenAI SDK wraps its async ``create`` in plain functions that return the coroutine)."""
    try:
        return inspect.iscoroutinefunction(inspect.unwrap(method))
    except ValueError:  # a __wrapped__ cycle: not something we can see through
        return inspect.iscoroutinefunction(method)


def _optimising(method: Callable[..., Any], runner: Runner, format: str, offload: bool = True) -> Callable[..., Any]:
    if offload and _is_async(method):
        @functools.wraps(method)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            _require_request(method, format, args, kwargs)
            result = await runner.optimize_request_async(kwargs, format)
            kwargs = dict(result.request)
            response = await method(**kwargs)
            return runner.finish(result.report, response, kwargs)

        return call_async

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        _require_request(method, format, args, kwargs)
        result = runner.optimize_request(kwargs, format)
        kwargs = dict(result.request)
        response = method(**kwargs)
        # An awaitable from a method that is not (and does not wrap) a coroutine function: its
        # optimisation already ran above, on the calling thread; finish after it completes.
        if inspect.isawaitable(response):
            return _finish_later(response, result.report, runner, kwargs)
        return runner.finish(result.report, response, kwargs)

    return call


async def _finish_later(pending: Awaitable[Any], report: Report, runner: Runner, call: Mapping[str, Any]) -> Any:
    return runner.finish(report, await pending, call)


def wrap(
    client: Any,
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
) -> WrappedClient:
    """Wrap ``client`` (OpenAI, Anthropic, the ``litellm`` module or any client of the same shape)
    so every model call's prompt fits ``tier``; see the module docstring for the methods.

    ``tier``, ``query``, ``tenant`` and ``agent`` may be callables that receive the call's keyword
    arguments and return the value, e.g. ``tier=lambda call: plans[call["user"]]``. The request's
    ``model`` prices the report (see ``ctxopt.pricing``); a model ctxopt has no price for
    raises :class:`ctxopt.ConfigError` before the request, saying how to give one. The report of
    the latest call is ``response.ctxopt_report`` (when the response object accepts attributes),
    ``client.last_report`` (per thread / asyncio task), and ``on_report(report)``; with an
    ``accountant``, each call that returns is recorded under
    ``tenant`` and ``agent``. ``filters`` (a dict or a callable of the call) scope the
    pipeline's retrieval per call, e.g. ``filters=lambda call: {"tenant": TENANT_OF[call["user"]]}``.
    ``session`` names the call's conversation, e.g. ``session=lambda call: call["metadata"]["thread"]``:
    its prompt then keeps a prefix the provider serves from its prompt cache, and the report bills
    it after the conversation's previous call (state shared through the cache, disk or Redis).
    When the response carries ``usage``, the report's ``billed`` holds what the provider charged.
    Bad messages raise :class:`ctxopt.InputError` before any request. With an async client the
    optimisation runs in a worker thread (the default executor), because it is CPU-bound and may
    wait on a model or a vector store, which on the event loop would stall every other task.
    See ``examples/agent_wrap.py`` for a runnable example.
    """
    return WrappedClient(client, Runner(tier=tier, pipeline=pipeline, tiers=tiers, query=query,
                                        accountant=accountant, tenant=tenant, agent=agent, filters=filters,
                                        session=session, on_report=on_report))
