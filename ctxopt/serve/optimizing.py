"""The one call from the server (and the LiteLLM hook) into ctxopt: fit a request's messages."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ctxopt.errors import InputError
from ctxopt.pipeline import Pipeline, optimize
from ctxopt.report import Report
from ctxopt.serve.config import Tenant
from ctxopt.tiers import Tier


def optimize_messages(messages: Any, *, tier: Tier | str, pipeline: Pipeline | None,
                      tiers: Mapping[str, Tier] | str | os.PathLike[str] | None = None,
                      filters: Mapping[str, Any] | None = None) -> tuple[list[dict[str, Any]], Report]:
    result = optimize(messages, tier=tier, pipeline=pipeline, tiers=tiers, filters=filters)
    return result.messages, result.report


def optimize_body(body: Mapping[str, Any], tenant: Tenant, tier: Tier) -> tuple[dict[str, Any], Report]:
    """``body`` with its messages fitted to ``tier`` by the tenant's pipeline and the report. Filters
    come from the tenant's config, never from the request."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InputError(f"the request body needs \"messages\": a list of chat messages, got {type(messages).__name__}")
    fitted, report = optimize_messages(messages, tier=tier, pipeline=tenant.pipeline, filters=tenant.filters)
    return {**body, "messages": fitted}, report
