"""Runs stages in order, ends with the tier fit, and records what each stage did.

>>> from ctxopt import Pipeline
>>> result = Pipeline().optimize([{"role": "user", "content": "Hi"}], tier="free")
>>> result.report.tokens_after
8
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ctxopt.counting import response_format_tokens, tokenizer_for, tools_tokens
from ctxopt.errors import BudgetError, ConfigError, CtxoptError, InputError, StageError
from ctxopt.pricing import DEFAULT_MODEL, Price, check_prices, price_of
from ctxopt.report import Report, StageReport
from ctxopt.sessions import billing
from ctxopt.sessions.state import Previous, SessionStore, check_key, default_store
from ctxopt.stages import STAGES, Fit, PruneToolOutput, stage_config
from ctxopt.stages.session import SessionLayout
from ctxopt.tiers import Tier, resolve_tier
from ctxopt.tokens import REPLY_PRIMING, Tokenizer
from ctxopt.types import CACHE_BREAKPOINT, Context
from ctxopt.validate import parse_toml

# The default pipeline: cut over-long tool results (only when the prompt is over its tier, by
# keywords and ids when no embedding model is installed), then the fit.
DEFAULT_STAGES: tuple[Any, ...] = (PruneToolOutput(),)


@dataclasses.dataclass(frozen=True)
class Result:
    """The fitted messages, the report, and the final context. Unpacks as ``messages, report``."""

    messages: list[dict[str, Any]]
    report: Report
    context: Context

    def __iter__(self) -> Iterator[Any]:
        return iter((self.messages, self.report))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pipeline:
    """Stages run in order, then ``fit``: the only stage that guarantees the tier's limits.

    ``model`` picks how prompts are counted (its own tokenizer, or an estimate with a margin; see
    :mod:`ctxopt.counting`) and prices the report; a request's own ``model`` overrides it per call.
    ``encoding`` (a tiktoken encoding) or ``token_counter`` (a ``(text) -> int`` callable) override
    the counting for every model. With neither, an unnamed model is counted in ``cl100k_base``.
    The report's bill uses the model's prices (:mod:`ctxopt.pricing`; an unnamed model is priced as
    ``gpt-4o``); ``prices`` adds or overrides per-model prices in US$ per 1M tokens, ``price_per_1k``
    sets the input price alone.
    """

    stages: tuple[Any, ...] = DEFAULT_STAGES
    fit: Fit = dataclasses.field(default_factory=Fit)
    encoding: str | None = None
    model: str | None = None
    price_per_1k: float | None = None
    prices: Mapping[str, Any] | None = None
    token_counter: Callable[[str], int] | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.stages, Iterable):
            raise ConfigError(f"stages must be a list of stages, e.g. [PruneHistory(), Summarize()], got {self.stages!r}")
        object.__setattr__(self, "stages", tuple(self.stages))
        if not isinstance(self.fit, Fit):
            raise ConfigError(f"fit must be a ctxopt.Fit, e.g. Fit(on_overflow='truncate'), got {self.fit!r}")
        if self.encoding is not None and not isinstance(self.encoding, str):
            raise ConfigError(f"encoding must be a tiktoken encoding name such as 'cl100k_base', got {self.encoding!r}")
        if self.model is not None and not isinstance(self.model, str):
            raise ConfigError(f"model must be a model name such as 'gpt-4o', got {self.model!r}")
        for stage in self.stages:
            if not callable(getattr(stage, "run", None)) or not isinstance(getattr(stage, "name", None), str):
                raise ConfigError(f"{stage!r} is not a stage: a stage has a str `name` and a run(context) method")
        if self.model is not None:
            tokenizer_for(self.model, encoding=self.encoding, token_counter=self.token_counter)  # fail now
        if self.prices is not None:
            check_prices(self.prices)
        self.price()  # fail now, not after the first request

    def price(self, model: str | None = None) -> Price:
        """The price the report's bill uses for ``model`` (the pipeline's when None), with the
        pipeline's overrides."""
        return price_of(model or self.model or DEFAULT_MODEL, self.prices, price_per_1k=self.price_per_1k)

    def optimize(
        self,
        messages: Sequence[Mapping[str, Any]],
        tier: Tier | str = "pro",
        query: str | None = None,
        *,
        tiers: Mapping[str, Tier] | str | os.PathLike[str] | None = None,
        filters: Mapping[str, Any] | None = None,
        model: str | None = None,
        tools: Sequence[Any] | None = None,
        response_format: Any = None,
        max_output_tokens: int | None = None,
        session: str | None = None,
        session_store: SessionStore | None = None,
        opens_on_user: bool = False,
    ) -> Result:
        """Fit OpenAI-style ``messages`` to ``tier``; the query defaults to the latest user message.

        ``filters`` scope this request's retrieval, e.g. ``{"tenant": "acme"}``. The rest describe the
        request the messages go out in, so the whole of it is counted: ``model`` (its tokenizer and
        price), ``tools`` (or legacy ``functions``) and ``response_format`` (their schemas count
        against the budget), ``max_output_tokens`` (the answer's room: it replaces the tier's reserve).
        ``session`` names the conversation (see :meth:`run`). ``opens_on_user``: the provider
        rejects a conversation whose first message is the assistant's, so an answer the cut left
        without its question goes too (format adapters set it; see :class:`ctxopt.types.Context`).
        """
        started = time.perf_counter()
        model = model if model is not None else self.model
        tokenizer = self.tokenizer(model)
        resolved = resolve_tier(tier, tiers)
        if max_output_tokens is not None:
            resolved = _with_reserve(resolved, max_output_tokens)
        context = Context.from_messages(messages, query=query, tier=resolved, filters=filters)
        fixed = tools_tokens(tools, tokenizer) + response_format_tokens(response_format, tokenizer)
        context = context.replace(tokenizer=tokenizer, fixed_tokens=fixed, opens_on_user=opens_on_user)
        return self.run(context, model=model, started=started, session=session, session_store=session_store)

    def tokenizer(self, model: str | None = None) -> Tokenizer:
        """The tokenizer that counts ``model``'s prompts (the pipeline's model when None)."""
        return tokenizer_for(model if model is not None else self.model, encoding=self.encoding,
                             token_counter=self.token_counter)

    def run(self, context: Context, *, model: str | None = None, started: float | None = None,
            session: str | None = None, session_store: SessionStore | None = None) -> Result:
        """Run the stages and the fit on ``context``.

        With ``session`` (a key naming the conversation, e.g. its thread id) the prompt is laid out
        for the provider's prompt cache (a ``session`` stage runs first when the pipeline has none),
        and the bill counts what the provider would serve from cache given the session's previous
        prompt, kept in ``session_store`` (default: the shared cache, Redis when $CTXOPT_REDIS_URL
        is set, else disk).
        """
        started = time.perf_counter() if started is None else started
        model = model if model is not None else self.model
        if context.tokenizer is None:
            context = context.replace(tokenizer=self.tokenizer(model))
        tokenizer = context.tokenizer
        context = self._counted(context, tokenizer)
        tokens_before = _total(context)
        original = context
        stages: tuple[Any, ...] = self.stages
        price = self.price(model)
        if session is not None:
            check_key(session)
            if not any(getattr(s, "name", None) == SessionLayout.name for s in stages):
                # First: later stages then see a history already within its cap, so the default
                # prune_tool_output (which cuts only when over the tier, by relevance to the query)
                # leaves the held window's bytes alone instead of re-cutting them on every request.
                stages = (SessionLayout(min_cached_tokens=price.min_cached_tokens), *stages)
        reports = []
        for stage in (*stages, self.fit):
            t0 = time.perf_counter()
            try:
                out = stage.run(context.replace(notes=MappingProxyType({})))
            except CtxoptError as exc:
                exc.add_note(f"raised in pipeline stage {stage.name!r}")
                raise
            except Exception as exc:
                raise StageError(stage.name, exc) from exc
            if not isinstance(out, Context):
                raise StageError(stage.name, TypeError(f"run() returned {type(out).__name__}, not a Context"))
            out = self._counted(out, tokenizer)
            before_ids, after_ids = [i.id for i in context.items], {i.id for i in out.items}
            reports.append(StageReport(
                name=stage.name,
                tokens_in=_total(context),
                tokens_out=_total(out),
                dropped=tuple(i for i in before_ids if i not in after_ids),
                added=tuple(i for i in after_ids - set(before_ids)),
                seconds=time.perf_counter() - t0,
                notes=dict(out.notes),
            ))
            context = out
        tier = context.tier
        messages = context.to_messages()
        sent, without, degraded = self._bills(original, context, messages, price, session, session_store)
        if degraded:
            reports[-1] = dataclasses.replace(reports[-1], notes={**reports[-1].notes, "session_degraded": degraded})
        report = Report(
            tier=tier.name or repr(tier),
            tokens_before=tokens_before,
            tokens_after=_total(context),
            budget=tier.budget,
            stages=tuple(reports),
            seconds=time.perf_counter() - started,
            model=model or DEFAULT_MODEL,
            price=price,
            bill=sent,
            bill_without_ctxopt=without,
            session=session,
            counting=tokenizer.describe(),
            fixed_tokens=context.fixed_tokens,
            repairs=context.repairs,
        )
        return Result(messages=messages, report=report, context=context)

    @staticmethod
    def _bills(original: Context, final: Context, messages: list[dict[str, Any]], price: Price, session: str | None,
               store: SessionStore | None) -> tuple[billing.Bill, billing.Bill, str | None]:
        """The bills of the prompt sent and of the prompt as it came in, each after the session's
        previous one of its kind; the new prints are stored for the next request."""
        chain = session is not None
        prints = [_print(final, messages if chain else None), _print(original, original.to_messages() if chain else None)]
        if session is None:
            return billing.bill(prints[0], None, price), billing.bill(prints[1], None, price), None
        store = store or default_store()
        previous, degraded = store.load(session)
        bills = (billing.bill(prints[0], previous.sent, price), billing.bill(prints[1], previous.unoptimised, price))
        failed = store.save(session, Previous(billing.after_request(prints[0], previous.sent, price),
                                              billing.after_request(prints[1], previous.unoptimised, price)))
        return bills[0], bills[1], degraded or failed

    @staticmethod
    def _counted(context: Context, tokenizer: Any) -> Context:
        if all(i.tokens is not None for i in context.items):
            return context
        return context.replace(items=[
            i if i.tokens is not None else i.replace(tokens=tokenizer.count_message(i.to_message()))
            for i in context.items
        ])

    def to_config(self) -> dict[str, Any]:
        """A plain dict (TOML-ready) that :meth:`from_config` turns back into an equal pipeline."""
        config: dict[str, Any] = {"stages": [_drop_none(stage_config(s)) for s in self.stages],
                                  "fit": _drop_none(stage_config(self.fit))}
        config["fit"].pop("name")
        if self.model is not None:
            config["model"] = self.model
        if self.encoding is not None:
            config["encoding"] = self.encoding
        if self.price_per_1k is not None:
            config["price_per_1k"] = self.price_per_1k
        if self.prices is not None:
            config["prices"] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in self.prices.items()}
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | str | os.PathLike[str]) -> Pipeline:
        """A pipeline from a dict like :meth:`to_config` returns, or from a TOML file of that shape::

            model = "gpt-4o-mini"
            [[stages]]
            name = "prune_history"
            keep_last = 4
        """
        if isinstance(config, (str, os.PathLike)):
            where = f"pipeline file {str(config)!r}"
            try:
                text = Path(config).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read {where}: {exc}") from exc
            config = parse_toml(text, where)
        if not isinstance(config, Mapping):
            raise ConfigError(f"a pipeline config is a dict or a TOML path, got {type(config).__name__}")
        allowed = {"stages", "fit", "encoding", "model", "price_per_1k", "prices"}
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ConfigError(f"unknown pipeline key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        stages = config.get("stages", [stage_config(s) for s in DEFAULT_STAGES])
        if not isinstance(stages, Sequence) or isinstance(stages, str):
            raise ConfigError("pipeline 'stages' must be a list of tables, each with a 'name'")
        fit_options = config.get("fit", {})
        if not isinstance(fit_options, Mapping):
            raise ConfigError(f"pipeline 'fit' must be a table of fit options, got {fit_options!r}")
        fit = _build_stage({"name": "fit", **fit_options})
        return cls(stages=tuple(_build_stage(s) for s in stages), fit=fit,
                   **{k: config[k] for k in ("encoding", "model", "price_per_1k", "prices") if k in config})


def _drop_none(config: dict[str, Any]) -> dict[str, Any]:
    # TOML has no null: an unset option is left out and takes its default again on load.
    return {k: v for k, v in config.items() if v is not None}


def _build_stage(spec: Any) -> Any:
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ConfigError(f"each stage is a table with a 'name' (one of {', '.join(sorted(STAGES))}), got {spec!r}")
    options = dict(spec)
    name = options.pop("name")
    if not isinstance(name, str) or name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; choose from {', '.join(sorted(STAGES))}")
    cls = STAGES[name]
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"stage {name!r} has no option(s) {', '.join(unknown)}; options: {', '.join(sorted(known))}")
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"stage {name!r}: {exc}") from exc


def _print(context: Context, messages: list[dict[str, Any]] | None) -> billing.PromptPrint:
    """The cache print of a context's prompt; without ``messages`` only counts (nothing to compare).
    Tool and response_format schemas come first in a provider's prompt: they are one leading entry,
    known by their token count."""
    items = context.items
    lead = [{"fixed_tokens": context.fixed_tokens}] if context.fixed_tokens else []
    entries = lead + (messages if messages is not None else [{}] * len(items))
    tokens = [context.fixed_tokens] * len(lead) + [i.tokens or 0 for i in items]
    marks = [k + len(lead) for k, i in enumerate(items) if i.metadata.get(CACHE_BREAKPOINT)]
    return billing.fingerprint(entries, tokens, marks, chain=messages is not None)


def _total(context: Context) -> int:
    return REPLY_PRIMING + context.fixed_tokens + sum(i.tokens or 0 for i in context.items)


def _with_reserve(tier: Tier, max_output_tokens: Any) -> Tier:
    """The tier with the request's answer room as its reserve (the provider keeps that much free)."""
    if isinstance(max_output_tokens, bool) or not isinstance(max_output_tokens, int) or max_output_tokens < 0:
        raise InputError(f"max_tokens / max_output_tokens must be a whole number >= 0, got {max_output_tokens!r}")
    if max_output_tokens >= tier.limit:
        raise BudgetError(f"the request asks for up to {max_output_tokens} output tokens, but tier "
                          f"{tier.name or tier!r} has a limit of {tier.limit} for prompt and answer together; "
                          "lower max_tokens or choose a larger tier")
    return tier.replace(reserve=max_output_tokens)


def optimize(
    messages: Sequence[Mapping[str, Any]],
    tier: Tier | str = "pro",
    query: str | None = None,
    pipeline: Pipeline | None = None,
    *,
    tiers: Mapping[str, Tier] | str | os.PathLike[str] | None = None,
    filters: Mapping[str, Any] | None = None,
    model: str | None = None,
    tools: Sequence[Any] | None = None,
    response_format: Any = None,
    max_output_tokens: int | None = None,
    session: str | None = None,
    session_store: SessionStore | None = None,
) -> Result:
    """Fit an agent's chat ``messages`` into ``tier``'s token limit; returns messages and a report.
    ``filters`` scope this request's retrieval (e.g. ``{"tenant": "acme"}``) when the pipeline retrieves;
    ``model``, ``tools``, ``response_format`` and ``max_output_tokens`` describe the request so all of it
    is counted the way the model's provider bills it (see :meth:`Pipeline.optimize`). ``session``
    names the conversation (e.g. its thread id): the prompt keeps a prefix the provider serves from
    its cache, and the report's bill counts it (see :meth:`Pipeline.run`).

    >>> import ctxopt
    >>> messages, report = ctxopt.optimize([{"role": "system", "content": "Be brief."},
    ...                                     {"role": "user", "content": "Hi!"}], tier="free")
    >>> report.tokens_after <= report.budget
    True
    """
    if pipeline is not None and not isinstance(pipeline, Pipeline):
        raise ConfigError(f"pipeline must be a ctxopt.Pipeline (e.g. Pipeline.from_config(...)), got {pipeline!r}")
    return (pipeline or Pipeline()).optimize(messages, tier, query, tiers=tiers, filters=filters, model=model,
                                             tools=tools, response_format=response_format,
                                             max_output_tokens=max_output_tokens, session=session,
                                             session_store=session_store)
