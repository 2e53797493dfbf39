"""The ASGI app: auth, backpressure, budgets, optimisation, forwarding. One instance per worker.

Every ``/v1`` request goes the same way::

    in-flight limit (503) -> API key -> tenant (401) -> JSON body (400) -> budget check (429 or smaller tier)
      -> optimise in a worker thread (fail open or closed) -> request cap (413) -> charge the shared
      budget (429) -> forward to the tenant's upstream (502/504) and stream its answer back

``/v1/optimize`` stops after the charge and returns the fitted messages and the report instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ctxopt.accounting.redis_store import Entry, RedisUsageStore
from ctxopt.errors import BudgetError, CtxoptError, InputError
from ctxopt.report import Report
from ctxopt.serve import metrics
from ctxopt.serve.breaker import Breaker
from ctxopt.serve.budgets import SharedBudgets
from ctxopt.serve.config import CONFIG_ENV, Budget, ServeConfig, Tenant, load_config
from ctxopt.serve.errors import ErrorAnswer, error_response
from ctxopt.serve.metering import metered
from ctxopt.serve.optimizing import optimize_body, session_of
from ctxopt.serve.tracing import OTEL_ENV, Tracing
from ctxopt.serve.upstream import forward
from ctxopt.sessions.state import SessionStore, default_store

log = logging.getLogger("ctxopt.serve")


class Refused(Exception):
    """A request answered with an error before reaching the provider."""

    def __init__(self, response: Response, cause: str) -> None:
        super().__init__(cause)
        self.response, self.cause = response, cause


def report_headers(report: Report) -> dict[str, str]:
    return {"x-ctxopt-status": "optimized", "x-ctxopt-tier": report.tier,
            "x-ctxopt-tokens-before": str(report.tokens_before), "x-ctxopt-tokens-after": str(report.tokens_after),
            "x-ctxopt-tokens-saved": str(report.tokens_saved), "x-ctxopt-ms": f"{report.seconds * 1000:.1f}",
            # the cache-aware bill in US$ (a saving can be negative: it says what the provider bills)
            "x-ctxopt-cached-tokens": str(report.cached_tokens), "x-ctxopt-cost": f"{report.cost:.8f}",
            "x-ctxopt-cost-saved": f"{report.cost_saved:.8f}"}


class Server:
    """The state one worker shares between its requests; built by :func:`create_app`."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.in_flight = 0
        self.client: httpx.AsyncClient | None = None
        self.executor: ThreadPoolExecutor | None = None
        self.breakers = {name: Breaker(failures=u.breaker_failures, seconds=u.breaker_seconds,
                                       on_change=functools.partial(_circuit_changed, name))
                         for name, u in config.upstreams.items()}
        self.budgets = SharedBudgets(config.redis_url, prefix=config.redis_prefix,
                                     on_error=lambda exc: metrics.ERRORS.labels("redis").inc())
        # A session's state (its previous prompt's print) is shared by every worker and instance
        # through Redis when the server has one, else by this machine's workers through the disk cache.
        self.sessions = SessionStore("redis", redis_url=config.redis_url) if config.redis_url else default_store()
        self.usage = None if config.redis_url is None else RedisUsageStore(
            config.redis_url, prefix=f"{config.redis_prefix}:usage", on_error=lambda exc: metrics.ERRORS.labels("redis").inc())
        self.tracing = Tracing(config.otel or os.environ.get(OTEL_ENV) == "1")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.client = httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=100))
        self.executor = ThreadPoolExecutor(self.config.optimize_threads, thread_name_prefix="ctxopt-optimize")
        try:
            yield
        finally:
            await self.client.aclose()
            await self.budgets.close()
            if self.usage is not None:
                await self.usage.aclose()
            self.executor.shutdown(wait=False, cancel_futures=True)

    def _client(self) -> httpx.AsyncClient:
        if self.client is None:
            raise RuntimeError("the app's lifespan has not started: run it under an ASGI server such as uvicorn")
        return self.client

    # -- the routes ------------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "pid": os.getpid(), "in_flight": self.in_flight})

    async def metrics(self, request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    async def chat_completions(self, request: Request) -> Response:
        return await self._guarded("chat_completions", request,
                                   lambda tenant: self._proxy(request, tenant, "openai", "openai_chat"))

    async def messages(self, request: Request) -> Response:
        return await self._guarded("messages", request, lambda tenant: self._proxy(request, tenant, "anthropic", "anthropic"))

    async def optimize(self, request: Request) -> Response:
        return await self._guarded("optimize", request, lambda tenant: self._optimize_only(request, tenant))

    # -- the steps -------------------------------------------------------------------------------

    async def _guarded(self, route: str, request: Request, handle: Callable[[Tenant], Awaitable[Response]]) -> Response:
        """Bounded in-flight requests per worker, one error shape, and the request metrics."""
        started = time.perf_counter()
        tenant = "-"
        span, cause = self.tracing.start(route, request), None
        if self.in_flight >= self.config.max_in_flight:
            metrics.ERRORS.labels("overloaded").inc()
            response: Response = error_response(
                503, "overloaded", f"this worker is handling its limit of {self.config.max_in_flight} requests; retry shortly",
                {"retry-after": str(self.config.retry_after)})
        else:
            self.in_flight += 1
            metrics.IN_FLIGHT.inc()
            try:
                found = self._tenant(request)
                tenant = found.name
                response = await handle(found)
            except Refused as refused:
                metrics.ERRORS.labels(refused.cause).inc()
                response, cause = refused.response, refused.cause
            except BaseException:
                self.tracing.finish(span, None, None, tenant)
                raise
            finally:
                self.in_flight -= 1
                metrics.IN_FLIGHT.dec()
        if isinstance(response, ErrorAnswer):
            response = response.for_route(request.url.path)
        metrics.REQUESTS.labels(route, tenant, str(response.status_code)).inc()
        metrics.LATENCY.labels(route).observe(time.perf_counter() - started)
        self.tracing.finish(span, response, cause, tenant)
        return response

    def _tenant(self, request: Request) -> Tenant:
        # OpenAI's SDKs send "Authorization: Bearer KEY", Anthropic's send "x-api-key: KEY".
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("x-api-key")
        tenant = self.config.tenant_for_key(key)
        if tenant is None:
            raise Refused(error_response(401, "invalid_api_key", "missing or unknown API key: send "
                                         "'Authorization: Bearer <key>' (or 'x-api-key: <key>') with a key the server knows"),
                          "auth")
        return tenant

    async def _body(self, request: Request) -> dict[str, Any]:
        limit = self.config.max_body_bytes
        too_large = Refused(error_response(413, "request_too_large", f"the request body is over this server's limit of "
                                           f"{limit} bytes ([server] max_body_bytes)"), "bad_request")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise too_large
        try:
            body = json.loads(bytes(data))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise Refused(error_response(400, "invalid_request_error", f"the request body is not JSON: {exc}"),
                          "bad_request") from exc
        if not isinstance(body, dict):
            raise Refused(error_response(400, "invalid_request_error", "the request body must be a JSON object"),
                          "bad_request")
        return body

    async def _optimized(self, request: Request, tenant: Tenant, format: str | None) -> tuple[dict[str, Any], Report | None]:
        """The body to forward and its report; the body as sent and ``None`` if ctxopt failed open."""
        body = await self._body(request)
        tier = tenant.tier
        budget = tenant.budget
        if budget is not None:
            used = await self.budgets.used(tenant.name, budget)
            if used is not None and used >= (budget.limit or 0):
                if budget.over == "throttle":
                    raise self._throttled(tenant, budget, used, (await self.budgets.charge(tenant.name, budget, 0)).retry_after)
                tier = tenant.downgrade_tier or tier
        loop = asyncio.get_running_loop()
        try:
            fitted, report = await loop.run_in_executor(self.executor, optimize_body, body, tenant, tier, format,
                                                        session_of(request.headers, body), self.sessions)
        except Exception as exc:
            metrics.ERRORS.labels("optimize").inc()
            self.tracing.failed(exc)
            if tenant.on_error == "open":
                return body, None
            status, kind = (400, "invalid_request_error") if isinstance(exc, InputError) else \
                (422, "context_too_large") if isinstance(exc, BudgetError) else (500, "ctxopt_error")
            detail = str(exc) if isinstance(exc, CtxoptError) else f"{type(exc).__name__}: {exc}"
            raise Refused(error_response(status, kind, f"ctxopt could not optimise this request: {detail}",
                                         {"x-ctxopt-status": "failed"}), "optimize_closed") from exc
        metrics.observe_report(report, tenant=tenant.name)
        self.tracing.report(report)
        if budget is not None:
            await self._charge(tenant, budget, report)
        return fitted, report

    async def _charge(self, tenant: Tenant, budget: Budget, report: Report) -> None:
        if budget.max_request_tokens is not None and report.tokens_after > budget.max_request_tokens:
            raise Refused(error_response(413, "request_too_large",
                                         f"the optimised request has {report.tokens_after} tokens, over tenant "
                                         f"{tenant.name!r}'s cap of {budget.max_request_tokens} per request"),
                          "request_cap")
        charge = await self.budgets.charge(tenant.name, budget, _amount(budget, report))
        for threshold in charge.alerts:
            metrics.ALERTS.labels(tenant.name, f"{threshold:g}").inc()
            log.warning("ctxopt budget alert: tenant %r used %.6g of %.6g %s this %s (crossed %.0f%%)",
                                tenant.name, charge.used, budget.limit, budget.unit, budget.period, threshold * 100)
        if not charge.allowed:
            raise self._throttled(tenant, budget, charge.used or 0, charge.retry_after)

    @staticmethod
    def _throttled(tenant: Tenant, budget: Budget, used: float, retry_after: int) -> Refused:
        return Refused(error_response(429, "budget_exceeded",
                                      f"tenant {tenant.name!r} has used {used:.6g} of its {budget.limit:.6g} {budget.unit} "
                                      f"this {budget.period}", {"retry-after": str(retry_after)}), "budget_exceeded")

    async def _proxy(self, request: Request, tenant: Tenant, provider: str, format: str) -> Response:
        upstream = self.config.upstreams.get(provider)
        if upstream is None:
            raise Refused(error_response(404, "not_found", f"this server has no [upstreams.{provider}]; "
                                         f"add one to its config to proxy this route"), "bad_request")
        body, report = await self._optimized(request, tenant, format)
        headers = report_headers(report) if report is not None else {"x-ctxopt-status": "failed-open"}
        with self.tracing.upstream(provider, body, report, upstream.base_url) as answer:
            response = await forward(self._client(), upstream, self.breakers[provider], body, request.headers, headers)
            answer.append(response)
        if report is not None and tenant.budget is not None and not isinstance(response, StreamingResponse):
            # Unreachable, timed out or circuit open: the provider never billed it, so neither do we.
            await self.budgets.refund(tenant.name, tenant.budget, _amount(tenant.budget, report))
        if report is not None and isinstance(response, StreamingResponse):
            entry = await self._record(request, tenant, report)
            if entry is not None and self.usage is not None:
                usage = self.usage
                response = metered(response, report.price, lambda bill: usage.arecord(entry.billed(bill)))
        return response

    async def _optimize_only(self, request: Request, tenant: Tenant) -> Response:
        # ?format=anthropic (or openai_chat, openai_responses) when the shape alone is ambiguous
        format = request.query_params.get("format")
        body, report = await self._optimized(request, tenant, format)
        if report is None:
            return JSONResponse({"request": body, "messages": body.get("messages"), "report": None,
                                 "status": "failed-open"}, headers={"x-ctxopt-status": "failed-open"})
        await self._record(request, tenant, report)
        return JSONResponse({"request": body, "messages": body.get("messages"), "report": report.to_dict(),
                             "status": "optimized"}, headers=report_headers(report))

    async def _record(self, request: Request, tenant: Tenant, report: Report) -> Entry | None:
        """Add the request to the shared usage (``ctxopt report --redis``), under the agent the client names."""
        if self.usage is None:
            return None
        entry = self.usage.entry(report, (tenant.name, request.headers.get("x-ctxopt-agent") or "-", report.tier))
        await self.usage.arecord(entry)
        return entry


def _circuit_changed(upstream: str, state: str) -> None:
    metrics.CIRCUIT.labels(upstream, state).inc()
    log.warning("ctxopt serve: the circuit to %s is %s", upstream, state)


def _amount(budget: Budget, report: Report) -> float:
    """What a request costs against ``budget``: tokens sent to the model, or the report's
    cache-aware bill of them in dollars (cache reads and writes priced as the provider bills them)."""
    return report.tokens_after if budget.unit == "tokens" else report.cost


def create_app(config: ServeConfig | str | os.PathLike[str] | None = None) -> Starlette:
    """The ASGI app for ``config`` (a :class:`ServeConfig`, a TOML path, or ``$CTXOPT_SERVE_CONFIG``)."""
    if config is None:
        path = os.environ.get(CONFIG_ENV)
        if not path:
            raise InputError(f"no serve config: pass one, or set ${CONFIG_ENV} to a TOML file")
        config = path
    if not isinstance(config, ServeConfig):
        config = load_config(config)
    server = Server(config)
    routes = [
        Route("/healthz", server.healthz, methods=["GET"]),
        Route("/metrics", server.metrics, methods=["GET"]),
        Route("/v1/chat/completions", server.chat_completions, methods=["POST"]),
        Route("/v1/messages", server.messages, methods=["POST"]),
        Route("/v1/optimize", server.optimize, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=server.lifespan)
    app.state.server = server
    return app


