"""The exceptions ctxopt raises, one tree.

    CtxoptError                      base of everything ctxopt raises on purpose
    ├── ConfigError (ValueError)     a tier, tiers file or pipeline description is invalid
    ├── InputError (ValueError)      messages, documents or arguments a caller passed are malformed
    ├── TokenizerError (LookupError) an encoding is unknown or its data cannot be loaded offline
    ├── BudgetError (ValueError)     protected items alone do not fit the tier's limit
    ├── StageError (RuntimeError)    a pipeline stage failed; names the stage, keeps the cause
    ├── StoreError (RuntimeError)    the vector store is unreachable, missing a collection, ...
    └── CacheError (RuntimeError)    a cache backend failed in a way that cannot be degraded

Each message says what was wrong, what is allowed, and how to fix it. Every error also subclasses
the matching builtin, so ``except ValueError`` keeps working for callers who do not know ctxopt.
Where the fix differs between Python and the command line (``price_per_1k=`` against ``--price``),
the error carries both: ``hint`` ends the message, ``cli_hint`` replaces it in ``ctxopt``'s output.

>>> error = ConfigError("no price known for model 'x'", hint="pass price_per_1k=", cli_hint="give --price USD")
>>> str(error), error.cli_message()
("no price known for model 'x'; pass price_per_1k=", "no price known for model 'x'; give --price USD")
"""

from __future__ import annotations


class CtxoptError(Exception):
    """Base class of every error ctxopt raises on purpose.

    ``hint`` is the fix in Python terms, appended to ``message``; ``cli_hint``, when given, is the same
    fix in command-line terms (a flag, a file, an environment variable), shown by the CLI instead.
    """

    def __init__(self, message: str = "", *, hint: str = "", cli_hint: str = "") -> None:
        super().__init__(_join(message, hint))
        self.message, self.hint, self.cli_hint = message, hint, cli_hint

    def cli_message(self) -> str:
        """The message as the command line shows it: the CLI's fix where the error has one."""
        return _join(self.message, self.cli_hint) if self.cli_hint else str(self)


def _join(message: str, hint: str) -> str:
    return f"{message}; {hint}" if message and hint else message or hint


class ConfigError(CtxoptError, ValueError):
    """A tier, tiers file or pipeline description is invalid."""


class InputError(CtxoptError, ValueError):
    """Messages, documents or arguments passed by the caller are malformed."""


class TokenizerError(CtxoptError, LookupError):
    """An encoding is unknown, or its data cannot be loaded without network."""


class BudgetError(CtxoptError, ValueError):
    """Protected items alone exceed the tier's prompt limit."""


class StageError(CtxoptError, RuntimeError):
    """A pipeline stage raised; ``stage`` names it and ``__cause__`` keeps the original error."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        self.stage = stage
        super().__init__(f"stage {stage!r} failed: {type(cause).__name__}: {cause}")


class StoreError(CtxoptError, RuntimeError):
    """The vector store failed: unreachable server, missing collection, dimension mismatch."""


class CacheError(CtxoptError, RuntimeError):
    """A cache backend failed in a way that cannot be degraded to recomputing."""
