"""ctxopt: fit an agent's prompt to a token budget while keeping what the answer needs.

>>> import ctxopt
>>> messages, report = ctxopt.optimize([{"role": "user", "content": "Hello"}], tier="free")
>>> messages
[{'role': 'user', 'content': 'Hello'}]
"""

from ctxopt.accounting import Accountant, BudgetAlert, Usage
from ctxopt.errors import (
    BudgetError,
    CacheError,
    ConfigError,
    CtxoptError,
    InputError,
    StageError,
    StoreError,
    TokenizerError,
)
from ctxopt.integrations import last_report, optimized, wrap
from ctxopt.pipeline import Pipeline, Result, optimize
from ctxopt.report import Report, StageReport
from ctxopt.requests import RequestResult, optimize_request
from ctxopt.stages import STAGES, Fit, Stage, check_stage
from ctxopt.tiers import DEFAULT_TIERS, Tier, dump_tiers, load_tiers
from ctxopt.tokens import Tokenizer, get_tokenizer
from ctxopt.types import Context, Item

__version__ = "0.1.0"

__all__ = [
    "Accountant",
    "BudgetAlert",
    "BudgetError",
    "CacheError",
    "ConfigError",
    "Context",
    "CtxoptError",
    "DEFAULT_TIERS",
    "Fit",
    "InputError",
    "Item",
    "Pipeline",
    "Report",
    "RequestResult",
    "Result",
    "STAGES",
    "Stage",
    "StageError",
    "StageReport",
    "StoreError",
    "Tier",
    "Tokenizer",
    "TokenizerError",
    "Usage",
    "check_stage",
    "dump_tiers",
    "get_tokenizer",
    "last_report",
    "load_tiers",
    "optimize",
    "optimize_request",
    "optimized",
    "wrap",
]
