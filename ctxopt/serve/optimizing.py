"""The one call from the server into ctxopt: fit a request body's messages for a tenant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ctxopt.errors import InputError
from ctxopt.pipeline import optimize
from ctxopt.report import Report
from ctxopt.serve.config import Tenant
from ctxopt.tiers import Tier


def optimize_body(body: Mapping[str, Any], tenant: Tenant, tier: Tier) -> tuple[dict[str, Any], Report]:
    """``body`` with its messages fitted to ``tier`` by the tenant's pipeline and the report. Filters
    come from the tenant's config, never from the request."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InputError(f"the request body needs \"messages\": a list of chat messages, got {type(messages).__name__}")
    result = optimize(messages, tier=tier, pipeline=tenant.pipeline, filters=tenant.filters)
    return {**body, "messages": result.messages}, result.report
