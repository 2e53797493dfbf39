"""ctxopt as the pre-call hook of LiteLLM's proxy, for teams that already run LiteLLM's gateway.

LiteLLM authenticates the caller; the hook fits each chat request's messages before LiteLLM calls
the model. ``tier`` and ``filters`` are values or callables of ``(user_api_key_dict, data)``, so a
team's tier and retrieval scope come from LiteLLM's own auth record, never from the request::

    # my_hooks.py, next to LiteLLM's proxy_config.yaml
    from ctxopt.serve.litellm_hook import CtxoptHook
    ctxopt_hook = CtxoptHook(tier=lambda auth, data: "enterprise" if auth.team_id == "research" else "pro",
                             filters=lambda auth, data: {"tenant": auth.team_id})

    # proxy_config.yaml
    litellm_settings:
      callbacks: my_hooks.ctxopt_hook

The report goes into ``data["metadata"]["ctxopt"]`` (so LiteLLM's logs carry it) and into the
Prometheus metrics of :mod:`ctxopt.serve.metrics`. Needs the ``litellm`` package.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any, Literal

# Importing litellm fetches its model price map from the internet unless told otherwise; ctxopt is
# offline by design, so the copy bundled with litellm is used unless the deployment chose.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm.integrations.custom_logger import CustomLogger

from ctxopt.errors import ConfigError
from ctxopt.pipeline import Pipeline
from ctxopt.serve.metrics import ERRORS, observe_report
from ctxopt.serve.optimizing import optimize_messages
from ctxopt.tiers import Tier

log = logging.getLogger("ctxopt.serve")
CHAT_CALLS = frozenset({"completion", "acompletion"})

Choice = Any  # a value, or a callable(user_api_key_dict, data) -> value


class CtxoptHook(CustomLogger):
    def __init__(self, *, tier: Choice = "pro", pipeline: Pipeline | None = None,
                 tiers: Mapping[str, Tier] | str | None = None, filters: Choice = None,
                 on_error: Literal["open", "closed"] = "open") -> None:
        super().__init__()
        if on_error not in ("open", "closed"):
            raise ConfigError(f"on_error must be 'open' or 'closed', got {on_error!r}")
        self.tier, self.pipeline, self.tiers, self.filters, self.on_error = tier, pipeline, tiers, filters, on_error

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict[str, Any],
                                  call_type: str) -> dict[str, Any]:
        if call_type not in CHAT_CALLS or not isinstance(data.get("messages"), list):
            return data
        tier, filters = (_choose(c, user_api_key_dict, data) for c in (self.tier, self.filters))
        tenant = getattr(user_api_key_dict, "team_id", None) or "-"
        try:
            messages, report = await asyncio.to_thread(optimize_messages, data["messages"], tier=tier,
                                                       pipeline=self.pipeline, tiers=self.tiers, filters=filters)
        except Exception:  # the policy decides: forward unoptimised (logged, counted) or re-raise
            ERRORS.labels("optimize").inc()
            if self.on_error == "closed":
                raise
            log.warning("ctxopt could not optimise a LiteLLM request; forwarding it unoptimised", exc_info=True)
            return data
        observe_report(report, tenant=tenant)
        metadata = dict(data.get("metadata") or {})
        metadata["ctxopt"] = {"tier": report.tier, "tokens_before": report.tokens_before,
                              "tokens_after": report.tokens_after, "tokens_saved": report.tokens_saved,
                              "ms": round(report.seconds * 1000, 1)}
        return {**data, "messages": messages, "metadata": metadata}


def _choose(choice: Choice, auth: Any, data: Mapping[str, Any]) -> Any:
    return choice(auth, data) if callable(choice) else choice


