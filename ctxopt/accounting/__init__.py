"""Per-tenant accounting: requests, tokens, savings, cache hits and latency, with budget alerts."""

from ctxopt.accounting.accountant import Accountant
from ctxopt.accounting.budgets import DEFAULT_THRESHOLDS, BudgetAlert
from ctxopt.accounting.usage import Usage

__all__ = ["DEFAULT_THRESHOLDS", "Accountant", "BudgetAlert", "Usage"]
