"""Sessions: a cache-stable prompt layout and the bill of a request given the session's previous one.

``layout`` holds the watermark replay and the tail choice (pure functions of the turns; the stage
is :class:`ctxopt.stages.session.SessionLayout`), ``bill`` prices a prompt under a provider's cache
rules, ``state`` keeps the previous prompt's print in the shared cache (disk or Redis).
"""

from ctxopt.sessions.billing import Bill, PromptPrint, bill, fingerprint
from ctxopt.sessions.layout import boundary, choose_tail
from ctxopt.sessions.state import Previous, SessionStore, default_store

__all__ = ["Bill", "Previous", "PromptPrint", "SessionStore", "bill", "boundary", "choose_tail", "default_store",
           "fingerprint"]
