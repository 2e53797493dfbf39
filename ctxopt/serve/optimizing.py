"""The one call from the server (and the LiteLLM hook) into ctxopt: fit a request in its own format."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ctxopt.errors import InputError
from ctxopt.pipeline import Pipeline
from ctxopt.report import Report
from ctxopt.requests import optimize_request
from ctxopt.serve.config import Tenant
from ctxopt.tiers import Tier


def optimize_messages(messages: Any, *, tier: Tier | str, pipeline: Pipeline | None,
                      tiers: Mapping[str, Tier] | str | os.PathLike[str] | None = None,
                      filters: Mapping[str, Any] | None = None) -> tuple[list[dict[str, Any]], Report]:
    """OpenAI chat ``messages`` fitted to ``tier``, and the report."""
    fitted, report = optimize_request({"messages": messages}, format="openai_chat", tier=tier, pipeline=pipeline,
                                      tiers=tiers, filters=filters)
    return fitted["messages"], report


def optimize_body(body: Mapping[str, Any], tenant: Tenant, tier: Tier, format: str | None) -> tuple[dict[str, Any], Report]:
    """``body`` (a request in ``format``, or detected when ``None``) fitted to ``tier`` by the
    tenant's pipeline, and the report. Filters come from the tenant's config, never the request."""
    if not isinstance(body.get("messages", body.get("input")), (list, str)):
        raise InputError("the request body needs \"messages\": a list of chat messages "
                         "(or \"input\" for OpenAI's Responses format)")
    fitted, report = optimize_request(dict(body), format=format, tier=tier, pipeline=tenant.pipeline,
                                      filters=tenant.filters)
    return dict(fitted), report
