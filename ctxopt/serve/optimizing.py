"""The one call from the server (and the LiteLLM hook) into ctxopt: fit a request in its own format."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from ctxopt.errors import InputError
from ctxopt.pipeline import Pipeline
from ctxopt.report import Report
from ctxopt.requests import optimize_request
from ctxopt.serve.config import Tenant
from ctxopt.sessions.state import SessionStore
from ctxopt.tiers import Tier

MAX_SESSION = 256  # characters of a session name: a thread id, not a payload


def optimize_messages(messages: Any, *, tier: Tier | str, pipeline: Pipeline | None,
                      tiers: Mapping[str, Tier] | str | os.PathLike[str] | None = None,
                      filters: Mapping[str, Any] | None = None) -> tuple[list[dict[str, Any]], Report]:
    """OpenAI chat ``messages`` fitted to ``tier``, and the report."""
    fitted, report = optimize_request({"messages": messages}, format="openai_chat", tier=tier, pipeline=pipeline,
                                      tiers=tiers, filters=filters)
    return fitted["messages"], report


def optimize_body(body: Mapping[str, Any], tenant: Tenant, tier: Tier, format: str | None,
                  session: str | None = None, sessions: SessionStore | None = None) -> tuple[dict[str, Any], Report]:
    """``body`` (a request in ``format``, or detected when ``None``) fitted to ``tier`` by the
    tenant's pipeline, and the report. Filters come from the tenant's config, never the request.
    ``session`` names the conversation (cache-stable layout and bill, state in ``sessions``); it
    is scoped to the tenant, so no tenant can read or steer another's session state."""
    if not isinstance(body.get("messages", body.get("input")), (list, str)):
        raise InputError("the request body needs \"messages\": a list of chat messages "
                         "(or \"input\" for OpenAI's Responses format)")
    if session is not None and (not isinstance(session, str) or not session or len(session) > MAX_SESSION):
        raise InputError(f"the session (x-ctxopt-session header or prompt_cache_key) must be a non-empty string "
                         f"of at most {MAX_SESSION} characters, got {session!r:.80}")
    fitted, report = optimize_request(dict(body), format=format, tier=tier, pipeline=tenant.pipeline,
                                      filters=tenant.filters, session=None if session is None else f"{tenant.name}\x1f{session}",
                                      session_store=sessions)
    if session is not None:  # the tenant scope is the store's key; the report names the client's session
        report = dataclasses.replace(report, session=session)
    return dict(fitted), report


def session_of(headers: Mapping[str, str], body: Mapping[str, Any]) -> str | None:
    """The conversation a request belongs to: the ``x-ctxopt-session`` header, else OpenAI's
    ``prompt_cache_key`` (the field OpenAI routes its own prompt cache by), else none."""
    return headers.get("x-ctxopt-session") or body.get("prompt_cache_key")
