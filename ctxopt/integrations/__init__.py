"""Use ctxopt inside an agent: wrap its chat client, or decorate the function building its prompt."""

from ctxopt.integrations.client import WrappedClient, wrap
from ctxopt.integrations.decorator import OptimizedMessages, optimized
from ctxopt.integrations.runner import REPORT_ATTRIBUTE, last_report

__all__ = ["REPORT_ATTRIBUTE", "OptimizedMessages", "WrappedClient", "last_report", "optimized", "wrap"]
